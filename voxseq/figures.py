"""Shared plotting helpers: headless pyplot, atomic PNG saving, label colours and the training
curves figure (the loss and validation metrics per epoch of any fit).

The figures of one modality live in :mod:`voxseq.imaging.plots`, :mod:`voxseq.genomics.plots`
and :mod:`voxseq.qc.plots`; the results page that shows them is :mod:`voxseq.report`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from voxseq.io.atomic import atomic_path

#: Colour of foreground label k (1-based) is ``LABEL_COLOURS[(k - 1) % len(LABEL_COLOURS)]``.
LABEL_COLOURS = ("#ff4040", "#40c0ff", "#ffd040", "#80ff80", "#ff80ff", "#ffa040")


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, *, dpi: float | None = 110,
                tight: bool = True) -> None:
    """Write ``fig`` as a PNG atomically and close it.

    Parameters
    ----------
    dpi
        Resolution (None: matplotlib's ``savefig.dpi``, the figure's own).
    tight
        Crop the PNG to what is drawn (``bbox_inches="tight"``); else the whole figure.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight" if tight else None, format="png")
    pyplot().close(fig)


def as_float(value) -> float:
    """``float(value)``, NaN where it is not a number (an empty TSV cell, None)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def best_epoch(rows: Sequence[dict]) -> int | None:
    """Row index of the highest ``score`` (the first on ties, as the fit loop keeps it).

    Returns ``None`` when no row has a finite score.
    """
    scores = np.array([as_float(r.get("score")) for r in rows], dtype=float)
    if not np.isfinite(scores).any():
        return None
    return int(np.nanargmax(scores))


def training_curves_figure(rows: Sequence[dict], series: dict[str, str], title: str,
                           score_label: str, max_series: int = 8):
    """Loss per epoch (left) and validation metrics per epoch (right), best epoch marked.

    Parameters
    ----------
    rows
        The fit loop's metrics table (``epoch`` 0-based, ``train_loss``, ``val_loss``,
        ``score`` and per-label/track columns).
    series
        Column -> legend name of the per-label/track metrics drawn beside ``score``.
    score_label
        Legend name of ``score`` (what the bundle's best epoch is chosen on).
    max_series
        Above this many series they are drawn thin and grey under one legend entry.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not rows:
        raise ValueError(f"training curves '{title}': the metrics table has no rows")
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    ep = np.array([int(r["epoch"]) + 1 for r in rows])
    col = {k: np.array([as_float(r.get(k)) for r in rows]) for k in rows[0]}
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(ep, col["train_loss"], marker=".", label="train")
    a.plot(ep, col["val_loss"], marker=".", label="validation")
    many = len(series) > max_series
    for i, (key, name) in enumerate(series.items()):
        if many:
            b.plot(ep, col[key], color="0.75", lw=0.8,
                   label=f"per track ({len(series)})" if i == 0 else None)
        else:
            b.plot(ep, col[key], marker=".", lw=1.2, label=name)
    b.plot(ep, col["score"], color="black", lw=2, marker=".", label=score_label)
    best = best_epoch(rows)
    if best is not None:
        for ax in (a, b):
            ax.axvline(ep[best], color="C3", ls=":", lw=1.2)
        a.plot([], [], color="C3", ls=":", label=f"best epoch {ep[best]}")
        b.scatter([ep[best]], [col["score"][best]], marker="*", s=160, color="C3", zorder=5,
                  label=f"best: epoch {ep[best]}, {col['score'][best]:.3f}")
    for ax, ylabel in ((a, "loss"), (b, "validation metric")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
