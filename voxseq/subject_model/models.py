"""Targets, folds, imaging inputs and the single-modality models of the subject model.

Folds are the imaging classifier's: a subject it cross-validated keeps its fold (the ``fold``
column of its out-of-fold table), so a subject held out of the subject model's fold ``k`` was
also held out of the imaging fold-``k`` network whose penultimate features describe it; the other
subjects (genomics only, or unlabelled for the classifier) are dealt to the folds by the
classifier's own :func:`voxseq.imaging.classify.stratified_folds`, stratified by the target.

The imaging vector of a subject in fold ``k`` is its centred log out-of-fold class probabilities
(``K`` columns, :func:`log_ratios`), then, when given, its penultimate features under imaging fold
``k``'s network.
Single-modality models are L2-regularised logistic regressions (scikit-learn), kept as a
(K, F) weight matrix and (K,) bias so that a bundle applies them without pickles.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxseq import VoxseqError
from voxseq.subject_model.features import FeatureTable

log = logging.getLogger(__name__)

PROBA_FLOOR = 1e-4  # probabilities are clipped here before their log is taken


def subject_targets(sheet_rows: Sequence[dict], column: str = "class") -> dict[str, str]:
    """Subject -> target value for the rows with a non-empty ``column``."""
    if sheet_rows and column not in sheet_rows[0]:
        raise VoxseqError(f"subject_model.target: the sample sheet has no column {column!r}")
    return {r["subject"]: str(r[column]) for r in sheet_rows if str(r.get(column) or "").strip()}


def subject_folds(targets: dict[str, str], imaging_folds: dict[str, int], folds: int,
                  seed: int) -> dict[str, int]:
    """Subject -> fold: the imaging classifier's fold where it has one, else dealt by the
    classifier's stratified assignment over the remaining subjects' targets."""
    from voxseq.imaging.classify import stratified_folds

    bad = sorted({f for f in imaging_folds.values() if not 0 <= f < folds})
    if bad:
        raise VoxseqError(f"subject_model: the imaging out-of-fold tables have fold(s) {bad}, "
                          f"outside 0..{folds - 1} (subject_model folds must equal "
                          "imaging.classify.folds)")
    out = {s: int(f) for s, f in imaging_folds.items() if s in targets}
    rest = {s: t for s, t in targets.items() if s not in out}
    if rest:
        out.update(stratified_folds(rest, folds, seed))
    return dict(sorted(out.items()))


def log_ratios(proba: np.ndarray) -> np.ndarray:
    """Centred log probabilities ``log p_k - mean_j log p_j`` (the centred log-ratio), (N, K)
    -> (N, K), probabilities clipped at ``PROBA_FLOOR`` first. A linear model on them is a
    linear model on the logits: for two classes both columns are +-logit/2, so any fitted
    weight ranks the subjects by the logit (raw log probabilities would let a fit bend the
    ranking, ``a log p + b log(1 - p)`` with ``a``, ``b`` of one sign)."""
    logp = np.log(np.clip(np.asarray(proba, np.float64), PROBA_FLOOR, 1.0))
    return logp - logp.mean(axis=1, keepdims=True)


@dataclass
class ImagingInputs:
    """What the imaging classifier gives the subject model.

    Attributes
    ----------
    proba : FeatureTable
        Class probabilities (``prob_<class>``): out of fold for the cross-validated subjects,
        the fold ensemble's for the others (new cohorts).
    fold_of : dict
        Subject -> the classifier's fold, for the cross-validated subjects.
    embeddings : list of FeatureTable, or None
        Per imaging fold ``k``: the subjects' penultimate features under fold ``k``'s network.
    """

    proba: FeatureTable
    fold_of: dict[str, int]
    embeddings: list[FeatureTable] | None = None

    @property
    def subjects(self) -> list[str]:
        return list(self.proba.subjects)

    def vector(self, subjects: Sequence[str], fold: int) -> np.ndarray:
        """(N, K [+ D]) imaging vectors of ``subjects`` for fold ``fold``: the centred log
        probabilities (:func:`log_ratios`), then the penultimate features."""
        parts = [log_ratios(self.proba.rows(subjects))]
        if self.embeddings is not None:
            parts.append(self.embeddings[fold].rows(subjects))
        return np.concatenate(parts, axis=1)


def read_imaging_oof(tables: Sequence[str | Path], classes: Sequence[str]) -> ImagingInputs:
    """The classifier's out-of-fold tables (``subject``, ``fold``, ``prob_<class>``), or its
    prediction table (:func:`voxseq.imaging.classify.predict_cohort`), whose subjects outside
    its cross-validation (fold ``ensemble``: the fold ensemble's prediction, never trained on
    them) get probabilities but no fold."""
    from voxseq.io.atomic import read_tsv

    rows = [r for t in tables for r in read_tsv(t)]
    cols = [f"prob_{c}" for c in classes]
    if rows and any(c not in rows[0] for c in cols):
        raise VoxseqError(f"imaging out-of-fold tables {list(tables)[:2]}: no columns {cols}")
    proba = FeatureTable([r["subject"] for r in rows], cols,
                         [[float(r[c]) for c in cols] for r in rows])
    # the classifier's prediction table: fold "ensemble" for a subject it did not train on
    return ImagingInputs(proba, {r["subject"]: int(r["fold"]) for r in rows
                                 if str(r["fold"]).isdigit()})


def write_embeddings(path: str | Path, table: FeatureTable) -> None:
    """A penultimate-feature table as TSV (``subject``, ``emb_0`` ...), atomically."""
    from voxseq.io.atomic import write_tsv

    write_tsv(path, [{"subject": s, **dict(zip(table.names, map(float, v), strict=True))}
                     for s, v in zip(table.subjects, table.values, strict=True)],
              ["subject", *table.names])


def read_embeddings(path: str | Path) -> FeatureTable:
    from voxseq.io.atomic import read_tsv

    rows = read_tsv(path)
    names = [c for c in (rows[0] if rows else {}) if c != "subject"]
    return FeatureTable([r["subject"] for r in rows], names,
                        [[float(r[n]) for n in names] for r in rows])


def member_embeddings(bundle: str | Path, stores: dict[str, str],
                      seg_probs: dict[str, str] | None) -> list[FeatureTable]:
    """Every subject's penultimate features (``emb_<i>``) under each member of a classifier
    ensemble bundle (member ``k``: the network of imaging fold ``k``), for a new cohort."""
    import torch

    from voxseq.bundle import load_bundle
    from voxseq.imaging.classify import stack_inputs
    from voxseq.models.classifiers import penultimate_features

    model, meta = load_bundle(bundle, "imaging")
    pre = meta["preprocessing"]
    subjects = list(stores)
    x = torch.from_numpy(stack_inputs(subjects, stores, seg_probs, pre["input_size"],
                                      pre.get("crop", "none")))
    out = []
    for member in model.members:
        emb = penultimate_features(member, x).numpy()
        out.append(FeatureTable(subjects, [f"emb_{i}" for i in range(emb.shape[1])], emb))
    return out


def fold_embeddings(fold_dir: str | Path, stores: dict[str, str],
                    seg_probs: dict[str, str] | None, input_size: Sequence[int],
                    crop: str = "none") -> FeatureTable:
    """Every subject's penultimate features (``emb_<i>``) under one imaging fold's network
    (``fold.json`` + ``weights.safetensors`` of :func:`voxseq.imaging.classify.train_fold`)."""
    import json

    import torch
    from safetensors.torch import load_file

    from voxseq.imaging.classify import stack_inputs
    from voxseq.models import build_model
    from voxseq.models.classifiers import penultimate_features

    meta = json.loads((Path(fold_dir) / "fold.json").read_text())
    model = build_model(meta["architecture"]["name"], **meta["architecture"]["arguments"])
    model.load_state_dict(load_file(str(Path(fold_dir) / "weights.safetensors")))
    subjects = list(stores)
    x = torch.from_numpy(stack_inputs(subjects, stores, seg_probs, input_size, crop))
    emb = penultimate_features(model, x).numpy()
    return FeatureTable(subjects, [f"emb_{i}" for i in range(emb.shape[1])], emb)


@dataclass
class LogisticModel:
    """A fitted multinomial (or binary) logistic regression: ``softmax(x @ weight.T + bias)``.

    Attributes
    ----------
    weight : (K, F) float64
        For two classes, row 0 is zero and row 1 scikit-learn's ``coef_``.
    bias : (K,) float64
    """

    weight: np.ndarray
    bias: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, n_classes: int, c: float = 1.0,
            what: str = "model") -> LogisticModel:
        """Fit on standardised ``x`` (N, F) and class indices ``y`` (N,)."""
        from sklearn.linear_model import LogisticRegression

        present = np.unique(y)
        if len(present) < 2:
            raise VoxseqError(f"subject_model {what}: its training subjects have a single "
                              f"class ({present.tolist()}); lower subject_model folds")
        lr = LogisticRegression(C=c, max_iter=2000).fit(x, y)
        weight = np.zeros((n_classes, x.shape[1]))
        bias = np.zeros(n_classes)
        if len(lr.classes_) == 2:
            weight[lr.classes_[1]], bias[lr.classes_[1]] = lr.coef_[0], lr.intercept_[0]
            weight[lr.classes_[0]], bias[lr.classes_[0]] = 0.0, 0.0
            if n_classes > 2:  # a class absent from training: never predicted
                bias[[k for k in range(n_classes) if k not in lr.classes_]] = -30.0
        else:
            bias[:] = -30.0
            weight[lr.classes_], bias[lr.classes_] = lr.coef_, lr.intercept_
        return cls(weight, bias)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(N, F) -> (N, K) class probabilities."""
        logits = np.asarray(x, np.float64) @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)
