"""Filtered per-base depth pooled into bins, library-size normalised, stored per subject.

Depth follows ``samtools depth`` (1.13 and later) defaults: reads with any of ``exclude_flags``
(default 1796 = unmapped, secondary, QC-fail, duplicate) or with MAPQ under ``min_mapq`` are
skipped; every aligned base (CIGAR ``M``/``=``/``X``) adds one; deletions and reference skips add
nothing unless ``count_deletions`` (``samtools depth -J``) counts deletions; soft clips and
insertions add nothing; there is no base-quality filter and overlapping mates are both counted.
So the ``raw`` bins equal ``samtools depth -a -Q <min_mapq> -G <exclude_flags>`` summed per bin.

Normalised tracks are in depth units: ``none`` is the mean depth over the bin; ``cpm`` multiplies
it by 1e6 / L and ``rpkm`` by 1e9 / (L * bin_size), where L is the number of reads passing the
filters (deepTools' CPM / RPKM scale factors). Blacklisted bins are set to the track's median
bin (a baseline, as Basenji does) and flagged in ``mask``.

The store is one HDF5 file per subject: a group per contig with ``raw`` (int64 sums),
``track`` (float32 normalised) and ``mask`` (bool), and the settings as file attributes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pysam

from voxseq import VoxseqError
from voxseq.io.atomic import atomic_path

log = logging.getLogger(__name__)

NORMALISATIONS = ("cpm", "rpkm", "none")
_CHUNK = 8_000_000  # bp per fetch, bounds the memory of the per-base depth array
_DEL = 2  # pysam CIGAR op codes
_ALIGNED = (0, 7, 8)  # M, =, X


def n_bins(length: int, bin_size: int) -> int:
    """Bins covering a contig; the last one may be partial."""
    return -(-length // bin_size)


def bin_sums(values: np.ndarray, bin_size: int) -> np.ndarray:
    """Sum ``(L,)`` per-base values into ``(ceil(L / bin_size),)`` bins (int64)."""
    pad = (-len(values)) % bin_size
    padded = np.concatenate([values.astype(np.int64), np.zeros(pad, dtype=np.int64)])
    return padded.reshape(-1, bin_size).sum(axis=1)


def _blocks(read: pysam.AlignedSegment, count_deletions: bool) -> list[tuple[int, int]]:
    if not count_deletions:
        return read.get_blocks()
    out, pos = [], read.reference_start
    for op, n in read.cigartuples:
        if op in _ALIGNED or op == _DEL:
            out.append((pos, pos + n))
        if op in (*_ALIGNED, _DEL, 3):
            pos += n
    return out


def contig_depth(bam: pysam.AlignmentFile, contig: str, start: int, end: int, min_mapq: int,
                 exclude_flags: int, count_deletions: bool = False) -> tuple[np.ndarray, int]:
    """Per-base depth of ``contig[start:end]`` and the number of passing reads starting there.

    Returns
    -------
    depth : (end - start,) int32
    n_reads : int
        Passing reads whose alignment starts inside the region (each read counted once over
        consecutive regions).
    """
    starts: list[int] = []
    ends: list[int] = []
    n_reads = 0
    for read in bam.fetch(contig, start, end):
        if read.flag & exclude_flags or read.mapping_quality < min_mapq or read.is_unmapped:
            continue
        if read.reference_start >= start:
            n_reads += 1
        for b0, b1 in _blocks(read, count_deletions):
            starts.append(b0)
            ends.append(b1)
    size = end - start
    s = np.clip(np.asarray(starts, dtype=np.int64) - start, 0, size)
    e = np.clip(np.asarray(ends, dtype=np.int64) - start, 0, size)
    diff = np.bincount(s, minlength=size + 1) - np.bincount(e, minlength=size + 1)
    return np.cumsum(diff[:size]).astype(np.int32), n_reads


def read_blacklist(path: str | Path, contigs: dict[str, int]) -> dict[str, list[tuple[int, int]]]:
    """BED intervals per contig (0-based, half open); contigs not in the reference are ignored."""
    out: dict[str, list[tuple[int, int]]] = {c: [] for c in contigs}
    path = Path(path)
    if not path.is_file():
        raise VoxseqError(f"blacklist BED {path}: file not found")
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.split("\t")
        try:
            contig, b0, b1 = fields[0], int(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            raise VoxseqError(f"blacklist BED {path}, line {i}: expected contig, start, end; "
                              f"got {line!r}") from None
        if contig in out:
            out[contig].append((b0, b1))
    return out


def scale_factor(normalisation: str, library_size: int, bin_size: int) -> float:
    """Factor turning bin sums into the normalised track (see the module docstring)."""
    if normalisation not in NORMALISATIONS:
        raise VoxseqError(f"normalisation {normalisation!r} is not one of {NORMALISATIONS}")
    per_base = 1.0 / bin_size
    if normalisation == "none":
        return per_base
    if library_size <= 0:
        raise VoxseqError("no reads pass the filters: cannot normalise by library size")
    if normalisation == "cpm":
        return per_base * 1e6 / library_size
    return per_base * 1e9 / (library_size * bin_size)


def compute_coverage(subject: str, bam_path: str | Path, reference: str | Path,
                     out_path: str | Path, bin_size: int, min_mapq: int = 0,
                     exclude_flags: int = 1796, normalisation: str = "cpm",
                     blacklist: str | Path | None = None, count_deletions: bool = False) -> dict:
    """Binned, normalised coverage of one subject, written atomically to an HDF5 store.

    Parameters
    ----------
    subject, bam_path
        The subject and its BAM/CRAM (indexed; checked by :mod:`voxseq.genomics.ingest`).
    reference
        The cohort FASTA (contig order and lengths, and the reference of CRAMs).
    out_path
        The ``.h5`` store to write.
    bin_size, min_mapq, exclude_flags, normalisation, blacklist, count_deletions
        See the module docstring.

    Returns
    -------
    dict
        ``library_size``, ``scale`` and per-contig totals, also stored as attributes.
    """
    from voxseq.genomics.ingest import open_alignments
    from voxseq.genomics.reference import read_contigs

    if bin_size < 1:
        raise VoxseqError(f"subject {subject}: bin_size must be >= 1, got {bin_size}")
    contigs = read_contigs(reference)
    masks = read_blacklist(blacklist, contigs) if blacklist else {}
    raw: dict[str, np.ndarray] = {}
    library = 0
    with open_alignments(subject, bam_path, reference) as (bam, _):
        for contig, length in contigs.items():
            if contig not in bam.references:
                raise VoxseqError(f"subject {subject}: BAM {bam_path} has no contig {contig!r} "
                                  f"of reference {reference}")
            sums = []
            for c0 in range(0, length, _CHUNK):
                try:
                    depth, n = contig_depth(bam, contig, c0, min(c0 + _CHUNK, length), min_mapq,
                                            exclude_flags, count_deletions)
                except OSError as exc:
                    raise VoxseqError(f"subject {subject}: alignment file {bam_path} is truncated "
                                      f"or corrupt in {contig}:{c0 + 1}-{min(c0 + _CHUNK, length)}"
                                      f" ({exc})") from exc
                sums.append(depth)
                library += n
            raw[contig] = bin_sums(np.concatenate(sums), bin_size)
    scale = scale_factor(normalisation, library, bin_size)
    tracks = {c: (r * scale).astype(np.float32) for c, r in raw.items()}
    mask = {c: np.zeros(len(r), dtype=bool) for c, r in raw.items()}
    for contig, intervals in masks.items():
        for b0, b1 in intervals:
            mask[contig][max(b0, 0) // bin_size:n_bins(min(b1, contigs[contig]), bin_size)] = True
    if any(m.any() for m in mask.values()):
        baseline = float(np.median(np.concatenate([t[~mask[c]] for c, t in tracks.items()])))
        for c in tracks:
            tracks[c][mask[c]] = baseline
    attrs = {"subject": subject, "bam": str(bam_path), "reference": str(reference),
             "bin_size": bin_size, "min_mapq": min_mapq, "exclude_flags": exclude_flags,
             "normalisation": normalisation, "count_deletions": count_deletions,
             "blacklist": str(blacklist or ""), "library_size": library, "scale": scale,
             "contigs": json.dumps(contigs)}
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        for key, value in attrs.items():
            h5.attrs[key] = value
        for c in contigs:
            g = h5.create_group(c)
            g.attrs["length"] = contigs[c]
            g.create_dataset("raw", data=raw[c], compression="gzip", compression_opts=1)
            g.create_dataset("track", data=tracks[c], compression="gzip", compression_opts=1)
            g.create_dataset("mask", data=mask[c], compression="gzip", compression_opts=1)
    log.info("subject %s: %d passing reads, %s scale %.4g, %d bins", subject, library,
             normalisation, scale, sum(len(r) for r in raw.values()))
    return {"library_size": library, "scale": scale,
            "totals": {c: int(r.sum()) for c, r in raw.items()}}


def read_coverage(path: str | Path, contig: str | None = None, key: str = "track"
                  ) -> tuple[dict, dict[str, np.ndarray]]:
    """Attributes and ``key`` arrays (``track``, ``raw`` or ``mask``) of a coverage store."""
    path = Path(path)
    if not path.is_file():
        raise VoxseqError(f"coverage store {path}: file not found")
    with h5py.File(path, "r") as h5:
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in h5.attrs.items()}
        attrs["contigs"] = json.loads(attrs["contigs"])
        names = [contig] if contig else list(attrs["contigs"])
        missing = [c for c in names if c not in h5]
        if missing:
            raise VoxseqError(f"coverage store {path}: no contig(s) {missing}")
        return attrs, {c: h5[c][key][()] for c in names}
