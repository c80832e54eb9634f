"""Subject-classification metrics against scikit-learn, and their report figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from voxseq.figures import pyplot
from voxseq.imaging import plots as iplots
from voxseq.metrics import FPR_GRID, auroc, class_roc, classification_metrics, roc_points

BINARY = ["control", "case"]
THREE = ["low", "mid", "high"]
# imperfect, with a tied row (0.5, 0.5: predicted control) and scores tied across classes
BIN_TRUTH = "control case control case case control case control case".split()
THREE_TRUTH = "low low mid high mid high low mid high high low mid".split()
# fmt: off
BIN_PROBA = np.array([[0.8, 0.2], [0.3, 0.7], [0.5, 0.5], [0.5, 0.5], [0.6, 0.4],
                      [0.3, 0.7], [0.1, 0.9], [0.9, 0.1], [0.2, 0.8]])
THREE_PROBA = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6],
                        [0.5, 0.3, 0.2], [0.2, 0.4, 0.4], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1],
                        [0.3, 0.3, 0.4], [0.05, 0.15, 0.8], [0.6, 0.3, 0.1], [0.3, 0.4, 0.3]])
# fmt: on


def _encoded(truth, classes):
    return np.array([classes.index(t) for t in truth])


def _close(fig) -> None:
    pyplot().close(fig)


def _png(path) -> bool:
    return path.stat().st_size > 0 and path.read_bytes()[:4] == b"\x89PNG"


# ---- metrics ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("truth", "proba", "classes"),
    [(BIN_TRUTH, BIN_PROBA, BINARY), (THREE_TRUTH, THREE_PROBA, THREE)],
)
def test_metrics_equal_scikit_learn(truth, proba, classes):
    m = classification_metrics(truth, proba, classes, n_bootstrap=100)
    y, pred, labels = _encoded(truth, classes), proba.argmax(axis=1), list(range(len(classes)))
    if len(classes) == 2:
        auc = skm.roc_auc_score(y == 1, proba[:, 1])
    else:
        auc = skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels)
    assert m["n"] == len(truth)
    assert m["counts"] == {c: truth.count(c) for c in classes}
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(
        skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0)
    )
    assert m["auroc"] == pytest.approx(auc)
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=labels).tolist()
    assert m["classes"] == classes and "note" not in m
    assert json.loads(json.dumps(m)) == m  # plain JSON-ready Python


def test_small_binary_case_by_hand():
    truth = ["a", "a", "a", "b", "b"]
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5], [0.2, 0.8]])
    m = classification_metrics(truth, proba, ["a", "b"], n_bootstrap=0)
    # predicted a, a, b, a (tie: the first class), b
    assert m["confusion_matrix"] == [[2, 1], [1, 1]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["auroc"] == pytest.approx(5 / 6)  # b's 0.5 beats 0.1, 0.4; b's 0.8 beats all three
    assert m["auroc_ci95"] is None and m["auroc_bootstrap_n"] == 0


def test_unnormalised_three_class_rows_are_renormalised():
    scaled = THREE_PROBA * np.linspace(0.5, 2.0, len(THREE_PROBA))[:, None]
    m = classification_metrics(THREE_TRUTH, scaled, THREE, n_bootstrap=0)
    y, rows = _encoded(THREE_TRUTH, THREE), scaled / scaled.sum(axis=1, keepdims=True)
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(y, rows, multi_class="ovr"))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, scaled.argmax(axis=1)).tolist()


def test_three_classes_with_one_absent_average_the_present_classes():
    keep = [i for i, t in enumerate(THREE_TRUTH) if t != "mid"]
    truth, proba = [THREE_TRUTH[i] for i in keep], THREE_PROBA[keep]
    y = _encoded(truth, THREE)
    m = classification_metrics(truth, proba, THREE, n_bootstrap=0)
    expected = np.mean([skm.roc_auc_score(y == c, proba[:, c]) for c in (0, 2)])
    assert m["auroc"] == pytest.approx(expected)
    assert m["counts"]["mid"] == 0


def test_bootstrap_is_deterministic_and_matches_scikit_learn_resamples():
    a = classification_metrics(THREE_TRUTH, THREE_PROBA, THREE, n_bootstrap=50, seed=3)
    b = classification_metrics(THREE_TRUTH, THREE_PROBA, THREE, n_bootstrap=50, seed=3)
    assert a == b and a["auroc_bootstrap_n"] == 50
    # the same draws, scored by scikit-learn: resamples lacking a class are redrawn
    y, rng, stats = _encoded(THREE_TRUTH, THREE), np.random.default_rng(3), []
    while len(stats) < 50:
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(y[idx])) == 3:
            stats.append(skm.roc_auc_score(y[idx], THREE_PROBA[idx], multi_class="ovr"))
    assert a["auroc_ci95"] == pytest.approx(list(np.percentile(stats, [2.5, 97.5])))


def test_bootstrap_interval_contains_the_point_estimate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    score = np.clip(0.5 + 0.25 * (2 * y - 1) + rng.normal(0, 0.2, 60), 0, 1)
    truth = [BINARY[k] for k in y]
    m = classification_metrics(truth, np.stack([1 - score, score], axis=1), BINARY, seed=1)
    low, high = m["auroc_ci95"]
    assert low < m["auroc"] < high and 0.5 < low and high <= 1
    other = classification_metrics(truth, np.stack([1 - score, score], axis=1), BINARY, seed=2)
    assert other["auroc_ci95"] != m["auroc_ci95"]


def test_single_class_truth_has_no_auroc_and_a_note():
    m = classification_metrics(["mid", "mid"], THREE_PROBA[[0, 2]], THREE)
    assert m["auroc"] is None and m["auroc_ci95"] is None
    assert "single class" in m["note"] and "mid" in m["note"]
    assert m["accuracy"] == 0.5  # predicted low, mid: the other metrics are still there
    assert classification_metrics([], np.zeros((0, 3)), THREE)["n"] == 0


def test_bad_inputs_raise_naming_the_value():
    with pytest.raises(ValueError, match="'severe'"):
        classification_metrics(["low", "severe"], THREE_PROBA[:2], THREE)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        classification_metrics(THREE_TRUTH[:3], THREE_PROBA[:3, :2], THREE)
    with pytest.raises(ValueError, match="non-negative"):
        classification_metrics(BIN_TRUTH[:2], -BIN_PROBA[:2], BINARY)


@pytest.mark.parametrize(("truth", "classes"), [(BIN_TRUTH, BINARY), (THREE_TRUTH, THREE)])
def test_roc_points_of_a_perfect_classifier(truth, classes):
    y = _encoded(truth, classes)
    proba = np.eye(len(classes))[y] * 0.8 + 0.2 / len(classes)
    pts = roc_points(truth, proba, classes)
    assert pts["auroc"] == pytest.approx(1.0)
    assert (0.0, 1.0) in zip(pts["fpr"], pts["tpr"], strict=True)
    assert pts["fpr"][-1] == 1.0 and pts["tpr"][-1] == 1.0
    if len(classes) > 2:
        assert len(pts["fpr"]) == 101


def test_roc_points_binary_is_scikit_learns_curve():
    pts = roc_points(BIN_TRUTH, BIN_PROBA, BINARY)
    fpr, tpr, _ = skm.roc_curve(_encoded(BIN_TRUTH, BINARY) == 1, BIN_PROBA[:, 1])
    assert pts["fpr"] == pytest.approx(fpr.tolist()) and pts["tpr"] == pytest.approx(tpr.tolist())
    assert roc_points(["case"], BIN_PROBA[:1], BINARY)["auroc"] is None


# ---- the one AUROC: reporting and model selection ---------------------------------------------
def test_auroc_counts_ties_half_and_is_nan_where_undefined():
    scores = np.array([0.1, 0.4, 0.4, 0.8, 0.4, 0.9])
    labels = np.array([0, 0, 1, 1, 0, 1], bool)
    # positives 0.4, 0.8, 0.9 against negatives 0.1, 0.4, 0.4: 0.4 wins 1 and ties 2 -> 8 / 9
    assert auroc(scores, labels) == pytest.approx(8 / 9)
    assert auroc(scores, labels) == skm.roc_auc_score(labels, scores)
    assert math.isnan(auroc(scores, np.ones(6, bool)))
    assert math.isnan(auroc(scores, np.zeros(6, bool)))
    assert math.isnan(auroc(np.r_[scores[:-1], np.nan], labels))
    assert auroc(np.array([-np.inf, 0.2, np.inf, 0.5]), np.array([0, 0, 1, 1], bool)) == 1.0


def test_auroc_of_class_probabilities():
    y2, y3 = _encoded(BIN_TRUTH, BINARY), _encoded(THREE_TRUTH, THREE)
    assert auroc(BIN_PROBA, y2) == skm.roc_auc_score(y2 == 1, BIN_PROBA[:, 1])
    assert auroc(THREE_PROBA, y3) == skm.roc_auc_score(y3, THREE_PROBA, multi_class="ovr")
    keep = y3 != 1  # "mid" absent: the mean over the present classes
    present = np.mean([skm.roc_auc_score(y3[keep] == c, THREE_PROBA[keep, c]) for c in (0, 2)])
    assert auroc(THREE_PROBA[keep], y3[keep]) == pytest.approx(present)
    assert math.isnan(auroc(THREE_PROBA[y3 == 2], y3[y3 == 2]))
    assert math.isnan(auroc(np.zeros((0, 0)), np.zeros(0, int)))  # no validation subject


def test_model_selection_scores_with_the_reported_auroc():
    """The validation AUROC that picks a fold's best epoch is the metrics' AUROC."""
    import torch

    from voxseq.imaging.classify import LOSS_TIEBREAK, ClassificationTask

    x = torch.from_numpy(np.log(THREE_PROBA).astype(np.float32))

    class Fixed(torch.nn.Module):  # returns the logits of THREE_PROBA, row by row
        def forward(self, batch):
            rows = [int(np.flatnonzero((x == b).all(1))[0]) for b in batch]
            return x[rows]

    y = _encoded(THREE_TRUTH, THREE)
    task = ClassificationTask(x.numpy(), y, x.numpy(), y, 3, 4, 0, {})
    val = task.validate(Fixed(), torch.device("cpu"))
    proba = torch.from_numpy(x.numpy()).softmax(1).numpy()
    assert val["val_auroc"] == classification_metrics(THREE_TRUTH, proba, THREE, 0)["auroc"]
    assert val["score"] == val["val_auroc"] - LOSS_TIEBREAK * val["val_loss"]
    one = ClassificationTask(x.numpy(), y, x.numpy()[y == 0], y[y == 0], 3, 4, 0, {})
    single = one.validate(Fixed(), torch.device("cpu"))
    assert math.isnan(single["val_auroc"]) and single["score"] == -single["val_loss"]


def test_class_roc_is_the_binary_curve_or_the_mean_one_vs_rest_curve():
    y2, y3 = _encoded(BIN_TRUTH, BINARY), _encoded(THREE_TRUTH, THREE)
    fpr, tpr, _ = skm.roc_curve(y2 == 1, BIN_PROBA[:, 1])
    got = class_roc(BIN_PROBA, y2)
    assert np.array_equal(got[0], fpr) and np.array_equal(got[1], tpr)
    curves = [skm.roc_curve(y3 == c, THREE_PROBA[:, c])[:2] for c in range(3)]
    mean = np.mean([np.interp(FPR_GRID, f, t) for f, t in curves], axis=0)
    grid, tpr3 = class_roc(THREE_PROBA, y3)
    assert np.array_equal(grid, FPR_GRID) and np.array_equal(tpr3, mean)


# ---- figures ---------------------------------------------------------------------------------
def test_roc_figure_draws_folds_mean_and_test_and_skips_single_class_folds(tmp_path):
    folds = [
        ("fold 1", BIN_TRUTH, BIN_PROBA),
        ("fold 2", BIN_TRUTH[::-1], BIN_PROBA),
        ("fold 3", ["case", "case"], BIN_PROBA[:2]),
    ]
    fig = iplots.roc_figure(folds, BINARY, test=(BIN_TRUTH, BIN_PROBA))
    (ax,) = fig.axes
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("fold 1 (AUROC ") for t in legend)
    assert any(t.startswith("mean of 2 folds") for t in legend)
    assert any(t.startswith("test, n=9") for t in legend)
    assert not any(t.startswith("fold 3") for t in legend) and "1 fold(s)" in ax.get_title()
    _close(fig)
    iplots.roc_curves(folds[:2], BINARY, tmp_path / "roc.png")
    assert _png(tmp_path / "roc.png")
    _close(iplots.roc_figure([("fold 1", THREE_TRUTH, THREE_PROBA)], THREE))


def test_confusion_figure_has_one_panel_per_matrix_with_counts(tmp_path):
    oof = classification_metrics(THREE_TRUTH, THREE_PROBA, THREE, n_bootstrap=0)
    fig = iplots.confusion_figure({"out-of-fold": oof["confusion_matrix"], "test": None}, THREE)
    assert len(fig.axes) == 2
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert cells == [str(v) for row in oof["confusion_matrix"] for v in row]
    _close(fig)
    with pytest.raises(ValueError, match="'test'"):
        iplots.confusion_figure({"test": [[1, 2], [3, 4]]}, THREE)
    iplots.confusion_heatmap({"test": [[3, 1], [0, 2]]}, BINARY, tmp_path / "cm.png", "test")
    assert _png(tmp_path / "cm.png")


def test_central_slices_put_anterior_and_superior_up_and_right_on_the_right():
    vol = np.zeros((6, 8, 10))
    vol[5, 7, 5] = vol[5, 4, 9] = vol[3, 7, 9] = 1  # right-anterior, right-superior, ant.-sup.
    axial, coronal, sagittal = iplots.central_slices(vol)
    assert axial.shape == (8, 6) and axial[7, 5] == 1  # origin="lower": top right
    assert coronal.shape == (10, 6) and coronal[9, 5] == 1
    assert sagittal.shape == (10, 8) and sagittal[9, 7] == 1


def test_classification_grid_has_six_axes_per_subject(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(12, 14, 10))
    cam = np.zeros_like(image)
    cam[6:10, 8:12, 4:7] = 0.9
    rows = [
        {"image": image, "cam": cam, "title": f"demo00{i}: true high / pred high / p 0.87"}
        for i in range(2)
    ]
    fig = iplots.classification_grid_figure(rows)
    assert len(fig.axes) == 12 and fig.get_figwidth() == pytest.approx(9)
    assert all(not ax.get_xticks().size and not ax.get_yticks().size for ax in fig.axes)
    _close(fig)
    empty = iplots.classification_grid_figure([])
    assert len(empty.axes) == 1 and empty.axes[0].texts[0].get_text().startswith("no test")
    _close(empty)
    with pytest.raises(ValueError, match="demo"):
        iplots.classification_grid_figure([{**rows[0], "cam": cam[:, :, :5]}])
    iplots.classification_grid(rows[:1], tmp_path / "grid.png")
    assert _png(tmp_path / "grid.png")
