"""Trust in reruns: edited data retrains, a touch reruns nothing after the
statistics, inference-only configs must name their inputs, bundle labels are checked early, the
terminal shows training progress and ends with the results."""

from __future__ import annotations

import json
import logging
import os
import re
import time

import nibabel as nib
import numpy as np
import pytest
import yaml
from conftest import REPO, TINY_RUN, copy_run, in_copy, load_config, run_snakemake

from voxseq import VoxseqError
from voxseq.io.atomic import read_tsv
from voxseq.io.digest import file_sha256
from voxseq.plan import build_plan
from voxseq.summary import headline
from voxseq.terminal import CompactFilter

TINY = str(REPO / "tests/config/tiny.yaml")
_JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):", re.MULTILINE)


def _run(work, *args, check=True):
    return run_snakemake(work, "--configfile", *TINY_RUN, "--cores", "2", *args, check=check)


def _jobs(res) -> list[str]:
    """Rule names of the jobs a run executed (needs terminal=snakemake)."""
    return _JOB.findall(res.stdout + res.stderr)


@pytest.fixture(scope="module")
def trained(tiny_run, tmp_path_factory):
    """A copy of the shared finished tiny run (the tests below edit its inputs), and a function
    mapping a source named by its resolved sheet into the copy."""
    work = copy_run(tiny_run, tmp_path_factory.mktemp("trust") / "run")
    return work, lambda path: in_copy(path, tiny_run, work)


def test_terminal_shows_epochs_and_ends_with_results(tiny_run_result):
    _, res = tiny_run_result
    out = res.stdout + res.stderr
    # a progress line every 10 % of the epochs and 30 s (whichever is rarer), and the last
    assert "imaging segmentation: epoch 2/2" in out and "left" in out
    assert "voxseq: cohort tiny: results in results/tiny/" in out
    assert "test Dice" in out
    assert "Select jobs to execute" not in out and "Shell command" not in out
    assert len(out.splitlines()) < 100, out


def _touch(path, rewrite=False):
    """A touch: a newer time, the same bytes (``rewrite``: as a copy tool would, in place)."""
    if rewrite:
        data = open(path, "rb").read()
        with open(path, "wb") as fh:
            fh.write(data)
    else:
        os.utime(path)


def test_touch_reruns_nothing(trained):
    work, here = trained
    sheet = read_tsv(work / "results/tiny/sheet.tsv")
    weights = work / "models/tiny/imaging/weights.safetensors"
    before = weights.stat().st_mtime_ns
    time.sleep(0.05)  # a newer time on coarse-clock file systems too
    train = next(r for r in sheet if r["split"] == "train" and r["label"])
    test = next(r for r in sheet if r["split"] == "test")
    _touch(here(train["image"]), rewrite=True)
    _touch(here(train["label"]))
    _touch(here(test["image"]))
    _touch(work / "results/tiny/demo_input/samples.tsv")
    res = _run(work, "--config", "terminal=snakemake")
    assert _jobs(res) == [], _jobs(res)
    assert weights.stat().st_mtime_ns == before
    # the digests of the touched files were cached: the next DAG build reads nothing again
    assert len(list((work / ".snakemake/voxseq/digests").glob("*.json"))) == 4
    res = _run(work, "--config", "terminal=snakemake", "-n")
    assert "Nothing to be done" in res.stdout + res.stderr


def test_edited_test_subject_reruns_only_its_own_chain(trained):
    """An edit of a test subject's image reruns that subject's ingest, preprocessing and
    inference (and the cohort tables), never the statistics, training or other subjects."""
    work, here = trained
    sheet = read_tsv(work / "results/tiny/sheet.tsv")
    row = next(r for r in sheet if r["split"] == "test")
    image = here(row["image"])
    weights = work / "models/tiny/imaging/weights.safetensors"
    before = weights.stat().st_mtime_ns
    img = nib.load(image)
    data = np.asarray(img.dataobj).astype(np.float32) * 1.1 + 5.0
    nib.save(nib.Nifti1Image(data, img.affine, img.header), image)
    res = _run(work, "--config", "terminal=snakemake")
    jobs = _jobs(res)
    for rule in ("imaging_ingest", "imaging_normalise", "imaging_infer"):
        assert jobs.count(rule) == 1, jobs
    # patch-centre tables are made for the training and validation subjects only
    assert not {"imaging_stats", "imaging_tile", "imaging_train", "cohort_sheet"} & set(jobs), jobs
    assert weights.stat().st_mtime_ns == before
    meta = json.loads((work / f"results/tiny/imaging/ingest/{row['subject']}.json").read_text())
    assert meta["sources"]["image"]["sha256"] == file_sha256(image)


