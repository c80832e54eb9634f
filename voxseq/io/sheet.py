"""The sample sheet: one row per subject, validated, paths resolved, splits assigned.

Columns (all but ``subject`` may be empty): ``subject``, ``image``, ``label``, ``class``,
``bam``, ``vcf``, ``split``. Relative paths are resolved against the sheet's own folder.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxseq import VoxseqError

SUBJECT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
COLUMNS = ("subject", "image", "label", "class", "bam", "vcf", "split")
PATH_COLUMNS = ("image", "label", "bam", "vcf")
SPLITS = ("train", "val", "test")
_SUBJECT_RE = re.compile(SUBJECT_PATTERN)


def read_sheet(path: str | Path, check_files: bool = True) -> list[dict[str, str]]:
    """Read and validate a sample sheet.

    Parameters
    ----------
    path
        Tab-separated file with a header row.
    check_files
        Also check that every named input file exists.

    Returns
    -------
    list of dict
        One dict per subject with every column of ``COLUMNS`` (missing ones as ``""``) and
        paths made absolute.

    Raises
    ------
    VoxseqError
        Naming the sheet, the row/subject and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise VoxseqError(f"sample sheet {path}: file not found")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        header = reader.fieldnames or []
        rows = list(reader)
    if not header:
        raise VoxseqError(f"sample sheet {path}: empty file (no header row, no subjects)")
    if "subject" not in header:
        raise VoxseqError(f"sample sheet {path}: missing required column 'subject' (has {header})")
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise VoxseqError(f"sample sheet {path}: unknown column(s) {unknown}; allowed: {COLUMNS}")
    if not rows:
        raise VoxseqError(f"sample sheet {path}: no subjects (empty sheet)")
    out = [_check_row(path, i + 2, row, check_files) for i, row in enumerate(rows)]
    seen: dict[str, int] = {}
    for i, row in enumerate(out):
        if row["subject"] in seen:
            raise VoxseqError(
                f"sample sheet {path}: subject '{row['subject']}' appears twice "
                f"(lines {seen[row['subject']]} and {i + 2})"
            )
        seen[row["subject"]] = i + 2
    with_class = [r["subject"] for r in out if r["class"]]
    if with_class and len(with_class) != len(out):
        missing = [r["subject"] for r in out if not r["class"]]
        raise VoxseqError(
            f"sample sheet {path}: column 'class' is set for some subjects but empty for "
            f"{missing[:10]}{'...' if len(missing) > 10 else ''}; "
            "give every subject a class or none"
        )
    return out


def _check_row(sheet: Path, line: int, row: dict, check_files: bool) -> dict[str, str]:
    clean = {c: (row.get(c) or "").strip() for c in COLUMNS}
    sid = clean["subject"]
    if not sid:
        raise VoxseqError(f"sample sheet {sheet}, line {line}: empty subject id")
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
    for col in PATH_COLUMNS:
        if not clean[col]:
            continue
        p = Path(clean[col])
        if not p.is_absolute():
            p = (sheet.parent / p).resolve()
        if check_files and not p.is_file():
            raise VoxseqError(f"subject {sid}: {col} file {p} not found (sample sheet {sheet})")
        clean[col] = str(p)
    return clean


def assign_splits(
    rows: Sequence[dict[str, str]], seed: int, fractions: dict[str, float]
) -> list[dict[str, str]]:
    """Fill empty ``split`` cells deterministically from ``seed``.

    Subjects are shuffled with a seeded generator, then cut by ``fractions`` (train/val/test,
    renormalised), each non-empty split getting at least one subject when there are enough.
    Explicit splits are kept. The result depends only on the seed and the subject ids.
    """
    rows = [dict(r) for r in rows]
    blank = sorted(r["subject"] for r in rows if not r["split"])
    rng = np.random.default_rng(seed)
    order = [blank[i] for i in rng.permutation(len(blank))]
    total = sum(fractions.get(s, 0.0) for s in SPLITS)
    n = len(order)
    counts = {s: int(round(n * fractions.get(s, 0.0) / total)) for s in ("val", "test")}
    for s in ("val", "test"):
        if fractions.get(s, 0.0) > 0 and counts[s] == 0 and n >= 3:
            counts[s] = 1
    n_train = max(n - counts["val"] - counts["test"], 0)
    cut = {}
    for i, sid in enumerate(order):
        cut[sid] = "train" if i < n_train else ("val" if i < n_train + counts["val"] else "test")
    for r in rows:
        if not r["split"]:
            r["split"] = cut[r["subject"]]
    return rows


def write_sheet(path: str | Path, rows: Sequence[dict[str, str]]) -> None:
    """Write a resolved sheet (all columns) atomically."""
    from voxseq.io.atomic import write_tsv

    write_tsv(path, rows, COLUMNS)


def sheet_row(path: str | Path, subject: str) -> dict[str, str]:
    """The row of ``subject`` in a resolved sheet written by :func:`write_sheet`."""
    for row in read_sheet(path, check_files=False):
        if row["subject"] == subject:
            return row
    raise VoxseqError(f"subject {subject}: not in the resolved sample sheet {path}")
