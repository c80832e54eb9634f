"""Track metrics: Pearson R per track, on raw or log1p values."""

from __future__ import annotations

import numpy as np

from voxseq.metrics import pearson


def pearson_per_track(pred: np.ndarray, obs: np.ndarray, log1p: bool = False) -> np.ndarray:
    """Pearson R of predicted vs observed coverage, one value per track.

    Parameters
    ----------
    pred, obs
        ``(..., T)`` arrays of the same shape (e.g. windows x bins x tracks); all leading axes
        are pooled.
    log1p
        Correlate ``log(1 + x)`` instead of ``x`` (the stricter measure: low-coverage bins
        weigh as much as peaks). Negative values are clipped to 0 first.

    Returns
    -------
    numpy.ndarray
        ``(T,)`` float64; NaN for a constant track.
    """
    pred = np.asarray(pred, dtype=np.float64)
    obs = np.asarray(obs, dtype=np.float64)
    if pred.shape != obs.shape:
        raise ValueError(f"pearson_per_track: shapes differ, {pred.shape} vs {obs.shape}")
    t = pred.shape[-1]
    pred, obs = pred.reshape(-1, t), obs.reshape(-1, t)
    if log1p:
        pred, obs = np.log1p(np.maximum(pred, 0)), np.log1p(np.maximum(obs, 0))
    return np.array([pearson(pred[:, k], obs[:, k]) for k in range(t)])
