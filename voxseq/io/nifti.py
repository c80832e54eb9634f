"""NIfTI reading with canonical (RAS) reorientation, and writing back to a stored orientation.

Headers as they come: single files (``.nii``, ``.nii.gz``) and NIfTI-1/2 pairs (``.hdr`` +
``.img``, either named, optionally gzipped) load alike; trailing dimensions of length 1
((X, Y, Z, 1), (X, Y, Z, 1, 1)) are dropped. Analyze 7.5 pairs are refused: their header holds
no orientation, so left and right cannot be told apart.

The voxel-to-world affine is nibabel's choice (``header.get_best_affine()``): the sform when its
code is set, else the qform when its code is set, else a fallback from the voxel sizes (pixdim).
:func:`load_nifti` notes, in :attr:`Volume.warnings`, a qform and sform that are both set and
disagree, and a header with neither set; it keeps the file's codes so that :func:`save_nifti`
can write an output that claims no more about its coordinates than its input did.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
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

# qform and sform closer than this (mm, element-wise) agree: a qform is a float32 quaternion, so
# a tool writing the same affine to both leaves differences far below it
AFFINE_TOLERANCE = 1e-3
XFORM_NAMES = nib.nifti1.xform_codes.label  # 0 unknown, 1 scanner, 2 aligned, 3 talairach, 4 mni
_PAIR_SUFFIXES = {".hdr": ".img", ".img": ".hdr"}


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
    qform_code, sform_code : the file's NIfTI xform codes (0 unknown, 1 scanner, 2 aligned, ...)
    affine_source : where ``original_affine`` came from: "sform", "qform" or "pixdim" (neither
        code set: voxel sizes only, orientation unknown)
    warnings : header problems worth telling the user (see :func:`load_nifti`); not logged here
    shape : the canonical (X, Y, Z) shape (``data``'s, kept when ``data`` is let go)
    """

    data: np.ndarray
    affine: np.ndarray
    spacing: np.ndarray
    original_affine: np.ndarray
    original_shape: tuple[int, int, int]
    original_axcodes: tuple[str, str, str]
    qform_code: int = 1
    sform_code: int = 1
    affine_source: str = "sform"
    warnings: list[str] = field(default_factory=list)
    shape: tuple[int, int, int] | None = None


def pair_companion(path: str | Path) -> Path | None:
    """The other file of a header/data pair (``x.hdr`` <-> ``x.img``, ``x.hdr.gz`` <->
    ``x.img.gz``), or None for a single-file format such as ``.nii.gz``."""
    path = Path(path)
    gz = path.suffix == ".gz"
    stem = path.with_suffix("") if gz else path
    other = _PAIR_SUFFIXES.get(stem.suffix.lower())
    if other is None:
        return None
    if stem.suffix.isupper():
        other = other.upper()
    return stem.with_suffix(other + (path.suffix if gz else ""))


def _header_geometry(img: nib.Nifti1Pair, where: str) -> tuple[int, int, str, list[str]]:
    """The file's (qform code, sform code, affine source, warnings), following nibabel's choice
    of affine (:meth:`nibabel.nifti1.Nifti1Header.get_best_affine`)."""
    hdr = img.header
    qform, qcode = hdr.get_qform(coded=True)
    sform, scode = hdr.get_sform(coded=True)
    qcode, scode = int(qcode), int(scode)
    warnings = []
    if qcode and scode:
        diff = float(np.abs(qform - sform).max())
        if diff > AFFINE_TOLERANCE:
            warnings.append(
                f"{where}: qform ({_code_name(qcode)}, axes {''.join(aff2axcodes(qform))}) and "
                f"sform ({_code_name(scode)}, axes {''.join(aff2axcodes(sform))}) disagree by up "
                f"to {diff:.3g} mm; using the sform (as nibabel does); outputs are written with "
                "it as both qform and sform"
            )
    elif not qcode and not scode:
        zooms = ", ".join(f"{z:g}" for z in hdr.get_zooms()[:3])
        warnings.append(
            f"{where}: neither qform nor sform is set (both codes 0): the orientation is "
            f"unknown; voxels are placed by the pixdim fallback ({zooms} mm, axes read as "
            f"{''.join(aff2axcodes(img.affine))}); outputs on its grid keep codes 0 (unknown), "
            "not scanner coordinates"
        )
    source = "sform" if scode else "qform" if qcode else "pixdim"
    return qcode, scode, source, warnings


def _code_name(code: int) -> str:
    return f"code {code} {XFORM_NAMES.get(code, 'invalid')}"


def same_grid(a: Volume, b: Volume) -> bool:
    """Whether two volumes have the same voxels in world coordinates: equal canonical shapes and
    canonical affines within :data:`AFFINE_TOLERANCE` mm, whichever order each file stores its
    axes in (a DICOM conversion may store a label's image with an axis reversed)."""
    shape_a, shape_b = a.shape or a.data.shape[-3:], b.shape or b.data.shape[-3:]
    return tuple(shape_a) == tuple(shape_b) and np.allclose(
        a.affine, b.affine, atol=AFFINE_TOLERANCE
    )


