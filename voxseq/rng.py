"""The global random state of a training process, saved in a checkpoint and restored on resume
(see :func:`voxseq.fit.fit`)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Every global random state a training process draws from, in a form that
    ``torch.load(weights_only=True)`` reads back: torch's CPU generator, the CUDA generator of
    ``device`` (when it is a CUDA device), NumPy's global generator and Python's ``random``."""
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = torch.from_numpy(np_state["state"]["key"].astype(np.int64))
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np_state,
        "python": random.getstate(),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore what :func:`rng_state` returned (the CUDA state only on a CUDA ``device``)."""
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    key = saved["state"]["key"].numpy().astype(np.uint32)
    np.random.set_state({**saved, "state": {**saved["state"], "key": key}})
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
