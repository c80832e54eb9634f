"""Classifier training: one fold's model (:func:`train_fold`) and the folds' ensemble bundle
(:func:`write_ensemble_bundle`)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from voxseq import VoxseqError
from voxseq.bundle import write_bundle
from voxseq.distributed import is_main
from voxseq.fit import TrainConfig, fit, seed_everything
from voxseq.imaging.classify.checks import check_classes
from voxseq.imaging.classify.data import (
    augment_sample,
    channel_names,
    fold_roles,
    stack_inputs,
    stratified_folds,
    subject_classes,
)
from voxseq.imaging.classify.predict import predict_proba
from voxseq.imaging.store import common_channels, content_digest
from voxseq.io.atomic import atomic_path, read_tsv, write_json, write_tsv
from voxseq.io.digest import file_sha256, object_sha256
from voxseq.metrics import auroc
from voxseq.models import build_model

log = logging.getLogger(__name__)

#: Ties of the validation AUROC (a handful of validation subjects) go to the lower loss.
LOSS_TIEBREAK = 0.01


class ClassificationTask:
    """The classification :class:`voxseq.fit.Task`: whole-subject inputs held in memory."""

    def __init__(
        self,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        n_classes: int,
        batch_size: int,
        seed: int,
        augment: dict,
        image_channels: int = 1,
    ):
        self.x, self.y = torch.from_numpy(x_train), torch.from_numpy(y_train)
        self.xv, self.yv = torch.from_numpy(x_val), torch.from_numpy(y_val)
        self.n_classes, self.batch_size = n_classes, batch_size
        self.seed, self.augment = seed, augment
        self.image_channels = image_channels
        counts = np.bincount(y_train, minlength=n_classes).astype(np.float64)
        # inverse class frequency (as scikit-learn's "balanced"); 0 for a class absent here
        weights = np.where(counts > 0, len(y_train) / (n_classes * np.maximum(counts, 1)), 0.0)
        self.weights = torch.tensor(weights, dtype=torch.float32)

    def batches(self, epoch: int, n: int, rank: int = 0, world: int = 1):
        rng = np.random.default_rng([self.seed, 23, epoch])
        need = n * self.batch_size
        order = np.concatenate(
            [rng.permutation(len(self.y)) for _ in range(-(-need // len(self.y)))]
        )[:need]
        alpha = float(self.augment.get("mixup", 0.0))
        for i in range(n):
            xs, ys, partners, lams = [], [], [], []
            for j in range(self.batch_size):
                if j % world != rank:  # data-parallel: rank r takes items r, r + world, ...
                    continue
                draw = np.random.default_rng([self.seed, 29, epoch, i, j])
                k = int(order[i * self.batch_size + j])
                x = self._augmented(k, draw)
                lam, partner = 1.0, k
                if alpha > 0:  # mixup (Zhang et al. 2018) with another training subject
                    lam, partner = float(draw.beta(alpha, alpha)), int(draw.integers(len(self.y)))
                    x = lam * x + (1.0 - lam) * self._augmented(partner, draw)
                xs.append(x)
                ys.append(self.y[k])
                partners.append(self.y[partner])
                lams.append(lam)
            yield {
                "x": torch.stack(xs),
                "y": torch.stack(ys),
                "y2": torch.stack(partners),
                "lam": torch.tensor(lams, dtype=torch.float32),
            }

    def _augmented(self, k: int, draw: np.random.Generator) -> torch.Tensor:
        gen = torch.Generator().manual_seed(int(draw.integers(2**62)))
        return augment_sample(self.x[k], self.augment, gen, self.image_channels)

    def loss(self, model, batch, device):
        logits = model(batch["x"].to(device)).float()
        weight = self.weights.to(device)
        lam = batch["lam"].to(device)
        first = F.cross_entropy(logits, batch["y"].to(device), weight=weight, reduction="none")
        second = F.cross_entropy(logits, batch["y2"].to(device), weight=weight, reduction="none")
        return (lam * first + (1.0 - lam) * second).mean()

    def validate(self, model, device) -> dict[str, float]:
        proba = predict_proba(model, self.xv, device)
        loss = float(
            F.nll_loss(
                torch.log(torch.from_numpy(proba).clamp_min(1e-7)), self.yv, weight=self.weights
            )
        )
        auc = auroc(proba, self.yv.numpy())
        acc = float((proba.argmax(1) == self.yv.numpy()).mean())
        score = auc - LOSS_TIEBREAK * loss if not math.isnan(auc) else -loss
        return {"val_loss": loss, "score": score, "val_auroc": auc, "val_accuracy": acc}


def architecture(cfg: dict, n_classes: int, n_channels: int) -> dict:
    """Arguments of the member network for the config's ``imaging.classify`` block."""
    return {
        "in_channels": n_channels,
        "num_classes": n_classes,
        "spatial_dims": 2 if cfg["input_size"][-1] == 1 else 3,
        "base_channels": cfg["model"]["base_channels"],
        "dropout": cfg["model"]["dropout"],
    }


