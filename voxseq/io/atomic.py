"""Atomic outputs: write under a temporary name in the same folder, rename when complete.

A killed writer leaves only a ``.tmp-*`` sibling behind, never something at the final path; the
next write of the same path removes such leftovers. Final files and folders get the permissions
that the process umask gives an ordinary file (``0o666 & ~umask``) or folder (``0o777 & ~umask``),
not the private modes of :mod:`tempfile`, so colleagues on a shared cluster can read results.
A full disk is reported as a :class:`voxseq.VoxseqError` naming the output and the free space.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from voxseq import VoxseqError

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def current_umask() -> int:
    """The process umask (read from ``/proc`` where possible, which changes nothing)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(is_dir: bool) -> int:
    """Mode that ``open()`` / ``mkdir()`` would give a new file or folder under the umask."""
    return (0o777 if is_dir else 0o666) & ~current_umask()


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Remove ``.tmp-<name>.*`` siblings of ``path`` left by a killed or failed writer.

    Snakemake never runs two jobs that write the same output, so any such sibling is a leftover.
    Returns the names removed.
    """
    path = Path(path)
    prefix = f".tmp-{path.name}."
    removed = []
    with contextlib.suppress(FileNotFoundError), os.scandir(path.parent) as it:
        for entry in it:
            if entry.name.startswith(prefix):
                _remove(Path(entry.path))
                removed.append(entry.name)
    return removed


def _tmp_sibling(path: Path, is_dir: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}.", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    os.chmod(tmp, default_mode(is_dir))  # mkstemp/mkdtemp create 0600/0700 whatever the umask
    return tmp


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def no_space_error(path: str | os.PathLike, exc: OSError) -> VoxseqError:
    """The message for a full disk (or quota): the output, the folder and its free space."""
    folder = Path(path).parent
    try:
        free = shutil.disk_usage(folder).free
        free_txt = f"{free / 2**20:.1f} MiB free"
    except OSError:
        free_txt = "free space unknown"
    return VoxseqError(
        f"no space left writing {path}: the file system of {folder} is full or over quota "
        f"({free_txt}; {exc.strerror}). Free space there (or point the run at a larger "
        "disk with --directory) and rerun the same command"
    )


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
    so that libraries choosing a format from the extension behave. On error it is removed;
    a full disk becomes a :class:`voxseq.VoxseqError` naming ``path``.
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
    except OSError as exc:
        _remove(tmp)
        if exc.errno in _NO_SPACE:
            raise no_space_error(final, exc) from exc
        raise
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
