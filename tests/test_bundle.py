"""Model bundles: round trip, TorchScript export, compatibility errors, untrusted files."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from voxseq import VoxseqError
from voxseq.bundle import TORCHSCRIPT, WEIGHTS, bundle_digest, load_bundle, write_bundle
from voxseq.fit import load_checkpoint
from voxseq.io.digest import file_sha256
from voxseq.models import build_model

ARGS = {"in_channels": 1, "out_channels": 3, "depth": 2, "base_channels": 4}


@pytest.fixture
def bundle(tmp_path):
    torch.manual_seed(0)
    model = build_model("unet3d", **ARGS)
    write_bundle(tmp_path / "b", model, "imaging", "unet3d", ARGS,
                 preprocessing={"patch_size": [8, 8, 8]}, metrics={}, provenance={},
                 example_input=torch.randn(1, 1, 8, 8, 8))
    return tmp_path / "b", model


def test_round_trip_and_torchscript_matches_eager(bundle):
    path, model = bundle
    loaded, meta = load_bundle(path, "imaging")
    x = torch.randn(2, 1, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))
        scripted = torch.jit.load(str(path / TORCHSCRIPT))
        torch.testing.assert_close(scripted(x), model(x), rtol=1e-4, atol=1e-5)
    assert meta["architecture"] == {"name": "unet3d", "arguments": ARGS}
    assert meta["provenance"]["torch_version"] == torch.__version__
    assert len(bundle_digest(path)) == 64


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "bundle.json").unlink(), "missing"),
        (lambda p: (p / "bundle.json").write_text("{not json"), "corrupt"),
        (lambda p: _edit(p, format_version=99), "unknown format version 99"),
        (lambda p: _edit(p, modality="genomics"), "modality mismatch"),
        (lambda p: _edit(p, architecture={"name": "unet3d", "arguments": {**ARGS, "depth": 3}}),
         "weights do not fit"),
        (lambda p: (p / WEIGHTS).write_bytes(b"\x00" * 64), "does not match the digest"),
    ],
)
def test_compatibility_errors(bundle, damage, message):
    path, _ = bundle
    damage(path)
    with pytest.raises(VoxseqError, match=message):
        load_bundle(path, "imaging")


def _edit(path, **changes):
    meta = json.loads((path / "bundle.json").read_text())
    meta.update(changes)
    (path / "bundle.json").write_text(json.dumps(meta))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_in_place_of_weights_is_refused(bundle, tmp_path):
    path, _ = bundle
    marker = tmp_path / "pwned"
    (path / WEIGHTS).write_bytes(pickle.dumps({"w": _Payload(marker)}))
    # the attacker also fixes the digest, so only the file format stands in the way
    _edit(path, files={WEIGHTS: file_sha256(path / WEIGHTS)})
    with pytest.raises(VoxseqError, match="not a valid safetensors file"):
        load_bundle(path, "imaging")
    assert not marker.exists()


def test_pickle_payload_as_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    ck = tmp_path / "last.pt"
    torch.save({"model": _Payload(marker)}, ck)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(ck)
    assert not marker.exists()
