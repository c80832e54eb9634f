"""Speed changes to segmentation training and inference keep their outputs: the UNet's group
norm is instance norm, the channels-last CPU layout changes no value (and nothing about the
training that follows a validation), and a validation cadence keeps the best-epoch rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from voxseq.fit import TrainConfig, fit
from voxseq.imaging.patches import foreground_centres
from voxseq.imaging.sliding import sliding_window_logits
from voxseq.imaging.store import write_store
from voxseq.imaging.train import SegmentationTask, dice_ce_loss
from voxseq.models import build_model
from voxseq.models.unet import channels_last

CL = torch.channels_last_3d


def _model(seed: int = 0, **kw) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model("unet3d", **{"in_channels": 1, "out_channels": 3, "depth": 2,
                                     "base_channels": 4, **kw})
    with torch.no_grad():  # non-trivial norm parameters
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _as_instance_norm(model: nn.Module) -> nn.Module:
    """A copy with every GroupNorm(C, C) replaced by InstanceNorm3d(C, affine=True)."""
    import copy

    ref = copy.deepcopy(model)
    for mod in list(ref.modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, nn.GroupNorm):
                inorm = nn.InstanceNorm3d(child.num_channels, affine=True)
                inorm.load_state_dict(child.state_dict())
                setattr(mod, child_name, inorm)
    return ref


def test_group_norm_is_instance_norm():
    model = _model().eval()
    ref = _as_instance_norm(model).eval()
    assert any(isinstance(m, nn.InstanceNorm3d) for m in ref.modules())
    assert list(ref.state_dict()) == list(model.state_dict())  # old bundles load unchanged
    model.load_state_dict(ref.state_dict())
    x = torch.randn(2, 1, 16, 12, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=1e-5)


def test_channels_last_changes_no_value_and_restores_the_layout():
    model = _model().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 1, 16, 12, 8)
    with torch.no_grad():
        plain = model(x)
        with channels_last(model) as last:
            assert last
            assert model.head.weight.is_contiguous(memory_format=CL)
            fast = model(x.contiguous(memory_format=CL))
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    for k, v in model.state_dict().items():
        assert v.is_contiguous() and torch.equal(v, before[k]), k
    with channels_last(model, "cuda") as last:  # another device: left as it is
        assert not last and model.head.weight.is_contiguous()


def test_sliding_window_channels_last_matches_contiguous():
    model = _model().eval()
    vol = np.random.default_rng(1).normal(size=(20, 18, 13)).astype(np.float32)
    with torch.no_grad():
        plain = sliding_window_logits(model, vol, (8, 8, 8), 3, batch_size=3)
        with channels_last(model):
            fast = sliding_window_logits(model, vol, (8, 8, 8), 3, batch_size=3,
                                         memory_format=CL)
    assert fast.shape == plain.shape == (3, 20, 18, 13)
    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)
    assert torch.equal(fast.argmax(0), plain.argmax(0))


def _train_steps(model, batches, validate: bool) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for i, (x, y) in enumerate(batches):
        opt.zero_grad(set_to_none=True)
        dice_ce_loss(model(x), y).backward()
        opt.step()
        if validate and i == 0:
            with torch.no_grad(), channels_last(model):
                model.eval()
                model(x.contiguous(memory_format=CL))
                model.train()


def test_validation_in_channels_last_leaves_training_bit_exact():
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(2, 1, 8, 8, 8, generator=g), torch.randint(0, 3, (2, 8, 8, 8),
                                                                        generator=g))
               for _ in range(3)]
    a, b = _model(), _model()
    _train_steps(a, batches, validate=True)
    _train_steps(b, batches, validate=False)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


@pytest.fixture
def stores(tmp_path):
    rng = np.random.default_rng(0)
    paths, centres = [], []
    for i in range(3):
        label = np.zeros((16, 16, 16), np.uint8)
        label[4:12, 4:12, 4:12] = 1
        label[6:9, 6:9, 6:9] = 2
        image = (label + rng.normal(0, 0.3, label.shape)).astype(np.float32)
        path = tmp_path / f"s{i}.zarr"
        write_store(path, image, label, (1.0, 1.0, 1.0), {"subject": f"s{i}"})
        paths.append(str(path))
        centres.append(foreground_centres(label, 3, 50, i))
    return paths, centres


def _task(stores, every: int, epochs: int) -> SegmentationTask:
    paths, centres = stores
    infer = {"overlap": 0.5, "batch_size": 4, "sigma_scale": 0.125}
    return SegmentationTask(paths[:2], centres[:2], paths[2:], (8, 8, 8), 3, 2, 0.5, 0, {}, 0,
                            infer, validate_every=every, epochs=epochs)


def test_validate_every_keeps_the_best_validated_epoch(stores, tmp_path):
    cfg = TrainConfig(epochs=5, iters_per_epoch=2, lr=3e-3, device="cpu", amp=False,
                      num_workers=0)
    runs = {}
    for every in (1, 2):
        task = _task(stores, every, cfg.epochs)
        runs[every] = fit(task, _model(), cfg, tmp_path / f"k{every}", tmp_path / f"m{every}.tsv")
    full, sparse = runs[1]["history"], runs[2]["history"]
    validated = [1, 3, 4]  # every 2nd epoch, and the last
    for e in range(cfg.epochs):
        assert full[e]["train_loss"] == sparse[e]["train_loss"]  # training is untouched
        if e in validated:
            assert sparse[e]["score"] == full[e]["score"]
        else:
            assert math.isnan(sparse[e]["score"]) and math.isnan(sparse[e]["val_dice_2"])
    best = max(validated, key=lambda e: (full[e]["score"], -e))
    assert runs[2]["best_epoch"] == best
    assert runs[1]["best_epoch"] in range(cfg.epochs)


def test_validate_every_cadence_and_bad_value(stores):
    task = _task(stores, 3, 8)
    assert [e for e in range(8) if task.validates(e)] == [2, 5, 7]
    assert all(_task(stores, 1, 8).validates(e) for e in range(8))
    with pytest.raises(Exception, match="validate_every"):
        _task(stores, 0, 8)
