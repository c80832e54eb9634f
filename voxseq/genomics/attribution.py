"""Attributions of the genomics sequence model: gradient x input and in-silico saturation
mutagenesis (ISM) on the highest-signal test windows.

The scalar differentiated (and mutated) for a window is its **central predicted coverage**:

    s(x) = mean over tracks of the sum, over the window's central bins, of the model's output,
    averaged over the two strands: 0.5 * (s_fwd(x) + s_fwd(rc(x)))

The model's output units are the training targets divided by each track's training mean (the
bundle's ``target_scale``), so every track weighs the same in the mean. The central bins are the
``center_bins`` bins in the middle of the window (by default ``stride / bin_size``: consecutive
windows' centres tile the genome without overlap); the span is symmetric, so on the reverse strand
it covers the same genomic bins, and the strand average is the prediction the pipeline reports
(voxseq.genomics.train.predict with ``rc_average``).

Gradient x input: ``g = ds/dx`` at the one-hot input (``(L, 4)``); the attribution of a position
is ``g`` at its observed base (``g * x``; zero at N). The *hypothetical* contribution of each base
is ``g`` minus its mean over the four bases at that position (the gradient correction of
Majdandzic et al. 2023: the component of the gradient that leaves the one-hot simplex is
removed); it is what motif discovery clusters on.

ISM: every base of a span replaced by each of the three others, one at a time; the effect is
``s(mutant) - s(reference)`` (0 at the reference base; for N, each base's effect against N).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from voxseq import VoxseqError
from voxseq.genomics.windows import read_meta, read_windows, split_indices
from voxseq.io.atomic import atomic_path

log = logging.getLogger(__name__)

SCALAR = ("mean over tracks of the summed model output (targets / track training mean) over the "
          "window's central bins, averaged over both strands")


def central_bins(n_bins: int, center_bins: int | None) -> tuple[int, int]:
    """``(start, stop)`` of the central bins: ``center_bins`` (all when None) in the middle,
    one more when ``n_bins - center_bins`` is odd, so that the span is symmetric.

    Raises
    ------
    ValueError
        When ``center_bins`` is not in ``1 .. n_bins``.
    """
    c = n_bins if center_bins is None else int(center_bins)
    if not 1 <= c <= n_bins:
        raise ValueError(f"attribution: center_bins must be in 1..{n_bins}, got {center_bins}")
    c += (n_bins - c) % 2
    start = (n_bins - c) // 2
    return start, start + c


def window_scalar(model: nn.Module, x: torch.Tensor, bins: tuple[int, int],
                  rc_average: bool = True) -> torch.Tensor:
    """The scalar of each window (module docstring): ``x`` ``(N, 4, L)`` float -> ``(N,)``."""
    b0, b1 = bins
    s = model(x)[:, :, b0:b1].sum(2).mean(1)
    if rc_average:
        s = 0.5 * (s + model(x.flip(1, 2))[:, :, b0:b1].sum(2).mean(1))
    return s


def gradient_x_input(model: nn.Module, onehot: np.ndarray, bins: tuple[int, int],
                     rc_average: bool = True, batch_size: int = 16,
                     device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the window scalar with respect to the one-hot input.

    Parameters
    ----------
    model
        ``(N, 4, L)`` -> ``(N, T, bins)``; put in eval mode here.
    onehot
        ``(N, L, 4)`` uint8 or float windows.
    bins
        Central bins ``(start, stop)`` (:func:`central_bins`).

    Returns
    -------
    gradient : numpy.ndarray
        ``(N, L, 4)`` float32 ``ds/dx``; the attribution is ``gradient * onehot``.
    scalar : numpy.ndarray
        ``(N,)`` float32, the scalar of each window.
    """
    model.eval()
    grads, values = [], []
    for i in range(0, len(onehot), batch_size):
        x = torch.tensor(np.asarray(onehot[i:i + batch_size], np.float32), device=device)
        x = x.transpose(1, 2).contiguous().requires_grad_(True)
        # cuDNN's recurrent layers refuse a backward pass in eval mode: their plain kernels here
        with torch.backends.cudnn.flags(enabled=False):
            s = window_scalar(model, x, bins, rc_average)
            (g,) = torch.autograd.grad(s.sum(), x)
        grads.append(g.transpose(1, 2).cpu().numpy())
        values.append(s.detach().cpu().numpy())
    if not grads:
        return np.zeros((0, np.shape(onehot)[1], 4), np.float32), np.zeros(0, np.float32)
    return np.concatenate(grads).astype(np.float32), np.concatenate(values).astype(np.float32)


def hypothetical(gradient: np.ndarray) -> np.ndarray:
    """Gradient centred over the four bases at each position (``(..., L, 4)``)."""
    return (gradient - gradient.mean(-1, keepdims=True)).astype(np.float32)


