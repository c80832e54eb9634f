"""Sequence-to-coverage training: windows from HDF5, Poisson loss, reverse-complement and shift
augmentation, validation Pearson R per track; writes the genomics model bundle.

Targets are divided by a per-track scale (the mean target over the training windows) so that the
model's outputs are near 1; the scale is stored in the bundle and multiplied back at inference.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from voxseq import VoxseqError
from voxseq.bundle import write_bundle
from voxseq.distributed import is_main
from voxseq.fit import TrainConfig, fit, resolve_device, seed_everything
from voxseq.genomics.archs import DEFAULT_ARCH, arch_arguments
from voxseq.genomics.metrics import PearsonAccumulator, pearson_warnings
from voxseq.genomics.windows import read_meta, read_windows, split_indices
from voxseq.io.atomic import write_json
from voxseq.io.digest import file_sha256, object_sha256
from voxseq.models import build_model

log = logging.getLogger(__name__)

CACHE_BYTES = 2 << 30  # windows files up to this size are read into memory once
EVAL_VALUES = 1 << 24  # target values (windows x bins x tracks) evaluated at a time


def rc_tensor(x: torch.Tensor) -> torch.Tensor:
    """Reverse complement of one-hot ``(N, 4, L)`` (A, C, G, T): flip channels and length."""
    return x.flip(1, 2)


def shift_onehot(x: np.ndarray, shift: int) -> np.ndarray:
    """Shift one-hot ``(L, 4)`` by ``shift`` bp (positive: towards the end), N-padded."""
    out = np.zeros_like(x)
    if shift > 0:
        out[shift:] = x[:-shift]
    elif shift < 0:
        out[:shift] = x[-shift:]
    else:
        out[:] = x
    return out


def poisson_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean Poisson negative log-likelihood (without the target-only term)."""
    return (pred - target * torch.log(pred + eps)).mean()


def predict(model: nn.Module, onehot: np.ndarray, device: torch.device, batch_size: int = 32,
            rc_average: bool = True) -> np.ndarray:
    """Model outputs for one-hot windows, optionally averaged with the reverse strand.

    Parameters
    ----------
    onehot
        ``(N, L, 4)`` uint8 or float.

    Returns
    -------
    numpy.ndarray
        ``(N, L // bin_size, T)`` float32 in the model's (scaled) units.
    """
    out = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(onehot), batch_size):
            x = torch.from_numpy(np.asarray(onehot[i:i + batch_size], dtype=np.float32))
            x = x.transpose(1, 2).to(device)
            y = model(x).float()
            if rc_average:
                y = 0.5 * (y + model(rc_tensor(x)).float().flip(2))
            out.append(y.transpose(1, 2).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0, 0), np.float32)


