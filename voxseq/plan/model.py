"""The run plan's data: what one run will do, decided before any job (see :mod:`voxseq.plan`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from voxseq.plan.genetics import GeneticsPlan
from voxseq.plan.layout import Layout
from voxseq.plan.subject_model import SubjectModelPlan


@dataclass(frozen=True)
class TaskPlan:
    """One task of the run (segmentation, classifier, sequence model, a QC autoencoder, ...).

    Each task either trains here (``train``: a bundle is written to ``bundle``) or applies the
    bundle named by ``bundle_key`` in the config (``applied`` holds its ``bundle.json``).
    """

    name: str
    modality: str
    enabled: bool
    train: bool
    bundle: str
    bundle_key: str
    applied: dict | None = None
    #: the subjects training reads (train + val split), in the order the task reads them
    fit_subjects: tuple[str, ...] = ()
    #: cross-validation folds (one training job each)
    folds: tuple[int, ...] = ()
    #: candidate architectures (one training job each when there are several)
    archs: tuple[str, ...] = ()
    #: input channels (the classifier's: image channels, then segmentation channels)
    channels: tuple[str, ...] = ()
    gpus: int = 0

    @property
    def apply(self) -> bool:
        """On, and its model comes from a bundle trained elsewhere."""
        return self.enabled and not self.train

    def to_dict(self) -> dict[str, Any]:
        out = {
            "enabled": self.enabled,
            "action": ("train" if self.train else "apply") if self.enabled else "off",
            "bundle": self.bundle if self.enabled else None,
        }
        if self.applied:
            out["bundle_trained_on"] = self.applied.get("cohort")
            out["bundle_digest"] = self.applied.get("digest")
        if self.train:
            out["fit_subjects"] = list(self.fit_subjects)
        for key in ("folds", "archs", "channels"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        return out


@dataclass(frozen=True)
class RunPlan:
    """Everything the workflow decides before any job, built by :func:`voxseq.plan.build_plan`.

    Subject tuples are sorted by id unless said otherwise; ``split`` holds every subject's split
    (the sheet's, else assigned from the seed, as ``cohort_sheet`` writes it).
    """

    config: dict
    layout: Layout
    workdir: str
    demo: bool
    samples: str
    reference: str | None
    imaging: bool
    genomics: bool
    subjects: Mapping[str, Mapping[str, str]]
    split: Mapping[str, str]
    split_fractions: Mapping[str, float]
    imaging_subjects: tuple[str, ...]
    genomics_subjects: tuple[str, ...]
    vcf_subjects: tuple[str, ...]
    channel_columns: tuple[str, ...]
    channels: tuple[str, ...]
    imaging_preprocessing: dict
    stats_subjects: tuple[str, ...]
    contig_lengths: dict[str, int] | None
    coverage_mem_mb: int | None
    variant_truth: str | None
    blacklist: tuple[str, ...]
    qc_truth: str | None
    tasks: Mapping[str, TaskPlan]
    #: (subject, image column) -> the DICOM series folder its cell names (converted first)
    dicom: Mapping[tuple[str, str], str] = field(default_factory=dict)
    #: subject -> the image channels its sheet row leaves empty (synthesised; task synthesis)
    missing_channels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: the demo's regular subjects, in order (the demo rule draws subject i from (seed, i))
    demo_subjects: tuple[str, ...] = ()
    #: the demo's (subject -> further images it lacks, lesion-free subjects), for its rule
    demo_gaps: tuple[dict, list] = ({}, [])
    #: things the user should hear once (e.g. settings an applied bundle replaces)
    notes: tuple[str, ...] = field(default=())
    #: the association of imaging-derived phenotypes with genotypes
    genetics: GeneticsPlan = field(default_factory=lambda: GeneticsPlan(False))
    #: the subject model's inputs (its task: ``tasks["subject_model"]``)
    subject_model: SubjectModelPlan = field(default_factory=lambda: SubjectModelPlan(False))

    @property
    def cohort(self) -> str:
        return self.layout.cohort

    def task(self, name: str) -> TaskPlan:
        return self.tasks[name]

    @property
    def trains(self) -> bool:
        """Some task trains here (else every subject without a split is a test subject)."""
        return any(t.train for t in self.tasks.values())

    def in_split(self, subjects: tuple[str, ...], *splits: str) -> tuple[str, ...]:
        return tuple(s for s in subjects if self.split[s] in splits)

    def store(self, subject: str) -> str:
        """The normalised store that inference, the classifier and QC read: an incomplete
        subject's store completed with its synthesised channel, else its own."""
        name = "synthesis_store" if subject in self.missing_channels else "imaging_store"
        return self.layout(name, subject=subject)

    def present_channels(self, subject: str) -> dict[str, list[str]]:
        """A subject's ``columns`` (image_<name> columns it fills) and ``channels`` (their
        names, ``image``'s first): the cohort's, less the ones it misses."""
        gone = self.missing_channels.get(subject, ())
        if not self.channel_columns:  # one 4D image: its volumes are the channels
            return {"columns": [], "channels": list(self.channels)}
        kept = [(c, n) for c, n in zip(self.channel_columns, self.channels[1:], strict=True)
                if n not in gone]
        columns = [c for c, _ in kept]
        names = [self.channels[0], *(n for _, n in kept)]
        return {"columns": columns, "channels": names}

    def stores(self, subjects) -> list[str]:
        return [self.store(s) for s in subjects]

    @property
    def synthesis_scored(self) -> tuple[str, ...]:
        """The labelled test subjects that have the synthesised channel: scored with it
        hidden (the lesion from the label)."""
        if not self.task("synthesis").enabled:
            return ()
        return tuple(
            s for s in self.in_split(self.imaging_subjects, "test")
            if s not in self.missing_channels and self.subjects[s]["label"]
        )

    def to_dict(self) -> dict[str, Any]:
        """``plan.json``: what this run will do, readable by a person."""
        pools = {"imaging": self.imaging_subjects, "genomics": self.genomics_subjects}
        counts = {
            m: {s: len(self.in_split(subs, s)) for s in ("train", "val", "test")}
            for m, subs in pools.items()
            if getattr(self, m)
        }
        return {
            "cohort": self.cohort,
            "demo": self.demo,
            "samples": self.samples,
            "reference": self.reference,
            "seed": self.config["seed"],
            "modalities": [m for m in ("imaging", "genomics") if getattr(self, m)],
            "subjects": len(self.subjects),
            "split_fractions": dict(self.split_fractions),
            "split_counts": counts,
            "splits": {s: self.split[s] for s in sorted(self.subjects)},
            "imaging": {
                "channels": list(self.channels),
                "preprocessing": self.imaging_preprocessing,
            }
            if self.imaging
            else None,
            "genomics": {
                "contigs": len(self.contig_lengths) if self.contig_lengths else None,
                "val_contigs": self.config["genomics"]["val_contigs"],
                "test_contigs": self.config["genomics"]["test_contigs"],
                "subjects_with_vcf": len(self.vcf_subjects),
            }
            if self.genomics
            else None,
            "dicom_series": len(self.dicom),
            "missing_channels": {s: list(c) for s, c in sorted(self.missing_channels.items())},
            "tasks": {name: t.to_dict() for name, t in self.tasks.items()},
            "genetics": self.genetics.to_dict(),
            "subject_model": self.subject_model.to_dict(),
            "notes": list(self.notes),
        }
