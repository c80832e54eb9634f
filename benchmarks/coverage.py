"""Coverage engine vs mosdepth and the BGZF decode floor on a large synthetic BAM.

Builds (once, cached in ``--workdir``) a coordinate-sorted, indexed BAM of ``--reads`` 100 bp
reads over an all-N reference (mixed flags, MAPQs and CIGARs with soft clips, insertions,
deletions and splices; a few unplaced unmapped reads at the end), then times, interleaved and
``--repeats`` times each at ``--threads`` threads:

- voxseq: :func:`voxseq.genomics.coverage.compute_coverage` in a fresh interpreter (its peak
  resident memory is taken from the child's rusage);
- ``mosdepth -n --by <bin>`` exact (default) and fast (``-x``) modes;
- ``samtools view -c`` (decompressing and decoding every record: the floor).

It then checks that voxseq's raw bins equal ``samtools depth -aa -Q <mapq> -G <flags>`` summed
per bin. mosdepth's bins differ slightly by design (it counts overlapping mates once, and in
fast mode counts deletions as covered), so they are not compared. A peer tool that is not
installed is skipped with a message. The last line reads
``coverage_vs_mosdepth_exact=<ratio> coverage_vs_decode=<ratio> bins_equal=<true|false>``.

    python benchmarks/coverage.py --reads 20000000 --workdir /tmp/covbench
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

READ_LEN = 100
CIGARS = ["100M"] * 12 + ["5S95M", "40M3D60M", "30M2I68M", "50M500N50M", "90M10S", "48M1D52M"]
# flags: mostly passing pairs; some duplicates, secondary, QC-fail, supplementary
FLAGS = [99] * 20 + [147] * 20 + [0] * 8 + [16] * 8 + [1123, 1171, 355, 611, 2147]


def build_bam(workdir: Path, n_reads: int, genome_mb: int, seed: int = 1) -> tuple[Path, Path]:
    """A sorted, indexed BAM of ``n_reads`` reads and its all-N reference (cached)."""
    bam, fasta = workdir / f"reads_{n_reads}.bam", workdir / f"ref_{genome_mb}mb.fa"
    contigs = {f"chr{i + 1}": genome_mb * 1_000_000 // 4 for i in range(4)}
    if not fasta.is_file():
        with open(fasta, "w") as fh:
            for name, length in contigs.items():
                fh.write(f">{name}\n")
                line = "N" * 100 + "\n"
                for _ in range(length // 100):
                    fh.write(line)
        subprocess.run(["samtools", "faidx", str(fasta)], check=True)
    if bam.is_file() and Path(f"{bam}.bai").is_file():
        return bam, fasta
    print(f"building {bam} ({n_reads:,} reads over {genome_mb} Mb) ...", flush=True)
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), READ_LEN)) for _ in range(4096)]
    quals = ["".join(chr(33 + q) for q in rng.integers(2, 41, READ_LEN)) for _ in range(1024)]
    header = "@HD\tVN:1.6\tSO:coordinate\n" + "".join(
        f"@SQ\tSN:{c}\tLN:{n}\n" for c, n in contigs.items())
    tmp = bam.with_suffix(".tmp.bam")
    proc = subprocess.Popen(["samtools", "view", "-b", "-@2", "-o", str(tmp), "-"],
                            stdin=subprocess.PIPE)
    proc.stdin.write(header.encode())
    per_contig = n_reads // len(contigs)
    for c, length in contigs.items():
        for c0 in range(0, per_contig, 1_000_000):
            n = min(1_000_000, per_contig - c0)
            lo, hi = length * c0 // per_contig, length * (c0 + n) // per_contig
            pos = np.sort(rng.integers(lo, max(hi - 1200, lo + 1), n)) + 1
            cig = rng.integers(0, len(CIGARS), n)
            flg = rng.integers(0, len(FLAGS), n)
            mq = np.where(rng.random(n) < 0.05, rng.integers(0, 10, n), 60)
            sq, ql = rng.integers(0, len(seqs), n), rng.integers(0, len(quals), n)
            lines = [f"r{c}_{c0 + i}\t{FLAGS[f]}\t{c}\t{p}\t{m}\t{CIGARS[g]}\t*\t0\t0\t"
                     f"{seqs[s]}\t{quals[q]}\n"
                     for i, (p, f, m, g, s, q) in enumerate(zip(pos.tolist(), flg.tolist(),
                                                               mq.tolist(), cig.tolist(),
                                                               sq.tolist(), ql.tolist(),
                                                               strict=True))]
            proc.stdin.write("".join(lines).encode())
    proc.stdin.write("".join(f"u{i}\t4\t*\t0\t0\t*\t*\t0\t0\t{seqs[i]}\t{quals[i]}\n"
                             for i in range(1000)).encode())
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("samtools view failed while building the BAM")
    subprocess.run(["samtools", "index", "-@2", str(tmp)], check=True)
    os.replace(f"{tmp}.bai", f"{bam}.bai")
    os.replace(tmp, bam)
    os.utime(f"{bam}.bai")
    return bam, fasta


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak resident MiB of a command.

    The peak comes from GNU time (``/usr/bin/time -f %M``) when installed: a child's
    ru_maxrss as seen by ``wait4`` starts from this process's resident size at the fork, so
    it can report this script's own memory instead of the command's.
    """
    gnu_time = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time")
                                        else None)
    with tempfile.NamedTemporaryFile("r") as peak:
        full = [gnu_time, "-f", "%M", "-o", peak.name, *cmd] if gnu_time else cmd
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}")
        text = peak.read().strip().splitlines()
    kib = int(text[-1]) if gnu_time and text and text[-1].isdigit() else usage.ru_maxrss
    return wall, kib // 1024


