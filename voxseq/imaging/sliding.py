"""Sliding-window inference: window positions, Gaussian importance map, weighted stitching.

Windows overlap by ``overlap`` of the patch (0.5 by default). Each window's logits are weighted
by a Gaussian (sigma = ``sigma_scale`` * patch) and accumulated into preallocated buffers on the
stitching device; the sum is divided by the accumulated weights. Memory: the buffers hold
``(n_classes + 1) * 4`` bytes per voxel of the (resampled) volume, plus one batch of windows.
"""

from __future__ import annotations

import functools
import itertools
import warnings
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


def _gaussian_1d(p: int, sigma_scale: float) -> np.ndarray:
    """The Gaussian along one patch axis (float64, centred, sigma ``p * sigma_scale``)."""
    x = np.arange(p, dtype=np.float64) - (p - 1) / 2.0
    return np.exp(-0.5 * (x / (p * sigma_scale)) ** 2)


def gaussian_importance(patch: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """Gaussian weight map over a patch, max 1, no zeros (float32, shape ``patch``)."""
    grids = [_gaussian_1d(p, sigma_scale) for p in patch]
    w = grids[0][:, None, None] * grids[1][None, :, None] * grids[2][None, None, :]
    w /= w.max()
    w[w == 0] = w[w > 0].min()
    return w.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _weight_map(patch: tuple[int, ...], sigma_scale: float) -> torch.Tensor:
    """:func:`gaussian_importance` as a CPU tensor, built once per patch and sigma (read only)."""
    return torch.from_numpy(gaussian_importance(patch, sigma_scale))


def _weight_sum(
    starts: Sequence[Sequence[int]], patch: Sequence[int], shape, sigma_scale: float
) -> torch.Tensor:
    """Sum of the Gaussian weights of every window over the (padded) volume, (X, Y, Z) float32.

    The map (:func:`gaussian_importance`) is a product of 1D Gaussians and the windows are the
    product of 1D start lists, so the sum is the outer product of the 1D sums (float64, cast to
    float32 as it is written, by torch's threads): one pass over the volume instead of one add
    per window.
    """
    sums = []
    for p, n, axis_starts in zip(patch, shape, starts, strict=True):
        g = _gaussian_1d(p, sigma_scale)
        total = np.zeros(n)
        for b in axis_starts:
            total[b : b + p] += g / g.max()
        sums.append(torch.from_numpy(total))
    wsum = torch.empty(tuple(shape), dtype=torch.float32)
    torch.mul((sums[0][:, None] * sums[1][None, :])[:, :, None], sums[2], out=wsum)
    return wsum


def _volume_tensor(volume: np.ndarray, patch: tuple[int, ...]) -> torch.Tensor:
    """The volume as a (C_in, X, Y, Z) float32 CPU tensor, zero-padded up to ``patch``.

    Shares memory with ``volume`` where it is float32, needs no padding and has no negative
    strides; it is only read (window views keep its strides and storage offset).
    """
    vol = np.asarray(volume, np.float32)
    if vol.ndim == 3:
        vol = vol[None]
    shape = vol.shape[1:]
    padded = [max(s, p) for s, p in zip(shape, patch, strict=True)]
    if padded != list(shape):
        buf = np.zeros((vol.shape[0], *padded), np.float32)
        buf[:, : shape[0], : shape[1], : shape[2]] = vol
        vol = buf
    elif any(st < 0 for st in vol.strides):  # a flipped view: torch takes no negative strides
        vol = np.ascontiguousarray(vol)
    with warnings.catch_warnings():  # a read-only array (np.load mmap) is never written here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(vol)


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
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """Stitched logits for a whole volume.

    Each batch of windows is copied (torch, its threads) into one reused buffer, predicted, and
    each window's logits are added, Gaussian-weighted, into the preallocated sum in place (one
    fused multiply-add, no temporary); the weight sum is computed once from 1D sums.

    Parameters
    ----------
    predict
        Maps a (B, C_in, *patch) tensor on ``device`` to (B, n_out, *patch) logits.
    volume
        (C_in, X, Y, Z) or (X, Y, Z) float array.
    mirror_axes
        Spatial axes (0-2) to mirror for test-time augmentation (all combinations averaged).
    memory_format
        Layout of the window batches given to ``predict``: ``torch.channels_last_3d`` for a
        model whose weights are in that layout (:func:`voxseq.models.unet.channels_last`).

    Returns
    -------
    (n_out, X, Y, Z) float32 tensor on the CPU.
    """
    patch = tuple(int(p) for p in patch)
    shape = np.shape(volume)[-3:]
    x = _volume_tensor(volume, patch)
    padded = tuple(x.shape[1:])
    acc = torch.zeros((n_out, *padded), dtype=torch.float32)
    axis_starts = [window_starts(s, p, overlap) for s, p in zip(padded, patch, strict=True)]
    starts = list(itertools.product(*axis_starts))
    x_win, acc_win = _window_views(x, starts, patch), _window_views(acc, starts, patch)
    flips = [()] + [
        c for r in range(1, len(mirror_axes) + 1) for c in itertools.combinations(mirror_axes, r)
    ]
    w = _weight_map(patch, float(sigma_scale))
    w_dev = w.to(device)
    gathered = torch.empty(
        (min(batch_size, len(starts)), x.shape[0], *patch), memory_format=memory_format
    )
    for i in range(0, len(starts), batch_size):
        n = min(batch_size, len(starts) - i)
        batch = gathered[:n]
        for j in range(n):
            batch[j].copy_(x_win(i + j))
        out = _predict(predict, batch.to(device), flips).detach()
        if out.device.type != "cpu":
            out = (out * w_dev).cpu()
            for j in range(n):
                acc_win(i + j).add_(out[j])
            continue
        for j in range(n):  # acc += out * w in one fused pass, no temporary
            acc_win(i + j).addcmul_(out[j], w)
    acc.div_(_weight_sum(axis_starts, patch, padded, sigma_scale))
    lo, hi = torch.aminmax(acc)  # NaN propagates; no full-size boolean temporary
    if not (torch.isfinite(lo) and torch.isfinite(hi)):
        raise FloatingPointError("non-finite values in the stitched prediction")
    if padded == tuple(shape):
        return acc
    return acc[:, : shape[0], : shape[1], : shape[2]].contiguous()


def _window_views(
    t: torch.Tensor, starts: Sequence[Sequence[int]], patch: tuple[int, ...]
) -> Callable[[int], torch.Tensor]:
    """``k -> t[:, window k]``: the view of a (C, X, Y, Z) tensor at ``starts[k]``, made with
    one ``as_strided`` call from a precomputed storage offset (not four slicing calls)."""
    size, stride = (t.shape[0], *patch), t.stride()
    offsets = [
        t.storage_offset() + sum(b * st for b, st in zip(start, stride[1:], strict=True))
        for start in starts
    ]
    return lambda k: t.as_strided(size, stride, offsets[k])


def _predict(predict, batch: torch.Tensor, flips: Sequence[Sequence[int]]) -> torch.Tensor:
    """Float logits of one batch, averaged over the mirrorings in ``flips`` (``()``: as is)."""
    out = None
    for f in flips:
        dims = [d + 2 for d in f]
        yb = predict(torch.flip(batch, dims) if dims else batch).float()
        yb = torch.flip(yb, dims) if dims else yb
        out = yb if out is None else out + yb
    return out / len(flips) if len(flips) > 1 else out
