"""Orientation handling, resampling, normalisation and NIfTI round trips."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from conftest import affine_for, write_nifti

from voxseq import VoxseqError
from voxseq.imaging.intensity import cohort_statistics, normalise
from voxseq.imaging.resample import resample, resampled_spacing, target_shape
from voxseq.io.nifti import load_nifti, save_nifti, to_original


@pytest.mark.parametrize("codes", ["RAS", "LPS", "LAS", "PSR", "ILA"])
def test_canonical_orientation_and_back(tmp_path, codes):
    shape = (10, 12, 14)
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    aff = affine_for(codes, shape)
    path = write_nifti(tmp_path / "x.nii.gz", data, aff)
    vol = load_nifti(path, "s1")
    assert nib.aff2axcodes(vol.affine) == ("R", "A", "S")
    assert vol.original_axcodes == tuple(codes)
    # every voxel keeps its world position
    for idx in [(0, 0, 0), (3, 5, 7), (9, 11, 13)]:
        world = aff @ np.array([*idx, 1.0])
        cidx = np.linalg.solve(vol.affine, world)[:3].round().astype(int)
        assert vol.data[tuple(cidx)] == data[idx]
    back = to_original(vol.data, vol.original_axcodes)
    np.testing.assert_array_equal(back, data)
    out = tmp_path / "y.nii.gz"
    save_nifti(out, back, vol.original_affine)
    img = nib.load(out)
    assert img.shape == shape
    np.testing.assert_allclose(img.affine, aff)


def test_spacing_reported_along_canonical_axes(tmp_path):
    shape = (20, 30, 10)
    aff = affine_for("PSR", shape, spacing=(0.8, 0.9, 3.0))
    vol = load_nifti(write_nifti(tmp_path / "x.nii.gz", np.zeros(shape, np.float32), aff), "s")
    np.testing.assert_allclose(vol.spacing, [0.8, 0.9, 3.0])


def test_single_volume_4d_accepted_and_5d_refused(tmp_path):
    aff = np.eye(4)
    p4 = write_nifti(tmp_path / "a.nii.gz", np.ones((6, 6, 6, 1), np.float32), aff)
    assert load_nifti(p4, "s").data.shape == (6, 6, 6)
    p5 = write_nifti(tmp_path / "b.nii.gz", np.ones((6, 6, 6, 2), np.float32), aff)
    with pytest.raises(VoxseqError, match=r"subject s: image .*b\.nii\.gz: expected a 3D"):
        load_nifti(p5, "s")


def test_resample_round_trip_smooth_volume():
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in (40, 36, 16)), indexing="ij")
    vol = np.exp(-(x**2 + y**2 + z**2) * 2).astype(np.float32)
    spacing = (1.0, 1.0, 2.5)
    shape = target_shape(vol.shape, spacing, (1.5, 1.5, 1.5))
    assert shape == (27, 24, 27)
    np.testing.assert_allclose(resampled_spacing(vol.shape, spacing, shape), (1.48, 1.5, 1.48),
                               atol=0.01)
    back = resample(resample(vol, shape, "linear"), vol.shape, "linear")
    assert np.abs(back - vol).max() < 0.03
    assert np.abs(back - vol).mean() < 0.005


def test_resample_labels_nearest_never_invents_values():
    rng = np.random.default_rng(0)
    lab = rng.choice([0, 2, 5], size=(20, 20, 8)).astype(np.uint8)
    out = resample(lab, (33, 27, 19), "nearest")
    assert out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 2, 5}


def test_resample_identity_shape_is_copy():
    a = np.random.default_rng(1).random((5, 6, 7)).astype(np.float32)
    np.testing.assert_array_equal(resample(a, a.shape, "cubic"), a)


def test_zscore_statistics():
    rng = np.random.default_rng(0)
    data = np.zeros((30, 30, 30), np.float32)
    data[5:25, 5:25, 5:25] = rng.normal(300, 40, size=(20, 20, 20))
    out = normalise(data, "zscore")
    fg = out[5:25, 5:25, 5:25]
    assert abs(fg.mean()) < 1e-4 and abs(fg.std() - 1) < 1e-4


def test_ct_uses_training_statistics_for_everyone():
    rng = np.random.default_rng(0)
    train = [rng.normal(40, 10, 5000), rng.normal(60, 10, 5000)]
    train[0][:10] = 5000  # outliers are clipped away
    stats = cohort_statistics(train)
    assert stats["p995"] < 200
    other = rng.normal(100, 10, 1000).astype(np.float32)  # a shifted new subject
    out = normalise(other, "ct", stats)
    # not re-centred on the new subject: its mean stays well above the training mean
    assert out.mean() > 1.5
    assert out.max() <= (stats["p995"] - stats["mean"]) / stats["std"] + 1e-5


def test_unknown_scheme_is_an_error():
    with pytest.raises(VoxseqError, match="unknown normalisation scheme 'minmax'"):
        normalise(np.zeros((2, 2, 2)), "minmax")
