"""The imaging-genetics part of the run plan: whether the association runs, on what, with what.

:func:`plan_genetics` reads the config's ``genetics`` block against the cohort (modalities on,
subjects with genotypes, sheet columns, imaging labels and channels) and returns a frozen
:class:`GeneticsPlan`, raising :class:`voxseq.VoxseqError` before any job for a request that
cannot be met (``genetics.enabled: true`` without imaging, genomics or genotypes; a phenotype
the subject table cannot hold; a covariate that is no sheet column).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from voxseq import VoxseqError

#: subjects both imaged and genotyped below which the association does not run
MIN_SUBJECTS = 3


@dataclass(frozen=True)
class GeneticsPlan:
    """The association of imaging-derived phenotypes with genotypes, as this run does it."""

    enabled: bool
    #: subject -> VCF (per-subject genotypes); empty with ``cohort_vcf``
    vcfs: Mapping[str, str] = field(default_factory=dict)
    cohort_vcf: str | None = None
    absent_as_ref: bool = False
    qc: Mapping[str, float] = field(default_factory=dict)
    phenotypes: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    n_pcs: int = 0
    pcs_min_samples: int = 200
    pcs_min_variants: int = 1000
    #: the label counted as lesions and its value in the segmentation, or None
    lesion_label: tuple[str, int] | None = None
    #: subjects both imaged and genotyped
    subjects: tuple[str, ...] = ()
    #: why it is off (auto), or covariates left out: said once
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        if not self.enabled:
            return {"enabled": False, "why": list(self.notes)}
        return {
            "enabled": True,
            "genotypes": self.cohort_vcf or f"{len(self.vcfs)} per-subject VCFs",
            "absent_as_ref": self.absent_as_ref,
            "subjects": len(self.subjects),
            "qc": dict(self.qc),
            "phenotypes": list(self.phenotypes),
            "covariates": list(self.covariates),
            "n_pcs": self.n_pcs,
            "lesion_label": list(self.lesion_label) if self.lesion_label else None,
        }


def possible_phenotypes(config: Mapping, channels: Sequence[str], imaging_qc: bool,
                        genomics_qc: bool) -> list[str]:
    """The numeric subject-table columns a phenotype may name in this run (see
    :mod:`voxseq.genetics.phenotypes`)."""
    labels = list(config["imaging"]["labels"])
    lesion = config["genetics"]["lesion_label"]
    out = [f"volume_{n}_mm3" for n in labels[1:]]
    if lesion in labels[1:]:
        out += [f"{lesion}_count", f"{lesion}_burden_mm3"]
    out += [f"intensity_{c}_body" for c in channels]
    out += ["imaging_qc_score"] if imaging_qc else []
    out += ["reads_passing", "library_scale"]
    out += ["genomics_qc_score", "cnv_regions", "cnv_regions_bp"] if genomics_qc else []
    return out


def plan_genetics(config: Mapping, subjects: Mapping[str, Mapping[str, str]],
                  imaging_subjects: Sequence[str], vcf_subjects: Sequence[str],
                  channels: Sequence[str], imaging_qc: bool, genomics_qc: bool,
                  sheet: str) -> GeneticsPlan:
    """Decide the association (see the module docstring); ``sheet`` names the sheet in
    messages."""
    g = config["genetics"]
    imaging, genomics = config["imaging"]["enabled"], config["genomics"]["enabled"]
    requested = g["enabled"]
    if requested is False:
        return GeneticsPlan(False, notes=("genetics.enabled is false",))
    cohort_vcf = g.get("cohort_vcf")
    imaged = set(imaging_subjects)
    both = tuple(sorted(s for s in (subjects if cohort_vcf else vcf_subjects) if s in imaged))
    why = ("imaging.enabled is false" if not imaging else
           "genomics.enabled is false" if not genomics else
           f"{len(both)} subject(s) of {sheet} have both an image and genotypes (a vcf cell or "
           f"genetics.cohort_vcf); the association needs {MIN_SUBJECTS}"
           if len(both) < MIN_SUBJECTS else None)
    if why:
        if requested is True:
            raise VoxseqError(f"genetics.enabled is true but {why}. Set genetics.enabled: auto "
                              "(or false) to run without the association")
        return GeneticsPlan(False, notes=(f"genetics (auto) is off: {why}",))
    possible = possible_phenotypes(config, channels, imaging_qc, genomics_qc)
    bad = [p for p in g["phenotypes"] if p not in possible]
    if bad:
        raise VoxseqError(
            f"genetics.phenotypes: {bad} cannot be a column of this run's subject table; it "
            f"can hold {possible} (imaging.labels {list(config['imaging']['labels'])}, "
            f"genetics.lesion_label {g['lesion_label']!r})")
    # a sheet column with a value; the demo writes a batch (its scanner) with its images
    header = {c for r in subjects.values() for c, v in r.items() if v not in (None, "")}
    header |= {"batch"} if config["demo"]["enabled"] and config["demo"]["imaging"] else set()
    covariates = tuple(c for c in g["covariates"] if c in header)
    left_out = [c for c in g["covariates"] if c not in header]
    notes = (f"genetics.covariates: {left_out} left out: no such column (or no value) in the "
             f"sample sheet {sheet}",) if left_out else ()
    labels = list(config["imaging"]["labels"])
    lesion = g["lesion_label"]
    return GeneticsPlan(
        enabled=True,
        vcfs={} if cohort_vcf else {s: subjects[s]["vcf"] for s in vcf_subjects},
        cohort_vcf=cohort_vcf,
        absent_as_ref=(config["demo"]["enabled"] if g["absent_as_ref"] == "auto"
                       else bool(g["absent_as_ref"])),
        qc=dict(g["qc"]),
        phenotypes=tuple(g["phenotypes"]),
        covariates=covariates,
        n_pcs=g["n_pcs"],
        pcs_min_samples=g["pcs_min_samples"],
        pcs_min_variants=g["pcs_min_variants"],
        lesion_label=(lesion, labels.index(lesion)) if lesion in labels[1:] else None,
        subjects=both,
        notes=notes,
    )
