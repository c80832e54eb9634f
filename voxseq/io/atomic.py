"""Atomic outputs: write under a temporary name in the same folder, rename when complete.

A killed writer leaves only a ``.tmp-*`` sibling behind, never something at the final path.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


def _tmp_sibling(path: Path, is_dir: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        return Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}.", dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    os.close(fd)
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` when the block succeeds.

    Parameters
    ----------
    path
        The final file or folder.
    is_dir
        Yield an (empty, existing) temporary folder instead of a file path.

    The temporary keeps the final name's suffixes (``x.nii.gz`` -> ``.tmp-x.nii.gz.abc.nii.gz``)
    so that libraries choosing a format from the extension behave. On error it is removed.
    """
    final = Path(path)
    tmp = _tmp_sibling(final, is_dir)
    if not is_dir:
        suffixed = tmp.with_name(tmp.name + "".join(final.suffixes))
        tmp.rename(suffixed)
        tmp = suffixed
    try:
        yield tmp
        if is_dir and final.exists():
            _remove(final)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (NaN written as null)."""
    write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=False) + "\n")


def _clean(obj: Any) -> Any:
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_tsv(
    path: str | os.PathLike, rows: Sequence[dict[str, Any]], columns: Sequence[str]
) -> None:
    """Write dict rows as a tab-separated table with a header, atomically.

    Floats are written with 6 significant digits; ``None`` and NaN as empty cells.
    """
    lines = ["\t".join(columns)]
    for row in rows:
        lines.append("\t".join(_cell(row.get(c)) for c in columns))
    write_text(path, "\n".join(lines) + "\n")


def _cell(value: Any) -> str:
    import math

    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def read_tsv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read a tab-separated table with a header into a list of dicts (all values strings)."""
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))
