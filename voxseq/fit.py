"""Generic training loop shared by every model.

A *task* supplies the data and the objective; :func:`fit` does the rest: device choice, seeds,
optimizer and learning-rate schedule, AMP on CUDA, a checkpoint every epoch (``last.pt``) and on
the best validation score (``best.pt``), automatic resume from ``last.pt`` when the run is started
again, early stopping and a per-epoch metrics TSV plus one log line per epoch.

Resume is exact on CPU: an epoch's batches depend only on ``(seed, epoch)``, the learning rate
only on the global step, and ``last.pt`` holds every global random state the loop and the data
pipelines draw from (torch CPU, CUDA on the training device, NumPy's global generator, Python's
``random``; dropout draws from torch's), restored on resume, so a run killed after epoch ``k``
and resumed gives the weights an uninterrupted run would have given.

A task that keeps state of its own across epochs (a GAN's discriminator and its optimizer, a
generator it draws from) exposes it as ``task.state_dict()`` / ``task.load_state_dict(d)``:
:func:`fit` stores ``task.state_dict()`` in ``last.pt`` (key ``task``) after every epoch, on
rank 0, with the model's weights, and calls ``task.load_state_dict(d)`` before the first resumed
epoch. ``d`` must load with ``torch.load(weights_only=True)``: tensors, numbers, strings, and
lists, tuples and dicts of them (an optimizer's ``state_dict()`` is fine). A ``last.pt`` without
a ``task`` entry is not resumed from by a task that has state (it trains from scratch).

Progress: every epoch's line goes to this module's logger (the rule's log) and
``workdir/metrics.tsv``; the ``voxseq.progress`` logger (the terminal) gets a line only when at
least 10 % of the epochs *and* 30 s have passed since its previous line (whichever is rarer),
for the last epoch, and when training resumes or stops early. No best epoch is shown before one
may be selected (``select_after`` warm-up epochs).

Data-parallel (see :mod:`voxseq.distributed`): when the process group is up, the model is wrapped
in ``DistributedDataParallel``, each rank trains on its own shard of every global batch
(``task.batches(epoch, n, rank, world)``), gradients are averaged, and rank 0 alone validates
(its metrics are broadcast, so every rank takes the same best-epoch and early-stopping
decisions), writes checkpoints and metrics; every rank resumes from the same ``last.pt``.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from voxseq import VoxseqError
from voxseq.distributed import barrier, broadcast, local_rank, mean_over_ranks, rank_and_world
from voxseq.io.atomic import atomic_path, write_tsv
from voxseq.progress import ProgressPace, best_text, duration
from voxseq.rng import rng_state, set_rng_state

log = logging.getLogger(__name__)
#: One line per epoch for the person at the terminal (rule scripts send it to stderr).
progress = logging.getLogger("voxseq.progress")


@dataclass
class TrainConfig:
    """Optimisation settings (the ``train:`` block of a modality's config)."""

    epochs: int = 10
    iters_per_epoch: int = 100
    batch_size: int = 2
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.99
    schedule: str = "poly"
    grad_clip: float = 12.0
    device: str = "auto"
    amp: bool = True
    amp_dtype: str = "float16"
    num_workers: int | str = 1  # or "auto": the process's threads minus one
    patience: int = 0
    select_after: int = 0  # warm-up epochs: never the best one, no early-stopping count
    gpus: int = 1
    deterministic: bool = True
    compile: bool = False
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict, seed: int) -> TrainConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "seed": seed})


class Task(Protocol):
    """What :func:`fit` needs from a modality."""

    def batches(
        self, epoch: int, n: int, rank: int = 0, world: int = 1
    ) -> Iterable[dict[str, torch.Tensor]]:
        """The ``n`` training batches of ``epoch`` (a pure function of the seed and epoch); with
        ``world`` > 1, rank ``rank``'s shard of each (its ``1/world`` of the global batch, no
        sample in two ranks' shards)."""

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], device: torch.device
    ) -> torch.Tensor:
        """Training loss of one batch."""

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Validation metrics; must hold ``val_loss`` and ``score`` (higher is better)."""


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return dev


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; ask torch for deterministic kernels (or allow cuDNN
    autotuning when ``deterministic`` is false)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True  # autotuned kernels: faster, not bit-exact


def learning_rate(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate at global ``step`` of ``total`` (poly 0.9 as nnU-Net, cosine or constant)."""
    frac = min(step / max(total, 1), 1.0)
    if cfg.schedule == "poly":
        return cfg.lr * (1.0 - frac) ** 0.9
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * frac))
    if cfg.schedule == "constant":
        return cfg.lr
    raise ValueError(f"unknown schedule {cfg.schedule!r}; choose poly, cosine or constant")


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=True,
            weight_decay=cfg.weight_decay,
        )
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose adam or sgd")


def _task_stateful(task: Task) -> bool:
    return callable(getattr(task, "state_dict", None)) and callable(
        getattr(task, "load_state_dict", None)
    )