class GenomicsTask:
    """Windows of one HDF5 file as a :class:`voxseq.fit.Task`.

    Parameters
    ----------
    windows
        The windows HDF5 (see :mod:`voxseq.genomics.windows`).
    seed, batch_size
        Batches of epoch ``e`` are drawn from ``default_rng([seed, e])`` only.
    reverse_complement
        Reverse-complement half of the training windows (targets flipped to match).
    max_shift
        Shift training sequences by up to this many bp (N-padded); targets unchanged.
    max_val_windows
        Validate on at most this many val windows (evenly spaced), for speed.
    """

    def __init__(self, windows: str | Path, seed: int, batch_size: int,
                 reverse_complement: bool = True, max_shift: int = 3,
                 max_val_windows: int = 512, exclude_tracks: Sequence[str] = ()) -> None:
        self.path = Path(windows)
        self.meta = read_meta(self.path)
        unknown = sorted(set(exclude_tracks) - set(self.meta["tracks"]))
        if unknown:
            raise VoxseqError(f"windows file {self.path}: tracks {unknown} to exclude are not "
                              f"among its tracks {self.meta['tracks']}")
        # qc.exclude_flagged: an excluded track's targets weigh nothing in the loss or the
        # validation score (its head still predicts it)
        self.kept = np.array([t not in exclude_tracks for t in self.meta["tracks"]])
        if not self.kept.any():
            raise VoxseqError(f"windows file {self.path}: every track is excluded")
        self._kept_index = torch.from_numpy(np.flatnonzero(self.kept))
        self.seed, self.batch_size = seed, batch_size
        self.rc, self.max_shift = reverse_complement, max_shift
        self.train_idx = split_indices(self.path, "train")
        val = split_indices(self.path, "val")
        if len(self.train_idx) == 0 or len(val) == 0:
            raise VoxseqError(f"windows file {self.path}: {len(self.train_idx)} train and "
                              f"{len(val)} val windows; need both (check val_contigs, window)")
        step = max(len(val) // max_val_windows, 1)
        self.val_idx = val[::step][:max_val_windows]
        n_values = self.meta["window"] // self.meta["bin_size"] * len(self.meta["tracks"])
        self.eval_chunk = int(np.clip(EVAL_VALUES // n_values, 16, 1024))
        self._h5 = h5py.File(self.path, "r")
        self._cache = None
        if self._h5["sequence"].nbytes + self._h5["targets"].nbytes <= CACHE_BYTES:
            self._cache = (self._h5["sequence"][()], self._h5["targets"][()])
        self.scale = self._train_scale()

    def _train_scale(self) -> np.ndarray:
        total = np.zeros(len(self.meta["tracks"]))
        for i in range(0, len(self.train_idx), 256):
            total += self.read(self.train_idx[i:i + 256])[1].sum(axis=(0, 1))
        n_bins = len(self.train_idx) * self.meta["window"] // self.meta["bin_size"]
        scale = total / max(n_bins, 1)
        return np.where(scale > 0, scale, 1.0).astype(np.float32)

    def read(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One-hot ``(n, L, 4)`` and unscaled targets ``(n, bins, T)`` of windows ``idx``."""
        if self._cache is not None:
            return self._cache[0][idx], self._cache[1][idx]
        return read_windows(self._h5, idx)

    def _draws(self, rng: np.random.Generator, n: int) -> list[tuple[int, bool]]:
        """Each sample's (shift, reverse-complement) for a batch of ``n``."""
        out = []
        for _ in range(n):
            shift = int(rng.integers(-self.max_shift, self.max_shift + 1)) if self.max_shift else 0
            out.append((shift, bool(self.rc and rng.random() < 0.5)))
        return out

    @staticmethod
    def _augment(draws: list[tuple[int, bool]], seq: np.ndarray, tgt: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        seq, tgt = seq.copy(), tgt.copy()
        for j, (shift, rc) in enumerate(draws):
            if shift:
                seq[j] = shift_onehot(seq[j], shift)
            if rc:
                seq[j] = seq[j, ::-1, ::-1]
                tgt[j] = tgt[j, ::-1]
        return seq, tgt

    def batches(self, epoch: int, n: int, rank: int = 0, world: int = 1
                ) -> Iterator[dict[str, torch.Tensor]]:
        rng = np.random.default_rng([self.seed, epoch])
        for _ in range(n):
            idx = rng.choice(self.train_idx, size=self.batch_size)
            draws = self._draws(rng, len(idx))  # the whole batch's, so every rank stays in step
            mine = np.arange(rank, len(idx), world)  # data-parallel: this rank's shard
            seq, tgt = self._augment([draws[j] for j in mine], *self.read(idx[mine]))
            yield {"x": torch.from_numpy(seq.astype(np.float32)).transpose(1, 2),
                   "y": torch.from_numpy(tgt / self.scale).transpose(1, 2)}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor],
             device: torch.device) -> torch.Tensor:
        pred = model(batch["x"].to(device))
        if self.kept.all():
            return poisson_loss(pred.float(), batch["y"].to(device))
        keep = self._kept_index.to(device)  # tracks are axis 1 of (B, T, bins)
        return poisson_loss(pred.float().index_select(1, keep),
                            batch["y"].to(device).index_select(1, keep))

    def evaluate(self, model: nn.Module, device: torch.device, idx: np.ndarray
                 ) -> dict[str, float]:
        """Poisson loss and Pearson R per track (RC-averaged predictions) on windows ``idx``."""
        return self._evaluate(model, device, idx)[0]

    def _evaluate(self, model: nn.Module, device: torch.device, idx: np.ndarray
                  ) -> tuple[dict[str, float], PearsonAccumulator]:
        """:meth:`evaluate` over chunks of ``eval_chunk`` windows (one chunk: the in-memory
        values exactly; several: the same to rounding), with the Pearson accumulator."""
        tracks = self.meta["tracks"]
        acc, loss, n = PearsonAccumulator(len(tracks)), 0.0, len(idx)
        for i in range(0, n, self.eval_chunk):
            part = idx[i:i + self.eval_chunk]
            seq, tgt = self.read(part)
            pred = predict(model, seq, device)
            y = tgt / self.scale
            # mean of this chunk, weighted by its share of the windows (1.0 for one chunk)
            loss += float(np.mean((pred - y * np.log(pred + 1e-6))[..., self.kept])) \
                * (len(part) / n if len(part) < n else 1.0)
            acc.update(pred, y)
        r = acc.result()
        out = {"val_loss": loss if n else float("nan"), "score": float(np.nanmean(r[self.kept]))
               if np.isfinite(r[self.kept]).any() else float("nan")}
        out.update({f"pearson_{t}": float(v) for t, v in zip(tracks, r, strict=True)})
        return out, acc

    def assess(self, model: nn.Module, device: torch.device, split: str
               ) -> tuple[dict[str, float], list[str]]:
        """Metrics on every window of ``split`` (read a chunk at a time) and the warnings for
        the tracks whose Pearson is undefined (kept tracks only) or a split with no window."""
        idx = split_indices(self.path, split)
        contigs = self.meta.get(f"{split}_contigs") or []
        if not len(idx):
            return {"score": float("nan")}, [f"no {split} windows: {split} metrics not computed"]
        out, acc = self._evaluate(model, device, idx)
        kept = [t for t, k in zip(self.meta["tracks"], self.kept, strict=True) if k]
        reasons = [w for w, k in zip(acc.reasons(), self.kept, strict=True) if k]
        return out, pearson_warnings(kept, reasons, split, contigs)

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return self.evaluate(model, device, self.val_idx)

    def close(self) -> None:
        self._h5.close()


def train_genomics(windows: str | Path, bundle_dir: str | Path, metrics_path: str | Path,
                   workdir: str | Path, model_args: dict, train: dict, seed: int,
                   max_shift: int = 3, provenance: dict | None = None,
                   eval_json: str | Path | None = None,
                   exclude_tracks: Sequence[str] = (), arch: str = DEFAULT_ARCH) -> dict:
    """Train the sequence model on a windows file and write its bundle.

    Parameters
    ----------
    windows
        Windows HDF5 from :func:`voxseq.genomics.windows.tile_genome`.
    bundle_dir
        Bundle folder (``bundle.json`` + ``weights.safetensors``), written atomically.
    metrics_path
        Per-epoch TSV: losses, ``score`` (mean val Pearson) and ``pearson_<track>``.
    workdir
        Checkpoints (``last.pt``, ``best.pt``); a rerun with the same inputs resumes.
    model_args
        The ``genomics.model`` block, or the architecture's arguments besides ``n_tracks`` and
        ``bin_size`` (:func:`arch_arguments` keeps ``arch``'s own keys).
    train
        The ``train:`` config block (see :class:`voxseq.fit.TrainConfig`);
        ``augment.reverse_complement`` (default true) switches reverse-complement augmentation.
    seed
        The config's seed.
    max_shift
        Shift augmentation: training sequences move by up to this many bp.
    provenance
        Extra provenance for the bundle (cohort, config / sheet digests).
    eval_json
        Optional JSON with the best model's val and test metrics.
    exclude_tracks
        Tracks (subjects) whose targets do not train the model (``qc.exclude_flagged``): left
        out of the loss and of the mean Pearson that selects and reports the model; they are
        still predicted, and their own Pearson is still in the per-track metrics.
    arch
        The architecture (``dilated_cnn`` or ``cnn_bilstm``); the bundle records it by this name.

    Returns
    -------
    dict
        The bundle's metrics.
    """
    meta = read_meta(windows)
    cfg = TrainConfig.from_dict(train, seed)
    augment = train.get("augment", {}) or {}
    seed_everything(seed, cfg.deterministic)
    args = {"n_tracks": len(meta["tracks"]), "bin_size": meta["bin_size"],
            **arch_arguments(arch, model_args)}
    model = build_model(arch, **args)
    task = GenomicsTask(windows, seed, cfg.batch_size, augment.get("reverse_complement", True),
                        max_shift, exclude_tracks=exclude_tracks)
    digest = object_sha256({"windows": file_sha256(windows), "arch": arch, "model": args,
                            "train": train, "seed": seed, "max_shift": max_shift,
                            "exclude_tracks": sorted(exclude_tracks)})
    log.info("%s %s: %d parameters; %d train / %d val windows, %d tracks", arch, args,
             sum(p.numel() for p in model.parameters()), len(task.train_idx), len(task.val_idx),
             len(meta["tracks"]))
    result = fit(task, model, cfg, workdir, metrics_path, digest, name=f"genomics {arch}")
    if not is_main():  # data-parallel: rank 0 evaluates and writes the bundle
        task.close()
        return {}
    device = resolve_device(cfg.device)
    model.to(device)
    val, warnings = task.assess(model, device, "val")
    test, test_warnings = task.assess(model, device, "test")
    warnings = meta["warnings"] + warnings + test_warnings
    task.close()
    model.to("cpu")
    metrics = {"best_epoch": result["best_epoch"], "val_pearson_mean": val["score"],
               "val_loss": val["val_loss"], "test_pearson_mean": test["score"],
               "val_pearson": {t: val[f"pearson_{t}"] for t in meta["tracks"]},
               "test_pearson": {t: test[f"pearson_{t}"] for t in meta["tracks"]
                                if f"pearson_{t}" in test},
               "excluded_tracks": sorted(exclude_tracks), "warnings": warnings}
    preprocessing = {
        "window": meta["window"], "stride": meta["stride"], "bin_size": meta["bin_size"],
        "contigs": meta["contigs"], "tracks": meta["tracks"],
        "normalisation": meta["normalisation"], "library_sizes": meta["library_sizes"],
        "soft_clip": meta["soft_clip"], "target_scale": task.scale.tolist(),
        "min_mapq": meta.get("min_mapq"), "exclude_flags": meta.get("exclude_flags"),
        "count_deletions": meta.get("count_deletions"),
    }
    write_bundle(bundle_dir, model, "genomics", arch, args, preprocessing, metrics,
                 {**(provenance or {}), "seed": seed, "device": result["device"],
                  "amp": result["amp"], "processes": result["processes"],
                  "training_digest": digest})
    if eval_json:
        write_json(eval_json, {"val": val, "test": test, "warnings": warnings})
    log.info("%s: best epoch %d: val Pearson %.3f, test Pearson %.3f", arch,
             result["best_epoch"], val["score"], test["score"])
    for message in warnings:
        log.warning("%s", message)
    return metrics
