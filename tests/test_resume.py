"""Exact resume: a run stopped hard after epoch k and started again ends with the weights of an
uninterrupted run, bit for bit, for the shared loop and every task that draws random numbers."""

from __future__ import annotations

import json
import logging
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from torch import nn

import voxseq.fit as fitmod
from voxseq.fit import TrainConfig, fit, load_checkpoint, seed_everything
from voxseq.progress import ProgressPace
from voxseq.rng import rng_state, set_rng_state


class Stop(BaseException):
    """A hard stop inside the process: nothing after it runs (no cleanup in fit catches it)."""


class DropoutTask:
    """A task whose batches are a function of (seed, epoch), trained through a model with dropout
    and drawing from the global NumPy and Python generators as a data pipeline may; it keeps a
    counter of its own (``state_dict``), as a GAN keeps its discriminator."""

    def __init__(self, seed: int, stop_after: int | None = None) -> None:
        self.seed, self.stop_after, self.steps = seed, stop_after, 0
        rng = np.random.default_rng(seed)
        self.x = torch.from_numpy(rng.normal(size=(32, 6)).astype(np.float32))
        self.y = self.x.sum(1, keepdim=True)

    def batches(self, epoch, n, rank=0, world=1):
        if self.stop_after is not None and epoch > self.stop_after:
            raise Stop
        rng = np.random.default_rng([self.seed, epoch])
        for _ in range(n):
            idx = torch.from_numpy(rng.choice(32, 8))
            noise = float(np.random.normal()) * 0.01 + random.random() * 0.01
            self.steps += 1
            yield {"x": self.x[idx] + noise, "y": self.y[idx]}

    def loss(self, model, batch, device):
        out = model(batch["x"].to(device)).float()
        return nn.functional.mse_loss(out, batch["y"].to(device)) + 1e-6 * self.steps

    def validate(self, model, device):
        loss = float(nn.functional.mse_loss(model(self.x.to(device)).float(), self.y.to(device)))
        return {"val_loss": loss, "score": -loss}

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, d: dict) -> None:
        self.steps = int(d["steps"])


CFG = {"epochs": 5, "iters_per_epoch": 3, "batch_size": 8, "device": "cpu", "lr": 0.01}


def _train(tmp: Path, stop_after: int | None = None, device: str = "cpu"
           ) -> tuple[dict, DropoutTask]:
    # the last epoch is kept (select_after), so the weights compared come from after the stop
    cfg = TrainConfig.from_dict({**CFG, "select_after": 4, "device": device}, seed=3)
    seed_everything(cfg.seed)  # as every train_* entry does, before building the model
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    task = DropoutTask(3, stop_after)
    try:
        fit(task, model, cfg, tmp, tmp / "metrics.tsv", digest="d")
    except Stop:
        pass
    return model.state_dict(), task


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def test_resume_after_a_hard_stop_is_exact_with_dropout_and_task_state(tmp_path, device):
    """On CUDA the dropout draws from the device's generator (saved as ``rng["cuda"]``)."""
    whole, whole_task = _train(tmp_path / "whole", device=str(device))
    _train(tmp_path / "cut", stop_after=1, device=str(device))
    assert load_checkpoint(tmp_path / "cut/last.pt")["epoch"] == 1
    resumed, resumed_task = _train(tmp_path / "cut", device=str(device))
    _same(whole, resumed)
    assert resumed_task.steps == whole_task.steps  # the task's own state came back
    ck = load_checkpoint(tmp_path / "cut/last.pt")
    assert ck["task"] == {"steps": 15} and {"torch", "numpy", "python"} <= set(ck["rng"])
    assert ("cuda" in ck["rng"]) == (device.type == "cuda")


def test_a_stateful_task_does_not_resume_from_a_checkpoint_without_its_state(tmp_path, caplog):
    _train(tmp_path, stop_after=1)
    ck = load_checkpoint(tmp_path / "last.pt")
    del ck["task"]
    torch.save(ck, tmp_path / "last.pt")
    with caplog.at_level(logging.INFO, logger="voxseq.fit"):
        _train(tmp_path)
    assert "holds no state of the task" in caplog.text
    assert "resuming" not in caplog.text


def test_random_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    seed_everything(5)
    state = rng_state(torch.device("cpu"))
    torch.save(state, tmp_path / "s.pt")
    expect = (torch.rand(3), np.random.random(3), random.random())
    seed_everything(6)
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True))
    got = (torch.rand(3), np.random.random(3), random.random())
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1])
    assert expect[2] == got[2]


