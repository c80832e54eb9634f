"""Tiny demo-like multi-channel stores for the synthesis tests: body, organ and lesions in a
T1-like ``image`` and a T2-like ``t2`` (organ dark, lesion bright), z-scored per channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxseq.imaging.intensity import normalise
from voxseq.imaging.store import write_store

SHAPE = (24, 24, 16)
CONTRASTS = {"image": (1.0, 3.0, 4.5), "t2": (1.0, 0.55, 2.4)}  # body, organ, lesion


def phantom(index: int, seed: int = 0, lesions: bool = True, shape=SHAPE):
    """(channels (2, X, Y, Z) float32 z-scored, label (X, Y, Z) uint8) of one subject."""
    rng = np.random.default_rng([seed, index])
    g = np.indices(shape, dtype=np.float32)
    c = (np.array(shape, np.float32) - 1) / 2
    r = (g - c[:, None, None, None]) / (np.array(shape, np.float32)[:, None, None, None] * 0.45)
    body = (r**2).sum(0) <= 1
    oc = c + rng.uniform(-2, 2, 3)
    ro = (g - oc[:, None, None, None]) / (np.array(shape, np.float32)[:, None, None, None] * 0.25)
    label = ((ro**2).sum(0) <= 1).astype(np.uint8)
    if lesions:
        lc = oc + rng.uniform(-1.5, 1.5, 3)
        d = np.sqrt(((g - lc[:, None, None, None]) ** 2).sum(0))
        label[(d <= rng.uniform(2.0, 3.0)) & (label == 1)] = 2
    vols = []
    for k, (b, o, les) in enumerate(CONTRASTS.values()):
        tissue = np.where(label == 2, les, np.where(label == 1, o, b)) * body
        noise = np.random.default_rng([seed, index, k]).normal(0, 0.08, shape)
        vols.append(normalise(tissue + noise + 0.2, "zscore", mask=body))
    return np.stack(vols).astype(np.float32), label


def make_store(path: Path, index: int, seed: int = 0, lesions: bool = True) -> str:
    image, label = phantom(index, seed, lesions)
    shape = list(image.shape[1:])
    meta = {
        "subject": path.stem,
        "channels": list(CONTRASTS),
        "normalisation": "zscore",
        "canonical_shape": shape,
        "original_shape": shape,
        "original_axcodes": ["L", "P", "S"],
        "original_affine": np.diag([-1.5, -1.5, 2.0, 1.0]).tolist(),
        "original_qform_code": 1,
        "original_sform_code": 1,
    }
    write_store(path, image, label, (1.5, 1.5, 2.0), meta)
    return str(path)


def make_cohort(folder: Path, n_train: int = 4, n_val: int = 1, n_test: int = 2, seed: int = 0):
    """Stores and splits; the last test subject is lesion-free."""
    stores, splits = {}, {}
    i = 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        for j in range(n):
            sid = f"s{i:02d}"
            free = split == "test" and j == n - 1
            stores[sid] = make_store(folder / f"{sid}.zarr", i, seed, lesions=not free)
            splits[sid] = split
            i += 1
    return stores, splits


def tiny_cfg(epochs: int = 2, iters: int = 4, adv_weight: float = 1.0) -> dict:
    return {
        "patch_size": [16, 16, 16],
        "model": {"depth": 2, "base_channels": 4},
        "gan": {"adv_weight": adv_weight, "d_channels": 4, "d_layers": 2},
        "infer": {"overlap": 0.5, "batch_size": 2, "sigma_scale": 0.125},
        "train": {
            "epochs": epochs,
            "iters_per_epoch": iters,
            "batch_size": 2,
            "lr": 2e-3,
            "device": "cpu",
            "num_workers": 0,
        },
        "lesion_labels": [2],
    }
