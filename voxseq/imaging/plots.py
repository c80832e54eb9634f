"""Imaging report figures: training curves, Dice box plot and overlays, with label names, and
the subject classifier's ROC curves, confusion matrices and Grad-CAM grid.

Labels are named by the config's ``imaging.labels`` (index 0 is the background), so the
training metric ``val_dice_1`` is drawn as e.g. ``organ``. Each figure has a ``*_figure``
function returning the matplotlib Figure (for tests) and a function that writes the PNG.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxseq.figures import LABEL_COLOURS, pyplot, save_figure, training_curves_figure
from voxseq.imaging.cohort import overlay_slices
from voxseq.io.atomic import atomic_path, read_tsv
from voxseq.metrics import FPR_GRID, roc_points

SPLITS = ("train", "val", "test")
SPLIT_COLOURS = {"train": "#93c5fd", "val": "#fcd34d", "test": "#86efac"}


def label_colour(k: int) -> str:
    """Colour of foreground label ``k`` (1-based), shared by overlays and legends."""
    return LABEL_COLOURS[(k - 1) % len(LABEL_COLOURS)]


def metric_names(columns: Sequence[str], labels: Sequence[str]) -> dict[str, str]:
    """Per-label validation columns (``val_dice_<k>``) -> label names (``labels[k]``)."""
    out = {}
    for c in columns:
        if c.startswith("val_dice_") and c[9:].isdigit():
            k = int(c[9:])
            out[c] = labels[k] if k < len(labels) else f"label {k}"
    return out


def training_curves(metrics_tsv: str | os.PathLike, labels: Sequence[str],
                    out_png: str | os.PathLike) -> None:
    """Loss and validation Dice per label per epoch, best epoch marked, as a PNG."""
    rows = read_tsv(metrics_tsv)
    series = metric_names(list(rows[0]) if rows else [], labels)
    fig = training_curves_figure(rows, series, "imaging segmentation: training",
                                 "score (mean validation Dice)")
    save_figure(fig, out_png)


def dice_boxplot_figure(rows: Sequence[dict], labels: Sequence[str]):
    """Dice per foreground label and split: boxes, jittered points and ``n`` per box.

    Parameters
    ----------
    rows
        ``imaging/cohort.tsv`` rows (``split``, ``dice_<label>``; empty when unlabelled).
    labels
        All label names, background first.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 1.5 + 2.4 * len(labels[1:])), 3.8))
    rng = np.random.default_rng(0)
    pos, ticks, names = 0.0, [], []
    for k, name in enumerate(labels[1:], start=1):
        start = pos
        for split in SPLITS:
            cells = [r.get(f"dice_{name}") for r in rows if r.get("split") == split]
            vals = np.array([float(v) for v in cells if v not in ("", None)])
            if not len(vals):
                continue
            pos += 1
            box = ax.boxplot([vals], positions=[pos], widths=0.6, patch_artist=True,
                             showfliers=False, medianprops={"color": "black"})
            box["boxes"][0].set_facecolor(SPLIT_COLOURS[split])
            ax.scatter(pos + rng.uniform(-0.18, 0.18, len(vals)), vals, s=14, zorder=3,
                       color="#334155", edgecolors="white", linewidths=0.4)
            ticks.append(pos)
            names.append(f"{split}\nn={len(vals)}")
        if pos > start:
            ax.text((start + 1 + pos) / 2, -0.16, name, ha="center", va="top", fontsize=10,
                    fontweight="bold", color=label_colour(k), transform=ax.get_xaxis_transform())
            pos += 0.6
    if ticks:
        ax.set_xticks(ticks, names, fontsize=8)
    else:
        ax.text(0.5, 0.5, "no labelled subjects", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_xticks([])
    ax.set_ylabel("Dice")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Dice per label and split (one point per labelled subject)")
    return fig


def dice_boxplot(cohort_tsv: str | os.PathLike, labels: Sequence[str],
                 out_png: str | os.PathLike) -> None:
    """:func:`dice_boxplot_figure` of ``imaging/cohort.tsv`` as a PNG."""
    save_figure(dice_boxplot_figure(read_tsv(cohort_tsv), labels), out_png)


def overlay_title(row: dict, labels: Sequence[str]) -> str:
    """``subject (split)`` and the subject's 3D Dice per label, or that it has no label."""
    head = f"{row['subject']} ({row.get('split', '?')})"
    dice = [(n, row.get(f"dice_{n}")) for n in labels[1:]]
    if row.get("labelled") == "no" or all(v in ("", None) for _, v in dice):
        return f"{head}: no label file"
    vals = ", ".join(f"{n} {float(v):.2f}" if v not in ("", None) else f"{n} n/a"
                     for n, v in dice)
    return f"{head}\n3D Dice: {vals}"


def overlay_figure(image: np.ndarray, seg: np.ndarray, truth: np.ndarray | None,
                   labels: Sequence[str], title: str):
    """Image slice with predicted (solid) and true (dashed) contours and a legend.

    Parameters
    ----------
    image, seg, truth
        2D ``(rows, cols)`` slices; ``truth`` is ``None`` for an unlabelled subject.
    labels
        All label names, background first (label ``k`` is drawn in :func:`label_colour`).
    """
    from matplotlib.lines import Line2D

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.6))
    ax.imshow(image, cmap="gray", origin="lower")
    handles = []
    for k, name in enumerate(labels[1:], start=1):
        c = label_colour(k)
        if (seg == k).any():
            ax.contour(seg == k, levels=[0.5], colors=c, linewidths=1.3)
        if truth is not None and (truth == k).any():
            ax.contour(truth == k, levels=[0.5], colors=c, linewidths=0.9, linestyles="dashed")
        handles.append(Line2D([], [], color=c, lw=3, label=name))
    handles.append(Line2D([], [], color="0.2", lw=1.3, label="predicted"))
    if truth is not None:
        handles.append(Line2D([], [], color="0.2", lw=1.0, ls="--", label="truth"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3,
              fontsize=8, frameon=False)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig


def write_overlays(sheet_tsv: str | os.PathLike, table_tsv: str | os.PathLike,
                   segs: dict[str, str], labels: Sequence[str], n: int,
                   out_dir: str | os.PathLike) -> list[str]:
    """Overlay PNGs for the first ``n`` subjects, test subjects first, into ``out_dir``.

    Parameters
    ----------
    sheet_tsv
        The cohort sheet (``subject``, ``split``, ``image``, ``label``).
    table_tsv
        ``imaging/cohort.tsv`` (per-subject Dice for the titles).
    segs
        Subject -> predicted segmentation on the original grid.

    Returns
    -------
    list of str
        The subjects drawn.
    """
    dice = {r["subject"]: r for r in read_tsv(table_tsv)}
    rows = [r for r in read_tsv(sheet_tsv) if r["subject"] in segs]
    rows.sort(key=lambda r: (r["split"] != "test", r["subject"]))
    drawn = []
    with atomic_path(out_dir, is_dir=True) as tmp:
        for r in rows[:n]:
            sid = r["subject"]
            img, seg, lab = overlay_slices(r["image"], segs[sid], r["label"] or None, sid)
            title = overlay_title({**r, **dice.get(sid, {})}, labels)
            save_figure(overlay_figure(img, seg, lab, labels, title), Path(tmp) / f"{sid}.png")
            drawn.append(sid)
    return drawn


# ---- subject classification ------------------------------------------------------------------
def _roc_title(classes: Sequence[str]) -> str:
    if len(classes) == 2:
        return f"ROC of {classes[1]} vs {classes[0]}"
    return f"macro one-vs-rest ROC over {len(classes)} classes"


def roc_figure(folds: Sequence[tuple[str, Sequence[str], np.ndarray]], classes: Sequence[str],
               test: tuple[Sequence[str], np.ndarray] | None = None):
    """Out-of-fold ROC per fold, their mean (two folds or more) with a ±1 SD band, and the test
    set's.

    Parameters
    ----------
    folds
        ``(name, truth, proba)`` per fold: the fold's validation subjects' class names and
        ``(N, K)`` probabilities (columns in ``classes`` order). Folds whose truth has a single
        class have no ROC; they are skipped and counted in the title.
    classes
        The class names (curves as in :func:`voxseq.metrics.roc_points`).
    test
        ``(truth, proba)`` of the test subjects (the fold ensemble's mean probability).

    Returns
    -------
    matplotlib.figure.Figure
        One axes. The mean curve is the folds' TPR interpolated on
        :data:`voxseq.metrics.FPR_GRID`, labelled with the mean ± SD of the folds' AUROCs.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    curves, skipped = [], []
    for name, truth, proba in folds:
        pts = roc_points(truth, proba, classes)
        (skipped if pts["auroc"] is None else curves).append((name, pts))
    shades = plt.get_cmap("Blues")(np.linspace(0.4, 0.8, max(len(curves), 1)))
    for (name, pts), colour in zip(curves, shades, strict=False):
        ax.plot(pts["fpr"], pts["tpr"], lw=0.9, alpha=0.8, color=colour,
                label=f"{name} (AUROC {pts['auroc']:.2f})")
    if len(curves) > 1:
        tprs = np.array([np.interp(FPR_GRID, p["fpr"], p["tpr"]) for _, p in curves])
        mean, sd = tprs.mean(axis=0), tprs.std(axis=0)
        aucs = np.array([p["auroc"] for _, p in curves])
        ax.fill_between(FPR_GRID, np.clip(mean - sd, 0, 1), np.clip(mean + sd, 0, 1),
                        color="0.6", alpha=0.25, lw=0, label="±1 SD over folds")
        ax.plot(FPR_GRID, mean, color="black", lw=2.2,
                label=f"mean of {len(curves)} folds (AUROC {aucs.mean():.2f} ± {aucs.std():.2f})")
    if test is not None:
        pts = roc_points(test[0], test[1], classes)
        if pts["auroc"] is not None:
            ax.plot(pts["fpr"], pts["tpr"], color="#ea580c", lw=2.0,
                    label=f"test, n={len(test[0])} (AUROC {pts['auroc']:.2f})")
        else:
            ax.plot([], [], color="#ea580c", label="test: a single class, no ROC")
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=0.9, label="chance")
    if not curves and test is None:
        ax.text(0.5, 0.55, "no fold with two classes", ha="center", va="center")
    title = f"{_roc_title(classes)}\nout-of-fold"
    if skipped:
        title += f" ({len(skipped)} fold(s) with a single class skipped)"
    ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal", xlabel="false positive rate",
           ylabel="true positive rate", title=title)
    ax.title.set_fontsize(9)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig


def roc_curves(folds: Sequence[tuple[str, Sequence[str], np.ndarray]], classes: Sequence[str],
               out_png: str | os.PathLike,
               test: tuple[Sequence[str], np.ndarray] | None = None) -> None:
    """:func:`roc_figure` as a PNG."""
    save_figure(roc_figure(folds, classes, test), out_png)


def confusion_figure(matrices: dict[str, Sequence[Sequence[int]] | None],
                     classes: Sequence[str], title: str = ""):
    """Confusion matrices side by side (e.g. out-of-fold and test), counts in the cells.

    Parameters
    ----------
    matrices
        Panel title -> ``(K, K)`` counts, rows true and columns predicted in ``classes`` order
        (``classification_metrics()["confusion_matrix"]``), or ``None`` for a set without
        subjects (the panel says so). One matrix: ``{"out-of-fold": m}``.
    classes
        The K class names.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per panel. A cell's colour is its share of the true class (row), so the
        diagonal reads as per-class recall whatever the class sizes; text is white on dark cells.
    """
    plt = pyplot()
    k = len(classes)
    side = 1.2 + 0.75 * k
    fig, axes = plt.subplots(1, max(len(matrices), 1), figsize=(side * max(len(matrices), 1),
                                                                side), squeeze=False)
    for ax, (name, m) in zip(axes[0], matrices.items(), strict=False):
        if m is None:
            ax.text(0.5, 0.5, "no subject with a class", ha="center", va="center")
            ax.set_title(name, fontsize=9)
            ax.axis("off")
            continue
        m = np.asarray(m, dtype=np.int64)
        if m.shape != (k, k):
            raise ValueError(f"confusion matrix '{name}' has shape {m.shape}, expected ({k}, {k})")
        share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=10,
                        color="white" if share[i, j] > 0.5 else "black")
        ax.set_xticks(range(k), classes, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(k), classes, fontsize=8)
        ax.set(xlabel="predicted", ylabel="true")
        ax.set_title(f"{name} (n={int(m.sum())})", fontsize=9)
    if not matrices:
        axes[0, 0].text(0.5, 0.5, "no confusion matrix", ha="center", va="center")
        axes[0, 0].axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def confusion_heatmap(matrices: dict[str, Sequence[Sequence[int]] | None],
                      classes: Sequence[str], out_png: str | os.PathLike,
                      title: str = "") -> None:
    """:func:`confusion_figure` as a PNG."""
    save_figure(confusion_figure(matrices, classes, title), out_png)


def central_slices(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central axial, coronal and sagittal slices of a canonical RAS ``(X, Y, Z)`` volume.

    Each is transposed for ``imshow(..., origin="lower")``: axial ``(Y, X)`` with anterior up,
    coronal ``(Z, X)`` and sagittal ``(Z, Y)`` with superior up. The patient's right is on the
    image's right (neurological convention, as :func:`overlay_figure`) and anterior on the
    sagittal slice's right.
    """
    x, y, z = (s // 2 for s in volume.shape)
    return volume[:, :, z].T, volume[:, y, :].T, volume[x, :, :].T


def classification_grid_figure(rows: Sequence[dict]):
    """Central slices of each subject's classifier input, then the same with its Grad-CAM.

    Parameters
    ----------
    rows
        One dict per subject: ``image`` (``(X, Y, Z)`` canonical RAS, as the classifier saw it),
        ``cam`` (same shape, in [0, 1]) and ``title``.

    Returns
    -------
    matplotlib.figure.Figure
        Six axes per subject (axial, coronal, sagittal; then with the CAM in 'jet', alpha 0.45,
        where it exceeds 0.05), oriented as :func:`central_slices`, grey scale from the 1st to
        the 99th percentile of the subject's image; 9 in wide. No subject: one axes saying so.
    """
    plt = pyplot()
    if not rows:
        fig, ax = plt.subplots(figsize=(9, 1.5))
        ax.text(0.5, 0.5, "no test subject with a class", ha="center", va="center")
        ax.axis("off")
        return fig
    fig = plt.figure(figsize=(9, 1.85 * len(rows)), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(len(rows), 1))
    views = ("axial", "coronal", "sagittal")
    for r, (row, sub) in enumerate(zip(rows, subfigs, strict=True)):
        image, cam = np.asarray(row["image"], np.float32), np.asarray(row["cam"], np.float32)
        if image.ndim != 3 or cam.shape != image.shape:
            raise ValueError(f"classification grid '{row['title']}': image {image.shape} and "
                             f"cam {cam.shape} must be the same 3D shape")
        lo, hi = np.percentile(image, [1, 99])
        axes = sub.subplots(1, 6)
        for i, (img, heat) in enumerate(zip(central_slices(image), central_slices(cam),
                                            strict=True)):
            for ax in (axes[i], axes[3 + i]):
                ax.imshow(img, cmap="gray", origin="lower", vmin=lo, vmax=max(hi, lo + 1e-6))
                ax.set_xticks([])
                ax.set_yticks([])
            axes[3 + i].imshow(np.ma.masked_less_equal(heat, 0.05), cmap="jet", vmin=0, vmax=1,
                               alpha=0.45, origin="lower")
            if r == 0:
                axes[i].set_title(views[i], fontsize=8)
                axes[3 + i].set_title(f"{views[i]} + Grad-CAM", fontsize=8)
        sub.suptitle(row["title"], fontsize=9)
    return fig


def classification_grid(rows: Sequence[dict], out_png: str | os.PathLike) -> None:
    """:func:`classification_grid_figure` as a PNG."""
    save_figure(classification_grid_figure(rows), out_png)
