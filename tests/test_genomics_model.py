"""The sequence-to-coverage architectures (dilated_cnn, cnn_bilstm): shapes, registry, argument
checks, config arguments, and a round trip of each through a model bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from voxseq import VoxseqError
from voxseq.bundle import load_bundle, write_bundle
from voxseq.genomics.archs import GENOMICS_ARCHS, arch_arguments, genomics_archs
from voxseq.models import build_model
from voxseq.models.cnn_bilstm import CNNBiLSTM
from voxseq.models.seqcnn import SeqCNN, pool_factors

SMALL = {"dilated_cnn": {"channels": 8, "dilated_layers": 3},
         "cnn_bilstm": {"channels": 8, "lstm_hidden": 6, "lstm_layers": 2}}


def test_pool_factors():
    assert pool_factors(32) == [8, 4]
    assert pool_factors(128) == [8, 8, 2]
    assert pool_factors(1) == []
    with pytest.raises(ValueError, match="power of two"):
        pool_factors(48)
    with pytest.raises(ValueError, match="cnn_bilstm: bin_size must be a power of two"):
        CNNBiLSTM(n_tracks=1, bin_size=48)


def test_registry_names():
    assert isinstance(build_model("dilated_cnn", n_tracks=1), SeqCNN)
    assert isinstance(build_model("seqcnn", n_tracks=1), SeqCNN)  # bundles before arch existed
    assert isinstance(build_model("cnn_bilstm", n_tracks=1), CNNBiLSTM)


@pytest.mark.parametrize("arch", GENOMICS_ARCHS)
def test_output_shape_and_sign(device, arch):
    model = build_model(arch, n_tracks=3, bin_size=32, **SMALL[arch])
    model.to(device).eval()
    x = torch.zeros(2, 4, 1024, device=device)
    x[:, 0] = 1.0
    y = model(x)
    assert y.shape == (2, 3, 32)
    assert (y >= 0).all()
    with pytest.raises(ValueError, match="not a multiple of the bin size"):
        model(torch.zeros(1, 4, 1000, device=device))


def test_bilstm_sees_beyond_its_convolutions():
    """A change at one end of the window moves the prediction at the far end: the LSTM carries
    context across the window, which the conv trunk alone (15 bp + pooling) cannot."""
    torch.manual_seed(0)
    model = build_model("cnn_bilstm", n_tracks=1, bin_size=32, channels=8, dropout=0.0).eval()
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (1, 256)), 4).float().transpose(1, 2)
    x2 = x.clone()
    x2[:, :, :32] = x2[:, :, :32].flip(1)  # complement the first bin's 32 bp
    with torch.no_grad():
        far = (model(x) - model(x2))[0, 0, 3:]  # bins 3-7, out of the convolutions' reach
    assert (far.abs() > 1e-7).all()
    conv_only = build_model("dilated_cnn", n_tracks=1, bin_size=32, channels=8,
                            dilated_layers=0).eval()
    with torch.no_grad():
        assert torch.equal(conv_only(x)[0, 0, 3:], conv_only(x2)[0, 0, 3:])


@pytest.mark.parametrize("arch", GENOMICS_ARCHS)
def test_each_architecture_round_trips_through_a_bundle(tmp_path, arch):
    torch.manual_seed(1)
    args = {"n_tracks": 2, "bin_size": 32, **SMALL[arch]}
    model = build_model(arch, **args)
    # train-mode steps move the batch-norm running statistics off their defaults
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (3, 512)), 4).float().transpose(1, 2)
    for _ in range(2):
        model(x)
    model.eval()
    with torch.no_grad():
        before = model(x)
    meta = write_bundle(tmp_path / "b", model, "genomics", arch, args, {"bin_size": 32},
                        {"val_pearson_mean": 0.5}, {"seed": 1})
    loaded, meta2 = load_bundle(tmp_path / "b", "genomics")
    assert type(loaded) is type(model)
    assert meta["architecture"] == meta2["architecture"] == {"name": arch, "arguments": args}
    assert json.loads((tmp_path / "b/bundle.json").read_text())["architecture"]["name"] == arch
    with torch.no_grad():
        after = loaded(x)
    assert torch.equal(before, after)


def test_old_seqcnn_bundle_loads(tmp_path):
    """A bundle written before genomics.model.arch (architecture name seqcnn) still loads, as
    the dilated CNN with its weights."""
    torch.manual_seed(2)
    args = {"n_tracks": 1, "bin_size": 32, "channels": 8, "dilated_layers": 2}
    model = SeqCNN(**args).eval()
    write_bundle(tmp_path / "old", model, "genomics", "seqcnn", args, {}, {}, {})
    loaded, meta = load_bundle(tmp_path / "old", "genomics")
    assert isinstance(loaded, SeqCNN) and meta["architecture"]["name"] == "seqcnn"
    x = torch.rand(1, 4, 256)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_config_block_to_architectures_and_arguments():
    cfg = {"arch": "cnn_bilstm", "compare": None, "channels": 16, "dilated_layers": 4,
           "stem_kernel": 11, "dropout": 0.2, "lstm_hidden": 12, "lstm_layers": 1}
    assert genomics_archs(cfg) == ["cnn_bilstm"]
    assert genomics_archs({**cfg, "compare": []}) == ["cnn_bilstm"]
    assert genomics_archs({**cfg, "compare": ["dilated_cnn"]}) == ["dilated_cnn"]
    assert genomics_archs({"compare": ["cnn_bilstm", "dilated_cnn", "cnn_bilstm"]}) == [
        "cnn_bilstm", "dilated_cnn"]
    assert genomics_archs({}) == ["dilated_cnn"]
    with pytest.raises(VoxseqError, match="unknown architecture"):
        genomics_archs({"compare": ["dilated_cnn", "transformer"]})
    assert arch_arguments("dilated_cnn", cfg) == {"channels": 16, "dilated_layers": 4,
                                                  "stem_kernel": 11, "dropout": 0.2}
    assert arch_arguments("cnn_bilstm", cfg) == {"channels": 16, "stem_kernel": 11,
                                                 "dropout": 0.2, "lstm_hidden": 12,
                                                 "lstm_layers": 1}
    # a key no architecture claims goes through, so the constructor names it
    args = arch_arguments("dilated_cnn", {"chanels": 8})
    with pytest.raises(TypeError, match="chanels"):
        build_model("dilated_cnn", n_tracks=1, **args)
    # each architecture's arguments build it (the default config's block)
    for arch in GENOMICS_ARCHS:
        m = build_model(arch, n_tracks=2, bin_size=32, **arch_arguments(arch, cfg))
        assert np.isfinite(sum(p.sum().item() for p in m.parameters()))
