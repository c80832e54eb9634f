"""Imaging ingest: load, check and describe one subject's image (and label)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from voxseq import VoxseqError
from voxseq.imaging.channels import DEFAULT_CHANNEL
from voxseq.imaging.resample import resample_to_grid
from voxseq.io.atomic import atomic_path, write_json
from voxseq.io.digest import source_record
from voxseq.io.nifti import (
    AFFINE_TOLERANCE,
    Volume,
    load_nifti,
    nifti_volumes,
    pair_companion,
    same_grid,
)

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

    The label must lie on the image's grid (the same voxels in world coordinates:
    :func:`voxseq.io.nifti.same_grid`, affine to 1e-3 mm) and hold only
    integer values in ``0 .. n_labels - 1``. A label read in an integer type (``load_nifti``
    with ``dtype=None``) needs no rounding check, and a uint8 one is returned without a copy.
    """
    where = f"subject {subject}: label {path}"
    if not same_grid(image, label):
        same_affine = np.allclose(image.affine, label.affine, atol=AFFINE_TOLERANCE)
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


#: Voxels an image needs along every axis: a 3D volume, not a slice (a network's patch, the
#: sliding window and the resampling all work in three dimensions).
MIN_EXTENT = 2


def check_extent(
    subject: str, what: str, path: str, shape: tuple[int, ...], min_voxels: int = MIN_EXTENT
) -> None:
    """Refuse an image with fewer than ``min_voxels`` voxels along an axis (e.g. one slice).

    Raises
    ------
    VoxseqError
        Naming the subject, the file, its shape and the axes that are too short.
    """
    short = [i for i, n in enumerate(shape[:3]) if n < min_voxels]
    if short:
        raise VoxseqError(
            f"subject {subject}: {what} {path}: shape {tuple(int(n) for n in shape)} has "
            f"{', '.join(str(shape[i]) for i in short)} voxel(s) along axis "
            f"{', '.join(map(str, short))}; an image must be a 3D volume with at least "
            f"{min_voxels} voxels along every axis (a single slice cannot be tiled or segmented "
            "with the cohort's 3D model). Give the full volume, or leave the subject out"
        )


def _warn(record: list[str], messages: list[str]) -> None:
    """Log each message as a warning (the rule's log) and keep it for the subject's JSON."""
    for message in messages:
        log.warning("%s", message)
        record.append(message)


def _sources(files: list[tuple[str, str | None]]) -> dict:
    """What ingest read (:func:`source_record` per file), keyed by sheet column (``image``,
    ``image_<name>``, ``label``); for a header/data pair, the other file as ``<column>_pair``."""
    sources = {}
    for key, path in files:
        sources[key] = source_record(path) if path else None
        other = pair_companion(path) if path else None
        if other is not None:
            sources[f"{key}_pair"] = source_record(other)
    return sources


def channel_plan(subject: str, images: list[tuple[str, str]], channels: list[str]) -> list[dict]:
    """Which file and volume each channel is read from: ``[{channel, column, path, volume}]``.

    ``volume`` is None for a 3D file, else the 0-based volume of a 4D ``image`` file. The
    volume counts come from the headers alone (:func:`voxseq.io.nifti.nifti_volumes`).

    Raises
    ------
    VoxseqError
        Naming the subject and the file: a 4D file beside ``image_<name>`` columns, or volume
        counts that differ from the channels named (``imaging.channels``).
    """
    counts = [nifti_volumes(path, subject, column) for column, path in images]
    if len(images) > 1:
        for (column, path), n in zip(images, counts, strict=True):
            if n > 1:
                raise VoxseqError(
                    f"subject {subject}: {column} {path}: holds {n} volumes; with image_<name> "
                    "columns every file is one 3D volume (one channel). Give the volumes as "
                    "columns, or the 4D file alone in 'image' with imaging.channels naming its "
                    "volumes"
                )
    if sum(counts) != len(channels):
        column, path = images[0]
        raise VoxseqError(
            f"subject {subject}: {column} {path}: holds {counts[0]} volume(s), but the cohort "
            f"has {len(channels)} channels {channels} (imaging.channels, or the sheet's image "
            "columns): every subject needs the same channels, in the same order"
        )
    if len(images) > 1 or counts[0] == 1:
        return [
            {"channel": name, "column": column, "path": path, "volume": None}
            for name, (column, path) in zip(channels, images, strict=True)
        ]
    column, path = images[0]
    return [
        {"channel": name, "column": column, "path": path, "volume": v}
        for v, name in enumerate(channels)
    ]


