"""Cross-validated subject models: imaging only, genomics only, late and intermediate fusion.

In every outer fold ``k`` everything is fitted on the other folds' subjects only:

* the standardisation of the imaging and the genomics vectors (:class:`Standardiser`);
* ``imaging`` and ``genomics``: a logistic regression on each modality's vector;
* ``late``: a logistic regression (the stacker) on the centred log probabilities (logits) of
  the two single models. Its training subjects' inputs are themselves out of fold: an inner loop
  over the training folds ``j`` refits both single models (and their standardisation) without
  fold ``j`` and predicts it;
* ``intermediate``: a small MLP (:class:`FusionMLP`) on the two standardised vectors side by
  side, each through its own hidden layer, mixed by a learned gate (or concatenated).

The held-out fold is then predicted. A subject with both modalities gets all four predictions; a
subject with one gets that modality's model only, and its fused prediction is that one (its
``source`` says so). Subjects with neither are not predicted. The imaging classifier's
out-of-fold probabilities come from its own cross-validation, whose fold-``j`` network saw the
subjects of fold ``k``; the stacker's few coefficients are fitted on training subjects only.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from voxseq import VoxseqError
from voxseq.subject_model.features import FeatureTable, Standardiser
from voxseq.subject_model.models import ImagingInputs, LogisticModel, log_ratios

log = logging.getLogger(__name__)

MODELS = ("imaging", "genomics", "late", "intermediate")
"""The four subject models, in report order."""

DEFAULTS = {"c": 1.0, "hidden": 16, "gated": True, "dropout": 0.2, "epochs": 300, "lr": 0.01,
            "weight_decay": 0.01, "fusion": "late", "seed": 0}
"""Fitting settings (``subject_model.fit``): logistic regressions' inverse L2 strength ``c``;
the MLP's width, gate, dropout, full-batch Adam epochs, learning rate and weight decay; which
fusion the ``fused`` column and the bundle use; the seed of the MLP's initialisation."""


class FusionMLP(nn.Module):
    """Intermediate fusion: each modality's vector through its own hidden layer, then a gate.

    ``h_i = ReLU(W_i x_i)``, ``h_g = ReLU(W_g x_g)``; gated: ``a = sigmoid(W_a [x_i, x_g])``,
    ``h = a * h_i + (1 - a) * h_g``; plain: ``h = ReLU(W_h [h_i, h_g])``; logits ``W_o
    dropout(h)``. Input (B, n_imaging) and (B, n_genomics) -> logits (B, n_classes).
    """

    def __init__(self, n_imaging: int, n_genomics: int, n_classes: int, hidden: int = 16,
                 gated: bool = True, dropout: float = 0.2) -> None:
        super().__init__()
        self.gated = gated
        self.imaging = nn.Sequential(nn.Linear(n_imaging, hidden), nn.ReLU())
        self.genomics = nn.Sequential(nn.Linear(n_genomics, hidden), nn.ReLU())
        self.mix = (nn.Linear(n_imaging + n_genomics, hidden) if gated
                    else nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU()))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, x_imaging: torch.Tensor, x_genomics: torch.Tensor) -> torch.Tensor:
        h_i, h_g = self.imaging(x_imaging), self.genomics(x_genomics)
        if self.gated:
            a = torch.sigmoid(self.mix(torch.cat([x_imaging, x_genomics], dim=1)))
            h = a * h_i + (1.0 - a) * h_g
        else:
            h = self.mix(torch.cat([h_i, h_g], dim=1))
        return self.head(h)


