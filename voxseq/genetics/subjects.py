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
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from voxseq import VoxseqError
from voxseq.io.atomic import write_tsv

log = logging.getLogger(__name__)

SHEET_COLUMNS = ("subject", "split", "class", "batch")
COVARIATE_RE = re.compile(r"^(age|sex|covar_[a-z0-9][a-z0-9_]{0,31})$")
SEX_VALUES = {"m": "M", "male": "M", "f": "F", "female": "F"}
MAX_LEVELS = 20
DICTIONARY_COLUMNS = ("column", "unit", "meaning", "rule")


def covariate_columns(header: Sequence[str]) -> list[str]:
    """The covariate columns of a sheet header: ``age``, ``sex``, ``covar_<name>``."""
    return [c for c in header if COVARIATE_RE.match(c)]


def check_covariates(rows: Sequence[Mapping[str, str]], where: str) -> dict[str, str]:
    """Validate (and normalise in place) the sheet's covariate cells; their kinds.

    Rules: ``age`` empty or a finite number in [0, 150] (years); ``sex`` empty or M/F (also
    male/female, any case; written M/F); ``covar_<name>`` (``<name>``: lowercase letters,
    digits, ``_``) either all numbers (numeric) or all text (categorical, at most 20 levels,
    no level that reads as a number); an empty cell is missing.

    Returns
    -------
    dict column -> ``numeric`` or ``categorical`` (``sex`` is categorical)

    Raises
    ------
    VoxseqError
        Naming ``where`` (the sheet), the subject, the column and the value.
    """
    kinds: dict[str, str] = {}
    for col in covariate_columns(list(rows[0]) if rows else []):
        cells = [(r["subject"], (r.get(col) or "").strip()) for r in rows]
        numeric = {s: _number(v) for s, v in cells if v}
        if col == "age":
            bad = [(s, v) for s, v in cells if v and not 0 <= numeric[s] <= 150]
            _refuse(bad, where, col, "a number of years in [0, 150]")
        elif col == "sex":
            bad = [(s, v) for s, v in cells if v and v.lower() not in SEX_VALUES]
            _refuse(bad, where, col, "M or F (male/female)")
            for r in rows:
                v = (r.get(col) or "").strip().lower()
                r[col] = SEX_VALUES.get(v, "")
        else:
            finite = {s for s, x in numeric.items() if math.isfinite(x)}
            text = [(s, v) for s, v in cells if v and s not in finite]
            if finite and text:
                _refuse(text[:3], where, col, "numbers like the other cells of this column")
            levels = {v for _, v in text}
            if len(levels) > MAX_LEVELS:
                raise VoxseqError(f"sample sheet {where}: column {col} has {len(levels)} "
                                  f"categories (at most {MAX_LEVELS})")
        kinds[col] = "categorical" if col == "sex" or (col != "age" and not _all_numeric(
            [r.get(col, "") for r in rows])) else "numeric"
    return kinds


def _number(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        return math.nan


def _all_numeric(values) -> bool:
    present = [v.strip() for v in values if v and v.strip()]
    return all(math.isfinite(_number(v)) for v in present)


def _refuse(bad: list, where: str, col: str, expected: str) -> None:
    if bad:
        s, v = bad[0]
        raise VoxseqError(f"subject {s} in sample sheet {where}: {col} {v!r} is not {expected}")


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
