"""Training a missing-channel synthesis model; the four methods scored on the test subjects; the
synthesis bundle.

:func:`train_synthesis` trains the generator twice through :func:`voxseq.fit.fit`, with L1 alone
(``gan.adv_weight`` 0) and as a conditional GAN, keeps the GAN only when its validation score is
not below L1-only's, scores every method (GAN, L1 only, copy, zero-fill) on the test subjects and
writes the bundle of the kept generator.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from voxseq import VoxseqError
from voxseq.bundle import write_bundle
from voxseq.distributed import is_main
from voxseq.fit import TrainConfig, fit, resolve_device, seed_everything
from voxseq.imaging.patches import read_centres
from voxseq.imaging.store import common_channels, content_digest, open_store
from voxseq.io.atomic import write_tsv
from voxseq.io.digest import object_sha256
from voxseq.models import build_model
from voxseq.synthesis.apply import evaluate_subject, write_metrics
from voxseq.synthesis.baselines import most_correlated, target_quantiles
from voxseq.synthesis.gan import SynthesisTask

log = logging.getLogger(__name__)

GAN_DEFAULTS = {"adv_weight": 1.0, "l1_weight": 100.0, "criterion": "least_squares"}
METHODS = ("gan", "l1", "copy", "zero")


def _subjects(stores: dict[str, str], splits: dict[str, str], target: str):
    """(train, val, test) complete subjects (every channel of the cohort, ``target`` among
    them); refuses an empty training set."""
    names = {s: set(open_store(stores[s]).channels) for s in stores}
    every = set().union(*names.values())
    have = {s for s in stores if names[s] == every and target in every}
    train, val, test = (sorted(s for s in have if splits.get(s) == k) for k in SPLITS)
    if not train:
        raise VoxseqError(
            f"synthesis of {target}: no complete training-split subject (every channel of "
            f"{sorted(every)}; stores {sorted(stores)[:10]}); nothing to learn from"
        )
    if not val:
        log.warning("synthesis of %s: no validation subject with it; validating on train", target)
        val = train
    return train, val, test


SPLITS = ("train", "val", "test")


def _fit_variant(
    variant: str,
    target: str,
    cfg: dict,
    tcfg: TrainConfig,
    task_args: dict,
    digest: str,
    workdir: Path,
) -> tuple[torch.nn.Module, dict, dict]:
    """Train one generator (``l1``: adversarial weight 0; ``gan``); returns (model, fit result,
    architecture arguments)."""
    gan = {**GAN_DEFAULTS, **cfg.get("gan", {})}
    if variant == "l1":
        gan["adv_weight"] = 0.0
    arch = {"in_channels": len(task_args["inputs"]), "out_channels": 1, **cfg.get("model", {})}
    seed_everything(tcfg.seed, tcfg.deterministic)
    model = build_model("unet3d", **arch)
    device = resolve_device(tcfg.device)
    fp16 = tcfg.amp and device.type == "cuda" and tcfg.amp_dtype == "float16"
    task = SynthesisTask(**task_args, gan=gan, fp16_scaler=fp16)
    variant_digest = object_sha256({"digest": digest, "variant": variant, "gan": gan})
    result = fit(
        task,
        model,
        tcfg,
        workdir / variant,
        workdir / variant / "history.tsv",
        variant_digest,
        name=f"synthesis {target} ({variant})",
    )
    return model, result, arch


def train_synthesis(
    stores: dict[str, str],
    splits: dict[str, str],
    target: str,
    cfg: dict,
    seed: int,
    bundle_dir: str,
    metrics_tsv: str,
    scores_json: str,
    scores_tsv: str,
    workdir: str,
    provenance: dict,
    tiles: dict[str, str] | None = None,
    volumes_dir: str | None = None,
) -> dict:
    """Train the synthesis of channel ``target`` and write its bundle and test scores.

    Parameters
    ----------
    stores
        subject -> normalised zarr store (C, X, Y, Z), every imaging subject; those whose store
        holds ``target`` train (train split), validate (val) and are scored (test).
    splits
        subject -> ``train`` / ``val`` / ``test``.
    cfg
        ``patch_size`` (X, Y, Z), ``train`` (:class:`~voxseq.fit.TrainConfig` fields),
        ``model`` (UNet3D arguments), ``gan`` (:class:`~voxseq.synthesis.gan.SynthesisTask`),
        ``infer`` (sliding window), optional ``lesion_labels`` (label values scored as lesion;
        default every nonzero label), ``fg_fraction`` (0.33, with ``tiles``),
        ``phantom_threshold`` (1.5) and ``phantom_min_voxels`` (8)
        (:func:`~voxseq.synthesis.metrics.phantom_lesions`), ``target_spacing`` (recorded in
        the bundle).
    metrics_tsv
        Both generators' per-epoch history (column ``variant``).
    scores_json, scores_tsv
        Per test subject and method (:data:`METHODS`) BraSyn scores, and the means.
    tiles
        subject -> foreground-centre table (the tile stage), for foreground-centred patches.
    volumes_dir
        Where each test subject's synthesised volumes (GAN, L1 only, copy) are kept as
        ``<subject>_<method>.npy`` (:func:`~voxseq.synthesis.apply.evaluate_subject`).

    Returns
    -------
    The ``scores_json`` content.
    """
    train, val, test = _subjects(stores, splits, target)
    channels = common_channels({s: stores[s] for s in {*train, *val, *test}})
    t = channels.index(target)
    inputs = [i for i in range(len(channels)) if i != t]
    if not inputs:
        raise VoxseqError(f"synthesis of {target}: the cohort has no other channel {channels}")
    tcfg = TrainConfig.from_dict(cfg.get("train", {}), seed)
    digest = object_sha256(
        {
            "cfg": cfg,
            "seed": seed,
            "target": target,
            "train": train,
            "val": val,
            "inputs": {s: content_digest(stores[s]) for s in sorted({*train, *val})},
        }
    )
    task_args = {
        "train_stores": [stores[s] for s in train],
        "val_stores": [stores[s] for s in val],
        "inputs": inputs,
        "target": t,
        "patch": cfg["patch_size"],
        "batch_size": tcfg.batch_size,
        "seed": seed,
        "infer": cfg.get("infer", {}),
        "centres": [read_centres(tiles[s]) for s in train] if tiles else None,
        "fg_fraction": cfg.get("fg_fraction", 0.33),
        "lesion_labels": cfg.get("lesion_labels"),
    }
    log.info("synthesis of %s from %s: train %s, val %s", target, inputs, train, val)
    models, results, arch = {}, {}, {}
    for variant in ("l1", "gan"):
        models[variant], results[variant], arch = _fit_variant(
            variant, target, cfg, tcfg, task_args, digest, Path(workdir)
        )
    if not is_main():
        return {}
    kept = "gan" if results["gan"]["best_score"] >= results["l1"]["best_score"] else "l1"
    log.info(
        "validation SSIM: GAN %.4f, L1 only %.4f: keeping %s",
        results["gan"]["best_score"],
        results["l1"]["best_score"],
        kept,
    )
    rows = [{"variant": v, **r} for v in ("l1", "gan") for r in results[v]["history"]]
    write_tsv(metrics_tsv, rows, list(dict.fromkeys(k for r in rows for k in r)))
    volumes = [open_store(stores[s]).read_image() for s in train]
    copy_from = most_correlated(volumes, inputs, t)
    quantiles = target_quantiles(volumes, t)
    del volumes
    summary = _score_test(
        stores, test, models, inputs, t, copy_from, quantiles, cfg, volumes_dir
    )
    summary.update(
        {
            "target": target,
            "inputs": [channels[i] for i in inputs],
            "kept": kept,
            "validation": {v: results[v]["best_score"] for v in ("gan", "l1")},
            "copy_from": channels[copy_from],
        }
    )
    write_metrics(summary, scores_json, scores_tsv)
    _write(
        bundle_dir,
        models[kept],
        arch,
        channels,
        inputs,
        t,
        copy_from,
        quantiles,
        cfg,
        stores[train[0]],
        summary,
        results[kept],
        provenance,
        seed,
    )
    return summary


def _score_test(
    stores, test, models, inputs, t, copy_from, quantiles, cfg, volumes_dir=None
) -> dict:
    """Per test subject and method scores, and each method's means."""
    device = resolve_device(cfg.get("train", {}).get("device", "auto"))
    if volumes_dir:
        Path(volumes_dir).mkdir(parents=True, exist_ok=True)
    rows = []
    for s in test:
        rows += evaluate_subject(
            s,
            stores[s],
            models,
            inputs,
            t,
            inputs.index(copy_from),
            quantiles,
            cfg,
            device,
            volumes_dir,
        )
    return {"subjects": rows, "means": _means(rows)}


