"""Sample-sheet and config validation: clear errors at DAG-building time."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_snakemake

from voxseq import VoxseqError
from voxseq.config import check_config, check_devices, validate_config
from voxseq.io.sheet import SUBJECT_PATTERN, read_sheet

SCHEMAS = REPO / "workflow" / "schemas"


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


def test_sheet_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Spreadsheet programs start a UTF-8 export with a BOM; it is not part of the header."""
    (tmp_path / "x.nii.gz").write_bytes(b"x")
    sheet = tmp_path / "samples.tsv"
    sheet.write_bytes("subject\timage\na\tx.nii.gz\n".encode("utf-8-sig"))
    assert [r["subject"] for r in read_sheet(sheet)] == ["a"]


def test_line_numbers_count_blank_lines(tmp_path):
    (tmp_path / "x.nii.gz").write_bytes(b"x")
    text = "subject\timage\nok\tx.nii.gz\n\nbad/id\tx.nii.gz\n"
    with pytest.raises(VoxseqError, match="line 4: subject id 'bad/id'"):
        read_sheet(_sheet(tmp_path, text))
    text = "subject\timage\na\tx.nii.gz\n\n\nb\tx.nii.gz\na\tx.nii.gz\n"
    with pytest.raises(VoxseqError, match="lines 2 and 6"):
        read_sheet(_sheet(tmp_path, text))


def test_overlong_subject_id_is_refused(tmp_path):
    (tmp_path / "x.nii.gz").write_bytes(b"x")
    sid = "a" * 240
    with pytest.raises(VoxseqError) as err:
        read_sheet(_sheet(tmp_path, f"subject\timage\n{sid}\tx.nii.gz\n"))
    msg = str(err.value)
    assert "line 2" in msg and "240 characters" in msg and "at most 100" in msg, msg
    assert sid not in msg  # shown truncated
    assert read_sheet(_sheet(tmp_path, f"subject\timage\n{sid[:100]}\tx.nii.gz\n"))


def test_subject_pattern_bounds_the_length():
    """The pattern is also Snakemake's wildcard constraint (anchors stripped)."""
    assert re.fullmatch(SUBJECT_PATTERN.strip("^$"), "a" * 100)
    assert not re.fullmatch(SUBJECT_PATTERN.strip("^$"), "a" * 101)
    assert not re.fullmatch(SUBJECT_PATTERN, "_a")


def test_duplicate_ids(tmp_path):
    (tmp_path / "x.nii.gz").write_bytes(b"x")
    with pytest.raises(VoxseqError, match="subject 'a' appears twice"):
        read_sheet(_sheet(tmp_path, "subject\timage\na\tx.nii.gz\na\tx.nii.gz\n"))


def test_class_and_batch_on_some_subjects_only(tmp_path):
    """An unannotated subject (no class) is predicted, not trained on; batch is optional."""
    (tmp_path / "x.nii.gz").write_bytes(b"x")
    rows = read_sheet(
        _sheet(tmp_path, "subject\timage\tclass\tbatch\na\tx.nii.gz\tA\tsite1\nb\tx.nii.gz\t\t\n")
    )
    assert [(r["class"], r["batch"]) for r in rows] == [("A", "site1"), ("", "")]


def test_covariates_are_read_normalised_and_written_after_the_images(tmp_path):
    """age, sex and covar_<name> are kept (sex as M/F) and written after the image columns."""
    from voxseq.io.atomic import read_tsv
    from voxseq.io.sheet import write_sheet

    (tmp_path / "x.nii.gz").write_bytes(b"x")
    rows = read_sheet(_sheet(
        tmp_path,
        "subject\tage\timage\tsex\tcovar_site\timage_t2\n"
        "a\t41.5\tx.nii.gz\tfemale\tnorth\tx.nii.gz\nb\t\tx.nii.gz\tm\tsouth\tx.nii.gz\n",
    ))
    assert [(r["age"], r["sex"], r["covar_site"]) for r in rows] == [
        ("41.5", "F", "north"), ("", "M", "south")]
    write_sheet(tmp_path / "out.tsv", rows)
    header = (tmp_path / "out.tsv").read_text().splitlines()[0].split("\t")
    assert header[-4:] == ["image_t2", "age", "sex", "covar_site"]
    assert read_tsv(tmp_path / "out.tsv")[0]["sex"] == "F"


