"""Data-parallel training (DDP, 2 processes, gloo on the CPU) for both tracks: the same loss
curve as one process with the same global batch, disjoint shards, only rank 0 writes, and a
killed run resumes.

Tolerances: the imaging UNet uses instance norm and a per-sample Dice + voxel-mean cross-entropy,
so a 2-rank run is the 1-rank run up to float summation order (relative 1e-3 on the per-epoch
training loss). The sequence model uses batch norm, which DDP keeps per rank (statistics of each
rank's half batch; rank 0's running statistics are broadcast), so its curve matches to a
relative 2 % (0.4 % measured over 3 epochs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, TINY_RUN, copy_run, run_snakemake
from ddp_worker import audited

from voxseq.demo.genomics import generate_genomics
from voxseq.distributed import launch
from voxseq.genomics.coverage import compute_coverage
from voxseq.genomics.train import GenomicsTask, train_genomics
from voxseq.genomics.windows import tile_genome
from voxseq.imaging.patches import read_centres
from voxseq.imaging.train import SegmentationTask, train_imaging
from voxseq.io.atomic import read_tsv

GTRAIN = {"epochs": 3, "iters_per_epoch": 3, "batch_size": 4, "device": "cpu", "lr": 0.002,
          "num_workers": 0}
GMODEL = {"channels": 8, "dilated_layers": 2}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture(scope="module")
def windows(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp_windows")
    subjects = ["g001", "g002", "g003"]
    files = generate_genomics(root, subjects, 5, small=True)
    cov = {s: root / "cov" / f"{s}.h5" for s in subjects}
    for s in subjects:
        compute_coverage(s, root / files[s]["bam"], root / "reference.fa", cov[s], 32, min_mapq=10)
    tile_genome(root / "reference.fa", cov, root / "windows.h5", root / "windows.tsv", 1024, 512,
                0.1, ["chr3"], ["chr4"], 300.0)
    return root / "windows.h5"


@pytest.fixture(scope="module")
def imaging_inputs(tiny_run) -> dict:
    res = tiny_run / "results/tiny"
    sheet = read_tsv(res / "sheet.tsv")
    fit = [r["subject"] for r in sheet if r["split"] in ("train", "val")]
    cfg = _merge(yaml.safe_load((REPO / "config/config.yaml").read_text())["imaging"],
                 yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())["imaging"])
    cfg["train"].update({"epochs": 2, "iters_per_epoch": 2, "batch_size": 2, "device": "cpu",
                         "num_workers": 0})
    return {
        "sheet": str(res / "sheet.tsv"),
        "stores": {s: str(res / f"imaging/normalise/{s}.zarr") for s in fit},
        "tiles": {s: str(res / f"imaging/tile/{s}.tsv") for s in fit},
        "stats": str(res / "imaging/normalise/intensity_stats.json"),
        "cfg": cfg,
    }


def _imaging_args(inp: dict, out: Path) -> tuple:
    return (inp["sheet"], inp["stores"], inp["tiles"], inp["stats"], inp["cfg"], 7,
            str(out / "bundle"), str(out / "metrics.tsv"), str(out / "ck"), {"cohort": "t"})


def _genomics_args(windows: Path, out: Path) -> tuple:
    return (str(windows), str(out / "bundle"), str(out / "metrics.tsv"), str(out / "ck"), GMODEL,
            GTRAIN, 1)


def _losses(metrics: Path) -> np.ndarray:
    return np.array([float(r["train_loss"]) for r in read_tsv(metrics)])


# ---- shards ------------------------------------------------------------------------------------
def test_ddp_genomics_shards_partition_each_global_batch(windows):
    task = GenomicsTask(windows, 3, 4)
    full = [b["x"] for b in task.batches(1, 3)]
    shards = [[b["x"] for b in task.batches(1, 3, rank, 2)] for rank in (0, 1)]
    for i, batch in enumerate(full):
        assert shards[0][i].shape[0] == shards[1][i].shape[0] == 2
        assert torch.equal(batch[0::2], shards[0][i]) and torch.equal(batch[1::2], shards[1][i])
    task.close()


def test_ddp_imaging_shards_partition_each_global_batch(imaging_inputs):
    inp = imaging_inputs
    cfg = inp["cfg"]
    train = sorted(inp["stores"])
    task = SegmentationTask([inp["stores"][s] for s in train],
                            [read_centres(inp["tiles"][s]) for s in train], [],
                            cfg["patch_size"], 3, 4, cfg["foreground_fraction"], 7,
                            cfg["train"]["augment"], 0, cfg["infer"])
    full = [b["x"] for b in task.batches(0, 2)]
    shards = [[b["x"] for b in task.batches(0, 2, rank, 2)] for rank in (0, 1)]
    for i, batch in enumerate(full):
        assert torch.equal(batch[0::2], shards[0][i]) and torch.equal(batch[1::2], shards[1][i])
        assert not torch.equal(shards[0][i], shards[1][i])
    task.num_workers = "auto"  # the process's threads, one kept for itself
    assert task.batches(0, 1).num_workers == max(torch.get_num_threads() - 1, 0)


# ---- two processes against one ---------------------------------------------------------------
@pytest.mark.parametrize("track", ["imaging", "genomics"])
def test_ddp_two_processes_match_one_and_only_rank0_writes(track, tmp_path, windows,
                                                            imaging_inputs):
    fn = train_imaging if track == "imaging" else train_genomics
    make = (lambda out: _imaging_args(imaging_inputs, out)) if track == "imaging" else (
        lambda out: _genomics_args(windows, out))
    one, two = tmp_path / "one", tmp_path / "two"
    torch.set_num_threads(2)
    launch(fn, *make(one), nproc=1)
    audit = tmp_path / "audit"
    audit.mkdir()
    launch(audited, str(audit), fn, *make(two), nproc=2, threads=2)
    a, b = _losses(one / "metrics.tsv"), _losses(two / "metrics.tsv")
    rtol = 1e-3 if track == "imaging" else 0.02
    np.testing.assert_allclose(b, a, rtol=rtol)
    meta = json.loads((two / "bundle/bundle.json").read_text())
    assert meta["provenance"]["processes"] == 2
    rank0 = json.loads((audit / "rank0.json").read_text())
    rank1 = json.loads((audit / "rank1.json").read_text())
    assert any(str(two / "bundle") in f for f in rank0) and any("last.pt" in f for f in rank0)
    assert not [f for f in rank1 if str(tmp_path) in f], rank1


# ---- killed and rerun ---------------------------------------------------------------------------
_RUN = """
import sys
sys.path.insert(0, {repo!r})
from voxseq.distributed import launch
from voxseq.genomics.train import train_genomics
train = dict({train!r}, epochs=6)
launch(train_genomics, {windows!r}, {out!r} + "/bundle", {out!r} + "/metrics.tsv",
       {out!r} + "/ck", {model!r}, train, 1, nproc=2, threads=2, log_file={out!r} + "/log")
