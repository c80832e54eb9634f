"""The same file content under two subjects is refused (train/test leakage) unless declared."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from voxseq import VoxseqError
from voxseq.io.digest import check_shared_content, shared_content, source_record


def _record(tmp: Path, subject: str, files: dict[str, bytes]) -> Path:
    """An ingest record of ``subject`` whose ``sources`` are files written with these bytes."""
    sources = {}
    for column, data in files.items():
        path = tmp / f"{subject}_{column}.dat"
        path.write_bytes(data)
        sources[column] = source_record(path)
    out = tmp / f"{subject}.json"
    out.write_text(json.dumps({"subject": subject, "sources": {**sources, "vcf": None}}))
    return out


@pytest.fixture
def records(tmp_path) -> dict[str, Path]:
    return {
        "s01": _record(tmp_path, "s01", {"image": b"scan A", "label": b"mask A"}),
        "s02": _record(tmp_path, "s02", {"image": b"scan B", "label": b"mask B"}),
        "s07": _record(tmp_path, "s07", {"image": b"scan A", "label": b"mask C"}),  # s01's image
    }


def test_an_image_shared_by_a_train_and_a_test_subject_is_refused(records, tmp_path):
    with pytest.raises(VoxseqError) as err:
        check_shared_content(records, split={"s01": "train", "s02": "train", "s07": "test"})
    msg = str(err.value)
    assert f"subject s01 (train) image {tmp_path / 's01_image.dat'}" in msg
    assert f"subject s07 (test) image {tmp_path / 's07_image.dat'}" in msg
    assert "s02" not in msg and "leakage" in msg


def test_shared_content_lists_each_digest_held_by_several_subjects(records):
    groups = shared_content({s: json.loads(p.read_text()) for s, p in records.items()})
    assert [[(f["subject"], f["column"]) for f in g["files"]] for g in groups] == [
        [("s01", "image"), ("s07", "image")]]


def test_the_same_file_twice_within_one_subject_is_not_leakage(tmp_path):
    one = _record(tmp_path, "s01", {"image": b"x", "image_t2": b"x"})
    assert shared_content({"s01": one}) == []


def test_a_declared_group_or_the_flag_allows_it_with_a_warning(records, caplog):
    with caplog.at_level(logging.WARNING):
        kept = check_shared_content(records, allowed=[["s01", "s07"]])
    assert len(kept) == 1 and "identical content under subjects s01, s07 (allowed)" in caplog.text
    assert len(check_shared_content(records, allow_all=True)) == 1
    with pytest.raises(VoxseqError):
        check_shared_content(records, allowed=[["s01", "s02"]])  # another pair is declared


def test_an_unreadable_record_names_the_subject(tmp_path):
    with pytest.raises(VoxseqError, match=r"subject s09: ingest record .*missing.json"):
        shared_content({"s09": tmp_path / "missing.json"})


def test_the_workflow_stops_before_training_on_a_shared_image(tmp_path):
    """Two subjects (one val, one test) with the same image file: the shared_content job, which
    every training rule reads, fails naming both; declared in shared_files.allow, it passes."""
    import shutil

    import numpy as np
    import yaml
    from conftest import REPO, affine_for, run_snakemake, write_nifti

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        write_nifti(tmp_path / f"{name}.nii.gz", rng.normal(size=(12, 10, 8)).astype(np.float32),
                    affine_for("RAS", (12, 10, 8)))
    shutil.copy(tmp_path / "a.nii.gz", tmp_path / "a_again.nii.gz")  # same bytes, other name
    (tmp_path / "s.tsv").write_text("subject\timage\tsplit\ns1\ta.nii.gz\tval\n"
                                    "s2\tb.nii.gz\ttrain\ns3\ta_again.nii.gz\ttest\n")
    cfg = {"demo": {"enabled": False}, "samples": str(tmp_path / "s.tsv"), "cohort": "leak"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    args = ["--configfile", str(REPO / "tests/config/tiny.yaml"), str(tmp_path / "c.yaml"),
            "--cores", "2", "results/leak/imaging/shared_files.json"]
    res = run_snakemake(tmp_path / "run", *args, check=False)
    log = (tmp_path / "run/results/leak/logs/imaging/shared_content.log").read_text()
    assert res.returncode != 0
    assert "s1" in log and "s3" in log and "a_again.nii.gz" in log, log
    assert not (tmp_path / "run/results/leak/imaging/shared_files.json").exists()
    cfg["shared_files"] = {"allow": [["s1", "s3"]]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run_snakemake(tmp_path / "run", *args)
    allowed = json.loads((tmp_path / "run/results/leak/imaging/shared_files.json").read_text())
    groups = [sorted({f["subject"] for f in g["files"]}) for g in allowed["allowed"]]
    assert groups == [["s1", "s3"]]