def score_bundle(
    stores: dict[str, str],
    bundle: str,
    cfg: dict,
    scores_json: str,
    scores_tsv: str,
    volumes_dir: str | None = None,
) -> dict:
    """Score an applied synthesis bundle on subjects that have its channel (hidden from it):
    its generator (method ``gan`` or ``l1``, as the bundle kept), the copy baseline with the
    bundle's channel and quantiles, and zero-fill; written as :func:`train_synthesis` writes
    its test scores."""
    from voxseq.bundle import load_bundle, load_bundle_arrays

    model, meta = load_bundle(bundle, "synthesis")
    pre = meta["preprocessing"]
    kept = meta["metrics"]["kept"]
    quantiles = load_bundle_arrays(bundle, meta)["copy_quantiles"]
    rows = []
    if volumes_dir:
        Path(volumes_dir).mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.get("train", {}).get("device", "auto"))
    for s in sorted(stores):
        names = open_store(stores[s]).channels
        inputs = [names.index(c) for c in pre["input_channels"]]
        rows += evaluate_subject(
            s, stores[s], {kept: model}, inputs, names.index(pre["output_channel"]),
            pre["input_channels"].index(pre["copy_from"]), quantiles,
            {**cfg, "patch_size": pre["patch_size"], "infer": pre["infer"]}, device, volumes_dir,
        )
    summary = {
        "subjects": rows,
        "means": _means(rows),
        "target": pre["output_channel"],
        "inputs": list(pre["input_channels"]),
        "kept": kept,
        "validation": meta["metrics"].get("validation"),
        "copy_from": pre["copy_from"],
        "bundle": str(bundle),
    }
    write_metrics(summary, scores_json, scores_tsv)
    return summary


