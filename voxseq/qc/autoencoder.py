"""Training and applying a QC autoencoder, whatever the modality.

The inputs are one array per subject, stacked ``(N, *shape)`` (a volume with its channels, or a
profile). The autoencoder is a *denoising* one: during training its input carries Gaussian noise
of ``noise`` standard deviations and its target is the clean subject, so it learns what a normal
subject looks like instead of learning to copy. It trains through the shared loop
(:func:`voxseq.fit.fit`: checkpoints, resume, determinism), validated on the validation subjects'
reconstruction error.

Robust training: a broken subject in the training split would teach the network to reproduce it,
and a network reconstructs its own training subjects better than new ones. So the training
subjects' reference errors can come from models that did not see them (``reference_folds``), and
training subjects above the flag threshold are left out of the final model; they are returned
(and end up in the bundle and ``qc.tsv``'s reason column).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from voxseq import VoxseqError
from voxseq.fit import TrainConfig, fit, seed_everything
from voxseq.qc.scores import MIN_REFERENCE, enough_reference, error_scores

log = logging.getLogger(__name__)
#: What the person at the terminal must know (rule scripts send it to stderr; the log keeps it).
progress = logging.getLogger("voxseq.progress")


class ReconstructionTask:
    """The :class:`voxseq.fit.Task` of a denoising autoencoder on whole-subject arrays.

    Parameters
    ----------
    x_train, x_val
        (N, *shape) float32 arrays; ``x_val`` may be empty (then the training error validates).
    flip_axes
        Axes of a subject's array (0 = its first axis after the batch) that may be mirrored at
        random (left-right symmetric anatomy); empty for profiles.
    """

    def __init__(
        self,
        x_train: np.ndarray,
        x_val: np.ndarray,
        batch_size: int,
        seed: int,
        noise: float,
        flip_axes: Sequence[int] = (),
    ):
        self.x = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
        xv = x_val if len(x_val) else x_train
        self.xv = torch.from_numpy(np.ascontiguousarray(xv, dtype=np.float32))
        self.batch_size, self.seed, self.noise = batch_size, seed, noise
        self.flip_axes = tuple(int(a) + 1 for a in flip_axes)  # +1: the batch axis

    def batches(self, epoch: int, n: int, rank: int = 0, world: int = 1):
        rng = np.random.default_rng([self.seed, 41, epoch])
        need = n * self.batch_size
        order = np.concatenate(
            [rng.permutation(len(self.x)) for _ in range(-(-need // len(self.x)))]
        )
        for i in range(n):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size][rank::world]
            clean = self.x[torch.from_numpy(idx)]
            draw = np.random.default_rng([self.seed, 43, epoch, i])
            for axis in self.flip_axes:
                flip = torch.from_numpy(draw.random(len(idx)) < 0.5)
                if flip.any():
                    clean[flip] = clean[flip].flip(axis)
            gen = torch.Generator().manual_seed(int(draw.integers(2**62)))
            noisy = clean + self.noise * torch.randn(clean.shape, generator=gen)
            yield {"x": noisy, "y": clean}

    def loss(self, model: nn.Module, batch: dict, device: torch.device) -> torch.Tensor:
        return F.mse_loss(model(batch["x"].to(device)).float(), batch["y"].to(device))

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        recon, _ = reconstruct(model, self.xv, device)
        loss = float(np.mean((recon - self.xv.numpy()) ** 2))
        return {"val_loss": loss, "score": -loss}


def reconstruct(
    model: nn.Module, x: np.ndarray | torch.Tensor, device, batch_size: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructions (N, *shape) and latent codes (N, latent) of clean inputs."""
    x = torch.as_tensor(x, dtype=torch.float32)
    model.eval()
    recon, codes = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            code = model.encode(x[i : i + batch_size].to(device))
            recon.append(model.decode(code).float().cpu())
            codes.append(code.float().cpu())
    if not recon:
        return np.zeros((0, *x.shape[1:]), np.float32), np.zeros((0, 0), np.float32)
    return torch.cat(recon).numpy(), torch.cat(codes).numpy()