@pytest.mark.parametrize(
    "header, cells, message",
    [
        ("age", ("40", "200"), r"subject b in sample sheet .*samples.tsv: age '200' is not a "
                               r"number of years"),
        ("age", ("40", "old"), "subject b in sample sheet .*samples.tsv: age 'old'"),
        ("sex", ("F", "X"), r"subject b in sample sheet .*samples.tsv: sex 'X' is not M or F"),
        ("covar_Site", ("1", "2"), "unknown column"),
    ],
)
def test_bad_covariates_name_subject_and_sheet(tmp_path, header, cells, message):
    (tmp_path / "x.nii.gz").write_bytes(b"x")
    text = f"subject\timage\t{header}\na\tx.nii.gz\t{cells[0]}\nb\tx.nii.gz\t{cells[1]}\n"
    with pytest.raises(VoxseqError, match=message):
        read_sheet(_sheet(tmp_path, text))


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


def _default_config() -> dict:
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


@pytest.mark.parametrize(
    "splits", [{"train": 0, "val": 0, "test": 0}, {"train": 0.5, "val": -0.5, "test": 0}]
)
def test_split_fractions_must_sum_to_more_than_zero(splits):
    cfg = _default_config()
    cfg["splits"] = splits
    with pytest.raises(VoxseqError) as err:
        check_config(cfg)
    assert "config splits" in str(err.value) and str(splits) in str(err.value)


def test_a_merged_partial_splits_block_is_refused_and_explained():
    cfg = _default_config()
    cfg["splits"] = {**cfg["splits"], "train": 0.8, "val": 0.2}  # the default's test 0.25 kept
    with pytest.raises(VoxseqError) as err:
        check_config(cfg)
    msg = str(err.value)
    assert "'test': 0.25" in msg and "sum to 1.25" in msg and "write all three" in msg


@pytest.mark.parametrize(
    "key, yaml_value, hint",
    [("imaging.train.lr", "3e-4", "YAML reads 3e-4 as a string: write the number as 3.0e-4"),
     ("genomics.train.lr", "1E5", "write the number as 1.0e+5"),
     ("imaging.train.epochs", "'12'", "a quoted number is a string: write 12 without quotes")],
)
def test_a_number_read_as_a_string_gets_the_way_to_write_it(key, yaml_value, hint):
    cfg = _default_config()
    cfg["genomics"]["enabled"] = True
    block = cfg
    *parents, leaf = key.split(".")
    for k in parents:
        block = block[k]
    block[leaf] = yaml.safe_load(f"v: {yaml_value}")["v"]
    with pytest.raises(VoxseqError) as err:
        validate_config(cfg, REPO / "workflow/schemas")
    assert f"config {key}: " in str(err.value) and hint in str(err.value)


def test_a_relative_sheet_not_found_names_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(VoxseqError) as err:
        read_sheet("cohort/samples.tsv")
    msg = str(err.value)
    assert f"working directory {tmp_path}" in msg and str(tmp_path / "cohort/samples.tsv") in msg


def test_a_tab_indented_config_file_is_named_with_line_and_column(tmp_path):
    from voxseq.config import load_config_file

    bad = tmp_path / "my_cohort.yaml"
    bad.write_text("seed: 1\nimaging:\n\tpatch_size: [8, 8, 8]\n")
    with pytest.raises(VoxseqError) as err:
        load_config_file(bad)
    assert f"config file {bad}, line 3, column 1: not valid YAML (a tab" in str(err.value)
    good = tmp_path / "good.yaml"
    good.write_text("seed: 1\nimaging:\n  patch_size: [8, 8, 8]\n")
    assert load_config_file(good) == {"seed": 1, "imaging": {"patch_size": [8, 8, 8]}}


