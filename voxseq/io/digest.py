"""Content digests for provenance (files, folders, config objects)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from voxseq import VoxseqError
from voxseq.io.atomic import write_json

log = logging.getLogger(__name__)


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


# ---- the same file content under two subjects (train/test leakage) ------------------------------


def shared_content(records: Mapping[str, Mapping | str | Path]) -> list[dict[str, Any]]:
    """Files whose bytes are identical across subjects, from the subjects' ingest records.

    Parameters
    ----------
    records
        Subject -> its ingest record (``results/<cohort>/<modality>/ingest/<subject>.json``,
        or its loaded content): ``sources`` maps a sheet column (``image``, ``image_<name>``,
        ``label``, ``bam``, ``vcf``; ``<column>_pair`` for the other file of a header/data
        pair) to :func:`source_record` (or None).

    Returns
    -------
    list of dict
        One entry per digest held by two or more subjects: ``sha256`` and ``files``, a list of
        ``{"subject", "column", "path"}`` sorted by subject then column; entries sorted by their
        first file. A file repeated within one subject (e.g. the same image in two columns) is
        not listed unless another subject has it too.
    """
    by_digest: dict[str, list[dict[str, str]]] = {}
    for subject in sorted(records):
        record = records[subject]
        if not isinstance(record, Mapping):
            try:
                record = json.loads(Path(record).read_text())
            except (OSError, ValueError) as exc:
                raise VoxseqError(
                    f"subject {subject}: ingest record {record} cannot be read ({exc})"
                ) from exc
        for column, source in sorted((record.get("sources") or {}).items()):
            if source and source.get("sha256"):
                by_digest.setdefault(source["sha256"], []).append(
                    {"subject": subject, "column": column, "path": str(source.get("path", ""))}
                )
    groups = [
        {"sha256": digest, "files": files}
        for digest, files in by_digest.items()
        if len({f["subject"] for f in files}) > 1
    ]
    return sorted(groups, key=lambda g: (g["files"][0]["subject"], g["files"][0]["column"]))


def check_shared_content(
    records: Mapping[str, Mapping | str | Path],
    allowed: Iterable[Iterable[str]] = (),
    allow_all: bool = False,
    split: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Refuse identical files under different subjects (a subject entered twice, or a test
    subject's image also a training subject's: leakage), unless declared intended.

    Parameters
    ----------
    records
        As for :func:`shared_content`.
    allowed
        Groups of subjects that may share files (e.g. ``[["s01", "s01_rescan"]]``): a shared
        digest whose subjects all lie in one group is allowed.
    allow_all
        Allow every shared file (a config flag for cohorts where sharing is by design).
    split
        Subject -> split, to say which splits the subjects are in.

    Returns
    -------
    list of dict
        The allowed groups (:func:`shared_content` entries), each also logged as a warning.

    Raises
    ------
    VoxseqError
        Naming, for each shared file not allowed (the first 10), both subjects (with their
        splits), the columns and the files.
    """
    groups = [set(g) for g in allowed]
    refused, kept = [], []
    for group in shared_content(records):
        subjects = {f["subject"] for f in group["files"]}
        if allow_all or any(subjects <= g for g in groups):
            kept.append(group)
            log.warning("identical content under subjects %s (allowed): %s",
                        ", ".join(sorted(subjects)), _describe(group, split))
        else:
            refused.append(group)
    if refused:
        shown = "; ".join(_describe(g, split) for g in refused[:10])
        more = f"; ... ({len(refused)} in all)" if len(refused) > 10 else ""
        raise VoxseqError(
            f"identical files under different subjects (the same data entered twice, or "
            f"train/test leakage): {shown}{more}. Fix the sample sheet, or declare the subjects "
            "that may share files if this is intended"
        )
    return kept


def _describe(group: dict, split: Mapping[str, str] | None) -> str:
    def one(f: dict) -> str:
        where = f" ({split[f['subject']]})" if split and f["subject"] in split else ""
        return f"subject {f['subject']}{where} {f['column']} {f['path']}"

    return f"{' = '.join(one(f) for f in group['files'])} (SHA-256 {group['sha256'][:12]})"
