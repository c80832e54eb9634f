"""The subject model's part of the run plan: on or off, what it predicts, from which features.

:func:`plan_subject_model` reads the config's ``subject_model`` block against the cohort
(modalities on, the imaging classifier, the sample sheet's columns, genomics QC, an applied
bundle's needs) and returns a frozen :class:`SubjectModelPlan`, raising
:class:`voxseq.VoxseqError` before any job for a request that cannot be met: a target column the
sheet does not have, ``enabled: true`` without a modality or the classifier, a bundle that needs
a modality (or the genomics QC latent code) this cohort lacks, a regions BED that is not there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxseq import VoxseqError
from voxseq.plan.inputs import at_workdir


@dataclass(frozen=True)
class SubjectModelPlan:
    """How this run builds the subject model's inputs (the task itself: ``tasks['subject_model']``).

    ``regions``: ``demo`` (the demo reference's motif sites), a BED path, or None (coarse bins of
    ``region_bin_size`` bp). ``fit``: settings of :data:`voxseq.subject_model.fusion.DEFAULTS`.
    An applied bundle's recipe replaces the config's (its features are fixed).
    """

    enabled: bool
    target: str = "class"
    regions: str | None = None
    region_bin_size: int = 100_000
    qc_latent: bool = False
    embeddings: bool = False
    fit: Mapping[str, Any] = field(default_factory=dict)
    bootstrap: int = 1000
    #: why it is off (auto), or what was left out: said once
    notes: tuple[str, ...] = ()

    @property
    def recipe(self) -> dict[str, Any]:
        """What the genomics and imaging vectors are made of (recorded in the bundle)."""
        return {"regions": self.regions, "region_bin_size": self.region_bin_size,
                "qc_latent": self.qc_latent, "embeddings": self.embeddings}

    def to_dict(self) -> dict[str, Any]:
        if not self.enabled:
            return {"enabled": False, "why": list(self.notes)}
        return {"enabled": True, "target": self.target, **self.recipe,
                "fusion": self.fit.get("fusion"), "notes": list(self.notes)}


def target_column(config: Mapping) -> str:
    """``subject_model.target``; ``auto``: the demo's planted ``outcome`` (with both modalities),
    else ``class``."""
    target = config["subject_model"]["target"]
    if target != "auto":
        return target
    demo = config["demo"]
    return "outcome" if demo["enabled"] and demo["imaging"] and demo["genomics"] else "class"


def sheet_columns(config: Mapping, subjects: Mapping[str, Mapping[str, str]]) -> set[str]:
    """The columns with a value in some row (the demo's: the columns it writes)."""
    if config["demo"]["enabled"]:
        cols = {c for r in subjects.values() for c in r}
        return cols | ({"class"} if config["demo"]["imaging"] else set())
    return {c for r in subjects.values() for c, v in r.items() if v not in (None, "")}


def _regions(config: Mapping, workdir: Path) -> str | None:
    regions = config["subject_model"]["genomics"]["regions"]
    if regions == "auto":
        return "demo" if config["demo"]["enabled"] else None
    if regions == "bins":
        return None
    if regions != "demo" and not at_workdir(workdir, regions).is_file():
        raise VoxseqError(f"config subject_model.genomics.regions: {regions}: file not found (a "
                          f"BED file; a relative path is resolved against {workdir.resolve()})")
    return regions


def _missing(config: Mapping, classifier: bool, genomics_subjects: Sequence[str]) -> str | None:
    """Why the cohort cannot feed both modalities to the subject model, or None."""
    if not config["imaging"]["enabled"]:
        return "imaging is off (imaging.enabled false): no imaging classifier probabilities"
    if not classifier:
        return ("the imaging classifier is off (imaging.classify.enabled, or no class column "
                "and no models.imaging_classify): no imaging probabilities")
    if not config["genomics"]["enabled"] or not genomics_subjects:
        return "genomics is off (genomics.enabled false, or no subject with a bam)"
    return None


def _applied(meta: dict, path: str, why: str | None, genomics_qc: bool,
             classes: Sequence[str] | None) -> dict:
    """Check an applied bundle's needs against the cohort; return its recipe."""
    if meta.get("task") != "subject_model":
        raise VoxseqError(f"models.subject_model {path}: a {meta.get('task')!r} bundle, not a "
                          "subject model (task subject_model)")
    pre = meta["preprocessing"]
    needs, recipe = pre["needs"], pre.get("recipe") or {}
    if why:
        raise VoxseqError(
            f"models.subject_model {path}: the bundle needs imaging (the classifier's "
            f"{needs['imaging']['proba']}) and genomics ({len(needs['genomics']['features'])} "
            f"features); this cohort lacks one: {why}")
    latent = [f for f in needs["genomics"]["features"] if f.startswith("qc_latent_")]
    if latent and not genomics_qc:
        raise VoxseqError(
            f"models.subject_model {path}: the bundle needs the genomics QC latent code "
            f"({latent[:3]}...); genomics QC is off here (qc.enabled false). Turn it on, with "
            "models.genomics_qc naming the QC bundle the subject model was trained with")
    if classes is not None:
        lacking = [c for c in needs["imaging"]["proba"] if c.removeprefix("prob_") not in classes]
        if lacking:
            raise VoxseqError(f"models.subject_model {path}: the bundle needs the classifier's "
                              f"{lacking}; this run's classifier predicts {list(classes)}")
    # the features it needs decide (a recipe's qc_latent without latent features adds none)
    return {**recipe, "qc_latent": bool(latent),
            "embeddings": bool(needs["imaging"].get("embeddings"))}


def plan_subject_model(config: Mapping, subjects: Mapping[str, Mapping[str, str]],
                       classifier: bool, genomics_subjects: Sequence[str], genomics_qc: bool,
                       meta: dict | None, classes: Sequence[str] | None, workdir: Path,
                       sheet: str) -> SubjectModelPlan:
    """Decide the subject model (module docstring); ``classes``: the classifier's, when known
    before any job (an applied classifier bundle's); ``sheet`` names the sheet in messages."""
    sm = config["subject_model"]
    if sm["enabled"] is False:
        return SubjectModelPlan(False, notes=("subject_model.enabled is false",))
    why = _missing(config, classifier, genomics_subjects)
    base = {"fit": dict(sm["fit"]), "bootstrap": sm["bootstrap"]}
    if meta:
        path = config["models"]["subject_model"]
        recipe = _applied(meta, path, why, genomics_qc, classes)
        return SubjectModelPlan(True, target=meta["preprocessing"].get("target", "class"),
                                regions=recipe.get("regions"),
                                region_bin_size=recipe.get("region_bin_size", 100_000),
                                qc_latent=bool(recipe.get("qc_latent")),
                                embeddings=bool(recipe.get("embeddings")), **base)
    target = target_column(config)
    if target not in sheet_columns(config, subjects):
        if sm["target"] != "auto" or sm["enabled"] is True:
            raise VoxseqError(
                f"subject_model.target: {target!r} is not a column of the sample sheet {sheet} "
                "(or it has no value); name one it has (class, outcome, outcome_<name>, "
                "covar_<name>, ...)")
        why = why or f"the sample sheet {sheet} has no {target!r} column to predict"
    if why:
        if sm["enabled"] is True:
            raise VoxseqError(f"subject_model.enabled is true but {why}. Set "
                              "subject_model.enabled: auto (or false) to run without it")
        return SubjectModelPlan(False, notes=(f"subject_model (auto) is off: {why}",))
    g = sm["genomics"]
    notes = ()
    qc_latent = bool(g["qc_latent"]) and genomics_qc
    if g["qc_latent"] and not genomics_qc:
        notes = ("subject_model.genomics.qc_latent left out: genomics QC is off",)
    return SubjectModelPlan(True, target=target, regions=_regions(config, workdir),
                            region_bin_size=g["region_bin_size"], qc_latent=qc_latent,
                            embeddings=bool(sm["imaging"]["embeddings"]), notes=notes, **base)
