"""The run plan's missing-sequence synthesis: an empty image_<name> cell is synthesised, or the
run stops before any job with the subjects, channels and counts."""

from __future__ import annotations

import json

import pytest
from conftest import load_config

from voxseq import VoxseqError
from voxseq.bundle import FORMAT_VERSION
from voxseq.demo.qtl import qtl_dosage
from voxseq.plan import build_plan
from voxseq.plan.synthesis import synthesis_settings
from voxseq.plan.targets import final_outputs, summary_inputs


def _sheet(tmp_path, n=12, missing=(), flair=False, splits=None):
    """A user's imaging sheet: image and image_t2 (and image_flair) for ``n`` subjects,
    ``missing`` leaving their image_t2 empty; explicit splits (8 train, 2 val, 2 test)."""
    (tmp_path / "a.nii.gz").write_bytes(b"x")
    splits = splits or ["train"] * 8 + ["val"] * 2 + ["test"] * 2
    header = "subject\timage\timage_t2" + ("\timage_flair" if flair else "") + "\tlabel\tsplit\n"
    rows = []
    for i in range(n):
        t2 = "" if f"s{i:02d}" in missing else "a.nii.gz"
        extra = "\ta.nii.gz" if flair else ""
        rows.append(f"s{i:02d}\ta.nii.gz\t{t2}{extra}\ta.nii.gz\t{splits[i]}\n")
    (tmp_path / "s.tsv").write_text(header + "".join(rows))
    return {"demo": {"enabled": False}, "samples": str(tmp_path / "s.tsv"),
            "genomics": {"enabled": False}, "imaging": {"classify": {"enabled": False}}}


def test_a_missing_channel_plans_training_and_completed_stores(tmp_path):
    plan = build_plan(load_config(_sheet(tmp_path, missing=("s01", "s08"))), tmp_path)
    syn, seg = plan.task("synthesis"), plan.task("segmentation")
    assert syn.enabled and syn.train and syn.channels == ("t2",)
    assert dict(plan.missing_channels) == {"s01": ("t2",), "s08": ("t2",)}
    # segmentation and synthesis train on complete subjects; the others read completed stores
    assert "s01" not in seg.fit_subjects and "s08" not in seg.fit_subjects
    assert set(syn.fit_subjects) == set(seg.fit_subjects)
    assert plan.store("s01") == "results/demo/imaging/synthesis/stores/s01.zarr"
    assert plan.store("s02") == "results/demo/imaging/normalise/s02.zarr"
    assert plan.present_channels("s01") == {"columns": [], "channels": ["image"]}
    assert plan.present_channels("s02") == {"columns": ["image_t2"], "channels": ["image", "t2"]}
    settings = synthesis_settings(plan)
    assert settings["scored"] == ["s10", "s11"] and settings["dice"] == ["s10", "s11"]
    assert settings["cfg"]["lesion_labels"] == [2]
    outputs = final_outputs(plan)
    assert "results/demo/imaging/synthesis/s01_t2_synth.nii.gz" in outputs
    assert summary_inputs(plan)["synthesis"] == "results/demo/imaging/synthesis/metrics.json"
    assert json.loads(json.dumps(plan.to_dict()))["missing_channels"] == {
        "s01": ["t2"], "s08": ["t2"]}


def test_synthesis_off_refuses_the_sheet_naming_subjects_and_channels(tmp_path):
    cfg = load_config(_sheet(tmp_path, missing=("s01", "s08")),
                      {"imaging": {"synthesis": {"enabled": False}}})
    with pytest.raises(VoxseqError, match=r"2 imaging subject\(s\) miss an image: s01 \(t2\), "
                                          r"s08 \(t2\).*imaging.synthesis.enabled false"):
        build_plan(cfg, tmp_path)
    # a complete sheet plans no synthesis either way
    plan = build_plan(load_config(_sheet(tmp_path), {"imaging": {"synthesis": {"enabled": False}}}),
                      tmp_path)
    assert not plan.task("synthesis").enabled and not plan.missing_channels


