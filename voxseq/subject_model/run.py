"""Entry functions of the subject model's rules: train (cross-validate, judge, bundle) and apply.

:func:`genomics_features` assembles the genomics vector from what the genomics track wrote;
:func:`train_subject_model` cross-validates the four models on one cohort and writes the
predictions table, the metrics JSON, the ROC figure and the fused model's bundle;
:func:`apply_subject_model` predicts a new cohort with a bundle.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxseq import VoxseqError
from voxseq.io.atomic import read_tsv, write_json, write_tsv
from voxseq.subject_model.features import (
    FeatureTable,
    coarse_bin_regions,
    demo_motif_regions,
    dosage_features,
    join_features,
    qc_latent_codes,
    read_regions_bed,
    region_coverage,
)
from voxseq.subject_model.fusion import DEFAULTS, MODELS, cross_validate, fused_proba
from voxseq.subject_model.models import (
    ImagingInputs,
    read_embeddings,
    read_imaging_oof,
    subject_folds,
    subject_targets,
)

log = logging.getLogger(__name__)


def genomics_features(stores: dict[str, str], qc_bundle: str | None = None,
                      regions: str | None = None, reference: str | None = None,
                      region_bin_size: int = 20_000, demo_small: bool = False,
                      dosages: tuple[np.ndarray, Sequence[str], Sequence[str]] | None = None,
                      variants: Sequence[str] | None = None) -> FeatureTable | None:
    """Each genomics subject's raw (unstandardised) feature vector.

    Parameters
    ----------
    stores
        Subject -> coverage store; empty: no genomics (None is returned).
    qc_bundle
        The genomics QC bundle (its latent codes become features), or None.
    regions
        ``demo``: the demo ``reference``'s motif sites; a BED path; None: coarse bins of
        ``region_bin_size`` bp over the stores' contigs.
    dosages
        (matrix (subjects, variants), subject ids, variant ids), or None; ``variants`` selects.
    """
    if not stores:
        return None
    if regions == "demo":
        if reference is None:
            raise VoxseqError("subject_model.genomics.regions demo needs the reference FASTA")
        chosen = demo_motif_regions(reference, small=demo_small)
    elif regions:
        chosen = read_regions_bed(regions)
    else:
        from voxseq.genomics.coverage import read_coverage

        attrs, _ = read_coverage(next(iter(stores.values())), key="mask")
        chosen = coarse_bin_regions(attrs["contigs"], region_bin_size)
    blocks = [region_coverage(stores, chosen)]
    if qc_bundle:
        blocks.insert(0, qc_latent_codes(stores, qc_bundle))
    if dosages is not None:
        blocks.append(dosage_features(*dosages, selected=variants))
    return join_features(blocks)


def _prediction_rows(result, fusion: str) -> list[dict]:
    fused = fused_proba(result, fusion)
    rows = []
    for s in result.source:
        row = {"subject": s, "fold": result.fold_of[s], "source": result.source[s],
               "true": result.truth[s],
               "predicted": result.classes[int(np.argmax(fused[s]))] if s in fused else ""}
        for m in (*MODELS, "fused"):
            p = fused.get(s) if m == "fused" else result.proba[m].get(s)
            for k, c in enumerate(result.classes):
                row[f"{m}_prob_{c}"] = "" if p is None else round(float(p[k]), 6)
        rows.append(row)
    return rows


def _tables(tables: Sequence[str | FeatureTable]) -> list[FeatureTable]:
    return [t if isinstance(t, FeatureTable) else read_embeddings(t) for t in tables]


def write_features(path: str, table: FeatureTable) -> None:
    """A feature table as TSV (``subject``, then one column per feature), atomically."""
    from voxseq.subject_model.models import write_embeddings

    write_embeddings(path, table)


def read_features(path: str) -> FeatureTable:
    """The table of :func:`write_features`."""
    return read_embeddings(path)


def recipe_features(stores: dict[str, str], recipe: dict, qc_bundle: str | None = None,
                    reference: str | None = None, bed: str | None = None,
                    demo_small: bool = False) -> FeatureTable | None:
    """:func:`genomics_features` as the run plan's recipe (``regions``: ``demo``, a BED path
    or None; ``region_bin_size``; ``qc_latent``) asks: the rule's entry point."""
    regions = recipe.get("regions")
    return genomics_features(
        stores, qc_bundle=qc_bundle if recipe.get("qc_latent") else None,
        regions="demo" if regions == "demo" else (bed or regions),
        reference=reference, region_bin_size=int(recipe.get("region_bin_size", 100_000)),
        demo_small=demo_small)


def prediction_classes(predictions: str) -> list[str]:
    """The class names of a classifier prediction table (its ``prob_<class>`` columns)."""
    rows = read_tsv(predictions)
    if not rows:
        raise VoxseqError(f"classifier predictions {predictions}: no subjects")
    return [c.removeprefix("prob_") for c in rows[0] if c.startswith("prob_")]


