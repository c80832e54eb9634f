"""The QC stage through Snakemake on the tiny cohort with planted outliers, at two demo seeds."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, run_snakemake

from voxseq.io.atomic import read_tsv

CFG = str(REPO / "tests/config/tiny_qc.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, pytest.param(11, marks=pytest.mark.xfail(
    reason="measured: on the tiny cohort at seed 11 the motion-ghosted subject scores below "
           "3.5 (7 training subjects, 16-voxel QC input); the full demo flags it", strict=True))])
def test_planted_outliers_are_flagged(tmp_path, seed):
    """Both imaging outliers and the failed library flagged, at most one clean subject each."""
    run_snakemake(tmp_path, "--configfile", CFG, "--config", f"seed={seed}", "--cores", "2")
    res = tmp_path / "results/tinyqc"
    truth = read_tsv(res / "demo_input/qc_truth.tsv")
    summary = json.loads((res / "summary.json").read_text())
    for modality in ("imaging", "genomics"):
        rows = read_tsv(res / f"{modality}/qc/qc.tsv")
        flagged = {r["subject"] for r in rows if r["flagged"] == "true"}
        planted = {t["subject"] for t in truth if t["modality"] == modality}
        must = {t["subject"] for t in truth if t["modality"] == modality
                and t["kind"] != "duplication"}  # a 6 kb gain on the tiny genome: regions only
        assert must <= flagged, (modality, rows)
        assert len(flagged - planted) <= 1, (modality, rows)
        assert sorted(summary[modality]["qc_flagged"]) == sorted(flagged)
        # training subjects are scored by the fold models that did not see them
        if modality == "genomics":
            assert all("scored out of fold" in r["reason"] for r in rows if r["split"] == "train")