@contextlib.contextmanager
def _one_thread():
    """One torch thread: the fusion networks are tiny, and thread start-up dominates them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_mlp(x_i: np.ndarray, x_g: np.ndarray, y: np.ndarray, n_classes: int, cfg: dict,
            seed: int) -> FusionMLP:
    """Full-batch Adam on the class-weighted cross-entropy, from a seeded initialisation
    (the global torch random state is left as it was), on one thread."""
    ti = torch.as_tensor(x_i, dtype=torch.float32)
    tg = torch.as_tensor(x_g, dtype=torch.float32)
    ty = torch.as_tensor(y, dtype=torch.long)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weight = torch.tensor(np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0),
                          dtype=torch.float32)
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        model = FusionMLP(x_i.shape[1], x_g.shape[1], n_classes, int(cfg["hidden"]),
                          bool(cfg["gated"]), float(cfg["dropout"]))
        opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]),
                               weight_decay=float(cfg["weight_decay"]))
        model.train()
        for _ in range(int(cfg["epochs"])):
            loss = nn.functional.cross_entropy(model(ti, tg), ty, weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def mlp_proba(model: FusionMLP, x_i: np.ndarray, x_g: np.ndarray) -> np.ndarray:
    with torch.no_grad(), _one_thread():
        logits = model(torch.as_tensor(x_i, dtype=torch.float32),
                       torch.as_tensor(x_g, dtype=torch.float32))
    return logits.softmax(1).double().numpy()


@dataclass
class FoldFit:
    """What outer fold ``fold`` fitted (on the other folds' subjects): the bundle's content."""

    fold: int
    imaging_std: Standardiser | None = None
    genomics_std: Standardiser | None = None
    imaging: LogisticModel | None = None
    genomics: LogisticModel | None = None
    stacker: LogisticModel | None = None
    mlp: FusionMLP | None = None


@dataclass
class CVResult:
    """Out-of-fold predictions of every model.

    ``proba[model]``: subject -> (K,) probabilities; ``source``: subject -> which modalities
    it had (``both``, ``imaging``, ``genomics``); ``fits``: one :class:`FoldFit` per fold.
    """

    classes: list[str]
    truth: dict[str, str]
    fold_of: dict[str, int]
    proba: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    fits: list[FoldFit] = field(default_factory=list)


def stack_inputs(p_imaging: np.ndarray, p_genomics: np.ndarray) -> np.ndarray:
    """The stacker's input: both models' centred log probabilities side by side, (N, 2K)
    (:func:`voxseq.subject_model.models.log_ratios`: each model's logits)."""
    return np.concatenate([log_ratios(p_imaging), log_ratios(p_genomics)], axis=1)


class SubjectData:
    """The two modalities' raw vectors and the class index of each labelled subject."""

    def __init__(self, imaging: ImagingInputs | None, genomics: FeatureTable | None,
                 y: dict[str, int]):
        self.im, self.ge, self.y = imaging, genomics, y
        self.has_i = set(imaging.subjects) if imaging else set()
        self.has_g = set(genomics.subjects) if genomics else set()

    def xi(self, subjects: Sequence[str], fold: int) -> np.ndarray:
        return self.im.vector(subjects, fold)

    def xg(self, subjects: Sequence[str]) -> np.ndarray:
        return self.ge.rows(subjects)

    def labels(self, subjects: Sequence[str]) -> np.ndarray:
        return np.array([self.y[s] for s in subjects], dtype=np.int64)


def _single(data: SubjectData, train: list[str], fold: int, k: int, c: float, modality: str
            ) -> tuple[Standardiser, LogisticModel] | None:
    """Standardiser and logistic regression of one modality on the ``train`` subjects."""
    has = data.has_i if modality == "imaging" else data.has_g
    rows = [s for s in train if s in has]
    if not rows:
        return None
    x = data.xi(rows, fold) if modality == "imaging" else data.xg(rows)
    std = Standardiser.fit(x)
    return std, LogisticModel.fit(std.transform(x), data.labels(rows), k, c, modality)


def _predict(data: SubjectData, fitted, subjects: list[str], fold: int, modality: str
             ) -> np.ndarray:
    std, model = fitted
    x = data.xi(subjects, fold) if modality == "imaging" else data.xg(subjects)
    return model.predict_proba(std.transform(x))


def _inner_stack_inputs(data: SubjectData, fold_of: dict[str, int], both: list[str], k: int,
                        n_folds: int, n_classes: int, c: float) -> np.ndarray:
    """Out-of-fold (inner loop over the training folds) stacker inputs of ``both``."""
    out = np.zeros((len(both), 2 * n_classes))
    for j in sorted({fold_of[s] for s in both}):
        inner = [s for s, f in fold_of.items() if f not in (k, j) and s in data.y]
        idx = [i for i, s in enumerate(both) if fold_of[s] == j]
        held = [both[i] for i in idx]
        fi = _single(data, inner, k, n_classes, c, "imaging")
        fg = _single(data, inner, k, n_classes, c, "genomics")
        if fi is None or fg is None:
            raise VoxseqError(f"subject_model: fold {k + 1}/{n_folds}: inner fold {j + 1} "
                              "leaves no training subject with one of the modalities")
        out[idx] = stack_inputs(_predict(data, fi, held, k, "imaging"),
                                _predict(data, fg, held, k, "genomics"))
    return out


def fit_fold(data: SubjectData, fold_of: dict[str, int], k: int, n_folds: int, n_classes: int,
             cfg: dict) -> FoldFit:
    """Fit every model of outer fold ``k`` on the subjects of the other folds."""
    train = [s for s, f in fold_of.items() if f != k]
    fit = FoldFit(k)
    fi = _single(data, train, k, n_classes, float(cfg["c"]), "imaging")
    fg = _single(data, train, k, n_classes, float(cfg["c"]), "genomics")
    if fi:
        fit.imaging_std, fit.imaging = fi
    if fg:
        fit.genomics_std, fit.genomics = fg
    both = [s for s in train if s in data.has_i and s in data.has_g]
    if fi and fg and both:
        z = _inner_stack_inputs(data, fold_of, both, k, n_folds, n_classes, float(cfg["c"]))
        fit.stacker = LogisticModel.fit(z, data.labels(both), n_classes, float(cfg["c"]), "late")
        fit.mlp = fit_mlp(fit.imaging_std.transform(data.xi(both, k)),
                          fit.genomics_std.transform(data.xg(both)), data.labels(both),
                          n_classes, cfg, int(cfg["seed"]) + 1000 * (k + 1))
    return fit


def predict_fold(data: SubjectData, fit: FoldFit, subjects: list[str]) -> dict[str, dict]:
    """Model -> subject -> probabilities for the subjects of one fold."""
    out: dict[str, dict] = {m: {} for m in MODELS}
    k = fit.fold
    im = [s for s in subjects if s in data.has_i and fit.imaging]
    ge = [s for s in subjects if s in data.has_g and fit.genomics]
    if im:
        out["imaging"] = dict(zip(im, _predict(data, (fit.imaging_std, fit.imaging), im, k,
                                               "imaging"), strict=True))
    if ge:
        out["genomics"] = dict(zip(ge, _predict(data, (fit.genomics_std, fit.genomics), ge, k,
                                                "genomics"), strict=True))
    both = [s for s in im if s in out["genomics"]]
    if both and fit.stacker is not None:
        z = stack_inputs(np.stack([out["imaging"][s] for s in both]),
                         np.stack([out["genomics"][s] for s in both]))
        out["late"] = dict(zip(both, fit.stacker.predict_proba(z), strict=True))
        p = mlp_proba(fit.mlp, fit.imaging_std.transform(data.xi(both, k)),
                      fit.genomics_std.transform(data.xg(both)))
        out["intermediate"] = dict(zip(both, p, strict=True))
    return out


def cross_validate(truth: dict[str, str], classes: Sequence[str], fold_of: dict[str, int],
                   imaging: ImagingInputs | None, genomics: FeatureTable | None,
                   cfg: dict | None = None) -> CVResult:
    """Out-of-fold predictions of the four models for every subject with a target and a
    modality (module docstring).

    Parameters
    ----------
    truth
        Subject -> target value (one of ``classes``).
    fold_of
        Subject -> fold (:func:`voxseq.subject_model.models.subject_folds`).
    imaging, genomics
        Either may be None (a single-modality cohort: no fusion).
    cfg
        Settings overriding :data:`DEFAULTS`.
    """
    cfg = {**DEFAULTS, **(cfg or {})}
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    has = (set(imaging.subjects) if imaging else set()) | (set(genomics.subjects) if genomics
                                                           else set())
    use = {s: f for s, f in fold_of.items() if s in truth and s in has}
    data = SubjectData(imaging, genomics, {s: index[truth[s]] for s in use})
    n_folds = max(use.values()) + 1 if use else 0
    result = CVResult(classes, {s: truth[s] for s in use}, use, {m: {} for m in MODELS})
    for k in range(n_folds):
        fit = fit_fold(data, use, k, n_folds, len(classes), cfg)
        result.fits.append(fit)
        held = [s for s, f in use.items() if f == k]
        for model, preds in predict_fold(data, fit, held).items():
            result.proba[model].update(preds)
    for s in use:
        result.source[s] = ("both" if s in data.has_i and s in data.has_g
                            else "imaging" if s in data.has_i else "genomics")
    log.info("subject model: %d subjects (%s), %d folds", len(use),
             {v: list(result.source.values()).count(v) for v in ("both", "imaging", "genomics")},
             n_folds)
    return result


def fused_proba(result: CVResult, fusion: str = "late") -> dict[str, np.ndarray]:
    """Each subject's fused prediction: ``fusion``'s with both modalities, else its single
    modality's."""
    if fusion not in ("late", "intermediate"):
        raise VoxseqError(f"subject_model.fit.fusion must be late or intermediate, got {fusion!r}")
    out = {}
    for s, src in result.source.items():
        # a subject with both whose fold had no training subject with both: imaging's
        for model in ([fusion, "imaging"] if src == "both" else [src]):
            if s in result.proba[model]:
                out[s] = result.proba[model][s]
                break
    return out
