"""Sequence-logo figures (logomaker on matplotlib's Agg backend): discovered motifs, and the
attributions and ISM of the windows that were mutated.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from voxseq.figures import pyplot, save_figure
from voxseq.genomics.motifs import ALPHABET, Motif

MAX_MOTIFS = 12  # motifs drawn (the rest are in the MEME file)


def _logo(ax, matrix: np.ndarray, start: int = 0) -> None:
    import logomaker

    df = pd.DataFrame(np.asarray(matrix, float), columns=list(ALPHABET))
    df.index = df.index + start
    logomaker.Logo(df, ax=ax, color_scheme="classic", show_spines=False)
    ax.axhline(0, color="0.5", lw=0.5)


def information(ppm: np.ndarray, pseudo: float = 1e-3) -> np.ndarray:
    """Letter heights of an information-content logo: ``p * (2 - H)`` per position (bits)."""
    p = np.clip(np.asarray(ppm, float), pseudo, None)
    p = p / p.sum(1, keepdims=True)
    ic = 2 + (p * np.log2(p)).sum(1, keepdims=True)
    return p * ic


def plot_motif_logos(path: str | Path, motifs: Sequence[Motif], matches: Sequence[dict] = ()
                     ) -> None:
    """One row per motif (first ``MAX_MOTIFS``): its contribution-weight logo (CWM) and its
    information-content logo (PPM), titled with name, seqlet count, consensus and the planted
    motif it is the best match of (``matches`` from :func:`voxseq.genomics.motifs.match_planted`).
    """
    plt = pyplot()
    shown = list(motifs)[:MAX_MOTIFS]
    if not shown:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.text(0.5, 0.5, "no motif found", ha="center", va="center")
        ax.axis("off")
        save_figure(fig, path)
        return
    best = {}
    for r in matches:
        if r.get("motif"):
            best.setdefault(r["motif"], []).append(f"{r['planted']} ({r['core']}, "
                                                   f"Hamming {r['distance']}, {r['strand']})")
    fig, axes = plt.subplots(len(shown), 2, figsize=(11, 1.5 * len(shown) + 0.4), squeeze=False)
    for (ax_c, ax_p), m in zip(axes, shown, strict=True):
        if m.cwm is not None:
            _logo(ax_c, m.cwm)
        ax_c.set_ylabel("contribution", fontsize=7)
        _logo(ax_p, information(m.ppm))
        ax_p.set_ylim(0, 2)
        ax_p.set_ylabel("bits", fontsize=7)
        title = f"{m.name}: {m.n_sites} seqlets, consensus {m.consensus}"
        if m.name in best:
            title += "  =  planted " + "; ".join(best[m.name])
        ax_c.set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    save_figure(fig, path)


def plot_attribution_logos(path: str | Path, attr: dict) -> None:
    """For each ISM span of an attributions file (:func:`read_attributions`): the gradient x
    input logo over the span and the ISM logo (each reference base's height is minus the mean
    effect of its three substitutions: how much the reference base adds to the scalar)."""
    plt = pyplot()
    n = len(attr["ism"])
    if n == 0:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.text(0.5, 0.5, "no window was mutated (n_ism = 0)", ha="center", va="center")
        ax.axis("off")
        save_figure(fig, path)
        return
    fig, axes = plt.subplots(2 * n, 1, figsize=(12, 2.6 * n + 0.4), squeeze=False)
    for i in range(n):
        w, s = int(attr["ism_window"][i]), int(attr["ism_start"][i])
        ism = attr["ism"][i]
        width = ism.shape[0]
        oh = attr["onehot"][w, s:s + width].astype(float)
        ref_importance = -ism.sum(1, keepdims=True) / 3 * oh
        g0 = int(attr["start"][w]) + s
        name = f"{attr['contig'][w]}:{g0 + 1}-{g0 + width}"
        _logo(axes[2 * i, 0], attr["attributions"][w, s:s + width], g0 + 1)
        axes[2 * i, 0].set_title(f"{name}: gradient x input", fontsize=8, loc="left")
        _logo(axes[2 * i + 1, 0], ref_importance, g0 + 1)
        axes[2 * i + 1, 0].set_title(f"{name}: ISM (minus the mean effect of substitutions)",
                                     fontsize=8, loc="left")
    fig.tight_layout()
    save_figure(fig, path)
