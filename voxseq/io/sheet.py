"""The sample sheet: one row per subject, validated, paths resolved, splits assigned.

Columns (all but ``subject`` may be empty): ``subject``, ``image``, ``label``, ``class``,
``bam``, ``vcf``, ``split``, and any number of ``image_<name>`` columns: further images of the
same subject (other MRI sequences: ``image_t1c``, ``image_flair``), read as channels after
``image`` in the sheet's column order; and covariates ``age``, ``sex``, ``covar_<name>``
(:data:`voxseq.io.covariates.COVARIATE_RE`). Relative paths are resolved against the sheet's
own folder.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from collections.abc import Sequence
from pathlib import Path

from voxseq import VoxseqError

MAX_SUBJECT_LENGTH = 100
# Also Snakemake's wildcard constraint (anchors stripped): keep it a plain anchored regex.
SUBJECT_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_SUBJECT_LENGTH - 1}}}$"
COLUMNS = ("subject", "image", "label", "class", "batch", "bam", "vcf", "split")
PATH_COLUMNS = ("image", "label", "bam", "vcf")
SPLITS = ("train", "val", "test")
_SUBJECT_RE = re.compile(SUBJECT_PATTERN)
# further images of a subject: image_<name>, <name> a channel name
CHANNEL_COLUMN_RE = re.compile(r"^image_([a-z0-9][a-z0-9_]{0,31})$")
# subject-level outcomes a subject model may predict (subject_model.target): outcome[_<name>]
OUTCOME_COLUMN_RE = re.compile(r"^outcome(_[a-z0-9][a-z0-9_]{0,31})?$")


def channel_columns(header: Sequence[str]) -> list[str]:
    """The ``image_<name>`` columns of a sheet header (or of a row's keys), in their order."""
    return [c for c in header if CHANNEL_COLUMN_RE.match(c)]


def outcome_columns(header: Sequence[str]) -> list[str]:
    """The outcome columns (``outcome``, ``outcome_<name>``) of a header, in its order."""
    return [c for c in header if OUTCOME_COLUMN_RE.match(c)]


def covariate_columns(header: Sequence[str]) -> list[str]:
    """The covariate columns (``age``, ``sex``, ``covar_<name>``) of a header, in its order."""
    from voxseq.io.covariates import covariate_columns as covariates

    return covariates(header)


def read_sheet(path: str | Path, check_files: bool = True) -> list[dict[str, str]]:
    """Read and validate a sample sheet.

    Parameters
    ----------
    path
        Tab-separated file with a header row, UTF-8 (a leading byte-order mark, as spreadsheet
        programs write, is ignored).
    check_files
        Also check that every named input file exists.

    Returns
    -------
    list of dict
        One dict per subject with every column of ``COLUMNS`` (missing ones as ``""``), then
        the sheet's ``image_<name>`` columns in its order, then its outcome columns
        (``outcome``, ``outcome_<name>``: any text), then its covariate columns
        (``age``, ``sex``, ``covar_<name>``; ``sex`` written M/F), paths made absolute.

    Raises
    ------
    VoxseqError
        Naming the sheet, the row/subject and the problem. Line numbers are physical lines of
        the file (blank lines, which are skipped, count).
    """
    path = Path(path)
    if not path.is_file():
        where = ""
        if not path.is_absolute():  # relative to the working directory, not the config file
            where = (f" (a relative path is read from the working directory {Path.cwd()}: "
                     f"tried {path.absolute()}; give an absolute path, or run from the folder "
                     "it is relative to)")
        raise VoxseqError(f"sample sheet {path}: file not found{where}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        header = reader.fieldnames or []
        rows = [(reader.line_num, row) for row in reader]
    if not header:
        raise VoxseqError(f"sample sheet {path}: empty file (no header row, no subjects)")
    if "subject" not in header:
        raise VoxseqError(f"sample sheet {path}: missing required column 'subject' (has {header})")
    extra = channel_columns(header)
    covariates = covariate_columns(header)
    outcomes = outcome_columns(header)
    unknown = [c for c in header
               if c not in COLUMNS and c not in extra and c not in covariates + outcomes]
    if unknown:
        raise VoxseqError(
            f"sample sheet {path}: unknown column(s) {unknown}; allowed: {COLUMNS}, "
            "image_<name> for further images of a subject, the covariates age, sex and "
            "covar_<name>, and outcome or outcome_<name> (subject-level outcomes; <name>: "
            "lowercase letters, digits and '_', starting with a letter or digit)"
        )
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise VoxseqError(f"sample sheet {path}: column(s) {dupes} appear more than once")
    if not rows:
        raise VoxseqError(f"sample sheet {path}: no subjects (empty sheet)")
    out = [_check_row(path, line, row, check_files, extra) for line, row in rows]
    for (_, row), clean in zip(rows, out, strict=True):
        clean.update({c: (row.get(c) or "").strip() for c in (*outcomes, *covariates)})
    if covariates:
        from voxseq.io.covariates import check_covariates

        check_covariates(out, str(path))
    seen: dict[str, int] = {}
    for (line, _), row in zip(rows, out, strict=True):
        if row["subject"] in seen:
            raise VoxseqError(
                f"sample sheet {path}: subject '{row['subject']}' appears twice "
                f"(lines {seen[row['subject']]} and {line})"
            )
        seen[row["subject"]] = line
    return out


def _check_row(
    sheet: Path, line: int, row: dict, check_files: bool, extra: Sequence[str] = ()
) -> dict[str, str]:
    clean = {c: (row.get(c) or "").strip() for c in (*COLUMNS, *extra)}
    sid = clean["subject"]
    if not sid:
        raise VoxseqError(f"sample sheet {sheet}, line {line}: empty subject id")
    if len(sid) > MAX_SUBJECT_LENGTH:
        raise VoxseqError(
            f"sample sheet {sheet}, line {line}: subject id {sid[:20] + '...'!r} is too long "
            f"({len(sid)} characters, at most {MAX_SUBJECT_LENGTH}): it names output files"
        )
    if not _SUBJECT_RE.match(sid) or ".." in sid:
        raise VoxseqError(
            f"sample sheet {sheet}, line {line}: subject id {sid!r} is not allowed: use letters, "
            "digits, '_', '-' and '.' only, starting with a letter or digit"
        )
    if clean["split"] and clean["split"] not in SPLITS:
        raise VoxseqError(
            f"subject {sid} in sample sheet {sheet}: "
            f"split {clean['split']!r} is not one of {SPLITS}"
        )
    if clean["label"] and not clean["image"]:
        raise VoxseqError(f"subject {sid} in sample sheet {sheet}: 'label' given without 'image'")
    if not any(clean[c] for c in ("image", "bam")):
        raise VoxseqError(f"subject {sid} in sample sheet {sheet}: neither 'image' nor 'bam' given")
    # an empty image_<name> cell of an imaging subject is a missing sequence: the run plan
    # synthesises it (imaging.synthesis) or refuses the sheet, naming the subjects
    if not clean["image"]:
        given = [c for c in extra if clean[c]]
        if given:
            raise VoxseqError(
                f"subject {sid} in sample sheet {sheet}: {given} given without 'image'"
            )
    for col in (*PATH_COLUMNS, *extra):
        if not clean[col]:
            continue
        p = Path(clean[col])
        if not p.is_absolute():
            p = (sheet.parent / p).resolve()
        # an image cell may name a DICOM series (or study) folder, converted before ingest
        dicom = p.is_dir() and (col == "image" or col in extra)
        if check_files and not p.is_file() and not dicom:
            raise VoxseqError(f"subject {sid}: {col} file {p} not found (sample sheet {sheet})")
        clean[col] = str(p)
    return clean


def split_position(seed: int, subject: str) -> float:
    """A subject's position in ``[0, 1)``: the first 8 bytes of ``sha256("{seed}:{subject}")``.

    It depends only on the seed and the subject's own id, never on the other subjects.
    """
    digest = hashlib.sha256(f"{seed}:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_fractions(fractions: dict[str, float]) -> dict[str, float]:
    """The ``splits:`` fractions with their one meaning: the share of the subjects without a
    sheet ``split`` that goes to each split; a split left out is 0; they must sum to 1.

    Raises
    ------
    VoxseqError
        Naming the values: an unknown split, a negative fraction or a sum other than 1.
    """
    unknown = sorted(set(fractions) - set(SPLITS))
    values = {s: fractions.get(s, 0.0) for s in SPLITS}
    total = sum(values.values())
    if unknown or any(v < 0 for v in values.values()) or not math.isclose(total, 1.0,
                                                                          abs_tol=1e-6):
        problem = (f"unknown split {unknown[0]!r}" if unknown else "a fraction is negative"
                   if any(v < 0 for v in values.values()) else f"they sum to {total:.6g}")
        raise VoxseqError(
            f"config splits {dict(fractions)}: {problem}. The fractions of {list(SPLITS)} must be "
            ">= 0 and sum to 1; a split left out is 0 (e.g. train: 0.8, val: 0.2, test: 0)"
        )
    return values


def split_intervals(fractions: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Each split's interval of ``[0, 1)``, in ``SPLITS`` order (see :func:`split_fractions`).

    Raises
    ------
    VoxseqError
        When the fractions are not valid (:func:`split_fractions`), naming them.
    """
    values = split_fractions(fractions)
    total = sum(values.values())
    last = [s for s in SPLITS if values[s] > 0][-1]
    out, lo = {}, 0.0
    for s in SPLITS:
        hi = 1.0 if s == last else lo + values[s] / total  # no rounding gap below 1
        out[s], lo = (lo, hi), hi
    return out


def assign_splits(
    rows: Sequence[dict[str, str]], seed: int, fractions: dict[str, float]
) -> list[dict[str, str]]:
    """Fill empty ``split`` cells from the seed and each subject's own id.

    A subject with an empty cell goes to the split whose interval (see
    :func:`split_intervals`; train, then val, then test) holds its
    :func:`split_position`, so adding or removing subjects moves no other subject. Explicit
    splits in the sheet are kept.

    Tiny-cohort fallback: when a split with a positive fraction ends up empty (counting
    explicit splits too) and at least 3 subjects have an empty cell, the blank subject whose
    position lies nearest that split's interval moves into it, taken from a split that keeps at
    least one subject. Only such cohorts (tiny ones, or tiny fractions) can see a subject move
    when the cohort grows or shrinks.

    Parameters
    ----------
    rows
        Sheet rows with at least ``subject`` and ``split``; not modified.
    seed
        The config's ``seed``.
    fractions
        ``train``/``val``/``test`` fractions (missing = 0), summing to 1.

    Returns
    -------
    list of dict
        Copies of ``rows``, in the same order, every ``split`` filled.

    Raises
    ------
    VoxseqError
        When the fractions are not valid (:func:`split_fractions`).
    """
    intervals = split_intervals(fractions)
    rows = [dict(r) for r in rows]
    blank = sorted(r["subject"] for r in rows if not r["split"])
    pos = {sid: split_position(seed, sid) for sid in blank}
    chosen = {sid: next(s for s in SPLITS if pos[sid] < intervals[s][1]) for sid in blank}
    counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    for sid in blank:
        counts[chosen[sid]] += 1
    for s in SPLITS:
        lo, hi = intervals[s]
        donors = [sid for sid in blank if counts[chosen[sid]] > 1]
        if hi > lo and counts[s] == 0 and len(blank) >= 3 and donors:
            sid = min(donors, key=lambda d: (max(lo - pos[d], pos[d] - hi, 0.0), d))
            counts[chosen[sid]] -= 1
            chosen[sid], counts[s] = s, 1
    for r in rows:
        if not r["split"]:
            r["split"] = chosen[r["subject"]]
    return rows


def write_sheet(path: str | Path, rows: Sequence[dict[str, str]]) -> None:
    """Write a resolved sheet atomically: all columns, then the ``image_<name>`` ones, then the
    outcomes (``outcome``, ``outcome_<name>``), then the covariates (``age``, ``sex``,
    ``covar_<name>``)."""
    from voxseq.io.atomic import write_tsv

    header = list(rows[0]) if rows else []
    write_tsv(path, rows, [*COLUMNS, *channel_columns(header), *outcome_columns(header),
                           *covariate_columns(header)])


def sheet_row(path: str | Path, subject: str) -> dict[str, str]:
    """The row of ``subject`` in a resolved sheet written by :func:`write_sheet`."""
    for row in read_sheet(path, check_files=False):
        if row["subject"] == subject:
            return row
    raise VoxseqError(f"subject {subject}: not in the resolved sample sheet {path}")
