"""Classifier data: subjects' classes and folds, one fixed-size input per subject, and its
random augmentation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from voxseq import VoxseqError
from voxseq.imaging.resample import resample
from voxseq.imaging.store import open_store

IMAGE = "image"
SEG_PREFIX = "seg_"  # channels holding a segmentation label's probability


# ---- classes and folds -----------------------------------------------------------------------
def subject_classes(sheet_rows: Sequence[dict], subjects: Sequence[str]) -> dict[str, str]:
    """Subject -> class for the ``subjects`` whose sheet row has a non-empty ``class``."""
    rows = {r["subject"]: r for r in sheet_rows}
    return {s: rows[s]["class"] for s in subjects if s in rows and rows[s].get("class")}


def stratified_folds(classes: dict[str, str], folds: int, seed: int) -> dict[str, int]:
    """Subject -> fold in ``0 .. folds - 1``, stratified by class, deterministic from ``seed``.

    Within each class (in sorted order) the sorted subjects are shuffled and dealt to the folds
    in turn, continuing where the previous class stopped, so fold sizes differ by at most one
    and every class is spread as evenly as it can be.
    """
    rng = np.random.default_rng([seed, 17])
    out, turn = {}, 0
    for name in sorted(set(classes.values())):
        members = sorted(s for s, c in classes.items() if c == name)
        for s in rng.permutation(np.array(members, dtype=object)).tolist():
            out[s] = turn % folds
            turn += 1
    return dict(sorted(out.items()))


def fold_roles(fold_of: dict[str, int], fold: int, folds: int) -> dict[str, list[str]]:
    """Held-out (``fold``), validation (``fold + 1`` mod ``folds``) and training subjects."""
    val_fold = (fold + 1) % folds
    roles = {"holdout": [], "val": [], "train": []}
    for s, f in sorted(fold_of.items()):
        roles["holdout" if f == fold else "val" if f == val_fold else "train"].append(s)
    return roles


# ---- inputs -------------------------------------------------------------------------------------
def body_box(volume: np.ndarray, margin: int = 2) -> tuple[slice, ...]:
    """Bounding box of the body: voxels above the volume's mean (air is far below it after any
    normalisation), widened by ``margin`` voxels; the whole volume when nothing is above."""
    mask = volume > volume.mean()
    if not mask.any():
        return tuple(slice(0, n) for n in volume.shape)
    idx = np.nonzero(mask)
    return tuple(
        slice(max(int(i.min()) - margin, 0), min(int(i.max()) + 1 + margin, n))
        for i, n in zip(idx, volume.shape, strict=True)
    )


def classifier_input(
    store: str,
    input_size: Sequence[int],
    crop: str = "none",
    seg_probs: str | None = None,
) -> np.ndarray:
    """One subject's classifier input, float32 (C, X, Y, Z) (or (C, X, Y) for a 2D input).

    Parameters
    ----------
    store
        The subject's normalised zarr store.
    input_size
        (X, Y, Z); Z = 1 takes the central axial slice (2D networks).
    crop
        ``none``, or ``body``: crop to the body's bounding box (:func:`body_box`) first.
    seg_probs
        A ``.npy`` file with the segmentation's foreground-label probabilities (L - 1, X, Y, Z)
        on the store's grid (further channels, after the store's image channels), or None.
    """
    st = open_store(store)
    channels = list(st.read_image())  # every image channel, then the segmentation's
    if seg_probs is not None:
        probs = np.load(seg_probs, allow_pickle=False).astype(np.float32)
        if probs.shape[1:] != channels[0].shape:
            raise VoxseqError(
                f"{seg_probs}: segmentation probabilities of shape {probs.shape[1:]} do not match "
                f"the normalised volume {store} of shape {channels[0].shape}"
            )
        channels.extend(probs)
    if crop == "body":
        box = body_box(channels[0])
        channels = [c[box] for c in channels]
    out = resample(np.stack(channels), tuple(input_size), "linear", engine="torch")
    out = out.astype(np.float32, copy=False)
    return out[..., 0] if input_size[-1] == 1 else out


def stack_inputs(
    subjects: Sequence[str],
    stores: dict[str, str],
    seg_probs: dict[str, str] | None,
    input_size: Sequence[int],
    crop: str = "none",
) -> np.ndarray:
    """:func:`classifier_input` of each subject, stacked (N, C, *input_size)."""
    return np.stack(
        [
            classifier_input(stores[s], input_size, crop, seg_probs[s] if seg_probs else None)
            for s in subjects
        ]
    )


def channel_names(
    cfg: dict, labels: Sequence[str], image_channels: Sequence[str] = (IMAGE,)
) -> list[str]:
    """The image channels, then (``with_segmentation``) one channel per foreground label."""
    seg = [f"{SEG_PREFIX}{name}" for name in labels[1:]] if cfg["with_segmentation"] else []
    return [*image_channels, *seg]


# ---- augmentation --------------------------------------------------------------------------------
def augment_sample(
    x: torch.Tensor, augment: dict, gen: torch.Generator, image_channels: int = 1
) -> torch.Tensor:
    """Random flips, small rotation and isotropic scale (one resampling), intensity scale and
    shift of one input (C, *spatial), the same draw for its first ``image_channels`` channels;
    segmentation channels (the rest, if any) are moved, not rescaled."""
    dims = x.ndim - 1

    def uniform(lo: float, hi: float, n: int = 1) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    flips = list(augment.get("flip", [False] * dims))[:dims]
    draws = torch.rand(dims, generator=gen)
    axes = [1 + a for a, (on, d) in enumerate(zip(flips, draws, strict=False)) if on and d < 0.5]
    if axes:
        x = torch.flip(x, axes)
    deg = float(augment.get("rotate_deg", 0.0))
    lo, hi = augment.get("scale", [1.0, 1.0])
    angles = uniform(-deg, deg, 3) * math.pi / 180.0
    scale = uniform(lo, hi)
    if deg or lo != 1.0 or hi != 1.0:
        if dims == 3:
            rot = torch.from_numpy(Rotation.from_euler("xyz", angles.numpy()).as_matrix()).float()
        else:  # in-plane rotation
            c, s = torch.cos(angles[0]), torch.sin(angles[0])
            rot = torch.stack([c, -s, s, c]).reshape(2, 2)
        theta = torch.cat([rot / scale, torch.zeros(dims, 1)], 1)[None]
        grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)
        x = F.grid_sample(
            x[None], grid, mode="bilinear", padding_mode="border", align_corners=False
        )[0]
    s_lo, s_hi = augment.get("intensity_scale", [1.0, 1.0])
    t_lo, t_hi = augment.get("intensity_shift", [0.0, 0.0])
    x = x.clone()
    x[:image_channels] = x[:image_channels] * uniform(s_lo, s_hi) + uniform(t_lo, t_hi)
    return x


