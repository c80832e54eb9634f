"""Per-subject input checks for the genomics track, and read counts by filter category.

Checks, each failing with a :class:`voxseq.VoxseqError` naming the subject, the file and the
problem: the BAM/CRAM and its index exist; its header contigs (names and lengths) equal the
reference's, listing every mismatch; a CRAM's ``@SQ M5`` checksums match the cohort reference
(a CRAM made against another reference cannot be decoded correctly); the VCF is bgzipped and
indexed and names no contig absent from the reference.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pysam

from voxseq import VoxseqError
from voxseq.genomics.reference import read_contigs
from voxseq.io.atomic import write_json

log = logging.getLogger(__name__)

FLAG_NAMES = {4: "unmapped", 256: "secondary", 512: "qc_fail", 1024: "duplicate",
              2048: "supplementary", 1: "paired", 2: "proper_pair", 8: "mate_unmapped",
              16: "reverse", 32: "mate_reverse", 64: "read1", 128: "read2"}
_INDEX_SUFFIXES = {".bam": (".bai", ".csi"), ".cram": (".crai",), ".gz": (".tbi", ".csi"),
                   ".bcf": (".csi",)}


def find_index(path: str | Path) -> Path | None:
    """The index beside ``path`` (``x.bam.bai``, ``x.bai``, ``.csi``, ``.crai``, ``.tbi``)."""
    path = Path(path)
    for suffix in _INDEX_SUFFIXES.get(path.suffix, (".bai", ".csi", ".crai", ".tbi")):
        for cand in (Path(f"{path}{suffix}"), path.with_suffix(suffix)):
            if cand.is_file():
                return cand
    return None


def contig_mismatches(found: dict[str, int], expected: dict[str, int]) -> list[str]:
    """Human-readable differences between two contig tables (name -> length)."""
    out = [f"{c}: length {n} here, {expected[c]} in the reference"
           for c, n in found.items() if c in expected and expected[c] != n]
    out += [f"{c}: not in the reference" for c in found if c not in expected]
    out += [f"{c}: missing here" for c in expected if c not in found]
    return out


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


def count_reads(bam: pysam.AlignmentFile, min_mapq: int, exclude_flags: int) -> dict[str, int]:
    """Count every record by the first filter that drops it.

    Categories, in order of precedence: each flag bit of ``exclude_flags`` (``unmapped``,
    ``secondary``, ``qc_fail``, ``duplicate``, ...), then ``low_mapq`` (MAPQ < ``min_mapq``),
    else ``passed``; plus ``total``.
    """
    bits = [b for b in sorted(FLAG_NAMES, key=lambda b: (b not in (4, 256, 512, 1024), b))
            if exclude_flags & b]
    counts = {FLAG_NAMES[b]: 0 for b in bits} | {"low_mapq": 0, "passed": 0, "total": 0}
    for read in bam.fetch(until_eof=True):
        counts["total"] += 1
        hit = read.flag & exclude_flags
        if hit:
            counts[FLAG_NAMES[next(b for b in bits if hit & b)]] += 1
        elif read.mapping_quality < min_mapq:
            counts["low_mapq"] += 1
        else:
            counts["passed"] += 1
    return counts


def check_vcf(subject: str, vcf: str | Path, ref_contigs: dict[str, int],
              reference: str | Path) -> dict:
    """Check a subject's VCF: readable, bgzipped + indexed, contigs within the reference."""
    vcf = Path(vcf)
    if not vcf.is_file():
        raise VoxseqError(f"subject {subject}: VCF {vcf} not found")
    index = find_index(vcf)
    if index is None:
        raise VoxseqError(f"subject {subject}: VCF {vcf} has no index (.tbi or .csi); bgzip it "
                          f"and run `tabix -p vcf {vcf}`")
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
        raise _mismatch_error(subject, "VCF", vcf, reference, problems)
    return {"path": str(vcf), "index": str(index), "contigs_with_records": with_records}


def ingest_subject(subject: str, bam: str | Path, reference: str | Path, out_json: str | Path,
                   vcf: str | Path | None = None, min_mapq: int = 0,
                   exclude_flags: int = 1796) -> dict:
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
        Report: file paths, format, contigs checked, CRAM checksums checked, read counts by
        filter category (see :func:`count_reads`) and the VCF's checks.
    vcf
        Optional bgzipped, indexed VCF.
    min_mapq, exclude_flags
        The coverage filters, for the read counts.

    Returns
    -------
    dict
        The report.
    """
    bam = Path(bam)
    ref_contigs = read_contigs(reference)
    if not bam.is_file():
        raise VoxseqError(f"subject {subject}: alignment file {bam} not found")
    index = find_index(bam)
    if index is None:
        raise VoxseqError(f"subject {subject}: alignment file {bam} has no index (.bai, .csi or "
                          f".crai); create it with `samtools index {bam}`")
    try:
        aln = pysam.AlignmentFile(str(bam), reference_filename=str(reference))
    except (OSError, ValueError) as exc:
        raise VoxseqError(f"subject {subject}: {bam} is not a readable BAM/CRAM ({exc})") from exc
    with aln:
        fmt = "CRAM" if aln.is_cram else "BAM" if aln.is_bam else "SAM"
        if fmt == "SAM":
            raise VoxseqError(f"subject {subject}: {bam} is SAM text; convert it to an indexed "
                              "BAM or CRAM")
        header = aln.header.to_dict()
        found = dict(zip(aln.references, aln.lengths, strict=True))
        problems = contig_mismatches(found, ref_contigs)
        if problems:
            raise _mismatch_error(subject, fmt, bam, reference, problems)
        n_m5 = check_cram_reference(subject, bam, header, reference) if fmt == "CRAM" else None
        counts = count_reads(aln, min_mapq, exclude_flags)
    report = {"subject": subject, "alignments": str(bam), "format": fmt, "index": str(index),
              "reference": str(reference), "n_contigs": len(found), "cram_m5_checked": n_m5,
              "min_mapq": min_mapq, "exclude_flags": exclude_flags, "read_counts": counts,
              "vcf": check_vcf(subject, vcf, ref_contigs, reference) if vcf else None}
    write_json(out_json, report)
    log.info("subject %s: %s ok, %d records, %d pass the filters (%s)", subject, fmt,
             counts["total"], counts["passed"],
             ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("total", "passed")))
    return report
