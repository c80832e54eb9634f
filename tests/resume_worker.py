"""Run one training entry point in a fresh process, optionally killed with SIGKILL right after
``last.pt`` of a given epoch is written (a job killed hard between epochs).

Usage: ``python resume_worker.py JOB_JSON KILL_AFTER`` (KILL_AFTER < 0: no kill). JOB_JSON holds
``kind`` (``genomics`` or ``classify``) and the entry point's keyword arguments.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's voxseq

import voxseq.fit as fitmod  # noqa: E402


def kill_after(epoch: int) -> None:
    save = fitmod._save

    def save_then_die(path: Path, state: dict) -> None:
        save(path, state)
        if path.name == "last.pt" and state["epoch"] == epoch:
            os.kill(os.getpid(), signal.SIGKILL)

    fitmod._save = save_then_die


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    if int(sys.argv[2]) >= 0:
        kill_after(int(sys.argv[2]))
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    kind, args = job.pop("kind"), job
    if kind == "genomics":
        from voxseq.genomics.train import train_genomics

        train_genomics(**args)
    elif kind == "classify":
        from voxseq.imaging.classify import train_fold

        train_fold(**args)
    else:
        raise SystemExit(f"unknown kind {kind!r}")


if __name__ == "__main__":
    main()
