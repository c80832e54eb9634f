"""Subject-level imaging classification: cross-validated 3D (or 2D) ResNet / VGG classifiers.

The data are the normalised OME-Zarr stores (nothing is re-ingested). Each subject becomes one
fixed-size input: its volume (optionally cropped to the body's bounding box) resampled to
``input_size``, plus, with ``with_segmentation``, the segmentation's probability of each
foreground label as further channels (``seg_<label>``, e.g. ``seg_lesion``). An
``input_size`` whose last axis is 1 takes the central axial slice and a 2D network.

Cross-validation: the labelled train + val subjects are split into ``folds`` folds, stratified by
class and deterministic from the seed. Fold ``k`` is held out (its subjects get their out-of-fold
prediction from this fold's model), fold ``k + 1`` (mod ``folds``) is the validation set for
early stopping and the best epoch, the rest trains. The folds' models together are one bundle (a
:class:`voxseq.models.classifiers.ClassifierEnsemble`, mean probability), which predicts the test
split and any new cohort.
"""

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
from scipy.spatial.transform import Rotation

from voxseq import VoxseqError
from voxseq.bundle import load_bundle, write_bundle
from voxseq.distributed import is_main
from voxseq.fit import TrainConfig, fit, resolve_device, seed_everything
from voxseq.imaging.resample import resample
from voxseq.imaging.store import common_channels, content_digest, open_store
from voxseq.io.atomic import atomic_path, read_tsv, write_json, write_tsv
from voxseq.io.digest import file_sha256, object_sha256
from voxseq.metrics import auroc
from voxseq.models import build_model

log = logging.getLogger(__name__)

IMAGE = "image"
SEG_PREFIX = "seg_"  # channels holding a segmentation label's probability
#: Ties of the validation AUROC (a handful of validation subjects) go to the lower loss.
LOSS_TIEBREAK = 0.01


# ---- classes and folds -------------------------------------------------------------------------
def subject_classes(sheet_rows: Sequence[dict], subjects: Sequence[str]) -> dict[str, str]:
    """Subject -> class for the ``subjects`` whose sheet row has a non-empty ``class``."""
    rows = {r["subject"]: r for r in sheet_rows}
    return {s: rows[s]["class"] for s in subjects if s in rows and rows[s].get("class")}


def check_classes(
    classes: dict[str, str], pool: Sequence[str], folds: int, sheet: str
) -> list[str]:
    """The sorted class names; refuse a single class, or (training) a class with fewer
    train + val subjects than folds.

    Parameters
    ----------
    classes
        Subject -> class, every imaging subject with a class.
    pool
        The train + val subjects with a class (the cross-validated ones).
    """
    names = sorted(set(classes.values()))
    pooled = sorted({classes[s] for s in pool})
    if len(pooled) < 2:
        raise VoxseqError(
            f"imaging.classify: the sample sheet {sheet} has a single class "
            f"({pooled or names} among {len(pool)} train/val subjects); a classifier needs two "
            "or more. Fix the class column, or set imaging.classify.enabled: false"
        )
    for name in pooled:
        n = sum(classes[s] == name for s in pool)
        if n < folds:
            raise VoxseqError(
                f"imaging.classify: class {name!r} has {n} train/val subjects in {sheet}, fewer "
                f"than imaging.classify.folds ({folds}); every fold needs one. Lower folds, or "
                "add subjects of that class"
            )
    return names


def stratified_folds(classes: dict[str, str], folds: int, seed: int) -> dict[str, int]:
    """Subject -> fold in ``0 .. folds - 1``, stratified by class, deterministic from ``seed``.

    Within each class (in sorted order) the sorted subjects are shuffled and dealt to the folds
    in turn, continuing where the previous class stopped, so fold sizes differ by at most one
    and every class is spread as evenly as it can be.
    """
    rng = np.random.default_rng([seed, 17])
    out, turn = {}, 0
    for name in sorted(set(classes.values())):
        members = sorted(s for s, c in classes.items() if c == name)
        for s in rng.permutation(np.array(members, dtype=object)).tolist():
            out[s] = turn % folds
            turn += 1
    return dict(sorted(out.items()))