def saturation_mutagenesis(model: nn.Module, onehot: np.ndarray, span: tuple[int, int],
                           bins: tuple[int, int], rc_average: bool = True,
                           batch_size: int = 64, device: torch.device | str = "cpu"
                           ) -> np.ndarray:
    """Effect of every single-base substitution in ``span`` of one window on its scalar.

    Parameters
    ----------
    onehot
        ``(L, 4)`` one window.
    span
        ``(start, stop)`` positions in the window (bp).

    Returns
    -------
    numpy.ndarray
        ``(stop - start, 4)`` float32: ``s(mutant) - s(reference)``, 0 at the reference base.
    """
    p0, p1 = span
    if not 0 <= p0 < p1 <= len(onehot):
        raise ValueError(f"ism: span {span} outside the window of {len(onehot)} bp")
    ref = np.asarray(onehot, np.float32)
    mutants, where = [], []
    for p in range(p0, p1):
        for b in range(4):
            if ref[p, b] == 1:
                continue
            m = ref.copy()
            m[p] = 0
            m[p, b] = 1
            mutants.append(m)
            where.append((p - p0, b))
    model.eval()
    with torch.no_grad():
        x = torch.tensor(ref.T[None], device=device)
        s_ref = float(window_scalar(model, x, bins, rc_average)[0])
        effects = np.zeros((p1 - p0, 4), np.float32)
        for i in range(0, len(mutants), batch_size):
            xb = torch.tensor(np.stack(mutants[i:i + batch_size]), device=device).transpose(1, 2)
            s = window_scalar(model, xb, bins, rc_average).cpu().numpy()
            for (q, b), v in zip(where[i:i + batch_size], s, strict=True):
                effects[q, b] = v - s_ref
    return effects


