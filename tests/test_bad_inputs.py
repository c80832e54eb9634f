"""Bad-input catalogue: each failure names the subject (where there is one), the file
and the problem, and leaves no output of the failing step at its final path.

* Sheet and config problems: the run plan (:func:`voxseq.plan.build_plan`, which the workflow
  builds while it parses, before any job) refuses them, with nothing under ``results/``; a few
  cases also run as ``snakemake -n`` (``END_TO_END``), forked from one helper process that has
  paid Snakemake's and voxseq's imports once, two at a time.
  ``test_sheet_config.py`` checks the same sheet problems at the ``read_sheet`` level, a missing
  image and an unknown top-level key as dry runs; their neighbours here are a missing label and
  an unknown key inside ``imaging``. Snakemake's schema validation names the key, not the
  config file. A sheet saved with a byte-order mark (``ACCEPTED_CASES``) passes the same dry run.
* Per-file problems: the library entry function of the rule that reads the file is called with
  its outputs in ``tmp_path``; they must not exist afterwards (nor a ``.tmp-`` leftover).
* Inputs that are handled rather than refused check the documented outcome: a FASTA without
  ``.fai`` (indexed), an all-N contig (warned about, kept), multi-allelic records (one row per
  ALT), indels (rows marked ``skipped: not an SNV``), a patch larger than a volume by less than
  one valid size step (padded).
* One Snakemake run with ``--keep-going``: a corrupt image fails its own subject's ingest only.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pysam
import pytest
import yaml
from conftest import REPO, affine_for, load_config, run_snakemake, write_nifti
from test_genomics_ingest import random_contigs, write_alignments, write_fasta, write_vcf

from voxseq import VoxseqError
from voxseq.genomics.coverage import compute_coverage
from voxseq.genomics.ingest import ingest_subject as genomics_ingest
from voxseq.genomics.reference import write_contig_table
from voxseq.genomics.variants import read_variants, score_variants
from voxseq.imaging.ingest import ingest_subject as imaging_ingest
from voxseq.imaging.patches import write_centres
from voxseq.imaging.store import write_store
from voxseq.imaging.train import check_patch_fits, train_imaging
from voxseq.io.sheet import read_sheet, write_sheet
from voxseq.plan import build_plan

TINY = REPO / "tests/config/tiny.yaml"


def assert_names(message: str, *parts: str) -> None:
    """Every part (subject, file, problem) appears in the message."""
    missing = [p for p in parts if p not in message]
    assert not missing, f"message lacks {missing}:\n{message}"


def assert_absent(*paths: Path) -> None:
    """Nothing at the final paths, and no temporary sibling left behind."""
    for p in paths:
        assert not p.exists(), f"{p} exists after a failure"
        if p.parent.is_dir():
            left = [q.name for q in p.parent.iterdir() if q.name.startswith(f".tmp-{p.name}")]
            assert not left, f"temporary files left beside {p}: {left}"


# ---- sheet and config: the dry run fails while the DAG is built -----------------------------

@dataclass
class DryCase:
    """A sheet (``IMG`` stands for an existing image beside it) and/or a config change.

    ``expected`` parts may name ``{sheet}`` and the case folder ``{d}``.
    """

    id: str
    expected: list[str]
    sheet: str = "subject\timage\na\tIMG\n"
    config: Callable[[dict], None] | None = None
    extra: Callable[[Path], None] | None = None
    tags: set[str] = field(default_factory=set)


def _set(path: str, value) -> Callable[[dict], None]:
    def change(cfg: dict) -> None:
        *parents, key = path.split(".")
        node = cfg
        for p in parents:
            node = node.setdefault(p, {})
        node[key] = value

    return change


def _genomics(**settings) -> Callable[[dict], None]:
    def change(cfg: dict) -> None:
        cfg["genomics"] = {"enabled": True, "reference": "ref.fa", **settings}

    return change


def _changes(*changes: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(cfg: dict) -> None:
        for c in changes:
            c(cfg)

    return change


def _in_workdir_only(d: Path) -> None:
    """The file exists relative to the working directory, not relative to the sheet."""
    (d / "run" / "scans").mkdir(parents=True)
    (d / "run" / "scans" / "img.nii.gz").write_bytes(b"x")


SHELL = {"semicolon": "a;touch pwned", "dollar": "$(touch pwned)", "backtick": "`touch pwned`"}

DRY_CASES = [
    DryCase("sheet-missing-subject-column", ["{sheet}", "missing required column 'subject'"],
            "sample\timage\na\tIMG\n"),
    DryCase("sheet-duplicate-ids", ["{sheet}", "subject 'a' appears twice", "lines 2 and 4"],
            "subject\timage\na\tIMG\nb\tIMG\na\tIMG\n"),
    DryCase("sheet-id-with-slash", ["{sheet}", "line 2", "subject id 'a/b' is not allowed"],
            "subject\timage\na/b\tIMG\n"),
    DryCase("sheet-id-dotdot", ["{sheet}", "line 3", "subject id '..' is not allowed"],
            "subject\timage\nok\tIMG\n..\tIMG\n"),
    DryCase("sheet-id-with-space", ["{sheet}", "subject id 'a b' is not allowed"],
            "subject\timage\na b\tIMG\n"),
    *[DryCase(f"sheet-id-shell-{k}", ["{sheet}", f"subject id {v!r} is not allowed"],
              f"subject\timage\n{v}\tIMG\n", tags={"shell"}) for k, v in SHELL.items()],
    DryCase("sheet-missing-label-file",
            ["subject a", "label file {d}/sheets/data/nope_label.nii.gz not found", "{sheet}"],
            "subject\timage\tlabel\na\tIMG\tdata/nope_label.nii.gz\n"),
    DryCase("sheet-relative-path-resolved-against-sheet-folder",
            ["subject a", "image file {d}/sheets/scans/img.nii.gz not found", "{sheet}"],
            "subject\timage\na\tscans/img.nii.gz\n", extra=_in_workdir_only),
    DryCase("sheet-id-too-long", ["{sheet}", "line 2", "240 characters", "at most 100"],
            f"subject\timage\n{'a' * 240}\tIMG\n"),
    DryCase("sheet-line-number-after-blank-line",
            ["{sheet}", "line 4", "subject id 'a/b' is not allowed"],
            "subject\timage\nok\tIMG\n\na/b\tIMG\n"),
    DryCase("sheet-header-only", ["{sheet}", "no subjects (empty sheet)"], "subject\timage\n"),
    DryCase("sheet-empty-file", ["{sheet}", "empty file"], ""),
    DryCase("sheet-unknown-split", ["subject a", "{sheet}", "split 'training' is not one of"],
            "subject\timage\tsplit\na\tIMG\ttraining\n"),
    DryCase("sheet-class-only-in-the-test-split",
            ["{sheet}", "class(es) ['medium']", "subject(s) ['t1']", "train or val split"],
            "subject\timage\tclass\tsplit\n"
            + "".join(f"a{i}\tIMG\t{c}\ttrain\n" for i, c in enumerate("lhlhlhlh"))
            + "t1\tIMG\tmedium\ttest\n",
            config=_set("imaging.classify", {"enabled": True, "folds": 3})),
    DryCase("config-unknown-key-in-imaging",
            ["config imaging.colour: unknown key"],
            config=_set("imaging.colour", "red")),
    DryCase("config-wrong-type-integer",
            ["config imaging.train.epochs: 'two' is not of type 'integer'"],
            config=_set("imaging.train.epochs", "two")),
    DryCase("config-number-read-as-a-string",  # YAML 1.1 reads 3e-4 (no dot) as a string
            ["config imaging.train.lr", "'3e-4'", "write the number as 3.0e-4"],
            config=_set("imaging.train.lr", "3e-4")),
    DryCase("config-wrong-type-array",
            ["config imaging.patch_size: 16 is not of type 'array'"],
            config=_set("imaging.patch_size", 16)),
    DryCase("config-patch-not-divisible-by-depth",
            ["imaging.patch_size [16, 16, 18]", "divisible by 2**(model.depth - 1) = 4"],
            config=_changes(_set("imaging.patch_size", [16, 16, 18]),
                            _set("imaging.model.depth", 3))),
    DryCase("config-split-fractions-all-zero",
            ["config splits", "'val': 0", "sum to 0", "must be >= 0 and sum to 1"],
            config=_set("splits", {"train": 0, "val": 0, "test": 0})),
    DryCase("config-bin-size-does-not-divide-window",
            ["genomics.bin_size 48 does not divide genomics.window 1024"],
            config=_genomics(bin_size=48, window=1024, stride=480)),
    DryCase("config-stride-not-multiple-of-bin-size",
            ["genomics.stride 500 is not a multiple of genomics.bin_size 32"],
            config=_genomics(bin_size=32, window=1024, stride=500)),
]

# Sheets the same dry run must accept: the cases' common sheet, and variants of it.
ACCEPTED_CASES = [
    DryCase("baseline", []),
    DryCase("sheet-with-byte-order-mark", [], "\ufeffsubject\timage\na\tIMG\n"),  # Excel
]
# These also run through ``snakemake -n`` (the rest are checked on voxseq.plan.build_plan, which
# the workflow calls once while it parses): one sheet problem, one schema problem, the shell
# metacharacters in ids, and the accepted sheets.
END_TO_END = {"sheet-duplicate-ids", "config-unknown-key-in-imaging", "sheet-id-shell-dollar",
              "baseline", "sheet-with-byte-order-mark"}


def _tiny_config() -> dict:
    return yaml.safe_load(TINY.read_text())


def _case_files(root: Path, case: DryCase) -> tuple[Path, Path, dict, list[str]]:
    """The case's folder, sheet and config (tiny.yaml over the default config, demo off)."""
    d = root / case.id
    (d / "sheets" / "data").mkdir(parents=True)
    (d / "sheets" / "data" / "img.nii.gz").write_bytes(b"x")  # only its existence is read
    sheet = d / "sheets" / "samples.tsv"
    sheet.write_text(case.sheet.replace("IMG", "data/img.nii.gz"))
    cfg = _tiny_config()
    cfg["demo"]["enabled"] = False
    cfg["samples"] = str(sheet)
    if case.config:
        case.config(cfg)
    if case.extra:
        case.extra(d)
    (d / "run").mkdir(exist_ok=True)
    return d, sheet, cfg, [e.format(sheet=sheet, d=d) for e in case.expected]


