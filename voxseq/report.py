"""Report figures (PNG) for the Snakemake report: training curves, Dice box plot, overlays."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from voxseq.io.atomic import atomic_path, read_tsv  # noqa: E402


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def training_curves(metrics_tsv: str, out_png: str, title: str) -> None:
    """Train/validation loss and validation score per epoch."""
    rows = read_tsv(metrics_tsv)
    ep = [int(r["epoch"]) + 1 for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(ep, [float(r["train_loss"]) for r in rows], label="train")
    a.plot(ep, [float(r["val_loss"]) for r in rows], label="validation")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    for key in rows[0]:
        if key == "score" or key.startswith("val_dice_") or key.startswith("val_pearson"):
            b.plot(ep, [float(r[key]) if r[key] else np.nan for r in rows], label=key)
    b.set_xlabel("epoch")
    b.set_ylabel("validation metric")
    b.legend(fontsize=7)
    fig.suptitle(title)
    _save(fig, out_png)


def dice_boxplot(cohort_tsv: str, labels: list[str], out_png: str) -> None:
    """Dice per foreground label over labelled subjects, split by train/val/test."""
    rows = read_tsv(cohort_tsv)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    data, names = [], []
    for name in labels[1:]:
        for split in ("train", "val", "test"):
            vals = [
                float(r[f"dice_{name}"]) for r in rows if r["split"] == split and r[f"dice_{name}"]
            ]
            if vals:
                data.append(vals)
                names.append(f"{name}\n{split}")
    if data:
        ax.boxplot(data)
        ax.set_xticks(range(1, len(names) + 1), names, fontsize=8)
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1.02)
    ax.set_title("Dice per label and split")
    _save(fig, out_png)


def overlay(
    image: np.ndarray, seg: np.ndarray, truth: np.ndarray | None, title: str, out_png: str | Path
) -> None:
    """Image slice with predicted (solid) and true (dashed) contours."""
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(image, cmap="gray", origin="lower")
    colours = ["#ff4040", "#40c0ff", "#ffd040", "#80ff80"]
    for k in range(1, int(max(seg.max(), truth.max() if truth is not None else 0)) + 1):
        c = colours[(k - 1) % len(colours)]
        if (seg == k).any():
            ax.contour(seg == k, levels=[0.5], colors=c, linewidths=1.2)
        if truth is not None and (truth == k).any():
            ax.contour(truth == k, levels=[0.5], colors=c, linewidths=0.8, linestyles="dashed")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    _save(fig, out_png)
