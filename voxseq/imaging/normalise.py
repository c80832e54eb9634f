"""Imaging normalise stage: training-split intensity statistics and the per-subject resampled,
normalised zarr store."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from voxseq import VoxseqError
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
        arrays = [np.load(samples[s], allow_pickle=False) for s in sorted(samples)]
        stats = {
            "scheme": scheme,
            "statistics": cohort_statistics(arrays),
            "source": f"{len(samples)} training subjects",
        }
    else:
        stats = {"scheme": scheme, "statistics": None, "source": "per subject"}
    write_json(out, stats)
    return stats


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
        ``target_spacing``, ``interpolation``, ``normalisation``, ``labels`` and, when a model
        bundle is applied, its ``statistics`` (then ``stats_json`` is not used).
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
    image = load_nifti(meta["image"], subject, "image", max_voxels)
    canonical_shape = image.data.shape
    shape = target_shape(canonical_shape, image.spacing, target_spacing)
    data = resample(image.data, shape, interpolation)
    image.data = None  # one full-size array at a time: the image goes before the label comes
    mask = None
    label = None
    if meta.get("label"):
        # read in its stored integer type (uint8: 1 byte per voxel), as ingest checked it
        lab = load_nifti(meta["label"], subject, "label", max_voxels, dtype=None).data
        label = resample(lab.astype(np.uint8, copy=False), shape, "nearest").astype(np.uint8)
        del lab
    data = normalise(data, stats["scheme"], stats.get("statistics"), mask)
    spacing = resampled_spacing(canonical_shape, image.spacing, shape)
    geometry = {
        "subject": subject,
        "canonical_shape": list(canonical_shape),
        "canonical_spacing": image.spacing.tolist(),
        "original_shape": list(image.original_shape),
        "original_axcodes": list(image.original_axcodes),
        "original_affine": image.original_affine.tolist(),
        "original_qform_code": image.qform_code,
        "original_sform_code": image.sform_code,
        "normalisation": stats["scheme"],
        "n_labels": n_labels,
        "sha256": meta.get("sha256"),  # of the source image and label, recorded at ingest
    }
    write_store(out_store, data, label, spacing, geometry)
    log.info(
        "%s: %s at %s mm -> %s at %s mm",
        subject,
        canonical_shape,
        np.round(image.spacing, 3).tolist(),
        shape,
        np.round(spacing, 3).tolist(),
    )
    return geometry
