"""Per-subject input checks for the genomics track, and read counts by filter category.

Checks, each failing with a :class:`voxseq.VoxseqError` naming the subject, the file and the
problem: the BAM/CRAM and its index exist, and an index older than the file still finds the
file's records (htslib only warns, then reads through a stale index; see
:func:`checked_index`); the file is complete (BGZF EOF marker, every block decodes); it is
coordinate-sorted (header ``SO`` and the order of its records); its header contigs (names and
lengths) equal the reference's, listing every mismatch; a CRAM's ``@SQ M5`` checksums match the
cohort reference (a CRAM made against another reference cannot be decoded correctly); the VCF is
bgzipped and indexed (an older index checked likewise), names no contig absent from the
reference, and the REF alleles of its first ``VCF_REF_CHECKED`` records agree with the reference
(a VCF called against another build); the alignments hold reads, and some pass the filters.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pysam

from voxseq import VoxseqError
from voxseq.genomics.bamscan import OrderError, Scan, ScanError, scan_bam
from voxseq.genomics.reference import read_contigs
from voxseq.io.atomic import write_json
from voxseq.io.digest import source_record

log = logging.getLogger(__name__)

FLAG_NAMES = {4: "unmapped", 256: "secondary", 512: "qc_fail", 1024: "duplicate",
              2048: "supplementary", 1: "paired", 2: "proper_pair", 8: "mate_unmapped",
              16: "reverse", 32: "mate_reverse", 64: "read1", 128: "read2"}
_INDEX_SUFFIXES = {".bam": (".bai", ".csi"), ".cram": (".crai",), ".gz": (".tbi", ".csi"),
                   ".bcf": (".csi",)}
_BGZF_MAGIC = b"\x1f\x8b\x08\x04"
VCF_REF_CHECKED = 100_000  # VCF records whose REF allele is compared with the reference


def find_index(path: str | Path) -> Path | None:
    """The index beside ``path`` (``x.bam.bai``, ``x.bai``, ``.csi``, ``.crai``, ``.tbi``)."""
    path = Path(path)
    for suffix in _INDEX_SUFFIXES.get(path.suffix, (".bai", ".csi", ".crai", ".tbi")):
        for cand in (Path(f"{path}{suffix}"), path.with_suffix(suffix)):
            if cand.is_file():
                return cand
    return None


def checked_index(subject: str, kind: str, path: str | Path, command: str,
                  verify: Callable[[], list[str]]) -> Path:
    """The index of ``path``; raise when it is missing, or older than the file and stale.

    htslib only warns about an older index, then reads through it: a file rewritten after
    indexing (re-sorted, re-compressed, filtered) has its records skipped or misplaced. An older
    index is not always stale, though (a copy without ``-p``, or a workflow that declared the
    file but not its index as an output and touched the file after the job), so an older index
    is checked with ``verify`` (problems found, empty when the index still finds the file's
    records): kept with a warning when it matches, an error naming the mismatches when not.
    ``command`` (re)creates the index.
    """
    path = Path(path)
    index = find_index(path)
    if index is None:
        raise VoxseqError(f"subject {subject}: {kind} {path} has no index; create it with "
                          f"{command}")
    if index.stat().st_mtime < path.stat().st_mtime:
        problems = verify()
        if problems:
            raise VoxseqError(f"subject {subject}: {kind} {path}: its index {index} is older than "
                              f"the file and does not match it ({'; '.join(problems[:5])}); "
                              f"re-create it with {command}")
        log.warning("subject %s: %s %s: its index %s is older than the file but finds its records "
                    "(first and last of every contig); touch the index to skip this check",
                    subject, kind, path, index)
    return index


def _scan_bounds(records: Iterable[tuple[str, tuple]]) -> tuple[dict[str, list], dict[str, int]]:
    """Contig -> [first, last] record signatures, and contig -> records, from a linear scan."""
    bounds: dict[str, list] = {}
    counts: dict[str, int] = {}
    for contig, sig in records:
        if contig in bounds:
            bounds[contig][1] = sig
        else:
            bounds[contig] = [sig, sig]
        counts[contig] = counts.get(contig, 0) + 1
    return bounds, counts


def _bound_problems(bounds: dict[str, list],
                    fetch: Callable[[str, int | None, int | None], Iterator[tuple]]) -> list[str]:
    """Whether an index finds each contig's first and last record (signatures start with the
    0-based position; ``fetch(contig, start, end)`` yields signatures through the index)."""
    problems = []
    for contig, (first, last) in bounds.items():
        try:
            head = next(fetch(contig, None, None), None)
            found_last = last in list(fetch(contig, last[0], last[0] + 1))
        except (OSError, ValueError) as exc:
            problems.append(f"{contig}: reading through the index fails ({exc})")
            continue
        if head != first:
            problems.append(f"{contig}: the index finds {head} first, the file starts with {first}")
        elif not found_last:
            problems.append(f"{contig}: the index does not find the last record {last}")
    return problems


def alignment_index_problems(subject: str, bam: str | Path, reference: str | Path) -> list[str]:
    """How an alignment index disagrees with its file (see :func:`checked_index`): each
    contig's first and last record, and (BAI/CSI) the record count of each contig."""

    def sig(r: pysam.AlignedSegment) -> tuple:
        return (r.reference_start, r.query_name, r.flag)

    with pysam.AlignmentFile(str(bam), reference_filename=str(reference)) as aln:
        try:
            bounds, counts = _scan_bounds((r.reference_name, sig(r))
                                          for r in aln.fetch(until_eof=True)
                                          if r.reference_id >= 0)
        except OSError as exc:
            raise VoxseqError(f"subject {subject}: alignment file {bam} is truncated or corrupt "
                              f"({exc})") from exc
        problems = _bound_problems(bounds, lambda c, s, e: (sig(r) for r in aln.fetch(c, s, e)))
        try:
            indexed = {st.contig: st.total for st in aln.get_index_statistics()}
        except (ValueError, NotImplementedError):  # a CRAM index holds no counts
            indexed = {}
    problems += [f"{c}: {n} records in the index, {counts.get(c, 0)} in the file"
                 for c, n in indexed.items() if n != counts.get(c, 0)]
    return problems


