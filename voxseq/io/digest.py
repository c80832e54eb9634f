"""Content digests for provenance (files, folders, config objects)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from voxseq import VoxseqError
from voxseq.io.atomic import write_json


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def object_sha256(obj: Any) -> str:
    """Hex SHA-256 of a JSON-serialisable object (keys sorted, so order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


# ---- content-stable reruns ---------------------------------------------------------------------
# A job that reads a source file (an image, a BAM, the sample sheet) records what it read: the
# file's size, modification time and SHA-256 (:func:`source_record`). At DAG-building time the
# workflow asks :func:`same_content` whether the file still holds those bytes; when it does, the
# input is marked ``ancient`` so a mere touch (a copy that kept the bytes, a sync tool, ``touch``)
# reruns nothing. A file is hashed at DAG time only when its size is unchanged but its time is
# not, and the result is kept in a cache keyed by the file's identity and stat, so that happens
# once per touch.


def source_record(path: str | Path) -> dict[str, Any]:
    """What a job read: ``path``, ``size``, ``mtime_ns`` and ``sha256`` (stat taken first, so a
    change while hashing shows up as a newer time and is hashed again later)."""
    st = os.stat(path)
    return {
        "path": str(path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": file_sha256(path),
    }


def _cache_file(cache: Path, path: str | Path) -> Path:
    key = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:32]
    return cache / f"{key}.json"


def cached_sha256(path: str | Path, cache: str | Path | None = None) -> str:
    """SHA-256 of ``path``, through a cache keyed by its absolute path, inode, size and mtime.

    The cache is an optimisation only: an unreadable or unwritable cache hashes the file.
    """
    st = os.stat(path)
    ident = [st.st_ino, st.st_size, st.st_mtime_ns]
    entry = _cache_file(Path(cache), path) if cache else None
    if entry is not None:
        try:
            cached = json.loads(entry.read_text())
            if cached["ident"] == ident and cached["path"] == os.path.abspath(path):
                return cached["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    digest = file_sha256(path)
    if entry is not None:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            write_json(entry, {"path": os.path.abspath(path), "ident": ident, "sha256": digest})
        except (OSError, VoxseqError):  # a full disk: only the cache is lost
            pass
    return digest


def same_content(path: str | Path, record: dict | None, cache: str | Path | None = None) -> bool:
    """Whether ``path`` still holds the bytes ``record`` (from :func:`source_record`) describes.

    False when there is no record, the path differs, the file is missing or its size changed;
    true without reading it when size and modification time are unchanged; otherwise decided by
    its SHA-256 (see :func:`cached_sha256`).
    """
    if not record or os.path.abspath(record.get("path", "")) != os.path.abspath(path):
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    if st.st_size != record.get("size"):
        return False
    if st.st_mtime_ns == record.get("mtime_ns"):
        return True
    try:
        return cached_sha256(path, cache) == record.get("sha256")
    except OSError:
        return False


def recorded_sources(record_file: str | Path) -> dict:
    """The ``sources`` of a job's JSON record (name -> :func:`source_record`), or ``{}`` when
    the record is absent or unreadable."""
    try:
        sources = json.loads(Path(record_file).read_text())["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return sources if isinstance(sources, dict) else {}
