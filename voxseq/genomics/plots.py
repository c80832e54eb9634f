"""Report figures of the genomics track (PNG, matplotlib without a display).

Observed vs predicted tracks and per-track Pearson R (drawn by ``genomics_infer``), and the
report rules' training curves and variant-effect figure (ROC and score distributions).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxseq.genomics.variants import read_truth, truth_labels
from voxseq.io.atomic import atomic_path, read_tsv
from voxseq.metrics import auroc
from voxseq.report import pyplot, save_figure, training_curves_figure


def plot_tracks(path: str | Path, region: str, observed: np.ndarray, predicted: np.ndarray,
                names: list[str], bin_size: int, start: int) -> None:
    """Observed vs predicted coverage over one region, one panel per track.

    Parameters
    ----------
    observed, predicted
        ``(bins, K)`` for the K tracks in ``names``.
    region
        Title, e.g. ``chr4:10000-14096``.
    """
    plt = pyplot()
    k = len(names)
    fig, axes = plt.subplots(k, 1, figsize=(10, 1.8 * k + 0.6), sharex=True, squeeze=False)
    x = start + (np.arange(observed.shape[0]) + 0.5) * bin_size
    for i, ax in enumerate(axes[:, 0]):
        ax.fill_between(x, observed[:, i], step="mid", color="0.6", label="observed")
        ax.plot(x, predicted[:, i], color="C3", lw=1.2, label="predicted")
        ax.set_ylabel(names[i], fontsize=8)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[0, 0].set_title(f"test region {region}: observed vs predicted (normalised, soft-clipped)")
    axes[-1, 0].set_xlabel("position (bp)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_pearson(path: str | Path, raw: np.ndarray, log1p: np.ndarray) -> None:
    """Distribution of per-track test Pearson R (raw and log1p), box plus points."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    data = [np.asarray(raw)[np.isfinite(raw)], np.asarray(log1p)[np.isfinite(log1p)]]
    ax.boxplot(data, widths=0.5)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(d)), d, s=12, color="C0", zorder=3)
    ax.set_xticks([1, 2], ["raw", "log1p"])
    ax.set_ylabel("Pearson R per track (test windows)")
    ax.set_ylim(min([0.0, *(float(d.min()) for d in data if len(d))]), 1.0)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_message(path: str | Path, text: str) -> None:
    """A small PNG holding only ``text`` (a report figure with nothing to show)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 1.5))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.axis("off")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def training_curves(metrics_tsv: str | os.PathLike, out_png: str | os.PathLike) -> None:
    """Loss and validation Pearson R per track per epoch, best epoch marked, as a PNG.

    ``metrics_tsv`` is the genomics fit's table (``score`` = mean validation Pearson R over
    tracks, ``pearson_<track>`` per track).
    """
    rows = read_tsv(metrics_tsv)
    series = {c: c[len("pearson_"):] for c in (rows[0] if rows else {})
              if c.startswith("pearson_")}
    fig = training_curves_figure(rows, series, "genomics sequence model: training",
                                 "score (mean validation Pearson R)")
    save_figure(fig, out_png)


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC points (false and true positive rates) of ``scores`` for boolean ``labels``.

    Tied scores form one diagonal step, so the trapezoid area equals
    :func:`voxseq.metrics.auroc` (ties counted half). Both arrays start at 0 and end at 1.
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        raise ValueError(f"roc_curve: needs both classes, got {int(labels.sum())} positive of "
                         f"{len(labels)}")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    return np.r_[0.0, fp / (~y).sum()], np.r_[0.0, tp / y.sum()]


def _scored(rows: Sequence[dict]) -> list[dict]:
    """variant_scores.tsv rows as :func:`truth_labels` takes them (int ``pos``, float score)."""
    out = []
    for r in rows:
        score = float(r["score"]) if r.get("score") not in ("", None) else float("nan")
        out.append({**r, "pos": int(r["pos"]), "score": score})
    return out


def variant_effect_figure(rows: Sequence[dict], truth: dict[tuple, str] | None):
    """ROC of motif-breaking vs neutral SNVs (left) and score distributions per class (right).

    Parameters
    ----------
    rows
        ``genomics/infer/variant_scores.tsv`` rows (``contig``, ``pos``, ``ref``, ``alt``,
        ``status``, ``score``).
    truth
        :func:`voxseq.genomics.variants.read_truth` of the truth table, or ``None``. As for
        ``vep_auroc``, motif-breaking is the positive class and ``-score`` ranks variants
        (breaking a motif lowers predicted coverage).
    """
    plt = pyplot()
    rows = _scored(rows)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    idx, labels = truth_labels(rows, truth) if truth else (np.array([], int), np.array([], bool))
    scores = np.array([r["score"] for r in rows])
    if labels.any() and not labels.all():
        value = auroc(-scores[idx], labels)
        fpr, tpr = roc_curve(-scores[idx], labels)
        a.plot(fpr, tpr, color="C3", lw=2, drawstyle="default",
               label=f"AUROC {value:.3f} ({int(labels.sum())} vs {int((~labels).sum())})")
        a.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="chance")
        a.legend(loc="lower right", fontsize=8)
    else:
        why = "no variant truth" if not truth else "truth lacks both classes among scored SNVs"
        a.text(0.5, 0.5, f"{why}:\nno ROC", ha="center", va="center", transform=a.transAxes)
    a.set_xlabel("false positive rate (neutral)")
    a.set_ylabel("true positive rate (motif-breaking)")
    a.set_xlim(-0.01, 1.01)
    a.set_ylim(-0.01, 1.01)
    a.set_aspect("equal")
    a.set_title("variant effect: motif-breaking vs neutral", fontsize=10)
    ok = np.array([r["status"] == "ok" for r in rows], dtype=bool)
    in_truth = np.zeros(len(rows), bool)
    in_truth[idx] = True
    groups = [("motif-breaking", idx[labels]), ("neutral", idx[~labels]),
              ("other / no class" if truth else "scored SNVs", np.flatnonzero(ok & ~in_truth))]
    groups = [(name, scores[i]) for name, i in groups if len(i)]
    rng = np.random.default_rng(0)
    colours = {"motif-breaking": "C3", "neutral": "C0"}
    for pos, (name, vals) in enumerate(groups, start=1):
        b.boxplot([vals], positions=[pos], widths=0.55, showfliers=False,
                  medianprops={"color": "black"})
        b.scatter(pos + rng.uniform(-0.15, 0.15, len(vals)), vals, s=14, zorder=3,
                  color=colours.get(name, "0.5"), edgecolors="white", linewidths=0.4)
    if groups:
        b.set_xticks(range(1, len(groups) + 1), [f"{n}\nn={len(v)}" for n, v in groups])
        b.axhline(0, color="0.6", lw=0.8)
    else:
        b.text(0.5, 0.5, "no scored SNVs", ha="center", va="center", transform=b.transAxes)
    b.set_ylabel("score (alt − ref coverage, mean over tracks)")
    b.set_title("variant scores by truth class", fontsize=10)
    fig.tight_layout()
    return fig


def plot_variant_effects(variants_tsv: str | os.PathLike, truth_tsv: str | os.PathLike | None,
                         out_png: str | os.PathLike) -> None:
    """:func:`variant_effect_figure` of ``variant_scores.tsv`` and the truth table, as a PNG."""
    truth = read_truth(truth_tsv) if truth_tsv else None
    save_figure(variant_effect_figure(read_tsv(variants_tsv), truth), out_png)
