"""From the scanner to results: a BIDS dataset's sheet (voxseq-sheet bids), one subject's image
given as a DICOM series folder, run end to end at tiny scale."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import yaml
from bids_fixture import make_bids_dataset
from conftest import REPO, run_snakemake
from dicom_fixture import PATIENT_BIRTH, PATIENT_ID, PATIENT_NAME, write_series

from voxseq.io.atomic import read_tsv
from voxseq.sheet import main as sheet_main

PLANTED = [PATIENT_NAME, *PATIENT_NAME.split("^"), PATIENT_BIRTH, PATIENT_ID]


def test_bids_sheet_with_a_dicom_series_runs_end_to_end(tmp_path):
    root = tmp_path / "bids"
    # three scans (one session a subject): one in each split
    make_bids_dataset(root, subjects=("01", "02", "03"), sessions=("1",), shape=(24, 24, 16))
    sheet = tmp_path / "sheets" / "samples.tsv"
    assert sheet_main(["bids", str(root), "--channel", "FLAIR", "--class-column", "group",
                       "-o", str(sheet)]) == 0
    rows = read_tsv(sheet)
    # sub-01_ses-1's T1w arrives as a DICOM series (int16 with a rescale slope) instead
    first = rows[0]
    t1 = nib.load(sheet.parent / first["image"])
    world = t1.get_fdata()
    stored = np.round(world / 0.5).astype(np.int16)  # world = stored * 0.5
    write_series(tmp_path / "dicom" / first["subject"], stored, t1.affine, slope=0.5)
    first["image"] = str(tmp_path / "dicom" / first["subject"])
    header = list(rows[0])
    sheet.write_text("\t".join(header) + "\n"
                     + "".join("\t".join(r[c] for c in header) + "\n" for r in rows))
    cfg = {
        "cohort": "scan", "demo": {"enabled": False}, "samples": str(sheet),
        "genomics": {"enabled": False}, "qc": {"enabled": False},
        "imaging": {"target_spacing": [1.0, 1.0, 1.0], "patch_size": [16, 16, 16],
                    "classify": {"enabled": False}},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    args = ["--configfile", str(REPO / "tests/config/tiny.yaml"), str(tmp_path / "cfg.yaml")]
    run_snakemake(tmp_path / "run", *args, "--cores", "2")

    res = tmp_path / "run" / "results" / "scan"
    sid = first["subject"]
    record = json.loads((res / f"imaging/dicom/{sid}/image.json").read_text())
    assert record["column"] == "image"
    ingest = json.loads((res / f"imaging/ingest/{sid}.json").read_text())
    assert [c["column"] for c in ingest["channels"]] == ["image", "image_flair"]
    # the converted series holds the T1w's voxels in world coordinates (dcm2niix stores one axis
    # reversed: same grid once both are in canonical order, as ingest compares them)
    converted = nib.as_closest_canonical(nib.load(res / f"imaging/dicom/{sid}/image.nii.gz"))
    original = nib.as_closest_canonical(nib.Nifti1Image(stored * 0.5, t1.affine))
    np.testing.assert_allclose(converted.affine, original.affine, atol=1e-3)
    np.testing.assert_allclose(converted.get_fdata(), original.get_fdata(), atol=1e-3)
    table = read_tsv(res / "imaging/cohort.tsv")
    assert sorted(r["subject"] for r in table) == sorted(r["subject"] for r in rows)
    assert json.loads((res / "plan.json").read_text())["dicom_series"] == 1
    for path in res.rglob("*"):  # no personal data from the DICOM headers in any result
        if path.is_file() and path.suffix in (".json", ".tsv", ".log", ".html"):
            text = path.read_text(errors="replace")
            assert not [v for v in PLANTED if v in text], path
