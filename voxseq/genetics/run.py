"""The rules' entry points: the subject table from a run's outputs, and the genotypes with their
QC summary. Each takes the files a rule names and calls :mod:`voxseq.genetics`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from voxseq import VoxseqError
from voxseq.genetics.cohort import DOSAGE_SUFFIX, genotype_cohort
from voxseq.genetics.subjects import Sources, subject_table
from voxseq.io.atomic import write_json

log = logging.getLogger(__name__)


def subject_images(rows: Sequence[Mapping[str, str]], subjects: Sequence[str],
                   channels: Sequence[str], columns: Sequence[str]
                   ) -> dict[str, dict[str, str | tuple[str, int]]]:
    """subject -> {channel: image} from resolved sheet rows: the ``image`` and ``image_<name>``
    cells (an empty one, a missing sequence, left out), or (without image columns and with
    several channels) the volumes of one 4D image."""
    by_id = {r["subject"]: r for r in rows}
    out = {}
    for sid in subjects:
        row = by_id[sid]
        if columns or len(channels) == 1:
            cells = [row["image"], *(row[c] for c in columns)]
            # a missing sequence (synthesised for the models) has no raw intensity
            out[sid] = {ch: c for ch, c in zip(channels, cells, strict=True) if c}
        else:
            out[sid] = {ch: (row["image"], k) for k, ch in enumerate(channels)}
    return out


def run_subject_table(sheet: str, out_tsv: str, out_columns: str, imaging_subjects: Sequence[str],
                      genomics_subjects: Sequence[str], channels: Sequence[str],
                      channel_columns: Sequence[str], lesion_label: tuple[str, int] | None,
                      inputs: Mapping[str, object]) -> list[dict]:
    """``subjects.tsv`` and its dictionary from the resolved sheet and a run's outputs.

    ``inputs``: the rule's named inputs: ``imaging_table``, ``segs`` (in ``imaging_subjects``
    order), ``imaging_qc``, ``predictions``, ``coverage`` (in ``genomics_subjects`` order),
    ``genomics_qc``, ``genomics_regions``; any may be absent.
    """
    from voxseq.io.sheet import read_sheet

    rows = read_sheet(sheet, check_files=False)
    segs = list(inputs.get("segs") or [])
    coverage = list(inputs.get("coverage") or [])
    sources = Sources(
        imaging_cohort=inputs.get("imaging_table") or None,
        segmentations=dict(zip(imaging_subjects, segs, strict=True)) if segs else {},
        images=subject_images(rows, imaging_subjects, channels, channel_columns),
        lesion_label=tuple(lesion_label) if lesion_label and segs else None,
        imaging_qc=inputs.get("imaging_qc") or None,
        genomics_qc=inputs.get("genomics_qc") or None,
        genomics_regions=inputs.get("genomics_regions") or None,
        coverage=dict(zip(genomics_subjects, coverage, strict=True)) if coverage else {},
        predictions=inputs.get("predictions") or None,
    )
    return subject_table(rows, sources, out_tsv, out_columns, sheet_name=sheet)


def run_genotypes(out_prefix: str, out_qc: str, out_summary: str,
                  vcfs: Mapping[str, str] | None, cohort_vcf: str | None,
                  samples: Sequence[str], absent_as_ref: bool, qc: Mapping[str, float]) -> dict:
    """:func:`voxseq.genetics.cohort.genotype_cohort`, its counts written to ``out_summary``
    (JSON). A dosage file left by an earlier run is removed first (the association would read
    it)."""
    Path(f"{out_prefix}{DOSAGE_SUFFIX}").unlink(missing_ok=True)
    summary = genotype_cohort(out_prefix, out_qc, vcfs=vcfs or None, cohort_vcf=cohort_vcf,
                              samples=list(samples), absent_as_ref=absent_as_ref, qc=qc)
    if not summary["genotype_variants_pass"] or summary["genotype_samples_pass"] < 3:
        raise VoxseqError(
            f"genotypes: {summary['genotype_variants_pass']} of {summary['genotype_variants']} "
            f"variants and {summary['genotype_samples_pass']} of {summary['genotype_samples']} "
            f"subjects pass QC (genetics.qc {dict(qc)}); the association needs a variant and 3 "
            f"subjects. Per variant and subject: {out_qc} and its .samples.tsv")
    write_json(out_summary, summary)
    log.info("genotypes: %d of %d variants and %d of %d subjects pass QC",
             summary["genotype_variants_pass"], summary["genotype_variants"],
             summary["genotype_samples_pass"], summary["genotype_samples"])
    return summary
