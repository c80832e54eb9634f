"""Judging the subject models: AUROC, balanced accuracy, paired bootstrap, ROC figure.

The four models are compared on the SAME subjects: those with both modalities (``both``).
AUROC is scikit-learn's ``roc_auc_score`` (binary: of the second class; more classes: one-vs-rest
macro average over the classes present). The fused model is compared with the better single
modality on those subjects (by AUROC) through a paired bootstrap: subjects are drawn with
replacement (``numpy.random.default_rng(seed).integers(0, n, n)`` per draw), both models' AUROC
computed on the same draw, and the 2.5 and 97.5 percentiles of the differences reported; a draw
missing a class of the full set is redrawn (at most ``10 * n_bootstrap`` draws in all). Subjects
with one modality are counted and scored apart (``imaging_only``, ``genomics_only``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxseq.metrics import auroc as class_auroc
from voxseq.metrics import class_roc
from voxseq.subject_model.fusion import MODELS, CVResult, fused_proba

log = logging.getLogger(__name__)


def auroc(y: np.ndarray, proba: np.ndarray) -> float:
    """AUROC of class indices ``y`` (N,) under ``proba`` (N, K) (:func:`voxseq.metrics.auroc`:
    macro over the classes present for K > 2); NaN with fewer than two classes present."""
    return class_auroc(np.asarray(proba, np.float64), np.asarray(y))


def balanced_accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean recall over the classes present (scikit-learn's ``balanced_accuracy_score``)."""
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, np.asarray(proba).argmax(1)))


def paired_bootstrap(y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray,
                     n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """AUROC(a) - AUROC(b) on the same subjects and its paired bootstrap 95 % interval
    (module docstring). Returns ``difference``, ``low``, ``high``, ``n_bootstrap`` (draws
    used), ``n``."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    n, k = len(y), len(np.unique(y))
    diffs: list[float] = []
    for _ in range(10 * n_bootstrap):
        if len(diffs) == n_bootstrap:
            break
        idx = rng.integers(0, n, n)
        if len(np.unique(y[idx])) < k:
            continue
        diffs.append(auroc(y[idx], proba_a[idx]) - auroc(y[idx], proba_b[idx]))
    low, high = (np.percentile(diffs, [2.5, 97.5]).tolist() if diffs else [math.nan] * 2)
    return {"difference": auroc(y, proba_a) - auroc(y, proba_b), "low": low, "high": high,
            "n_bootstrap": len(diffs), "n": n}


def _scores(result: CVResult, proba: dict[str, np.ndarray], subjects: Sequence[str]) -> dict:
    subjects = [s for s in subjects if s in proba]
    if not subjects:
        return {"n": 0, "auroc": None, "balanced_accuracy": None}
    y = np.array([result.classes.index(result.truth[s]) for s in subjects])
    p = np.stack([proba[s] for s in subjects])
    a = auroc(y, p)
    return {"n": len(subjects), "auroc": None if math.isnan(a) else a,
            "balanced_accuracy": balanced_accuracy(y, p)}


def evaluate(result: CVResult, fusion: str = "late", n_bootstrap: int = 1000,
             seed: int = 0) -> dict:
    """Scores of the four models on the subjects with both modalities, of the fused
    prediction on everyone, of each single model on the subjects that have only its modality,
    and the paired comparison of each fusion with the better single modality."""
    both = [s for s, v in result.source.items() if v == "both"]
    counts = {v: sum(x == v for x in result.source.values()) for v in ("both", "imaging",
                                                                       "genomics")}
    out: dict = {"classes": result.classes, "fusion": fusion, "counts": counts,
                 "both": {m: _scores(result, result.proba[m], both) for m in MODELS},
                 "imaging_only": _scores(result, result.proba["imaging"],
                                         [s for s, v in result.source.items() if v == "imaging"]),
                 "genomics_only": _scores(result, result.proba["genomics"],
                                          [s for s, v in result.source.items()
                                           if v == "genomics"]),
                 "fused_all": _scores(result, fused_proba(result, fusion), list(result.source)),
                 "comparison": {}}
    singles = [m for m in ("imaging", "genomics") if out["both"][m]["auroc"] is not None]
    if not singles:
        return out
    best = max(singles, key=lambda m: out["both"][m]["auroc"])
    y = np.array([result.classes.index(result.truth[s]) for s in both])
    for m in ("late", "intermediate"):
        if out["both"][m]["auroc"] is None:
            continue
        pa = np.stack([result.proba[m][s] for s in both])
        pb = np.stack([result.proba[best][s] for s in both])
        out["comparison"][m] = {"versus": best,
                                **paired_bootstrap(y, pa, pb, n_bootstrap, seed)}
    log.info("subject model on %d subjects with both: %s", len(both),
             {m: out["both"][m]["auroc"] for m in MODELS})
    return out


def roc_figure(result: CVResult, metrics: dict, path: str | Path) -> None:
    """The four models' out-of-fold ROC curves on the subjects with both modalities, one
    plot, the paired interval of the fused model in the title; written atomically (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from voxseq.io.atomic import atomic_path

    both = [s for s, v in result.source.items() if v == "both"]
    y = np.array([result.classes.index(result.truth[s]) for s in both])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--")
    for m in MODELS:
        score = metrics["both"][m]["auroc"]
        if score is None:
            continue
        fpr, tpr = class_roc(np.stack([result.proba[m][s] for s in both]), y)
        ax.plot(fpr, tpr, lw=1.8, label=f"{m} (AUROC {score:.3f})")
    cmp = metrics["comparison"].get(metrics["fusion"])
    title = f"subject model, {len(both)} subjects with both modalities"
    if cmp:
        title += (f"\nAUROC {metrics['fusion']} - {cmp['versus']}: {cmp['difference']:+.3f} "
                  f"[95% {cmp['low']:+.3f}, {cmp['high']:+.3f}]")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title,
           xlim=(0, 1), ylim=(0, 1.01))
    ax.title.set_fontsize(9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