def fold_roles(fold_of: dict[str, int], fold: int, folds: int) -> dict[str, list[str]]:
    """Held-out (``fold``), validation (``fold + 1`` mod ``folds``) and training subjects."""
    val_fold = (fold + 1) % folds
    roles = {"holdout": [], "val": [], "train": []}
    for s, f in sorted(fold_of.items()):
        roles["holdout" if f == fold else "val" if f == val_fold else "train"].append(s)
    return roles


def check_bundle_fits(
    meta: dict,
    bundle: str,
    classes: set[str],
    image_channels: Sequence[str],
    plan: dict,
    sheet: str,
) -> None:
    """Refuse a classifier bundle that does not fit the cohort: a class in the sheet it does not
    know, other image channels, or other preprocessing than the cohort's normalised volumes.

    Parameters
    ----------
    classes
        The class names in the cohort's sheet (may be empty: nothing to check).
    image_channels
        The cohort's image channels (``["image"]`` for one image per subject).
    plan
        The preprocessing the cohort's volumes get (``target_spacing``, ``interpolation``,
        ``normalisation``, ``statistics``) and its segmentation ``labels``.
    """
    pre = meta["preprocessing"]
    unknown = sorted(classes - set(pre["classes"]))
    if unknown:
        raise VoxseqError(
            f"models.imaging_classify {bundle}: the sample sheet {sheet} has class(es) "
            f"{unknown} that the classifier was not trained on; its classes are "
            f"{pre['classes']}. Rename the classes in the sheet to the bundle's, or train a "
            "classifier on this cohort"
        )
    theirs = [c for c in pre["channels"] if not c.startswith(SEG_PREFIX)]
    if list(theirs) != list(image_channels):
        raise VoxseqError(
            f"models.imaging_classify {bundle}: the classifier takes image channels {theirs}, "
            f"the cohort has {list(image_channels)}"
        )
    seg = [c for c in pre["channels"] if c.startswith(SEG_PREFIX)]
    ours = [f"{SEG_PREFIX}{name}" for name in (plan.get("labels") or [])[1:]]
    if seg and seg != ours:
        raise VoxseqError(
            f"models.imaging_classify {bundle}: the classifier takes segmentation channels "
            f"{seg}, this cohort's segmentation gives {ours} (imaging.labels)"
        )
    for key in ("target_spacing", "interpolation", "normalisation", "statistics"):
        if pre.get(key) != plan.get(key):
            raise VoxseqError(
                f"models.imaging_classify {bundle}: trained on volumes with {key} "
                f"{pre.get(key)!r}, this cohort's volumes get {plan.get(key)!r} (from the "
                "segmentation bundle or imaging config); the two must be normalised alike"
            )


# ---- inputs -------------------------------------------------------------------------------------
def body_box(volume: np.ndarray, margin: int = 2) -> tuple[slice, ...]:
    """Bounding box of the body: voxels above the volume's mean (air is far below it after any
    normalisation), widened by ``margin`` voxels; the whole volume when nothing is above."""
    mask = volume > volume.mean()
    if not mask.any():
        return tuple(slice(0, n) for n in volume.shape)
    idx = np.nonzero(mask)
    return tuple(
        slice(max(int(i.min()) - margin, 0), min(int(i.max()) + 1 + margin, n))
        for i, n in zip(idx, volume.shape, strict=True)
    )