def voxseq_cmd(bam: Path, fasta: Path, out: Path, args: argparse.Namespace) -> list[str]:
    code = ("import logging, sys; logging.basicConfig(level=logging.WARNING); "
            f"sys.path.insert(0, {str(ROOT)!r}); "
            "from voxseq.genomics.coverage import compute_coverage; "
            f"compute_coverage('bench', {str(bam)!r}, {str(fasta)!r}, {str(out)!r}, "
            f"{args.bin_size}, min_mapq={args.min_mapq}, exclude_flags={args.exclude_flags}, "
            f"threads={args.threads})")
    return [sys.executable, "-c", code]


def samtools_bins(bam: Path, fasta: Path, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """``samtools depth -aa`` summed per bin, contig by contig (every position is printed)."""
    from voxseq.genomics.coverage import bin_sums
    from voxseq.genomics.reference import read_contigs

    out = {}
    for contig, length in read_contigs(fasta).items():
        cmd = ["samtools", "depth", "-aa", "-r", contig, "-Q", str(args.min_mapq), "-G",
               str(args.exclude_flags), "-g", str(1792 & ~args.exclude_flags), str(bam)]
        depth = subprocess.run(cmd, capture_output=True, check=True).stdout
        values = np.array(depth.split()[2::3], dtype=np.int64)
        if len(values) != length:
            raise SystemExit(f"samtools depth printed {len(values)} positions of {contig}")
        out[contig] = bin_sums(values, args.bin_size)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=20_000_000)
    parser.add_argument("--genome-mb", type=int, default=100)
    parser.add_argument("--bam", type=Path, help="use this indexed BAM (and --reference)")
    parser.add_argument("--reference", type=Path)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/voxseq_coverage_bench"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bin-size", type=int, default=32)
    parser.add_argument("--min-mapq", type=int, default=10)
    parser.add_argument("--exclude-flags", type=int, default=1796)
    parser.add_argument("--no-check", action="store_true", help="skip the samtools depth check")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.bam:
        bam, fasta = args.bam, args.reference
    else:
        bam, fasta = build_bam(args.workdir, args.reads, args.genome_mb)
    out = args.workdir / "voxseq.h5"
    t = str(args.threads)
    runs = {"voxseq": voxseq_cmd(bam, fasta, out, args)}
    if shutil.which("mosdepth"):
        prefix = str(args.workdir / "md")
        base = ["mosdepth", "-n", "-t", t, "--by", str(args.bin_size), "-Q", str(args.min_mapq),
                "-F", str(args.exclude_flags)]
        runs["mosdepth_exact"] = [*base, prefix, str(bam)]
        runs["mosdepth_fast"] = [*base, "-x", prefix, str(bam)]
    else:
        print("mosdepth: not installed, skipped (apt-get install -y mosdepth libhts-dev)")
    if shutil.which("samtools"):
        runs["decode"] = ["samtools", "view", "-c", "-@", t, str(bam)]
    else:
        print("samtools: not installed, skipped (apt-get install -y samtools)")
    walls: dict[str, list[float]] = {k: [] for k in runs}
    peak = 0
    for r in range(args.repeats):
        for name, cmd in runs.items():
            wall, rss = timed(cmd)
            walls[name].append(wall)
            if name == "voxseq":
                peak = max(peak, rss)
            print(f"repeat {r + 1}: {name:15s} {wall:7.2f} s  peak {rss} MiB", flush=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    print(f"\nmedian wall seconds over {args.repeats} repeats at {t} threads ({bam}):")
    for name, value in med.items():
        print(f"  {name:15s} {value:7.2f} s  ({value / med['voxseq']:.2f}x voxseq)")
    print(f"voxseq peak memory: {peak} MiB")
    equal = None
    if not args.no_check and shutil.which("samtools"):
        from voxseq.genomics.coverage import read_coverage

        _, raw = read_coverage(out, key="raw")
        expected = samtools_bins(bam, fasta, args)
        equal = set(raw) == set(expected) and all(np.array_equal(raw[c], expected[c])
                                                  for c in expected)
        print(f"voxseq bins equal samtools depth summed per bin: {equal}")

    def ratio(peer: str) -> str:
        return f"{med['voxseq'] / med[peer]:.3f}" if peer in med else "nan"

    print(f"coverage_vs_mosdepth_exact={ratio('mosdepth_exact')} "
          f"coverage_vs_decode={ratio('decode')} "
          f"bins_equal={'true' if equal else 'false' if equal is not None else 'unchecked'}")


if __name__ == "__main__":
    main()
