"""Subject classification (imaging.classify): folds, the tiny demo end to end, the bundle applied
to a new cohort, and the checks that stop a run before any job starts."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import REPO, load_config, run_snakemake

from voxseq import VoxseqError
from voxseq.bundle import load_bundle
from voxseq.imaging.classify import (
    augment_sample,
    classifier_input,
    fold_roles,
    stratified_folds,
)
from voxseq.io.atomic import read_tsv
from voxseq.plan import build_plan

CFG = ["--configfile", str(REPO / "tests/config/tiny_classify.yaml")]


def _planned_rules(out: str) -> list[str]:
    stats = out.split("Job stats:")[1].split("total")[0]
    return [line.split()[0] for line in stats.splitlines()[3:] if line.strip()]


# ---- folds and inputs ----
def test_folds_are_stratified_and_deterministic():
    classes = {f"s{i:02d}": ("a" if i % 3 else "b") for i in range(23)}  # 15 a, 8 b
    folds = stratified_folds(classes, 5, seed=4)
    assert folds == stratified_folds(dict(reversed(list(classes.items()))), 5, seed=4)
    assert folds != stratified_folds(classes, 5, seed=5)
    assert sorted(folds) == sorted(classes)
    sizes = Counter(folds.values())
    assert max(sizes.values()) - min(sizes.values()) <= 1
    for name in ("a", "b"):
        per_fold = Counter(folds[s] for s, c in classes.items() if c == name)
        assert set(per_fold) == set(range(5))
        assert max(per_fold.values()) - min(per_fold.values()) <= 1
    seen = []
    for k in range(5):
        roles = fold_roles(folds, k, 5)
        assert not set(roles["holdout"]) & set(roles["val"])
        assert not set(roles["train"]) & (set(roles["holdout"]) | set(roles["val"]))
        assert sorted(roles["train"] + roles["val"] + roles["holdout"]) == sorted(classes)
        seen += roles["holdout"]
    assert sorted(seen) == sorted(classes)  # every subject held out exactly once


def test_augmentation_is_deterministic_and_keeps_shape():
    x = torch.randn(1, 16, 14, 12)
    aug = {
        "flip": [True, True, False],
        "rotate_deg": 10,
        "scale": [0.9, 1.1],
        "intensity_scale": [0.9, 1.1],
        "intensity_shift": [-0.1, 0.1],
    }
    a = augment_sample(x, aug, torch.Generator().manual_seed(3))
    b = augment_sample(x, aug, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)
    # no augmentation configured: the input unchanged
    assert torch.equal(augment_sample(x, {}, torch.Generator().manual_seed(3)), x)
    two_d = augment_sample(torch.randn(2, 16, 14), aug, torch.Generator().manual_seed(1))
    assert two_d.shape == (2, 16, 14)



def test_train_fold_uses_the_classify_augment_block(tmp_path, monkeypatch):
    """imaging.classify.augment (a sibling of train, as in the config and schema) reaches the
    training task; it used to be looked up under train and silently ignored."""
    import voxseq.imaging.classify.train as classify

    subjects = [f"s{i}" for i in range(6)]
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(
        "subject\tsplit\tclass\n"
        + "".join(f"{s}\ttrain\t{'a' if i % 2 else 'b'}\n" for i, s in enumerate(subjects))
    )
    monkeypatch.setattr(
        classify, "stack_inputs", lambda ss, *a, **k: np.zeros((len(ss), 1, 8, 8, 8), np.float32)
    )
    monkeypatch.setattr(classify, "content_digest", lambda store: store)
    monkeypatch.setattr(classify, "common_channels", lambda stores: ["image"])
    seen = {}

    class Stop(Exception):
        pass

    def task(*args):
        seen["augment"] = args[7]  # (x, y, x_val, y_val, n_classes, batch, seed, augment, ...)
        raise Stop

    monkeypatch.setattr(classify, "ClassificationTask", task)
    augment = {"flip": [True, True, True], "rotate_deg": 15, "mixup": 0.0}
    cfg = {
        "input_size": [8, 8, 8],
        "crop": "none",
        "with_segmentation": False,
        "folds": 3,
        "model": {"arch": "resnet10", "base_channels": 4, "dropout": 0.0},
        "train": {"epochs": 1, "batch_size": 2},
        "augment": augment,
    }
    with pytest.raises(Stop):
        classify.train_fold(
            0, str(sheet), {s: s for s in subjects}, None, cfg, ["bg"], 1, str(tmp_path)
        )
    assert seen["augment"] == augment


# ---- the tiny demo end to end ----
@pytest.fixture(scope="module")
def classify_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("classify")
    run_snakemake(work, *CFG, "--cores", "2")
    return work


def test_tiny_classifier_end_to_end(classify_run):
    res = classify_run / "results/tinyc"
    sheet = {r["subject"]: r for r in read_tsv(res / "sheet.tsv")}
    pred = read_tsv(res / "imaging/classify/predictions.tsv")
    assert sorted(r["subject"] for r in pred) == sorted(sheet)
    classes = sorted({r["class"] for r in sheet.values()})
    assert classes == ["high_burden", "low_burden"]
    for r in pred:
        p = [float(r[f"prob_{c}"]) for c in classes]
        assert abs(sum(p) - 1) < 1e-4
        assert r["predicted"] == classes[int(np.argmax(p))]
        assert r["true"] == sheet[r["subject"]]["class"]
        # cross-validated subjects get an out-of-fold prediction, the test split the ensemble's
        cv = sheet[r["subject"]]["split"] in ("train", "val")
        assert (r["fold"] != "ensemble") == cv
    metrics = json.loads((res / "imaging/classify/metrics.json").read_text())
    n_cv = sum(r["split"] in ("train", "val") for r in sheet.values())
    assert metrics["oof"]["n"] == n_cv
    assert metrics["test"]["n"] == len(sheet) - n_cv
    assert len(metrics["folds"]) == 3
    assert np.array(metrics["oof"]["confusion_matrix"]).sum() == n_cv
    summary = json.loads((res / "summary.json").read_text())["imaging"]
    assert summary["classify_oof_auroc"] == metrics["oof"]["auroc"]
    assert summary["classify_test_auroc"] == metrics["test"]["auroc"]
    assert summary["classify_balanced_accuracy"] == metrics["oof"]["balanced_accuracy"]
    table = {r["subject"]: r for r in read_tsv(res / "imaging/cohort.tsv")}
    for r in pred:
        assert table[r["subject"]]["predicted_class"] == r["predicted"]
        assert float(table[r["subject"]]["class_probability"]) == float(r[f"prob_{r['predicted']}"])
    for name in ("roc", "confusion", "grid"):
        assert (res / f"imaging/report/classify_{name}.png").stat().st_size > 5000
    # the bundle: the three fold models as one ensemble, its preprocessing recorded
    bundle = classify_run / "models/tinyc/imaging_classify"
    model, meta = load_bundle(bundle, "imaging")
    assert meta["task"] == "classify"
    assert meta["architecture"]["arguments"]["n_members"] == 3
    pre = meta["preprocessing"]
    assert pre["classes"] == classes and pre["channels"] == ["image"]
    assert pre["input_size"] == [16, 16, 12]
    # the ensemble reproduces the test split's predictions from the stored volume
    test = [r for r in pred if r["fold"] == "ensemble"][0]
    x = classifier_input(str(res / f"imaging/normalise/{test['subject']}.zarr"), [16, 16, 12])
    with torch.no_grad():
        proba = model(torch.from_numpy(x)[None])[0].numpy()
    expected = [float(test[f"prob_{c}"]) for c in classes]
    np.testing.assert_allclose(proba, expected, atol=1e-5)
    # a rerun does nothing
    again = run_snakemake(classify_run, *CFG, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_classifier_bundle_applied_to_a_new_cohort(classify_run):
    new = [str(REPO / "tests/config/tiny_classify_new.yaml")]
    dry = run_snakemake(classify_run, *CFG, *new, "-n")
    rules = _planned_rules(dry.stdout + dry.stderr)
    assert "imaging_classify" in rules
    assert not [r for r in rules if "train" in r or r == "imaging_classify_bundle"]
    run_snakemake(classify_run, *CFG, *new, "--cores", "2")
    res = classify_run / "results/tinycnew"
    pred = read_tsv(res / "imaging/classify/predictions.tsv")
    assert len(pred) == 5 and {r["fold"] for r in pred} == {"ensemble"}
    metrics = json.loads((res / "imaging/classify/metrics.json").read_text())
    assert metrics["oof"] is None and metrics["test"]["n"] == 5
    summary = json.loads((res / "summary.json").read_text())["imaging"]
    assert summary["classify_test_auroc"] == metrics["test"]["auroc"]


# ---- checks before any job ----
def _user_cohort(tmp_path, classes):
    """A user's imaging cohort (small demo volumes) with the given class column."""
    from voxseq.demo.cohort import make_demo_cohort

    subjects = [f"u{i:02d}" for i in range(len(classes))]
    sheet = make_demo_cohort(tmp_path / "in", subjects, seed=5, genomics=False, small=True)
    rows = list(csv.DictReader(open(sheet), delimiter="\t"))
    for row, c in zip(rows, classes, strict=True):
        row["class"] = c
    with open(sheet, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    return sheet


def _user_args(sheet, **models):
    """The tiny classifier config on a user's sheet (and applied bundles)."""
    extra = {"samples": str(sheet), "cohort": "user", "demo": {"enabled": False}}
    if models:
        extra["models"] = {k: str(v) for k, v in models.items()}
    path = sheet.parent / "user.yaml"
    path.write_text(json.dumps(extra))  # JSON is YAML
    return [*CFG, str(path)]


def _refusal(tmp_path, args) -> str:
    """The run plan's refusal (built while the workflow parses, before any job)."""
    with pytest.raises(VoxseqError) as err:
        build_plan(load_config(*args[1:]), tmp_path)
    return str(err.value)


def test_a_single_class_stops_the_run_before_any_job(tmp_path):
    sheet = _user_cohort(tmp_path, ["only"] * 8)
    out = _refusal(tmp_path, _user_args(sheet))
    assert "single class" in out and str(sheet) in out and "only" in out


def test_too_few_subjects_of_a_class_for_the_folds(tmp_path):
    sheet = _user_cohort(tmp_path, ["a"] * 10 + ["b"])
    out = _refusal(tmp_path, _user_args(sheet))
    assert "imaging.classify.folds" in out and "'b'" in out


def test_a_class_unknown_to_the_applied_bundle_is_refused(classify_run, tmp_path):
    sheet = _user_cohort(tmp_path, ["high_burden", "medium_burden", "low_burden"])
    bundle = classify_run / "models/tinyc/imaging_classify"
    args = _user_args(sheet, imaging=classify_run / "models/tinyc/imaging", imaging_classify=bundle)
    out = _refusal(tmp_path, args)
    assert "medium_burden" in out and str(bundle) in out and "high_burden" in out
