"""Association figures per phenotype: Manhattan plot and QQ plot with lambda GC (PNG)."""

from __future__ import annotations

import os

import numpy as np

from voxseq.figures import pyplot, save_figure
from voxseq.genetics.association import GENOME_WIDE, lambda_gc

CHROM_COLOURS = ("#1f4e79", "#6b9bd1")


def _chrom_key(c: str) -> tuple:
    s = str(c).removeprefix("chr")
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def manhattan_figure(chrom: np.ndarray, pos: np.ndarray, p: np.ndarray, title: str,
                     threshold: float = GENOME_WIDE):
    """-log10 p along the genome, chromosomes in natural order, alternating colours.

    Parameters
    ----------
    chrom, pos, p : (M,) chromosome names, positions, p-values (NaN ones are not drawn)
    threshold : the dashed line (genome-wide 5e-8)
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ok = np.isfinite(p)
    offset, ticks, labels = 0.0, [], []
    for i, c in enumerate(sorted(set(chrom[ok]), key=_chrom_key)):
        sel = ok & (chrom == c)
        x = pos[sel] - pos[sel].min() + offset
        ax.scatter(x, -np.log10(np.maximum(p[sel], 1e-300)), s=4,
                   color=CHROM_COLOURS[i % 2], rasterized=True)
        ticks.append(offset + (x.max() - offset) / 2)
        labels.append(str(c))
        offset = x.max() + max(1.0, 0.02 * (x.max() - x.min() + 1))
    ax.axhline(-np.log10(threshold), color="#dc2626", ls="--", lw=0.8)
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_xlabel("chromosome")
    ax.set_ylabel("-log10 p")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def qq_figure(p: np.ndarray, title: str):
    """Observed against expected -log10 p under the null, with lambda GC in the title."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    obs = np.sort(p[np.isfinite(p)])
    n = obs.size
    if n:
        exp = -np.log10((np.arange(1, n + 1) - 0.5) / n)
        ax.scatter(exp, -np.log10(np.maximum(obs, 1e-300)), s=4, color=CHROM_COLOURS[0],
                   rasterized=True)
        top = exp.max()
        ax.plot([0, top], [0, top], color="#dc2626", lw=0.8)
    ax.set_xlabel("expected -log10 p")
    ax.set_ylabel("observed -log10 p")
    ax.set_title(f"{title}\nlambda GC = {lambda_gc(obs):.3f} ({n} variants)", fontsize=10)
    fig.tight_layout()
    return fig


def association_plots(chrom, pos, p, phenotype: str, out_manhattan: str | os.PathLike,
                      out_qq: str | os.PathLike) -> float:
    """Write one phenotype's Manhattan and QQ PNGs; returns its lambda GC."""
    chrom, pos, p = np.asarray(chrom), np.asarray(pos), np.asarray(p, np.float64)
    save_figure(manhattan_figure(chrom, pos, p, f"{phenotype}: association"), out_manhattan)
    save_figure(qq_figure(p, f"{phenotype}: QQ"), out_qq)
    return lambda_gc(p)