def test_edited_label_retrains_from_scratch(trained):
    work, here = trained
    sheet = read_tsv(work / "results/tiny/sheet.tsv")
    subject = next(r["subject"] for r in sheet if r["split"] == "train" and r["label"])
    row = next(r for r in sheet if r["subject"] == subject)
    label = here(row["label"])
    weights = work / "models/tiny/imaging/weights.safetensors"
    old = file_sha256(weights)
    img = nib.load(label)
    data = np.asarray(img.dataobj).copy()
    data[data == 2] = 1  # the lesion relabelled as organ
    nib.save(nib.Nifti1Image(data, img.affine, img.header), label)
    res = _run(work, "--config", "terminal=snakemake")
    jobs = _jobs(res)
    assert "imaging_normalise" in jobs and "imaging_train" in jobs, jobs
    assert jobs.count("imaging_infer") == 6, jobs
    log = (work / "results/tiny/logs/imaging/train.log").read_text()
    assert "resuming" not in log and "already trained" not in log
    assert "made from other inputs" in log
    assert file_sha256(weights) != old


def test_every_bundle_file_is_a_declared_output(trained):
    """Snakemake clears declared outputs before a retrain: nothing stale can stay behind."""
    work, _ = trained
    res = run_snakemake(work, "--configfile", *TINY_RUN, "--summary")
    declared = {line.split("\t")[0] for line in res.stdout.splitlines() if "\t" in line}
    written = {str(p.relative_to(work)) for p in (work / "models/tiny/imaging").iterdir()}
    assert written and written <= declared, written - declared


# ---- configs that must stop before any job ----------------------------------------------------
def _config(tmp_path, **changes) -> str:
    cfg = yaml.safe_load(open(TINY))
    for key, value in changes.items():
        node = cfg
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _refusal(tmp_path, cfg) -> str:
    """The run plan's refusal: the workflow builds the plan while it parses, before any job."""
    (tmp_path / "run").mkdir(exist_ok=True)
    with pytest.raises(VoxseqError) as err:
        build_plan(load_config(cfg), tmp_path / "run")
    return str(err.value)


@pytest.mark.parametrize("changes, expected", [
    ({"demo.enabled": False}, "config samples: not set"),
    ({"samples": "my.tsv"}, "config samples: 'my.tsv' is set while demo.enabled is true"),
    ({"genomics.enabled": True, "genomics.reference": "/data/other.fa"},
     "config genomics.reference: '/data/other.fa' is set while demo.enabled is true"),
])
def test_inputs_must_be_named_outside_the_demo(tmp_path, changes, expected):
    assert expected in _refusal(tmp_path, _config(tmp_path, **changes))
    assert not (tmp_path / "run" / "results").exists()


def test_genomics_outside_the_demo_needs_a_reference(tmp_path):
    sheet = tmp_path / "s.tsv"
    (tmp_path / "a.bam").write_bytes(b"x")
    sheet.write_text("subject\tbam\na\ta.bam\n")
    cfg = _config(tmp_path, **{"demo.enabled": False, "samples": str(sheet),
                               "imaging.enabled": False, "genomics.enabled": True})
    assert "config genomics.reference: not set" in _refusal(tmp_path, cfg)


