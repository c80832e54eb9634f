"""Exact resume: a run stopped hard after epoch k and started again ends with the weights of an
uninterrupted run, bit for bit, for the shared loop and every task that draws random numbers."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

import voxseq.fit as fitmod
from voxseq.fit import TrainConfig, fit, load_checkpoint, seed_everything


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
        return nn.functional.mse_loss(model(batch["x"]), batch["y"]) + 1e-6 * self.steps

    def validate(self, model, device):
        loss = float(nn.functional.mse_loss(model(self.x), self.y))
        return {"val_loss": loss, "score": -loss}

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, d: dict) -> None:
        self.steps = int(d["steps"])


CFG = {"epochs": 5, "iters_per_epoch": 3, "batch_size": 8, "device": "cpu", "lr": 0.01}


def _train(tmp: Path, stop_after: int | None = None) -> tuple[dict, DropoutTask]:
    cfg = TrainConfig.from_dict(CFG, seed=3)
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


def test_resume_after_a_hard_stop_is_exact_with_dropout_and_task_state(tmp_path):
    whole, whole_task = _train(tmp_path / "whole")
    _train(tmp_path / "cut", stop_after=1)
    assert load_checkpoint(tmp_path / "cut/last.pt")["epoch"] == 1
    resumed, resumed_task = _train(tmp_path / "cut")
    _same(whole, resumed)
    assert resumed_task.steps == whole_task.steps  # the task's own state came back
    ck = load_checkpoint(tmp_path / "cut/last.pt")
    assert ck["task"] == {"steps": 15} and {"torch", "numpy", "python"} <= set(ck["rng"])


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
    state = fitmod.rng_state(torch.device("cpu"))
    torch.save(state, tmp_path / "s.pt")
    expect = (torch.rand(3), np.random.random(3), random.random())
    seed_everything(6)
    fitmod.set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True))
    got = (torch.rand(3), np.random.random(3), random.random())
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1])
    assert expect[2] == got[2]


def test_progress_pace_is_the_rarer_of_ten_percent_and_thirty_seconds():
    # 100 epochs of 1 s: 10 % of the epochs (10 s) is rarer than 30 s -> every 30th epoch
    pace = fitmod.ProgressPace(100, start=0.0)
    shown = [e for e in range(100) if pace.due(e, now=e + 1.0)]
    assert shown == [29, 59, 89, 99]
    # 20 epochs of 60 s: 30 s would show each; 10 % (2 epochs) is rarer
    pace = fitmod.ProgressPace(20, start=0.0)
    assert [e for e in range(20) if pace.due(e, now=60.0 * (e + 1))] == list(range(1, 20, 2))
    # a resumed run counts from its first epoch
    pace = fitmod.ProgressPace(100, start=0.0)
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
