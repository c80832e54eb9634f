"""Bundles a run applies instead of training: read once, checked against their task, labels and
channels, and the preprocessing they fix."""

from __future__ import annotations

from pathlib import Path

from voxseq import VoxseqError
from voxseq.plan.inputs import at_workdir


def read_bundle(config: dict, key: str, modality: str, workdir: Path) -> dict | None:
    """bundle.json of the bundle ``models.<key>`` applies (None when none is applied)."""
    path = config["models"][key]
    if not path:
        return None
    from voxseq.bundle import read_bundle_meta

    try:
        meta = read_bundle_meta(at_workdir(workdir, path), modality)
    except VoxseqError as exc:
        raise VoxseqError(f"models.{key}: {exc}") from None
    return meta


def applied_bundles(config: dict, workdir: Path) -> tuple[dict | None, dict | None, dict | None]:
    """``bundle.json`` of the segmentation, sequence-model and classifier bundles the config
    applies (None where a task trains here or is off), checked against their task and labels."""
    imaging, genomics = config["imaging"]["enabled"], config["genomics"]["enabled"]
    seg_meta = read_bundle(config, "imaging", "imaging", workdir) if imaging else None
    seq_meta = read_bundle(config, "genomics", "genomics", workdir) if genomics else None
    cls_meta = None
    if imaging and config["imaging"]["classify"]["enabled"] is not False:
        cls_meta = read_bundle(config, "imaging_classify", "imaging", workdir)
        if cls_meta and cls_meta.get("task") != "classify":
            raise VoxseqError(
                f"models.imaging_classify {config['models']['imaging_classify']}: a "
                f"{cls_meta.get('task', 'segmentation')} bundle, not a classifier (task classify)"
            )
    if seg_meta and seg_meta.get("task") == "classify":
        raise VoxseqError(
            f"models.imaging {config['models']['imaging']}: a classifier bundle; set it as "
            "models.imaging_classify (models.imaging takes a segmentation bundle)"
        )
    if seg_meta:
        theirs = list(seg_meta["preprocessing"].get("labels") or [])
        ours = list(config["imaging"]["labels"])
        if theirs != ours:
            raise VoxseqError(
                f"models.imaging {config['models']['imaging']}: bundle labels {theirs}, config "
                f"labels {ours}. A bundle predicts the labels it was trained with: set "
                f"imaging.labels: {theirs} in your config (and label files with those values)"
            )
    return seg_meta, seq_meta, cls_meta


def imaging_preprocessing(config: dict, bundle: dict | None, channels: list[str]) -> dict:
    """Preprocessing: the applied segmentation bundle's (never recomputed from a new cohort),
    else the config's. Passed to the rules as params, so a replaced bundle with the same
    preprocessing reruns nothing upstream of inference."""
    c = config["imaging"]
    if bundle:
        pre = bundle["preprocessing"]
        keys = ("target_spacing", "interpolation", "normalisation", "statistics", "labels")
        plan = {k: pre.get(k) for k in keys}
    else:
        plan = {
            "target_spacing": c["target_spacing"],
            "interpolation": c["interpolation"],
            "normalisation": c["normalisation"],
            "statistics": None,
            "labels": c["labels"],
        }
    # the channels are the cohort's (equal to an applied bundle's: checked by the plan)
    return {**plan, "channels": channels, "channel_grid": c["channel_grid"]}


def bundle_overrides(config: dict, bundle: dict | None) -> list[str]:
    """The config's preprocessing settings an applied segmentation bundle replaces, one line
    each (said once when the plan is built)."""
    if not bundle:
        return []
    pre, c = bundle["preprocessing"], config["imaging"]
    return [
        f"imaging.{k}: the config says {c[k]!r}, the applied bundle {config['models']['imaging']} "
        f"was trained with {pre.get(k)!r}; the bundle's is used"
        for k in ("target_spacing", "interpolation", "normalisation")
        if k in pre and list_or(pre.get(k)) != list_or(c.get(k))
    ]


def list_or(value):
    return list(value) if isinstance(value, list | tuple) else value
