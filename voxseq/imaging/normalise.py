"""Imaging normalise stage: training-split intensity statistics and the per-subject resampled,
normalised zarr store."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from voxseq import VoxseqError
from voxseq.imaging.channels import DEFAULT_CHANNEL
from voxseq.imaging.ingest import load_channel
from voxseq.imaging.intensity import cohort_statistics, normalise
from voxseq.imaging.resample import resample, resampled_spacing, target_shape
from voxseq.imaging.store import write_store
from voxseq.io.atomic import write_json
from voxseq.io.nifti import load_nifti

log = logging.getLogger(__name__)


def intensity_statistics(samples: dict[str, str], scheme: str, out: str | Path) -> dict:
    """Training-split intensity statistics for the ``ct`` scheme (recorded for every scheme).

    Parameters
    ----------
    samples
        subject -> foreground intensity sample (``.npy`` from ingest), for the training-split
        subjects only (the workflow knows the split when it builds the DAG, so the statistics
        depend on nothing else: an edited validation or test subject leaves them alone).
    """
    if scheme == "ct":
        if not samples:
            raise VoxseqError(
                "intensity statistics (imaging.normalisation: ct): no training-split subject "
                "with an image; set some subjects' split to train in the sample sheet, or "
                "raise splits.train"
            )
        arrays = {s: np.load(samples[s], allow_pickle=False) for s in sorted(samples)}
        # one channel: a 1D sample per subject; several: one row per channel
        rows = {s: a[None] if a.ndim == 1 else a for s, a in arrays.items()}
        n_channels = {len(r) for r in rows.values()}
        if len(n_channels) > 1:
            counts = {s: len(r) for s, r in rows.items()}
            raise VoxseqError(f"intensity statistics: subjects' channel counts differ: {counts}")
        per_channel = [
            cohort_statistics([r[c] for r in rows.values()]) for c in range(n_channels.pop())
        ]
        stats = {
            "scheme": scheme,
            # one channel: its statistics (as bundles have always recorded), else a list
            "statistics": per_channel[0] if len(per_channel) == 1 else per_channel,
            "source": f"{len(samples)} training subjects",
        }
    else:
        stats = {"scheme": scheme, "statistics": None, "source": "per subject"}
    write_json(out, stats)
    return stats


def channel_statistics(statistics, n_channels: int, where: str) -> list:
    """``statistics`` (one channel's dict, a list of them, or None) as one entry a channel."""
    if statistics is None:  # per-subject schemes (zscore, none)
        return [None] * n_channels
    per = [statistics] if isinstance(statistics, dict) else list(statistics)
    if len(per) != n_channels:
        raise VoxseqError(
            f"{where}: intensity statistics for {len(per)} channel(s), the images have {n_channels}"
        )
    return per


def normalise_subject(
    subject: str,
    ingest_json: str | Path,
    plan: dict,
    out_store: str | Path,
    stats_json: str | Path | None = None,
    max_voxels: int | None = None,
) -> dict:
    """Resample one subject to the plan's target spacing and normalise it into a zarr store.

    Parameters
    ----------
    plan
        ``target_spacing``, ``interpolation``, ``normalisation``, ``labels``, ``channels``
        (names, in order; checked against ingest's), ``channel_grid`` (``check`` or
        ``resample``: see :func:`voxseq.imaging.ingest.ingest_subject`) and, when a model bundle
        is applied, its ``statistics`` (then ``stats_json`` is not used).

    Each channel is resampled and normalised on its own (z-score: over its own nonzero voxels;
    ct: with its own training-split statistics) and the store holds them as one (C, X, Y, Z)
    array (one channel: (X, Y, Z), as stores always did).
    stats_json
        Training-split statistics from :func:`intensity_statistics` (training cohorts).
    """
    meta = json.loads(Path(ingest_json).read_text())
    if plan.get("statistics") is not None or stats_json is None:
        stats = {"scheme": plan["normalisation"], "statistics": plan.get("statistics")}
    else:
        stats = json.loads(Path(stats_json).read_text())
    target_spacing, interpolation = plan["target_spacing"], plan["interpolation"]
    n_labels = len(plan["labels"])
    # ingest JSONs written before channels were recorded describe one image
    channels = meta.get("channels") or [
        {"channel": DEFAULT_CHANNEL, "column": "image", "path": meta["image"], "volume": None}
    ]
    names = [c["channel"] for c in channels]
    expected = list(plan.get("channels") or [DEFAULT_CHANNEL])
    # a subject missing a channel (synthesised later) has the plan's others, in its order
    if names != [c for c in expected if c in names] or names[:1] != expected[:1]:
        raise VoxseqError(
            f"subject {subject}: ingest {ingest_json} has channels {names}, the plan {expected}"
        )
    per_stats = channel_statistics(stats.get("statistics"), len(expected), f"subject {subject}")
    per_stats = [per_stats[expected.index(n)] for n in names]
    grid = plan.get("channel_grid", "check")
    first = None
    data = None
    for k, ch in enumerate(channels):
        image = load_channel(subject, ch, first, grid, max_voxels)
        if first is None:
            first = image
            canonical_shape = image.shape
            shape = target_shape(canonical_shape, image.spacing, target_spacing)
            if len(channels) > 1:
                data = np.empty((len(channels), *shape), np.float32)
        # one full-size array at a time: each channel goes before the next (and the label) come
        out = resample(image.data, shape, interpolation)
        image.data = None
        out = normalise(out, stats["scheme"], per_stats[k], None)
        if data is None:
            data = out
        else:
            data[k] = out
        del out
    label = None
    if meta.get("label"):
        # read in its stored integer type (uint8: 1 byte per voxel), as ingest checked it
        lab = load_nifti(meta["label"], subject, "label", max_voxels, dtype=None).data
        label = resample(lab.astype(np.uint8, copy=False), shape, "nearest").astype(np.uint8)
        del lab
    spacing = resampled_spacing(canonical_shape, first.spacing, shape)
    geometry = {
        "subject": subject,
        "canonical_shape": list(canonical_shape),
        "canonical_spacing": first.spacing.tolist(),
        "original_shape": list(first.original_shape),
        "original_axcodes": list(first.original_axcodes),
        "original_affine": first.original_affine.tolist(),
        "original_qform_code": first.qform_code,
        "original_sform_code": first.sform_code,
        "normalisation": stats["scheme"],
        "n_labels": n_labels,
        "channels": names,
        "sha256": meta.get("sha256"),  # of the source images and label, recorded at ingest
    }
    write_store(out_store, data, label, spacing, geometry)
    log.info(
        "%s: %d channel(s) %s at %s mm -> %s at %s mm",
        subject,
        len(channels),
        canonical_shape,
        np.round(first.spacing, 3).tolist(),
        shape,
        np.round(spacing, 3).tolist(),
    )
    return geometry
