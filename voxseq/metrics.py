"""Evaluation metrics shared by stages and reports."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def dice_per_label(pred: np.ndarray, truth: np.ndarray, n_labels: int) -> np.ndarray:
    """Dice of each foreground label (1 .. n_labels - 1).

    Returns
    -------
    (n_labels - 1,) float array; NaN where the label is absent from both volumes.
    """
    out = np.full(n_labels - 1, np.nan)
    for k in range(1, n_labels):
        p, t = pred == k, truth == k
        denom = p.sum() + t.sum()
        if denom:
            out[k - 1] = 2.0 * np.logical_and(p, t).sum() / denom
    return out


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two flattened arrays (NaN when either is constant)."""
    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    xs, ys = x - x.mean(), y - y.mean()
    denom = np.sqrt((xs**2).sum() * (ys**2).sum())
    return float((xs * ys).sum() / denom) if denom > 0 else float("nan")


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: scikit-learn's ``roc_auc_score`` (ties counted half).

    Parameters
    ----------
    scores
        ``(N,)`` scores of a binary problem, or ``(N, K)`` class scores (probabilities).
    labels
        ``(N,)``: boolean (positive = True) for ``(N,)`` scores; class indices ``0 .. K - 1``
        for ``(N, K)`` scores.

    Returns
    -------
    float
        Binary: the AUROC of ``scores``. ``K = 2``: the AUROC of column 1 (class 1 positive).
        ``K > 2``: the one-vs-rest AUROC averaged over the classes present in ``labels`` (with
        every class present, scikit-learn's ``multi_class="ovr", average="macro"``). NaN with
        fewer than two classes in ``labels`` or a NaN score.
    """
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim == 2 and scores.shape[1] == 2:
        scores, labels = scores[:, 1], labels == 1
    if scores.ndim == 2:
        present = np.unique(labels)
        if len(present) < 2 or np.isnan(scores).any():
            return float("nan")
        onehot = labels[:, None] == present[None, :]
        return float(roc_auc_score(onehot, scores[:, present], average="macro"))
    labels = labels.astype(bool)
    if labels.all() or not labels.any() or np.isnan(scores).any():
        return float("nan")
    return float(roc_auc_score(labels, _finite(scores)))


def _finite(scores: np.ndarray) -> np.ndarray:
    """``scores`` as float64, replaced by their ranks where some are infinite: the ROC depends
    on their order alone, and scikit-learn refuses infinite scores."""
    scores = np.asarray(scores, dtype=np.float64)
    if np.isinf(scores).any():
        from scipy.stats import rankdata

        return rankdata(scores)
    return scores


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC points (false and true positive rates) of ``scores`` for boolean ``labels``:
    scikit-learn's ``roc_curve``.

    Tied scores form one diagonal step, so the trapezoid area equals :func:`auroc`. Both arrays
    start at 0 and end at 1.

    Raises
    ------
    ValueError
        When ``labels`` lacks a class, or a score is NaN.
    """
    from sklearn.metrics import roc_curve as sk_roc_curve

    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        raise ValueError(f"roc_curve: needs both classes, got {int(labels.sum())} positive of "
                         f"{len(labels)}")
    fpr, tpr, _ = sk_roc_curve(labels, _finite(scores))
    return fpr, tpr


# ---- subject classification ------------------------------------------------------------------
#: Common false-positive-rate grid of averaged ROC curves (macro one-vs-rest, mean over folds).
FPR_GRID = np.linspace(0.0, 1.0, 101)


def _encode(truth: Sequence[str], proba: np.ndarray,
            classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Class indices of ``truth`` and ``proba`` as float64, checked (rows renormalised to sum to
    1 when K > 2 and they do not already, as one-vs-rest AUROC needs)."""
    classes = list(classes)
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be at least two distinct names, got {classes}")
    index = {c: k for k, c in enumerate(classes)}
    unknown = sorted({str(t) for t in truth if t not in index})
    if unknown:
        raise ValueError(f"truth label(s) {unknown} not in classes {classes}")
    y = np.array([index[t] for t in truth], dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if p.shape != (len(y), len(classes)):
        raise ValueError(f"proba has shape {p.shape}, expected ({len(y)}, {len(classes)}) "
                         "(subjects, classes)")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("proba must be finite and non-negative (probabilities, not logits)")
    if len(classes) > 2 and not np.allclose(p.sum(axis=1), 1.0):
        sums = p.sum(axis=1, keepdims=True)
        if (sums == 0).any():
            raise ValueError(f"proba rows {np.flatnonzero(sums[:, 0] == 0).tolist()} are all 0")
        p = p / sums
    return y, p


def _bootstrap_auroc(y: np.ndarray, p: np.ndarray, n_bootstrap: int,
                     seed: int) -> list[float]:
    """:func:`auroc` of ``n_bootstrap`` resamples of subjects with every class of ``y`` (others
    redrawn, at most ``10 * n_bootstrap`` draws in all)."""
    rng = np.random.default_rng(seed)
    present, stats = np.unique(y), []
    for _ in range(10 * n_bootstrap):
        if len(stats) == n_bootstrap:
            break
        idx = rng.integers(0, len(y), len(y))
        yb = y[idx]
        if len(np.unique(yb)) < len(present):
            continue
        stats.append(auroc(p[idx], yb))
    return stats


def classification_metrics(truth: Sequence[str], proba: np.ndarray, classes: Sequence[str],
                           n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Subject classification metrics of class probabilities, as JSON-ready plain Python.

    Parameters
    ----------
    truth
        ``(N,)`` true class names, each one of ``classes``.
    proba
        ``(N, K)`` probabilities, columns in ``classes`` order; the predicted class is the
        argmax (the first of tied columns).
    classes
        The ``K >= 2`` class names.
    n_bootstrap
        Resamples of subjects for the AUROC interval (0: no interval).
    seed
        Seed of the resampling (the interval is a function of the inputs and the seed).

    Returns
    -------
    dict
        ``n``, ``counts`` (class -> true subjects), ``accuracy``, ``balanced_accuracy`` (mean
        recall over the classes in ``truth``), ``macro_f1`` (over all ``classes``, 0 where
        undefined), ``auroc`` (K = 2: of ``classes[1]``; K > 2: one-vs-rest macro over the
        classes in ``truth``), ``auroc_ci95`` (``[low, high]``, 2.5th and 97.5th percentiles of
        the bootstrap), ``auroc_bootstrap_n`` (resamples used), ``confusion_matrix`` (rows true,
        columns predicted, ``classes`` order) and ``classes``. AUROC and its interval are
        ``None`` with a ``note`` when ``truth`` has fewer than two classes; ``N = 0`` gives only
        ``n`` and ``note``.

    Raises
    ------
    ValueError
        On a truth label not in ``classes``, a ``proba`` of the wrong shape, or negative or
        non-finite probabilities.
    """
    import warnings

    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
    )

    if len(truth) == 0 and np.size(proba) == 0:
        return {"n": 0, "note": "no subject with a class: no metric"}
    y, p = _encode(truth, proba, classes)
    pred, labels = p.argmax(axis=1), list(range(len(classes)))
    with warnings.catch_warnings():  # a predicted class absent from truth: recall of the others
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        balanced = balanced_accuracy_score(y, pred)
    out = {
        "n": len(y),
        "counts": {c: int((y == k).sum()) for k, c in enumerate(classes)},
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "auroc": None,
        "auroc_ci95": None,
        "auroc_bootstrap_n": 0,
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "classes": list(classes),
    }
    present = [classes[k] for k in np.unique(y)]
    if len(present) < 2:
        out["note"] = f"AUROC undefined: truth has a single class ({present[0]})"
        return out
    out["auroc"] = auroc(p, y)
    stats = _bootstrap_auroc(y, p, n_bootstrap, seed)
    out["auroc_bootstrap_n"] = len(stats)
    if stats:
        out["auroc_ci95"] = [float(v) for v in np.percentile(stats, [2.5, 97.5])]
    return out


def roc_points(truth: Sequence[str], proba: np.ndarray, classes: Sequence[str]) -> dict:
    """ROC curve to plot, with the AUROC of :func:`classification_metrics`.

    Parameters
    ----------
    truth, proba, classes
        As in :func:`classification_metrics`.

    Returns
    -------
    dict
        ``fpr``, ``tpr`` (lists of float) and ``auroc``. K = 2: :func:`roc_curve` of
        ``classes[1]``. K > 2: the mean over the classes in ``truth`` of their one-vs-rest
        curves interpolated on :data:`FPR_GRID` (``auroc`` is the one-vs-rest macro AUROC, not
        the area under the interpolated curve). Fewer than two classes in ``truth``: empty
        lists, ``auroc`` ``None`` and a ``note``.
    """
    if len(truth) == 0 and np.size(proba) == 0:
        return {"fpr": [], "tpr": [], "auroc": None, "note": "no subject with a class"}
    y, p = _encode(truth, proba, classes)
    present = np.unique(y)
    if len(present) < 2:
        return {"fpr": [], "tpr": [], "auroc": None,
                "note": f"ROC undefined: truth has a single class ({classes[present[0]]})"}
    fpr, tpr = class_roc(p, y)
    return {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr],
            "auroc": auroc(p, y)}


def class_roc(proba: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve of class probabilities, the curve of :func:`auroc`'s number.

    Parameters
    ----------
    proba
        ``(N, K)`` class probabilities.
    labels
        ``(N,)`` class indices, at least two classes present.

    Returns
    -------
    fpr, tpr
        K = 2: :func:`roc_curve` of column 1. K > 2: :data:`FPR_GRID` and the mean over the
        classes present of their one-vs-rest curves interpolated on it.
    """
    labels = np.asarray(labels)
    if proba.shape[1] == 2:
        return roc_curve(proba[:, 1], labels == 1)
    curves = [roc_curve(proba[:, c], labels == c) for c in np.unique(labels)]
    return FPR_GRID, np.mean([np.interp(FPR_GRID, f, t) for f, t in curves], axis=0)
