"""The subject model's reported numbers (summary.json, the run's last lines, the results page)
and the demo's planted outcome."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from voxseq.demo.outcome import (
    OUTCOME_CLASS_EFFECT,
    OUTCOME_THRESHOLD,
    outcome_score,
    plant_outcomes,
)
from voxseq.report import headline_numbers
from voxseq.summary import headline, subject_model_block, write_summary

METRICS = {
    "classes": ["no", "yes"], "fusion": "late", "target": "outcome",
    "counts": {"both": 24, "imaging": 0, "genomics": 0},
    "both": {m: {"n": 24, "auroc": a, "balanced_accuracy": 0.7}
             for m, a in (("imaging", 0.75), ("genomics", 0.8), ("late", 0.95),
                          ("intermediate", 0.9))},
    "comparison": {"late": {"versus": "genomics", "difference": 0.15, "low": 0.04,
                            "high": 0.27, "n_bootstrap": 1000, "n": 24},
                   "intermediate": {"versus": "genomics", "difference": 0.1, "low": -0.02,
                                    "high": 0.22, "n_bootstrap": 1000, "n": 24}},
}


def test_summary_headline_and_results_page_carry_the_subject_model(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(METRICS))
    block = subject_model_block(tmp_path / "m.json")
    assert block["oof_auroc"] == {"imaging": 0.75, "genomics": 0.8, "late": 0.95,
                                  "intermediate": 0.9}
    assert block["fusion_gain"] == {"versus": "genomics", "difference": 0.15,
                                    "ci95": [0.04, 0.27], "n": 24, "n_bootstrap": 1000}
    assert block["comparisons"]["intermediate"]["ci95"] == [-0.02, 0.22]
    (tmp_path / "bench").mkdir()
    summary = write_summary(tmp_path / "summary.json", "demo",
                            {"subject_model": str(tmp_path / "m.json")}, str(tmp_path / "bench"))
    assert summary["subject_model"]["n_both"] == 24
    lines = headline(tmp_path / "summary.json")
    line = next(x for x in lines if x.startswith("  subject model"))
    assert line == ("  subject model (outcome): out-of-fold AUROC imaging 0.750, genomics 0.800, "
                    "late 0.950, intermediate 0.900 (24 subjects); late - genomics +0.150 "
                    "[95% +0.040, +0.270]")
    cards = {k: (v, d) for k, v, d in headline_numbers(summary)}
    value, detail = cards["Subject model (outcome): fused AUROC gain"]
    assert value == "+0.150" and "paired 95 % CI +0.040 to +0.270" in detail


def test_the_planted_outcome_needs_both_signals():
    sigma = 0.35
    # a heavy burden with an average motif weight, a light one with a high weight: yes
    assert outcome_score("high_burden", 1.0, sigma) == pytest.approx(OUTCOME_CLASS_EFFECT)
    assert outcome_score("low_burden", math.exp(0.6), sigma) > OUTCOME_THRESHOLD
    rng = np.random.default_rng(0)
    classes = {f"s{i}": "high_burden" if i % 2 else "low_burden" for i in range(400)}
    weights = {s: float(rng.lognormal(0.0, sigma)) for s in classes}
    rows = plant_outcomes({**classes, "qc1": ""}, weights, sigma)
    assert len(rows) == 400  # a subject without a class gets none
    y = np.array([r["outcome"] == "yes" for r in rows])
    c = np.array([r["class"] == "high_burden" for r in rows], float)
    w = np.log([r["motif_weight"] for r in rows])
    from sklearn.metrics import roc_auc_score

    # each signal alone ranks the outcome only partly; both together separate it
    assert 0.65 < roc_auc_score(y, c) < 0.9 and 0.65 < roc_auc_score(y, w) < 0.95
    assert roc_auc_score(y, 2 * OUTCOME_CLASS_EFFECT * c + w / sigma) == 1.0


def test_the_demo_writes_the_outcome_column_and_its_truth(tmp_path):
    from voxseq.demo.cohort import make_demo_cohort
    from voxseq.io.atomic import read_tsv
    from voxseq.io.sheet import read_sheet

    sheet = make_demo_cohort(tmp_path, ["d1", "d2", "d3"], 5, small=True, outliers=True)
    rows = {r["subject"]: r for r in read_sheet(sheet)}
    truth = {r["subject"]: r for r in read_tsv(tmp_path / "outcome_truth.tsv")}
    assert set(truth) == {"d1", "d2", "d3"}
    for s, t in truth.items():
        assert rows[s]["outcome"] == t["outcome"] and rows[s]["class"] == t["class"]
        score = outcome_score(t["class"], float(t["motif_weight"]), 0.35)
        assert t["outcome"] == ("yes" if score > OUTCOME_THRESHOLD else "no")
    assert rows["d4"]["outcome"] == "" == rows["d5"]["outcome"]  # the QC outliers
