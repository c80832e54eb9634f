"""Make the plink2 --glm equality fixture: genotypes, phenotypes, covariates and plink2's outputs.

Run from the repository root (needs plink2 on PATH only with ``--run-plink2``)::

    python tests/data/plink2_glm/make_fixture.py --run-plink2

Writes, next to this script: ``fixture.bed/.bim/.fam`` (500 subjects, 2,000 SNPs, A1 = ALT),
``pheno.tsv`` (5 phenotypes as voxseq reads them), ``covar.tsv`` (``age``, ``sex``, ``site`` a
3-level categorical, ``carrier`` and ``score``), ``pheno_plink2.tsv`` (the same phenotypes,
with 10 added to the integer 0/1/2 phenotype ``p5``, which plink2 would otherwise read as
case/control; a constant shift leaves BETA, SE, T_STAT and P unchanged), and from plink2
(``PLINK2_COMMAND`` below, then gzipped): ``glm.<pheno>.glm.linear.gz`` and ``hardy.hardy.gz``.

Traps: about 1% missing calls everywhere and 20-40% on some SNPs; ALT frequencies up to 0.98;
one all-REF and one all-ALT SNP (CONST_ALLELE); SNP ``carrier_snp`` is the ``carrier``
covariate itself (CORR_TOO_HIGH); a SNP called in only 7 subjects (fewer than the 8 predictors:
SAMPLE_CT<=PREDICTOR_CT); missing phenotype and covariate values; a phenotype around 1000 with
sd 5.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from voxseq.genetics.genotypes import Genotypes  # noqa: E402
from voxseq.genetics.plink import write_bed  # noqa: E402

N, M, SEED = 500, 2000, 20261207
PHENOS = ("p1", "p2", "p3", "p4", "p5")
CARRIER_SNP = 7
PLINK2_COMMAND = ["plink2", "--bfile", "fixture", "--pheno", "pheno_plink2.tsv", "--covar",
                  "covar.tsv", "--glm", "omit-ref", "hide-covar", "--hardy", "--threads", "1",
                  "--out", "{out}"]


def simulate(seed: int = SEED) -> tuple[Genotypes, dict, dict]:
    """The fixture's genotypes, phenotypes (name -> (N,) float, NaN missing) and covariates."""
    rng = np.random.default_rng(seed)
    samples = [f"S{i:04d}" for i in range(N)]
    freq = rng.uniform(0.02, 0.98, M)
    dosage = rng.binomial(2, freq[:, None], (M, N)).astype(np.float32)
    dosage[rng.random((M, N)) < 0.01] = np.nan
    heavy = rng.choice(np.arange(20, M), 40, replace=False)
    for i in heavy:
        dosage[i, rng.random(N) < rng.uniform(0.2, 0.4)] = np.nan
    dosage[3], dosage[4] = 0.0, 2.0  # monomorphic: all REF, all ALT
    dosage[5, 1:] = 0.0  # one ALT copy in the cohort
    dosage[5, 0] = 1.0
    dosage[CARRIER_SNP] = rng.binomial(2, 0.3, N)
    dosage[11] = np.nan
    dosage[11, rng.choice(N, 7, replace=False)] = rng.binomial(2, 0.5, 7)
    ids = np.array([f"rs{i + 1}" for i in range(M)], dtype=object)
    ids[CARRIER_SNP] = "carrier_snp"
    geno = Genotypes(samples, np.array([str(1 + i // 1000) for i in range(M)], dtype=object),
                     np.arange(M, dtype=np.int64) % 1000 * 1000 + 1001,
                     rng.choice(list("AC"), M).astype(object),
                     rng.choice(list("GT"), M).astype(object), dosage, ids)
    age = rng.uniform(20, 90, N)
    age[rng.random(N) < 0.01] = np.nan
    sex = rng.integers(0, 2, N).astype(float)
    site = rng.choice(["siteA", "siteB", "siteC"], N).astype(object)
    site[rng.random(N) < 0.01] = "NONE"  # plink2 --missing-catname
    score = rng.normal(0, 1, N)
    covars = {"age": age, "sex": sex, "site": site, "carrier": dosage[CARRIER_SNP].astype(float),
              "score": score}
    g = np.nan_to_num(dosage[20:30].T - np.nanmean(dosage[20:30], 1))
    site_eff = np.select([site == "siteB", site == "siteC"], [0.5, -0.7], 0.0)
    base = 0.02 * np.nan_to_num(age, nan=50) + 0.3 * sex + site_eff
    phenos = {
        "p1": base + g @ rng.normal(0, 0.4, 10) + rng.normal(0, 1, N),
        "p2": base + rng.normal(0, 1, N),
        "p3": 1000 + 5 * (base + rng.normal(0, 1, N)),
        "p4": 2 * site_eff + 0.3 * g[:, 0] + rng.normal(0, 1, N),
        "p5": np.clip(np.rint(1 + 0.5 * g[:, 1] + rng.normal(0, 0.7, N)), 0, 2),
    }
    phenos["p2"][rng.random(N) < 0.1] = np.nan
    phenos["p5"][rng.random(N) < 0.03] = np.nan
    return geno, phenos, covars


def _table(path: Path, samples: list[str], cols: dict) -> None:
    def cell(v) -> str:
        if isinstance(v, str):
            return v
        return "NA" if np.isnan(v) else repr(float(v))

    lines = ["#FID\tIID\t" + "\t".join(cols)]
    lines += [f"{s}\t{s}\t" + "\t".join(cell(c[i]) for c in cols.values())
              for i, s in enumerate(samples)]
    path.write_text("\n".join(lines) + "\n")


def write_inputs(out: Path, seed: int = SEED) -> None:
    """Write the genotypes, ``pheno.tsv``, ``pheno_plink2.tsv`` and ``covar.tsv`` to ``out``."""
    geno, phenos, covars = simulate(seed)
    write_bed(out / "fixture", geno)
    _table(out / "pheno.tsv", geno.samples, phenos)
    _table(out / "pheno_plink2.tsv", geno.samples, {**phenos, "p5": phenos["p5"] + 10})
    _table(out / "covar.tsv", geno.samples, covars)


def run_plink2(out: Path) -> None:
    """Run ``PLINK2_COMMAND`` in a scratch folder; gzip its outputs and log into ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("fixture.bed", "fixture.bim", "fixture.fam", "pheno_plink2.tsv",
                     "covar.tsv"):
            shutil.copy(out / name, tmp)
        cmd = [a.format(out="glm") for a in PLINK2_COMMAND]
        subprocess.run(cmd, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        for f in sorted(Path(tmp).glob("glm.*")):
            if f.suffix in (".linear", ".hardy", ".log"):
                with open(f, "rb") as src, gzip.GzipFile(out / (f.name + ".gz"), "wb",
                                                         mtime=0) as dst:
                    shutil.copyfileobj(src, dst)
    (out / "plink2_command.txt").write_text(" ".join(PLINK2_COMMAND).format(out="glm") + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-plink2", action="store_true")
    args = parser.parse_args()
    write_inputs(HERE)
    if args.run_plink2:
        run_plink2(HERE)