def vcf_index_problems(subject: str, vcf: str | Path) -> list[str]:
    """How a VCF's index disagrees with it (each contig's first and last record)."""

    def sig(rec: pysam.VariantRecord) -> tuple:
        return (rec.start, rec.ref, rec.alts)

    try:
        with pysam.VariantFile(str(vcf)) as vf:
            bounds, _ = _scan_bounds((rec.contig, sig(rec)) for rec in vf)
            return _bound_problems(bounds, lambda c, s, e: (sig(r) for r in vf.fetch(c, s, e)))
    except OSError as exc:
        raise VoxseqError(f"subject {subject}: VCF {vcf} cannot be read ({exc})") from exc


def contig_mismatches(found: dict[str, int], expected: dict[str, int]) -> list[str]:
    """Human-readable differences between two contig tables (name -> length)."""
    out = [f"{c}: length {n} here, {expected[c]} in the reference"
           for c, n in found.items() if c in expected and expected[c] != n]
    out += [f"{c}: not in the reference" for c in found if c not in expected]
    out += [f"{c}: missing here" for c in expected if c not in found]
    return out


def _alias(name: str, expected: dict[str, int]) -> str | None:
    """The reference's name for ``name`` under the usual aliases (``1``, ``chr1``; ``MT``,
    ``chrM``), or None."""
    special = {"MT": "chrM", "M": "chrM", "chrM": "MT", "chrMT": "MT"}
    for cand in (special.get(name), name[3:] if name.startswith("chr") else f"chr{name}"):
        if cand and cand in expected:
            return cand
    return None


def rename_hint(found: Iterable[str], expected: dict[str, int], where: str, tool: str
                ) -> list[str]:
    """The suggested renames (``1 -> chr1``) of contig names in ``found`` that the reference
    (``expected``) knows under another naming style, as one problem line (none: ``[]``)."""
    renames = {c: _alias(c, expected) for c in found if c not in expected}
    renames = {c: a for c, a in renames.items() if a is not None}
    if not renames:
        return []
    pairs = ", ".join(f"{c} -> {a}" for c, a in list(renames.items())[:10])
    return [f"contig names differ from the reference's by their naming style; rename them in "
            f"{where} (e.g. with {tool}): {pairs}"]


