"""Track metrics: Pearson R per track, on raw or log1p values, at once or over chunks, and the
warnings for a Pearson that cannot be computed."""

from __future__ import annotations

from collections.abc import Sequence

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


class PearsonAccumulator:
    """Pearson R per track over chunks of windows, without holding them all.

    Means and co-moments are merged chunk by chunk (Chan, Golub and LeVeque's pairwise update);
    a single chunk gives exactly :func:`pearson_per_track`'s value, several agree with it to
    rounding. Call :meth:`update` with ``(..., T)`` arrays, then :meth:`result`.
    """

    def __init__(self, n_tracks: int, log1p: bool = False) -> None:
        self.log1p = log1p
        self.n = 0
        self.mean = np.zeros((2, n_tracks))  # predicted, observed
        self.m2 = np.zeros((2, n_tracks))  # sums of squared deviations
        self.c = np.zeros(n_tracks)  # sum of products of deviations

    def update(self, pred: np.ndarray, obs: np.ndarray) -> None:
        pred, obs = np.asarray(pred), np.asarray(obs)
        if pred.shape != obs.shape:
            raise ValueError(f"PearsonAccumulator: shapes differ, {pred.shape} vs {obs.shape}")
        t = pred.shape[-1]
        pred, obs = pred.reshape(-1, t), obs.reshape(-1, t)
        nb = len(pred)
        if nb == 0:
            return
        mean, m2, c = np.zeros((2, t)), np.zeros((2, t)), np.zeros(t)
        for k in range(t):  # the operations of voxseq.metrics.pearson, track by track
            x = np.asarray(pred[:, k], np.float64).ravel()
            y = np.asarray(obs[:, k], np.float64).ravel()
            if self.log1p:
                x, y = np.log1p(np.maximum(x, 0)), np.log1p(np.maximum(y, 0))
            mean[:, k] = x.mean(), y.mean()
            xs, ys = x - mean[0, k], y - mean[1, k]
            m2[:, k] = (xs**2).sum(), (ys**2).sum()
            c[k] = (xs * ys).sum()
        if self.n == 0:
            self.n, self.mean, self.m2, self.c = nb, mean, m2, c
            return
        n = self.n + nb
        delta = mean - self.mean
        self.c = self.c + c + delta[0] * delta[1] * self.n * nb / n
        self.m2 = self.m2 + m2 + delta**2 * self.n * nb / n
        self.mean = self.mean + delta * nb / n
        self.n = n

    def result(self) -> np.ndarray:
        """``(T,)`` float64 Pearson R; NaN for a track with a constant side (or no values)."""
        denom = np.sqrt(self.m2[0] * self.m2[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denom > 0, self.c / np.where(denom > 0, denom, 1.0), np.nan)

    def reasons(self) -> list[str | None]:
        """Why each track's R is NaN (None where it is a number)."""
        out = []
        for k in range(len(self.c)):
            if self.n == 0:
                out.append("no bins to compare")
            elif self.m2[1, k] == 0:
                out.append(f"observed coverage is constant ({self.mean[1, k]:g}) over "
                           f"{self.n} bins")
            elif self.m2[0, k] == 0:
                out.append(f"predictions are constant over {self.n} bins")
            else:
                out.append(None)
        return out


def pearson_warnings(tracks: Sequence[str], reasons: Sequence[str | None], split: str,
                     contigs: Sequence[str] = ()) -> list[str]:
    """One message per track whose ``split`` Pearson is undefined (NaN), naming the reason."""
    where = f" on {', '.join(contigs)}" if contigs else ""
    return [f"{split} Pearson of track {t}{where} cannot be computed: {why}; it is left "
            "out of the mean" for t, why in zip(tracks, reasons, strict=True) if why]
