"""Training throughput and GPU busy time, for each training task, on 1 GPU and on all of them.

    python benchmarks/gpu_training.py                  # on a GPU node
    python benchmarks/gpu_training.py --iters 100 --workdir /scratch/bench
    python benchmarks/gpu_training.py --allow-cpu      # exercise the machinery on a CPU machine

It prepares the demo cohort's training inputs with the workflow itself (`snakemake --until
imaging_tile genomics_tile`, default config), then, for the imaging segmentation UNet and the
genomics sequence model, trains 2 epochs of ``--iters`` iterations through the real data path
(zarr patches / HDF5 windows, :func:`voxseq.fit.fit`, data-parallel through
:func:`voxseq.distributed.launch` for more than one GPU) with a fixed batch per GPU, and prints
samples/s and the fraction of wall time the GPUs were busy (``nvidia-smi`` utilization sampled
every 100 ms: the share of time a kernel was running, averaged over the GPUs in use). Epoch
times include each epoch's validation (rank 0).

Without CUDA it prints one line saying so and exits 0 (``--allow-cpu`` runs on the CPU instead,
busy fraction n/a). The last line holds every figure as ``key=value``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import yaml  # noqa: E402

from voxseq.distributed import launch  # noqa: E402
from voxseq.genomics.train import train_genomics  # noqa: E402
from voxseq.imaging.train import train_imaging  # noqa: E402
from voxseq.io.atomic import read_tsv  # noqa: E402

PER_GPU_BATCH = {"imaging": 2, "genomics": 16}


class BusySampler:
    """Mean ``utilization.gpu`` of some GPUs, sampled by ``nvidia-smi -lms 100``."""

    def __init__(self, gpus: list[int]):
        self.gpus, self.samples = gpus, []
        self.proc = None
        if shutil.which("nvidia-smi") and gpus:
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=index,utilization.gpu", "--format=csv,noheader,nounits",
                 "-lms", "100"], stdout=subprocess.PIPE, text=True)
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            idx, _, util = line.partition(",")
            if idx.strip().isdigit() and int(idx) in self.gpus:
                self.samples.append(float(util))

    def stop(self) -> float | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        self.proc.wait()
        return sum(self.samples) / len(self.samples) / 100 if self.samples else None


def prepare(work: Path, cores: int) -> Path:
    """The demo cohort's normalised stores, tiles and windows (the workflow's own rules)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
           str(work), "--cores", str(cores), "--config", "terminal=snakemake",
           "--until", "imaging_tile", "genomics_tile", "cohort_sheet"]
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return work / "results/demo"


def config() -> dict:
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def run_task(track: str, res: Path, out: Path, nproc: int, iters: int, device: str) -> dict:
    cfg = config()
    batch = PER_GPU_BATCH[track] * nproc
    train = {**cfg[track]["train"], "epochs": 2, "iters_per_epoch": iters, "batch_size": batch,
             "device": device, "gpus": nproc}
    if track == "imaging":
        sheet = read_tsv(res / "sheet.tsv")
        fit = [r["subject"] for r in sheet if r["split"] in ("train", "val")]
        icfg = {**cfg["imaging"], "train": train}
        args = (str(res / "sheet.tsv"), {s: str(res / f"imaging/normalise/{s}.zarr") for s in fit},
                {s: str(res / f"imaging/tile/{s}.tsv") for s in fit},
                str(res / "imaging/normalise/intensity_stats.json"), icfg, cfg["seed"],
                str(out / "bundle"), str(out / "metrics.tsv"), str(out / "ck"), {"cohort": "bench"})
        fn = train_imaging
    else:
        args = (str(res / "genomics/tile/windows.h5"), str(out / "bundle"),
                str(out / "metrics.tsv"), str(out / "ck"), cfg["genomics"]["model"], train,
                cfg["seed"])
        fn = train_genomics
    sampler = BusySampler(list(range(nproc)) if device == "cuda" else [])
    t0 = time.perf_counter()
    launch(fn, *args, nproc=nproc, threads=max(torch.get_num_threads(), nproc))
    wall = time.perf_counter() - t0
    busy = sampler.stop()
    seconds = sum(float(r["seconds"]) for r in read_tsv(out / "metrics.tsv"))
    return {"samples_per_s": 2 * iters * batch / seconds, "busy": busy, "wall": wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=50, help="iterations per epoch (2 epochs)")
    ap.add_argument("--workdir", type=Path, help="keep the prepared inputs here")
    ap.add_argument("--tracks", nargs="+", default=["imaging", "genomics"])
    ap.add_argument("--allow-cpu", action="store_true", help="run on the CPU when there is no CUDA")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print("gpu_training: no CUDA device on this machine (torch.cuda.is_available() is "
              "False); run it on a GPU node: python benchmarks/gpu_training.py")
        return 0
    device = "cuda" if cuda else "cpu"
    counts = sorted({1, torch.cuda.device_count()}) if cuda else [1]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="voxseq-gpu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    res = prepare(work, max((torch.get_num_threads()), 2))
    print(f"{'task':10} {'gpus':>4} {'samples/s':>10} {'gpu busy':>9} {'wall s':>8}")
    figures = []
    for track in args.tracks:
        for n in counts:
            r = run_task(track, res, work / f"run_{track}_{n}", n, args.iters, device)
            busy = "n/a" if r["busy"] is None else f"{100 * r['busy']:.0f} %"
            print(f"{track:10} {n:>4} {r['samples_per_s']:>10.1f} {busy:>9} {r['wall']:>8.1f}")
            figures.append(f"{track}_samples_per_s_{n}gpu={r['samples_per_s']:.1f}")
            if r["busy"] is not None:
                figures.append(f"{track}_gpu_busy_{n}gpu={r['busy']:.2f}")
    print(" ".join(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