def bam_contigs(subject: str, aln: pysam.AlignmentFile, path: str | Path,
                reference: str | Path, expected: dict[str, int]) -> set[str]:
    """Check an alignment header's contigs against the reference; return their names.

    The header may hold a subset of the reference's contigs (same names and lengths): the
    others get zero coverage, with a warning naming them. Any other difference (a length, a
    contig the reference lacks) is refused, listing every difference, and contig names that
    are aliases of the reference's (``1`` for ``chr1``, ``MT`` for ``chrM``) get a suggested
    rename.
    """
    found = dict(zip(aln.references, aln.lengths, strict=True))
    problems = contig_mismatches(found, expected)
    fatal = [p for p in problems if not p.endswith(": missing here")]
    fmt = "CRAM" if aln.is_cram else "BAM"
    if fatal:
        hint = rename_hint(found, expected, f"the {fmt} header", "`samtools reheader`")
        raise _mismatch_error(subject, fmt, path, reference, problems + hint)
    missing = [c for c in expected if c not in found]
    if missing:
        shown = ", ".join(missing[:20]) + (f", ... ({len(missing)} in all)"
                                           if len(missing) > 20 else "")
        log.warning("subject %s: %s %s has no contig(s) %s of reference %s: they get zero "
                    "coverage", subject, fmt, path, shown, reference)
    return set(found)


def _mismatch_error(subject: str, kind: str, path: str | Path, reference: str | Path,
                    problems: list[str]) -> VoxseqError:
    shown = "; ".join(problems[:10]) + (f"; ... ({len(problems)} in all)"
                                        if len(problems) > 10 else "")
    return VoxseqError(f"subject {subject}: {kind} {path} does not match reference {reference}: "
                       f"{shown}")


def check_cram_reference(subject: str, path: str | Path, header: dict, reference: str | Path
                         ) -> int:
    """Compare a CRAM's ``@SQ M5`` checksums with the reference; return how many were checked."""
    m5 = {sq["SN"]: sq["M5"].lower() for sq in header.get("SQ", []) if "M5" in sq}
    if not m5:
        log.warning("subject %s: CRAM %s has no M5 checksums; only contig names and lengths "
                    "were checked against %s", subject, path, reference)
        return 0
    bad = []
    with pysam.FastaFile(str(reference)) as fa:
        for contig, digest in m5.items():
            seq = fa.fetch(contig).upper().encode() if contig in fa.references else b""
            if hashlib.md5(seq).hexdigest() != digest:
                bad.append(f"{contig}: sequence MD5 differs from the CRAM's M5")
    if bad:
        raise _mismatch_error(subject, "CRAM (made against another reference)", path, reference,
                              bad)
    return len(m5)


def filter_bits(exclude_flags: int) -> list[int]:
    """The flag bits of ``exclude_flags`` in the order they claim a read (the four default ones
    first)."""
    return [b for b in sorted(FLAG_NAMES, key=lambda b: (b not in (4, 256, 512, 1024), b))
            if exclude_flags & b]


def scan_counts(bits: list[int], scan: Scan) -> dict[str, int]:
    """The counts of a :class:`~voxseq.genomics.bamscan.Scan` by category name."""
    names = [FLAG_NAMES[b] for b in bits] + ["low_mapq", "passed"]
    return dict(zip(names, scan.counts.tolist(), strict=True)) | {"total": scan.records}


def scan_failure(subject: str, path: str | Path, bam: pysam.AlignmentFile,
                 exc: Exception) -> Exception:
    """The :class:`VoxseqError` for a failed :func:`~voxseq.genomics.bamscan.scan_bam`."""
    if isinstance(exc, OrderError):
        return VoxseqError(
            f"subject {subject}: alignment file {path} is not coordinate-sorted (record "
            f"{exc.record}, {exc.name} at {_locus(bam, *exc.here)}, comes after "
            f"{_locus(bam, *exc.last)}); sort it with `samtools sort` and index it again")
    if isinstance(exc, (ScanError, OSError)):
        return VoxseqError(f"subject {subject}: alignment file {path} is truncated or corrupt "
                           f"after {getattr(exc, 'records', 0)} records ({exc})")
    return exc


