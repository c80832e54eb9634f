"""Genomics ingest: FASTA index built atomically, and clear errors for bad inputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pysam
import pytest

from voxseq import VoxseqError
from voxseq.genomics.coverage import compute_coverage, read_coverage
from voxseq.genomics.ingest import ingest_subject
from voxseq.genomics.reference import read_contigs


def write_fasta(path: Path, contigs: dict[str, str]) -> Path:
    path.write_text("".join(f">{c}\n{s}\n" for c, s in contigs.items()))
    return path


def random_contigs(seed: int, lengths: dict[str, int]) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    return {c: "".join(rng.choice(list("ACGT"), n)) for c, n in lengths.items()}


def write_alignments(path: Path, contigs: dict[str, str], sq: dict[str, int] | None = None,
                     reference: Path | None = None, index: bool = True) -> Path:
    """A few reads on the first contig (flags: pass, duplicate, low MAPQ) as BAM or CRAM."""
    sq = sq or {c: len(s) for c, s in contigs.items()}
    header = {"HD": {"VN": "1.6", "SO": "coordinate"},
              "SQ": [{"SN": c, "LN": n} for c, n in sq.items()]}
    if reference is not None:  # CRAM: record the reference's checksums, as samtools does
        for entry in header["SQ"]:
            entry["M5"] = hashlib.md5(contigs[entry["SN"]].encode()).hexdigest()
    mode = "wc" if path.suffix == ".cram" else "wb"
    first = next(iter(contigs))
    with pysam.AlignmentFile(str(path), mode, header=header,
                             reference_filename=str(reference) if reference else None) as out:
        for i, (flag, mapq) in enumerate([(0, 60), (1024, 60), (16, 3), (0, 40)]):
            a = pysam.AlignedSegment(out.header)
            a.query_name, a.flag, a.mapping_quality = f"r{i}", flag, mapq
            a.reference_id, a.reference_start = 0, 100 + 10 * i
            a.cigarstring = "30M"
            a.query_sequence = contigs[first][100 + 10 * i:130 + 10 * i]
            a.query_qualities = pysam.qualitystring_to_array("I" * 30)
            out.write(a)
    if index:
        pysam.index(str(path))
    return path


def write_vcf(path: Path, records: list[tuple[str, int, str, str]], contigs: dict[str, int],
              index: bool = True) -> Path:
    head = ["##fileformat=VCFv4.2", *[f"##contig=<ID={c},length={n}>" for c, n in contigs.items()],
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    body = [f"{c}\t{p}\t.\t{r}\t{a}\t.\tPASS\t." for c, p, r, a in records]
    plain = path.with_suffix("")
    plain.write_text("\n".join(head + body) + "\n")
    pysam.tabix_compress(str(plain), str(path), force=True)
    if index:
        pysam.tabix_index(str(path), preset="vcf", force=True)
    return path


@pytest.fixture()
def world(tmp_path):
    contigs = random_contigs(1, {"chr1": 2000, "chr2": 1500})
    fasta = write_fasta(tmp_path / "ref.fa", contigs)
    return tmp_path, contigs, fasta


def test_fai_built_atomically_when_missing(world):
    tmp, contigs, fasta = world
    assert not Path(f"{fasta}.fai").exists()
    assert read_contigs(fasta) == {"chr1": 2000, "chr2": 1500}
    assert Path(f"{fasta}.fai").is_file()
    assert not [p for p in tmp.iterdir() if p.name.startswith(".tmp-")]


def test_good_bam_counts_reads_by_filter_in_the_coverage_pass(world):
    """Ingest reads a BAM's header, index and contigs only; the coverage pass counts."""
    tmp, contigs, fasta = world
    bam = write_alignments(tmp / "s1.bam", contigs)
    report = ingest_subject("s1", bam, fasta, tmp / "s1.json", min_mapq=10)
    assert report["read_counts"] is None and report["read_counts_by"] == "coverage"
    assert (tmp / "s1.json").is_file()
    expected = {"unmapped": 0, "secondary": 0, "qc_fail": 0, "duplicate": 1, "low_mapq": 1,
                "passed": 2, "total": 4}
    cov = compute_coverage("s1", bam, fasta, tmp / "s1.h5", 100, min_mapq=10)
    assert cov["read_counts"] == expected
    assert read_coverage(tmp / "s1.h5")[0]["read_counts"] == expected


def test_missing_index(world):
    tmp, contigs, fasta = world
    bam = write_alignments(tmp / "s1.bam", contigs, index=False)
    with pytest.raises(VoxseqError, match=r"subject s1: alignment file .*s1.bam has no index"):
        ingest_subject("s1", bam, fasta, tmp / "s1.json")


def test_missing_bam(world):
    tmp, _, fasta = world
    with pytest.raises(VoxseqError, match=r"subject s1: alignment file .*nope.bam not found"):
        ingest_subject("s1", tmp / "nope.bam", fasta, tmp / "s1.json")


def test_header_mismatches_are_all_listed(world):
    tmp, contigs, fasta = world
    bam = write_alignments(tmp / "s1.bam", contigs, sq={"chr1": 2100, "chrX": 500})
    with pytest.raises(VoxseqError) as err:
        ingest_subject("s1", bam, fasta, tmp / "s1.json")
    msg = str(err.value)
    assert "subject s1: BAM" in msg and "does not match reference" in msg
    assert "chr1: length 2100 here, 2000 in the reference" in msg
    assert "chrX: not in the reference" in msg
    assert "chr2: missing here" in msg


def test_cram_against_another_reference(world):
    tmp, contigs, fasta = world
    other = random_contigs(2, {"chr1": 2000, "chr2": 1500})  # same names and lengths
    other_fa = write_fasta(tmp / "other.fa", other)
    cram = write_alignments(tmp / "s1.cram", other, reference=other_fa)
    ingest_subject("s1", cram, other_fa, tmp / "ok.json")  # fine with its own reference
    with pytest.raises(VoxseqError, match=r"CRAM \(made against another reference\).*"
                                          r"chr1: sequence MD5 differs"):
        ingest_subject("s1", cram, fasta, tmp / "s1.json")


def test_vcf_contig_absent_from_reference(world):
    tmp, contigs, fasta = world
    bam = write_alignments(tmp / "s1.bam", contigs)
    vcf = write_vcf(tmp / "s1.vcf.gz", [("chr1", 10, "A", "C"), ("chr7", 5, "G", "T")],
                    {"chr1": 2000, "chr7": 900})
    with pytest.raises(VoxseqError, match=r"subject s1: VCF .*s1.vcf.gz does not match reference"
                                          r".*chr7: not in the reference"):
        ingest_subject("s1", bam, fasta, tmp / "s1.json", vcf=vcf)


def test_vcf_without_index(world):
    tmp, contigs, fasta = world
    bam = write_alignments(tmp / "s1.bam", contigs)
    vcf = write_vcf(tmp / "s1.vcf.gz", [("chr1", 10, "A", "C")], {"chr1": 2000}, index=False)
    with pytest.raises(VoxseqError, match=r"VCF .*s1.vcf.gz has no index"):
        ingest_subject("s1", bam, fasta, tmp / "s1.json", vcf=vcf)


def test_missing_reference(tmp_path):
    with pytest.raises(VoxseqError, match="reference FASTA .*missing.fa: file not found"):
        read_contigs(tmp_path / "missing.fa")
