"""Resampling between a subject's canonical grid and the target-spacing grid.

Both grids cover the same field of view: voxel ``i`` of an ``n``-voxel axis spans
``[i, i + 1) * extent / n``. The resampled spacing is therefore ``extent / round(extent / target)``,
within half a voxel of the target, and going back lands exactly on the original voxel centres.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import affine_transform

ORDERS = {"nearest": 0, "linear": 1, "cubic": 3}


def target_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> tuple:
    """Shape of the target grid: ``round(shape * spacing / target)``, at least 1."""
    return tuple(
        max(int(round(n * s / t)), 1) for n, s, t in zip(shape, spacing, target, strict=True)
    )


def resample(data: np.ndarray, out_shape: Sequence[int], order: int | str = 1) -> np.ndarray:
    """Resample ``data`` (..., X, Y, Z) onto a grid of ``out_shape`` over the same extent.

    Parameters
    ----------
    data
        3D array, or 4D with leading channels (each channel resampled alike).
    out_shape
        The new (X, Y, Z).
    order
        0/"nearest" (labels: never invents values), 1/"linear", 3/"cubic".

    Returns
    -------
    float32 array (uint8 kept for order 0 on uint8 input).
    """
    order = ORDERS[order] if isinstance(order, str) else int(order)
    if data.ndim == 4:
        return np.stack([resample(c, out_shape, order) for c in data])
    in_shape = np.array(data.shape, dtype=np.float64)
    out = np.array(out_shape, dtype=np.float64)
    scale = in_shape / out
    offset = 0.5 * scale - 0.5  # voxel-centre alignment over a shared extent
    if tuple(data.shape) == tuple(out_shape):
        return data.copy()
    src = data if order == 0 else data.astype(np.float32, copy=False)
    res = affine_transform(
        src,
        scale,
        offset=offset,
        output_shape=tuple(int(s) for s in out_shape),
        order=order,
        mode="nearest",
        prefilter=order > 1,
    )
    return res


def resampled_spacing(shape: Sequence[int], spacing: Sequence[float], new_shape: Sequence[int]):
    """Effective voxel size of the resampled grid (mm)."""
    return np.array(shape, float) * np.array(spacing, float) / np.array(new_shape, float)