def count_reads(bam: pysam.AlignmentFile, min_mapq: int, exclude_flags: int,
                subject: str = "?", threads: int = 1) -> dict[str, int]:
    """Count every record by the first filter that drops it, checking the coordinate order.

    Categories, in order of precedence: each flag bit of ``exclude_flags`` (``unmapped``,
    ``secondary``, ``qc_fail``, ``duplicate``, ...), then ``low_mapq`` (MAPQ < ``min_mapq``),
    else ``passed``; plus ``total``. A BAM is read by the compiled pass of
    :mod:`voxseq.genomics.bamscan` (``threads`` inflating), a CRAM through pysam.

    Raises
    ------
    VoxseqError
        At the first record out of coordinate order, when a block cannot be decoded (a
        truncated or corrupt file), or when no read (header only) or none passes the filters.
    """
    bits = filter_bits(exclude_flags)
    name = bam.filename.decode()
    if bam.is_cram:
        counts = _count_cram(bam, min_mapq, exclude_flags, bits, subject)
    else:
        try:
            scan = scan_bam(name, np.asarray(bam.lengths, dtype=np.int64),
                            np.full(len(bam.lengths), -1, dtype=np.int64),
                            np.zeros(0, dtype=np.int64), 1, bits, min_mapq, exclude_flags,
                            threads=threads)
        except Exception as exc:
            raise scan_failure(subject, name, bam, exc) from exc
        counts = scan_counts(bits, scan)
    check_counts(subject, name, counts, min_mapq, exclude_flags)
    return counts


def check_counts(subject: str, name: str | Path, counts: dict[str, int], min_mapq: int,
                 exclude_flags: int) -> None:
    """Raise when the file holds no read, or none passes the filters."""
    if counts["total"] == 0:
        raise VoxseqError(f"subject {subject}: alignment file {name}: no reads (header only)")
    if counts["passed"] == 0:
        dropped = ", ".join(f"{k} {n}" for k, n in counts.items() if n and k != "total")
        raise VoxseqError(f"subject {subject}: alignment file {name}: none of its "
                          f"{counts['total']} reads pass the filters ({dropped}; "
                          f"genomics.exclude_flags {exclude_flags}, genomics.min_mapq {min_mapq})")


def _count_cram(bam: pysam.AlignmentFile, min_mapq: int, exclude_flags: int, bits: list[int],
                subject: str) -> dict[str, int]:
    counts = {FLAG_NAMES[b]: 0 for b in bits} | {"low_mapq": 0, "passed": 0, "total": 0}
    name, n_refs = bam.filename.decode(), len(bam.references)
    last = (-1, -1)
    try:
        for read in bam.fetch(until_eof=True):
            # unplaced reads (reference_id -1) sort after every contig
            here = (read.reference_id if read.reference_id >= 0 else n_refs,
                    read.reference_start)
            if here < last:
                raise scan_failure(subject, name, bam,
                                   OrderError(counts["total"] + 1, read.query_name, here, last))
            last = here
            counts["total"] += 1
            hit = read.flag & exclude_flags
            if hit:
                counts[FLAG_NAMES[next(b for b in bits if hit & b)]] += 1
            elif read.mapping_quality < min_mapq:
                counts["low_mapq"] += 1
            else:
                counts["passed"] += 1
    except OSError as exc:
        raise VoxseqError(f"subject {subject}: alignment file {name} is truncated or corrupt after "
                          f"{counts['total']} records ({exc})") from exc
    return counts


def _locus(bam: pysam.AlignmentFile, ref_id: int, start: int) -> str:
    name = bam.references[ref_id] if 0 <= ref_id < len(bam.references) else "*"
    return f"{name}:{start + 1}"


def _same_bases(vcf_ref: str, ref: str) -> bool:
    return len(vcf_ref) == len(ref) and all(a == b or "N" in (a, b)
                                            for a, b in zip(vcf_ref, ref, strict=True))


