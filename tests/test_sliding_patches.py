"""Patch sampling and Gaussian sliding-window stitching."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from voxseq.imaging.patches import PatchSampler, foreground_centres, patch_start, read_patch
from voxseq.imaging.sliding import gaussian_importance, sliding_window_logits, window_starts
from voxseq.models import build_model


def test_window_starts_cover_and_overlap():
    assert window_starts(32, 32) == [0]
    assert window_starts(20, 32) == [0]
    s = window_starts(100, 32, 0.5)
    assert s[0] == 0 and s[-1] == 68
    assert all(b - a <= 16 for a, b in zip(s, s[1:], strict=False))
    with pytest.raises(ValueError, match="overlap"):
        window_starts(10, 4, 1.0)


def test_gaussian_map_peak_in_centre_no_zeros():
    w = gaussian_importance((16, 16, 8))
    assert w.max() == pytest.approx(1.0)
    assert (w > 0).all()
    assert w[8, 8, 4] > w[0, 0, 0]


def test_stitching_equals_direct_forward_pass_on_one_window(device):
    torch.manual_seed(0)
    model = build_model("unet3d", in_channels=1, out_channels=3, depth=2, base_channels=4)
    model.to(device).eval()
    vol = np.random.default_rng(0).normal(size=(16, 16, 8)).astype(np.float32)
    with torch.no_grad():
        direct = model(torch.from_numpy(vol)[None, None].to(device))[0].cpu()
        stitched = sliding_window_logits(model, vol, (16, 16, 8), 3, device=device)
    torch.testing.assert_close(stitched, direct, rtol=1e-5, atol=1e-5)


def test_stitching_constant_model_is_exact_on_many_windows():
    def predict(x):  # logits equal to the input: stitching must reproduce the volume
        return torch.cat([x, -x], dim=1)

    vol = np.random.default_rng(1).normal(size=(37, 23, 11)).astype(np.float32)
    out = sliding_window_logits(predict, vol, (16, 16, 8), 2, overlap=0.5, batch_size=3)
    assert out.shape == (2, 37, 23, 11)
    np.testing.assert_allclose(out[0].numpy(), vol, rtol=1e-5, atol=1e-5)


def test_stitching_pads_small_volumes():
    vol = np.ones((5, 6, 7), np.float32)
    out = sliding_window_logits(lambda x: x, vol, (8, 8, 8), 1)
    assert out.shape == (1, 5, 6, 7)
    np.testing.assert_allclose(out.numpy(), 1.0)


def test_foreground_fraction_of_sampled_patches():
    label = np.zeros((60, 60, 40), np.uint8)
    label[10:14, 10:14, 10:14] = 1  # tiny structure: random patches rarely hit it
    centres = foreground_centres(label, 2, 500, seed=0)
    assert len(centres) == 64 and (centres[:, 0] == 1).all()
    sampler = PatchSampler([label.shape], [centres], (16, 16, 16), fg_fraction=0.4, seed=3)
    specs = sampler.epoch(0, 2000)
    hit = [read_patch(label, s.start, (16, 16, 16)).any() for s in specs]
    frac_flagged = np.mean([s.foreground for s in specs])
    assert 0.36 < frac_flagged < 0.44
    assert all(h for h, s in zip(hit, specs, strict=True) if s.foreground)
    assert np.mean(hit) >= frac_flagged
    assert sampler.epoch(0, 50) == sampler.epoch(0, 50)
    assert sampler.epoch(1, 50) != sampler.epoch(0, 50)


def test_patch_start_stays_inside():
    assert patch_start((0, 0, 0), (50, 50, 50), (16, 16, 16)) == (0, 0, 0)
    assert patch_start((49, 49, 49), (50, 50, 50), (16, 16, 16)) == (34, 34, 34)
    assert patch_start((3, 3, 3), (10, 10, 10), (16, 16, 16)) == (0, 0, 0)


def _naive_stitch(predict, vol, patch, n_out, overlap=0.5):
    """Per-window float64 reference: sum of Gaussian-weighted logits over sum of weights."""
    import itertools

    from voxseq.imaging.sliding import window_starts

    w = gaussian_importance(patch).astype(np.float64)
    acc = np.zeros((n_out, *vol.shape[1:]))
    wsum = np.zeros(vol.shape[1:])
    starts = [window_starts(s, p, overlap) for s, p in zip(vol.shape[1:], patch, strict=True)]
    for st in itertools.product(*starts):
        sl = tuple(slice(b, b + p) for b, p in zip(st, patch, strict=True))
        x = torch.from_numpy(np.ascontiguousarray(vol[(slice(None), *sl)]))[None]
        acc[(slice(None), *sl)] += predict(x)[0].double().numpy() * w
        wsum[sl] += w
    return acc / wsum


@pytest.mark.parametrize(
    "layout", ["contiguous", "read_only", "flipped", "transposed", "offset", "float64"]
)
def test_stitching_any_input_layout_matches_per_window_reference(layout):
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(2, 3, 3, padding=1).eval()  # two input channels, not pointwise
    rng = np.random.default_rng(8)
    base = rng.normal(size=(2, 30, 26, 19)).astype(np.float32)
    vol = {
        "contiguous": base,
        "read_only": base.copy(),
        "flipped": base[:, ::-1].copy()[:, ::-1],  # same values, negative strides
        "transposed": np.ascontiguousarray(base.transpose(0, 3, 2, 1)).transpose(0, 3, 2, 1),
        "offset": np.pad(base, ((0, 0), (3, 0), (0, 0), (0, 0)))[:, 3:],  # starts mid-buffer
        "float64": base.astype(np.float64),
    }[layout]
    if layout == "read_only":
        vol.setflags(write=False)
    assert np.array_equal(vol, base)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")  # no "not writable" warning from torch either
        out = sliding_window_logits(conv, vol, (16, 12, 8), 3, overlap=0.5, batch_size=3)
        ref = _naive_stitch(conv, base, (16, 12, 8), 3)
    assert out.shape == (3, 30, 26, 19) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(vol, base)  # the input is left alone