def load_nifti(
    path: str | Path,
    subject: str,
    what: str = "image",
    max_voxels: int | None = None,
    dtype: type | None = np.float32,
    volume: int | None = None,
) -> Volume:
    """Load a NIfTI file (or ``.hdr``/``.img`` pair), check it and reorient it to canonical RAS.

    Trailing dimensions of length 1 are dropped ((X, Y, Z, 1, 1) is read as 3D). ``volume``
    reads one volume of a file holding several (X, Y, Z, N), or (X, Y, Z, 1, N), as input
    channels: 0-based, the only one loaded; without it such a file is refused. Raises
    :class:`VoxseqError` naming the subject, the file and the problem for: unreadable/truncated
    files, a pair missing its other file, Analyze (non-NIfTI) pairs, other dimensionalities
    (several volumes or channels in one file), a singular affine, non-finite voxels and volumes
    over ``max_voxels``.

    Header problems that do not stop the load (qform and sform set and different; neither set)
    are returned in :attr:`Volume.warnings`, each naming the subject and file; the caller logs
    them (ingest does, and records them), so later stages reading the same file stay quiet.

    ``dtype`` is the type of :attr:`Volume.data` (float32 by default); ``None`` keeps a file
    stored as unscaled integers in its own type (a uint8 label: 1 byte per voxel, not 4) and
    reads any other as float32. Memory: an unscaled integer file is read and reoriented in its
    own type and converted once, so a 512 x 512 x 300 int16 CT peaks at its int16 copy plus the
    float32 result (0.47 GB) instead of two float32 copies and a mask.
    """
    path = Path(path)
    where = f"subject {subject}: {what} {path}"
    companion = pair_companion(path)
    if companion is not None and path.exists() and not companion.exists():
        raise VoxseqError(
            f"{where}: the other file of its header/data pair, {companion}, is missing"
        )
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for a non-NIfTI file
        raise VoxseqError(f"{where}: not a readable NIfTI file ({exc})") from exc
    if not isinstance(img, nib.Nifti1Pair):  # NIfTI-1/2, single file or pair
        if isinstance(img, nib.AnalyzeImage):
            raise VoxseqError(
                f"{where}: an Analyze 7.5 pair, not NIfTI (read as {type(img).__name__}): its "
                "header has no orientation, so left and right are ambiguous; convert it to "
                "NIfTI with its orientation checked"
            )
        raise VoxseqError(f"{where}: not a NIfTI file (read as {type(img).__name__})")
    full_shape = tuple(int(s) for s in img.shape)
    shape = full_shape
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    index = None
    if volume is not None and (len(shape) > 3 or volume != 0):
        index = _volume_index(full_shape, volume, where)
        shape = shape[:3]
    if len(shape) != 3:
        extra = (
            f": {int(np.prod(shape[3:]))} volumes in one file; to read them as input "
            "channels, name them in imaging.channels (one name per volume, in file order)"
            if len(shape) > 3
            else ""
        )
        raise VoxseqError(
            f"{where}: expected a 3D volume (trailing dimensions of length 1 are dropped), "
            f"got shape {full_shape}{extra}"
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
    native = _native_integer_type(img, dtype)
    try:
        src = img.dataobj if index is None else img.dataobj[index]
        if native is not None:  # unscaled integers: read as stored, cast once (below)
            data = np.asanyarray(src).reshape(shape)
        else:
            data = np.asarray(src, dtype=dtype or np.float32).reshape(shape)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise VoxseqError(f"{where}: truncated or corrupt data ({exc})") from exc
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise VoxseqError(f"{where}: {bad} voxels are NaN or infinite")
    qform_code, sform_code, source, warnings = _header_geometry(img, where)
    ornt = io_orientation(affine)
    canon = apply_orientation(data, ornt)
    canon_affine = affine @ inv_ornt_aff(ornt, shape)
    spacing = np.sqrt((canon_affine[:3, :3] ** 2).sum(axis=0))
    out_type = data.dtype if dtype is None else np.dtype(dtype)
    if canon.dtype != out_type or not canon.flags.c_contiguous:
        # one copy: reoriented and converted together (the file's array is dropped after it)
        canon = _contiguous_copy(canon, out_type)
    del data
    return Volume(
        data=canon,
        affine=canon_affine,
        spacing=spacing,
        original_affine=affine,
        original_shape=shape,  # type: ignore[arg-type]
        original_axcodes=tuple(aff2axcodes(affine)),  # type: ignore[arg-type]
        qform_code=qform_code,
        sform_code=sform_code,
        affine_source=source,
        warnings=warnings,
        shape=tuple(int(n) for n in canon.shape),  # type: ignore[arg-type]
    )


def nifti_volumes(path: str | Path, subject: str, what: str = "image") -> int:
    """How many volumes a NIfTI file holds, from its header alone: 1 for a 3D file (trailing
    dimensions of length 1 dropped), N for (X, Y, Z, N) or (X, Y, Z, 1, N).

    Raises :class:`VoxseqError` (naming the subject and file) for an unreadable file or one
    with several dimensions of length > 1 beyond the third ((X, Y, Z, 2, 3): which are the
    channels is ambiguous)."""
    where = f"subject {subject}: {what} {path}"
    try:
        shape = tuple(int(s) for s in nib.load(str(path)).shape)
    except Exception as exc:
        raise VoxseqError(f"{where}: not a readable NIfTI file ({exc})") from exc
    if len(shape) < 3:
        return 1  # load_nifti refuses it, saying why
    axis = _volume_axis(shape, where)
    return 1 if axis is None else shape[axis]


def _volume_axis(shape: tuple[int, ...], where: str) -> int | None:
    """The one dimension beyond the third of length > 1 (None: a 3D file); several refused."""
    extra = [i for i, s in enumerate(shape[3:], 3) if s != 1]
    if len(extra) > 1:
        raise VoxseqError(
            f"{where}: shape {shape} has {len(extra)} dimensions of length > 1 beyond the third; "
            "give one volume per channel along a single fourth dimension (X, Y, Z, N)"
        )
    return extra[0] if extra else None


def _volume_index(full_shape: tuple[int, ...], volume: int, where: str) -> tuple:
    """The ``dataobj`` index of volume ``volume`` of a (X, Y, Z, ..., N, ...) file whose
    dimensions beyond the third are all 1 but one (a 3D file: its only volume, 0)."""
    axis = _volume_axis(full_shape, where)
    n = 1 if axis is None else full_shape[axis]
    if not 0 <= volume < n:
        raise VoxseqError(f"{where}: shape {full_shape}: no volume {volume} (it holds {n})")
    rest = tuple(volume if i == axis else 0 for i in range(3, len(full_shape)))
    return (slice(None),) * 3 + rest


def _native_integer_type(img: nib.Nifti1Pair, dtype: type | None) -> np.dtype | None:
    """The file's integer type when its voxels can be read as stored and converted to
    ``dtype`` afterwards with exactly the values nibabel would give (no scaling; a type that
    ``dtype`` holds exactly), else None (read through nibabel's scaling as ``dtype``)."""
    stored = np.dtype(img.get_data_dtype())
    slope = getattr(img.dataobj, "slope", 1.0)  # nibabel reads an unset scl_slope (nan) as 1
    inter = getattr(img.dataobj, "inter", 0.0)
    if slope != 1.0 or inter != 0.0 or stored.kind not in "iu":
        return None
    if dtype is not None and np.promote_types(stored, dtype) != np.dtype(dtype):
        return None  # e.g. int32 -> float32: nibabel goes through float64
    return stored


def _contiguous_copy(data: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``data`` (a view, possibly flipped or transposed) as a C-contiguous ``dtype`` array."""
    out = np.empty(data.shape, dtype=dtype)
    out[...] = data
    return out


def to_original(data: np.ndarray, original_axcodes: tuple[str, ...]) -> np.ndarray:
    """Reorient a canonical RAS array back to the file's storage orientation."""
    ornt = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(tuple(original_axcodes)))
    return np.ascontiguousarray(apply_orientation(data, ornt))


def original_codes(meta: Mapping) -> dict[str, int]:
    """``qform_code`` and ``sform_code`` recorded with a subject's original geometry
    (``original_qform_code``, ``original_sform_code``), as keyword arguments of
    :func:`save_nifti`; 1 (scanner) for records written before the codes were kept."""
    return {
        "qform_code": int(meta.get("original_qform_code", 1)),
        "sform_code": int(meta.get("original_sform_code", 1)),
    }


def save_nifti(
    path: str | Path,
    data: np.ndarray,
    affine: np.ndarray,
    qform_code: int = 1,
    sform_code: int = 1,
) -> None:
    """Write ``data`` with ``affine`` as qform and sform (mm units), atomically.

    Parameters
    ----------
    path
        Output ``.nii.gz`` (or ``.nii``).
    data : (X, Y, Z) array in the storage order ``affine`` describes
    affine : (4, 4) voxel -> world
    qform_code, sform_code
        NIfTI xform codes (0 unknown, 1 scanner, 2 aligned, ...). Pass the input's
        (:func:`original_codes`) so an output claims no more than its input did: with both 0
        (an input with neither set, whose ``affine`` was nibabel's pixdim fallback) a reader
        falls back to the same voxel sizes, and nothing claims scanner coordinates.
    """
    affine = np.asarray(affine, dtype=np.float64)
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=int(qform_code))
    img.set_sform(affine, code=int(sform_code))
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