def check_vcf_refs(subject: str, vcf: str | Path, reference: str | Path,
                   limit: int = VCF_REF_CHECKED) -> int:
    """Compare the REF allele of the first ``limit`` records with the reference.

    A VCF called against the cohort's reference never disagrees with it (``N`` on either side
    matches anything); one that does was made against another build or reference.

    Returns
    -------
    int
        Records checked.
    """
    bad: list[str] = []
    n = 0
    try:
        with pysam.VariantFile(str(vcf)) as vf, pysam.FastaFile(str(reference)) as fa:
            known = set(fa.references)
            for rec in itertools.islice(vf, limit):
                n += 1
                if rec.contig not in known or not rec.ref:
                    continue
                ref = rec.ref.upper()
                base = fa.fetch(rec.contig, rec.pos - 1, rec.pos - 1 + len(ref)).upper()
                if not _same_bases(ref, base):
                    bad.append(f"{rec.contig}:{rec.pos} REF {ref}, reference "
                               f"{base or '(past the contig end)'}")
    except (OSError, ValueError) as exc:
        raise VoxseqError(f"subject {subject}: VCF {vcf} cannot be read ({exc})") from exc
    if bad:
        raise VoxseqError(
            f"subject {subject}: VCF {vcf} does not match reference {reference}: the REF allele "
            f"differs from the reference at {len(bad)} of {n} records checked (e.g. "
            f"{'; '.join(bad[:5])}); was it called against another reference build?")
    return n


def check_vcf(subject: str, vcf: str | Path, ref_contigs: dict[str, int],
              reference: str | Path) -> dict:
    """Check a subject's VCF: bgzipped, indexed (index up to date), contigs within the
    reference, REF alleles equal to the reference's bases (see :func:`check_vcf_refs`)."""
    vcf = Path(vcf)
    if not vcf.is_file():
        raise VoxseqError(f"subject {subject}: VCF {vcf} not found")
    with open(vcf, "rb") as fh:
        if fh.read(4) != _BGZF_MAGIC:
            raise VoxseqError(f"subject {subject}: VCF {vcf} is not bgzip-compressed (plain text "
                              f"or ordinary gzip); compress it with `bgzip` and index it with "
                              "`tabix -p vcf`")
    index = checked_index(subject, "VCF", vcf, f"`tabix -f -p vcf {vcf}`",
                          lambda: vcf_index_problems(subject, vcf))
    try:
        with pysam.VariantFile(str(vcf)) as vf:
            header = {c: vf.header.contigs[c].length for c in vf.header.contigs}
            with_records = list(vf.index.keys()) if vf.index is not None else []
    except (OSError, ValueError) as exc:
        raise VoxseqError(f"subject {subject}: VCF {vcf} cannot be read ({exc})") from exc
    problems = [f"{c}: not in the reference" for c in sorted(set(header) | set(with_records))
                if c not in ref_contigs]
    problems += [f"{c}: length {n} in the VCF header, {ref_contigs[c]} in the reference"
                 for c, n in header.items() if c in ref_contigs and n and n != ref_contigs[c]]
    if problems:
        problems += rename_hint(sorted(set(header) | set(with_records)), ref_contigs,
                                "the VCF (header and records)",
                                "`bcftools annotate --rename-chrs`, a file of old new names")
        raise _mismatch_error(subject, "VCF", vcf, reference, problems)
    n_checked = check_vcf_refs(subject, vcf, reference)
    return {"path": str(vcf), "index": str(index), "contigs_with_records": with_records,
            "ref_alleles_checked": n_checked}


