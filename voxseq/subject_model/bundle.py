"""The fused subject model as a bundle, and its application to a new cohort without training.

The bundle (:mod:`voxseq.bundle`, modality ``subject``, task ``subject_model``) holds every
outer fold's fitted models as one :class:`SubjectFusion` (``weights.safetensors``: per fold the
imaging and genomics logistic regressions, the stacker and the fusion MLP) and, in
``bundle.json``, what it needs from each modality (``needs``: the classifier's probability
columns and the width of its penultimate features, the genomics feature names in order) and
each fold's training statistics (``statistics``). A new subject's prediction is the mean over
the folds of fold ``k``'s prediction, its imaging vector built from the classifier bundle's
ensemble probabilities and the penultimate features of its member ``k`` (the network of imaging
fold ``k``). A cohort lacking a modality or a feature the bundle needs is refused; a subject
lacking one modality is predicted by the other modality's model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from voxseq import VoxseqError
from voxseq.bundle import load_bundle, write_bundle
from voxseq.models import MODELS, register
from voxseq.subject_model.features import FeatureTable, Standardiser
from voxseq.subject_model.fusion import (
    DEFAULTS,
    CVResult,
    FusionMLP,
    mlp_proba,
    stack_inputs,
)
from voxseq.subject_model.models import ImagingInputs, LogisticModel

TASK = "subject_model"
MODALITY = "subject"


class SubjectFusion(nn.Module):
    """Every fold's subject models, for a bundle's weights (``fold.<k>.<model>.*`` keys)."""

    def __init__(self, n_folds: int, n_classes: int, n_imaging: int, n_genomics: int,
                 hidden: int = 16, gated: bool = True, dropout: float = 0.2) -> None:
        super().__init__()
        self.fold = nn.ModuleList(
            nn.ModuleDict({
                "imaging": nn.Linear(n_imaging, n_classes),
                "genomics": nn.Linear(n_genomics, n_classes),
                "stacker": nn.Linear(2 * n_classes, n_classes),
                "mlp": FusionMLP(n_imaging, n_genomics, n_classes, hidden, gated, dropout),
            })
            for _ in range(n_folds)
        )

    def logistic(self, k: int, name: str) -> LogisticModel:
        layer = self.fold[k][name]
        return LogisticModel(layer.weight.detach().double().numpy(),
                             layer.bias.detach().double().numpy())

    def set_logistic(self, k: int, name: str, model: LogisticModel) -> None:
        layer = self.fold[k][name]
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(model.weight))
            layer.bias.copy_(torch.from_numpy(model.bias))


if "subject_fusion" not in MODELS:
    register("subject_fusion", SubjectFusion)


def write_subject_bundle(outdir: str | Path, result: CVResult, imaging: ImagingInputs,
                         genomics: FeatureTable, cfg: dict, metrics: dict, provenance: dict,
                         target: str = "class", recipe: dict | None = None) -> dict:
    """Write the cross-validated models of ``result`` (both modalities in every fold) as a
    bundle; return its ``bundle.json``. ``recipe``: how the features were made (regions,
    QC latent code, embeddings), so a new cohort makes the same ones."""
    cfg = {**DEFAULTS, **(cfg or {})}
    if any(f.stacker is None for f in result.fits) or not result.fits:
        raise VoxseqError("subject_model: the fused model needs training subjects with both "
                          "modalities in every fold; this cohort has none in some fold")
    n_emb = imaging.embeddings[0].values.shape[1] if imaging.embeddings else 0
    args = {"n_folds": len(result.fits), "n_classes": len(result.classes),
            "n_imaging": len(imaging.proba.names) + n_emb, "n_genomics": len(genomics.names),
            "hidden": int(cfg["hidden"]), "gated": bool(cfg["gated"]),
            "dropout": float(cfg["dropout"])}
    model = SubjectFusion(**args)
    for f in result.fits:
        for name in ("imaging", "genomics", "stacker"):
            model.set_logistic(f.fold, name, getattr(f, name))
        model.fold[f.fold]["mlp"].load_state_dict(f.mlp.state_dict())
    needs = {"imaging": {"proba": imaging.proba.names, "embeddings": n_emb},
             "genomics": {"features": genomics.names}}
    stats = [{"fold": f.fold, "imaging": f.imaging_std.to_dict(),
              "genomics": f.genomics_std.to_dict()} for f in result.fits]
    return write_bundle(outdir, model, MODALITY, "subject_fusion", args,
                        {"classes": result.classes, "target": target, "needs": needs,
                         "statistics": stats, "fusion": cfg["fusion"], "recipe": recipe or {}},
                        metrics, provenance, extra={"task": TASK})


def _check_inputs(path: Path, pre: dict, n_folds: int, imaging: ImagingInputs | None,
                  genomics: FeatureTable | None) -> tuple[ImagingInputs, FeatureTable]:
    """Refuse a cohort without a modality, feature or embedding the bundle needs; return the
    inputs restricted to the needed columns, in the bundle's order."""
    need_i, need_g = pre["needs"]["imaging"], pre["needs"]["genomics"]
    if imaging is None or not imaging.subjects:
        raise VoxseqError(f"subject model bundle {path}: the cohort has no imaging inputs; the "
                          f"model needs the classifier's probabilities {need_i['proba']}")
    if genomics is None or not genomics.subjects:
        raise VoxseqError(f"subject model bundle {path}: the cohort has no genomics features; "
                          f"the model needs {len(need_g['features'])} "
                          f"({need_g['features'][:5]}...)")
    proba = imaging.proba.columns(need_i["proba"], f"subject model bundle {path}: imaging")
    emb = None
    if need_i["embeddings"]:
        if not imaging.embeddings or len(imaging.embeddings) != n_folds:
            got = len(imaging.embeddings) if imaging.embeddings else 0
            raise VoxseqError(f"subject model bundle {path}: needs the imaging classifier's "
                              f"penultimate features from each of its {n_folds} fold networks, "
                              f"got {got}")
        widths = {e.values.shape[1] for e in imaging.embeddings}
        if widths != {need_i["embeddings"]}:
            raise VoxseqError(f"subject model bundle {path}: needs imaging penultimate features "
                              f"of width {need_i['embeddings']}, got {sorted(widths)}")
        emb = imaging.embeddings
    feats = genomics.columns(need_g["features"], f"subject model bundle {path}: genomics")
    return ImagingInputs(proba, imaging.fold_of, emb), feats


