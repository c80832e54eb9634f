"""Applying synthesis: a subject's missing channel as NIfTI on its original grid, marked synthetic,
and the per-subject, per-method score tables."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import nibabel as nib
import numpy as np
import torch

from voxseq import VoxseqError
from voxseq.bundle import bundle_digest, load_bundle
from voxseq.fit import resolve_device
from voxseq.imaging.resample import resample
from voxseq.imaging.store import open_store, write_store
from voxseq.io.atomic import atomic_path, write_json, write_tsv
from voxseq.io.nifti import original_codes, to_original
from voxseq.synthesis.baselines import copy_channel, zero_fill
from voxseq.synthesis.gan import score_channels, synthesise
from voxseq.synthesis.metrics import body_mask, magnitude, phantom_lesions

log = logging.getLogger(__name__)

SCORE_COLUMNS = (
    "subject",
    "method",
    "lesion_free",
    "ssim_lesion",
    "ssim_outside",
    "ssim_body",
    "psnr",
    "mae",
    "phantom_regions",
    "phantom_voxels",
)


def synth_filename(subject: str, channel: str) -> str:
    """``<subject>_<channel>_synth.nii.gz``: the name that marks a synthesised channel."""
    return f"{subject}_{channel}_synth.nii.gz"


def descrip(channel: str, bundle: str = "") -> bytes:
    """The NIfTI ``descrip`` of a synthesised channel (at most 80 bytes)."""
    text = f"voxseq SYNTHETIC {channel} (normalised units)"
    if bundle:
        text += f" bundle {bundle[:12]}"
    return text.encode("ascii", "replace")[:80]


def to_original_grid(volume: np.ndarray, geo: dict) -> np.ndarray:
    """A volume on the store's normalised grid back to the subject's original grid (linear
    resampling to the canonical original shape, then the file's storage orientation), as
    segmentation goes back (:func:`voxseq.imaging.infer.segment_subject`).

    Parameters
    ----------
    volume : (X, Y, Z) on the normalised grid
    geo : the store's ``meta`` (``canonical_shape``, ``original_axcodes``, ``original_shape``)
    """
    canonical = resample(
        np.asarray(volume, np.float32), geo["canonical_shape"], "linear", engine="torch"
    )
    out = to_original(canonical, tuple(geo["original_axcodes"]))
    if tuple(out.shape) != tuple(geo["original_shape"]):
        raise VoxseqError(
            f"synthesised volume shape {out.shape} differs from the input's {geo['original_shape']}"
        )
    return out.astype(np.float32)


def write_synthetic_nifti(
    path: str, volume: np.ndarray, geo: dict, channel: str, bundle: str = ""
) -> None:
    """Write a synthesised channel (on the normalised grid) as NIfTI on the subject's original
    grid: shape and affine of its first image, its qform/sform codes, ``descrip`` marking it
    synthetic; atomically."""
    data = to_original_grid(volume, geo)
    affine = np.asarray(geo["original_affine"], np.float64)
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    codes = original_codes(geo)
    img.set_qform(affine, code=codes["qform_code"])
    img.set_sform(affine, code=codes["sform_code"])
    img.header["descrip"] = descrip(channel, bundle)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)


def synthesise_subject(
    subject: str, store: str, bundle: str, out_nifti: str, device: str = "auto"
) -> dict:
    """Synthesise a subject's missing channel with a synthesis bundle and write it
    (:func:`write_synthetic_nifti`); the store must hold the bundle's input channels (by name)
    and be normalised as the bundle expects."""
    st = open_store(store)
    synth, pre, digest = _from_bundle(subject, st, bundle, device)
    write_synthetic_nifti(out_nifti, synth, st.meta, pre["output_channel"], digest)
    log.info("%s: synthesised %s -> %s", subject, pre["output_channel"], out_nifti)
    return {"subject": subject, "channel": pre["output_channel"], "bundle_digest": digest}


def complete_subject(
    subject: str,
    store: str,
    bundle: str,
    out_store: str,
    out_nifti: str,
    out_record: str,
    device: str = "auto",
) -> dict:
    """Complete an incomplete subject's store with its synthesised channel.

    Writes ``out_store``: the store with every channel of the bundle's cohort
    (``preprocessing.channels``, in order), the synthesised one on the normalised grid as the
    generator made it, ``meta["synthetic_channels"]`` naming it; ``out_nifti``: the channel on
    the subject's original grid (:func:`write_synthetic_nifti`); ``out_record``: JSON with the
    subject, channel, bundle digest and ``synthetic_channels``.
    """
    st = open_store(store)
    synth, pre, digest = _from_bundle(subject, st, bundle, device)
    names = list(pre.get("channels") or [*pre["input_channels"], pre["output_channel"]])
    vol = st.read_image()
    data = np.empty((len(names), *st.shape), np.float32)
    for k, name in enumerate(names):
        if name == pre["output_channel"]:
            data[k] = synth
        elif name in st.channels:
            data[k] = vol[st.channels.index(name)]
        else:
            raise VoxseqError(
                f"subject {subject}: store {store} has channels {st.channels}; the synthesis "
                f"bundle {bundle} fills {pre['output_channel']!r} only, not {name!r}"
            )
    del vol
    label = np.asarray(st.label[...]) if st.label is not None else None
    meta = {k: v for k, v in st.meta.items() if k != "spacing"}
    meta.update(channels=names, synthetic_channels=[pre["output_channel"]])
    write_store(out_store, data, label, st.meta["spacing"], meta)
    write_synthetic_nifti(out_nifti, synth, st.meta, pre["output_channel"], digest)
    record = {
        "subject": subject,
        "channel": pre["output_channel"],
        "synthetic_channels": [pre["output_channel"]],
        "bundle_digest": digest,
        "nifti": str(out_nifti),
        "store": str(out_store),
    }
    write_json(out_record, record)
    log.info("%s: %s synthesised from %s", subject, pre["output_channel"], pre["input_channels"])
    return record


def _from_bundle(subject: str, st, bundle: str, device: str):
    """(synthesised channel (X, Y, Z) on the store's grid, the bundle's preprocessing, its
    digest), after checking the store against the bundle."""
    store = st.path
    model, meta = load_bundle(bundle, "synthesis")
    pre = meta["preprocessing"]
    where = f"subject {subject}: store {store}, synthesis bundle {bundle}"
    missing = [c for c in pre["input_channels"] if c not in st.channels]
    if missing:
        raise VoxseqError(
            f"{where}: the bundle reads channels {pre['input_channels']}, the store has "
            f"{st.channels} (no {missing})"
        )
    if pre.get("normalisation") != st.meta.get("normalisation"):
        raise VoxseqError(
            f"{where}: store normalised with {st.meta.get('normalisation')!r}, the bundle "
            f"expects {pre.get('normalisation')!r}"
        )
    idx = [st.channels.index(c) for c in pre["input_channels"]]
    dev = resolve_device(device)
    model.to(dev)
    synth = synthesise(model, st.read_image()[idx], pre["patch_size"], pre["infer"], dev)
    return synth, pre, bundle_digest(bundle)


def evaluate_subject(
    subject: str,
    store: str,
    models: dict[str, torch.nn.Module],
    inputs: Sequence[int],
    target: int,
    copy_position: int,
    quantiles: np.ndarray,
    cfg: dict,
    device,
    keep: str | None = None,
) -> list[dict]:
    """Scores of every method on one complete subject: each generator in ``models`` (by
    method name), the copy baseline (input ``copy_position`` histogram-matched to
    ``quantiles``) and zero-fill; one row per method (:data:`SCORE_COLUMNS`). ``keep``: a
    folder where each method's volume but zero-fill is saved as ``<subject>_<method>.npy``
    (the normalised grid; for the downstream segmentation, :mod:`voxseq.synthesis.downstream`)."""
    st = open_store(store)
    vol = st.read_image()
    x, real = vol[list(inputs)], vol[target]
    label = np.asarray(st.label[...]) if st.label is not None else None
    labels = cfg.get("lesion_labels")
    lesion_free = label is None or not (np.isin(label, labels) if labels else label > 0).any()
    outputs = {}
    for name, model in models.items():
        model.to(device).eval()
        outputs[name] = synthesise(model, x, cfg["patch_size"], cfg.get("infer", {}), device)
    outputs["copy"] = copy_channel(x, copy_position, quantiles)
    if keep:
        for name, synth in outputs.items():
            with atomic_path(f"{keep}/{subject}_{name}.npy") as tmp, open(tmp, "wb") as fh:
                np.save(fh, synth.astype(np.float32), allow_pickle=False)
    outputs["zero"] = zero_fill(x)
    body = body_mask(x[0])
    rows = []
    for name, synth in outputs.items():
        scores = score_channels(synth, real, x[0], label, labels)
        phantom = phantom_lesions(
            magnitude(synth, body),
            magnitude(real, body),
            body,
            cfg.get("phantom_threshold", 1.5),
            cfg.get("phantom_min_voxels", 8),
        )
        rows.append(
            {"subject": subject, "method": name, "lesion_free": lesion_free, **scores, **phantom}
        )
    return rows


def write_metrics(summary: dict, json_path: str, tsv_path: str) -> None:
    """``summary`` (with ``subjects``: rows of :data:`SCORE_COLUMNS`) as JSON, and its rows as
    TSV (one line per subject and method), atomically."""
    write_json(json_path, summary)
    write_tsv(tsv_path, summary["subjects"], SCORE_COLUMNS)
