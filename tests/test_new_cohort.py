"""Applying a trained bundle to a new cohort: no training, provenance-driven reruns."""

from __future__ import annotations

import json

import torch
from conftest import REPO, TINY_RUN, copy_run, run_snakemake

from voxseq.bundle import bundle_digest, load_bundle, write_bundle
from voxseq.io.atomic import read_tsv

CFGS = ["--configfile", *TINY_RUN, str(REPO / "tests/config/tiny_new.yaml")]


def _planned_rules(out: str) -> list[str]:
    stats = out.split("Job stats:")[1].split("total")[0]
    return [line.split()[0] for line in stats.splitlines()[3:] if line.strip()]


def test_new_cohort_uses_the_bundle_without_training(tiny_run, tmp_path):
    tiny_run = copy_run(tiny_run, tmp_path / "run")  # this test replaces the run's bundle
    dry = run_snakemake(tiny_run, *CFGS, "-n")
    rules = _planned_rules(dry.stdout + dry.stderr)
    assert "imaging_infer" in rules
    assert not [r for r in rules if "train" in r or r == "imaging_stats"]
    run_snakemake(tiny_run, *CFGS, "--cores", "2")
    res = tiny_run / "results/tinynew"
    table = read_tsv(res / "imaging/cohort.tsv")
    assert len(table) == 4
    assert sorted(r["labelled"] for r in table) == ["no", "no", "yes", "yes"]
    assert all(float(r["volume_organ_mm3"]) > 0 for r in table)  # unlabelled ones too
    # every model comes from a bundle and the config names no splits: all subjects are test
    assert {r["split"] for r in read_tsv(res / "sheet.tsv")} == {"test"}
    summary = json.loads((res / "summary.json").read_text())
    assert summary["imaging"]["n_test_labelled"] == 2
    digest = bundle_digest(tiny_run / "models/tiny/imaging")
    assert summary["imaging"]["bundle_digests"] == [digest]
    plan = json.loads((res / "plan.json").read_text())  # what the run said it would do
    assert plan["tasks"]["segmentation"]["action"] == "apply"
    assert plan["tasks"]["segmentation"]["bundle"] == "models/tiny/imaging"
    assert not [t for t, p in plan["tasks"].items() if p["action"] == "train"]
    # the QC bundle scores the new cohort's subjects too, without training
    assert len(read_tsv(res / "imaging/qc/qc.tsv")) == 4
    # the training cohort's results are untouched
    assert len(read_tsv(tiny_run / "results/tiny/imaging/cohort.tsv")) == 6

    # same bundle again: nothing to do
    again = run_snakemake(tiny_run, *CFGS, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr

    # a replaced bundle (same preprocessing, other weights) reruns inference, nothing upstream
    bundle = tiny_run / "models/tiny/imaging"
    model, meta = load_bundle(bundle, "imaging")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)
    write_bundle(bundle, model, "imaging", "unet3d", meta["architecture"]["arguments"],
                 meta["preprocessing"], meta["metrics"], meta["provenance"])
    dry = run_snakemake(tiny_run, *CFGS, "-n")
    rules = _planned_rules(dry.stdout + dry.stderr)
    assert "imaging_infer" in rules
    assert not {"imaging_ingest", "imaging_normalise", "demo_cohort"} & set(rules)