def test_user_splits_takes_the_last_block_whole(tmp_path):
    from voxseq.config import user_splits

    default = _default_config()
    first = tmp_path / "a.yaml"
    first.write_text("splits: {train: 0.5, val: 0.5}\n")
    mine = tmp_path / "mine.yaml"
    mine.write_text("seed: 3\nsplits: {train: 0.8, val: 0.2}\n")
    other = tmp_path / "other.yaml"
    other.write_text("seed: 4\n")
    assert user_splits(default, [first, mine, other]) == {"train": 0.8, "val": 0.2}
    assert user_splits(default, [other]) == default["splits"]
    assert user_splits(default, [mine], {"splits": {"test": 1.0}}) == {"test": 1.0}
    cfg = {**default, "splits": user_splits(default, [mine])}
    check_config(cfg)  # a partial block as the user wrote it is valid


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_device_without_cuda_is_refused(monkeypatch, device):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = _default_config()
    cfg["genomics"]["train"]["device"] = device
    with pytest.raises(VoxseqError) as err:
        check_devices(cfg)
    assert str(err.value) == (
        f"config genomics.train.device: '{device}' requested but this machine has no CUDA "
        "device (torch.cuda.is_available() is False); use auto or cpu"
    )
    cfg["genomics"]["enabled"] = False  # a disabled modality is not checked
    check_devices(cfg)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    cfg["imaging"]["train"]["device"] = device
    check_devices(cfg)
    cfg["imaging"]["train"]["device"] = "cuda:1"
    with pytest.raises(VoxseqError, match=r"imaging.train.device: 'cuda:1' .* has 1 CUDA device"):
        check_devices(cfg)


def test_device_check_does_not_import_torch_without_cuda(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` would raise ImportError
    cfg = _default_config()
    cfg["imaging"]["train"]["device"] = "cpu"
    check_devices(cfg)  # genomics: auto


def test_default_config_is_valid():
    validate_config(_default_config(), SCHEMAS)


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "imaging.train.epochs",
            -1,
            "config imaging.train.epochs: -1 is less than the minimum of 1",
        ),
        (
            "genomics.train.lr",
            0,
            "config genomics.train.lr: 0 is less than or equal to the minimum",
        ),
        ("genomics.bin_size", "x", "config genomics.bin_size: 'x' is not of type 'integer'"),
        ("imaging.foo", 1, "config imaging.foo: unknown key"),
        ("imaging.train.augment.spin", 1, "config imaging.train.augment.spin: unknown key"),
        ("splits.train", -0.1, "config splits.train: -0.1 is less than the minimum of 0"),
        ("colour", "red", "config colour: unknown key"),
        ("imaging.patch_size", None, "config imaging.patch_size: required key missing"),
        ("cohort", None, "config cohort: required key missing"),
    ],
)
def test_config_errors_name_the_full_key_path(key, value, message):
    cfg = _default_config()
    *parents, last = key.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    if value is None:
        del node[last]
    else:
        node[last] = value
    with pytest.raises(VoxseqError) as err:
        validate_config(cfg, SCHEMAS)
    assert str(err.value).startswith(message), str(err.value)


def test_config_validation_counts_further_problems_and_fills_no_defaults():
    cfg = _default_config()
    cfg["imaging"]["train"]["epochs"] = 0
    cfg["imaging"]["train"]["lr"] = -1
    with pytest.raises(VoxseqError, match=r"\(and 1 more problem\)"):
        validate_config(cfg, SCHEMAS)
    cfg = _default_config()
    del cfg["genomics"]["train"]["patience"]
    del cfg["imaging"]["infer"]
    before = copy.deepcopy(cfg)
    validate_config(cfg, SCHEMAS)
    assert cfg == before
