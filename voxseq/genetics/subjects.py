"""One row per subject joining the sheet, imaging-derived phenotypes and genomics summaries.

:func:`subject_table` writes ``subjects.tsv`` and its data dictionary ``subjects.columns.tsv``
(column, unit, meaning, rule). A value a subject has no source for (a modality it lacks, a
subject a step did not score) is an empty cell, never a zero. Inputs are the files the pipeline
already writes: the resolved sheet, ``imaging/cohort.tsv`` (volumes per label), the
segmentations (lesion count and burden), the images (intensity inside the body),
``imaging/qc/qc.tsv``, ``imaging/classify/predictions.tsv``, the coverage stores (passing reads,
normalisation scale), ``genomics/qc/qc.tsv`` and ``genomics/qc/qc_regions.tsv``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from voxseq.io.atomic import write_tsv
from voxseq.io.covariates import (  # noqa: F401 (re-exported)
    COVARIATE_RE,
    MAX_LEVELS,
    SEX_VALUES,
    _number,
    check_covariates,
    covariate_columns,
)

log = logging.getLogger(__name__)

SHEET_COLUMNS = ("subject", "split", "class", "batch")
DICTIONARY_COLUMNS = ("column", "unit", "meaning", "rule")


@dataclass
class Sources:
    """The pipeline's outputs a subject table reads; any may be missing (None / empty).

    imaging_cohort: ``imaging/cohort.tsv``; segmentations: subject -> ``_seg.nii.gz``;
    images: subject -> {channel: NIfTI or (NIfTI, volume)}; lesion_label: the label counted
    as lesions and its value (``("lesion", 2)``); imaging_qc / genomics_qc: ``qc.tsv``;
    genomics_regions: ``qc_regions.tsv``; coverage: subject -> coverage store ``.h5``;
    predictions: the classifier's ``predictions.tsv``.
    """

    imaging_cohort: str | None = None
    segmentations: Mapping[str, str] = field(default_factory=dict)
    images: Mapping[str, Mapping[str, str | tuple[str, int]]] = field(default_factory=dict)
    lesion_label: tuple[str, int] | None = None
    imaging_qc: str | None = None
    genomics_qc: str | None = None
    genomics_regions: str | None = None
    coverage: Mapping[str, str] = field(default_factory=dict)
    predictions: str | None = None


def subject_table(sheet_rows: Sequence[Mapping[str, str]], sources: Sources, out_tsv: str,
                  out_columns: str, sheet_name: str = "sheet") -> list[dict]:
    """Write ``subjects.tsv`` (one row per sheet subject) and ``subjects.columns.tsv``.

    Returns the rows (dicts; None for an empty cell).
    """
    from voxseq.genetics import phenotypes as ph

    rows = [dict(r) for r in sheet_rows]
    kinds = check_covariates(rows, sheet_name)
    table = {r["subject"]: {c: (r.get(c) or None) for c in (*SHEET_COLUMNS, *kinds)}
             for r in rows}
    spec = [ph.sheet_spec(c, kinds.get(c)) for c in (*SHEET_COLUMNS, *kinds)]
    for part in (ph.imaging_cohort(sources.imaging_cohort),
                 ph.lesions(sources.segmentations, sources.lesion_label),
                 ph.body_intensity(sources.images),
                 ph.qc_table(sources.imaging_qc, "imaging"),
                 ph.classifier(sources.predictions),
                 ph.coverage(sources.coverage),
                 ph.qc_table(sources.genomics_qc, "genomics"),
                 ph.regions(sources.genomics_qc, sources.genomics_regions)):
        values, part_spec = part
        spec += part_spec
        for sid, vals in values.items():
            if sid in table:
                table[sid].update(vals)
    columns = [s["column"] for s in spec]
    out = [{c: t.get(c) for c in columns} for t in table.values()]
    write_tsv(out_tsv, out, columns)
    write_tsv(out_columns, spec, DICTIONARY_COLUMNS)
    log.info("subject table: %d subjects, %d columns", len(out), len(columns))
    return out


def phenotype_matrix(rows: Sequence[Mapping], columns: Sequence[str]) -> np.ndarray:
    """(N, P) float phenotypes from subject-table rows, NaN for an empty cell."""
    return np.array([[_number(str(r.get(c))) if r.get(c) not in (None, "") else np.nan
                      for c in columns] for r in rows], np.float64).reshape(len(rows), -1)
