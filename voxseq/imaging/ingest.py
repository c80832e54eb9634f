"""Imaging ingest: load, check and describe one subject's image (and label)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from voxseq import VoxseqError
from voxseq.io.atomic import atomic_path, write_json
from voxseq.io.digest import source_record
from voxseq.io.nifti import Volume, load_nifti, pair_companion

log = logging.getLogger(__name__)

FOREGROUND_SAMPLE = 20000


def label_counts(label: np.ndarray, n_labels: int, block: int = 1 << 18) -> np.ndarray:
    """``np.bincount(label.ravel(), minlength=n_labels)``, a block of voxels at a time.

    ``np.bincount`` converts its input to int64 first: 8 bytes per voxel (0.63 GB for a
    512 x 512 x 300 label); by blocks of ``block`` voxels the extra memory stays at 2 MB.
    """
    flat = label.reshape(-1)
    counts = np.zeros(n_labels, np.int64)
    for i in range(0, flat.size, block):
        c = np.bincount(flat[i : i + block], minlength=n_labels)
        if c.size > counts.size:
            counts = np.concatenate([counts, np.zeros(c.size - counts.size, np.int64)])
        counts[: c.size] += c
    return counts


def check_label(image: Volume, label: Volume, subject: str, path: str, n_labels: int) -> np.ndarray:
    """Check a label volume against its image; return it as uint8 (canonical order).

    The label must lie on the image's grid (same shape and affine to 1e-3 mm) and hold only
    integer values in ``0 .. n_labels - 1``. A label read in an integer type (``load_nifti``
    with ``dtype=None``) needs no rounding check, and a uint8 one is returned without a copy.
    """
    where = f"subject {subject}: label {path}"
    same_affine = np.allclose(image.original_affine, label.original_affine, atol=1e-3)
    if image.original_shape != label.original_shape or not same_affine:
        raise VoxseqError(
            f"{where}: not on the image's grid (label shape {label.original_shape}, image shape "
            f"{image.original_shape}; affines {'equal' if same_affine else 'differ'})"
        )
    data = label.data
    if data.dtype.kind == "f" and not np.all(data == np.round(data)):
        raise VoxseqError(f"{where}: label values must be integers")
    values = np.unique(data).astype(np.int64)
    bad = [int(v) for v in values if v < 0 or v >= n_labels]
    if bad:
        raise VoxseqError(
            f"{where}: unexpected label values {bad}; configured labels are 0..{n_labels - 1}"
        )
    return data.astype(np.uint8, copy=False)


def _warn(record: list[str], messages: list[str]) -> None:
    """Log each message as a warning (the rule's log) and keep it for the subject's JSON."""
    for message in messages:
        log.warning("%s", message)
        record.append(message)


def _sources(image_path: str, label_path: str | None) -> dict:
    """What ingest read (:func:`source_record` per file): ``image``, ``label`` and, for a
    header/data pair, the other file as ``image_pair`` / ``label_pair``."""
    sources = {}
    for key, path in (("image", image_path), ("label", label_path)):
        sources[key] = source_record(path) if path else None
        other = pair_companion(path) if path else None
        if other is not None:
            sources[f"{key}_pair"] = source_record(other)
    return sources


def ingest_subject(
    subject: str,
    image_path: str,
    label_path: str | None,
    n_labels: int,
    seed: int,
    max_voxels: int | None,
    out_json: str | Path,
    out_sample: str | Path,
) -> dict:
    """Load and check one subject; write its metadata JSON and a foreground intensity sample.

    The JSON records the image's header codes (``qform_code``, ``sform_code``: outputs on its
    grid are written with the same ones), where its affine came from (``affine_source``:
    sform, qform or pixdim), and ``warnings``: header problems of the image or label that did
    not stop the load (qform and sform set and different; neither set), each also logged. For
    a ``.hdr``/``.img`` pair, ``sources`` and ``sha256`` also cover the other file of the pair
    (``image_pair``, ``label_pair``).

    The sample (``.npy``, float32, at most ``FOREGROUND_SAMPLE`` voxels drawn with a seeded
    generator from the label's foreground, or from nonzero voxels without a label) feeds the
    cohort's training-split intensity statistics (``ct`` normalisation).

    Raises
    ------
    VoxseqError
        Naming the subject, the file and the problem: an unreadable or invalid volume (see
        :func:`voxseq.io.nifti.load_nifti`), a constant-intensity image (nothing to learn from;
        z-score normalisation would divide by zero), or a label that does not fit the image.
        Nothing is written then.
    """
    image = load_nifti(image_path, subject, "image", max_voxels)
    warnings: list[str] = []
    _warn(warnings, image.warnings)
    # what was read, once it loaded (stat + content): a touch with the same bytes reruns
    # nothing, an edit reruns this subject (see voxseq.io.digest.same_content)
    sources = _sources(image_path, label_path)
    d = image.data
    lo, hi = float(d.min()), float(d.max())
    # whole-volume statistics before the label is read: d.std() holds a float32 temporary of
    # the volume's size, and the label, its mask and the foreground need not be there with it
    mean, std = float(d.mean()), float(d.std())
    if lo == hi:
        raise VoxseqError(
            f"subject {subject}: image {image_path}: constant intensity (every voxel is {lo:g}): "
            "nothing to learn from, and its z-score normalisation would divide by zero"
        )
    meta = {
        "subject": subject,
        "image": str(image_path),
        "label": str(label_path) if label_path else None,
        "shape": list(image.original_shape),
        "canonical_shape": list(image.data.shape),
        "spacing": image.spacing.tolist(),
        "orientation": "".join(image.original_axcodes),
        "affine": image.original_affine.tolist(),
        "canonical_affine": image.affine.tolist(),
        "qform_code": image.qform_code,
        "sform_code": image.sform_code,
        "affine_source": image.affine_source,
        "warnings": warnings,  # the same list: label warnings join it below
        # content of the inputs: training's digest includes it, so an edited file retrains
        "sha256": {k: v and v["sha256"] for k, v in sources.items()},
        "sources": sources,
    }
    mask = None
    if label_path:
        label = load_nifti(label_path, subject, "label", max_voxels, dtype=None)
        lab = check_label(image, label, subject, label_path, n_labels)
        _warn(warnings, label.warnings)
        del label  # lab is the only full-size label array left
        mask = lab > 0
        counts = label_counts(lab, n_labels)
        del lab
        meta["label_voxels"] = counts.tolist()
        if not mask.any():
            _warn(
                warnings,
                [
                    f"subject {subject}: label {label_path} has no foreground voxel (all "
                    "background): no foreground patch can come from it; training needs at "
                    "least one subject with foreground"
                ],
            )
    if mask is None or not mask.any():
        mask = d != 0
    fg = d[mask] if mask.any() else d.ravel()
    del mask
    meta["intensity"] = {
        "min": lo,
        "max": hi,
        "mean": mean,
        "std": std,
        "fg_mean": float(fg.mean()),
        "fg_std": float(fg.std()),
        "fg_p005": float(np.percentile(fg, 0.5)),
        "fg_p995": float(np.percentile(fg, 99.5)),
    }
    rng = np.random.default_rng([seed, 7])
    sample = (
        fg if fg.size <= FOREGROUND_SAMPLE else rng.choice(fg, FOREGROUND_SAMPLE, replace=False)
    )
    with atomic_path(out_sample) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, sample.astype(np.float32), allow_pickle=False)
    write_json(out_json, meta)
    return meta