def _means(rows: Sequence[dict]) -> dict:
    out = {}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        keys = [
            k for k in (mine[0] if mine else {}) if k not in ("subject", "method", "lesion_free")
        ]
        with warnings.catch_warnings():  # a score no subject has (lesion SSIM, lesion-free)
            warnings.simplefilter("ignore", RuntimeWarning)
            out[method] = {k: float(np.nanmean([float(r[k]) for r in mine])) for k in keys}
    return out


def _write(
    bundle_dir,
    model,
    arch,
    channels,
    inputs,
    t,
    copy_from,
    quantiles,
    cfg,
    store,
    summary,
    result,
    provenance,
    seed,
) -> None:
    """The synthesis bundle of the kept generator."""
    st = open_store(store)
    best = result["history"][result["best_epoch"]] if result["best_epoch"] >= 0 else {}
    write_bundle(
        bundle_dir,
        model,
        "synthesis",
        "unet3d",
        arch,
        preprocessing={
            "task": "synthesis",
            "channels": channels,
            "input_channels": [channels[i] for i in inputs],
            "output_channel": channels[t],
            "normalisation": st.meta.get("normalisation"),
            "target_spacing": cfg.get("target_spacing"),
            "patch_size": list(cfg["patch_size"]),
            "infer": dict(cfg.get("infer", {})),
            "copy_from": channels[copy_from],
        },
        metrics={
            "kept": summary["kept"],
            "validation": summary["validation"],
            "best_epoch": result["best_epoch"],
            "best": {k: v for k, v in best.items() if k != "seconds"},
            "test": summary["means"],
        },
        provenance={**provenance, "seed": seed, "device": result["device"], "amp": result["amp"]},
        example_input=torch.zeros((1, len(inputs), *cfg["patch_size"])),
        extra={"task": "synthesis"},
        arrays={"copy_quantiles": np.asarray(quantiles, np.float64)},
    )
