"""Covariate columns of a sample sheet (``age``, ``sex``, ``covar_<name>``): which columns they
are and what their cells may hold. Read by :func:`voxseq.io.sheet.read_sheet` and the subject
table (:mod:`voxseq.genetics.subjects`)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from voxseq import VoxseqError

COVARIATE_RE = re.compile(r"^(age|sex|covar_[a-z0-9][a-z0-9_]{0,31})$")
SEX_VALUES = {"m": "M", "male": "M", "f": "F", "female": "F"}
MAX_LEVELS = 20


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
