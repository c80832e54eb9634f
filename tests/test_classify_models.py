"""Classifiers (ResNet, VGG, fold ensemble) and Grad-CAM: shapes, bundles, localisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxseq.bundle import TORCHSCRIPT, load_bundle, write_bundle
from voxseq.models import MODELS, build_model
from voxseq.models.classifiers import CLASSIFIERS, VGG, ClassifierEnsemble, ResNet
from voxseq.models.gradcam import grad_cam

SMALL = {"base_channels": 8}
ENSEMBLE = {"member": "resnet10", "arguments": {"num_classes": 3, **SMALL}, "n_members": 3}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the models are tiny, every machine runs the same reduction order, and a
    busy 2-core runner does not stall in thread synchronisation (measured: 10 s, not 70 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _with_statistics(model: torch.nn.Module, shape: tuple[int, ...]) -> torch.nn.Module:
    """Give batch norm non-trivial running statistics, then switch to eval mode."""
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(3 * torch.randn(shape) + 1)
    return model.eval()


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("shape", [(2, 1, 40, 36, 32), (2, 2, 64, 48)], ids=["3d", "2d"])
@pytest.mark.parametrize("num_classes", [2, 3])
def test_logits_shape_on_non_cubic_inputs(name, shape, num_classes):
    torch.manual_seed(0)
    model = build_model(
        name, in_channels=shape[1], num_classes=num_classes, spatial_dims=len(shape) - 2, **SMALL
    ).eval()
    with torch.no_grad():
        logits = model(torch.randn(shape))
    assert logits.shape == (shape[0], num_classes)
    assert torch.isfinite(logits).all()


def test_registry_and_bad_arguments():
    assert set(CLASSIFIERS) | {"classifier_ensemble"} <= set(MODELS)
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3, got 1"):
        build_model("resnet10", spatial_dims=1)
    with pytest.raises(ValueError, match="four positive block counts"):
        ResNet([1, 1, 1])
    with pytest.raises(ValueError, match="n_members must be >= 1"):
        build_model("classifier_ensemble", member="resnet10", arguments={}, n_members=0)
    with pytest.raises(ValueError, match="unknown VGG configuration 'Z'"):
        VGG("Z")


@pytest.mark.parametrize(
    "name, arguments",
    [("resnet10", {"num_classes": 3, **SMALL}), ("classifier_ensemble", ENSEMBLE)],
)
def test_bundle_round_trip_matches_eager(tmp_path, name, arguments):
    torch.manual_seed(0)
    model = _with_statistics(build_model(name, **arguments), (4, 1, 32, 32, 32))
    write_bundle(
        tmp_path / "b",
        model,
        "imaging",
        name,
        arguments,
        preprocessing={},
        metrics={},
        provenance={},
        example_input=torch.randn(1, 1, 32, 32, 32),
    )
    loaded, meta = load_bundle(tmp_path / "b", "imaging")
    assert meta["architecture"] == {"name": name, "arguments": arguments}
    x = torch.randn(2, 1, 40, 36, 32)
    with torch.no_grad():
        expected = model.eval()(x)
        torch.testing.assert_close(loaded(x), expected)
        scripted = torch.jit.load(str(tmp_path / "b" / TORCHSCRIPT))
        torch.testing.assert_close(scripted(x), expected, rtol=1e-4, atol=1e-5)


def test_ensemble_averages_member_probabilities():
    torch.manual_seed(0)
    ensemble = build_model("classifier_ensemble", **ENSEMBLE).eval()
    x = torch.randn(4, 1, 32, 32, 32)
    with torch.no_grad():
        probabilities = ensemble(x)
        members = [m(x).softmax(dim=1) for m in ensemble.members]
    torch.testing.assert_close(probabilities, torch.stack(members).mean(dim=0))
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(4))
    assert not torch.allclose(members[0], members[1])  # members are independent copies


def test_ensemble_load_members_from_fold_models():
    torch.manual_seed(0)
    folds = [build_model("resnet10", **ENSEMBLE["arguments"]) for _ in range(3)]
    ensemble = ClassifierEnsemble(**ENSEMBLE)
    ensemble.load_members([f.state_dict() for f in folds])
    for fold, member in zip(folds, ensemble.members, strict=True):
        for key, value in fold.state_dict().items():
            torch.testing.assert_close(member.state_dict()[key], value)
    assert "members.2.fc.weight" in ensemble.state_dict()
    with pytest.raises(ValueError, match="got 2 state dicts for 3 ensemble members"):
        ensemble.load_members([f.state_dict() for f in folds[:2]])


@pytest.mark.parametrize(
    "name, shape", [("resnet10", (2, 1, 40, 36, 32)), ("vgg11", (3, 2, 64, 48))]
)
def test_grad_cam_shape_range_and_no_parameter_gradients(name, shape):
    torch.manual_seed(0)
    model = build_model(name, in_channels=shape[1], spatial_dims=len(shape) - 2, **SMALL).eval()
    cam = grad_cam(model, torch.randn(shape), class_index=[1, 0, 1][: shape[0]])
    assert cam.shape == (shape[0], *shape[2:])
    assert cam.dtype == np.float32
    assert cam.min() >= 0 and cam.max() <= 1
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="out of range for 2 classes"):
        grad_cam(model, torch.randn(shape), class_index=2)
    with pytest.raises(ValueError, match="got 1 class indices for a batch of"):
        grad_cam(model, torch.randn(shape), class_index=[0])


def test_grad_cam_of_ensemble_is_mean_of_member_maps():
    torch.manual_seed(0)
    ensemble = build_model("classifier_ensemble", **ENSEMBLE).eval()
    x = torch.randn(2, 1, 64, 64, 48)
    members = [grad_cam(m, x, [2, 1]) for m in ensemble.members]
    np.testing.assert_allclose(grad_cam(ensemble, x, [2, 1]), np.mean(members, axis=0), atol=1e-6)


# ResNet's last map is 3x3 here (stride 32); the square is wider than a cell, so the half-cell
# offset of upsampled ResNet maps (see voxseq/models/gradcam.py) does not push the peak off it
SIZE, SIDE = 96, 40


def _squares(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Noise images (n, 1, SIZE, SIZE); class 1 adds a bright SIDE x SIDE square somewhere."""
    x = rng.normal(0.0, 0.5, (n, 1, SIZE, SIZE)).astype(np.float32)
    y = rng.integers(0, 2, n)
    corners = rng.integers(0, SIZE - SIDE + 1, (n, 2))
    for image, label, (r, c) in zip(x, y, corners, strict=True):
        image[0, r : r + SIDE, c : c + SIDE] += 2.0 * label
    return torch.from_numpy(x), torch.from_numpy(y), corners


def test_grad_cam_finds_the_square_that_decides_the_class():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_model("resnet10", spatial_dims=2, **SMALL)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        x, y, _ = _squares(rng, 16)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    x, y, corners = _squares(rng, 80)
    with torch.no_grad():
        assert (model(x).argmax(dim=1) == y).float().mean() >= 0.95
    positive = (y == 1).numpy()
    cams = grad_cam(model, x[positive], class_index=1)
    hits = []
    for cam, (r, c) in zip(cams, corners[positive], strict=True):
        near_square = cam[max(r - 2, 0) : r + SIDE + 2, max(c - 2, 0) : c + SIDE + 2]
        hits.append(near_square.max() >= cam.max() - 1e-6)  # the maximum is reached there
    assert np.mean(hits) >= 0.8, f"CAM maximum near the square in {np.mean(hits):.0%} of images"
