"""Filtered per-base depth pooled into bins, library-size normalised, stored per subject.

Depth follows ``samtools depth`` (1.13 and later): reads with any of ``exclude_flags`` (default
1796 = unmapped, secondary, QC-fail, duplicate) or with MAPQ under ``min_mapq`` are skipped, and
unmapped reads (flag 4) always are, whatever ``exclude_flags`` says; every aligned base (CIGAR
``M``/``=``/``X``) adds one; deletions and reference skips add nothing unless
``count_deletions`` (``samtools depth -J``) counts deletions; soft clips and insertions add
nothing; there is no base-quality filter and overlapping mates are both counted; bases past a
contig's end are dropped. samtools' ``-G`` adds to its default filter (1796) and ``-g`` takes
flags out of it, so the ``raw`` bins equal
``samtools depth -a -Q <min_mapq> -G <X> -g $((1792 & ~X))`` summed per bin, for
``exclude_flags=X`` (1792: the default filter less the unmapped flag, never taken out).

A BAM is read in one compiled pass (:mod:`voxseq.genomics.bamscan`: threaded BGZF inflate, a
numba kernel adding each aligned block to the bins it overlaps), which also counts the records
by filter and checks their order; memory is about 40 bytes per bin of the genome, whatever the
depth or contig length (:func:`coverage_mem_mb`). A CRAM is read through htslib (pysam), region
by region, with the same bins but a per-read Python loop: several times slower than a BAM.
A BAM may hold a subset of the reference's contigs (same names and lengths); the others get
zero coverage, with a warning naming them.

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
DEFAULT_FLAGS = 1796  # samtools' and mosdepth's default filter: unmapped, secondary, QC-fail, dup
_CHUNK = 8_000_000  # bp per fetch of the htslib path (CRAM), bounds its block lists
_DEL = 2  # pysam CIGAR op codes
_ALIGNED = (0, 7, 8)  # M, =, X
_BASE_MB = 400  # the interpreter with numpy, numba, pysam and h5py loaded, and slack


def n_bins(length: int, bin_size: int) -> int:
    """Bins covering a contig; the last one may be partial."""
    return -(-length // bin_size)


def bin_sums(values: np.ndarray, bin_size: int) -> np.ndarray:
    """Sum ``(L,)`` per-base values into ``(ceil(L / bin_size),)`` bins (int64)."""
    pad = (-len(values)) % bin_size
    padded = np.concatenate([values.astype(np.int64), np.zeros(pad, dtype=np.int64)])
    return padded.reshape(-1, bin_size).sum(axis=1)


def coverage_mem_mb(genome_length: int, bin_size: int, threads: int = 2) -> int:
    """Memory (MB) :func:`compute_coverage` needs: the interpreter, the inflated pieces in flight
    and, per bin of the genome, the int64 sums, the float32 track, the mask and the temporaries
    of normalising and writing them (about 40 bytes). Independent of contig length and depth."""
    from voxseq.genomics.bamscan import scan_memory_bytes

    bins = n_bins(genome_length, bin_size) + 1
    return _BASE_MB + -(-(scan_memory_bytes(0, threads) + 40 * bins) // 1_000_000)


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


def add_blocks(sums: np.ndarray, starts: np.ndarray, ends: np.ndarray, bin_size: int) -> None:
    """Add the bases of the blocks ``[starts, ends)`` (clipped to the contig, non-empty) to the
    ``(n_bins,)`` int64 ``sums`` of the bins they overlap, in place, without a per-base array."""
    n = len(sums)
    i0, i1 = starts // bin_size, (ends - 1) // bin_size
    one = i0 == i1
    sums += np.bincount(i0[one], weights=ends[one] - starts[one], minlength=n).astype(np.int64)
    s, e, j0, j1 = starts[~one], ends[~one], i0[~one], i1[~one]
    sums += np.bincount(j0, weights=(j0 + 1) * bin_size - s, minlength=n).astype(np.int64)
    sums += np.bincount(j1, weights=e - j1 * bin_size, minlength=n).astype(np.int64)
    inner = np.bincount(j0 + 1, minlength=n + 1) - np.bincount(j1, minlength=n + 1)
    sums += bin_size * np.cumsum(inner[:n])


def contig_bin_sums(bam: pysam.AlignmentFile, contig: str, length: int, bin_size: int,
                    min_mapq: int, exclude_flags: int, count_deletions: bool = False,
                    subject: str = "?") -> tuple[np.ndarray, int]:
    """Bin sums of one contig through htslib (pysam), region by region; the path for CRAM and
    for reads whose CIGAR sits in a ``CG`` tag. Same result as :mod:`voxseq.genomics.bamscan`.

    Returns
    -------
    sums : (n_bins(length, bin_size),) int64
    n_reads : int
        Passing reads placed on the contig.
    """
    sums = np.zeros(n_bins(length, bin_size), dtype=np.int64)
    n_reads = 0
    for c0 in range(0, length, _CHUNK):
        c1 = min(c0 + _CHUNK, length)
        starts: list[int] = []
        ends: list[int] = []
        try:
            for read in bam.fetch(contig, c0, c1):
                if read.flag & exclude_flags or read.mapping_quality < min_mapq or \
                        read.is_unmapped or read.reference_start < c0:
                    continue  # a read starting before c0 was added with the previous region
                n_reads += 1
                for b0, b1 in _blocks(read, count_deletions):
                    starts.append(b0)
                    ends.append(b1)
        except OSError as exc:
            raise VoxseqError(f"subject {subject}: alignment file {bam.filename.decode()} is "
                              f"truncated or corrupt in {contig}:{c0 + 1}-{c1} ({exc})") from exc
        s = np.clip(np.asarray(starts, dtype=np.int64), 0, length)
        e = np.clip(np.asarray(ends, dtype=np.int64), 0, length)
        keep = e > s
        add_blocks(sums, s[keep], e[keep], bin_size)
    return sums, n_reads


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


def _compiled_pass(subject: str, bam: pysam.AlignmentFile, path: str | Path,
                   contigs: dict[str, int], bin_size: int, min_mapq: int, exclude_flags: int,
                   count_deletions: bool, threads: int
                   ) -> tuple[dict[str, np.ndarray], int, dict[str, int]]:
    """Bin sums, library size and read counts of a BAM in one compiled pass (see bamscan)."""
    from voxseq.genomics.bamscan import scan_bam
    from voxseq.genomics.ingest import filter_bits, scan_counts, scan_failure

    sizes = {c: n_bins(n, bin_size) for c, n in contigs.items()}
    starts = dict(zip(sizes, np.cumsum([0, *sizes.values()])[:-1].tolist(), strict=True))
    bins = np.zeros(sum(sizes.values()), dtype=np.int64)
    bits = filter_bits(exclude_flags)
    try:
        scan = scan_bam(path, np.asarray(bam.lengths, dtype=np.int64),
                        np.array([starts[c] for c in bam.references], dtype=np.int64), bins,
                        bin_size, bits, min_mapq, exclude_flags, count_deletions, threads)
    except Exception as exc:
        raise scan_failure(subject, path, bam, exc) from exc
    counts = scan_counts(bits, scan)
    raw = {c: bins[starts[c]:starts[c] + sizes[c]] for c in contigs}
    if scan.long_cigars:
        log.warning("subject %s: %d reads keep their CIGAR in a CG tag; depth read again "
                    "through htslib", subject, scan.long_cigars)
        raw, _, _ = _htslib_pass(subject, bam, contigs, set(bam.references), bin_size, min_mapq,
                                 exclude_flags, count_deletions)
    return raw, scan.library, counts


def _htslib_pass(subject: str, bam: pysam.AlignmentFile, contigs: dict[str, int],
                 found: set[str], bin_size: int, min_mapq: int, exclude_flags: int,
                 count_deletions: bool) -> tuple[dict[str, np.ndarray], int, dict[str, int]]:
    """Bin sums and library size through pysam, contig by contig (CRAM); no read counts."""
    raw, library = {}, 0
    for contig, length in contigs.items():
        if contig not in found:
            raw[contig] = np.zeros(n_bins(length, bin_size), dtype=np.int64)
            continue
        raw[contig], n = contig_bin_sums(bam, contig, length, bin_size, min_mapq, exclude_flags,
                                         count_deletions, subject)
        library += n
    return raw, library, {}


def compute_coverage(subject: str, bam_path: str | Path, reference: str | Path,
                     out_path: str | Path, bin_size: int, min_mapq: int = 0,
                     exclude_flags: int = DEFAULT_FLAGS, normalisation: str = "cpm",
                     blacklist: str | Path | None = None, count_deletions: bool = False,
                     threads: int = 1) -> dict:
    """Binned, normalised coverage of one subject, written atomically to an HDF5 store.

    Parameters
    ----------
    subject, bam_path
        The subject and its BAM/CRAM (indexed; checked by :mod:`voxseq.genomics.ingest`). Its
        contigs may be a subset of the reference's (same names and lengths): the others get
        zero coverage, with a warning naming them.
    reference
        The cohort FASTA (contig order and lengths, and the reference of CRAMs).
    out_path
        The ``.h5`` store to write.
    bin_size, min_mapq, exclude_flags, normalisation, blacklist, count_deletions
        See the module docstring.
    threads
        Threads inflating the BAM beside the compiled pass (htslib threads for CRAM).

    Returns
    -------
    dict
        ``library_size``, ``scale``, per-contig totals and ``read_counts`` (the records of
        a BAM by filter category, as :func:`voxseq.genomics.ingest.count_reads`; empty for a
        CRAM, which ingest counts), also stored as attributes.

    Raises
    ------
    VoxseqError
        Naming the subject and file: records out of coordinate order, a truncated or corrupt
        block, no read at all or none passing the filters (a BAM's records are read only
        here), contigs that differ from the reference's.
    """
    from voxseq.genomics.ingest import bam_contigs, check_counts, log_counts, open_alignments
    from voxseq.genomics.reference import read_contigs

    if bin_size < 1:
        raise VoxseqError(f"subject {subject}: bin_size must be >= 1, got {bin_size}")
    contigs = read_contigs(reference)
    masks = read_blacklist(blacklist, contigs) if blacklist else {}
    with open_alignments(subject, bam_path, reference, threads) as (bam, _):
        found = bam_contigs(subject, bam, bam_path, reference, contigs)
        if bam.is_cram:
            raw, library, counts = _htslib_pass(subject, bam, contigs, found, bin_size, min_mapq,
                                                exclude_flags, count_deletions)
        else:
            raw, library, counts = _compiled_pass(subject, bam, bam_path, contigs, bin_size,
                                                  min_mapq, exclude_flags, count_deletions,
                                                  threads)
            check_counts(subject, bam_path, counts, min_mapq, exclude_flags)
            log_counts(subject, "BAM", counts)
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
             "contigs": json.dumps(contigs), "read_counts": json.dumps(counts)}
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
    return {"library_size": library, "scale": scale, "read_counts": counts,
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
        attrs["read_counts"] = json.loads(attrs.get("read_counts", "{}"))
        names = [contig] if contig else list(attrs["contigs"])
        missing = [c for c in names if c not in h5]
        if missing:
            raise VoxseqError(f"coverage store {path}: no contig(s) {missing}")
        return attrs, {c: h5[c][key][()] for c in names}