def test_a_channel_missing_too_often_or_too_few_complete_training_subjects_is_refused(tmp_path):
    many = [f"s{i:02d}" for i in range(7)]
    with pytest.raises(VoxseqError, match=r"channel t2: missing for 7 of 12 subjects \(58%\)"):
        build_plan(load_config(_sheet(tmp_path, missing=many)), tmp_path)
    with pytest.raises(VoxseqError, match="4 complete training subjects .* fewer than synthesis "
                                          "min_train 5"):
        build_plan(load_config(_sheet(tmp_path, missing=many[:4]),
                               {"imaging": {"synthesis": {"min_train": 5}}}), tmp_path)


def test_a_channel_missing_for_everyone_is_refused(tmp_path):
    everyone = [f"s{i:02d}" for i in range(12)]
    with pytest.raises(VoxseqError, match=r"missing for 12 of 12 subjects \(100%\).*0 complete "
                                          "training subjects"):
        build_plan(load_config(_sheet(tmp_path, missing=everyone)), tmp_path)


def _synthesis_bundle(folder, inputs, output, channels):
    folder.mkdir()
    pre = {"task": "synthesis", "channels": channels, "input_channels": inputs,
           "output_channel": output, "normalisation": "zscore", "patch_size": [16, 16, 16],
           "infer": {}, "copy_from": inputs[0]}
    (folder / "bundle.json").write_text(json.dumps({
        "format_version": FORMAT_VERSION, "modality": "synthesis", "task": "synthesis",
        "cohort": "old", "preprocessing": pre, "metrics": {"kept": "gan"}}))
    return str(folder)


def test_an_applied_bundle_fills_the_gap_without_training_or_is_refused(tmp_path):
    good = _synthesis_bundle(tmp_path / "good", ["image"], "t2", ["image", "t2"])
    plan = build_plan(load_config(_sheet(tmp_path, missing=("s01",)),
                                  {"models": {"imaging_synthesis": good}}), tmp_path)
    syn = plan.task("synthesis")
    assert syn.apply and not syn.train and syn.bundle == good
    other = _synthesis_bundle(tmp_path / "other", ["t1"], "flair", ["t1", "flair"])
    with pytest.raises(VoxseqError, match=r"reads channels \['t1'\] and synthesises 'flair'; "
                                          r"this cohort has channels \['image', 't2'\]"):
        build_plan(load_config(_sheet(tmp_path, missing=("s01",)),
                               {"models": {"imaging_synthesis": other}}), tmp_path)


def test_two_missing_channels_are_refused(tmp_path):
    cfg = _sheet(tmp_path, missing=("s01",), flair=True)
    text = (tmp_path / "s.tsv").read_text().replace("s02\ta.nii.gz\ta.nii.gz\ta.nii.gz",
                                                    "s02\ta.nii.gz\ta.nii.gz\t")
    (tmp_path / "s.tsv").write_text(text)
    with pytest.raises(VoxseqError, match=r"channels \['flair', 't2'\] are each missing"):
        build_plan(load_config(cfg), tmp_path)


def test_the_demo_misses_t2_for_non_test_subjects_and_has_a_lesion_free_test_subject(tmp_path):
    plan = build_plan(load_config(), tmp_path)
    missing, free = plan.demo_gaps
    assert plan.channels == ("image", "t2") and len(missing) == 4  # about one in six of 24
    assert all(plan.split[s] != "test" for s in missing)
    assert dict(plan.missing_channels) == {s: ("t2",) for s in missing}
    assert len(free) == 1 and plan.split[free[0]] == "test" and free[0] not in missing
    # a non-carrier of the planted lesion QTL: a lesion-free carrier would contradict it
    assert qtl_dosage(plan.config["seed"], plan.demo_subjects.index(free[0])) == 0
    assert free[0] in synthesis_settings(plan)["scored"]
