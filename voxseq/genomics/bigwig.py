"""Predicted coverage as bigWig: tiled predictions stitched along a contig, written atomically."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyBigWig

from voxseq.genomics.sequence import one_hot
from voxseq.io.atomic import atomic_path

log = logging.getLogger(__name__)


def tile_starts(length: int, window: int, bin_size: int) -> list[int]:
    """Window starts covering a contig with half-window overlap, all on the bin grid.

    The last window ends at the last full bin of the contig; a contig shorter than the window
    gets one window at 0 (padded with N by :func:`predict_contig`).
    """
    last = max((length - window) // bin_size * bin_size, 0)
    step = max(window // 2 // bin_size * bin_size, bin_size)
    starts = list(range(0, last + 1, step))
    if starts[-1] != last:
        starts.append(last)
    return starts


def centre_weights(n_bins: int) -> np.ndarray:
    """Per-bin stitching weights ``(n_bins,)``: 1 in the centre, falling towards the edges."""
    x = (np.arange(n_bins) + 0.5) / n_bins - 0.5
    return np.exp(-0.5 * (x / 0.25) ** 2) + 1e-3


def predict_contig(predict_fn: Callable[[np.ndarray], np.ndarray], sequence: str, window: int,
                   bin_size: int, batch_size: int = 16) -> np.ndarray:
    """Stitched predictions over one contig.

    Parameters
    ----------
    predict_fn
        One-hot ``(N, window, 4)`` -> ``(N, window // bin_size, T)``.
    sequence
        The contig's sequence.

    Returns
    -------
    numpy.ndarray
        ``(n, T)`` float32 for the first ``n`` bins of the contig, each a centre-weighted
        average of the overlapping windows: ``n = len // bin_size`` (a last partial bin is not
        predicted), or ``ceil(len / bin_size)`` for a contig shorter than one window.
    """
    length = len(sequence)
    nb = window // bin_size
    starts = tile_starts(length, window, bin_size)
    total = None
    weight = np.zeros(starts[-1] // bin_size + nb)
    w = centre_weights(nb)
    for b in range(0, len(starts), batch_size):
        part = starts[b:b + batch_size]
        seqs = []
        for s in part:
            oh = one_hot(sequence[s:s + window])
            if len(oh) < window:
                oh = np.concatenate([oh, np.zeros((window - len(oh), 4), oh.dtype)])
            seqs.append(oh)
        pred = np.asarray(predict_fn(np.stack(seqs)), dtype=np.float64)
        if total is None:
            total = np.zeros((len(weight), pred.shape[-1]))
        for s, p in zip(part, pred, strict=True):
            g = s // bin_size
            total[g:g + nb] += p * w[:, None]
            weight[g:g + nb] += w
    n_out = min(-(-length // bin_size), len(weight))
    return (total / weight[:, None])[:n_out].astype(np.float32)


def write_bigwigs(paths: dict[str, Path], contigs: dict[str, int],
                  values: Iterable[tuple[str, np.ndarray]], bin_size: int) -> None:
    """Write one bigWig per track, contig by contig, each under a temporary name then renamed.

    Parameters
    ----------
    paths
        Track -> output ``.bw``; the order of the tracks is the column order of ``values``.
    contigs
        Every reference contig with its length (the bigWig header), in reference order.
    values
        ``(contig, (n_bins, T) array)`` pairs in header order, bins starting at 0 with step
        ``bin_size`` (a last partial bin ends at the contig end); contigs left out get no
        entries. Consumed lazily, so only one contig's values are in memory at a time.
    """
    tracks = list(paths)
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_path(paths[t])) for t in tracks]
        handles = [pyBigWig.open(str(tmp), "w") for tmp in tmps]
        try:
            for bw in handles:
                bw.addHeader(list(contigs.items()), maxZooms=6)
            for contig, vals in values:
                length = contigs[contig]
                n = min(len(vals), -(-length // bin_size))
                partial = n * bin_size > length
                for k, bw in enumerate(handles):
                    v = np.nan_to_num(vals[:n, k].astype(np.float64)).tolist()
                    full = v[:-1] if partial else v
                    if full:
                        bw.addEntries(contig, 0, values=full, span=bin_size, step=bin_size)
                    if partial:
                        bw.addEntries([contig], [(n - 1) * bin_size], ends=[length],
                                      values=v[-1:])
        finally:
            for bw in handles:
                bw.close()
    log.info("wrote %d bigWig tracks", len(tracks))
