"""Time and peak memory of writing the genomics windows (tile_genome) on a synthetic reference.

A random reference of ``--mb`` megabases (contigs of ``--contig-mb``, one N run each) and
``--tracks`` coverage stores (random, the layout voxseq.genomics.coverage writes) are made in a
temporary folder; then tile_genome runs in a fresh process whose peak RSS (VmHWM) is
reported, with the windows per second and the extrapolation to a 3.1 Gb genome.

    python benchmarks/windows_scale.py                      # 100 Mb, 3 tracks, 4096 / 1024
    python benchmarks/windows_scale.py --mb 400 --tracks 10
    python benchmarks/windows_scale.py --impl /path/to/old/windows.py   # another tile_genome

Prints ``windows=... seconds=... peak_rss_mb=... human_minutes=...``. Not a test (minutes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
HUMAN_BP = 3.1e9

_CHILD = """
import importlib.util, json, resource, sys, time
sys.path.insert(0, {repo!r})
args = json.loads(sys.argv[1])
if args["impl"]:
    spec = importlib.util.spec_from_file_location("impl", args["impl"])
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
else:
    from voxseq.genomics import windows as mod
def hwm_mb():
    # this process's own peak: ru_maxrss starts from the parent's size at the fork
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
counts = mod.tile_genome(args["fasta"], args["cov"], args["out"] + ".h5", args["out"] + ".tsv",
                         args["window"], args["stride"], 0.1, args["val"], args["test"], 384.0)
print(json.dumps({{"seconds": time.perf_counter() - t, "windows": sum(counts.values()),
                  "peak_rss_mb": hwm_mb()}}))
"""


def make_inputs(folder: Path, mb: float, contig_mb: float, tracks: int, bin_size: int,
                seed: int = 0) -> tuple[Path, dict[str, str], dict[str, int]]:
    """A random FASTA (+ .fai by pysam) and ``tracks`` coverage stores over it."""
    import pysam

    rng = np.random.default_rng(seed)
    n_contigs = max(3, round(mb / contig_mb))
    length = int(mb * 1e6 / n_contigs) // bin_size * bin_size
    lengths = {f"chr{k + 1}": length for k in range(n_contigs)}
    fasta = folder / "ref.fa"
    bases = np.frombuffer(b"ACGT", np.uint8)
    with open(fasta, "wb") as fh:
        for c, n in lengths.items():
            seq = bases[rng.integers(0, 4, n, dtype=np.uint8)]
            seq[n // 3:n // 3 + 50_000] = ord("N")
            fh.write(f">{c}\n".encode())
            lines = seq[: n // 60 * 60].reshape(-1, 60)
            fh.write(np.hstack([lines, np.full((len(lines), 1), 10, np.uint8)]).tobytes())
            if n % 60:
                fh.write(seq[n // 60 * 60:].tobytes() + b"\n")
    pysam.faidx(str(fasta))
    cov = {}
    for t in range(tracks):
        path = folder / f"s{t:03d}.h5"
        with h5py.File(path, "w") as h5:
            for k, v in {"bin_size": bin_size, "normalisation": "cpm", "library_size": 10**7,
                         "contigs": json.dumps(lengths), "min_mapq": 10, "exclude_flags": 1796,
                         "count_deletions": False}.items():
                h5.attrs[k] = v
            for c, n in lengths.items():
                h5.create_group(c).create_dataset(
                    "track", data=rng.gamma(1.0, 2.0, n // bin_size).astype(np.float32),
                    compression="gzip", compression_opts=1)
        cov[f"s{t:03d}"] = str(path)
    return fasta, cov, lengths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0, help="reference size (Mb)")
    ap.add_argument("--contig-mb", type=float, default=25.0, help="contig size (Mb)")
    ap.add_argument("--tracks", type=int, default=3)
    ap.add_argument("--window", type=int, default=4096)
    ap.add_argument("--stride", type=int, default=1024)
    ap.add_argument("--bin-size", type=int, default=32)
    ap.add_argument("--impl", default="", help="a windows.py to time instead of voxseq's")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the inputs here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        fasta, cov, lengths = make_inputs(folder, args.mb, args.contig_mb, args.tracks,
                                          args.bin_size)
        names = list(lengths)
        job = {"fasta": str(fasta), "cov": cov, "out": str(folder / "windows"),
               "window": args.window, "stride": args.stride, "val": [names[1]],
               "test": [names[2]], "impl": args.impl}
        res = subprocess.run([sys.executable, "-c", _CHILD.format(repo=str(REPO)),
                              json.dumps(job)], capture_output=True, text=True, check=True)
        out = json.loads(res.stdout.strip().splitlines()[-1])
        scale = HUMAN_BP / sum(lengths.values())
        print(f"reference {sum(lengths.values()) / 1e6:.0f} Mb in {len(lengths)} contigs, "
              f"{args.tracks} tracks, window {args.window} / stride {args.stride}")
        print(f"windows={out['windows']} seconds={out['seconds']:.1f} "
              f"peak_rss_mb={out['peak_rss_mb']:.0f} "
              f"human_minutes={out['seconds'] * scale / 60:.1f}")


if __name__ == "__main__":
    main()