def load_channel(
    subject: str, ch: dict, ref: Volume | None, grid: str, max_voxels: int | None
) -> Volume:
    """Load one channel (float32, canonical), checked against (or, with ``grid`` "resample",
    resampled onto) the grid of the first channel ``ref`` (None: this is the first).

    ``ch`` is an entry of :func:`channel_plan`. Only ``ref``'s geometry is used, not its data.
    """
    what = ch["column"] if ch["volume"] is None else f"{ch['column']} volume {ch['volume']}"
    vol = load_nifti(ch["path"], subject, what, max_voxels, volume=ch["volume"])
    if ref is None:
        return vol
    if same_grid(ref, vol):
        return vol
    same_affine = np.allclose(ref.affine, vol.affine, atol=AFFINE_TOLERANCE)
    if grid != "resample":
        raise VoxseqError(
            f"subject {subject}: {what} {ch['path']} (channel {ch['channel']}): not on the grid "
            f"of the first image (shape {vol.original_shape}, first image's "
            f"{ref.original_shape}; affines {'equal' if same_affine else 'differ'}). Register "
            "and resample it onto the first image, or set imaging.channel_grid: resample to "
            "resample it here (linear, in world coordinates)"
        )
    vol.data = resample_to_grid(vol.data, vol.affine, ref.affine, ref.shape)
    return vol


def _intensity(d: np.ndarray, fg: np.ndarray, lo: float, hi: float, mean: float, std: float):
    return {
        "min": lo,
        "max": hi,
        "mean": mean,
        "std": std,
        "fg_mean": float(fg.mean()),
        "fg_std": float(fg.std()),
        "fg_p005": float(np.percentile(fg, 0.5)),
        "fg_p995": float(np.percentile(fg, 99.5)),
    }


