"""Training patches: per-subject foreground centres (the "tile" stage) and a seeded sampler.

The tile stage stores, for each subject, up to ``per_class`` voxel positions of every foreground
class. At training time :class:`PatchSampler` draws patches for one epoch from a generator seeded
by ``(seed, epoch)``: a fraction ``fg_fraction`` is centred on a stored foreground position (class
chosen uniformly among those present), the rest uniformly at random. Patches are read from the
zarr stores on demand; no voxels are copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import zarr

from voxseq.imaging.store import read_region
from voxseq.io.atomic import read_tsv, write_tsv

TILE_COLUMNS = ("subject", "label", "x", "y", "z")


def foreground_centres(label: np.ndarray, n_labels: int, per_class: int, seed: int) -> np.ndarray:
    """Up to ``per_class`` random positions of each foreground class.

    Returns
    -------
    (N, 4) int64 array of (label, x, y, z).
    """
    rng = np.random.default_rng([seed, 11])
    rows = []
    for cls in range(1, n_labels):
        pos = np.argwhere(label == cls)
        if len(pos) > per_class:
            pos = pos[np.sort(rng.choice(len(pos), per_class, replace=False))]
        rows.append(np.column_stack([np.full(len(pos), cls), pos]))
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 4), np.int64)


def write_centres(path, subject: str, centres: np.ndarray) -> None:
    rows = [dict(zip(TILE_COLUMNS, (subject, *map(int, r)), strict=True)) for r in centres]
    write_tsv(path, rows, TILE_COLUMNS)


def read_centres(path) -> np.ndarray:
    rows = read_tsv(path)
    return np.array([[int(r[c]) for c in TILE_COLUMNS[1:]] for r in rows], np.int64).reshape(-1, 4)


@dataclass(frozen=True)
class PatchSpec:
    """One training patch: which subject, where (corner), and its augmentation draws."""

    subject: int
    start: tuple[int, int, int]
    foreground: bool
    scale: float = 1.0
    shift: float = 0.0
    flips: tuple[bool, bool, bool] = (False, False, False)


def patch_start(centre: Sequence[int], shape: Sequence[int], patch: Sequence[int]) -> tuple:
    """Corner of a patch centred (as far as possible) on ``centre`` and inside the volume.

    When the volume is smaller than the patch along an axis, the corner is 0 (the reader pads).
    """
    return tuple(
        int(min(max(c - p // 2, 0), max(s - p, 0)))
        for c, s, p in zip(centre, shape, patch, strict=True)
    )


class PatchSampler:
    """Draws an epoch's patches with foreground oversampling.

    Parameters
    ----------
    shapes
        Volume shape per training subject.
    centres
        Foreground positions per subject, as from :func:`foreground_centres`.
    patch
        Patch size (X, Y, Z).
    fg_fraction
        Share of patches forced onto a foreground position (nnU-Net: 0.33).
    augment
        Draw intensity scale/shift and axis flips per patch.
    """

    def __init__(
        self,
        shapes,
        centres,
        patch,
        fg_fraction: float = 0.33,
        seed: int = 0,
        augment: dict | None = None,
    ):
        if not 0.0 <= fg_fraction <= 1.0:
            raise ValueError(f"fg_fraction must lie in [0, 1], got {fg_fraction}")
        self.shapes = [tuple(s) for s in shapes]
        self.centres = list(centres)
        self.patch = tuple(patch)
        self.fg_fraction = fg_fraction
        self.seed = seed
        self.augment = augment or {}

    def epoch(self, epoch: int, n: int) -> list[PatchSpec]:
        """The ``n`` patches of ``epoch``: a pure function of (seed, epoch, n)."""
        rng = np.random.default_rng([self.seed, 13, epoch])
        specs = []
        aug = self.augment
        for _ in range(n):
            s = int(rng.integers(len(self.shapes)))
            shape, cent = self.shapes[s], self.centres[s]
            fg = bool(rng.random() < self.fg_fraction) and len(cent) > 0
            if fg:
                classes = np.unique(cent[:, 0])
                cls = classes[rng.integers(len(classes))]
                rows = cent[cent[:, 0] == cls]
                centre = rows[rng.integers(len(rows)), 1:]
            else:
                centre = [int(rng.integers(d)) for d in shape]
            scale = float(rng.uniform(*aug["scale"])) if aug.get("scale") else 1.0
            shift = float(rng.uniform(*aug["shift"])) if aug.get("shift") else 0.0
            flips = tuple(bool(rng.random() < 0.5) if aug.get("flip") else False for _ in range(3))
            specs.append(
                PatchSpec(s, patch_start(centre, shape, self.patch), fg, scale, shift, flips)
            )
        return specs


def read_patch(array, start: Sequence[int], patch: Sequence[int], fill: float = 0.0) -> np.ndarray:
    """Read a (possibly zero-padded) patch from an array-like of shape (X, Y, Z), or
    (C, X, Y, Z): then a (C, *patch) patch, every channel.

    zarr arrays go through :func:`voxseq.imaging.store.read_region` (memory-mapped raw chunks
    where the store has them); anything else is sliced.
    """
    if isinstance(array, zarr.Array):
        block = read_region(array, start, [b + p for b, p in zip(start, patch, strict=True)])
    else:
        spatial = tuple(slice(b, b + p) for b, p in zip(start, patch, strict=True))
        block = np.asarray(array[(Ellipsis, *spatial)])
    want = (*block.shape[: block.ndim - len(patch)], *map(int, patch))
    if block.shape == want:
        return block
    out = np.full(want, fill, dtype=block.dtype)
    out[tuple(slice(0, n) for n in block.shape)] = block
    return out
