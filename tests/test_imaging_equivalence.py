"""The faster resampling, stitching and stores give today's results.

Each test compares the current implementation with a frozen copy of the one it replaced (commit
9e7dd39), on fixed seeded inputs: labels and stored values bit-identical, floats within float32
rounding.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.ndimage import affine_transform

from voxseq.imaging.resample import resample
from voxseq.imaging.sliding import gaussian_importance, sliding_window_logits, window_starts


def resample_v0(data, out_shape, order=1):
    """voxseq.imaging.resample.resample at 9e7dd39 (scipy affine_transform per channel)."""
    order = {"nearest": 0, "linear": 1, "cubic": 3}[order] if isinstance(order, str) else order
    if data.ndim == 4:
        return np.stack([resample_v0(c, out_shape, order) for c in data])
    scale = np.array(data.shape, dtype=np.float64) / np.array(out_shape, dtype=np.float64)
    if tuple(data.shape) == tuple(out_shape):
        return data.copy()
    src = data if order == 0 else data.astype(np.float32, copy=False)
    return affine_transform(
        src,
        scale,
        offset=0.5 * scale - 0.5,
        output_shape=tuple(int(s) for s in out_shape),
        order=order,
        mode="nearest",
        prefilter=order > 1,
    )


SHAPES = [
    ((197, 233, 189), (131, 155, 76)),  # 1 mm -> 1.5 x 1.5 x 2.5 mm
    ((131, 155, 76), (197, 233, 189)),  # and back
    ((7, 5, 3), (20, 11, 3)),
    ((30, 1, 17), (9, 4, 17)),
    ((1, 2, 3), (3, 2, 1)),
]


@pytest.mark.parametrize(("shape", "out"), SHAPES)
def test_nearest_labels_bit_identical(shape, out):
    lab = np.random.default_rng(0).integers(0, 5, shape).astype(np.uint8)
    new = resample(lab, out, "nearest")
    np.testing.assert_array_equal(new, resample_v0(lab, out, 0))
    assert new.dtype == np.uint8 and new.flags.c_contiguous


def test_nearest_matches_scipy_on_every_small_size_pair():
    rng = np.random.default_rng(1)
    for n_in, n_out in itertools.product(range(1, 41), range(1, 41)):
        a = rng.integers(0, 255, (n_in, 2, 1)).astype(np.uint8)
        np.testing.assert_array_equal(
            resample(a, (n_out, 2, 1), 0), resample_v0(a, (n_out, 2, 1), 0)
        )


@pytest.mark.parametrize(("shape", "out"), SHAPES)
def test_linear_matches_today_within_float_rounding(shape, out):
    rng = np.random.default_rng(2)
    img = (rng.normal(size=shape) * 100 + 300).astype(np.float32)
    # scipy (normalise, stats): today's code exactly
    np.testing.assert_array_equal(resample(img, out, "linear"), resample_v0(img, out, "linear"))
    new, old = resample(img, out, "linear", engine="torch"), resample_v0(img, out, "linear")
    assert new.dtype == np.float32 and new.shape == tuple(out)
    # coordinates in float32 (torch) rather than float64: error ~ 1e-6 of a voxel per voxel index
    np.testing.assert_allclose(new, old, rtol=0, atol=1e-4 * float(np.ptp(img)))


def test_linear_probabilities_all_channels_at_once():
    rng = np.random.default_rng(3)
    probs = torch.from_numpy(rng.normal(size=(3, 40, 31, 19)).astype(np.float32)).softmax(0).numpy()
    new = resample(probs, (61, 47, 30), "linear", engine="torch")
    old = resample_v0(probs, (61, 47, 30), "linear")
    np.testing.assert_allclose(new, old, rtol=0, atol=1e-5)
    assert (new.argmax(0) == old.argmax(0)).mean() > 0.9999


def test_cubic_and_float64_unchanged():
    rng = np.random.default_rng(4)
    img = rng.normal(size=(12, 9, 7))
    np.testing.assert_array_equal(
        resample(img, (8, 13, 7), "cubic"), resample_v0(img, (8, 13, 7), 3)
    )
    lin = resample(img, (8, 13, 7), 1, engine="torch")
    assert lin.dtype == np.float32
    np.testing.assert_allclose(lin, resample_v0(img, (8, 13, 7), 1), atol=1e-5)
    same = resample(img, img.shape, 1)
    assert same is not img and np.array_equal(same, img)
    with pytest.raises(ValueError, match="engine"):
        resample(img, (8, 13, 7), 1, engine="cuda")


def sliding_window_logits_v0(
    predict, volume, patch, n_out, overlap=0.5, batch_size=4, sigma_scale=0.125, mirror_axes=()
):
    """voxseq.imaging.sliding.sliding_window_logits at 9e7dd39 (CPU)."""
    vol = np.asarray(volume, np.float32)
    if vol.ndim == 3:
        vol = vol[None]
    shape = vol.shape[1:]
    padded = [max(s, p) for s, p in zip(shape, patch, strict=True)]
    if list(padded) != list(shape):
        buf = np.zeros((vol.shape[0], *padded), np.float32)
        buf[:, : shape[0], : shape[1], : shape[2]] = vol
        vol = buf
    x = torch.from_numpy(vol)
    acc = torch.zeros((n_out, *padded), dtype=torch.float32)
    wsum = torch.zeros(padded, dtype=torch.float32)
    weight = torch.from_numpy(gaussian_importance(patch, sigma_scale))
    starts = list(
        itertools.product(
            *(window_starts(s, p, overlap) for s, p in zip(padded, patch, strict=True))
        )
    )
    flips = [()] + [
        c for r in range(1, len(mirror_axes) + 1) for c in itertools.combinations(mirror_axes, r)
    ]
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        sl = [tuple(slice(b, b + p) for b, p in zip(st, patch, strict=True)) for st in chunk]
        batch = torch.stack([x[(slice(None), *s)] for s in sl])
        out = torch.zeros((len(chunk), n_out, *patch))
        for f in flips:
            dims = [d + 2 for d in f]
            xb = torch.flip(batch, dims) if dims else batch
            yb = predict(xb).float()
            out += torch.flip(yb, dims) if dims else yb
        out = (out / len(flips)) * weight
        for j, s in enumerate(sl):
            acc[(slice(None), *s)] += out[j]
            wsum[s] += weight
    acc /= wsum
    return acc[:, : shape[0], : shape[1], : shape[2]].contiguous()


@pytest.mark.parametrize(
    ("shape", "patch", "overlap", "batch", "mirror"),
    [
        ((37, 23, 11), (16, 16, 8), 0.5, 3, ()),
        ((64, 50, 40), (24, 16, 16), 0.25, 4, ()),
        ((5, 30, 7), (8, 8, 8), 0.5, 2, (0, 2)),  # padded, mirrored
        ((40, 40, 20), (16, 16, 8), 0.5, 5, (0, 1, 2)),
    ],
)
def test_stitching_matches_today(shape, patch, overlap, batch, mirror):
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(2, 3, 3, padding=1).eval()  # not pointwise: weighting matters
    vol = np.random.default_rng(5).normal(size=(2, *shape)).astype(np.float32)
    with torch.no_grad():
        new = sliding_window_logits(conv, vol, patch, 3, overlap, batch, mirror_axes=mirror)
        old = sliding_window_logits_v0(conv, vol, patch, 3, overlap, batch, mirror_axes=mirror)
    assert new.shape == old.shape == (3, *shape)
    torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-6)


def test_stitching_identity_predictor_with_mirroring_leaves_input_alone():
    vol = np.random.default_rng(6).normal(size=(20, 18, 9)).astype(np.float32)
    copy = vol.copy()
    out = sliding_window_logits(lambda x: x, vol, (8, 8, 8), 1, mirror_axes=(0, 1))
    np.testing.assert_array_equal(vol, copy)
    np.testing.assert_allclose(out[0].numpy(), vol, rtol=1e-5, atol=1e-5)


def test_underflowing_gaussian_is_still_an_error():
    # sigma so small that the float32 map has zeros at its corners: 0 / 0 there, today and now
    vol = np.random.default_rng(7).normal(size=(30, 20, 10)).astype(np.float32)
    old = sliding_window_logits_v0(lambda x: x, vol, (16, 16, 8), 1, sigma_scale=0.02)
    assert not torch.isfinite(old).all()
    with pytest.raises(FloatingPointError, match="non-finite"):
        sliding_window_logits(lambda x: x, vol, (16, 16, 8), 1, sigma_scale=0.02)


def write_store_v0(path, image, label):
    """The arrays of voxseq.imaging.store.write_store at 9e7dd39: zstd (zarr's default), 32^3."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    chunks = tuple(min(32, s) for s in image.shape)
    root.create_array("0", shape=image.shape, dtype="float32", chunks=chunks)[...] = image
    lab = root.create_group("labels").create_group("label")
    lab.create_array("0", shape=label.shape, dtype="uint8", chunks=chunks)[...] = label
    root.attrs.update({"voxseq": {}})
    return path


def _volumes(shape=(45, 38, 21), seed=8):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=shape).astype(np.float32)
    image[rng.random(shape) < 0.2] = 0.0
    return image, rng.integers(0, 3, shape).astype(np.uint8)


