"""Sliding-window inference: window positions, Gaussian importance map, weighted stitching.

Windows overlap by ``overlap`` of the patch (0.5 by default). Each window's logits are weighted
by a Gaussian (sigma = ``sigma_scale`` * patch) and accumulated into preallocated buffers on the
stitching device; the sum is divided by the accumulated weights. Memory: the buffers hold
``(n_classes + 1) * 4`` bytes per voxel of the (resampled) volume, plus one batch of windows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch


def window_starts(size: int, patch: int, overlap: float = 0.5) -> list[int]:
    """Start offsets along one axis: evenly spread, first at 0, last at ``size - patch``.

    Uses the smallest number of windows whose step is at most ``patch * (1 - overlap)``.
    ``size`` smaller than ``patch`` gives ``[0]`` (the volume is padded).
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
    if size <= patch:
        return [0]
    step = patch * (1.0 - overlap)
    n = int(np.ceil((size - patch) / step)) + 1
    return [int(round(i * (size - patch) / (n - 1))) for i in range(n)]


def gaussian_importance(patch: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """Gaussian weight map over a patch, max 1, no zeros (float32, shape ``patch``)."""
    grids = []
    for p in patch:
        x = np.arange(p, dtype=np.float64) - (p - 1) / 2.0
        grids.append(np.exp(-0.5 * (x / (p * sigma_scale)) ** 2))
    w = grids[0][:, None, None] * grids[1][None, :, None] * grids[2][None, None, :]
    w /= w.max()
    w[w == 0] = w[w > 0].min()
    return w.astype(np.float32)


def sliding_window_logits(
    predict: Callable[[torch.Tensor], torch.Tensor],
    volume: np.ndarray,
    patch: Sequence[int],
    n_out: int,
    overlap: float = 0.5,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    sigma_scale: float = 0.125,
    mirror_axes: Sequence[int] = (),
) -> torch.Tensor:
    """Stitched logits for a whole volume.

    Parameters
    ----------
    predict
        Maps a (B, C_in, *patch) tensor on ``device`` to (B, n_out, *patch) logits.
    volume
        (C_in, X, Y, Z) or (X, Y, Z) float array.
    mirror_axes
        Spatial axes (0-2) to mirror for test-time augmentation (all combinations averaged).

    Returns
    -------
    (n_out, X, Y, Z) float32 tensor on the CPU.
    """
    vol = np.asarray(volume, np.float32)
    if vol.ndim == 3:
        vol = vol[None]
    shape = vol.shape[1:]
    padded = [max(s, p) for s, p in zip(shape, patch, strict=True)]
    if list(padded) != list(shape):
        buf = np.zeros((vol.shape[0], *padded), np.float32)
        buf[:, : shape[0], : shape[1], : shape[2]] = vol
        vol = buf
    x = torch.from_numpy(vol)
    acc = torch.zeros((n_out, *padded), dtype=torch.float32)
    wsum = torch.zeros(padded, dtype=torch.float32)
    weight = torch.from_numpy(gaussian_importance(patch, sigma_scale))
    starts = list(
        itertools.product(
            *(window_starts(s, p, overlap) for s, p in zip(padded, patch, strict=True))
        )
    )
    flips = [()] + [
        c for r in range(1, len(mirror_axes) + 1) for c in itertools.combinations(mirror_axes, r)
    ]
    w_dev = weight.to(device)
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        sl = [tuple(slice(b, b + p) for b, p in zip(st, patch, strict=True)) for st in chunk]
        batch = torch.stack([x[(slice(None), *s)] for s in sl]).to(device)
        out = torch.zeros((len(chunk), n_out, *patch), device=device)
        for f in flips:
            dims = [d + 2 for d in f]
            xb = torch.flip(batch, dims) if dims else batch
            yb = predict(xb).float()
            out += torch.flip(yb, dims) if dims else yb
        out = (out / len(flips)) * w_dev
        out = out.cpu()
        for j, s in enumerate(sl):
            acc[(slice(None), *s)] += out[j]
            wsum[s] += weight
    acc /= wsum
    if not torch.isfinite(acc).all():
        raise FloatingPointError("non-finite values in the stitched prediction")
    return acc[:, : shape[0], : shape[1], : shape[2]].contiguous()
