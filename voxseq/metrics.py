"""Evaluation metrics shared by stages and reports."""

from __future__ import annotations

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
    """Area under the ROC curve (ties counted half), NaN without both classes."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