@contextlib.contextmanager
def open_alignments(subject: str, bam: str | Path, reference: str | Path, threads: int = 1
                    ) -> Iterator[tuple[pysam.AlignmentFile, Path]]:
    """Open a subject's BAM/CRAM once it exists, has an up-to-date index, is complete and is
    not declared unsorted; yield it and its index, and close it.

    A file that failed to decode also fails to close: that second error is dropped, so the
    first one (a :class:`VoxseqError` naming the problem) is the one raised.
    """
    bam = Path(bam)
    if not bam.is_file():
        raise VoxseqError(f"subject {subject}: alignment file {bam} not found")
    try:  # pysam refuses a BGZF file without its EOF marker (a truncated download or copy)
        aln = pysam.AlignmentFile(str(bam), reference_filename=str(reference), threads=threads)
    except (OSError, ValueError) as exc:
        raise VoxseqError(f"subject {subject}: alignment file {bam} is not a readable BAM/CRAM "
                          f"or is truncated ({exc})") from exc
    try:
        if not (aln.is_bam or aln.is_cram):
            raise VoxseqError(f"subject {subject}: alignment file {bam} is SAM text; convert it "
                              "to an indexed BAM or CRAM")
        order = aln.header.to_dict().get("HD", {}).get("SO")
        if order in ("unsorted", "queryname"):  # before the index: it cannot be indexed
            raise VoxseqError(f"subject {subject}: alignment file {bam} is not "
                              f"coordinate-sorted (header @HD SO:{order}), so it cannot be "
                              "indexed; sort first: `samtools sort -o sorted.bam "
                              f"{bam}`, then `samtools index sorted.bam`, and give sorted.bam "
                              "in the sample sheet")
        if find_index(bam) is None:
            raise VoxseqError(f"subject {subject}: alignment file {bam} has no index; create it "
                              f"with `samtools index {bam}`")
        index = checked_index(subject, "alignment file", bam, f"`samtools index {bam}`",
                              lambda: alignment_index_problems(subject, bam, reference))
        yield aln, index
    finally:
        with contextlib.suppress(OSError):
            aln.close()


def ingest_subject(subject: str, bam: str | Path, reference: str | Path, out_json: str | Path,
                   vcf: str | Path | None = None, min_mapq: int = 0,
                   exclude_flags: int = 1796, threads: int = 1) -> dict:
    """Check one subject's alignments (and VCF) against the reference; write the report JSON.

    Parameters
    ----------
    subject
        Subject id (for messages).
    bam
        BAM or CRAM, coordinate-sorted and indexed.
    reference
        The cohort FASTA (its ``.fai`` is built atomically when missing).
    out_json
        Report: file paths, format, contigs checked, CRAM checksums checked, the VCF's checks,
        and for a CRAM the read counts by filter category (see :func:`count_reads`). A BAM's
        records are not read here: the coverage rule's single compiled pass counts them and
        checks their order (``read_counts`` None, ``read_counts_by`` "coverage").
    vcf
        Optional bgzipped, indexed VCF.
    min_mapq, exclude_flags
        The coverage filters, for the read counts.
    threads
        Threads decompressing the alignments.

    Returns
    -------
    dict
        The report.
    """
    bam = Path(bam)
    ref_contigs = read_contigs(reference)
    with open_alignments(subject, bam, reference, threads) as (aln, index):
        fmt = "CRAM" if aln.is_cram else "BAM"
        header = aln.header.to_dict()
        found = bam_contigs(subject, aln, bam, reference, ref_contigs)
        n_m5 = check_cram_reference(subject, bam, header, reference) if fmt == "CRAM" else None
        # a BAM's records are read once, by the coverage rule's compiled pass (it counts them
        # and checks their order); a CRAM's coverage goes region by region, so counted here
        counts = count_reads(aln, min_mapq, exclude_flags, subject, threads) if fmt == "CRAM" \
            else None
    # what was read, once the files are known to be there and valid (see
    # voxseq.io.digest.same_content: a touch reruns nothing, an edit reruns this subject)
    sources = {"bam": source_record(bam), "vcf": source_record(vcf) if vcf else None}
    report = {"subject": subject, "alignments": str(bam), "format": fmt, "index": str(index),
              "reference": str(reference), "n_contigs": len(found),
              "contigs_missing": [c for c in ref_contigs if c not in found],
              "cram_m5_checked": n_m5,
              "min_mapq": min_mapq, "exclude_flags": exclude_flags, "read_counts": counts,
              "read_counts_by": "ingest" if counts is not None else "coverage",
              "vcf": check_vcf(subject, vcf, ref_contigs, reference) if vcf else None,
              "sources": sources}
    write_json(out_json, report)
    if counts is None:
        log.info("subject %s: %s header, index and contigs ok (records counted and checked "
                 "by the coverage pass)", subject, fmt)
    else:
        log_counts(subject, fmt, counts)
    return report


def log_counts(subject: str, fmt: str, counts: dict[str, int]) -> None:
    """Log a subject's records by filter category."""
    log.info("subject %s: %s ok, %d records, %d pass the filters (%s)", subject, fmt,
             counts["total"], counts["passed"],
             ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("total", "passed")))