@pytest.mark.parametrize("chunk_bytes", [None, 3000])  # one chunk; many chunks along X
def test_stored_values_and_patches_bit_identical(tmp_path, monkeypatch, chunk_bytes):
    from voxseq.imaging import store as store_mod
    from voxseq.imaging.patches import read_patch

    if chunk_bytes:
        monkeypatch.setattr(store_mod, "CHUNK_BYTES", chunk_bytes)
    image, label = _volumes()
    store_mod.write_store(tmp_path / "new.zarr", image, label, (1, 1, 1), {"subject": "s"})
    new = store_mod.open_store(tmp_path / "new.zarr")
    old = store_mod.open_store(write_store_v0(tmp_path / "old.zarr", image, label))
    assert store_mod._raw_layout(new.image) is not None  # the memory-mapped path is taken
    assert store_mod._raw_layout(old.image) is None
    if chunk_bytes:
        assert new.image.chunks[0] < image.shape[0]
    np.testing.assert_array_equal(new.image[...], image)
    np.testing.assert_array_equal(new.label[...], label)
    assert new.image[...].tobytes() == old.image[...].tobytes()
    rng = np.random.default_rng(9)
    patch = (16, 16, 8)
    starts = [tuple(int(rng.integers(0, s)) for s in image.shape) for _ in range(60)]
    for st in [*starts, (0, 0, 0), (40, 30, 20), (44, 37, 20)]:
        for a_new, a_old, ref in ((new.image, old.image, image), (new.label, old.label, label)):
            got = read_patch(a_new, st, patch)
            want = read_patch(a_old, st, patch)  # through zarr, old layout
            assert got.dtype == want.dtype == ref.dtype and got.shape == patch
            assert got.tobytes() == want.tobytes()
            sl = tuple(slice(b, b + p) for b, p in zip(st, patch, strict=True))
            np.testing.assert_array_equal(got[tuple(slice(0, n) for n in ref[sl].shape)], ref[sl])


