"""The subject model in the run plan and the workflow: on or off, its target, refusals before any
job, and a new cohort that applies the fused bundle without a training job."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, load_config, run_snakemake

from voxseq import VoxseqError
from voxseq.bundle import FORMAT_VERSION
from voxseq.io.atomic import write_tsv
from voxseq.plan import build_plan
from voxseq.plan.targets import final_outputs, subject_model_inputs, summary_inputs

TINY = REPO / "tests/config"


def _subject_bundle(folder, features=("qc_latent_0", "coverage_motif_ap1_like"),
                    classes=("high_burden", "low_burden")):
    """A subject model bundle.json (what the plan reads of it)."""
    folder.mkdir(parents=True)
    (folder / "bundle.json").write_text(json.dumps({
        "format_version": FORMAT_VERSION, "modality": "subject", "task": "subject_model",
        "cohort": "old", "preprocessing": {
            "classes": ["no", "yes"], "target": "outcome", "fusion": "late",
            "needs": {"imaging": {"proba": [f"prob_{c}" for c in classes], "embeddings": 0},
                      "genomics": {"features": list(features)}},
            "recipe": {"regions": "demo", "region_bin_size": 100000, "qc_latent": True,
                       "embeddings": False}}}))
    return str(folder)


def test_the_demo_plan_trains_the_subject_model_on_the_classifier_folds(tmp_path):
    plan = build_plan(load_config(), tmp_path)
    task, sm = plan.task("subject_model"), plan.subject_model
    assert task.enabled and task.train and task.bundle == "models/demo/subject_model"
    assert task.folds == plan.task("classifier").folds == tuple(range(5))
    assert sm.target == "outcome"  # auto: the demo's planted outcome
    assert sm.recipe == {"regions": "demo", "region_bin_size": 100000, "qc_latent": True,
                         "embeddings": False}
    inputs = subject_model_inputs(plan)
    assert inputs["predictions"] == "results/demo/imaging/classify/predictions.tsv"
    assert inputs["features"] == "results/demo/subject_model/genomics_features.tsv"
    assert "stores" not in inputs and "bundle" not in inputs
    assert summary_inputs(plan)["subject_model"] == "results/demo/subject_model/metrics.json"
    assert "models/demo/subject_model/bundle.json" in final_outputs(plan)
    written = json.loads(json.dumps(plan.to_dict()))
    assert written["tasks"]["subject_model"]["action"] == "train"
    assert written["subject_model"]["target"] == "outcome"
    # with embeddings, the classifier's fold networks and what they read
    plan = build_plan(load_config({"subject_model": {"imaging": {"embeddings": True}}}), tmp_path)
    inputs = subject_model_inputs(plan)
    assert inputs["folds"] == [f"results/demo/imaging/classify/fold{k}/fold.json"
                               for k in range(5)]
    assert len(inputs["stores"]) == len(inputs["seg_probs"]) == 26


def test_auto_is_off_without_genomics_and_true_is_refused(tmp_path):
    plan = build_plan(load_config(TINY / "tiny_classify.yaml"), tmp_path)
    assert not plan.task("subject_model").enabled
    assert "genomics is off" in plan.subject_model.to_dict()["why"][0]
    assert "results/tinyc/subject_model/metrics.json" not in final_outputs(plan)
    with pytest.raises(VoxseqError, match="subject_model.enabled is true but genomics is off"):
        build_plan(load_config(TINY / "tiny_classify.yaml",
                               {"subject_model": {"enabled": True}}), tmp_path)
    off = build_plan(load_config({"subject_model": {"enabled": False}}), tmp_path)
    assert not off.task("subject_model").enabled and not off.task("subject_model").folds


def test_a_target_column_the_sheet_lacks_is_refused_before_any_job(tmp_path):
    with pytest.raises(VoxseqError, match=r"subject_model.target: 'grade' is not a column"):
        build_plan(load_config({"subject_model": {"target": "grade"}}), tmp_path)
    # a user's sheet: any column with values may be the target, the one it lacks is refused
    rows = [{"subject": f"s{i}", "image": "", "bam": "", "class": "ab"[i % 2],
             "outcome_response": "yn"[i % 2], "age": str(30 + i)} for i in range(4)]
    write_tsv(tmp_path / "samples.tsv", rows, list(rows[0]))
    from voxseq.plan.subject_model import sheet_columns

    sheet = {r["subject"]: {**r, "label": ""} for r in rows}
    cfg = load_config({"demo": {"enabled": False}, "subject_model": {"target": "outcome_x"}})
    assert {"class", "outcome_response", "age"} <= sheet_columns(cfg, sheet)
    assert "batch" not in sheet_columns(cfg, sheet)  # no value anywhere: not a column


def test_a_bundle_needing_a_modality_the_cohort_lacks_is_refused(tmp_path):
    bundle = _subject_bundle(tmp_path / "sm")
    cfg = load_config(TINY / "tiny_classify.yaml", {"models": {"subject_model": bundle}})
    with pytest.raises(VoxseqError) as err:
        build_plan(cfg, tmp_path)
    assert f"models.subject_model {bundle}: the bundle needs imaging" in str(err.value)
    assert "this cohort lacks one: genomics is off" in str(err.value)
    # imaging without the classifier
    cfg = load_config({"models": {"subject_model": bundle},
                       "imaging": {"classify": {"enabled": False}}})
    with pytest.raises(VoxseqError, match="lacks one: the imaging classifier is off"):
        build_plan(cfg, tmp_path)
    # the genomics QC latent code it was trained with, with QC off
    cfg = load_config({"models": {"subject_model": bundle}, "qc": {"enabled": False}})
    with pytest.raises(VoxseqError, match="needs the genomics QC latent code"):
        build_plan(cfg, tmp_path)


def test_an_applied_bundle_sets_the_recipe_and_no_training(tmp_path):
    bundle = _subject_bundle(tmp_path / "sm")
    plan = build_plan(load_config({"models": {"subject_model": bundle}}), tmp_path)
    task = plan.task("subject_model")
    assert task.apply and not task.train and not task.folds
    assert plan.subject_model.target == "outcome" and plan.subject_model.regions == "demo"
    inputs = subject_model_inputs(plan)
    assert inputs["bundle"] == [f"{bundle}/bundle.json", f"{bundle}/weights.safetensors"]
    assert final_outputs(plan)[-1] == "results/demo/subject_model/predictions.tsv"
    assert "subject_model" not in summary_inputs(plan)


def test_the_new_cohort_applies_the_fused_bundle_with_no_training_job(tmp_path):
    """A dry run of a cohort whose every model is a bundle: the subject model is applied
    (features, then the bundle), and no job trains."""
    folders = {"imaging": ("imaging", "segmentation", {
                   "labels": ["background", "organ", "lesion"], "channels": ["image"],
                   "target_spacing": [2.0, 2.0, 3.0], "normalisation": "zscore",
                   "interpolation": "linear", "statistics": None}),
               "imaging_classify": ("imaging", "classify", {
                   "classes": ["high_burden", "low_burden"], "channels": ["image"],
                   "input_size": [16, 16, 12], "crop": "none", "target_spacing": [2.0, 2.0, 3.0],
                   "normalisation": "zscore", "interpolation": "linear", "statistics": None}),
               "genomics": ("genomics", "sequence_model", {})}
    models = {}
    for key, (modality, task, pre) in folders.items():
        folder = tmp_path / "old" / key
        folder.mkdir(parents=True)
        (folder / "bundle.json").write_text(json.dumps({
            "format_version": FORMAT_VERSION, "modality": modality, "task": task,
            "cohort": "old", "preprocessing": pre}))
        (folder / "weights.safetensors").write_bytes(b"")  # a dry run reads neither
        models[key] = str(folder)
    models["subject_model"] = _subject_bundle(tmp_path / "old" / "subject_model",
                                              features=("coverage_motif_ap1_like",))
    (tmp_path / "old" / "subject_model" / "weights.safetensors").write_bytes(b"")
    cfg = tmp_path / "new.yaml"
    cfg.write_text(json.dumps({"cohort": "new", "models": models,
                               "imaging": {"classify": {"enabled": "auto",
                                                                "with_segmentation": False}}}))
    res = run_snakemake(tmp_path, "--configfile", str(TINY / "tiny_genetics.yaml"), str(cfg),
                        "-n", "--quiet", "rules")
    out = res.stdout + res.stderr
    rules = {line.split()[0] for line in out.split("Job stats:")[1].split("total")[0]
             .splitlines()[3:] if line.strip()}
    assert {"subject_model_features", "subject_model_apply", "imaging_classify"} <= rules
    assert not [r for r in rules if "train" in r], rules
