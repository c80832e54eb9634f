"""Imaging report figures: training curves, Dice box plot and overlays, with label names.

Labels are named by the config's ``imaging.labels`` (index 0 is the background), so the
training metric ``val_dice_1`` is drawn as e.g. ``organ``. Each figure has a ``*_figure``
function returning the matplotlib Figure (for tests) and a function that writes the PNG.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxseq.imaging.cohort import overlay_slices
from voxseq.io.atomic import atomic_path, read_tsv
from voxseq.report import LABEL_COLOURS, pyplot, save_figure, training_curves_figure

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