def train_subject_model(sheet: str, classes: Sequence[str], oof_tables: Sequence[str],
                        genomics: FeatureTable | None, outputs: dict[str, str],
                        embedding_tables: Sequence[str | FeatureTable] | None = None,
                        target: str = "class", folds: int = 5, seed: int = 0,
                        cfg: dict | None = None, n_bootstrap: int = 1000,
                        provenance: dict | None = None, recipe: dict | None = None) -> dict:
    """Cross-validate the subject models of one cohort and write ``outputs``: ``predictions``
    (TSV), ``metrics`` (JSON, :func:`voxseq.subject_model.evaluate.evaluate`), ``roc`` (PNG)
    and ``bundle`` (folder; only when both modalities are there). Returns the metrics.

    ``classes``/``oof_tables``: the imaging classifier's class names and out-of-fold tables,
    or its prediction table (empty: no imaging); ``embedding_tables``: one penultimate-feature
    table (or its TSV) per imaging fold, in fold order, or None; ``recipe``: how the features
    were made (:attr:`voxseq.plan.subject_model.SubjectModelPlan.recipe`), kept in the bundle.
    """
    from voxseq.subject_model.bundle import write_subject_bundle
    from voxseq.subject_model.evaluate import evaluate, roc_figure

    cfg = {**DEFAULTS, **(cfg or {})}
    truth = subject_targets(read_tsv(sheet), target)
    values = sorted(set(truth.values()))
    imaging = read_imaging_oof(oof_tables, classes) if oof_tables else None
    if imaging is not None and embedding_tables:
        imaging.embeddings = _tables(embedding_tables)
    fold_of = subject_folds(truth, imaging.fold_of if imaging else {}, folds, seed)
    result = cross_validate(truth, values, fold_of, imaging, genomics, cfg)
    metrics = evaluate(result, cfg["fusion"], n_bootstrap, seed)
    metrics["target"] = target
    write_tsv(outputs["predictions"], _prediction_rows(result, cfg["fusion"]),
              ["subject", "fold", "source", "true", "predicted",
               *[f"{m}_prob_{c}" for m in (*MODELS, "fused") for c in values]])
    write_json(outputs["metrics"], metrics)
    roc_figure(result, metrics, outputs["roc"])
    if imaging is not None and genomics is not None and "bundle" in outputs:
        write_subject_bundle(outputs["bundle"], result, imaging, genomics, cfg,
                             {k: metrics[k] for k in ("both", "comparison", "counts")},
                             {**(provenance or {}), "seed": seed, "folds": folds}, target,
                             recipe)
    return metrics


def apply_subject_model(bundle: str, ensemble_predictions: str | None,
                        embedding_tables: Sequence[str | FeatureTable] | None,
                        genomics: FeatureTable | None, out_tsv: str) -> list[dict]:
    """Predict a new cohort: imaging from the classifier's prediction table (``prob_<class>``
    of :func:`voxseq.imaging.classify.predict_cohort`) and one penultimate-feature table per
    classifier member; write and return the rows of
    :func:`voxseq.subject_model.bundle.apply_subject_bundle`."""
    from voxseq.subject_model.bundle import apply_subject_bundle

    imaging = None
    if ensemble_predictions:
        rows = read_tsv(ensemble_predictions)
        cols = [c for c in (rows[0] if rows else {}) if c.startswith("prob_")]
        proba = FeatureTable([r["subject"] for r in rows], cols,
                             [[float(r[c]) for c in cols] for r in rows])
        emb = _tables(embedding_tables) if embedding_tables else None
        imaging = ImagingInputs(proba, {}, emb)
    out = apply_subject_bundle(bundle, imaging, genomics)
    cols = ["subject", "source", "predicted", *[k for k in (out[0] if out else {})
                                                if k.startswith("prob_")]]
    write_tsv(out_tsv, out, cols)
    return out


def imaging_embeddings(inputs, subjects: Sequence[str], input_size: Sequence[int] = (),
                       crop: str = "none") -> list[FeatureTable] | None:
    """The classifier's penultimate features per fold, from a rule's named ``inputs``: the fold
    networks (``folds``: their ``fold.json``) trained here, else the members of its bundle
    (``classifier``); None when the inputs hold neither (embeddings off)."""
    from voxseq.subject_model.models import fold_embeddings, member_embeddings

    stores = dict(zip(subjects, inputs.get("stores") or [], strict=False))
    seg = inputs.get("seg_probs")
    seg_probs = dict(zip(subjects, seg, strict=True)) if seg else None
    if inputs.get("folds"):
        return [fold_embeddings(Path(f).parent, stores, seg_probs, input_size, crop)
                for f in inputs.get("folds")]
    if inputs.get("classifier"):
        return member_embeddings(Path(inputs.get("classifier")[0]).parent, stores, seg_probs)
    return None