def classifier_input(
    store: str,
    input_size: Sequence[int],
    crop: str = "none",
    seg_probs: str | None = None,
) -> np.ndarray:
    """One subject's classifier input, float32 (C, X, Y, Z) (or (C, X, Y) for a 2D input).

    Parameters
    ----------
    store
        The subject's normalised zarr store.
    input_size
        (X, Y, Z); Z = 1 takes the central axial slice (2D networks).
    crop
        ``none``, or ``body``: crop to the body's bounding box (:func:`body_box`) first.
    seg_probs
        A ``.npy`` file with the segmentation's foreground-label probabilities (L - 1, X, Y, Z)
        on the store's grid (further channels, after the store's image channels), or None.
    """
    st = open_store(store)
    channels = list(st.read_image())  # every image channel, then the segmentation's
    if seg_probs is not None:
        probs = np.load(seg_probs, allow_pickle=False).astype(np.float32)
        if probs.shape[1:] != channels[0].shape:
            raise VoxseqError(
                f"{seg_probs}: segmentation probabilities of shape {probs.shape[1:]} do not match "
                f"the normalised volume {store} of shape {channels[0].shape}"
            )
        channels.extend(probs)
    if crop == "body":
        box = body_box(channels[0])
        channels = [c[box] for c in channels]
    out = resample(np.stack(channels), tuple(input_size), "linear", engine="torch")
    out = out.astype(np.float32, copy=False)
    return out[..., 0] if input_size[-1] == 1 else out


def stack_inputs(
    subjects: Sequence[str],
    stores: dict[str, str],
    seg_probs: dict[str, str] | None,
    input_size: Sequence[int],
    crop: str = "none",
) -> np.ndarray:
    """:func:`classifier_input` of each subject, stacked (N, C, *input_size)."""
    return np.stack(
        [
            classifier_input(stores[s], input_size, crop, seg_probs[s] if seg_probs else None)
            for s in subjects
        ]
    )


# ---- training ------------------------------------------------------------------------------------
def augment_sample(
    x: torch.Tensor, augment: dict, gen: torch.Generator, image_channels: int = 1
) -> torch.Tensor:
    """Random flips, small rotation and isotropic scale (one resampling), intensity scale and
    shift of one input (C, *spatial), the same draw for its first ``image_channels`` channels;
    segmentation channels (the rest, if any) are moved, not rescaled."""
    dims = x.ndim - 1

    def uniform(lo: float, hi: float, n: int = 1) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    flips = list(augment.get("flip", [False] * dims))[:dims]
    draws = torch.rand(dims, generator=gen)
    axes = [1 + a for a, (on, d) in enumerate(zip(flips, draws, strict=False)) if on and d < 0.5]
    if axes:
        x = torch.flip(x, axes)
    deg = float(augment.get("rotate_deg", 0.0))
    lo, hi = augment.get("scale", [1.0, 1.0])
    angles = uniform(-deg, deg, 3) * math.pi / 180.0
    scale = uniform(lo, hi)
    if deg or lo != 1.0 or hi != 1.0:
        if dims == 3:
            rot = torch.from_numpy(Rotation.from_euler("xyz", angles.numpy()).as_matrix()).float()
        else:  # in-plane rotation
            c, s = torch.cos(angles[0]), torch.sin(angles[0])
            rot = torch.stack([c, -s, s, c]).reshape(2, 2)
        theta = torch.cat([rot / scale, torch.zeros(dims, 1)], 1)[None]
        grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)
        x = F.grid_sample(
            x[None], grid, mode="bilinear", padding_mode="border", align_corners=False
        )[0]
    s_lo, s_hi = augment.get("intensity_scale", [1.0, 1.0])
    t_lo, t_hi = augment.get("intensity_shift", [0.0, 0.0])
    x = x.clone()
    x[:image_channels] = x[:image_channels] * uniform(s_lo, s_hi) + uniform(t_lo, t_hi)
    return x


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
        auc = macro_auroc(self.yv.numpy(), proba)
        acc = float((proba.argmax(1) == self.yv.numpy()).mean())
        score = auc - LOSS_TIEBREAK * loss if not math.isnan(auc) else -loss
        return {"val_loss": loss, "score": score, "val_auroc": auc, "val_accuracy": acc}