def test_bundle_labels_that_differ_from_the_config_stop_the_run(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text(json.dumps({
        "format_version": 1, "modality": "imaging",
        "preprocessing": {"labels": ["background", "liver"], "target_spacing": [1, 1, 1]}}))
    out = _refusal(tmp_path, _config(tmp_path, **{"models.imaging": str(bundle)}))
    assert ("bundle labels ['background', 'liver'], config labels "
            "['background', 'organ', 'lesion']") in out


# ---- the compact terminal ---------------------------------------------------------------------
def _record(msg, level=logging.INFO, **extra):
    rec = logging.LogRecord("snakemake", level, __file__, 1, msg, None, None)
    rec.__dict__.update(extra)
    return rec


def test_compact_filter_keeps_progress_steps_errors_and_drops_job_blocks():
    f = CompactFilter()
    shown = [d for d in range(1, 110) if f.filter(_record(None, event="progress", done=d,
                                                           total=109))]
    assert len(shown) == 10 and shown[-1] == 109
    assert not f.filter(_record("rule x:", event="job_info"))
    assert not f.filter(_record(None, event="job_finished"))
    assert not f.filter(_record("Select jobs to execute..."))
    assert not f.filter(_record("Execute 2 jobs..."))
    assert f.filter(_record("Error in rule x", level=logging.ERROR, event="job_error"))
    assert f.filter(_record("Building DAG of jobs..."))


def test_compact_terminal_leaves_the_log_file_complete(tmp_path):
    from voxseq.terminal import install

    logger = logging.getLogger("voxseq-test-terminal")
    stream, file_ = logging.StreamHandler(), logging.FileHandler(tmp_path / "log")
    logger.addHandler(stream)
    logger.addHandler(file_)
    try:
        install(logger, "compact")
        install(logger, "compact")  # idempotent
        assert len(stream.filters) == 1 and file_.filters == []
    finally:
        logger.removeHandler(stream)
        logger.removeHandler(file_)
        file_.close()


def test_headline_names_the_results_and_the_numbers(tmp_path):
    summary = tmp_path / "results/c/summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({
        "cohort": "c", "total_stage_seconds": 12.0,
        "imaging": {"n_subjects": 16, "test_dice_mean": 0.9491, "n_test_labelled": 4,
                    "test_dice_per_label": {"organ": 0.984, "lesion": 0.915}},
        "genomics": {"n_subjects": 16, "test_pearson_mean": 0.931,
                     "test_pearson_log1p_mean": 0.874, "test_contigs": ["chr4"],
                     "vep_auroc": 1.0}}))
    text = "\n".join(headline(summary, {"imaging": "models/c/imaging"}))
    for part in (str(summary.parent), "test Dice 0.949", "organ 0.984", "Pearson 0.931",
                 "log1p 0.874", "AUROC 1.000", "models/c/imaging"):
        assert part in text, text


def test_schema_errors_name_the_full_key_path(tmp_path):
    out = _refusal(tmp_path, _config(tmp_path, **{"imaging.train.epochs": -1}))
    assert "config imaging.train.epochs: -1 is less than the minimum of 1" in out


def test_cuda_on_a_machine_without_it_stops_before_any_job(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = _config(tmp_path, **{"imaging.train.device": "cuda"})
    res = run_snakemake(tmp_path / "run", "--configfile", cfg, "--cores", "1", check=False)
    assert res.returncode != 0
    assert "config imaging.train.device: 'cuda' requested" in res.stdout + res.stderr
    assert not (tmp_path / "run" / "results").exists()


def test_qc_with_too_few_training_subjects_says_nothing_is_excluded(tmp_path, caplog):
    """qc.exclude_flagged with fewer than 5 QC training subjects: the terminal (voxseq.progress)
    and the log say QC could not score, so nothing was excluded."""
    from voxseq.models import build_model
    from voxseq.qc.autoencoder import train_autoencoder

    x = np.random.default_rng(0).normal(size=(6, 20)).astype(np.float32)
    train = {"epochs": 1, "batch_size": 2, "device": "cpu", "num_workers": 0, "amp": False}
    with caplog.at_level(logging.INFO):
        dropped = train_autoencoder(
            lambda: build_model("profile_autoencoder", n_bins=20, hidden=8, latent=2),
            x, [0, 1, 2, 3], [4, 5], train, 0, 0.1, 3.5, tmp_path, tmp_path / "m.tsv", "d",
            "genomics QC")[1]
    assert dropped == []
    said = [r for r in caplog.records if r.name == "voxseq.progress"
            and "QC could not score" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert "4 training subject(s), at least 5" in said[0].getMessage()
    assert "nothing is excluded" in said[0].getMessage()
