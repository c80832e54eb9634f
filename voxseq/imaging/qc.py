"""Imaging quality control: a 3D denoising autoencoder over every subject's normalised volume.

Each subject's normalised volume is smoothed (anti-aliasing) and resampled to ``input_size``
over its whole field of view, so the background stays in: ghosts of a moving subject land there.
The autoencoder (:class:`voxseq.models.autoencoder.ConvAutoencoder3D`) learns the training
split's volumes. A subject's error is its squared reconstruction error at each voxel of the field
of view divided by the training subjects' mean squared error at that voxel
(:func:`voxseq.imaging.qc.voxel_error_scale`, stored in the bundle), averaged over the voxels; its
score is the log of that error as robust SDs above the training subjects'
(:func:`voxseq.qc.scores.error_scores`). The per-voxel scaling makes a defect count where it is
unusual: the anatomy's edges are never reconstructed exactly, while the background normally is,
so a faint ghost in the background (40 % of the object's intensity, half a field of view away)
adds little to a plain mean squared error but stands out once scaled (measured on the tiny test
cohort at seed 11, ghosted subject in the training split: score 1.3 unscaled, 7.7 scaled).
The scaled error map goes back to the subject's original grid as ``<subject>_qc_error.nii.gz``,
like a segmentation (1 is a training subject's typical error at that voxel).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from voxseq import VoxseqError
from voxseq.bundle import load_bundle, load_bundle_arrays, write_bundle
from voxseq.imaging.channels import check_bundle_channels
from voxseq.imaging.resample import resample
from voxseq.imaging.store import common_channels, open_store
from voxseq.io.nifti import original_codes, save_nifti, to_original
from voxseq.models import build_model
from voxseq.qc.autoencoder import (
    apply_out_of_fold,
    reconstruct,
    subject_errors,
    train_autoencoder,
    write_out_of_fold,
)
from voxseq.qc.scores import enough_reference, score_rows

log = logging.getLogger(__name__)

TASK = "qc"
SCALE_SIGMA = 1.0
"""Gaussian SD (QC voxels) smoothing the per-voxel error scale: a handful of training subjects
gives a noisy estimate per voxel."""
SCALE_FLOOR = 0.05
"""Added to the error scale, as a fraction of its mean: voxels that every training subject
reconstructs almost exactly must not turn a tiny difference into a huge one."""


def voxel_error_scale(sq: np.ndarray) -> np.ndarray:
    """The per-voxel error scale, float32 (X, Y, Z), of reference squared errors (N, X, Y, Z):
    their mean over subjects, smoothed (:data:`SCALE_SIGMA`), plus :data:`SCALE_FLOOR` times
    its mean."""
    v = gaussian_filter(np.asarray(sq, np.float64).mean(0), SCALE_SIGMA, mode="nearest")
    return (v + SCALE_FLOOR * float(v.mean())).astype(np.float32)


def squared_error(x: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Squared reconstruction error of (N, C, X, Y, Z) arrays, averaged over the channels:
    (N, X, Y, Z) (one channel: exactly its squared error)."""
    return ((recon - x) ** 2).mean(1)


