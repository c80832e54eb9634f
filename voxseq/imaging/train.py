"""Imaging segmentation training: patch batches from zarr, Dice + cross-entropy, sliding-window
validation; writes the model bundle."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from voxseq import VoxseqError
from voxseq.bundle import write_bundle
from voxseq.distributed import is_main
from voxseq.fit import TrainConfig, fit, seed_everything
from voxseq.imaging.patches import PatchSampler, PatchSpec, read_centres, read_patch
from voxseq.imaging.sliding import sliding_window_logits
from voxseq.imaging.store import common_channels, content_digest, open_store
from voxseq.io.atomic import read_tsv
from voxseq.io.digest import file_sha256, object_sha256
from voxseq.metrics import dice_per_label
from voxseq.models import build_model
from voxseq.models.unet import channels_last

log = logging.getLogger(__name__)


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """Cross-entropy plus soft Dice over foreground classes (per sample, as nnU-Net).

    logits (B, C, X, Y, Z), target (B, X, Y, Z) int64.
    """
    logits = logits.float()
    ce = F.cross_entropy(logits, target)
    probs = logits.softmax(1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1)[:, 1:].float()
    dims = tuple(range(2, logits.ndim))
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)
    return ce + (1.0 - dice.mean())


class PatchDataset(Dataset):
    """Reads an epoch's patches from zarr stores; each worker opens its own handles."""

    def __init__(self, stores: list[str], specs: list[PatchSpec], patch):
        self.paths, self.specs, self.patch = stores, specs, tuple(patch)
        self._open: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        sp = self.specs[i]
        if sp.subject not in self._open:
            self._open[sp.subject] = open_store(self.paths[sp.subject])
        st = self._open[sp.subject]
        x = read_patch(st.image, sp.start, self.patch).astype(np.float32)
        y = read_patch(st.label, sp.start, self.patch).astype(np.int64)
        if x.ndim == 3:  # one channel
            x = x[None]
        x = x * sp.scale + sp.shift
        for axis, flip in enumerate(sp.flips):
            if flip:
                x, y = np.flip(x, axis + 1), np.flip(y, axis)
        return {"x": torch.from_numpy(x.copy()), "y": torch.from_numpy(y.copy())}


class SegmentationTask:
    """The imaging :class:`voxseq.fit.Task`.

    With ``validate_every`` k > 1, only every k-th epoch (``epoch % k == k - 1``) and the last
    one (``epochs - 1``) are validated; another epoch's metrics are NaN, so it is never the best
    epoch (:func:`voxseq.fit.fit` keeps the best validated score, as with k = 1) and counts as
    one without improvement for early stopping. The epoch is the one of the latest
    :meth:`batches` call, so a resumed run validates the same epochs.
    """

    def __init__(
        self,
        train_stores,
        train_centres,
        val_stores,
        patch,
        n_labels,
        batch_size,
        fg_fraction,
        seed,
        augment,
        num_workers,
        infer,
        validate_every: int = 1,
        epochs: int = 0,
    ):
        if validate_every < 1:
            raise VoxseqError(f"imaging.train.validate_every must be >= 1, got {validate_every}")
        self.validate_every, self.epochs, self._epoch = validate_every, epochs, -1
        self.stores = list(train_stores)
        shapes = [open_store(p).shape for p in self.stores]
        self.sampler = PatchSampler(shapes, train_centres, patch, fg_fraction, seed, augment)
        self.val = [open_store(p) for p in val_stores]
        self.patch, self.n_labels = tuple(patch), n_labels
        self.batch_size, self.num_workers, self.infer = batch_size, num_workers, infer

    def batches(self, epoch: int, n: int, rank: int = 0, world: int = 1):
        self._epoch = epoch  # validate() checks the cadence against it
        specs = self.sampler.epoch(epoch, n * self.batch_size)
        # data-parallel: rank r takes items r, r + world, ... of every global batch
        specs = [sp for i, sp in enumerate(specs) if (i % self.batch_size) % world == rank]
        ds = PatchDataset(self.stores, specs, self.patch)
        workers = self.num_workers
        if workers == "auto":  # the threads this process was given (per rank), one for itself
            workers = max(torch.get_num_threads() - 1, 0)
        return DataLoader(
            ds,
            batch_size=self.batch_size // world,
            shuffle=False,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            prefetch_factor=4 if workers else None,
            persistent_workers=False,
        )

    def loss(self, model, batch, device):
        return dice_ce_loss(model(batch["x"].to(device)), batch["y"].to(device))

    def validates(self, epoch: int) -> bool:
        """Whether ``epoch`` is validated (``validate_every``; the last epoch always is)."""
        k = self.validate_every
        return k == 1 or epoch % k == k - 1 or epoch >= self.epochs - 1

    def validate(self, model, device) -> dict[str, float]:
        if not self.validates(self._epoch):  # NaN: never the best epoch
            nan = float("nan")
            out = {"val_loss": nan, "score": nan}
            return out | {f"val_dice_{k}": nan for k in range(1, self.n_labels)}
        losses, dices = [], []
        for st in self.val:
            with channels_last(model, device) as last:  # the CPU's faster layout, as inference
                logits = sliding_window_logits(
                    model,
                    st.read_image(),
                    self.patch,
                    self.n_labels,
                    overlap=self.infer["overlap"],
                    batch_size=self.infer["batch_size"],
                    device=device,
                    sigma_scale=self.infer["sigma_scale"],
                    memory_format=torch.channels_last_3d if last else torch.contiguous_format,
                )
            truth = np.asarray(st.label[...]).astype(np.int64)
            losses.append(float(dice_ce_loss(logits[None], torch.from_numpy(truth)[None])))
            dices.append(dice_per_label(logits.argmax(0).numpy(), truth, self.n_labels))
        d = np.nanmean(np.array(dices), axis=0)
        out = {"val_loss": float(np.mean(losses)), "score": float(np.nanmean(d))}
        out.update({f"val_dice_{k + 1}": float(v) for k, v in enumerate(d)})
        return out