def top_windows(windows: str | Path, k: int, bins: tuple[int, int], split: str = "test"
                ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` windows of ``split`` with the highest observed signal: the stored targets
    summed over the central ``bins`` and averaged over tracks (the scalar's span, observed).

    Returns
    -------
    indices : numpy.ndarray
        ``(k',)`` window indices, highest signal first (``k' = min(k, windows in the split)``).
    signal : numpy.ndarray
        ``(k',)`` float32 their observed signal (soft-clipped target units).
    """
    idx = split_indices(windows, split)
    if len(idx) == 0:
        raise VoxseqError(f"windows file {windows}: no {split} window to interpret")
    b0, b1 = bins
    with h5py.File(windows, "r") as h5:
        tg = h5["targets"]
        signal = np.concatenate([tg[idx[i:i + 256], b0:b1].sum(1).mean(-1)
                                 for i in range(0, len(idx), 256)]).astype(np.float32)
    order = np.argsort(-signal, kind="stable")[:k]
    return idx[order], signal[order]


def ism_span(attribution: np.ndarray, width: int, region: tuple[int, int],
             smooth: int = 10) -> tuple[int, int]:
    """A ``width``-bp span centred on the strongest attribution inside ``region``: the position
    whose ``smooth``-bp box sum of ``|attribution|`` (``(L,)``) is largest, clipped to the window.
    """
    length = len(attribution)
    width = min(width, length)
    box = np.convolve(np.abs(attribution), np.ones(smooth), mode="same")
    r0, r1 = max(region[0], 0), min(region[1], length)
    centre = r0 + int(np.argmax(box[r0:r1]))
    start = int(np.clip(centre - width // 2, 0, length - width))
    return start, start + width


@dataclass
class Attributions:
    """Attributions of a set of windows (shapes: K windows, L bp, M ISM spans of W bp)."""

    onehot: np.ndarray  # (K, L, 4) uint8
    gradient: np.ndarray  # (K, L, 4) float32
    scalar: np.ndarray  # (K,) float32 predicted
    observed: np.ndarray  # (K,) float32
    index: np.ndarray  # (K,) int64 window index in the windows file
    contig: list[str]
    start: np.ndarray  # (K,) int64 window start (bp, 0-based)
    bins: tuple[int, int]
    bin_size: int
    ism: np.ndarray  # (M, W, 4) float32
    ism_window: np.ndarray  # (M,) int64 row in the K windows
    ism_start: np.ndarray  # (M,) int64 span start within the window (bp)

    @property
    def attributions(self) -> np.ndarray:
        """Gradient x input ``(K, L, 4)``: the gradient at each observed base, 0 elsewhere."""
        return (self.gradient * self.onehot).astype(np.float32)

    @property
    def hypothetical(self) -> np.ndarray:
        return hypothetical(self.gradient)

    @property
    def center_bp(self) -> tuple[int, int]:
        """The central bins as bp positions in the window."""
        return self.bins[0] * self.bin_size, self.bins[1] * self.bin_size


def write_attributions(path: str | Path, attr: Attributions, rc_average: bool,
                       bundle: str | Path, tracks: list[str]) -> None:
    """HDF5 (atomic): ``onehot``, ``attributions`` (gradient x input), ``hypothetical``
    (gradient centred over the bases) ``(K, L, 4)``; per window ``index``, ``contig``,
    ``start``, ``end``, ``observed``, ``predicted``; ISM ``ism`` ``(M, W, 4)``,
    ``ism_window``, ``ism_start``; attributes describing the scalar (``scalar``,
    ``center_bins``, ``center_bp``, ``rc_average``, ``bin_size``, ``tracks``, ``bundle``)."""
    k, length = attr.onehot.shape[:2]
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        opts = {"compression": "gzip", "compression_opts": 4} if k else {}
        h5.create_dataset("onehot", data=attr.onehot.astype(np.uint8), **opts)
        for name, arr in (("attributions", attr.attributions),
                          ("hypothetical", attr.hypothetical)):
            h5.create_dataset(name, data=arr.astype(np.float32), **opts)
        h5["index"] = attr.index.astype(np.int64)
        h5["contig"] = np.array(attr.contig, dtype=h5py.string_dtype())
        h5["start"] = attr.start.astype(np.int64)
        h5["end"] = attr.start.astype(np.int64) + length
        h5["observed"] = attr.observed.astype(np.float32)
        h5["predicted"] = attr.scalar.astype(np.float32)
        h5["ism"] = attr.ism.astype(np.float32)
        h5["ism_window"] = attr.ism_window.astype(np.int64)
        h5["ism_start"] = attr.ism_start.astype(np.int64)
        h5.attrs.update({"scalar": SCALAR, "center_bins": list(attr.bins),
                         "center_bp": list(attr.center_bp), "rc_average": bool(rc_average),
                         "bin_size": int(attr.bin_size), "tracks": list(tracks),
                         "bundle": str(bundle),
                         "ism_effect": "s(mutant) - s(reference); 0 at the reference base"})


def read_attributions(path: str | Path) -> dict:
    """Every dataset of an attributions file as arrays, plus ``attrs``."""
    with h5py.File(path, "r") as h5:
        out = {k: h5[k][()] for k in h5}
        out["contig"] = [c.decode() if isinstance(c, bytes) else str(c) for c in out["contig"]]
        out["attrs"] = dict(h5.attrs)
    return out


def attribute_windows(model: nn.Module, windows: str | Path, k: int, center_bins: int | None,
                      n_ism: int, ism_width: int, rc_average: bool = True,
                      batch_size: int = 16, device: torch.device | str = "cpu",
                      split: str = "test") -> Attributions:
    """Gradient x input for the ``k`` highest-signal windows of ``split``, ISM over an
    ``ism_width``-bp span (:func:`ism_span`, inside the central bins) of the first ``n_ism``.

    ``center_bins`` None: the windows' stride in bins (every base is central in one window).
    """
    meta = read_meta(windows)
    bin_size, n_bins = int(meta["bin_size"]), int(meta["window"]) // int(meta["bin_size"])
    if center_bins is None:
        center_bins = max(int(meta["stride"]) // bin_size, 1)
    bins = central_bins(n_bins, center_bins)
    index, observed = top_windows(windows, k, bins, split)
    with h5py.File(windows, "r") as h5:
        onehot = read_windows(h5, index)[0]
        names = list(meta["contigs"])
        contig = [names[int(c)] for c in h5["contig"][()][index]]
        start = h5["start"][()][index].astype(np.int64)
    log.info("gradient x input on %d %s windows (central bins %d-%d of %d)", len(index), split,
             *bins, n_bins)
    gradient, scalar = gradient_x_input(model, onehot, bins, rc_average, batch_size, device)
    attr_bp = (gradient * onehot).sum(-1)
    spans, ism = [], []
    region = (bins[0] * bin_size, bins[1] * bin_size)
    for i in range(min(n_ism, len(index))):
        span = ism_span(attr_bp[i], ism_width, region)
        spans.append(span[0])
        ism.append(saturation_mutagenesis(model, onehot[i], span, bins, rc_average,
                                          4 * batch_size, device))
        log.info("ISM window %d (%s:%d): %d bp from %d", i, contig[i], start[i], ism_width,
                 span[0])
    width = min(ism_width, onehot.shape[1])
    return Attributions(
        onehot=onehot, gradient=gradient, scalar=scalar, observed=observed, index=index,
        contig=contig, start=start, bins=bins, bin_size=bin_size,
        ism=np.stack(ism) if ism else np.zeros((0, width, 4), np.float32),
        ism_window=np.arange(len(ism), dtype=np.int64), ism_start=np.asarray(spans, np.int64))