def test_all_background_label_chunk_reads_as_zeros(tmp_path):
    from voxseq.imaging.patches import read_patch
    from voxseq.imaging.store import open_store, write_store

    image, _ = _volumes((20, 20, 10))
    write_store(tmp_path / "z.zarr", image, np.zeros(image.shape, np.uint8), (1, 1, 1), {})
    st = open_store(tmp_path / "z.zarr")
    np.testing.assert_array_equal(read_patch(st.label, (4, 4, 2), (8, 8, 8)), 0)
    np.testing.assert_array_equal(
        read_patch(st.image, (4, 4, 2), (8, 8, 8)), image[4:12, 4:12, 2:10]
    )


def test_rewritten_store_is_not_read_from_a_stale_map(tmp_path):
    from voxseq.imaging.patches import read_patch
    from voxseq.imaging.store import open_store, write_store

    a, la = _volumes((20, 20, 10), seed=1)
    b, lb = _volumes((20, 20, 10), seed=2)
    write_store(tmp_path / "s.zarr", a, la, (1, 1, 1), {})
    np.testing.assert_array_equal(
        read_patch(open_store(tmp_path / "s.zarr").image, (0, 0, 0), (8, 8, 8)), a[:8, :8, :8]
    )
    write_store(tmp_path / "s.zarr", b, lb, (1, 1, 1), {})
    np.testing.assert_array_equal(
        read_patch(open_store(tmp_path / "s.zarr").image, (0, 0, 0), (8, 8, 8)), b[:8, :8, :8]
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_one_non_finite_logit_is_an_error(bad):
    vol = np.random.default_rng(10).normal(size=(30, 20, 10)).astype(np.float32)
    vol[17, 3, 4] = bad
    with pytest.raises(FloatingPointError, match="non-finite"):
        sliding_window_logits(lambda x: x, vol, (16, 16, 8), 1)