@pytest.mark.parametrize("case", DRY_CASES, ids=[c.id for c in DRY_CASES])
def test_sheet_and_config_problems_stop_the_plan(case, tmp_path):
    """The plan (built while the workflow parses, before any job) refuses the case."""
    d, _, cfg, expected = _case_files(tmp_path, case)
    with pytest.raises(VoxseqError) as err:
        build_plan(load_config(cfg), d / "run")
    assert_names(str(err.value), *expected)
    assert not (d / "run" / "results").exists()
    if "shell" in case.tags:
        assert not list(d.rglob("pwned"))


@pytest.mark.parametrize("case", ACCEPTED_CASES, ids=[c.id for c in ACCEPTED_CASES])
def test_accepted_sheets_give_a_plan(case, tmp_path):
    """The image path is relative to the sheet's folder, not to the working directory."""
    d, _, cfg, _ = _case_files(tmp_path, case)
    plan = build_plan(load_config(cfg), d / "run")
    assert plan.imaging_subjects == ("a",)
    assert plan.subjects["a"]["image"] == str(d / "sheets" / "data" / "img.nii.gz")


# Each end-to-end case is run by forking this process (imports paid once); output goes to the
# case's log.
_DRIVER = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
import snakemake.cli
import voxseq.bundle, voxseq.config, voxseq.demo.cohort, voxseq.io.sheet  # common.smk's imports
import voxseq.plan
import smart_open, snakemake.parser, snakemake.workflow  # imported lazily by every run
snakemake.cli.get_argument_parser()  # loads the plugin registries

