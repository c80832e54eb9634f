"""voxseq-sheet: sample sheets from a BIDS dataset and from a scanned folder."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from bids_fixture import PARTICIPANTS, make_bids_dataset
from conftest import REPO

from voxseq.imaging.ingest import ingest_subject
from voxseq.io.sheet import read_sheet
from voxseq.sheet import main


@pytest.fixture
def bids(tmp_path):
    root = tmp_path / "bids"
    info = make_bids_dataset(root, missing=(("03", "2", "FLAIR"),), shape=(8, 8, 6))
    return root, info


def test_fixture_is_valid_bids(bids):
    validator = pytest.importorskip("bids_validator").BIDSValidator()
    root, info = bids
    assert len(info["files"]) > 20
    rejected = [f for f in info["files"] if not validator.is_bids(f)]
    assert rejected == []
    assert not validator.is_bids("/sub-01/anat/sub-01_ses-1_T1w.nii.gz")  # the check can fail


def test_bids_sheet_sessions_channels_labels_class(bids, tmp_path, capsys, caplog):
    root, info = bids
    out = tmp_path / "sheets" / "samples.tsv"
    argv = ["bids", str(root), "--channel", "FLAIR", "--class-column", "group", "-o", str(out)]
    with caplog.at_level(logging.WARNING):
        assert main(argv) == 0
    rows = read_sheet(out)
    expected = sorted(k for k in info["sessions"] if k != "sub-03_ses-2")
    assert [r["subject"] for r in rows] == expected
    for r in rows:
        files = info["sessions"][r["subject"]]
        assert r["image"] == files["T1w"] and r["image_flair"] == files["FLAIR"]
        assert r["label"] == files["dseg"]
        assert r["class"] == PARTICIPANTS[r["subject"][4:6]][2]
    assert "sub-03_ses-2: no FLAIR file" in caplog.text  # listed, not dropped in silence
    # the rows are what ingest reads: image and FLAIR channels, the label on their grid
    meta = ingest_subject(
        rows[0]["subject"], rows[0]["image"], rows[0]["label"], n_labels=3, seed=0,
        max_voxels=None, out_json=tmp_path / "i.json", out_sample=tmp_path / "i.npy",
        images=[("image", rows[0]["image"]), ("image_flair", rows[0]["image_flair"])],
        channels=["image", "flair"],
    )  # fmt: skip
    assert (
        meta["label_voxels"][2] > 0 and [c["column"] for c in meta["channels"]][1] == "image_flair"
    )
    assert "../bids/sub-01" in out.read_text()  # relative to the sheet's folder
    printed = capsys.readouterr().out
    assert f"samples: {out}" in printed and "demo: {enabled: false}" in printed
    assert "genomics: {enabled: false}" in printed


def test_bids_covariates_behind_a_flag(bids, tmp_path, caplog):
    root, _ = bids
    out = tmp_path / "cov.tsv"
    assert main(["bids", str(root), "-o", str(out)]) == 0
    assert out.read_text().splitlines()[0].split("\t") == ["subject", "image", "label"]
    with caplog.at_level(logging.WARNING):
        assert main(["bids", str(root), "--covariates", "-o", str(out)]) == 0
    header, *lines = (line.split("\t") for line in out.read_text().splitlines())
    assert header[-3:] == ["age", "sex", "covar_group"]
    first = dict(zip(header, lines[0], strict=True))
    assert (first["age"], first["sex"], first["covar_group"]) == ("34", "F", "control")
    rows = read_sheet(out)  # the sheet check takes the covariates as any other column
    assert len(rows) == 6 and (rows[0]["age"], rows[0]["sex"]) == ("34", "F")


def test_bids_strict_missing_participant_and_no_sessions(tmp_path, caplog):
    root = tmp_path / "flat"
    gone = (("04", "", "T1w"), ("04", "", "FLAIR"), ("04", "", "dseg"))
    make_bids_dataset(root, subjects=("01", "02", "04"), sessions=(), shape=(6, 6, 4), missing=gone)
    out = tmp_path / "s.tsv"
    with caplog.at_level(logging.WARNING):
        assert main(["bids", str(root), "--strict", "-o", str(out)]) == 1
    assert "sub-04: no NIfTI file at all" in caplog.text and not out.exists()
    assert main(["bids", str(root), "-o", str(out)]) == 0
    assert [r["subject"] for r in read_sheet(out)] == ["sub-01", "sub-02"]


def test_bids_two_runs_are_ambiguous(bids, tmp_path, caplog):
    root, info = bids
    t1 = Path(info["sessions"]["sub-02_ses-1"]["T1w"])
    (t1.parent / "sub-02_ses-1_run-2_T1w.nii.gz").write_bytes(t1.read_bytes())
    with caplog.at_level(logging.WARNING):
        assert main(["bids", str(root), "-o", str(tmp_path / "x.tsv")]) == 0
    assert "sub-02_ses-1: 2 T1w files, expected one" in caplog.text
    assert "sub-02_ses-1" not in {r["subject"] for r in read_sheet(tmp_path / "x.tsv")}


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")


def test_scan_pairs_by_subject_and_lists_the_rest(tmp_path, capsys, caplog):
    data = tmp_path / "data"
    _touch(data, "img/P01_t1.nii.gz", "img/P01_flair.nii.gz", "seg/P01_seg.nii.gz",
           "bam/P01.bam", "bam/P01.bam.bai", "vcf/P01.vcf.gz", "vcf/P01.vcf.gz.tbi",
           "img/P02_t1.nii.gz",  # no FLAIR
           "img/P03_t1.nii.gz", "img/P03_flair.nii.gz", "bam/P03.bam",  # no index
           "bam/P04.cram", "bam/P04.crai",  # genomics only
           "img/P05_flair.nii.gz", "other/notes_x.nii")  # fmt: skip
    out = tmp_path / "samples.tsv"
    argv = ["scan", str(data), "--image", "img/*_t1.nii.gz", "--channel", "flair=img/*_flair*",
            "--label", "seg/*.nii.gz", "--bam", "bam/*.*am", "--vcf", "vcf/*.vcf.gz",
            "-o", str(out)]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        assert main(argv) == 0
    rows = {r["subject"]: r for r in read_sheet(out)}
    assert sorted(rows) == ["P01", "P04"]
    assert rows["P01"]["image_flair"].endswith("img/P01_flair.nii.gz")
    assert rows["P01"]["label"].endswith("seg/P01_seg.nii.gz")
    assert rows["P01"]["vcf"].endswith("P01.vcf.gz") and rows["P04"]["bam"].endswith("P04.cram")
    assert rows["P04"]["image"] == ""
    log = caplog.text
    assert "P02: has image but no image_flair file" in log
    assert "P03: bam P03.bam has no index (.bai)" in log
    assert "P05: has image_flair but no image" in log
    assert "1 data file(s) matched no pattern: other/notes_x.nii" in log
    printed = capsys.readouterr().out
    assert "imaging: {enabled: true}" in printed and "reference:" in printed


def test_scan_needs_a_pattern_and_a_subject(tmp_path):
    assert main(["scan", str(tmp_path)]) == 1
    _touch(tmp_path, "x/_bad.nii.gz")
    assert (
        main(["scan", str(tmp_path), "--image", "x/*.nii.gz", "-o", str(tmp_path / "s.tsv")]) == 1
    )
    assert not (tmp_path / "s.tsv").exists()


def test_module_runs_as_a_command(bids, tmp_path):
    root, _ = bids
    out = tmp_path / "m.tsv"
    res = subprocess.run(
        [sys.executable, "-m", "voxseq.sheet", "bids", str(root), "-o", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"samples: {out}" in res.stdout and "not paired: sub-03_ses-2" not in res.stderr
    assert len(read_sheet(out)) == 6