def train_fold(
    fold: int,
    sheet: str,
    stores: dict[str, str],
    seg_probs: dict[str, str] | None,
    cfg: dict,
    labels: Sequence[str],
    seed: int,
    outdir: str,
) -> dict:
    """Train fold ``fold``'s classifier; write ``weights.safetensors``, ``fold.json`` (subjects,
    best epoch, validation metrics), ``metrics.tsv`` (per epoch) and ``oof.tsv`` (held-out
    subjects' probabilities) into ``outdir``; checkpoints go to ``outdir/checkpoints``.

    Parameters
    ----------
    stores
        Subject -> normalised store, for every train/val imaging subject.
    seg_probs
        Subject -> segmentation probabilities ``.npy`` (``with_segmentation``), else None.
    cfg
        The config's ``imaging.classify`` block.
    labels
        The segmentation's label names (``imaging.labels``), for the channel names.
    """
    rows = read_tsv(sheet)
    split = {r["subject"]: r["split"] for r in rows}
    pool = [s for s in stores if split.get(s) in ("train", "val")]
    classes = subject_classes(rows, pool)
    names = check_classes(classes, list(classes), cfg["folds"], sheet)
    fold_of = stratified_folds(classes, cfg["folds"], seed)
    roles = fold_roles(fold_of, fold, cfg["folds"])
    index = {c: i for i, c in enumerate(names)}

    def load(subjects):
        x = stack_inputs(subjects, stores, seg_probs, cfg["input_size"], cfg["crop"])
        return x, np.array([index[classes[s]] for s in subjects], dtype=np.int64)

    x_tr, y_tr = load(roles["train"])
    x_va, y_va = load(roles["val"])
    x_ho, y_ho = load(roles["holdout"])
    tcfg = TrainConfig.from_dict(cfg["train"], seed + 1000 * (fold + 1))
    tcfg.iters_per_epoch = -(-len(y_tr) // tcfg.batch_size)
    seed_everything(tcfg.seed, tcfg.deterministic)
    image_channels = common_channels({s: stores[s] for s in pool})
    channels = channel_names(cfg, labels, image_channels)
    arch = architecture(cfg, len(names), len(channels))
    model = build_model(cfg["model"]["arch"], **arch)
    digest = object_sha256(
        {
            "cfg": cfg,
            "seed": seed,
            "fold": fold,
            "roles": roles,
            "classes": classes,
            "inputs": {s: content_digest(stores[s]) for s in sorted(fold_of)},
            "segmentation": {s: file_sha256(seg_probs[s]) for s in sorted(fold_of)}
            if seg_probs
            else None,
        }
    )
    log.info(
        "fold %d/%d: train %d, validation %d, held out %d subjects; classes %s; %d parameters",
        fold + 1,
        cfg["folds"],
        len(y_tr),
        len(y_va),
        len(y_ho),
        names,
        sum(p.numel() for p in model.parameters()),
    )
    task = ClassificationTask(
        x_tr,
        y_tr,
        x_va,
        y_va,
        len(names),
        tcfg.batch_size,
        tcfg.seed,
        cfg.get("augment") or {},  # imaging.classify.augment (a sibling of train, not in it)
        len(image_channels),
    )
    out = Path(outdir)
    result = fit(
        task,
        model,
        tcfg,
        out / "checkpoints",
        out / "metrics.tsv",
        digest,
        name=f"imaging classification fold {fold + 1}/{cfg['folds']}",
    )
    if not is_main():
        return result
    proba = predict_proba(model, x_ho, torch.device("cpu"))
    oof = [
        {
            "subject": s,
            "fold": fold,
            "true": classes[s],
            **{f"prob_{c}": round(float(p), 6) for c, p in zip(names, pr, strict=True)},
        }
        for s, pr in zip(roles["holdout"], proba, strict=True)
    ]
    write_tsv(out / "oof.tsv", oof, ["subject", "fold", "true", *[f"prob_{c}" for c in names]])
    with atomic_path(out / "weights.safetensors") as tmp:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    best = result["history"][result["best_epoch"]] if result["best_epoch"] >= 0 else {}
    write_json(
        out / "fold.json",
        {
            "fold": fold,
            "folds": cfg["folds"],
            "classes": names,
            "channels": channels,
            "architecture": {"name": cfg["model"]["arch"], "arguments": arch},
            **roles,
            "best_epoch": result["best_epoch"],
            "validation": {k: v for k, v in best.items() if k != "seconds"},
            "device": result["device"],
            "amp": result["amp"],
            "weights_sha256": file_sha256(out / "weights.safetensors"),
        },
    )
    return result


def write_ensemble_bundle(
    fold_dirs: Sequence[str], cfg: dict, plan: dict, bundle_dir: str, provenance: dict
) -> dict:
    """Gather the folds' weights into one bundle: a ``classifier_ensemble`` (task ``classify``)
    whose preprocessing records the classes, channels, input size and the normalisation plan."""
    folds = [json.loads((Path(d) / "fold.json").read_text()) for d in fold_dirs]
    first = folds[0]
    for f in folds[1:]:
        if f["classes"] != first["classes"] or f["architecture"] != first["architecture"]:
            raise VoxseqError(f"fold {f['fold']} was trained with other classes or settings")
    arch = {
        "member": first["architecture"]["name"],
        "arguments": first["architecture"]["arguments"],
        "n_members": len(folds),
    }
    model = build_model("classifier_ensemble", **arch)
    for member, d in zip(model.members, fold_dirs, strict=True):
        member.load_state_dict(load_file(str(Path(d) / "weights.safetensors")))
    size = list(cfg["input_size"])
    example = torch.zeros((1, len(first["channels"]), *(size[:2] if size[-1] == 1 else size)))
    return write_bundle(
        bundle_dir,
        model,
        "imaging",
        "classifier_ensemble",
        arch,
        preprocessing={
            **plan,
            "classes": first["classes"],
            "channels": first["channels"],
            "input_size": size,
            "crop": cfg["crop"],
        },
        metrics={
            "folds": [
                {
                    "fold": f["fold"],
                    "best_epoch": f["best_epoch"],
                    "validation": f["validation"],
                    "train": f["train"],
                    "val": f["val"],
                    "holdout": f["holdout"],
                }
                for f in folds
            ],
        },
        provenance={**provenance, "device": first["device"], "amp": first["amp"]},
        example_input=example,
        extra={"task": "classify"},
    )
