"""Headers as they come: NIfTI pairs, trailing singleton dimensions, qform/sform disagreement and
headers with neither set."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import affine_for, write_nifti

from voxseq import VoxseqError
from voxseq.imaging import infer
from voxseq.imaging.ingest import ingest_subject
from voxseq.io.nifti import load_nifti, original_codes, pair_companion, save_nifti

SHAPE = (12, 10, 8)
AFFINE = affine_for("LPS", SHAPE, (2.0, 2.0, 3.0))


def _data(shape=SHAPE) -> np.ndarray:
    return np.random.default_rng(0).normal(100.0, 10.0, shape).astype(np.float32)


def _label() -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint8)
    lab[3:8, 3:7, 2:6] = 1
    return lab


def _save(path, data, qform=None, qcode=0, sform=None, scode=0, cls=nib.Nifti1Image):
    img = cls(data, None)
    img.header.set_qform(qform, code=qcode)
    img.header.set_sform(sform, code=scode)
    nib.save(img, str(path))
    return path


def _ingest(tmp_path, image, label=None, caplog=None):
    out = tmp_path / "ingest"
    with caplog.at_level(logging.WARNING, logger="voxseq.imaging.ingest"):
        meta = ingest_subject(
            "s01",
            str(image),
            str(label) if label else None,
            n_labels=2,
            seed=0,
            max_voxels=None,
            out_json=out / "s01.json",
            out_sample=out / "s01.fg.npy",
        )
    assert json.loads((out / "s01.json").read_text())["warnings"] == meta["warnings"]
    return meta


# ---- NIfTI pairs -------------------------------------------------------------------------------
def test_pair_companion():
    assert str(pair_companion("a/x.hdr")) == "a/x.img"
    assert str(pair_companion("a/x.img")) == "a/x.hdr"
    assert str(pair_companion("a/x.IMG")) == "a/x.HDR"
    assert str(pair_companion("a/x.hdr.gz")) == "a/x.img.gz"
    assert pair_companion("a/x.nii.gz") is None
    assert pair_companion("a/x.nii") is None


@pytest.mark.parametrize("name", ["x.hdr", "x.img", "x.hdr.gz"])
def test_pair_loads_like_nii_gz(tmp_path, name):
    data = _data()
    single = load_nifti(write_nifti(tmp_path / "x.nii.gz", data, AFFINE), "s01")
    pair_file = tmp_path / "pair" / name
    pair_file.parent.mkdir()
    nib.save(nib.Nifti1Pair(data, AFFINE), str(pair_file))
    assert pair_companion(pair_file).exists()
    vol = load_nifti(pair_file, "s01")
    np.testing.assert_array_equal(vol.data, single.data)
    np.testing.assert_allclose(vol.original_affine, single.original_affine)
    np.testing.assert_allclose(vol.affine, single.affine)
    assert vol.original_axcodes == ("L", "P", "S")
    assert vol.warnings == []


def test_pair_ingest_digests_both_files(tmp_path, caplog):
    """The data file of a pair is part of what ingest read: editing it changes the digest."""
    hdr = tmp_path / "img.hdr"
    nib.save(nib.Nifti1Pair(_data(), AFFINE), str(hdr))
    lab = tmp_path / "lab.hdr"
    nib.save(nib.Nifti1Pair(_label(), AFFINE), str(lab))
    meta = _ingest(tmp_path, hdr, lab, caplog)
    assert meta["sources"]["image_pair"]["path"] == str(tmp_path / "img.img")
    assert meta["sources"]["label_pair"]["path"] == str(tmp_path / "lab.img")
    assert set(meta["sha256"]) == {"image", "image_pair", "label", "label_pair"}
    assert meta["warnings"] == []
    nib.save(nib.Nifti1Pair(_data() + 1.0, AFFINE), str(hdr))  # same header, new voxels
    edited = _ingest(tmp_path, hdr, lab, caplog)
    assert edited["sha256"]["image"] == meta["sha256"]["image"]
    assert edited["sha256"]["image_pair"] != meta["sha256"]["image_pair"]


def test_pair_missing_data_file_named(tmp_path):
    hdr = tmp_path / "img.hdr"
    nib.save(nib.Nifti1Pair(_data(), AFFINE), str(hdr))
    (tmp_path / "img.img").unlink()
    with pytest.raises(VoxseqError, match=r"subject s01: image .*img\.hdr: .*img\.img, is missing"):
        load_nifti(hdr, "s01")


def test_analyze_pair_refused(tmp_path):
    hdr = tmp_path / "img.hdr"
    nib.save(nib.AnalyzeImage(_data(), np.diag([2.0, 2.0, 3.0, 1.0])), str(hdr))
    with pytest.raises(VoxseqError, match=r"subject s01: image .*img\.hdr: an Analyze 7\.5 pair"):
        load_nifti(hdr, "s01")


# ---- dimensions --------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [(1,), (1, 1), (1, 1, 1)])
def test_trailing_singleton_dimensions_dropped(tmp_path, extra):
    data = _data()
    path = write_nifti(tmp_path / "x.nii.gz", data.reshape(SHAPE + extra), AFFINE)
    vol = load_nifti(path, "s01")
    assert vol.original_shape == SHAPE
    np.testing.assert_array_equal(
        vol.data, load_nifti(write_nifti(tmp_path / "y.nii.gz", data, AFFINE), "s01").data
    )


@pytest.mark.parametrize("shape", [SHAPE + (3,), SHAPE + (1, 3)])
def test_several_volumes_refused_naming_subject_and_file(tmp_path, caplog, shape):
    """Without imaging.channels naming them, a file's several volumes are refused (as
    channels: see tests/test_imaging_channels.py), at ingest and by load_nifti itself."""
    path = write_nifti(tmp_path / "multi.nii.gz", _data(shape), AFFINE)
    with pytest.raises(VoxseqError) as err:
        _ingest(tmp_path, path, caplog=caplog)
    msg = str(err.value)
    assert msg.startswith(f"subject s01: image {path}: holds 3 volume(s)")
    assert "channels ['image'] (imaging.channels" in msg
    assert not (tmp_path / "ingest" / "s01.json").exists()
    with pytest.raises(VoxseqError) as err:
        load_nifti(path, "s01")
    assert f"got shape {shape}: 3 volumes in one file; to read them as input channels" in str(
        err.value
    )


# ---- qform and sform ---------------------------------------------------------------------------
def test_qform_and_sform_disagree_warns_and_uses_sform(tmp_path, caplog):
    qform = affine_for("RAS", SHAPE, (2.0, 2.0, 3.0))
    path = _save(tmp_path / "x.nii.gz", _data(), qform, 1, AFFINE, 2)
    meta = _ingest(tmp_path, path, caplog=caplog)
    np.testing.assert_allclose(meta["affine"], AFFINE)
    assert meta["orientation"] == "LPS"
    assert (meta["qform_code"], meta["sform_code"], meta["affine_source"]) == (1, 2, "sform")
    [warning] = meta["warnings"]
    assert warning.startswith(
        f"subject s01: image {path}: qform (code 1 scanner, axes RAS) and "
        "sform (code 2 aligned, axes LPS) disagree by up to"
    )
    assert "using the sform" in warning
    assert warning in caplog.text


def test_qform_and_sform_equal_to_float32_do_not_warn(tmp_path, caplog):
    affine = AFFINE.copy()
    affine[:3, 3] = [10.123456, -20.654321, 33.333333]  # not exact in a float32 quaternion
    path = _save(tmp_path / "x.nii.gz", _data(), affine, 1, affine, 1)
    meta = _ingest(tmp_path, path, caplog=caplog)
    assert meta["warnings"] == []
    assert "qform" not in caplog.text


def test_label_header_warnings_recorded(tmp_path, caplog):
    image = write_nifti(tmp_path / "img.nii.gz", _data(), AFFINE)
    other = AFFINE.copy()
    other[0, 3] += 4.0
    label = _save(tmp_path / "lab.nii.gz", _label(), other, 1, AFFINE, 1)
    [warning] = _ingest(tmp_path, image, label, caplog)["warnings"]
    assert warning.startswith(f"subject s01: label {label}: qform")


# ---- neither set -------------------------------------------------------------------------------
def _fake_segmentation(monkeypatch, geo: dict, n_labels: int = 2):
    """segment_subject with the store and bundle replaced: the prediction is label 1 wherever
    the canonical image is above its mean, so the written file can be checked voxel by voxel."""
    image = np.asarray(geo.pop("_canonical"), np.float32)
    store = SimpleNamespace(
        meta=geo, image=image, channels=["image"], read_image=lambda: image[None]
    )
    pre = {"in_channels": 1, "normalisation": "zscore", "labels": ["bg", "fg"][:n_labels]}
    monkeypatch.setattr(infer, "open_store", lambda path: store)
    monkeypatch.setattr(
        infer, "load_bundle", lambda path, modality: (torch.nn.Identity(), {"preprocessing": pre})
    )
    monkeypatch.setattr(infer, "bundle_digest", lambda path: "0" * 64)

    def predict(model, volume, pre, device):
        volume = volume[0]  # (C, X, Y, Z): the one channel
        fg = (volume > volume.mean()).astype(np.float32)
        return np.stack([1.0 - fg, fg])

    monkeypatch.setattr(infer, "predict_volume", predict)


def _geometry(vol) -> dict:
    """The store geometry as imaging normalise records it (with the header codes)."""
    return {
        "canonical_shape": list(vol.data.shape),
        "original_shape": list(vol.original_shape),
        "original_axcodes": list(vol.original_axcodes),
        "original_affine": vol.original_affine.tolist(),
        "original_qform_code": vol.qform_code,
        "original_sform_code": vol.sform_code,
        "normalisation": "zscore",
        "_canonical": vol.data,
    }


def test_no_codes_warns_and_output_stays_unknown(tmp_path, caplog, monkeypatch):
    data = _data()
    path = _save(tmp_path / "x.nii.gz", data, AFFINE, 0, AFFINE, 0)
    header = nib.load(path).header
    assert (int(header["qform_code"]), int(header["sform_code"])) == (0, 0)
    meta = _ingest(tmp_path, path, caplog=caplog)
    assert (meta["qform_code"], meta["sform_code"], meta["affine_source"]) == (0, 0, "pixdim")
    [warning] = meta["warnings"]
    assert warning.startswith(
        f"subject s01: image {path}: neither qform nor sform is set "
        "(both codes 0): the orientation is unknown; voxels are placed by "
        "the pixdim fallback (2, 2, 3 mm, axes read as LAS)"
    )
    assert warning in caplog.text

    vol = load_nifti(path, "s01")
    _fake_segmentation(monkeypatch, _geometry(vol))
    out = tmp_path / "s01_seg.nii.gz"
    infer.segment_subject("s01", "store", "bundle", str(out), str(tmp_path / "s01.json"))
    seg = nib.load(out)
    assert (int(seg.header["qform_code"]), int(seg.header["sform_code"])) == (0, 0)
    assert seg.header.get_sform(coded=True)[1] == 0
    assert seg.shape == SHAPE
    np.testing.assert_allclose(seg.affine, nib.load(path).affine)  # the same fallback grid
    np.testing.assert_array_equal(np.asarray(seg.dataobj), data > data.mean())


@pytest.mark.parametrize("codes", [(1, 1), (0, 2), (2, 0)])
def test_segmentation_mirrors_input_codes(tmp_path, monkeypatch, codes):
    qcode, scode = codes
    path = _save(tmp_path / "x.nii.gz", _data(), AFFINE, qcode, AFFINE, scode)
    vol = load_nifti(path, "s01")
    _fake_segmentation(monkeypatch, _geometry(vol))
    out = tmp_path / "s01_seg.nii.gz"
    infer.segment_subject("s01", "store", "bundle", str(out), str(tmp_path / "s01.json"))
    seg = nib.load(out)
    assert (int(seg.header["qform_code"]), int(seg.header["sform_code"])) == codes
    np.testing.assert_allclose(seg.affine, AFFINE, atol=1e-5)


def test_save_nifti_defaults_and_old_records_keep_scanner(tmp_path):
    """Records written before the codes were kept (and callers not passing them) write 1."""
    assert original_codes({}) == {"qform_code": 1, "sform_code": 1}
    out = tmp_path / "y.nii.gz"
    save_nifti(out, np.zeros(SHAPE, np.uint8), AFFINE)
    hdr = nib.load(out).header
    assert (int(hdr["qform_code"]), int(hdr["sform_code"])) == (1, 1)
