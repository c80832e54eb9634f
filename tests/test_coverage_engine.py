"""The compiled coverage pass: equal to samtools depth, bounded memory, BAMs over a subset of
the reference's contigs (library and pipeline), contig aliases refused with a rename."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pysam
import pytest
import yaml
from conftest import REPO, run_snakemake

from voxseq import VoxseqError
from voxseq.genomics.coverage import (
    add_blocks,
    bin_sums,
    compute_coverage,
    coverage_mem_mb,
    read_coverage,
)
from voxseq.genomics.ingest import ingest_subject
from voxseq.io.sheet import read_sheet

CIGARS = ["30M", "5S20M5S", "10M3D20M", "12M2I16M", "8M40N22M", "15=1X14=", "10M1P2I18M",
          "3H30M", "30M4S"]


def write_reads(path: Path, sq: dict[str, int], n: int, seed: int, reference: Path | None = None
                ) -> Path:
    """``n`` random reads (flags, MAPQs, CIGARs as above; some past a contig's end, a few
    unplaced unmapped ones at the end), sorted and indexed, as BAM or (with ``reference``)
    CRAM."""
    rng = np.random.default_rng(seed)
    header = {"HD": {"VN": "1.6", "SO": "coordinate"},
              "SQ": [{"SN": c, "LN": n} for c, n in sq.items()]}
    rows = []
    for i in range(n):
        tid = int(rng.integers(0, len(sq)))
        length = list(sq.values())[tid]
        rows.append((tid, int(rng.integers(0, length - 5)), i))
    rows.sort()
    mode = "wc" if reference is not None else "wb"
    with pysam.AlignmentFile(str(path), mode, header=header,
                             reference_filename=str(reference) if reference else None) as out:
        for tid, pos, i in [*rows, (-1, -1, n), (-1, -1, n + 1)]:
            a = pysam.AlignedSegment(out.header)
            a.query_name = f"r{i}"
            cigar = CIGARS[i % len(CIGARS)]
            a.cigarstring = cigar
            qlen = a.query_length
            a.query_sequence = "".join(rng.choice(list("ACGT"), qlen))
            a.query_qualities = pysam.qualitystring_to_array("I" * qlen)
            if tid < 0:
                a.flag, a.reference_id, a.reference_start, a.cigarstring = 4, -1, -1, None
            else:
                a.flag = int(rng.choice([0, 16, 99, 147, 1024, 256, 512, 2048, 4]))
                a.reference_id, a.reference_start = tid, pos
                a.mapping_quality = int(rng.choice([0, 5, 30, 60]))
            out.write(a)
    pysam.index(str(path))
    return path


def samtools_bins(bam: Path, min_mapq: int, flags: int, deletions: bool, bin_size: int,
                  sq: dict[str, int]) -> dict[str, np.ndarray]:
    cmd = ["samtools", "depth", "-aa", "-Q", str(min_mapq), "-G", str(flags), "-g",
           str(1792 & ~flags), str(bam)]
    if deletions:
        cmd.insert(2, "-J")
    depth = defaultdict(list)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        contig, _, value = line.split("\t")
        depth[contig].append(int(value))
    # samtools prints the positions of reads hanging past a contig's end too: not bins
    return {c: bin_sums(np.array(depth[c][:n]), bin_size) for c, n in sq.items()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("engine")
    sq = {"chr1": 3000, "chr2": 1700, "chrM": 500}
    rng = np.random.default_rng(0)
    fasta = tmp / "ref.fa"
    fasta.write_text("".join(f">{c}\n{''.join(rng.choice(list('ACGT'), n))}\n"
                             for c, n in sq.items()))
    pysam.faidx(str(fasta))
    return tmp, sq, fasta, write_reads(tmp / "s1.bam", sq, 3000, 1)


def test_add_blocks_equals_per_base_sums():
    rng = np.random.default_rng(3)
    length, size = 1000, 7
    s = rng.integers(0, length - 1, 400)
    e = np.minimum(s + rng.integers(1, 60, 400), length)
    per_base = np.zeros(length, np.int64)
    for a, b in zip(s, e, strict=True):
        per_base[a:b] += 1
    sums = np.zeros(-(-length // size), np.int64)
    add_blocks(sums, s, e, size)
    np.testing.assert_array_equal(sums, bin_sums(per_base, size))


@pytest.mark.skipif(shutil.which("samtools") is None, reason="samtools is not installed")
@pytest.mark.parametrize("min_mapq,flags,deletions,bin_size",
                         [(0, 1796, False, 32), (10, 1796, True, 50), (1, 3332, False, 1),
                          (0, 1024, True, 1000)])
def test_bam_and_cram_bins_equal_samtools_depth(world, min_mapq, flags, deletions, bin_size):
    tmp, sq, fasta, bam = world
    expected = samtools_bins(bam, min_mapq, flags, deletions, bin_size, sq)
    cram = tmp / "s1.cram"
    if not cram.exists():
        write_reads(cram, sq, 3000, 1, reference=fasta)
    results = {}
    for path in (bam, cram):
        out = tmp / f"{path.suffix[1:]}_{min_mapq}_{flags}_{deletions}_{bin_size}.h5"
        results[path.suffix] = compute_coverage("s1", path, fasta, out, bin_size, min_mapq,
                                                flags, "none", count_deletions=deletions,
                                                threads=2)
        attrs, raw = read_coverage(out, key="raw")
        for c in sq:
            np.testing.assert_array_equal(raw[c], expected[c], err_msg=f"{path.name} {c}")
    assert results[".bam"]["library_size"] == results[".cram"]["library_size"] > 0
    report = ingest_subject("s1", cram, fasta, tmp / "s1.json", min_mapq=min_mapq,
                            exclude_flags=flags)  # a CRAM's records are counted by ingest
    assert report["read_counts"] == results[".bam"]["read_counts"]


def test_records_split_between_pieces_are_stitched(world, monkeypatch):
    """One BGZF block per piece: many records span two pieces; same bins, counts, order."""
    from voxseq.genomics import bamscan

    tmp, _, fasta, bam = world
    whole = compute_coverage("s1", bam, fasta, tmp / "whole.h5", 10, threads=1)
    monkeypatch.setattr(bamscan, "PIECE_BYTES", 1)
    split = compute_coverage("s1", bam, fasta, tmp / "split.h5", 10, threads=2)
    assert split == whole
    assert whole["read_counts"]["total"] == 3002
    for key in ("raw", "track"):
        a, b = read_coverage(tmp / "whole.h5", key=key)[1], read_coverage(tmp / "split.h5",
                                                                           key=key)[1]
        for c in a:
            np.testing.assert_array_equal(a[c], b[c])


def test_corrupt_deflate_data_names_subject_and_file(world):
    """A BGZF block whose framing is intact but whose deflate data is not."""
    tmp, sq, fasta, bam = world
    bad = tmp / "corrupt.bam"
    data = bytearray(bam.read_bytes())
    second = data.index(b"\x1f\x8b\x08\x04", 100)  # the second block (the first is the header)
    data[second + 40:second + 60] = b"\xff" * 20
    bad.write_bytes(bytes(data))
    pysam.index(str(bam), str(bad) + ".bai")
    # ingest reads the header only (the records are read once, by the coverage pass)
    ingest_subject("s9", bad, fasta, tmp / "c.json")
    with pytest.raises(VoxseqError, match=rf"subject s9: alignment file {bad} is truncated "
                                          "or corrupt"):
        compute_coverage("s9", bad, fasta, tmp / "c.h5", 32)
    assert not (tmp / "c.h5").exists()


def test_long_cigar_in_cg_tag_falls_back_to_htslib(tmp_path):
    fasta = tmp_path / "ref.fa"
    fasta.write_text(">chr1\n" + "A" * 200_000 + "\n")
    bam = tmp_path / "long.bam"
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": 200_000}]}
    with pysam.AlignmentFile(str(bam), "wb", header=header) as out:
        for i, start in enumerate((10, 500)):
            a = pysam.AlignedSegment(out.header)
            a.query_name, a.flag, a.mapping_quality = f"long{i}", 0, 60
            a.reference_id, a.reference_start = 0, start
            a.cigartuples = [(0, 2), (2, 1)] * 35_000 + [(0, 2)]  # 70,001 operations
            a.query_sequence = "A" * 70_002
            out.write(a)
    pysam.index(str(bam))
    res = compute_coverage("s", bam, fasta, tmp_path / "c.h5", 100, normalisation="none",
                           count_deletions=True)
    _, raw = read_coverage(tmp_path / "c.h5", key="raw")
    per_base = np.zeros(200_000, np.int64)
    for start in (10, 500):
        per_base[start:start + 105_002] += 1
    np.testing.assert_array_equal(raw["chr1"], bin_sums(per_base, 100))
    assert res["library_size"] == 2


def test_long_contig_stays_under_1_gib(tmp_path):
    """A 249 Mb contig (all N) with a few reads: memory is the bins, not the bases."""
    length = 249_000_000
    fasta = tmp_path / "big.fa"
    with open(fasta, "w") as fh:
        fh.write(">chr1\n")
        line = "N" * 1000 + "\n"
        for _ in range(length // 1000):
            fh.write(line)
    pysam.faidx(str(fasta))
    bam = write_reads(tmp_path / "big.bam", {"chr1": length}, 200, 5)
    # the child's own peak: VmHWM belongs to its address space, while ru_maxrss survives
    # exec and can report the parent's (pytest's) peak when the child is spawned by vfork
    code = ("import re, sys; sys.path.insert(0, sys.argv[1]); "
            "from voxseq.genomics.coverage import compute_coverage; "
            "r = compute_coverage('s', sys.argv[2], sys.argv[3], sys.argv[4], 32, threads=2); "
            "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()); "
            "print(r['library_size'], hwm.group(1))")
    res = subprocess.run([sys.executable, "-c", code, str(REPO), str(bam), str(fasta),
                          str(tmp_path / "big.h5")], capture_output=True, text=True, check=True)
    library, peak_kib = map(int, res.stdout.split())
    assert library > 0
    print(f"peak {peak_kib / 1024:.0f} MiB")
    assert peak_kib < 1024 * 1024, f"peak {peak_kib / 1024:.0f} MiB"
    assert peak_kib / 1024 < coverage_mem_mb(length, 32, 2)  # the rule's request covers it


def _subset_bam(src: Path, dst: Path, keep: list[str]) -> Path:
    """``src`` with only the ``keep`` contigs in its header and reads (others' reads dropped)."""
    with pysam.AlignmentFile(str(src)) as f:
        header = f.header.to_dict()
        header["SQ"] = [sq for sq in header["SQ"] if sq["SN"] in keep]
        names = [sq["SN"] for sq in header["SQ"]]
        with pysam.AlignmentFile(str(dst), "wb", header=header) as out:
            for read in f.fetch(until_eof=True):
                if read.reference_id >= 0 and read.reference_name not in keep:
                    continue
                d = read.to_dict()
                new = pysam.AlignedSegment.from_dict(d, out.header)
                if read.reference_id >= 0:
                    new.reference_id = names.index(read.reference_name)
                out.write(new)
    pysam.index(str(dst))
    return dst


def test_subset_of_contigs_gets_zeros_and_a_warning(world, caplog):
    tmp, sq, fasta, bam = world
    sub = _subset_bam(bam, tmp / "sub.bam", ["chr1", "chrM"])
    with caplog.at_level(logging.WARNING, logger="voxseq.genomics.ingest"):
        report = ingest_subject("s1", sub, fasta, tmp / "sub.json")
        res = compute_coverage("s1", sub, fasta, tmp / "sub.h5", 32, threads=2)
    assert "has no contig(s) chr2" in caplog.text and "zero coverage" in caplog.text
    assert report["contigs_missing"] == ["chr2"]
    _, raw = read_coverage(tmp / "sub.h5", key="raw")
    _, full = read_coverage(tmp / "bam_0_1796_False_32.h5", key="raw") \
        if (tmp / "bam_0_1796_False_32.h5").exists() else (None, None)
    assert not raw["chr2"].any() and len(raw["chr2"]) == -(-sq["chr2"] // 32)
    if full is not None:
        np.testing.assert_array_equal(raw["chr1"], full["chr1"])
    assert res["totals"]["chr1"] > 0


@pytest.mark.parametrize("names,rename", [({"1": 3000, "2": 1700, "MT": 500}, "1 -> chr1"),
                                          ({"chr1": 3000, "MT": 500}, "MT -> chrM")])
def test_contig_aliases_are_refused_with_a_rename(world, names, rename):
    tmp, _, fasta, _ = world
    bam = write_reads(tmp / "alias.bam", names, 50, 2)
    for run in (lambda: ingest_subject("s1", bam, fasta, tmp / "a.json"),
                lambda: compute_coverage("s1", bam, fasta, tmp / "a.h5", 32)):
        with pytest.raises(VoxseqError) as err:
            run()
        msg = str(err.value)
        assert "subject s1" in msg and str(bam) in msg and "not in the reference" in msg
        assert rename in msg and "samtools reheader" in msg


def test_cohort_with_subset_bams_runs_end_to_end(tmp_path):
    """A user cohort whose BAMs lack a contig of the reference: ingest, coverage and the
    windows of every contig are made; the subject's missing contig has zero coverage."""
    from voxseq.demo.cohort import make_demo_cohort

    subjects = ["sb01", "sb02", "sb03"]
    sheet = make_demo_cohort(tmp_path / "cohort", subjects, seed=3, imaging=False,
                             genomics=True, small=True)
    rows = read_sheet(sheet)
    bam = Path(rows[0]["bam"])
    _subset_bam(bam, bam.with_name("subset.bam"), ["chr1", "chr3", "chr4"])
    for suffix in ("", ".bai"):
        Path(f"{bam.with_name('subset.bam')}{suffix}").replace(f"{bam}{suffix}")
    cfg = yaml.safe_load((REPO / "tests/config/tiny_genomics.yaml").read_text())
    cfg["demo"]["enabled"] = False
    cfg["samples"] = str(sheet)
    cfg["genomics"]["reference"] = str(next((tmp_path / "cohort").rglob("reference.fa")))
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    res_dir = f"results/{cfg['cohort']}/genomics"
    targets = [f"{res_dir}/coverage/{s}.h5" for s in subjects] + [f"{res_dir}/tile/windows.h5"]
    work = tmp_path / "run"
    run_snakemake(work, "--configfile", str(tmp_path / "cfg.yaml"), "--cores", "2", *targets,
                  timeout=300)
    _, raw = read_coverage(work / res_dir / "coverage" / "sb01.h5", key="raw")
    assert not raw["chr2"].any() and raw["chr1"].any()
    _, other = read_coverage(work / res_dir / "coverage" / "sb02.h5", key="raw")
    assert other["chr2"].any()
    log = (work / f"results/{cfg['cohort']}/logs/genomics/coverage/sb01.log").read_text()
    assert "has no contig(s) chr2" in log
    assert (work / res_dir / "tile" / "windows.h5").is_file()
