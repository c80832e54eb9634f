"""Sample-sheet and config validation: clear errors at DAG-building time."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_snakemake

from voxseq import VoxseqError
from voxseq.io.sheet import assign_splits, read_sheet


def _sheet(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "samples.tsv"
    p.write_text(text)
    return p


def test_relative_paths_resolve_against_sheet_folder(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.nii.gz").write_bytes(b"x")
    rows = read_sheet(_sheet(tmp_path, "subject\timage\na1\timg/a.nii.gz\n"))
    assert rows[0]["image"] == str(tmp_path / "img" / "a.nii.gz")
    assert rows[0]["split"] == ""


@pytest.mark.parametrize(
    "text, message",
    [
        ("image\nimg.nii.gz\n", "missing required column 'subject'"),
        ("subject\timage\tcolour\na\tx\tred\n", "unknown column"),
        ("subject\timage\n", "no subjects"),
        ("subject\timage\nbad/id\tx.nii.gz\n", "subject id 'bad/id' is not allowed"),
        ("subject\timage\n..\tx.nii.gz\n", "subject id '..' is not allowed"),
        ("subject\timage\na;rm\tx.nii.gz\n", "is not allowed"),
        ("subject\timage\na\tmissing.nii.gz\n", "subject a: image file .*missing.nii.gz not found"),
        ("subject\timage\tsplit\na\tx.nii.gz\ttraining\n", "split 'training' is not one of"),
    ],
)
def test_sheet_errors_name_the_problem(tmp_path, text, message):
    (tmp_path / "x.nii.gz").write_bytes(b"x")
    with pytest.raises(VoxseqError, match=message):
        read_sheet(_sheet(tmp_path, text))


def test_duplicate_ids(tmp_path):
    (tmp_path / "x.nii.gz").write_bytes(b"x")
    with pytest.raises(VoxseqError, match="subject 'a' appears twice"):
        read_sheet(_sheet(tmp_path, "subject\timage\na\tx.nii.gz\na\tx.nii.gz\n"))


def test_class_on_some_subjects_only(tmp_path):
    (tmp_path / "x.nii.gz").write_bytes(b"x")
    with pytest.raises(VoxseqError, match="'class' is set for some subjects"):
        read_sheet(_sheet(tmp_path, "subject\timage\tclass\na\tx.nii.gz\tA\nb\tx.nii.gz\t\n"))


def test_split_assignment_is_deterministic_and_keeps_explicit_splits():
    rows = [{"subject": f"s{i}", "split": ""} for i in range(20)] + [
        {"subject": "fixed", "split": "test"}]
    a = assign_splits(rows, 3, {"train": 0.6, "val": 0.2, "test": 0.2})
    b = assign_splits(list(reversed(rows)), 3, {"train": 0.6, "val": 0.2, "test": 0.2})
    assert {r["subject"]: r["split"] for r in a} == {r["subject"]: r["split"] for r in b}
    counts = {s: sum(r["split"] == s for r in a if r["subject"] != "fixed") for s in
              ("train", "val", "test")}
    assert counts == {"train": 12, "val": 4, "test": 4}
    assert next(r for r in a if r["subject"] == "fixed")["split"] == "test"


def _config(tmp_path: Path, **overrides) -> Path:
    cfg = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    for key, value in overrides.items():
        cfg[key] = value
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_broken_sheet_fails_before_any_job(tmp_path):
    sheet = _sheet(tmp_path, "subject\timage\nok1\tnope.nii.gz\n")
    cfg = _config(tmp_path, demo={"enabled": False}, samples=str(sheet))
    res = run_snakemake(tmp_path / "run", "-n", "--configfile", str(cfg), check=False)
    assert res.returncode != 0
    assert "subject ok1: image file" in res.stderr + res.stdout
    assert not (tmp_path / "run" / "results").exists()


def test_unknown_config_key_fails_validation(tmp_path):
    cfg = _config(tmp_path, colour="red")
    res = run_snakemake(tmp_path / "run", "-n", "--configfile", str(cfg), check=False)
    assert res.returncode != 0
    assert "colour" in res.stderr + res.stdout
