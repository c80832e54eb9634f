"""Report figures of the genomics track (PNG, matplotlib without a display).

Observed vs predicted tracks and per-track Pearson R (drawn by ``genomics_infer``), the report
rules' training curves and the architectures compared (the variant-effect figure is in
:mod:`voxseq.genomics.variant_figure`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from voxseq.figures import pyplot, save_figure, training_curves_figure
from voxseq.io.atomic import read_tsv


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
    save_figure(fig, path, tight=False)


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
    save_figure(fig, path, tight=False)


def plot_message(path: str | Path, text: str) -> None:
    """A small PNG holding only ``text`` (a report figure with nothing to show)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 1.5))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.axis("off")
    save_figure(fig, path, dpi=None, tight=False)


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


def plot_arch_comparison(compare_json: dict, out_png: str | Path) -> None:
    """Architectures side by side: mean val and test Pearson R (left), test Pearson R per track
    (right, one point per track and architecture; the chosen architecture marked)."""
    plt = pyplot()
    rows = compare_json["candidates"]
    archs = [r["arch"] for r in rows]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 2]})
    x = np.arange(len(archs))
    for k, (key, label) in enumerate((("val_pearson_mean", "val"), ("test_pearson_mean", "test"))):
        vals = [np.nan if r[key] is None else r[key] for r in rows]
        bars = ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, label=label, color=f"C{k}")
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(x, [a + (" *" if a == compare_json["arch"] else "") for a in archs])
    ax.set_ylabel("mean Pearson R")
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.05)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("* chosen (best val)", fontsize=9)
    tracks = sorted({t for r in rows for t in r["test_pearson"]})
    for k, r in enumerate(rows):
        vals = [r["test_pearson"].get(t) for t in tracks]
        ax2.plot(np.arange(len(tracks)), [np.nan if v is None else v for v in vals], "o-",
                 ms=4, lw=0.8, color=f"C{k + 2}", label=r["arch"])
    if len(tracks) <= 30:
        ax2.set_xticks(np.arange(len(tracks)), tracks, rotation=90, fontsize=7)
    ax2.set_xlabel("track (subject)")
    ax2.set_ylabel("test Pearson R")
    ax2.legend(fontsize=8)
    fig.suptitle("genomics architectures on the test contigs")
    fig.tight_layout()
    save_figure(fig, out_png)
