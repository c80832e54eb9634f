"""The subject stage end to end: a tiny demo with both modalities writes subjects.tsv and its
dictionary, the genotypes after QC, the association (tables, Manhattan and QQ plots), the
summary's genetics block and the results page's figures. Whether the planted QTL is recovered
is tested at the library level (test_demo_qtl.py): a one-epoch model on the tiny phantom does
not segment its small lesions."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, run_snakemake

from voxseq.io.atomic import read_tsv

CFG = str(REPO / "tests/config/tiny_genetics.yaml")
RULES = ("subject_table", "genetics_genotypes", "genetics_association")


def test_the_subject_stage_is_planned(tmp_path):
    """Fast: the dry run has one job of each subject-stage rule."""
    res = run_snakemake(tmp_path, "-n", "--configfile", CFG, "--config", "terminal=snakemake")
    stats = (res.stdout + res.stderr).split("Job stats:")[1].split("total")[0]
    counts = {p[0]: p[1] for line in stats.splitlines() if len(p := line.split()) == 2}
    assert all(counts.get(rule) == "1" for rule in RULES), counts


@pytest.mark.slow
def test_tiny_imaging_genetics_run(tmp_path):
    """About 3 minutes on 2 shared cores."""
    run_snakemake(tmp_path, "--configfile", CFG, "--cores", "2")
    res = tmp_path / "results/tinyig"
    table = read_tsv(res / "subjects.tsv")
    assert len(table) == 6
    assert {"age", "sex", "batch", "lesion_count", "volume_lesion_mm3", "reads_passing"} <= set(
        table[0])
    described = {r["column"] for r in read_tsv(res / "subjects.columns.tsv")}
    assert described == set(table[0])
    plan = json.loads((res / "plan.json").read_text())
    assert plan["genetics"]["enabled"] and plan["genetics"]["subjects"] == 6
    g = json.loads((res / "summary.json").read_text())["genetics"]
    assert g["subjects"] == 6 and g["genotype_qc"]["samples_pass"] == 6
    assert g["variants_tested"] == g["genotype_qc"]["variants_pass"] > 0
    truth = read_tsv(res / "demo_input/genomics/qtl_truth.tsv")[0]
    bim = (res / "genetics/genotypes.bim").read_text()
    assert f"\t{truth['id']}\t" in bim  # the planted QTL is genotyped and tested
    assert g["planted_qtl"]["id"] == truth["id"]
    for pheno in ("lesion_count", "volume_lesion_mm3"):
        entry = g["phenotypes"][pheno]
        assert 0 < entry["top_p"] <= 1 and entry["lambda_gc"] > 0
        glm = read_tsv(res / f"genetics/association/{pheno}.glm.linear")
        assert len(glm) == g["variants_tested"]
        for kind in ("manhattan", "qq"):
            png = res / f"genetics/association/{pheno}_{kind}.png"
            assert png.read_bytes()[:4] == b"\x89PNG"
    page = (res / "report/results.html").read_text()
    assert "Genetics: lesion_count, Manhattan plot" in page
