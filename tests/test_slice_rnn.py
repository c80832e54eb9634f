"""The slice RNN classifier (2D CNN per axial slice, bidirectional GRU, pooling) and the
penultimate features of every classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxseq.bundle import TORCHSCRIPT, load_bundle, write_bundle
from voxseq.models import MODELS, register
from voxseq.models.classifiers import SliceRNN, penultimate_features, resnet10, slice_rnn, vgg11
from voxseq.models.gradcam import grad_cam

SMALL = {"base_channels": 4, "hidden": 8}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def registered():
    """``slice_rnn`` in the model registry (as ``voxseq.models`` registers the classifiers)."""
    added = "slice_rnn" not in MODELS
    if added:
        register("slice_rnn", slice_rnn)
    yield
    if added:
        del MODELS["slice_rnn"]


def _data(rng: np.random.Generator, n: int, z: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise volumes (n, 1, 16, 16, z); class 1 has one bright slice somewhere along Z."""
    x = rng.normal(0.0, 0.5, (n, 1, 16, 16, z)).astype(np.float32)
    y = rng.integers(0, 2, n)
    for volume, label, k in zip(x, y, rng.integers(0, z, n), strict=True):
        volume[0, 4:12, 4:12, k] += 2.0 * label
    return torch.from_numpy(x), torch.from_numpy(y)


def _train(seed: int, steps: int, z: int = 6) -> tuple[torch.nn.Module, list[float]]:
    torch.manual_seed(seed)
    model = slice_rnn(**SMALL)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng, losses = np.random.default_rng(seed), []
    for _ in range(steps):
        x, y = _data(rng, 8, z)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.zero_grad(set_to_none=True)
    return model.eval(), losses


@pytest.mark.parametrize("pooling", ["attention", "mean"])
@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_shapes_on_any_number_of_slices(pooling, rnn):
    torch.manual_seed(0)
    model = slice_rnn(in_channels=2, num_classes=3, pooling=pooling, rnn=rnn, **SMALL).eval()
    with torch.no_grad():
        for z in (1, 5, 13):
            x = torch.randn(2, 2, 32, 24, z)
            features = model.forward_features(x)
            assert features.shape == (2, 32, 1, 1, z)  # 8 * base_channels, stride 32 in-plane
            assert model(x).shape == (2, 3)
            assert model.embed(features).shape == (2, 16)  # 2 * hidden
            weights = model.slice_weights(features)
            torch.testing.assert_close(weights.sum(1), torch.ones(2))
            if pooling == "mean":
                torch.testing.assert_close(weights, torch.full((2, z), 1.0 / z))
        # a 2D model takes one slice (B, C, X, Y), as the other classifiers' 2D forms
        flat = slice_rnn(in_channels=2, spatial_dims=2, **SMALL).eval()
        assert flat(torch.randn(3, 2, 32, 24)).shape == (3, 2)


def test_slices_are_read_in_order_and_each_one_counts():
    """Reversing the slices changes the output (a GRU, not a bag of slices), and a change to
    one slice alone reaches the logits."""
    torch.manual_seed(0)
    model = slice_rnn(pooling="mean", **SMALL).eval()
    x = torch.randn(2, 1, 16, 16, 7)
    with torch.no_grad():
        logits = model(x)
        assert not torch.allclose(logits, model(torch.flip(x, [4])))
        changed = x.clone()
        changed[..., 3] += 1.0
        assert not torch.allclose(logits, model(changed))


def test_bad_arguments():
    with pytest.raises(ValueError, match="pooling must be one of"):
        SliceRNN(pooling="max")
    with pytest.raises(ValueError, match="rnn must be 'gru' or 'lstm'"):
        SliceRNN(rnn="transformer")
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
        SliceRNN(spatial_dims=1)


def test_trains_a_few_steps_and_learns_the_bright_slice():
    model, losses = _train(0, 40)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    x, y = _data(np.random.default_rng(99), 64, 6)
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() >= 0.9


def test_training_is_deterministic():
    a, losses_a = _train(3, 4)
    b, losses_b = _train(3, 4)
    assert losses_a == losses_b
    for key, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[key], value, rtol=0, atol=0)
    c, _ = _train(4, 4)
    assert not torch.equal(c.fc.weight, a.fc.weight)


def test_bundle_round_trip(tmp_path, registered):
    model, _ = _train(0, 3)
    arguments = {"num_classes": 2, **SMALL}
    write_bundle(
        tmp_path / "b",
        model,
        "imaging",
        "slice_rnn",
        arguments,
        preprocessing={},
        metrics={},
        provenance={},
        example_input=torch.randn(1, 1, 16, 16, 6),
    )
    loaded, meta = load_bundle(tmp_path / "b", "imaging")
    assert isinstance(loaded, SliceRNN)
    assert meta["architecture"] == {"name": "slice_rnn", "arguments": arguments}
    x = torch.randn(3, 1, 16, 16, 6)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)
        scripted = torch.jit.load(str(tmp_path / "b" / TORCHSCRIPT))
        torch.testing.assert_close(scripted(x), expected, rtol=1e-4, atol=1e-5)
    # an ensemble of slice RNNs (the fold models of one bundle) rebuilds as well
    ensemble = {"member": "slice_rnn", "arguments": arguments, "n_members": 2}
    members = MODELS["classifier_ensemble"](**ensemble).eval()
    members.load_members([model.state_dict(), model.state_dict()])
    with torch.no_grad():
        torch.testing.assert_close(members(x), expected.softmax(1))


def test_grad_cam_gives_a_map_per_slice():
    model, _ = _train(0, 3)
    x = torch.randn(2, 1, 16, 16, 6)
    cam = grad_cam(model, x, [1, 0])
    assert cam.shape == (2, 16, 16, 6)
    assert cam.min() >= 0 and cam.max() <= 1
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(
    "factory, shape",
    [(resnet10, (3, 1, 32, 32, 32)), (vgg11, (3, 2, 48, 40)), (slice_rnn, (3, 1, 32, 32, 5))],
)
def test_penultimate_features_feed_the_last_layer(factory, shape):
    """The logits are the last linear layer of the penultimate features (eval mode)."""
    torch.manual_seed(0)
    kwargs = {"in_channels": shape[1], "spatial_dims": len(shape) - 2, "base_channels": 4}
    model = factory(**kwargs).eval()
    last = model.head[3] if factory is vgg11 else model.fc
    x = torch.randn(shape)
    embedding = penultimate_features(model, x, batch_size=2)
    assert embedding.shape == (3, last.in_features)
    with torch.no_grad():
        torch.testing.assert_close(last(embedding), model(x))
    with pytest.raises(ValueError, match="no single penultimate layer"):
        penultimate_features(MODELS["classifier_ensemble"]("resnet10", kwargs, 2), x)