def scaled_errors(x: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Per-subject errors of (N, C, X, Y, Z) inputs and reconstructions, scaled per voxel by
    their own :func:`voxel_error_scale` (the reference set scored against itself)."""
    scale = voxel_error_scale(squared_error(x, recon))
    return subject_errors(x, recon, scale)


def qc_input(store: str, input_size: Sequence[int]) -> np.ndarray:
    """One subject's autoencoder input, float32 (C, X, Y, Z), every channel of its store: the
    whole normalised volume, Gaussian-smoothed (SD (f - 1) / 2 voxels for a down-sampling
    factor f per axis), then resampled to ``input_size``."""
    vol = open_store(store).read_image()
    factor = np.array(vol.shape[1:], float) / np.array(input_size, float)
    sigma = np.maximum(factor - 1.0, 0.0) / 2.0
    if sigma.any():
        vol = gaussian_filter(vol, (0.0, *sigma), mode="nearest")
    return resample(vol, tuple(input_size), "linear", engine="torch").astype(np.float32)


def stack_qc_inputs(
    subjects: Sequence[str], stores: dict[str, str], input_size: Sequence[int]
) -> np.ndarray:
    """:func:`qc_input` of each subject, stacked (N, C, X, Y, Z)."""
    return np.stack([qc_input(stores[s], input_size) for s in subjects])


def _architecture(cfg: dict, n_channels: int) -> dict:
    m = cfg["model"]
    return {
        "input_size": list(cfg["input_size"]),
        "in_channels": n_channels,
        "base_channels": int(m["base_channels"]),
        "levels": int(m["levels"]),
        "latent": int(m["latent"]),
    }


def train_imaging_qc(
    train: Sequence[str],
    val: Sequence[str],
    stores: dict[str, str],
    cfg: dict,
    plan: dict,
    seed: int,
    workdir: str | Path,
    metrics_path: str | Path,
    bundle_dir: str | Path,
    digest: str,
    out_of_fold: str | Path | None = None,
) -> dict:
    """Train the imaging QC autoencoder on ``train`` (validated on ``val``); write its bundle.

    ``cfg`` is the ``qc.imaging`` block plus ``threshold``; ``plan`` the normalisation the
    volumes went through (recorded, and checked when the bundle is applied to a new cohort).
    The bundle holds the training subjects' reconstruction errors: the reference a new
    cohort's subjects are scored against, without retraining. With fewer than 5 training
    subjects the model is still trained, and scoring gives no score and no flag (with the reason).
    ``out_of_fold``: where the training subjects' out-of-fold reconstructions go
    (``reference_folds`` >= 2; an empty file otherwise).
    """
    subjects = list(train) + list(val)
    x = stack_qc_inputs(subjects, stores, cfg["input_size"])
    arch = _architecture(cfg, x.shape[1])
    model, dropped, kept, recon, oof = train_autoencoder(
        lambda: build_model("conv_autoencoder3d", **arch),
        x,
        range(len(train)),
        range(len(train), len(subjects)),
        cfg["train"],
        seed,
        float(cfg["noise"]),
        float(cfg["threshold"]) if enough_reference(len(train)) else float("inf"),
        workdir,
        metrics_path,
        digest,
        "imaging QC autoencoder",
        flip_axes=(1,) if cfg.get("flip", True) else (),  # left-right, after the channel axis
        reference_folds=int(cfg.get("reference_folds", 0)),
        error_fn=scaled_errors,
    )
    if out_of_fold is not None:
        write_out_of_fold(out_of_fold, list(train), x[: len(train)], oof)
    scale = voxel_error_scale(squared_error(x[kept], recon))
    errors = subject_errors(x[kept], recon, scale)
    meta = write_bundle(
        bundle_dir,
        model,
        "imaging",
        "conv_autoencoder3d",
        arch,
        {"input_size": list(cfg["input_size"]), **plan},
        {"train_error_median": float(np.median(errors))},
        {"train_subjects": list(train), "val_subjects": list(val), "seed": seed},
        example_input=torch.from_numpy(x[:1]),
        extra={
            "task": TASK,
            "reference": {
                "subjects": [train[i] for i in kept],
                "errors": [float(e) for e in errors],
                "left_out": [train[i] for i in dropped],
                "error": "squared error / per-voxel scale (arrays: voxel_error_scale)",
            },
        },
        arrays={"voxel_error_scale": scale},
    )
    return meta


def score_imaging_qc(
    subjects: Sequence[str],
    stores: dict[str, str],
    bundle: str,
    threshold: float,
    error_dir: str | Path,
    out_of_fold: str | Path | None = None,
) -> tuple[list[dict], np.ndarray, dict]:
    """Score every subject with a QC bundle; write each ``<subject>_qc_error.nii.gz``.

    A bundle without a ``voxel_error_scale`` array (written before voxseq scaled errors per
    voxel) scores the plain mean squared error, as its reference errors are.

    Returns
    -------
    rows
        Per subject: ``subject``, ``error``, ``score``, ``flagged``, ``reason``.
    codes
        (N, latent) codes, for the cohort's latent map.
    arrays
        ``input``, ``reconstruction`` (the first channel) and ``error`` (N, X, Y, Z) on the QC
        grid, for figures (``error``: squared error, mean over channels, over the per-voxel
        scale).
    """
    model, meta = load_bundle(bundle, "imaging")
    if meta.get("task") != TASK:
        raise VoxseqError(
            f"bundle {bundle} is not an imaging QC bundle (task {meta.get('task')!r})"
        )
    size = meta["preprocessing"]["input_size"]
    ours = common_channels({s: stores[s] for s in subjects})
    check_bundle_channels(meta["preprocessing"].get("channels"), ours, f"QC bundle {bundle}")
    x = stack_qc_inputs(subjects, stores, size)
    recon, codes = reconstruct(model, x, "cpu")
    held = apply_out_of_fold(out_of_fold, subjects, x, recon)
    scale = load_bundle_arrays(bundle, meta).get("voxel_error_scale")
    if scale is not None and tuple(scale.shape) != tuple(size):
        raise VoxseqError(
            f"bundle {bundle}: voxel_error_scale has shape {scale.shape}, the QC input {size}"
        )
    errors = subject_errors(x, recon, scale)
    rows = score_rows(
        subjects, errors, meta["reference"], threshold, {s: ["scored out of fold"] for s in held}
    )
    sq = squared_error(x, recon)
    if scale is not None:
        sq = sq / scale
    error_dir = Path(error_dir)
    for i, s in enumerate(subjects):
        geo = open_store(stores[s]).meta
        err = resample(sq[i], tuple(geo["canonical_shape"]), "linear", engine="torch")
        err = to_original(err.astype(np.float32), tuple(geo["original_axcodes"]))
        save_nifti(
            error_dir / f"{s}_qc_error.nii.gz",
            err,
            np.array(geo["original_affine"]),
            **original_codes(geo),
        )
    return rows, codes, {"input": x[:, 0], "reconstruction": recon[:, 0], "error": sq}