def test_progress_pace_is_the_rarer_of_ten_percent_and_thirty_seconds():
    # 100 epochs of 1 s: 10 % of the epochs (10 s) is rarer than 30 s -> every 30th epoch
    pace = ProgressPace(100, start=0.0)
    shown = [e for e in range(100) if pace.due(e, now=e + 1.0)]
    assert shown == [29, 59, 89, 99]
    # 20 epochs of 60 s: 30 s would show each; 10 % (2 epochs) is rarer
    pace = ProgressPace(20, start=0.0)
    assert [e for e in range(20) if pace.due(e, now=60.0 * (e + 1))] == list(range(1, 20, 2))
    # a resumed run counts from its first epoch
    pace = ProgressPace(100, start=0.0)
    assert [e for e in range(50, 100) if pace.due(e, now=60.0 * (e - 49))][:2] == [59, 69]


def test_terminal_gets_a_bounded_number_of_lines_and_no_best_during_warm_up(tmp_path, caplog):
    cfg = TrainConfig.from_dict({**CFG, "epochs": 40, "iters_per_epoch": 1, "select_after": 40},
                                seed=3)
    seed_everything(cfg.seed)
    model = nn.Sequential(nn.Linear(6, 1))
    with caplog.at_level(logging.INFO):
        fit(DropoutTask(3), model, cfg, tmp_path, tmp_path / "metrics.tsv", name="toy")
    lines = [r.getMessage() for r in caplog.records if r.name == "voxseq.progress"]
    assert lines == [lines[-1]] and lines[-1].startswith("toy: epoch 40/40")
    assert "best" not in lines[-1] and "-inf" not in lines[-1]
    per_epoch = [r for r in caplog.records if r.name == "voxseq.fit" and "train_loss" in
                 r.getMessage()]
    assert len(per_epoch) == 40  # the job's log keeps every epoch
    assert len((tmp_path / "metrics.tsv").read_text().splitlines()) == 41


def test_early_stop_is_shown_with_the_best_epoch(tmp_path, caplog):
    cfg = TrainConfig.from_dict({**CFG, "epochs": 30, "iters_per_epoch": 1, "patience": 1,
                                 "lr": 0.0}, seed=3)
    seed_everything(cfg.seed)
    with caplog.at_level(logging.INFO):
        fit(DropoutTask(3), nn.Linear(6, 1), cfg, tmp_path, tmp_path / "m.tsv", name="toy")
    lines = [r.getMessage() for r in caplog.records if r.name == "voxseq.progress"]
    assert len(lines) == 1 and "toy: early stop after epoch 2/30" in lines[0]
    assert "(best " in lines[0] and "epoch 1)" in lines[0]


# --- every task that draws random numbers: stop after epoch 1, resume, compare ------------

WORKER = REPO / "tests/resume_worker.py"


