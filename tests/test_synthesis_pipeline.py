"""A subject missing a channel, end to end at tiny scale: ingested and normalised with what it
has, completed with the synthesised channel, segmented and tabled like every subject; the
synthesis scored; the same config on the same machine gives the same synthesised volumes."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from conftest import REPO, run_snakemake

from voxseq.io.atomic import read_tsv

CONFIGS = [str(REPO / "tests/config/tiny.yaml"), str(REPO / "tests/config/tiny_synthesis.yaml")]
RES = "results/tinysyn"


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("synth")
    res = run_snakemake(work, "--configfile", *CONFIGS, "--cores", "2")
    return work, res.stdout + res.stderr


def _nifti(work, subject):
    return work / RES / f"imaging/synthesis/{subject}_t2_synth.nii.gz"


def test_a_subject_missing_a_channel_runs_end_to_end(synth_run):
    work, out = synth_run
    plan = json.loads((work / RES / "plan.json").read_text())
    missing = sorted(plan["missing_channels"])
    assert len(missing) == 2 and plan["tasks"]["synthesis"]["action"] == "train"
    sheet = {r["subject"]: r for r in read_tsv(work / RES / "demo_input/samples.tsv")}
    table = {r["subject"]: r for r in read_tsv(work / RES / "imaging/cohort.tsv")}
    assert len(table) == len(sheet)  # every subject segmented
    for s in sheet:
        assert table[s]["synthetic_channels"] == ("t2" if s in missing else "")
    for s in missing:
        assert sheet[s]["image_t2"] == ""
        img = nib.load(work / RES / "demo_input" / sheet[s]["image"])
        synth = nib.load(_nifti(work, s))
        assert synth.shape == img.shape and np.allclose(synth.affine, img.affine)
        assert b"SYNTHETIC t2" in synth.header["descrip"].tobytes()
        assert np.isfinite(synth.get_fdata()).all()
        store = json.loads((work / RES / f"imaging/synthesis/stores/{s}.json").read_text())
        assert store["synthetic_channels"] == ["t2"]
    bundle = json.loads((work / "models/tinysyn/imaging_synthesis/bundle.json").read_text())
    pre = bundle["preprocessing"]
    assert pre["input_channels"] == ["image"] and pre["output_channel"] == "t2"
    assert (work / "models/tinysyn/imaging_synthesis/README.md").is_file()
    rows = read_tsv(work / RES / "imaging/synthesis/metrics.tsv")
    assert {r["method"] for r in rows} == {"gan", "l1", "copy", "zero"}
    summary = json.loads((work / RES / "summary.json").read_text())["imaging"]
    assert set(summary["synthesis_ssim"]) == {"gan", "l1", "copy", "zero"}
    assert summary["synthesis_kept"] in ("gan", "l1") and summary["n_synthetic"] == 2
    assert set(summary["synthesis_dice_drop"]) == {"gan", "l1", "copy", "zero"}
    assert summary["synthesis_n_lesion_free"] == 1  # the planted check's subject
    assert "synthesis: t2 for 2 subjects" in out  # the terminal's last lines


@pytest.mark.slow  # the library's test_same_seed_gives_identical_synthesis asserts it fast
def test_same_config_same_machine_identical_synthesis(synth_run):
    work, _ = synth_run
    missing = sorted(json.loads((work / RES / "plan.json").read_text())["missing_channels"])
    before = {s: np.asarray(nib.load(_nifti(work, s)).dataobj) for s in missing}
    weights = (work / "models/tinysyn/imaging_synthesis/weights.safetensors").read_bytes()
    shutil.rmtree(work / RES / "imaging/synthesis/checkpoints")  # train afresh, not resume
    run_snakemake(work, "--configfile", *CONFIGS, "--cores", "2", "--forcerun",
                  "synthesis_train", *(str(_nifti(work, s).relative_to(work)) for s in missing))
    assert (work / "models/tinysyn/imaging_synthesis/weights.safetensors").read_bytes() == weights
    for s in missing:
        assert np.array_equal(np.asarray(nib.load(_nifti(work, s)).dataobj), before[s])