cases, running, codes = json.loads(sys.stdin.read()), {}, {}

def reap():
    pid, status = os.wait()
    codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)

for name, (argv, log) in cases.items():
    if len(running) >= 2:
        reap()
    pid = os.fork()
    if pid == 0:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        code = 0
        try:
            snakemake.cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            code = 3
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    running[pid] = name
while running:
    reap()
print(json.dumps(codes))
"""


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory) -> dict[str, tuple[int, str, Path, list[str]]]:
    """case id -> (exit status, Snakemake's output, working directory, expected parts)."""
    root = tmp_path_factory.mktemp("dry")
    argvs, info = {}, {}
    for case in [c for c in [*DRY_CASES, *ACCEPTED_CASES] if c.id in END_TO_END]:
        d, _, cfg, expected = _case_files(root, case)
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        work, log = d / "run", d / "snakemake.log"
        argvs[case.id] = (["-s", str(REPO / "Snakefile"), "--directory", str(work),
                           "--configfile", str(d / "config.yaml"), "-n"], str(log))
        info[case.id] = (work, log, expected)
    res = subprocess.run([sys.executable, "-c", _DRIVER, str(REPO)], input=json.dumps(argvs),
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    codes = json.loads(res.stdout.strip().splitlines()[-1])
    return {k: (codes[k], log.read_text(), work, exp) for k, (work, log, exp) in info.items()}


@pytest.mark.parametrize("case", [c for c in DRY_CASES if c.id in END_TO_END],
                         ids=[c.id for c in DRY_CASES if c.id in END_TO_END])
def test_sheet_and_config_problems_stop_the_dry_run(case, dry_runs):
    code, out, work, expected = dry_runs[case.id]
    assert code == 1, out[-3000:]
    assert_names(out, *expected)
    assert "Building DAG of jobs" not in out  # failed while parsing, before any job
    assert not (work / "results").exists()
    if "shell" in case.tags:
        assert not list(work.parent.rglob("pwned"))


def test_dry_run_baseline_is_accepted(dry_runs):
    """The cases' common sheet and config, without a defect, pass the same dry run (the image
    path is relative to the sheet's folder, not to the working directory)."""
    code, out, work, _ = dry_runs["baseline"]
    assert code == 0, out[-3000:]
    assert "imaging_ingest" in out


def test_dry_run_accepts_a_sheet_with_a_byte_order_mark(dry_runs):
    """Spreadsheet programs start a UTF-8 export with a byte-order mark."""
    code, out, work, _ = dry_runs["sheet-with-byte-order-mark"]
    assert code == 0, out[-3000:]
    assert "imaging_ingest" in out


# ---- NIfTI: imaging ingest ----------------------------------------------------------------

SHAPE = (12, 10, 8)
AFFINE = affine_for("LPS", SHAPE, (2.0, 2.0, 3.0))


def _image_data() -> np.ndarray:
    return np.random.default_rng(0).normal(100.0, 10.0, SHAPE).astype(np.float32)


def _label_data() -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint8)
    lab[3:8, 3:7, 2:6] = 1
    lab[5:7, 4:6, 3:5] = 2
    return lab


def _good(tmp: Path) -> tuple[Path, Path]:
    return (write_nifti(tmp / "img.nii.gz", _image_data(), AFFINE),
            write_nifti(tmp / "lab.nii.gz", _label_data(), AFFINE))


def _truncated(tmp):
    img, lab = _good(tmp)
    img.write_bytes(img.read_bytes()[: img.stat().st_size * 6 // 10])
    return img, lab, img, "truncated or corrupt data"


def _not_nifti(tmp):
    img = tmp / "img.nii"
    img.write_text("subject\timage\nthis is a sample sheet, not an image\n" * 20)
    return img, None, img, "not a readable NIfTI file"


def _dims(shape, problem=None):
    def build(tmp):
        img = write_nifti(tmp / "img.nii.gz", np.ones(shape, np.float32), np.diag([2., 2., 3., 1.]))
        return img, None, img, problem or ("expected a 3D volume (trailing dimensions of length 1 "
                                           f"are dropped), got shape {shape}")
    return build


def _non_finite(values):
    def build(tmp):
        data = _image_data()
        for i, v in enumerate(values):
            data[i, i, i] = v
        img = write_nifti(tmp / "img.nii.gz", data, AFFINE)
        return img, None, img, f"{len(values)} voxels are NaN or infinite"
    return build


def _single_slice(tmp):
    data = np.random.default_rng(0).normal(100.0, 10.0, (30, 32, 1)).astype(np.float32)
    img = write_nifti(tmp / "img.nii.gz", data, np.diag([1.0, 1.0, 5.0, 1.0]))
    return img, None, img, "shape (30, 32, 1) has 1 voxel(s) along axis 2"


def _singular(tmp):
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[2, :3] = affine[1, :3]  # two axes point the same way
    img = nib.Nifti1Image(_image_data(), None)  # a qform cannot hold it: the sform only
    img.header.set_sform(affine, code=1)
    img.header.set_qform(None, code=0)
    path = tmp / "img.nii.gz"
    nib.save(img, str(path))
    return path, None, path, "singular or non-finite affine"


def _constant(tmp):
    img = write_nifti(tmp / "img.nii.gz", np.full(SHAPE, 5.0, np.float32), AFFINE)
    lab = write_nifti(tmp / "lab.nii.gz", _label_data(), AFFINE)
    return img, lab, img, "constant intensity (every voxel is 5)"


def _label(data, affine=AFFINE, problem=""):
    def build(tmp):
        img = write_nifti(tmp / "img.nii.gz", _image_data(), AFFINE)
        lab = write_nifti(tmp / "lab.nii.gz", data, affine)
        return img, lab, lab, problem
    return build


def _shifted_affine() -> np.ndarray:
    a = AFFINE.copy()
    a[:3, 3] += 5.0
    return a


def _label_with(value) -> np.ndarray:
    lab = _label_data().astype(np.float32)
    lab[0, 0, 0] = value
    return lab


NIFTI_CASES = {
    "nifti-truncated-gzip": _truncated,
    "nifti-not-a-nifti": _not_nifti,
    "nifti-2d": _dims((12, 10)),
    # several volumes are channels only when imaging.channels names them all
    "nifti-4d-several-volumes": _dims((12, 10, 8, 3), "holds 3 volume(s), but the cohort has 1 "
                                      "channels ['image']"),
    "nifti-5d": _dims((12, 10, 8, 1, 2), "holds 2 volume(s), but the cohort has 1 channels"),
    "nifti-two-extra-dimensions": _dims((12, 10, 8, 2, 3), "has 2 dimensions of length > 1 "
                                        "beyond the third"),
    "nifti-single-slice": _single_slice,
    "nifti-nan-voxel": _non_finite([np.nan]),
    "nifti-inf-voxels": _non_finite([np.inf, -np.inf]),
    "nifti-singular-affine": _singular,
    "nifti-constant-intensity": _constant,
    "label-shape-differs-from-image": _label(np.zeros((12, 10, 7), np.uint8),
                                             problem="not on the image's grid"),
    "label-affine-differs-from-image": _label(_label_data(), _shifted_affine(),
                                              "not on the image's grid"),
    "label-unexpected-values": _label(_label_with(5), problem="unexpected label values [5]"),
    "label-negative-value": _label(_label_with(-1), problem="unexpected label values [-1]"),
    "label-non-integer-values": _label(_label_with(0.5),
                                       problem="label values must be integers"),
    "label-nan": _label(_label_with(np.nan), problem="1 voxels are NaN or infinite"),
}


@pytest.mark.parametrize("name", list(NIFTI_CASES))
def test_imaging_ingest_refuses_bad_nifti(name, tmp_path):
    image, label, bad, problem = NIFTI_CASES[name](tmp_path)
    out = tmp_path / "results" / "ingest"
    out_json, out_sample = out / "s01.json", out / "s01.fg.npy"
    with pytest.raises(VoxseqError) as err:
        imaging_ingest("s01", str(image), str(label) if label else None, n_labels=3, seed=0,
                       max_voxels=None, out_json=out_json, out_sample=out_sample)
    assert_names(str(err.value), "subject s01", str(bad), problem)
    assert_absent(out_json, out_sample)


def test_a_label_stored_in_another_axis_order_is_on_the_grid(tmp_path):
    """Same voxels in world coordinates, one axis stored reversed (as a DICOM conversion of the
    image may store it): accepted, and the label lines up with the image after reorientation."""
    image, _ = _good(tmp_path)
    flip = np.diag([1.0, -1.0, 1.0, 1.0])
    flip[1, 3] = SHAPE[1] - 1  # voxel j -> SHAPE[1] - 1 - j
    label = write_nifti(tmp_path / "flipped.nii.gz", _label_data()[:, ::-1].copy(), AFFINE @ flip)
    meta = imaging_ingest("s01", str(image), str(label), n_labels=3, seed=0, max_voxels=None,
                          out_json=tmp_path / "s01.json", out_sample=tmp_path / "s01.fg.npy")
    assert meta["label_voxels"] == [int((_label_data() == k).sum()) for k in range(3)]
    shifted = write_nifti(tmp_path / "shifted.nii.gz", _label_data()[:, ::-1].copy(),
                          _shifted_affine() @ flip)
    with pytest.raises(VoxseqError, match="not on the image's grid"):
        imaging_ingest("s01", str(image), str(shifted), n_labels=3, seed=0, max_voxels=None,
                       out_json=tmp_path / "s02.json", out_sample=tmp_path / "s02.fg.npy")


def test_imaging_ingest_refuses_volume_over_max_voxels(tmp_path):
    image, label = _good(tmp_path)
    out_json, out_sample = tmp_path / "s01.json", tmp_path / "s01.fg.npy"
    with pytest.raises(VoxseqError) as err:
        imaging_ingest("s01", str(image), str(label), n_labels=3, seed=0, max_voxels=500,
                       out_json=out_json, out_sample=out_sample)
    assert_names(str(err.value), "subject s01", str(image), "960 voxels",
                 "exceeds imaging.max_voxels=500")
    assert_absent(out_json, out_sample)


# ---- training: empty foreground, patch larger than every volume ---------------------------

def _train_inputs(tmp: Path, shapes: dict[str, tuple], foreground: bool) -> dict:
    """Normalised stores, centre tables, resolved sheet and statistics, as the rules make."""
    rng = np.random.default_rng(1)
    stores, tiles, rows = {}, {}, []
    for i, (s, shape) in enumerate(shapes.items()):
        lab = np.zeros(shape, np.uint8)
        if foreground:
            lab[2:6, 2:6, 2:5] = 1
        stores[s] = str(tmp / "normalise" / f"{s}.zarr")
        write_store(stores[s], rng.normal(size=shape).astype(np.float32), lab, (2.0, 2.0, 3.0),
                    {"subject": s})
        tiles[s] = str(tmp / "tile" / f"{s}.tsv")
        centres = np.argwhere(lab > 0)
        write_centres(tiles[s], s, np.column_stack([lab[lab > 0], centres]).astype(np.int64))
        rows.append({"subject": s, "image": f"/data/{s}_image.nii.gz",
                     "label": f"/data/{s}_label.nii.gz", "split": "val" if i == 0 else "train"})
    write_sheet(tmp / "sheet.tsv", rows)
    (tmp / "stats.json").write_text(json.dumps({"scheme": "zscore", "statistics": None}))
    return {"sheet": str(tmp / "sheet.tsv"), "stores": stores, "tiles": tiles,
            "stats_json": str(tmp / "stats.json")}


def _train_cfg(patch: list[int]) -> dict:
    return {"labels": ["background", "organ"], "patch_size": patch,
            "model": {"depth": 2, "base_channels": 2}, "target_spacing": [2.0, 2.0, 3.0],
            "interpolation": "linear", "foreground_fraction": 0.33,
            "train": {"epochs": 1, "iters_per_epoch": 1, "batch_size": 1, "num_workers": 0,
                      "device": "cpu"},
            "infer": {"overlap": 0.5, "batch_size": 2, "sigma_scale": 0.125}}


def _train(tmp: Path, inputs: dict, patch: list[int]) -> tuple[Path, Path, Path]:
    bundle, metrics, work = tmp / "models" / "imaging", tmp / "metrics.tsv", tmp / "checkpoints"
    train_imaging(inputs["sheet"], inputs["stores"], inputs["tiles"], inputs["stats_json"],
                  _train_cfg(patch), 0, str(bundle), str(metrics), str(work), provenance={})
    return bundle, metrics, work


def test_label_without_foreground_is_flagged_at_ingest(tmp_path, caplog):
    """Not an error for one subject (nnU-Net keeps such cases), but the log says so."""
    image = write_nifti(tmp_path / "img.nii.gz", _image_data(), AFFINE)
    label = write_nifti(tmp_path / "lab.nii.gz", np.zeros(SHAPE, np.uint8), AFFINE)
    with caplog.at_level(logging.WARNING, logger="voxseq.imaging.ingest"):
        meta = imaging_ingest("s01", str(image), str(label), n_labels=3, seed=0, max_voxels=None,
                              out_json=tmp_path / "s01.json", out_sample=tmp_path / "s01.fg.npy")
    assert meta["label_voxels"] == [int(np.prod(SHAPE)), 0, 0]
    assert_names(caplog.text, "subject s01", str(label), "no foreground voxel")


def test_training_refuses_labels_without_foreground(tmp_path):
    inputs = _train_inputs(tmp_path, {"v1": (20, 20, 12), "t1": (20, 20, 12),
                                      "t2": (18, 20, 10)}, foreground=False)
    with pytest.raises(VoxseqError) as err:
        _train(tmp_path, inputs, [16, 16, 8])
    assert_names(str(err.value), "['t1', 't2']", "/data/t1_label.nii.gz", "no foreground voxel")
    assert_absent(tmp_path / "models" / "imaging", tmp_path / "metrics.tsv",
                  tmp_path / "checkpoints")


def test_training_refuses_patch_larger_than_every_volume(tmp_path):
    inputs = _train_inputs(tmp_path, {"v1": (20, 20, 40), "t1": (20, 20, 12),
                                      "t2": (18, 20, 10)}, foreground=True)
    with pytest.raises(VoxseqError) as err:
        _train(tmp_path, inputs, [16, 16, 32])
    assert_names(str(err.value), "imaging.patch_size [16, 16, 32]", "axis 2 (S)",
                 "larger than every training volume", "largest 12 voxels: subject t1",
                 inputs["stores"]["t1"], "use at most 12")
    assert_absent(tmp_path / "models" / "imaging", tmp_path / "metrics.tsv",
                  tmp_path / "checkpoints")
    # the documented padding: a patch may exceed every volume by less than one size step
    check_patch_fits([16, 16, 16], {"t1": (20, 20, 15)}, inputs["stores"], depth=2)
    check_patch_fits([16, 16, 8], {"t1": (20, 20, 5)}, inputs["stores"], depth=3)


# ---- BAM / CRAM / FASTA / VCF: genomics ingest, coverage, reference, variant scores ---------

@pytest.fixture()
def genome(tmp_path):
    contigs = random_contigs(1, {"chr1": 2000, "chr2": 1500})
    return tmp_path, contigs, write_fasta(tmp_path / "ref.fa", contigs)


def _age(path: Path, seconds: float = 120.0) -> None:
    t = Path(path).stat().st_mtime - seconds
    os.utime(path, (t, t))


def _reads(path: Path, contigs: dict[str, str], starts: list[int], so: str = "coordinate",
           n: int | None = None, flag: int = 0) -> Path:
    """Reads on chr1 at ``starts`` (in that order, sorted or not) under header ``SO:so``, all
    with SAM flag ``flag``."""
    header = {"HD": {"VN": "1.6", "SO": so},
              "SQ": [{"SN": c, "LN": len(s)} for c, s in contigs.items()]}
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for i, start in enumerate(starts):
            a = pysam.AlignedSegment(out.header)
            a.query_name, a.flag, a.mapping_quality = f"r{i}", flag, 60
            a.reference_id, a.reference_start, a.cigarstring = 0, start, "30M"
            a.query_sequence = contigs["chr1"][start:start + 30]
            a.query_qualities = pysam.qualitystring_to_array("I" * 30)
            out.write(a)
    return path


def _with_foreign_index(path: Path, contigs: dict[str, str]) -> Path:
    """Give ``path`` the (newer) index of a sorted BAM, as a mix-up of files would."""
    sorted_bam = _reads(path.with_name("sorted.bam"), contigs, [100, 500])
    pysam.index(str(sorted_bam))
    shutil.copy(f"{sorted_bam}.bai", f"{path}.bai")
    return path


def _many_reads(path: Path, contigs: dict[str, str]) -> Path:
    """Enough reads for several BGZF blocks, indexed."""
    starts = sorted(np.random.default_rng(2).integers(0, 1900, 4000).tolist())
    _reads(path, contigs, starts)
    pysam.index(str(path))
    return path


def _bam_no_index_cram(tmp, contigs, fasta):
    cram = write_alignments(tmp / "s01.cram", contigs, reference=fasta, index=False)
    return {"bam": cram}, cram, "has no index; create it with `samtools index"


def _bam_stale_index(tmp, contigs, fasta):
    bam = _reads(tmp / "s01.bam", contigs, [100, 500, 900])
    pysam.index(str(bam))
    _reads(bam, contigs, [120, 130, 700, 1500])  # rewritten (e.g. filtered again) afterwards
    _age(Path(f"{bam}.bai"))
    return {"bam": bam}, bam, ("is older than the file and does not match it (chr1: 3 records "
                               "in the index, 4 in the file)")


def _bam_unsorted_records(tmp, contigs, fasta):
    bam = _with_foreign_index(_reads(tmp / "s01.bam", contigs, [100, 900, 400]), contigs)
    return {"bam": bam}, bam, "is not coordinate-sorted (record 3, r2 at chr1:401, comes after " \
                              "chr1:901)"


def _bam_queryname_sorted(tmp, contigs, fasta):
    bam = _with_foreign_index(_reads(tmp / "s01.bam", contigs, [100, 400], so="queryname"),
                              contigs)
    return {"bam": bam}, bam, "is not coordinate-sorted (header @HD SO:queryname)"


def _bam_queryname_sorted_without_index(tmp, contigs, fasta):
    # samtools index fails on it: the message must say to sort first
    bam = _reads(tmp / "s01.bam", contigs, [100, 400], so="queryname")
    return {"bam": bam}, bam, "(header @HD SO:queryname), so it cannot be indexed; sort first: " \
                              "`samtools sort -o sorted.bam"


def _bam_other_contig_names(tmp, contigs, fasta):
    bam = write_alignments(tmp / "s01.bam", contigs, sq={"1": 2000, "2": 1500})
    return {"bam": bam}, bam, "1: not in the reference; 2: not in the reference; chr1: missing"


def _bam_truncated(tmp, contigs, fasta):
    bam = _many_reads(tmp / "s01.bam", contigs)
    bam.write_bytes(bam.read_bytes()[: bam.stat().st_size // 2])
    _age(bam, 5)  # the index stays newer: only the truncation is wrong
    return {"bam": bam}, bam, "no BGZF EOF marker; file may be truncated"


def _bam_corrupt_block(tmp, contigs, fasta):
    bam = _many_reads(tmp / "s01.bam", contigs)
    data = bam.read_bytes()
    eof = data[-28:]  # the empty BGZF block that marks the end
    bam.write_bytes(data[: len(data) // 2] + eof)  # cut mid-block, EOF marker appended
    _age(bam, 5)
    return {"bam": bam}, bam, "is truncated or corrupt after"


def _bam_header_only(tmp, contigs, fasta):
    bam = _reads(tmp / "s01.bam", contigs, [])
    pysam.index(str(bam))
    return {"bam": bam}, bam, "no reads (header only)"


def _bam_no_read_passes(flag, name):
    def build(tmp, contigs, fasta):
        bam = _reads(tmp / "s01.bam", contigs, [100, 200, 300], flag=flag)
        pysam.index(str(bam))
        return {"bam": bam}, bam, (f"none of its 3 reads pass the filters ({name} 3; "
                                   "genomics.exclude_flags 1796, genomics.min_mapq 0)")
    return build


def _vcf_plain_text(tmp, contigs, fasta):
    vcf = write_vcf(tmp / "s01.vcf.gz", [("chr1", 10, contigs["chr1"][9], "T")],
                    {"chr1": 2000}, index=False)
    plain = vcf.with_suffix("")  # write_vcf leaves the text beside the bgzipped file
    return ({"bam": write_alignments(tmp / "s01.bam", contigs), "vcf": plain}, plain,
            "is not bgzip-compressed")


def _vcf_without_index(tmp, contigs, fasta):
    vcf = write_vcf(tmp / "s01.vcf.gz", [("chr1", 10, contigs["chr1"][9], "T")], {"chr1": 2000},
                    index=False)
    return ({"bam": write_alignments(tmp / "s01.bam", contigs), "vcf": vcf}, vcf,
            "has no index; create it with `tabix -f -p vcf")


def _vcf_stale_index(tmp, contigs, fasta):
    seq = contigs["chr1"]
    vcf = write_vcf(tmp / "s01.vcf.gz", [("chr1", 10, seq[9], "T"), ("chr1", 20, seq[19], "T")],
                    {"chr1": 2000})
    write_vcf(vcf, [("chr1", 10, seq[9], "T"), ("chr2", 15, contigs["chr2"][14], "T")],
              {"chr1": 2000, "chr2": 1500}, index=False)  # rewritten after indexing
    _age(Path(f"{vcf}.tbi"))
    return ({"bam": write_alignments(tmp / "s01.bam", contigs), "vcf": vcf}, vcf,
            "is older than the file and does not match it (chr1: reading through the index "
            "fails")


def _vcf_contig_not_in_reference(tmp, contigs, fasta):
    # the record's contig is not even declared in the VCF header
    vcf = write_vcf(tmp / "s01.vcf.gz", [("chr1", 10, contigs["chr1"][9], "T"),
                                         ("7", 20, "A", "G")], {"chr1": 2000})
    return ({"bam": write_alignments(tmp / "s01.bam", contigs), "vcf": vcf}, vcf,
            "does not match reference")


def _vcf_contig_names_without_chr(tmp, contigs, fasta):
    vcf = write_vcf(tmp / "s01.vcf.gz", [("1", 10, contigs["chr1"][9], "T")], {"1": 2000})
    return ({"bam": write_alignments(tmp / "s01.bam", contigs), "vcf": vcf}, vcf,
            "1: not in the reference; contig names differ from the reference's by their naming "
            "style; rename them in the VCF (header and records) (e.g. with `bcftools annotate "
            "--rename-chrs`, a file of old new names): 1 -> chr1")


def _vcf_ref_differs(tmp, contigs, fasta):
    base = contigs["chr1"][99]
    wrong = next(b for b in "ACGT" if b != base)
    vcf = write_vcf(tmp / "s01.vcf.gz", [("chr1", 10, contigs["chr1"][9], "T"),
                                         ("chr1", 100, wrong, base)], {"chr1": 2000})
    return ({"bam": write_alignments(tmp / "s01.bam", contigs), "vcf": vcf}, vcf,
            f"REF allele differs from the reference at 1 of 2 records checked (e.g. chr1:100 "
            f"REF {wrong}, reference {base})")


GENOMICS_CASES = {
    "cram-without-index": _bam_no_index_cram,
    "bam-rewritten-after-indexing": _bam_stale_index,
    "bam-queryname-sorted": _bam_queryname_sorted,
    "bam-queryname-sorted-without-index": _bam_queryname_sorted_without_index,
    "bam-header-contigs-differ-from-fasta": _bam_other_contig_names,
    "bam-truncated-bgzf": _bam_truncated,
    "vcf-plain-text-unindexed": _vcf_plain_text,
    "vcf-bgzipped-without-index": _vcf_without_index,
    "vcf-rewritten-after-indexing": _vcf_stale_index,
    "vcf-contig-not-in-reference": _vcf_contig_not_in_reference,
    "vcf-contig-names-without-chr": _vcf_contig_names_without_chr,
    "vcf-ref-differs-from-fasta": _vcf_ref_differs,
}


@pytest.mark.parametrize("name", list(GENOMICS_CASES))
def test_genomics_ingest_refuses_bad_file(name, genome):
    tmp, contigs, fasta = genome
    inputs, bad, problem = GENOMICS_CASES[name](tmp, contigs, fasta)
    out = tmp / "results" / "s01.json"
    with pytest.raises(VoxseqError) as err:
        genomics_ingest("s01", inputs["bam"], fasta, out, vcf=inputs.get("vcf"))
    assert_names(str(err.value), "subject s01", str(bad), problem)
    if name == "vcf-contig-not-in-reference":
        assert_names(str(err.value), "7: not in the reference", str(fasta))
    assert_absent(out)


# A BAM's records are read once, by the coverage pass: errors in them are found there.
COVERAGE_CASES = {
    "coverage-bam-rewritten-after-indexing": _bam_stale_index,
    "coverage-cram-without-index": _bam_no_index_cram,
    "coverage-bam-truncated-bgzf": _bam_truncated,
    "coverage-bam-corrupt-bgzf-block": _bam_corrupt_block,
    "coverage-bam-unsorted-records": _bam_unsorted_records,
    "coverage-bam-header-only": _bam_header_only,
    "coverage-bam-all-reads-duplicates": _bam_no_read_passes(1024, "duplicate"),
    "coverage-bam-all-reads-unmapped": _bam_no_read_passes(4, "unmapped"),
}


@pytest.mark.parametrize("name", list(COVERAGE_CASES))
def test_coverage_refuses_bad_alignments(name, genome):
    """The coverage rule checks what it reads too (its file may change after ingest)."""
    tmp, contigs, fasta = genome
    inputs, bad, problem = COVERAGE_CASES[name](tmp, contigs, fasta)
    out = tmp / "results" / "s01.h5"
    with pytest.raises(VoxseqError) as err:
        compute_coverage("s01", inputs["bam"], fasta, out, bin_size=32)
    problem = "truncated or corrupt" if name.endswith("corrupt-bgzf-block") else problem
    assert_names(str(err.value), "subject s01", str(bad), problem)
    assert_absent(out)


def test_older_index_that_still_matches_is_used_with_a_warning(genome, caplog):
    """A file touched after indexing (a copy without -p, a workflow that declared the BAM but
    not its index as an output) keeps a valid index: warned about, not refused."""
    tmp, contigs, fasta = genome
    bam = write_alignments(tmp / "s01.bam", contigs)
    vcf = write_vcf(tmp / "s01.vcf.gz", [("chr1", 10, contigs["chr1"][9], "T")], {"chr1": 2000})
    for index in (Path(f"{bam}.bai"), Path(f"{vcf}.tbi")):
        _age(index)
    with caplog.at_level(logging.WARNING, logger="voxseq.genomics.ingest"):
        report = genomics_ingest("s01", bam, fasta, tmp / "s01.json", vcf=vcf)
    assert report["read_counts_by"] == "coverage" and (tmp / "s01.json").is_file()
    for path in (bam, vcf):
        assert_names(caplog.text, "subject s01: ", f"{path}: its index {path}.",
                     "is older than the file but finds its records")
    cov = compute_coverage("s01", bam, fasta, tmp / "s01.h5", bin_size=32)
    assert cov["library_size"] == 3 and cov["read_counts"]["total"] == 4  # a duplicate


def test_fasta_without_fai_is_indexed_not_refused(genome):
    tmp, contigs, fasta = genome
    bam = write_alignments(tmp / "s01.bam", contigs)
    assert not Path(f"{fasta}.fai").exists()
    report = genomics_ingest("s01", bam, fasta, tmp / "s01.json")
    assert Path(f"{fasta}.fai").is_file() and (tmp / "s01.json").is_file()
    assert report["n_contigs"] == 2
    assert not [p for p in tmp.iterdir() if p.name.startswith(".tmp-")]


def test_fasta_all_n_contig_is_kept_with_a_warning(genome, caplog):
    tmp, contigs, _ = genome
    fasta = write_fasta(tmp / "masked.fa", {"chr1": contigs["chr1"], "chrUn": "N" * 700})
    out = tmp / "results" / "reference_contigs.tsv"
    with caplog.at_level(logging.WARNING, logger="voxseq.genomics.reference"):
        assert write_contig_table(fasta, out) == {"chr1": 2000, "chrUn": 700}
    assert_names(caplog.text, str(fasta), "contig chrUn (700 bp) is all N")
    assert out.read_text().splitlines()[1:] == ["chr1\t2000\t0", "chrUn\t700\t1"]


def test_fasta_with_only_all_n_contigs_is_refused(genome):
    tmp, _, _ = genome
    fasta = write_fasta(tmp / "blank.fa", {"chr1": "N" * 500, "chr2": "n" * 300})
    out = tmp / "results" / "reference_contigs.tsv"
    with pytest.raises(VoxseqError) as err:
        write_contig_table(fasta, out)
    assert_names(str(err.value), f"reference FASTA {fasta}", "every contig is all N")
    assert_absent(out)


def _zero_model(window: int, bin_size: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: np.zeros((len(x), window // bin_size, 2))


def test_multiallelic_records_are_split_into_one_row_per_alt(genome):
    tmp, contigs, fasta = genome
    ref, ref2 = contigs["chr1"][299], contigs["chr1"][399]
    alts = [b for b in "ACGT" if b != ref][:2]
    snv = next(b for b in "ACGT" if b != ref2)
    vcf = write_vcf(tmp / "s01.vcf.gz", [("chr1", 300, ref, ",".join(alts)),
                                         ("chr1", 400, ref2, f"{snv},{ref2}T")],
                    {"chr1": 2000})
    genomics_ingest("s01", write_alignments(tmp / "s01.bam", contigs), fasta, tmp / "s01.json",
                    vcf=vcf)  # accepted at ingest
    rows, scores = score_variants(_zero_model(64, 8), fasta, read_variants({"s01": vcf}), 64, 8,
                                  variant_bins=2)
    got = [(r["pos"], r["alt"], r["status"]) for r in rows if r["pos"] == 300]
    assert got == [(300, alts[0], "ok"), (300, alts[1], "ok")]
    assert np.isfinite(scores[:2]).all()
    mixed = {r["alt"]: r["status"] for r in rows if r["pos"] == 400}
    assert mixed == {snv: "ok", f"{ref2}T": f"skipped: not an SNV ({ref2}>{ref2}T)"}


def test_indels_are_reported_not_scored(genome, caplog):
    tmp, contigs, fasta = genome
    seq = contigs["chr1"]
    vcf = write_vcf(tmp / "s01.vcf.gz", [("chr1", 200, seq[199:201], seq[199]),
                                         ("chr1", 250, seq[249], seq[249] + "G")],
                    {"chr1": 2000})
    with caplog.at_level(logging.WARNING, logger="voxseq.genomics.variants"):
        rows, _ = score_variants(_zero_model(64, 8), fasta, read_variants({"s01": vcf}), 64, 8,
                                 variant_bins=2)
    assert [r["status"] for r in rows] == [
        f"skipped: not an SNV ({seq[199:201]}>{seq[199]})",
        f"skipped: not an SNV ({seq[249]}>{seq[249]}G)"]
    assert all(np.isnan(r["score"]) for r in rows)
    assert_names(caplog.text, "2 of 2 variants not scored", f"chr1:200 {seq[199:201]}>{seq[199]}",
                 "s01")


# ---- one Snakemake run: a corrupt image fails only its subject's ingest --------------------

def test_keep_going_corrupt_image_fails_only_its_subject(tmp_path):
    """With a bundle applied (no cohort statistics to wait for), the other subjects' ingest and
    normalise finish; with training, normalise waits for every subject's ingest instead."""
    import torch

    from voxseq.bundle import write_bundle
    from voxseq.demo.cohort import make_demo_cohort
    from voxseq.models import build_model

    subjects = ["kg01", "kg02", "kg03"]
    sheet = make_demo_cohort(tmp_path / "cohort", subjects, seed=7, genomics=False, small=True)
    bad = Path(read_sheet(sheet)[1]["image"])
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    cfg = _tiny_config()
    img = cfg["imaging"]
    arch = {"in_channels": 1, "out_channels": len(img["labels"]), **img["model"]}
    torch.manual_seed(0)
    write_bundle(tmp_path / "bundle", build_model("unet3d", **arch), "imaging", "unet3d", arch,
                 preprocessing={"target_spacing": img["target_spacing"],
                                "interpolation": "linear", "normalisation": "zscore",
                                "statistics": None, "patch_size": img["patch_size"],
                                "labels": img["labels"], "in_channels": 1, "infer": {}},
                 metrics={}, provenance={})
    cfg["demo"]["enabled"] = False
    cfg["samples"] = str(sheet)
    cfg["models"] = {"imaging": str(tmp_path / "bundle")}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    res_dir = "results/tiny/imaging"
    targets = [f"{res_dir}/{step}" for s in subjects
               for step in (f"ingest/{s}.json", f"normalise/{s}.zarr")]
    work = tmp_path / "run"
    res = run_snakemake(work, "--configfile", str(tmp_path / "cfg.yaml"), "--keep-going",
                        "--cores", "2", *targets, check=False, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert_names(out, "subject kg02", str(bad), "truncated or corrupt data")
    for s in ("kg01", "kg03"):
        assert (work / res_dir / "ingest" / f"{s}.json").is_file()
        assert (work / res_dir / "ingest" / f"{s}.fg.npy").is_file()
        assert (work / res_dir / "normalise" / f"{s}.zarr" / "zarr.json").is_file()
    ingest = work / res_dir / "ingest"
    assert_absent(ingest / "kg02.json", ingest / "kg02.fg.npy",
                  work / res_dir / "normalise" / "kg02.zarr")
