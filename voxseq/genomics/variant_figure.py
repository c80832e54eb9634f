"""Variant-effect figure of the report: ROC, scores by truth class, predicted vs true effect.

The metrics are those of ``cohort.json`` (:func:`voxseq.genomics.infer.vep_metrics`): the ROC
ranks ``|score|`` of SNVs with an effect against neutral SNVs (``vep_auroc``), and the scatter
plots the signed score against the signed true effect (``vep_spearman``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxseq.figures import pyplot, save_figure
from voxseq.genomics.variants import (
    EFFECT_CLASSES,
    NEGATIVE_CLASS,
    read_truth_table,
    spearman,
    truth_effects,
    truth_labels,
)
from voxseq.io.atomic import read_tsv
from voxseq.metrics import auroc, roc_curve

COLOURS = {"motif_breaking": "C3", "motif_creating": "C2", "flank_gc": "C1", "neutral": "C0"}
OTHER = "other / no class"


def _scored(rows: Sequence[dict]) -> list[dict]:
    """variant_scores.tsv rows with an int ``pos`` and a float ``score`` (NaN when empty)."""
    return [{**r, "pos": int(r["pos"]),
             "score": float(r["score"]) if r.get("score") not in ("", None) else float("nan")}
            for r in rows]


def _class_order(name: str) -> tuple[int, str]:
    """Effect classes, then neutral, then any other class by name."""
    order = [*EFFECT_CLASSES, NEGATIVE_CLASS]
    return (order.index(name) if name in order else len(order), name)


def _roc_panel(ax, scores: np.ndarray, labels: np.ndarray, why: str) -> None:
    drawn = bool(labels.any() and not labels.all())
    if drawn and np.isnan(scores).any():  # no AUROC either (vep_auroc is null)
        drawn, why = False, "NaN scores among the scored SNVs"
    if drawn:
        value = auroc(np.abs(scores), labels)
        fpr, tpr = roc_curve(np.abs(scores), labels)
        ax.plot(fpr, tpr, color="C3", lw=2,
                label=f"AUROC {value:.3f} ({int(labels.sum())} vs {int((~labels).sum())})")
        ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="chance")
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, f"{why}:\nno ROC", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("false positive rate (neutral)")
    ax.set_ylabel("true positive rate (SNVs with an effect)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_title("effect vs neutral SNVs, ranked by |score|", fontsize=10)


def _class_panel(ax, rows: list[dict], truth: dict[tuple, str] | None) -> None:
    groups: dict[str, list[float]] = {}
    for r in rows:
        if r["status"] != "ok":
            continue
        cls = (truth or {}).get((r["contig"], r["pos"], r["ref"], r["alt"])) or OTHER
        name = cls if truth else "scored SNVs"
        groups.setdefault(name, []).append(r["score"])
    names = sorted(groups, key=_class_order)
    rng = np.random.default_rng(0)
    for pos, name in enumerate(names, start=1):
        vals = np.array(groups[name])
        ax.boxplot([vals], positions=[pos], widths=0.55, showfliers=False,
                   medianprops={"color": "black"})
        ax.scatter(pos + rng.uniform(-0.15, 0.15, len(vals)), vals, s=12, zorder=3,
                   color=COLOURS.get(name, "0.5"), edgecolors="white", linewidths=0.4)
    if names:
        ax.set_xticks(range(1, len(names) + 1),
                      [f"{n.replace('_', ' ')}\nn={len(groups[n])}" for n in names], fontsize=8)
        ax.axhline(0, color="0.6", lw=0.8)
    else:
        ax.text(0.5, 0.5, "no scored SNVs", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("score (alt − ref coverage, mean over tracks)")
    ax.set_title("variant scores by truth class", fontsize=10)


def _scatter_panel(ax, rows: list[dict], truth: dict[tuple, str] | None,
                   effects: dict[tuple, float]) -> None:
    idx, eff = truth_effects(rows, effects)
    if not len(idx):
        why = "no variant truth" if truth is None else "no true effect in the truth table"
        ax.text(0.5, 0.5, f"{why}:\nno scatter", ha="center", va="center",
                transform=ax.transAxes)
    else:
        score = np.array([rows[i]["score"] for i in idx])
        classes = [(truth or {}).get((rows[i]["contig"], rows[i]["pos"], rows[i]["ref"],
                                      rows[i]["alt"])) or OTHER for i in idx]
        for name in sorted(set(classes), key=_class_order):
            k = np.array([c == name for c in classes])
            ax.scatter(eff[k], score[k], s=14, color=COLOURS.get(name, "0.5"),
                       edgecolors="white", linewidths=0.4, label=name.replace("_", " "))
        ax.axhline(0, color="0.6", lw=0.8)
        ax.axvline(0, color="0.6", lw=0.8)
        ax.legend(loc="upper left", fontsize=8)
        rho = spearman(score, eff)
        ax.set_title(f"predicted vs true effect: Spearman {rho:.3f} (n={len(idx)})",
                     fontsize=10)
    ax.set_xlabel("true effect (expected depth change over the scored bins)")
    ax.set_ylabel("score (alt − ref coverage, mean over tracks)")


def variant_effect_figure(rows: Sequence[dict], truth: dict[tuple, str] | None,
                          effects: dict[tuple, float] | None = None):
    """Three panels: ROC of SNVs with an effect vs neutral ones, scores by truth class, and
    the signed score against the signed true effect, coloured by class, with its Spearman.

    Parameters
    ----------
    rows
        ``genomics/infer/variant_scores.tsv`` rows (``contig``, ``pos``, ``ref``, ``alt``,
        ``status``, ``score``).
    truth
        :func:`~voxseq.genomics.variants.read_truth` of the truth table, or ``None``.
    effects
        :func:`~voxseq.genomics.variants.read_truth_effects` of it (empty or ``None``: an
        older table without ``effect``, the scatter says so).
    """
    plt = pyplot()
    rows = _scored(rows)
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(16, 4.6))
    idx, labels = truth_labels(rows, truth) if truth else (np.array([], int), np.array([], bool))
    why = "no variant truth" if not truth else "truth lacks both classes among scored SNVs"
    _roc_panel(a, np.array([rows[i]["score"] for i in idx]), labels, why)
    _class_panel(b, rows, truth)
    _scatter_panel(c, rows, truth, effects or {})
    fig.tight_layout()
    return fig


def plot_variant_effects(variants_tsv: str | os.PathLike, truth_tsv: str | os.PathLike | None,
                         out_png: str | os.PathLike) -> None:
    """:func:`variant_effect_figure` of ``variant_scores.tsv`` and the truth table, as a PNG."""
    truth, effects = read_truth_table(truth_tsv) if truth_tsv else (None, {})
    save_figure(variant_effect_figure(read_tsv(Path(variants_tsv)), truth, effects), out_png)
