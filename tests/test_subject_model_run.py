"""The subject model's rule entry points: train on a cohort from files, apply to a new one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_genomics_qc import poisson_cohort

from voxseq import VoxseqError
from voxseq.io.atomic import read_tsv, write_tsv
from voxseq.subject_model.features import FeatureTable
from voxseq.subject_model.models import write_embeddings
from voxseq.subject_model.run import apply_subject_model, genomics_features, train_subject_model


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cohort(tmp_path, n: int = 80, folds: int = 4):
    """A sheet (``class`` and a second target ``outcome``), the classifier's out-of-fold tables
    (its folds: subject i in fold i % folds), per-fold embeddings and genomics features."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    subjects = [f"p{i:03d}" for i in range(n)]
    cls = np.where(a + 0.5 * rng.normal(size=n) > 0, "high", "low")
    outcome = np.where(a + b + 0.5 * rng.normal(size=n) > 0, "yes", "no")
    rows = [{"subject": s, "class": c, "outcome": o, "split": "train"}
            for s, c, o in zip(subjects, cls, outcome, strict=True)]
    write_tsv(tmp_path / "samples.tsv", rows, ["subject", "class", "outcome", "split"])
    p = 1 / (1 + np.exp(-2 * a))
    oof = []
    for k in range(folds):
        table = tmp_path / f"oof{k}.tsv"
        write_tsv(table, [{"subject": s, "fold": k, "true": cls[i], "prob_high": p[i],
                           "prob_low": 1 - p[i]} for i, s in enumerate(subjects) if i % folds == k],
                  ["subject", "fold", "true", "prob_high", "prob_low"])
        oof.append(str(table))
    emb = []
    for k in range(folds):
        path = tmp_path / f"emb{k}.tsv"
        write_embeddings(path, FeatureTable(subjects, ["emb_0", "emb_1"],
                                            np.stack([a, rng.normal(size=n)], 1)))
        emb.append(str(path))
    genomics = FeatureTable(subjects[5:], ["coverage_x", "dosage_v1"],
                            np.stack([b[5:], rng.integers(0, 3, n - 5)], 1))
    return subjects, oof, emb, genomics


@pytest.mark.parametrize("target", ["class", "outcome"])
def test_train_writes_everything_and_the_bundle_applies(tmp_path, target):
    subjects, oof, emb, genomics = _cohort(tmp_path)
    out = {k: str(tmp_path / v) for k, v in (("predictions", "pred.tsv"), ("metrics", "m.json"),
                                            ("roc", "roc.png"), ("bundle", "bundle"))}
    metrics = train_subject_model(str(tmp_path / "samples.tsv"), ["high", "low"], oof, genomics,
                                  out, emb, target=target, folds=4, seed=1,
                                  cfg={"epochs": 60}, n_bootstrap=50)
    assert metrics["counts"] == {"both": 75, "imaging": 5, "genomics": 0}
    assert json.loads((tmp_path / "m.json").read_text())["target"] == target
    rows = {r["subject"]: r for r in read_tsv(out["predictions"])}
    assert len(rows) == 80 and rows["p000"]["source"] == "imaging"
    assert rows["p000"]["late_prob_" + rows["p000"]["true"]] == ""  # no genomics: no fusion
    assert all(int(rows[s]["fold"]) == i % 4 for i, s in enumerate(subjects))  # its folds
    # a "new cohort": the classifier ensemble's prediction table and the members' features
    write_tsv(tmp_path / "ens.tsv", [{"subject": s, "prob_high": 0.7, "prob_low": 0.3}
                                     for s in subjects[:10]], ["subject", "prob_high", "prob_low"])
    new = apply_subject_model(out["bundle"], str(tmp_path / "ens.tsv"), emb, genomics,
                              str(tmp_path / "new.tsv"))
    assert {r["source"] for r in new} == {"imaging", "both", "genomics"}
    assert len(read_tsv(tmp_path / "new.tsv")) == len(new)
    with pytest.raises(VoxseqError, match="penultimate features"):
        apply_subject_model(out["bundle"], str(tmp_path / "ens.tsv"), None, genomics,
                            str(tmp_path / "new2.tsv"))


def test_genomics_features_from_coverage_stores(tmp_path):
    stores = {s: str(p) for s, p in poisson_cohort(tmp_path, 4, {"c1": 3000}, 100).items()}
    table = genomics_features(stores, region_bin_size=1000,
                              dosages=(np.array([[0, 1], [1, 1], [2, 0], [0, 0]], float),
                                       list(stores), ["v1", "v2"]), variants=["v2"])
    assert table.subjects == list(stores)
    assert table.names == ["coverage_c1:0-1000", "coverage_c1:1000-2000",
                           "coverage_c1:2000-3000", "dosage_v2"]
    assert genomics_features({}) is None
