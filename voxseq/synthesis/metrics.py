"""BraSyn scores of a synthesised sequence against the real one.

As the BraTS 2023-2025 synthesis challenge scores: each volume is clipped to its own 0.5-99.5
percentiles (the lower bound floored at 0) and rescaled to [0, 1] (:func:`brasyn_scale`); SSIM is
computed per voxel with a Gaussian window (11 voxels, sigma 1.5, population covariances, data
range 1; :func:`ssim_map`) and averaged inside the labelled foreground (the lesion) and inside the
body outside it; PSNR and MAE are taken inside the body.

BraSyn scores MRI magnitudes, whose background is about 0. Volumes normalised by a z-score have a
negative background, which the floor at 0 would cut into; :func:`magnitude` maps such a volume to
a magnitude-like one first (background 0, body shifted so that its own 0.5 percentile is 0).

:func:`phantom_lesions` is the planted-lesion check: connected regions inside the body where the
synthesised volume is much brighter than the real one (both standardised inside the body).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # 2 * int(3.5 * 1.5 + 0.5) + 1 = 11 voxels, as scikit-image's window
K1, K2 = 0.01, 0.03


def brasyn_scale(volume: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Clip to the volume's own ``low``-``high`` percentiles (lower bound floored at 0) and
    rescale to [0, 1].

    Parameters
    ----------
    volume : (X, Y, Z) intensities

    Returns
    -------
    (X, Y, Z) float64 in [0, 1]; all zeros when the two bounds coincide.
    """
    v = np.asarray(volume, np.float64)
    lo, hi = np.percentile(v, [low, high])
    lo = max(float(lo), 0.0)
    if hi <= lo:
        return np.zeros_like(v)
    return (np.clip(v, lo, hi) - lo) / (hi - lo)


def body_mask(volume: np.ndarray) -> np.ndarray:
    """The body of a (normalised) volume: voxels above the volume's mean (air lies far below it
    after any normalisation), holes filled, the largest connected component.

    Parameters
    ----------
    volume : (X, Y, Z)

    Returns
    -------
    (X, Y, Z) bool; empty when nothing lies above the mean.
    """
    v = np.asarray(volume, np.float64)
    mask = ndimage.binary_fill_holes(v > v.mean())
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
    return lab == 1 + int(np.argmax(sizes))


def magnitude(volume: np.ndarray, body: np.ndarray) -> np.ndarray:
    """A z-scored volume made magnitude-like for :func:`brasyn_scale`: 0 outside ``body``,
    inside it the value minus the body's own 0.5 percentile, floored at 0.

    Parameters
    ----------
    volume, body : (X, Y, Z); ``body`` boolean and not empty
    """
    v = np.asarray(volume, np.float64)
    base = float(np.percentile(v[body], 0.5)) if body.any() else 0.0
    return np.where(body, np.maximum(v - base, 0.0), 0.0)


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Per-voxel SSIM with a Gaussian window (sigma 1.5, truncated at 3.5 sigma: 11 voxels),
    population (co)variances and reflected borders, as scikit-image's ``structural_similarity``
    (``gaussian_weights=True, use_sample_covariance=False, full=True``).

    Parameters
    ----------
    a, b : (X, Y, Z) volumes on one grid, values within ``data_range``

    Returns
    -------
    (X, Y, Z) float64 SSIM map.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"SSIM of volumes of different shapes {a.shape} and {b.shape}")

    def blur(x):
        return ndimage.gaussian_filter(x, SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")

    ua, ub = blur(a), blur(b)
    va = blur(a * a) - ua * ua
    vb = blur(b * b) - ub * ub
    vab = blur(a * b) - ua * ub
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    return ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua**2 + ub**2 + c1) * (va + vb + c2))


def _mean_in(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else float("nan")


def score_volume(
    synthetic: np.ndarray, real: np.ndarray, body: np.ndarray, lesion: np.ndarray | None
) -> dict[str, float]:
    """BraSyn scores of one synthesised volume.

    Parameters
    ----------
    synthetic, real : (X, Y, Z) magnitude-like intensities (see :func:`magnitude`), each scaled
        here by :func:`brasyn_scale`
    body : (X, Y, Z) bool, the body (brain) mask
    lesion : (X, Y, Z) bool labelled foreground, or None (no label)

    Returns
    -------
    ``ssim_lesion`` (NaN without lesion voxels), ``ssim_outside`` (body outside the lesion),
    ``ssim_body``, ``psnr`` (dB, data range 1, inside the body), ``mae`` (inside the body).
    """
    s, r = brasyn_scale(synthetic), brasyn_scale(real)
    smap = ssim_map(s, r)
    body = np.asarray(body, bool)
    lesion = np.zeros_like(body) if lesion is None else np.asarray(lesion, bool) & body
    err = (s - r)[body]
    mse = float(np.mean(err**2)) if err.size else float("nan")
    return {
        "ssim_lesion": _mean_in(smap, lesion),
        "ssim_outside": _mean_in(smap, body & ~lesion),
        "ssim_body": _mean_in(smap, body),
        "psnr": float(10 * np.log10(1.0 / mse)) if mse > 0 else float("inf"),
        "mae": float(np.mean(np.abs(err))) if err.size else float("nan"),
    }


def _body_z(volume: np.ndarray, body: np.ndarray) -> np.ndarray:
    """``volume`` standardised by robust statistics of its body voxels: minus their median,
    over the standard deviation of those between their 5th and 95th percentiles (a small bright
    region does not move either)."""
    v = np.asarray(volume, np.float64)
    inside = v[body]
    lo, hi = np.percentile(inside, [5, 95])
    core = inside[(inside >= lo) & (inside <= hi)]
    return (v - np.median(inside)) / max(float(core.std()), 1e-8)


def phantom_lesions(
    synthetic: np.ndarray,
    real: np.ndarray,
    body: np.ndarray,
    threshold: float = 1.5,
    min_voxels: int = 8,
    window: int = 3,
) -> dict[str, int]:
    """Lesion-like regions the synthesis created, where the real scan has none.

    Each volume is standardised inside the body (median, and the standard deviation of the
    body's 5-95 percentile range: a global scale mismatch, as between a smooth synthetic and a
    noisy real scan, cancels), their difference ``synthetic - real`` is median-filtered over a
    cube of ``window`` voxels (1: not at all; a lesion is a blob and survives, voxel noise does
    not), and connected components (faces touching) inside the body above ``threshold`` (those
    standard deviations) of at least ``min_voxels`` voxels are counted. On a lesion-free subject
    there should be none.

    Parameters
    ----------
    synthetic, real : (X, Y, Z) intensities on one grid
    body : (X, Y, Z) bool, not empty

    Returns
    -------
    ``phantom_regions`` (count) and ``phantom_voxels`` (their total size).
    """
    body = np.asarray(body, bool)
    diff = _body_z(synthetic, body) - _body_z(real, body)
    if window > 1:
        diff = ndimage.median_filter(diff, size=window, mode="nearest")
    lab, n = ndimage.label((diff > threshold) & body)
    if n == 0:
        return {"phantom_regions": 0, "phantom_voxels": 0}
    sizes = np.bincount(lab.ravel())[1:]
    big = sizes >= min_voxels
    return {"phantom_regions": int(big.sum()), "phantom_voxels": int(sizes[big].sum())}