"""


def test_ddp_killed_run_resumes(tmp_path, windows):
    out = str(tmp_path)
    code = _RUN.format(repo=str(REPO), train=GTRAIN, windows=str(windows), out=out, model=GMODEL)
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ck = tmp_path / "ck" / "metrics.tsv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if ck.exists() and len(read_tsv(ck)) >= 2:
            break
        time.sleep(0.01)  # an epoch can take well under 0.2 s on a quiet machine
    assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(read_tsv(ck))
    assert done < 6 and not (tmp_path / "bundle" / "bundle.json").exists()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    log = (tmp_path / "log").read_text()
    assert "resuming from" in log
    assert len(read_tsv(tmp_path / "metrics.tsv")) == 6
    assert (tmp_path / "bundle" / "bundle.json").exists()


def test_ddp_through_the_workflow(tiny_run, tmp_path):
    """The rule script itself launches the ranks (they must not re-run the Snakemake script).
    The training runs again on a copy of the shared tiny run (the jobs before it are done)."""
    work = copy_run(tiny_run, tmp_path / "run")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({"imaging": {"train": {"gpus": 2}}}))
    run_snakemake(work, "--configfile", *TINY_RUN, str(tmp_path / "cfg.yaml"), "--cores", "2",
                  "--until", "imaging_train", "--forcerun", "imaging_train")
    log = (work / "results/tiny/logs/imaging/train.log").read_text()
    assert "data-parallel training: 2 processes" in log and "rank0" in log
    meta = json.loads((work / "models/tiny/imaging/bundle.json").read_text())
    assert meta["provenance"]["processes"] == 2