def _fold_proba(model: SubjectFusion, stat: dict, k: int, fusion: str, imaging: ImagingInputs,
                genomics: FeatureTable, subjects: list[str], source: dict[str, str]
                ) -> np.ndarray:
    """Fold ``k``'s prediction of each subject: fused with both modalities, else single."""
    si, sg = Standardiser.from_dict(stat["imaging"]), Standardiser.from_dict(stat["genomics"])
    out = np.zeros((len(subjects), model.fold[k]["stacker"].out_features))
    has_i = [i for i, s in enumerate(subjects) if source[s] in ("both", "imaging")]
    has_g = [i for i, s in enumerate(subjects) if source[s] in ("both", "genomics")]
    xi = si.transform(imaging.vector([subjects[i] for i in has_i], k))
    xg = sg.transform(genomics.rows([subjects[i] for i in has_g]))
    pi = model.logistic(k, "imaging").predict_proba(xi)
    pg = model.logistic(k, "genomics").predict_proba(xg)
    out[has_i], out[has_g] = pi, pg
    pos_i, pos_g = {i: n for n, i in enumerate(has_i)}, {i: n for n, i in enumerate(has_g)}
    both = [i for i in has_i if i in pos_g]
    if both:
        bi, bg = [pos_i[i] for i in both], [pos_g[i] for i in both]
        if fusion == "late":
            out[both] = model.logistic(k, "stacker").predict_proba(stack_inputs(pi[bi], pg[bg]))
        else:
            out[both] = mlp_proba(model.fold[k]["mlp"], xi[bi], xg[bg])
    return out


def apply_subject_bundle(bundle: str | Path, imaging: ImagingInputs | None,
                         genomics: FeatureTable | None) -> list[dict]:
    """Predict every subject of a new cohort with a subject model bundle (no training).

    Returns rows: ``subject``, ``source`` (``both``, ``imaging`` or ``genomics``),
    ``predicted`` and ``prob_<class>`` (the mean over the bundle's folds).
    """
    path = Path(bundle)
    model, meta = load_bundle(path, MODALITY)
    if meta.get("task") != TASK:
        raise VoxseqError(f"bundle {path} is not a subject model bundle "
                          f"(task {meta.get('task')!r})")
    pre = meta["preprocessing"]
    im, ge = _check_inputs(path, pre, len(model.fold), imaging, genomics)
    has_i, has_g = set(im.subjects), set(ge.subjects)
    subjects = [s for s in dict.fromkeys([*im.subjects, *ge.subjects])]
    source = {s: "both" if s in has_i and s in has_g else "imaging" if s in has_i
              else "genomics" for s in subjects}
    proba = np.mean([_fold_proba(model, st, st["fold"], pre["fusion"], im, ge, subjects, source)
                     for st in pre["statistics"]], axis=0)
    classes = pre["classes"]
    return [{"subject": s, "source": source[s], "predicted": classes[int(np.argmax(p))],
             **{f"prob_{c}": float(v) for c, v in zip(classes, p, strict=True)}}
            for s, p in zip(subjects, proba, strict=True)]