def _save(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint without executing code (``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def fit(
    task: Task,
    model: nn.Module,
    cfg: TrainConfig,
    workdir: str | Path,
    metrics_path: str | Path,
    digest: str = "",
    name: str = "train",
) -> dict[str, Any]:
    """Train ``model`` on ``task``; return the history and best epoch.

    Parameters
    ----------
    workdir
        Folder for ``last.pt`` / ``best.pt``. Not a Snakemake output, so a rerun after an
        interruption finds it and resumes.
    metrics_path
        Per-epoch TSV (epoch, train_loss, val_loss, score, the task's other metrics, lr, seconds),
        written when training ends; ``workdir/metrics.tsv`` is updated after every epoch.
    digest
        Identifies the training inputs (settings and the content of every training input); a
        checkpoint with another digest is not resumed from, so edited data retrains.
    name
        What is trained (e.g. ``imaging segmentation``), for the per-epoch progress line.

    After return, ``model`` holds the best-on-validation weights.
    """
    workdir = Path(workdir)
    rank, world = rank_and_world()
    main = rank == 0
    if main:
        workdir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank())
    if cfg.batch_size % world:
        raise VoxseqError(
            f"train.batch_size {cfg.batch_size} does not divide by the {world} data-parallel "
            "processes (train.gpus)"
        )
    model.to(device)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile and device.type == "cuda":
        net = torch.compile(net)
    opt = make_optimizer(cfg, model)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    total = cfg.epochs * cfg.iters_per_epoch
    history: list[dict] = []
    start, best_score, best_epoch, stale = 0, -math.inf, -1, 0
    last = workdir / "last.pt"
    if last.exists():
        ck = load_checkpoint(last)
        stateful = _task_stateful(task)
        if stateful and "task" not in ck:
            log.info("ignoring %s: it holds no state of the task (training from scratch)", last)
        elif ck.get("digest") == digest and ck.get("config") == asdict(cfg):
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            scaler.load_state_dict(ck["scaler"])
            if stateful:
                task.load_state_dict(ck["task"])
            if "rng" in ck:
                set_rng_state(ck["rng"], device)
            else:
                log.warning("%s holds no random state: the resumed run is not exact", last)
            start, history = ck["epoch"] + 1, ck["history"]
            best_score, best_epoch, stale = ck["best_score"], ck["best_epoch"], ck["stale"]
            log.info("resuming from %s after epoch %d", last, ck["epoch"])
        else:
            log.info("ignoring %s: it was made from other inputs or settings", last)
    log.info(
        "training on %s (AMP %s), epochs %d x %d iterations, batch %d%s",
        device,
        cfg.amp_dtype if use_amp else "off",
        cfg.epochs,
        cfg.iters_per_epoch,
        cfg.batch_size,
        f" ({world} data-parallel processes x {cfg.batch_size // world})" if world > 1 else "",
    )
    if start >= cfg.epochs:
        progress.info("%s: already trained (%d epochs; checkpoint %s)", name, cfg.epochs, last)
    elif start:
        progress.info("%s: resuming after epoch %d of %d", name, start, cfg.epochs)
    epoch_seconds: list[float] = []
    pace = ProgressPace(cfg.epochs, time.monotonic())
    for epoch in range(start, cfg.epochs):
        if cfg.patience and stale >= cfg.patience:
            log.info("early stop: no improvement for %d epochs", stale)
            if main:
                progress.info(
                    "%s: early stop after epoch %d/%d (no better validation score for %d "
                    "epochs)%s",
                    name,
                    epoch,
                    cfg.epochs,
                    stale,
                    best_text(best_score, best_epoch),
                )
            break
        t0 = time.time()
        net.train()
        losses = []
        for i, batch in enumerate(task.batches(epoch, cfg.iters_per_epoch, rank, world)):
            lr = learning_rate(cfg, epoch * cfg.iters_per_epoch + i, total)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = task.loss(net, batch, device)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            losses.append(float(loss.detach()))
        net.eval()
        train_loss = mean_over_ranks(float(np.mean(losses)) if losses else math.nan)
        metrics = None
        if main:  # rank 0 alone validates; the others wait for its metrics
            with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                metrics = task.validate(model, device)
        metrics = broadcast(metrics)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            **{k: float(v) for k, v in metrics.items()},
            "lr": lr,
            "seconds": round(time.time() - t0, 2),
        }
        history.append(row)
        warmup = epoch < cfg.select_after  # never the best epoch, no early-stopping count
        improved = not warmup and metrics["score"] > best_score
        if improved:
            best_score, best_epoch, stale = metrics["score"], epoch, 0
            if main:
                _save(
                    workdir / "best.pt",
                    {"model": model.state_dict(), "epoch": epoch, "digest": digest},
                )
        elif not warmup:
            stale += 1
        if not main:
            continue
        _save(
            last,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch,
                "history": history,
                "best_score": best_score,
                "best_epoch": best_epoch,
                "stale": stale,
                "digest": digest,
                "config": asdict(cfg),
                "rng": rng_state(device),
                **({"task": task.state_dict()} if _task_stateful(task) else {}),
            },
        )
        log.info(
            "epoch %d/%d train_loss %.4f val_loss %.4f score %.4f%s (%.1fs)",
            epoch + 1,
            cfg.epochs,
            row["train_loss"],
            row["val_loss"],
            row["score"],
            " *best*" if improved else "",
            row["seconds"],
        )
        write_tsv(workdir / "metrics.tsv", history, list(history[0].keys()))
        epoch_seconds.append(row["seconds"])
        if not pace.due(epoch, time.monotonic()):
            continue
        left = (cfg.epochs - epoch - 1) * float(np.mean(epoch_seconds))
        progress.info(
            "%s: epoch %d/%d  loss %.4f  val %.4f%s  %.0f s/epoch, %s left",
            name,
            epoch + 1,
            cfg.epochs,
            row["train_loss"],
            row["score"],
            best_text(best_score, best_epoch),
            epoch_seconds[-1],
            duration(left),
        )
    if history and main:
        write_tsv(metrics_path, history, list(history[0].keys()))
    barrier()  # rank 0's best.pt is complete before anyone loads it
    best = workdir / "best.pt"
    if best.exists():
        model.load_state_dict(load_checkpoint(best)["model"])
    model.to("cpu")
    return {
        "history": history,
        "best_epoch": best_epoch,
        "best_score": best_score,
        "device": str(device),
        "amp": use_amp,
        "processes": world,
    }