class _StopAfter:
    """Within ``with``: the process stops hard (:class:`Stop`, or a real SIGKILL in the worker)
    right after ``last.pt`` of ``epoch`` is written."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.save = epoch, fitmod._save

    def _save(self, path: Path, state: dict) -> None:
        self.save(path, state)
        if path.name == "last.pt" and state["epoch"] == self.epoch:
            raise Stop

    def __enter__(self):
        fitmod._save = self._save

    def __exit__(self, *exc) -> bool:
        fitmod._save = self.save
        return exc[0] is Stop


def _stopped_then_resumed_equals_whole(tmp: Path, train) -> None:
    """``train(folder)`` trains into ``folder`` and returns the final weights (a state dict).
    Each task keeps its last epoch (``select_after``), so the weights compared were trained
    after the stop, not restored from an earlier ``best.pt``."""
    whole = train(tmp / "whole")
    with _StopAfter(1):
        train(tmp / "cut")
    assert load_checkpoint(next((tmp / "cut").rglob("last.pt")))["epoch"] == 1
    _same(whole, train(tmp / "cut"))


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _run_worker(tmp: Path, job: dict, kill_after: int) -> subprocess.CompletedProcess:
    spec = tmp / f"job{kill_after}.json"
    spec.write_text(json.dumps(job))
    return subprocess.run([sys.executable, str(WORKER), str(spec), str(kill_after)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def _sigkilled_then_resumed_equals_whole(tmp: Path, job: dict, weights: Path) -> None:
    """The worker's ``job`` (writing into ``tmp / "cut"``) killed with SIGKILL after epoch 1,
    then run again, ends with the weights of an uninterrupted run in this process
    (``weights``: the final weights file, under ``tmp / "cut"``)."""
    cut = _run_worker(tmp, job, 1)
    assert cut.returncode == -signal.SIGKILL, cut.stderr[-3000:]
    assert not weights.exists()
    again = _run_worker(tmp, job, -1)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming after epoch 2 of" in again.stderr
    kind, args = job["kind"], json.loads(json.dumps(job))
    del args["kind"]
    whole = str(tmp / "whole")
    args = json.loads(json.dumps(args).replace(str(tmp / "cut"), whole))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the worker
    try:
        ENTRY[kind](**args)
    finally:
        torch.set_num_threads(threads)
    _same(_weights(Path(str(weights).replace(str(tmp / "cut"), whole))), _weights(weights))


def _train_genomics(**kw):
    from voxseq.genomics.train import train_genomics

    return train_genomics(**kw)


def _train_fold(**kw):
    from voxseq.imaging.classify import train_fold

    return train_fold(**kw)


ENTRY = {"genomics": _train_genomics, "classify": _train_fold}


@pytest.fixture(scope="module")
def windows(tmp_path_factory) -> Path:
    """A windows HDF5 of 3 tracks over a 4-contig random reference (chr3 val, chr4 test)."""
    import pysam
    from conftest import write_coverage_store, write_fasta

    from voxseq.genomics.windows import tile_genome

    root = tmp_path_factory.mktemp("resume_windows")
    rng = np.random.default_rng(0)
    bases = np.frombuffer(b"ACGT", np.uint8)
    genome = {f"chr{i}": rng.choice(bases, 2048).tobytes() for i in range(1, 5)}
    fasta = write_fasta(root / "ref.fa", genome)
    pysam.faidx(str(fasta))
    cov = {s: str(write_coverage_store(root / f"{s}.h5", {c: rng.gamma(2.0, 5.0, 64)
                                                         for c in genome}, 32))
           for s in ("g1", "g2", "g3")}
    tile_genome(fasta, cov, root / "w.h5", root / "w.tsv", 256, 128, 0.1, ["chr3"], ["chr4"],
                None)
    return root / "w.h5"


def _genomics_job(windows: Path, folder: Path) -> dict:
    return {"kind": "genomics", "windows": str(windows), "bundle_dir": str(folder / "b"),
            "metrics_path": str(folder / "m.tsv"), "workdir": str(folder / "ck"),
            "model_args": {"arch": "dilated_cnn", "channels": 8, "dilated_layers": 2,
                           "dropout": 0.3},
            "train": {"epochs": 3, "iters_per_epoch": 2, "batch_size": 4, "device": "cpu",
                      "num_workers": 0, "select_after": 2},
            "seed": 1}


def test_sequence_model_with_dropout_resumes_exactly(windows, tmp_path):
    def train(folder: Path) -> dict:
        job = _genomics_job(windows, folder)
        del job["kind"]
        _train_genomics(**job)
        return _weights(folder / "b/weights.safetensors")

    _stopped_then_resumed_equals_whole(tmp_path, train)


@pytest.mark.slow
def test_sequence_model_with_dropout_resumes_exactly_after_sigkill(windows, tmp_path):
    _sigkilled_then_resumed_equals_whole(tmp_path, _genomics_job(windows, tmp_path / "cut"),
                                         tmp_path / "cut/b/weights.safetensors")


@pytest.fixture(scope="module")
def classify_inputs(tmp_path_factory) -> dict:
    """Twelve 16 x 16 x 8 subjects of two classes (train/val), as normalised stores, a sheet."""
    from voxseq.imaging.store import write_store
    from voxseq.io.atomic import write_tsv

    root = tmp_path_factory.mktemp("resume_classify")
    rng = np.random.default_rng(1)
    stores, rows = {}, []
    for i in range(12):
        s, cls = f"s{i}", "ab"[i % 2]
        meta = {"subject": s, "canonical_shape": [16, 16, 8], "original_axcodes": list("RAS"),
                "original_affine": np.eye(4).tolist()}
        image = rng.normal(size=(16, 16, 8)) + (i % 2)
        write_store(root / f"{s}.zarr", image, None, (1.0, 1.0, 1.0), meta)
        stores[s] = str(root / f"{s}.zarr")
        rows.append({"subject": s, "split": "train" if i < 8 else "val", "class": cls})
    write_tsv(root / "sheet.tsv", rows, ["subject", "split", "class"])
    return {"sheet": str(root / "sheet.tsv"), "stores": stores}


CLASSIFY = {"input_size": [16, 16, 8], "crop": "none", "with_segmentation": False, "folds": 3,
            "model": {"arch": "resnet10", "base_channels": 2, "dropout": 0.2},
            "train": {"epochs": 3, "batch_size": 2, "device": "cpu", "num_workers": 0,
                      "lr": 0.01, "amp": False, "select_after": 2},
            "augment": {"flip": [True, True, True], "rotate_deg": 10,
                        "intensity_scale": [0.9, 1.1], "mixup": 0.2}}


def _classify_job(inputs: dict, folder: Path) -> dict:
    return {"kind": "classify", "fold": 0, "sheet": inputs["sheet"], "stores": inputs["stores"],
            "seg_probs": None, "cfg": CLASSIFY, "labels": ["background", "lesion"], "seed": 2,
            "outdir": str(folder)}


def test_classifier_fold_with_dropout_resumes_exactly(classify_inputs, tmp_path):
    def train(folder: Path) -> dict:
        job = _classify_job(classify_inputs, folder)
        del job["kind"]
        _train_fold(**job)
        return _weights(folder / "weights.safetensors")

    _stopped_then_resumed_equals_whole(tmp_path, train)


@pytest.mark.slow
def test_classifier_fold_with_dropout_resumes_exactly_after_sigkill(classify_inputs, tmp_path):
    _sigkilled_then_resumed_equals_whole(tmp_path, _classify_job(classify_inputs, tmp_path / "cut"),
                                         tmp_path / "cut/weights.safetensors")


def test_segmentation_resumes_exactly(tmp_path):
    from voxseq.imaging.patches import foreground_centres
    from voxseq.imaging.store import write_store
    from voxseq.imaging.train import SegmentationTask
    from voxseq.models import build_model

    rng = np.random.default_rng(4)
    stores, centres = [], []
    for i in range(3):
        label = np.zeros((12, 12, 8), np.uint8)
        label[3:8, 4:9, 2:6] = 1
        meta = {"subject": f"s{i}", "canonical_shape": [12, 12, 8],
                "original_axcodes": list("RAS"), "original_affine": np.eye(4).tolist()}
        path = tmp_path / f"s{i}.zarr"
        write_store(path, rng.normal(size=label.shape) + label, label, (1.0, 1.0, 1.0), meta)
        stores.append(str(path))
        centres.append(foreground_centres(label, 2, 20, i))
    augment = {"intensity_scale": [0.9, 1.1], "intensity_shift": [-0.1, 0.1],
               "flip": [True, True, True]}
    infer = {"overlap": 0.5, "batch_size": 2, "sigma_scale": 0.125}
    cfg = TrainConfig.from_dict({"epochs": 3, "iters_per_epoch": 2, "batch_size": 2,
                                 "device": "cpu", "num_workers": 0, "lr": 0.01,
                                 "select_after": 2}, seed=5)

    def train(folder: Path) -> dict:
        seed_everything(cfg.seed)
        model = build_model("unet3d", in_channels=1, out_channels=2, depth=2, base_channels=4)
        task = SegmentationTask(stores[:2], centres[:2], stores[2:], [8, 8, 8], 2,
                                cfg.batch_size, 0.5, cfg.seed, augment, 0, infer)
        fit(task, model, cfg, folder, folder / "m.tsv", "d")
        return model.state_dict()

    _stopped_then_resumed_equals_whole(tmp_path, train)


QC_TRAIN = {"epochs": 3, "batch_size": 2, "lr": 0.01, "amp": False, "num_workers": 0,
            "device": "cpu", "select_after": 2}


def _qc_resumes_exactly(tmp: Path, make_model, x: np.ndarray, flip_axes=()) -> None:
    from voxseq.qc.autoencoder import train_autoencoder

    def train(folder: Path) -> dict:
        model = train_autoencoder(make_model, x, [0, 1, 2, 3], [4], QC_TRAIN, 6, 0.1, np.inf,
                                  folder, folder / "m.tsv", "d", "qc", flip_axes)[0]
        return model.state_dict()

    _stopped_then_resumed_equals_whole(tmp, train)


def test_imaging_qc_autoencoder_resumes_exactly(tmp_path):
    from voxseq.models import build_model

    x = np.random.default_rng(7).normal(size=(5, 1, 8, 8, 8)).astype(np.float32)
    _qc_resumes_exactly(
        tmp_path,
        lambda: build_model("conv_autoencoder3d", input_size=[8, 8, 8], base_channels=2,
                            levels=1, latent=4),
        x, flip_axes=(1,))


def test_genomics_qc_autoencoder_with_dropout_resumes_exactly(tmp_path):
    from voxseq.models import build_model

    x = np.random.default_rng(8).normal(size=(5, 40)).astype(np.float32)
    _qc_resumes_exactly(
        tmp_path,
        lambda: build_model("profile_autoencoder", n_bins=40, hidden=16, latent=2, dropout=0.3),
        x)
