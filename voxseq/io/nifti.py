"""NIfTI reading with canonical (RAS) reorientation, and writing back to a stored orientation."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import (
    aff2axcodes,
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)

from voxseq import VoxseqError
from voxseq.io.atomic import atomic_path


@dataclass
class Volume:
    """A 3D volume in canonical RAS voxel order, with what is needed to go back to the file.

    Attributes
    ----------
    data : (X, Y, Z) array in RAS order
    affine : (4, 4) canonical affine (voxel -> RAS mm)
    spacing : (3,) voxel size in mm along the canonical axes
    original_affine : (4, 4) the file's affine
    original_shape : the file's 3D shape
    original_axcodes : e.g. ("L", "P", "S")
    """

    data: np.ndarray
    affine: np.ndarray
    spacing: np.ndarray
    original_affine: np.ndarray
    original_shape: tuple[int, int, int]
    original_axcodes: tuple[str, str, str]


def load_nifti(
    path: str | Path,
    subject: str,
    what: str = "image",
    max_voxels: int | None = None,
    dtype: type = np.float32,
) -> Volume:
    """Load a NIfTI file, check it and reorient it to canonical RAS.

    A 4D file with a single volume is accepted as 3D. Raises :class:`VoxseqError` naming the
    subject, the file and the problem for: unreadable/truncated files, other dimensionalities,
    a singular affine, non-finite voxels and volumes over ``max_voxels``.
    """
    path = Path(path)
    where = f"subject {subject}: {what} {path}"
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for a non-NIfTI file
        raise VoxseqError(f"{where}: not a readable NIfTI file ({exc})") from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise VoxseqError(f"{where}: not a NIfTI file (read as {type(img).__name__})")
    shape = tuple(int(s) for s in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise VoxseqError(
            f"{where}: expected a 3D volume (or 4D with one volume), got shape {shape}"
        )
    n_vox = int(np.prod(shape))
    if max_voxels is not None and n_vox > max_voxels:
        raise VoxseqError(
            f"{where}: {n_vox} voxels {shape} exceeds imaging.max_voxels={max_voxels}; "
            "raise the limit if the machine has the memory"
        )
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise VoxseqError(f"{where}: singular or non-finite affine {affine[:3, :3].tolist()}")
    try:
        data = np.asarray(img.dataobj, dtype=dtype).reshape(shape)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise VoxseqError(f"{where}: truncated or corrupt data ({exc})") from exc
    if not np.all(np.isfinite(data)):
        bad = int((~np.isfinite(data)).sum())
        raise VoxseqError(f"{where}: {bad} voxels are NaN or infinite")
    ornt = io_orientation(affine)
    canon = apply_orientation(data, ornt)
    canon_affine = affine @ inv_ornt_aff(ornt, shape)
    spacing = np.sqrt((canon_affine[:3, :3] ** 2).sum(axis=0))
    return Volume(
        data=np.ascontiguousarray(canon),
        affine=canon_affine,
        spacing=spacing,
        original_affine=affine,
        original_shape=shape,  # type: ignore[arg-type]
        original_axcodes=tuple(aff2axcodes(affine)),  # type: ignore[arg-type]
    )


def to_original(data: np.ndarray, original_axcodes: tuple[str, ...]) -> np.ndarray:
    """Reorient a canonical RAS array back to the file's storage orientation."""
    ornt = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(tuple(original_axcodes)))
    return np.ascontiguousarray(apply_orientation(data, ornt))


def save_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write ``data`` with ``affine`` (qform and sform, mm units) atomically."""
    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
