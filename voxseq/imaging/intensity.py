"""Intensity normalisation schemes (nnU-Net's conventions).

- ``zscore``: per case, mean/std over the foreground mask (nonzero voxels by default).
- ``ct``: clip to the 0.5/99.5 percentiles of the training split's foreground, then z-score with
  the training split's clipped foreground mean/std (the same numbers for every subject).
- ``none``: cast only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from voxseq import VoxseqError

SCHEMES = ("zscore", "ct", "none")


def cohort_statistics(samples: Sequence[np.ndarray]) -> dict[str, float]:
    """Statistics of pooled foreground samples: 0.5/99.5 percentiles, clipped mean and std."""
    pooled = np.concatenate([np.asarray(s, np.float64).ravel() for s in samples])
    if pooled.size == 0:
        raise VoxseqError("intensity statistics: no foreground voxels in the training split")
    lo, hi = np.percentile(pooled, [0.5, 99.5])
    clipped = np.clip(pooled, lo, hi)
    return {
        "p005": float(lo),
        "p995": float(hi),
        "mean": float(clipped.mean()),
        "std": float(max(clipped.std(), 1e-8)),
        "n_voxels": int(pooled.size),
    }


def normalise(
    data: np.ndarray, scheme: str, stats: dict | None = None, mask: np.ndarray | None = None
) -> np.ndarray:
    """Normalise a volume.

    Parameters
    ----------
    data
        (X, Y, Z) intensities.
    scheme
        One of ``SCHEMES``.
    stats
        For ``ct``: the output of :func:`cohort_statistics` on the training split.
    mask
        For ``zscore``: voxels whose mean/std are used (default: nonzero voxels, or all when
        there are none).

    Returns
    -------
    float32 array of the same shape.
    """
    data = np.asarray(data, dtype=np.float32)
    if scheme == "none":
        return data.copy()
    if scheme == "zscore":
        m = mask if mask is not None else data != 0
        vals = data[m] if m.any() else data.ravel()
        return ((data - vals.mean()) / max(float(vals.std()), 1e-8)).astype(np.float32)
    if scheme == "ct":
        if not stats:
            raise VoxseqError("normalisation 'ct' needs training-split statistics")
        clipped = np.clip(data, stats["p005"], stats["p995"])
        return ((clipped - stats["mean"]) / stats["std"]).astype(np.float32)
    raise VoxseqError(f"unknown normalisation scheme {scheme!r}; choose one of {SCHEMES}")