def ingest_subject(
    subject: str,
    image_path: str,
    label_path: str | None,
    n_labels: int,
    seed: int,
    max_voxels: int | None,
    out_json: str | Path,
    out_sample: str | Path,
    images: list[tuple[str, str]] | None = None,
    channels: list[str] | None = None,
    channel_grid: str = "check",
) -> dict:
    """Load and check one subject; write its metadata JSON and a foreground intensity sample.

    Parameters
    ----------
    images
        The subject's image files as ``(column, path)``, ``image`` first
        (:func:`voxseq.imaging.channels.subject_images`); default ``[("image", image_path)]``.
    channels
        The cohort's channel names (default ``["image"]``): one per file, or one per volume of
        a single 4D ``image`` file (:func:`channel_plan`).
    channel_grid
        ``check``: every channel must be on the first image's grid (shape, and affine to
        1e-3 mm); ``resample``: one that is not is resampled onto it (linear, world coordinates).

    The JSON records the image's header codes (``qform_code``, ``sform_code``: outputs on its
    grid are written with the same ones), where its affine came from (``affine_source``:
    sform, qform or pixdim), and ``warnings``: header problems of the images or label that did
    not stop the load (qform and sform set and different; neither set), each also logged. For
    a ``.hdr``/``.img`` pair, ``sources`` and ``sha256`` also cover the other file of the pair
    (``image_pair``, ``label_pair``). ``channels`` lists each channel's file and volume and its
    intensity summary; ``intensity`` is the first channel's.

    The sample (``.npy``, float32, at most ``FOREGROUND_SAMPLE`` voxels drawn with a seeded
    generator from the label's foreground, or from nonzero voxels without a label; one channel:
    a 1D array, several: one row per channel) feeds the cohort's training-split intensity
    statistics (``ct`` normalisation).

    Raises
    ------
    VoxseqError
        Naming the subject, the file and the problem: an unreadable or invalid volume (see
        :func:`voxseq.io.nifti.load_nifti`), an image with fewer than ``MIN_EXTENT`` voxels
        along an axis (:func:`check_extent`), a constant-intensity image (nothing to learn from;
        z-score normalisation would divide by zero), a label that does not fit the image, or
        channels that do not match the cohort's (count, grid). Nothing is written then.
    """
    images = images or [("image", image_path)]
    channels = channels or [DEFAULT_CHANNEL]
    plan = channel_plan(subject, images, channels)
    warnings: list[str] = []
    # what was read, once the headers were (stat + content): a touch with the same bytes reruns
    # nothing, an edit reruns this subject (see voxseq.io.digest.same_content)
    sources = _sources([*images, ("label", label_path)])
    mask = None
    samples, per_channel = [], []
    rng = np.random.default_rng([seed, 7])
    first: Volume | None = None
    meta: dict = {}
    for k, ch in enumerate(plan):
        image = load_channel(subject, ch, first, channel_grid, max_voxels)
        if k == 0:
            what = ch["column"] if ch["volume"] is None else f"{ch['column']} volume {ch['volume']}"
            check_extent(subject, what, ch["path"], image.original_shape)
        _warn(warnings, image.warnings)
        d = image.data
        lo, hi = float(d.min()), float(d.max())
        # whole-volume statistics before the label is read: d.std() holds a float32 temporary
        # of the volume's size, and the label, its mask and the foreground need not be there
        mean, std = float(d.mean()), float(d.std())
        if lo == hi:
            vol = "" if ch["volume"] is None else f" volume {ch['volume']}"
            raise VoxseqError(
                f"subject {subject}: {ch['column']} {ch['path']}{vol}: constant intensity "
                f"(every voxel is {lo:g}): nothing to learn from, and its z-score "
                "normalisation would divide by zero"
            )
        if k == 0:
            first = image
            meta = {
                "subject": subject,
                "image": str(ch["path"]),
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
                "warnings": warnings,  # the same list: later warnings join it
                # content of the inputs: training's digest includes it, so an edited file
                # retrains
                "sha256": {key: v and v["sha256"] for key, v in sources.items()},
                "sources": sources,
            }
            if label_path:
                mask, counts, label_warnings = _label_mask(
                    image, label_path, subject, n_labels, max_voxels
                )
                meta["label_voxels"] = counts.tolist()
                _warn(warnings, label_warnings)
        channel_mask = mask if mask is not None and mask.any() else d != 0
        fg = d[channel_mask] if channel_mask.any() else d.ravel()
        del channel_mask
        per_channel.append(
            {
                "channel": ch["channel"],
                "column": ch["column"],
                "path": str(ch["path"]),
                "volume": ch["volume"],
                "intensity": _intensity(d, fg, lo, hi, mean, std),
            }
        )
        # a random draw now (the foreground goes before the next channel comes); several
        # channels keep the first n of each, n the smallest draw (a random draw still)
        samples.append(
            fg if fg.size <= FOREGROUND_SAMPLE else rng.choice(fg, FOREGROUND_SAMPLE, replace=False)
        )
        image.data = None  # one channel's volume at a time; the first's grid stays the ref
        del d, fg
    del mask
    meta["intensity"] = per_channel[0]["intensity"]
    meta["channels"] = per_channel
    n = min(s.size for s in samples)
    sample = samples[0] if len(samples) == 1 else np.stack([s[:n] for s in samples])
    with atomic_path(out_sample) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, sample.astype(np.float32), allow_pickle=False)
    write_json(out_json, meta)
    return meta


def _label_mask(
    image: Volume, label_path: str, subject: str, n_labels: int, max_voxels
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The label's foreground mask (checked against ``image``), its voxel count per label and
    its warnings (header problems, no foreground)."""
    label = load_nifti(label_path, subject, "label", max_voxels, dtype=None)
    lab = check_label(image, label, subject, label_path, n_labels)
    warnings = list(label.warnings)
    del label  # lab is the only full-size label array left
    mask = lab > 0
    counts = label_counts(lab, n_labels)
    del lab
    if not mask.any():
        warnings.append(
            f"subject {subject}: label {label_path} has no foreground voxel (all "
            "background): no foreground patch can come from it; training needs at "
            "least one subject with foreground"
        )
    return mask, counts, warnings
