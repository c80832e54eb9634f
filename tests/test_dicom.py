"""DICOM series to NIfTI (voxseq.imaging.dicom): geometry, refusals, personal data, the rule."""

from __future__ import annotations

import gzip
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("pydicom")
from conftest import REPO  # noqa: E402
from dicom_fixture import (  # noqa: E402
    PATIENT_BIRTH,
    PATIENT_ID,
    PATIENT_NAME,
    oblique_affine,
    write_series,
)

from voxseq import VoxseqError  # noqa: E402
from voxseq.imaging.dicom import convert_series, scrub_sidecar  # noqa: E402
from voxseq.io.nifti import load_nifti  # noqa: E402

PLANTED = [PATIENT_NAME, *PATIENT_NAME.split("^"), PATIENT_BIRTH, PATIENT_ID, "Panza", "Mancha"]
SHAPE = (20, 24, 12)


def _stored(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-500, 2000, SHAPE).astype(np.int16)


def _outputs(tmp_path: Path, name: str = "image") -> tuple[Path, Path]:
    out = tmp_path / "out"
    return out / f"{name}.nii.gz", out / f"{name}.json"


def _all_bytes(folder: Path) -> bytes:
    """Every file under ``folder``, gzip members decompressed."""
    blobs = []
    for p in folder.rglob("*"):
        if p.is_file():
            raw = p.read_bytes()
            blobs.append(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    return b"\n".join(blobs)


def test_oblique_int16_series_has_the_niftis_geometry_and_voxels(tmp_path, caplog):
    stored, affine = _stored(), oblique_affine()
    write_series(tmp_path / "series", stored, affine, slope=0.5, intercept=-100.0)
    ref = nib.Nifti1Image(stored, affine)
    ref.header.set_slope_inter(0.5, -100.0)
    ref.set_sform(affine, code=1)
    ref.set_qform(affine, code=1)
    nib.save(ref, tmp_path / "ref.nii.gz")
    image, record = _outputs(tmp_path)
    with caplog.at_level(logging.INFO):
        rec = convert_series("S01", tmp_path / "series", image, record)
    a = load_nifti(tmp_path / "ref.nii.gz", "S01")
    b = load_nifti(image, "S01")
    assert np.abs(a.affine - b.affine).max() < 1e-3
    assert np.abs(a.original_affine[:3, 3] - affine[:3, 3]).max() < 1e-3
    assert a.data.shape == b.data.shape == SHAPE
    np.testing.assert_array_equal(a.data, b.data)
    assert b.data.min() == stored.min() * 0.5 - 100  # the rescale slope and intercept applied
    assert rec["series"]["series_number"] == 3 and rec["series"]["series_uid"].startswith("1.2.")
    assert rec["sidecar"]["EchoTime"] == pytest.approx(0.00298)
    assert json.loads(record.read_text()) == rec
    # nothing personal in the output files, the record or the log
    blob = _all_bytes(image.parent) + caplog.text.encode() + json.dumps(rec).encode()
    for value in PLANTED:
        assert value.encode() not in blob, value
    assert sorted(p.name for p in image.parent.iterdir()) == ["image.json", "image.nii.gz"]


def test_sidecar_scrub_drops_identifying_keys():
    side = {
        "PatientName": "x", "PatientBirthDate": "x", "InstitutionName": "x",
        "ReferringPhysicianName": "x", "AcquisitionDateTime": "x", "DeviceSerialNumber": "x",
        "ImageComments": "x", "StudyInstanceUID": "x", "EchoTime": 0.003,
        "SeriesDescription": "t1", "ProtocolName": "t1", "SliceThickness": 1.0,
        "ImageOrientationPatientDICOM": [1, 0, 0, 0, 1, 0], "PatientPosition": "HFS",
    }  # fmt: skip
    assert scrub_sidecar(side) == {
        "EchoTime": 0.003, "SeriesDescription": "t1", "ProtocolName": "t1", "SliceThickness": 1.0,
        "ImageOrientationPatientDICOM": [1, 0, 0, 0, 1, 0], "PatientPosition": "HFS",
    }  # fmt: skip


def test_two_series_refused_unless_one_is_chosen(tmp_path):
    study = tmp_path / "study"
    write_series(study / "a", _stored(), oblique_affine(), series_number=3, description="t1_sag")
    write_series(study / "b", _stored(1), oblique_affine(), series_number=5, description="FLAIR")
    image, record = _outputs(tmp_path)
    with pytest.raises(VoxseqError, match="subject S02") as err:
        convert_series("S02", study, image, record)
    msg = str(err.value)
    assert "2 volumes" in msg and "'t1_sag'" in msg and "'FLAIR'" in msg and str(study) in msg
    assert not image.exists() and not record.exists()
    rec = convert_series("S02", study, image, record, column="image_flair", series="flair")
    assert rec["series"]["series_number"] == 5 and len(rec["series_found"]) == 2
    assert any("2 volumes; 'flair' chose series 5" in w for w in rec["warnings"])
    with pytest.raises(VoxseqError, match="no volume matching 'dwi'.*t1_sag.*FLAIR"):
        convert_series("S02", study, image, record, series="dwi")
    with pytest.raises(VoxseqError, match="series pattern 't1\\(' is not a regular expression"):
        convert_series("S02", study, image, record, series="t1(")


def test_missing_slice_refused(tmp_path):
    write_series(tmp_path / "gap", _stored(), oblique_affine(), skip_slices=(5,))
    image, record = _outputs(tmp_path)
    with pytest.raises(VoxseqError, match="subject S03.*missing or unevenly spaced slices") as e:
        convert_series("S03", tmp_path / "gap", image, record)
    assert "Missing images" in str(e.value) and str(tmp_path / "gap") in str(e.value)
    assert not image.parent.exists() or not any(image.parent.iterdir())  # no leftovers


def test_series_without_pixel_data_refused(tmp_path):
    write_series(tmp_path / "nopix", _stored(), oblique_affine(), pixel_data=False)
    image, record = _outputs(tmp_path)
    with pytest.raises(VoxseqError, match="subject S04: image: DICOM folder .*nopix: no volume"):
        convert_series("S04", tmp_path / "nopix", image, record)
    assert not image.exists()


def test_localiser_is_converted_with_a_warning(tmp_path, caplog):
    write_series(tmp_path / "loc", _stored(), oblique_affine(), description="AAHead_Scout")
    image, record = _outputs(tmp_path)
    with caplog.at_level(logging.WARNING):
        rec = convert_series("S05", tmp_path / "loc", image, record)
    assert any("localiser" in w for w in rec["warnings"])
    assert "localiser" in caplog.text


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_pydicom_single_slice_files(tmp_path, name):
    """pydicom's test files are one 2D slice: refused as a volume, read alike when allowed."""
    import pydicom
    from pydicom.data import get_testdata_file

    src = get_testdata_file(name, download=False)
    if src is None:
        pytest.skip(f"pydicom does not ship {name}")
    (tmp_path / "in").mkdir()
    shutil.copy(src, tmp_path / "in" / name)
    image, record = _outputs(tmp_path)
    with pytest.raises(VoxseqError, match="1 slice\\(s\\), fewer than 2: a single 2D image"):
        convert_series("S06", tmp_path / "in", image, record)
    convert_series("S06", tmp_path / "in", image, record, min_slices=1)
    ds = pydicom.dcmread(src)
    vol = load_nifti(image, "S06")
    assert sorted(vol.data.shape) == sorted((ds.Rows, ds.Columns, 1))
    np.testing.assert_allclose(sorted(vol.spacing[:2]), sorted(map(float, ds.PixelSpacing)), 1e-5)
    expected = np.asarray(ds.pixel_array, np.float64) * float(ds.get("RescaleSlope", 1)) + float(
        ds.get("RescaleIntercept", 0)
    )
    assert np.isclose(vol.data.sum(), expected.sum(), rtol=1e-6)


def test_truncated_file_refused_with_dcm2niix_reason(tmp_path):
    from pydicom.data import get_testdata_file

    src = get_testdata_file("MR_truncated.dcm", download=False)
    if src is None:
        pytest.skip("pydicom does not ship MR_truncated.dcm")
    (tmp_path / "in").mkdir()
    shutil.copy(src, tmp_path / "in")
    image, record = _outputs(tmp_path)
    with pytest.raises(VoxseqError, match="no volume.*File not large enough"):
        convert_series("S07", tmp_path / "in", image, record)


def test_rule_imaging_dicom_runs(tmp_path):
    """The rule file with its layout, config and the two input functions it names."""
    write_series(tmp_path / "dicom" / "S08", _stored(), oblique_affine(), description="t1")
    (tmp_path / "Snakefile").write_text(
        f"""
import sys
sys.path.insert(0, "{REPO}")
from voxseq.plan.layout import Layout
L = Layout("c")
config = {{"imaging": {{"dicom": {{"min_slices": 2}}}}}}
def per_attempt(v):
    return v
class IN:
    def dicom_folder(wildcards):
        return f"dicom/{{wildcards.subject}}"
    def dicom_series(wildcards):
        return "t1"
include: "{REPO / "workflow" / "rules" / "dicom.smk"}"
"""
    )
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1",
         "results/c/imaging/dicom/S08/image.nii.gz"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "results" / "c"
    assert load_nifti(out / "imaging/dicom/S08/image.nii.gz", "S08").data.shape == SHAPE
    assert json.loads((out / "imaging/dicom/S08/image.json").read_text())["column"] == "image"
    log = (out / "logs/imaging/dicom/S08/image.log").read_text()
    assert "series 3 't1'" in log
    for value in PLANTED:
        assert value.encode() not in _all_bytes(out), value


def _tilted_ct(folder: Path, in_plane_sign: float) -> np.ndarray:
    """A CT with a 15 degree gantry tilt (each slice shifted 0.54 mm along y) and a bright spot
    in the far slices (~5 mm of shear); ``in_plane_sign`` -1 reverses rows and columns."""
    affine = np.diag([0.8 * -in_plane_sign, 0.8 * -in_plane_sign, 2.0, 1.0])  # +1: LPS axes
    affine[1, 2] = 2.0 * np.tan(np.deg2rad(15))
    stored = np.zeros(SHAPE, np.int16)
    stored[8:11, 10:13, 9:12] = 1000
    write_series(folder, stored, affine, gantry_tilt=15.0)
    return (affine @ [9, 11, 10, 1])[:3]  # the spot's centre, RAS mm


def test_gantry_tilt_is_corrected_and_recorded(tmp_path):
    """dcm2niix's tilt-corrected volume is kept: the spot lies where the DICOM places it."""
    expected = _tilted_ct(tmp_path / "ct", 1.0)
    image, record = _outputs(tmp_path)
    rec = convert_series("S09", tmp_path / "ct", image, record)
    assert rec["tilt_corrected"]
    assert any("gantry tilt of 15 degrees" in w for w in rec["warnings"])
    assert any("tilt-corrected volume" in w for w in rec["warnings"])
    vol = load_nifti(image, "S09")
    world = (vol.affine @ [*np.argwhere(vol.data > 500).mean(axis=0), 1])[:3]
    assert np.linalg.norm(world - expected) < 0.8, (world, expected)  # uncorrected: 5.4 mm off


def test_gantry_tilt_with_reversed_rows_refused(tmp_path):
    """With rows and columns reversed dcm2niix's correction shears the wrong way (10 mm off)."""
    _tilted_ct(tmp_path / "ct", -1.0)
    image, record = _outputs(tmp_path)
    with pytest.raises(VoxseqError, match="subject S10: .*gantry tilt.*not trusted"):
        convert_series("S10", tmp_path / "ct", image, record)
    assert not image.exists()