def macro_auroc(y: np.ndarray, proba: np.ndarray) -> float:
    """One-vs-rest AUROC averaged over the classes present (binary: AUROC of class 1)."""
    if proba.shape[1] == 2:
        return auroc(proba[:, 1], y == 1)
    values = [auroc(proba[:, k], y == k) for k in range(proba.shape[1]) if (y == k).any()]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if len(values) >= 2 else float("nan")


def predict_proba(
    model: torch.nn.Module,
    x: torch.Tensor | np.ndarray,
    device,
    batch_size: int = 8,
    ensemble: bool = False,
) -> np.ndarray:
    """Class probabilities (N, K); ``ensemble`` models already return probabilities."""
    x = torch.as_tensor(x)
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            y = model(x[i : i + batch_size].to(device)).float()
            out.append((y if ensemble else y.softmax(1)).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def architecture(cfg: dict, n_classes: int, n_channels: int) -> dict:
    """Arguments of the member network for the config's ``imaging.classify`` block."""
    return {
        "in_channels": n_channels,
        "num_classes": n_classes,
        "spatial_dims": 2 if cfg["input_size"][-1] == 1 else 3,
        "base_channels": cfg["model"]["base_channels"],
        "dropout": cfg["model"]["dropout"],
    }


def channel_names(
    cfg: dict, labels: Sequence[str], image_channels: Sequence[str] = (IMAGE,)
) -> list[str]:
    """The image channels, then (``with_segmentation``) one channel per foreground label."""
    seg = [f"{SEG_PREFIX}{name}" for name in labels[1:]] if cfg["with_segmentation"] else []
    return [*image_channels, *seg]


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


# ---- prediction ----------------------------------------------------------------------------------
def predict_cohort(
    sheet: str,
    stores: dict[str, str],
    seg_probs: dict[str, str] | None,
    bundle: str,
    oof_tables: Sequence[str],
    out_tsv: str,
    device: str = "auto",
) -> tuple[list[dict], list[str], dict]:
    """Every imaging subject's class probabilities: out-of-fold for the cross-validated subjects
    (from ``oof_tables``), the fold ensemble's for the rest (test split, new cohorts).

    Returns the prediction rows (also written to ``out_tsv``), the class names and the model.
    """
    model, meta = load_bundle(bundle, "imaging")
    pre = meta["preprocessing"]
    names = list(pre["classes"])
    rows = {r["subject"]: r for r in read_tsv(sheet)}
    oof = {r["subject"]: r for t in oof_tables for r in read_tsv(t)}
    need = [s for s in stores if s not in oof]
    dev = resolve_device(device)
    model.to(dev)
    proba = {}
    if need:
        x = stack_inputs(need, stores, seg_probs, pre["input_size"], pre.get("crop", "none"))
        proba = dict(zip(need, predict_proba(model, x, dev, ensemble=True), strict=True))
    model.to("cpu")
    out = []
    for s in stores:
        if s in oof:
            p = np.array([float(oof[s][f"prob_{c}"]) for c in names])
            fold = oof[s]["fold"]
        else:
            p, fold = proba[s], "ensemble"
        truth = rows.get(s, {}).get("class", "")
        if truth and truth not in names:
            raise VoxseqError(
                f"subject {s}: class {truth!r} in {sheet} is not one of the classifier's "
                f"classes {names} (bundle {bundle})"
            )
        out.append(
            {
                "subject": s,
                "split": rows.get(s, {}).get("split", ""),
                "fold": fold,
                "true": truth,
                "predicted": names[int(np.argmax(p))],
                **{f"prob_{c}": round(float(v), 6) for c, v in zip(names, p, strict=True)},
            }
        )
    write_tsv(
        out_tsv,
        out,
        ["subject", "split", "fold", "true", "predicted", *[f"prob_{c}" for c in names]],
    )
    return out, names, {"model": model, "meta": meta}


def _truth_proba(rows: Sequence[dict], names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    truth = [r["true"] for r in rows]
    proba = np.array([[float(r[f"prob_{c}"]) for c in names] for r in rows]).reshape(
        len(rows), len(names)
    )
    return truth, proba


def classify_cohort(
    sheet: str,
    stores: dict[str, str],
    seg_probs: dict[str, str] | None,
    bundle: str,
    oof_tables: Sequence[str],
    outputs: dict[str, str],
    n_bootstrap: int = 1000,
    seed: int = 0,
    report_subjects: int = 6,
    device: str = "auto",
) -> dict:
    """Predict every subject, score the predictions, draw the report figures.

    Writes ``outputs["predictions"]`` (subject, split, fold, true, predicted, ``prob_<class>``),
    ``outputs["metrics"]`` (``oof``: the cross-validated subjects' out-of-fold predictions;
    ``test``: the test split's subjects with a class, predicted by the fold ensemble; each with
    accuracy, balanced accuracy, macro F1, AUROC and its 95 % bootstrap interval, confusion
    matrix; ``folds``: AUROC per fold) and the figures ``roc``, ``confusion`` and ``grid`` (test
    subjects' central slices with the ensemble's Grad-CAM for the predicted class).
    """
    from voxseq.imaging.plots import classification_grid, confusion_heatmap, roc_curves
    from voxseq.metrics import classification_metrics
    from voxseq.models.gradcam import grad_cam

    rows, names, loaded = predict_cohort(
        sheet, stores, seg_probs, bundle, oof_tables, outputs["predictions"], device
    )
    oof = [r for r in rows if r["fold"] != "ensemble" and r["true"]]
    test = [r for r in rows if r["fold"] == "ensemble" and r["true"] and r["split"] == "test"]
    metrics: dict = {"classes": names, "oof": None, "test": None, "folds": []}
    if oof:
        metrics["oof"] = classification_metrics(
            *_truth_proba(oof, names), names, n_bootstrap=n_bootstrap, seed=seed
        )
    if test:
        metrics["test"] = classification_metrics(
            *_truth_proba(test, names), names, n_bootstrap=n_bootstrap, seed=seed
        )
    folds = []
    for k in sorted({int(r["fold"]) for r in oof}):
        fold_rows = [r for r in oof if int(r["fold"]) == k]
        truth, proba = _truth_proba(fold_rows, names)
        fold_metrics = classification_metrics(truth, proba, names, n_bootstrap=0)
        metrics["folds"].append(
            {"fold": k, "n": len(fold_rows), "auroc": fold_metrics.get("auroc")}
        )
        folds.append((f"fold {k + 1}", truth, proba))
    metrics["bundle"] = bundle
    write_json(outputs["metrics"], metrics)
    for part in ("oof", "test"):
        m = metrics[part]
        if m:
            log.info(
                "%s: n %d, AUROC %s, balanced accuracy %.3f",
                part,
                m["n"],
                m.get("auroc"),
                m["balanced_accuracy"],
            )
    roc_curves(folds, names, outputs["roc"], _truth_proba(test, names) if test else None)
    matrices = {
        label: metrics[part]["confusion_matrix"]
        for part, label in (("oof", "out-of-fold"), ("test", "test"))
        if metrics[part]
    }
    confusion_heatmap(matrices, names, outputs["confusion"])
    # the report grid: the first test subjects with a class, and the ensemble's Grad-CAM
    model, pre = loaded["model"], loaded["meta"]["preprocessing"]
    grid = []
    for r in test[:report_subjects]:
        s = r["subject"]
        x = stack_inputs([s], stores, seg_probs, pre["input_size"], pre.get("crop", "none"))[0]
        cam = grad_cam(model, torch.from_numpy(x)[None], names.index(r["predicted"]))[0]
        image, cam = (x[0], cam) if x.ndim == 4 else (x[0][..., None], cam[..., None])
        grid.append(
            {
                "image": image,
                "cam": cam,
                "title": f"{s}: true {r['true']} / predicted {r['predicted']} / "
                f"p {float(r['prob_' + r['predicted']]):.2f}",
            }
        )
    classification_grid(grid, outputs["grid"])
    return metrics
