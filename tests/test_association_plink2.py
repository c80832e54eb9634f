"""voxseq's association equals plink2 --glm omit-ref hide-covar on a committed fixture.

The fixture and plink2's outputs were made by ``tests/data/plink2_glm/make_fixture.py`` (its
exact plink2 command is in ``plink2_command.txt``); plink2 is not needed here.
"""

from __future__ import annotations

import csv
import gzip
import logging
from pathlib import Path

import numpy as np
import pytest

from voxseq.genetics.association import covariate_matrix, glm_linear
from voxseq.genetics.genotypes import hardcall_counts, hwe_exact
from voxseq.genetics.plink import read_bed

DATA = Path(__file__).resolve().parent / "data" / "plink2_glm"
PHENOS = ("p1", "p2", "p3", "p4", "p5")
RTOL = 1e-5


def _table(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def fixture():
    geno = read_bed(DATA / "fixture")
    pheno = _table(DATA / "pheno.tsv")
    covar = _table(DATA / "covar.tsv")
    assert [r["IID"] for r in pheno] == geno.samples == [r["IID"] for r in covar]
    y = np.array([[np.nan if r[p] == "NA" else float(r[p]) for p in PHENOS] for r in pheno])
    cols = {c: [("" if r[c] == "NONE" else r[c]) for r in covar]
            for c in ("age", "sex", "site", "carrier", "score")}
    x, names = covariate_matrix(cols, categorical=["site"])
    return geno, y, x, names


def test_covariates_dummy_coded(fixture):
    _, _, x, names = fixture
    assert names == ["age", "sex", "site=siteB", "site=siteC", "carrier", "score"]
    missing_site = np.isnan(x[:, 2])
    assert missing_site.sum() > 0 and np.array_equal(missing_site, np.isnan(x[:, 3]))


def test_glm_equals_plink2(fixture, caplog):
    geno, y, x, _ = fixture
    with caplog.at_level(logging.WARNING, logger="voxseq.genetics.association"):
        res = glm_linear(geno.dosage, y, x, names=list(PHENOS), chunk=700)
    assert "phenotype p5 has only 0/1/2 values" in caplog.text
    n_na = 0
    for j, pheno in enumerate(PHENOS):
        rows = _table(DATA / f"glm.{pheno}.glm.linear.gz")
        assert [r["ID"] for r in rows] == list(geno.ids)
        assert all(r["A1"] == r["ALT"] == a for r, a in zip(rows, geno.alt, strict=True))
        np.testing.assert_array_equal(res.obs_ct[:, j], [int(r["OBS_CT"]) for r in rows])
        np.testing.assert_array_equal(res.err[:, j], [r["ERRCODE"] for r in rows])
        ok = np.array([r["ERRCODE"] == "." for r in rows])
        n_na += int((~ok).sum())
        for col, ours in (("BETA", res.beta), ("SE", res.se), ("T_STAT", res.t), ("P", res.p)):
            theirs = np.array([float("nan") if r[col] == "NA" else float(r[col]) for r in rows])
            assert np.isnan(theirs[~ok]).all() and np.isnan(ours[~ok, j]).all()
            np.testing.assert_allclose(ours[ok, j], theirs[ok], rtol=RTOL, err_msg=f"{pheno} {col}")
    # the traps: two monomorphic SNPs, the covariate's own SNP, 7 calls, in every phenotype
    assert n_na == 4 * len(PHENOS)


def test_hwe_equals_plink2_hardy(fixture):
    geno = fixture[0]
    rows = _table(DATA / "glm.hardy.gz")
    hom_ref, het, hom_alt = hardcall_counts(geno.dosage)
    # plink2's A1 here is the REF (first .bim allele column is A1 = ALT; --hardy lists REF)
    np.testing.assert_array_equal(het, [int(r["HET_A1_CT"]) for r in rows])
    p = hwe_exact(het, hom_ref, hom_alt)
    np.testing.assert_allclose(p, [float(r["P"]) for r in rows], rtol=RTOL)