def check_patch_fits(
    patch: Sequence[int], shapes: dict[str, tuple[int, ...]], stores: dict[str, str], depth: int
) -> None:
    """Refuse a patch that, along some axis, is only padding beyond every training volume.

    Volumes smaller than the patch are zero-padded, as nnU-Net does: a patch may exceed every
    volume along an axis by the rounding up to a valid size (a multiple of
    ``2**(depth - 1)``, at least 8). Beyond that, every patch carries padding and nothing else
    along that axis (memory and time for no context, usually a typo or a wrong
    ``target_spacing``), so it is an error naming the largest useful size.

    Parameters
    ----------
    patch
        ``imaging.patch_size`` (X, Y, Z), canonical RAS axes.
    shapes
        Training subject -> resampled volume shape (X, Y, Z).
    stores
        Subject -> zarr store (for the message).
    depth
        ``imaging.model.depth``.
    """
    factor = 2 ** (depth - 1)
    smallest = -(-8 // factor) * factor
    for axis, size in enumerate(patch):
        biggest = max(shapes, key=lambda s: shapes[s][axis])
        largest = int(shapes[biggest][axis])
        useful = max(-(-largest // factor) * factor, smallest)
        if size > useful:
            raise VoxseqError(
                f"config imaging.patch_size {list(patch)}: along axis {axis} ({'RAS'[axis]}) the "
                f"patch ({size}) is larger than every training volume after resampling (largest "
                f"{largest} voxels: subject {biggest}, store {stores[biggest]}), so every patch "
                f"would be padding there; use at most {useful} (a multiple of "
                f"2**(model.depth - 1) = {factor}) or a finer imaging.target_spacing"
            )


def training_digest(
    cfg: dict,
    seed: int,
    train: list[str],
    val: list[str],
    stats: dict,
    stores: dict[str, str],
    tiles: dict[str, str],
) -> str:
    """Digest of everything training depends on: settings, seed, splits, intensity statistics
    and the content of every training and validation input (the source image and label digests
    recorded at ingest, and the patch-centre table), so that an edited label or image retrains
    from scratch instead of resuming a finished run."""
    inputs = {
        s: {"source": content_digest(stores[s]), "tiles": file_sha256(tiles[s])}
        for s in sorted({*train, *val})
    }
    return object_sha256(
        {"cfg": cfg, "seed": seed, "train": train, "val": val, "stats": stats, "inputs": inputs}
    )


def segmentation_task(
    cfg: dict,
    tcfg: TrainConfig,
    seed: int,
    train_stores: list,
    train_centres: list,
    val_stores: list,
) -> SegmentationTask:
    """The segmentation's training task from the ``imaging`` config block: patches of the
    training stores around their centres, validation on the validation stores (used by
    :func:`train_imaging` and the training benchmark)."""
    return SegmentationTask(
        train_stores,
        train_centres,
        val_stores,
        cfg["patch_size"],
        len(cfg["labels"]),
        tcfg.batch_size,
        cfg["foreground_fraction"],
        seed,
        cfg["train"].get("augment", {}),
        tcfg.num_workers,
        cfg["infer"],
        validate_every=cfg["train"].get("validate_every", 1),
        epochs=tcfg.epochs,
    )


def train_imaging(
    sheet: str,
    stores: dict[str, str],
    tiles: dict[str, str],
    stats_json: str,
    cfg: dict,
    seed: int,
    bundle_dir: str,
    metrics_tsv: str,
    workdir: str,
    provenance: dict,
) -> dict:
    """Train the segmentation UNet on the sheet's train split, validate on its val split and
    write the model bundle.

    Parameters
    ----------
    stores, tiles
        subject -> zarr store / foreground-centre table, for every imaging subject.
    cfg
        The config's ``imaging`` block (validated).
    """
    rows = {r["subject"]: r for r in read_tsv(sheet)}
    split = {s: r["split"] for s, r in rows.items()}
    labelled = {s for s in stores if open_store(stores[s]).label is not None}
    train = sorted(s for s in stores if split.get(s) == "train" and s in labelled)
    val = sorted(s for s in stores if split.get(s) == "val" and s in labelled)
    if not train:
        raise VoxseqError(f"imaging training: no labelled training-split subject in {sheet}")
    centres = {s: read_centres(tiles[s]) for s in train}
    empty = [s for s in train if len(centres[s]) == 0]
    if len(empty) == len(train):
        files = [rows.get(s, {}).get("label") or tiles[s] for s in empty]
        raise VoxseqError(
            f"imaging training: every training subject's label is empty (no foreground voxel): "
            f"subjects {empty[:10]}, label files {files[:10]}; nothing to learn. Check the "
            f"label files, or imaging.labels"
        )
    check_patch_fits(
        cfg["patch_size"],
        {s: open_store(stores[s]).shape for s in train},
        stores,
        cfg["model"].get("depth", 3),
    )
    if not val:
        log.warning("no labelled validation subject: validating on the training subjects")
        val = train
    n_labels = len(cfg["labels"])
    channels = common_channels({s: stores[s] for s in {*train, *val}})
    tcfg = TrainConfig.from_dict(cfg["train"], seed)
    arch = {"in_channels": len(channels), "out_channels": n_labels, **cfg["model"]}
    seed_everything(seed, tcfg.deterministic)
    model = build_model("unet3d", **arch)
    stats = json.loads(Path(stats_json).read_text())
    digest = training_digest(cfg, seed, train, val, stats, stores, tiles)
    task = segmentation_task(
        cfg, tcfg, seed, [stores[s] for s in train], [centres[s] for s in train],
        [stores[s] for s in val],
    )
    log.info(
        "train %d subjects %s, val %d subjects %s, %d parameters",
        len(train),
        train,
        len(val),
        val,
        sum(p.numel() for p in model.parameters()),
    )
    result = fit(task, model, tcfg, workdir, metrics_tsv, digest, name="imaging segmentation")
    if not is_main():  # data-parallel: rank 0 writes the bundle
        return result
    best = result["history"][result["best_epoch"]] if result["best_epoch"] >= 0 else {}
    best = {k: v for k, v in best.items() if k != "seconds"}  # keep the bundle deterministic
    write_bundle(
        bundle_dir,
        model,
        "imaging",
        "unet3d",
        arch,
        preprocessing={
            "target_spacing": list(cfg["target_spacing"]),
            "interpolation": cfg["interpolation"],
            "normalisation": stats["scheme"],
            "statistics": stats.get("statistics"),
            "patch_size": list(cfg["patch_size"]),
            "labels": list(cfg["labels"]),
            "in_channels": len(channels),
            "channels": channels,
            "channel_grid": cfg.get("channel_grid", "check"),
            "infer": dict(cfg["infer"]),
        },
        metrics={
            "best_epoch": result["best_epoch"],
            "validation": best,
            "train_subjects": train,
            "val_subjects": val,
        },
        provenance={
            **provenance,
            "seed": seed,
            "device": result["device"],
            "amp": result["amp"],
            "processes": result["processes"],
        },
        example_input=torch.zeros((1, len(channels), *cfg["patch_size"])),
    )
    return result
