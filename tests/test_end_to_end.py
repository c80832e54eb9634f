"""The whole imaging DAG on the tiny demo config, every output checked."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import zarr
from conftest import TINY_RUN, run_snakemake

from voxseq.bundle import load_bundle
from voxseq.io.atomic import read_tsv


def test_every_subject_segmented_on_its_original_grid(tiny_run):
    res = tiny_run / "results/tiny"
    sheet = read_tsv(res / "sheet.tsv")
    assert len(sheet) == 6
    assert {r["split"] for r in sheet} == {"train", "val", "test"}
    orientations = set()
    for row in sheet:
        sid = row["subject"]
        src = nib.load(row["image"])
        seg = nib.load(res / f"imaging/infer/{sid}_seg.nii.gz")
        assert seg.shape == src.shape, sid
        np.testing.assert_array_equal(seg.affine, src.affine)
        assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1, 2}
        orientations.add("".join(nib.aff2axcodes(src.affine)))
        meta = json.loads((res / f"imaging/ingest/{sid}.json").read_text())
        assert meta["shape"] == list(src.shape)
        assert meta["orientation"] == "".join(nib.aff2axcodes(src.affine))
        store = zarr.open_group(str(res / f"imaging/normalise/{sid}.zarr"), mode="r")
        assert store.attrs["ome"]["multiscales"][0]["axes"][0]["name"] == "x"
        assert store["0"].dtype == np.float32
        assert store["labels/label/0"].shape == store["0"].shape
        result = json.loads((res / f"imaging/infer/{sid}.json").read_text())
        assert set(result["volumes_mm3"]) == {"organ", "lesion"}
        assert result["dice"] is not None
    assert len(orientations) >= 2  # the demo mixes orientations


def test_the_run_plan_is_written(tiny_run):
    """plan.json says what the run did: the tasks, and the splits cohort_sheet wrote."""
    res = tiny_run / "results/tiny"
    plan = json.loads((res / "plan.json").read_text())
    assert plan["cohort"] == "tiny" and plan["modalities"] == ["imaging"]
    assert plan["tasks"]["segmentation"]["action"] == "train"
    assert plan["tasks"]["sequence_model"]["action"] == "off"
    assert plan["splits"] == {r["subject"]: r["split"] for r in read_tsv(res / "sheet.tsv")}


def test_cohort_table_summary_and_report_figures(tiny_run):
    res = tiny_run / "results/tiny"
    table = read_tsv(res / "imaging/cohort.tsv")
    assert len(table) == 6
    assert {"dice_organ", "dice_lesion", "volume_organ_mm3", "volume_lesion_mm3"} <= set(table[0])
    summary = json.loads((res / "summary.json").read_text())
    assert summary["imaging"]["n_subjects"] == 6
    assert 0.0 <= summary["imaging"]["test_dice_mean"] <= 1.0
    for stage in ("imaging.ingest", "imaging.normalise", "imaging.train", "imaging.infer"):
        assert summary["stage_seconds"][stage] > 0
    for png in ("training_curves.png", "dice_boxplot.png"):
        assert (res / "imaging/report" / png).read_bytes()[:4] == b"\x89PNG"
    overlays = list((res / "imaging/report/overlays").glob("*.png"))
    assert len(overlays) == 2
    landing = (res / "report/landing.html").read_text()
    assert "Results: cohort tiny" in landing and f"{summary['imaging']['n_subjects']}" in landing
    assert (res / "report/results.html").stat().st_size > 1000


def test_qc_with_too_few_training_subjects_scores_nothing(tiny_run):
    """The QC stage runs on every subject; 3 training subjects are too few for a robust score."""
    res = tiny_run / "results/tiny"
    rows = read_tsv(res / "imaging/qc/qc.tsv")
    assert len(rows) == 6 and all(r["flagged"] == "false" and r["score"] == "" for r in rows)
    assert all("at least 5 are needed" in r["reason"] for r in rows)
    for row in read_tsv(res / "sheet.tsv"):
        err = nib.load(res / f"imaging/qc/{row['subject']}_qc_error.nii.gz")
        assert err.shape == nib.load(row["image"]).shape
    summary = json.loads((res / "summary.json").read_text())
    assert summary["imaging"]["qc_flagged"] == []
    _, meta = load_bundle(tiny_run / "models/tiny/imaging_qc", "imaging")
    assert meta["task"] == "qc" and len(meta["reference"]["errors"]) < 5


def test_training_outputs_and_bundle(tiny_run):
    metrics = read_tsv(tiny_run / "results/tiny/imaging/train/metrics.tsv")
    assert [int(r["epoch"]) for r in metrics] == [0, 1]
    assert {"train_loss", "val_loss", "score", "val_dice_1", "val_dice_2"} <= set(metrics[0])
    assert (tiny_run / "results/tiny/imaging/train/checkpoints/last.pt").exists()
    model, meta = load_bundle(tiny_run / "models/tiny/imaging", "imaging")
    assert meta["preprocessing"]["target_spacing"] == [2.0, 2.0, 3.0]
    assert meta["preprocessing"]["labels"] == ["background", "organ", "lesion"]
    assert meta["provenance"]["sample_sheet_digest"]
    log = (tiny_run / "results/tiny/logs/imaging/train.log").read_text()
    assert "epoch 2/2" in log


def test_rerun_has_nothing_to_do_and_report_builds(tiny_run):
    res = run_snakemake(tiny_run, "--configfile", *TINY_RUN, "-n")
    assert "Nothing to be done" in res.stdout + res.stderr
    run_snakemake(tiny_run, "--configfile", *TINY_RUN, "--report", str(tiny_run / "report.html"))
    assert (tiny_run / "report.html").stat().st_size > 10000
