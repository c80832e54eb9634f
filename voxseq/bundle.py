"""Self-describing model bundles: everything needed to apply a trained model to a new cohort.

A bundle is a folder::

    bundle.json          format version, modality, architecture + arguments, preprocessing,
                         metrics, provenance (config / sample-sheet digests, versions), file digests
    weights.safetensors  the state dict; safetensors cannot execute code on load
    model.torchscript.pt TorchScript export (traced on ``example_input``) for use outside voxseq;
                         voxseq itself never loads it (TorchScript archives carry code)
    arrays.safetensors   optional named arrays a task needs besides the weights (e.g. the imaging
                         QC model's per-voxel error scale); digested like the weights

Loading checks the format version, the modality and the weights' SHA-256 before building the
model; nothing in a bundle is ever unpickled.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import voxseq
from voxseq import VoxseqError
from voxseq.io.atomic import atomic_path, write_json
from voxseq.io.digest import file_sha256, object_sha256
from voxseq.model_card import write_model_card
from voxseq.models import build_model

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
TORCHSCRIPT = "model.torchscript.pt"
ARRAYS = "arrays.safetensors"


def write_bundle(
    outdir: str | Path,
    model: torch.nn.Module,
    modality: str,
    architecture: str,
    arguments: dict,
    preprocessing: dict,
    metrics: dict,
    provenance: dict,
    example_input: torch.Tensor | None = None,
    extra: dict | None = None,
    arrays: dict[str, np.ndarray] | None = None,
) -> dict:
    """Write a bundle folder atomically; return its ``bundle.json`` content.

    With ``example_input`` (e.g. one patch, shape (1, C, *patch)), a TorchScript export traced
    on it is written beside the weights and its output checked against the eager model.
    ``arrays``: named arrays stored beside the weights (:func:`load_bundle_arrays`).
    """
    with atomic_path(outdir, is_dir=True) as tmp:
        model = model.cpu().eval()
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        files = {WEIGHTS: file_sha256(tmp / WEIGHTS)}
        if arrays:
            tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
            save_file(tensors, str(tmp / ARRAYS))
            files[ARRAYS] = file_sha256(tmp / ARRAYS)
        exports = {}
        if example_input is not None:
            # not digested: TorchScript archives embed a random serialization id, and the
            # bundle (hence its digest) must be identical across identical training runs
            export_torchscript(model, example_input, tmp / TORCHSCRIPT)
            exports["torchscript"] = {
                "file": TORCHSCRIPT,
                "example_shape": list(example_input.shape),
            }
        meta = {
            "format_version": FORMAT_VERSION,
            "modality": modality,
            "architecture": {"name": architecture, "arguments": arguments},
            "preprocessing": preprocessing,
            "metrics": metrics,
            "provenance": {
                **provenance,
                "voxseq_version": voxseq.__version__,
                "torch_version": torch.__version__,
            },
            "files": files,
            "exports": exports,
            **(extra or {}),
        }
        write_json(tmp / "bundle.json", meta)
        write_model_card(tmp, meta)  # README.md: data, preprocessing, metrics, limitations
    return meta


def export_torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """Trace ``model`` on ``example`` and save it; refuse an export whose output differs."""
    with torch.no_grad():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings on shape checks inside norms
            traced = torch.jit.trace(model, example, check_trace=False)
        expected, got = model(example), traced(example)
    if not torch.allclose(expected, got, rtol=1e-4, atol=1e-5):
        raise RuntimeError("TorchScript export differs from the eager model")
    buf = io.BytesIO()  # an archive saved to a path is named after it: keep bytes path-free
    torch.jit.save(traced, buf)
    path.write_bytes(buf.getvalue())


def read_bundle_meta(path: str | Path, modality: str | None = None) -> dict:
    """Read and check ``bundle.json`` (format version, modality)."""
    path = Path(path)
    meta_path = path / "bundle.json"
    if not meta_path.is_file():
        raise VoxseqError(f"model bundle {path}: missing (no bundle.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VoxseqError(f"model bundle {path}: bundle.json is corrupt ({exc})") from exc
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise VoxseqError(
            f"model bundle {path}: unknown format version {version!r} (this voxseq reads "
            f"{FORMAT_VERSION})"
        )
    if modality is not None and meta.get("modality") != modality:
        raise VoxseqError(
            f"model bundle {path}: modality mismatch: bundle is {meta.get('modality')!r}, "
            f"the config uses it for {modality!r}"
        )
    return meta


def load_bundle(path: str | Path, modality: str | None = None) -> tuple[torch.nn.Module, dict]:
    """Build the bundle's model with its weights (eval mode, CPU); return it and its metadata."""
    path = Path(path)
    meta = read_bundle_meta(path, modality)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise VoxseqError(f"model bundle {path}: missing {WEIGHTS}")
    expected = meta.get("files", {}).get(WEIGHTS)
    if expected != file_sha256(weights):
        raise VoxseqError(
            f"model bundle {path}: {WEIGHTS} does not match the digest in bundle.json "
            "(corrupt or replaced)"
        )
    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise VoxseqError(
            f"model bundle {path}: {WEIGHTS} is not a valid safetensors file ({exc})"
        ) from exc
    arch = meta["architecture"]
    model = build_model(arch["name"], **arch["arguments"])
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise VoxseqError(
            f"model bundle {path}: weights do not fit {arch['name']} "
            f"{arch['arguments']} ({str(exc).splitlines()[0]})"
        ) from exc
    model.eval()
    return model, meta


def load_bundle_arrays(path: str | Path, meta: dict) -> dict[str, np.ndarray]:
    """The named arrays of a bundle (empty if it has none), checked against their digest."""
    path = Path(path)
    expected = meta.get("files", {}).get(ARRAYS)
    if expected is None:
        return {}
    if not (path / ARRAYS).is_file() or file_sha256(path / ARRAYS) != expected:
        raise VoxseqError(
            f"model bundle {path}: {ARRAYS} is missing or does not match the digest in "
            "bundle.json (corrupt or replaced)"
        )
    try:
        return {k: v.numpy() for k, v in load_file(str(path / ARRAYS)).items()}
    except Exception as exc:
        raise VoxseqError(
            f"model bundle {path}: {ARRAYS} is not a valid safetensors file ({exc})"
        ) from exc


def bundle_digest(path: str | Path) -> str:
    """Digest identifying a bundle's content (its metadata, weights and arrays)."""
    path = Path(path)
    parts = {"bundle.json": file_sha256(path / "bundle.json"), WEIGHTS: file_sha256(path / WEIGHTS)}
    if (path / ARRAYS).is_file():
        parts[ARRAYS] = file_sha256(path / ARRAYS)
    return object_sha256(parts)


def describe(meta: dict[str, Any]) -> str:
    arch = meta["architecture"]
    return f"{meta['modality']} bundle: {arch['name']} {arch['arguments']}"