def subject_errors(x: np.ndarray, recon: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Mean squared reconstruction error per subject.

    ``scale`` (the shape of one subject, broadcastable): each element's squared error is
    divided by it before the mean (a per-voxel error scale, see
    :func:`voxseq.imaging.qc.voxel_error_scale`).
    """
    sq = (recon.astype(np.float64) - x.astype(np.float64)) ** 2
    if scale is not None:
        sq = sq / np.asarray(scale, np.float64)
    return sq.reshape(len(sq), -1).mean(1)


def train_autoencoder(
    make_model: Callable[[], nn.Module],
    x: np.ndarray,
    train_rows: Sequence[int],
    val_rows: Sequence[int],
    train_cfg: dict,
    seed: int,
    noise: float,
    threshold: float,
    workdir: str | Path,
    metrics_path: str | Path,
    digest: str,
    name: str,
    flip_axes: Sequence[int] = (),
    reference_folds: int = 0,
    error_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] = subject_errors,
) -> tuple[nn.Module, list[int], list[int], np.ndarray, np.ndarray | None]:
    """Train a denoising autoencoder on ``x[train_rows]``, robustly.

    The training subjects' reference errors are out-of-sample when ``reference_folds`` >= 2:
    each fold's subjects are reconstructed by a model trained without them (a model always
    reconstructs its own training subjects better than new ones, which would score every new
    subject high). With 0, they are the model's own (in-sample) errors: cheaper, and fine when
    the network is too small to memorise (the imaging default). Training subjects whose
    reference score is above ``threshold`` are left out of the final model and the reference;
    ``error_fn(x, recon)`` gives the per-subject errors that score is computed from.

    ``train_cfg`` is a ``train:`` block (:class:`voxseq.fit.TrainConfig`); without
    ``iters_per_epoch`` an epoch is one pass over the training subjects.

    Returns
    -------
    model, dropped rows, kept rows, the kept rows' reconstructions (N_kept, *shape): the
    reference the cohort is scored against, and with ``reference_folds`` >= 2 the out-of-fold
    reconstructions of every training row (N_train, *shape), else None: the training subjects
    are scored with these (:func:`write_out_of_fold`), not with the final model that saw them.
    """
    workdir = Path(workdir)
    xv = x[list(val_rows)]

    def fit_on(rows: list[int], tag: str) -> nn.Module:
        cfg = dict(train_cfg)
        if not cfg.get("iters_per_epoch"):
            cfg["iters_per_epoch"] = max(-(-len(rows) // int(cfg["batch_size"])), 1)
        tc = TrainConfig.from_dict(cfg, seed)
        seed_everything(seed, tc.deterministic)
        model = make_model()
        task = ReconstructionTask(x[rows], xv, tc.batch_size, seed, noise, flip_axes)
        fit(task, model, tc, workdir / tag, metrics_path, digest, f"{name} ({tag})")
        return model.cpu().eval()

    rows = list(train_rows)
    recon = np.zeros_like(x[rows])
    model = None
    folds = min(reference_folds, len(rows))  # few subjects: leave one out
    if folds >= 2:
        fold = np.random.default_rng([seed, 47]).permutation(len(rows)) % folds
        for k in range(folds):
            held = np.flatnonzero(fold == k)
            m = fit_on([rows[i] for i in np.flatnonzero(fold != k)], f"reference{k}")
            recon[held] = reconstruct(m, x[[rows[i] for i in held]], "cpu")[0]
    else:
        model = fit_on(rows, "final")
        recon = reconstruct(model, x[rows], "cpu")[0]
    err = error_fn(x[rows], recon)
    dropped: list[int] = []
    if not enough_reference(len(rows)):
        progress.warning(
            "%s: QC could not score: %d training subject(s), at least %d are needed; no subject "
            "is scored or flagged, so nothing is excluded from training (qc.exclude_flagged)",
            name,
            len(rows),
            MIN_REFERENCE,
        )
    elif np.isfinite(threshold):
        scores = error_scores(err, np.arange(len(rows)))
        dropped = [r for r, z in zip(rows, scores, strict=True) if z > threshold]
        if not enough_reference(len(rows) - len(dropped)):
            dropped = []
    if dropped:
        log.info("%s: training subjects %s above %.1f left out", name, dropped, threshold)
    keep = [i for i, r in enumerate(rows) if r not in dropped]
    kept = [rows[i] for i in keep]
    oof = recon if folds >= 2 else None
    if model is None or dropped:
        # its own checkpoint folder: "final" may hold the model that saw the left-out subjects
        model = fit_on(kept, "final" if model is None else "final_kept")
        if oof is None:
            return model, dropped, kept, reconstruct(model, x[kept], "cpu")[0], None
    return model, dropped, kept, recon[keep], oof


def write_out_of_fold(
    path: str | Path, subjects: Sequence[str], x: np.ndarray, recon: np.ndarray | None
) -> None:
    """Write the training subjects' out-of-fold inputs and reconstructions (``.npz``).

    ``recon`` None (in-sample reference): a file with no subjects, so the rule's output exists.
    Read back by :func:`apply_out_of_fold` when the same cohort is scored.
    """
    from voxseq.io.atomic import atomic_path

    if recon is None:
        subjects, x, recon = [], x[:0], x[:0]
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            subjects=np.array(list(subjects), dtype=str),
            input=np.asarray(x, np.float32),
            reconstruction=np.asarray(recon, np.float32),
        )


def apply_out_of_fold(
    path: str | Path | None, subjects: Sequence[str], x: np.ndarray, recon: np.ndarray
) -> set[str]:
    """Replace the final model's reconstructions of training subjects by out-of-fold ones.

    A model reconstructs the subjects it was trained on better than any other, so a broken
    training subject would look normal when the final model scores it. ``path`` is the
    training rule's :func:`write_out_of_fold` file (None: nothing to replace). ``recon`` is
    changed in place; returns the subjects replaced. A subject whose input differs from the
    one its out-of-fold reconstruction was made from is an error (a stale file).
    """
    if path is None:
        return set()
    with np.load(path, allow_pickle=False) as f:
        names, xin, rec = [str(s) for s in f["subjects"]], f["input"], f["reconstruction"]
    row = {s: i for i, s in enumerate(subjects)}
    for j, s in enumerate(names):
        if s not in row:
            continue
        if xin[j].shape != x[row[s]].shape or not np.allclose(xin[j], x[row[s]], atol=1e-5):
            raise VoxseqError(
                f"{path}: subject {s}'s QC input differs from the one its out-of-fold "
                "reconstruction was made from; rerun the QC training rule"
            )
        recon[row[s]] = rec[j]
    return {s for s in names if s in row}
