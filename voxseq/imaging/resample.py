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


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each target voxel for nearest-neighbour resampling along one axis.

    The arithmetic is scipy's ``affine_transform`` with a diagonal matrix (``zoom_shift``: the
    coordinate ``(o + offset / scale) * scale`` in float64, rounded half up, clamped), so labels
    come out bit-identical to it.
    """
    scale = n_in / n_out
    shift = (0.5 * scale - 0.5) / scale
    coord = (np.arange(n_out, dtype=np.float64) + shift) * scale
    return np.clip(np.floor(coord + 0.5).astype(np.intp), 0, n_in - 1)


def resample(data: np.ndarray, out_shape: Sequence[int], order: int | str = 1,
             engine: str = "scipy") -> np.ndarray:
    """Resample ``data`` (..., X, Y, Z) onto a grid of ``out_shape`` over the same extent.

    Voxel centres are aligned over the shared extent and values beyond the edge repeat the edge
    voxel (scipy's ``mode="nearest"``). Nearest is a separable gather (bit-identical to scipy's
    ``affine_transform``), cubic is scipy's spline ``affine_transform``. Linear is scipy's
    ``affine_transform`` with ``engine="scipy"``, or with ``engine="torch"`` torch's trilinear
    ``interpolate`` (``align_corners=False``, the same grid; every channel in one pass, on
    torch's threads; within float32 rounding of scipy's, several times faster). Processes that
    hold torch anyway (inference, QC, classification) take torch; normalise and the statistics
    rule keep scipy, as importing torch would cost each of their jobs about 2 s.

    Parameters
    ----------
    data
        3D array, or 4D with leading channels (each channel resampled alike).
    out_shape
        The new (X, Y, Z).
    order
        0/"nearest" (labels: never invents values), 1/"linear", 3/"cubic".
    engine
        ``"scipy"`` or ``"torch"``: the linear interpolation's engine (ignored otherwise).

    Returns
    -------
    float32 array (uint8 kept for order 0 on uint8 input).
    """
    order = ORDERS[order] if isinstance(order, str) else int(order)
    if engine not in ("scipy", "torch"):
        raise ValueError(f"resample: engine must be 'scipy' or 'torch', got {engine!r}")
    out_shape = tuple(int(s) for s in out_shape)
    torch_linear = order == 1 and engine == "torch"
    if data.ndim == 4 and order != 0 and not torch_linear:
        return np.stack([resample(c, out_shape, order) for c in data])
    if tuple(data.shape[-3:]) == out_shape:
        return data.copy()
    if order == 0:
        idx = [_nearest_index(n, m) for n, m in zip(data.shape[-3:], out_shape, strict=True)]
        return data[(..., *np.ix_(*idx))]
    if torch_linear:
        import torch  # only here: the normalise and stats rules never load it
        import torch.nn.functional as F

        src = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
        lead = src.shape[:-3]
        src = src.reshape(1, -1, *src.shape[-3:])
        out = F.interpolate(src, size=out_shape, mode="trilinear", align_corners=False)
        return out.reshape(*lead, *out_shape).numpy()
    in_shape = np.array(data.shape, dtype=np.float64)
    scale = in_shape / np.array(out_shape, dtype=np.float64)
    offset = 0.5 * scale - 0.5  # voxel-centre alignment over a shared extent
    return affine_transform(
        data.astype(np.float32, copy=False),
        scale,
        offset=offset,
        output_shape=out_shape,
        order=order,
        mode="nearest",
        prefilter=order > 1,
    )


def resampled_spacing(shape: Sequence[int], spacing: Sequence[float], new_shape: Sequence[int]):
    """Effective voxel size of the resampled grid (mm)."""
    return np.array(shape, float) * np.array(spacing, float) / np.array(new_shape, float)


def resample_to_grid(
    data: np.ndarray,
    affine: np.ndarray,
    ref_affine: np.ndarray,
    ref_shape: Sequence[int],
    order: int = 1,
) -> np.ndarray:
    """Resample a volume onto another grid of the same space (world coordinates, mm).

    Parameters
    ----------
    data
        (X, Y, Z) volume whose voxel-to-world matrix is ``affine``.
    ref_affine, ref_shape
        The grid to resample onto (another channel's canonical affine and shape).
    order
        Spline order: 1 linear (images), 0 nearest.

    Returns
    -------
    float32 (``ref_shape``) array. Points outside ``data``'s field of view take its minimum
    (the background of an MRI sequence or a CT, not an invented 0 in Hounsfield units).
    """
    vox = np.linalg.inv(np.asarray(affine, np.float64)) @ np.asarray(ref_affine, np.float64)
    return affine_transform(
        np.asarray(data, np.float32),
        vox[:3, :3],
        offset=vox[:3, 3],
        output_shape=tuple(int(s) for s in ref_shape),
        order=order,
        mode="constant",
        cval=float(np.min(data)),
        output=np.float32,
    )
