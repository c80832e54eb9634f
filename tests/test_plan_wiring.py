"""The rules' input functions (voxseq.plan.wiring): lookups in the run plan, without Snakemake."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

from conftest import REPO, load_config
from snakemake.common import get_function_params

from voxseq.io.digest import source_record
from voxseq.plan import build_plan
from voxseq.plan.wiring import RuleInputs, bundle_outputs, ingest_mem_mb, per_attempt


class Ancient(str):
    """Stands in for Snakemake's ``ancient`` marker."""


def _inputs(tmp_path, monkeypatch, *configs, **override):
    monkeypatch.chdir(tmp_path)
    plan = build_plan(load_config(*configs, *([override] if override else [])), tmp_path)
    return plan, RuleInputs(plan, Ancient)


def test_a_source_keeps_its_time_while_its_bytes_are_those_its_ingest_read(tmp_path,
                                                                          monkeypatch):
    sheet = tmp_path / "s.tsv"
    sheet.write_text("subject\timage\tlabel\ns1\ta.nii.gz\ta_seg.nii.gz\n")
    (tmp_path / "a.nii.gz").write_bytes(b"image bytes")
    (tmp_path / "a_seg.nii.gz").write_bytes(b"label bytes")
    plan, IN = _inputs(tmp_path, monkeypatch, REPO / "tests/config/tiny.yaml",
                       demo={"enabled": False}, genomics={"enabled": False},
                       samples=str(sheet), splits={"train": 1.0, "val": 0.0, "test": 0.0})
    subject = SimpleNamespace(subject="s1")
    image = plan.subjects["s1"]["image"]
    assert not isinstance(IN.imaging_sources(subject)["image"], Ancient)  # no record yet
    record = plan.layout("imaging_ingest", subject="s1")
    os.makedirs(os.path.dirname(record))
    with open(record, "w") as fh:
        json.dump({"sources": {"image": source_record(image)}}, fh)
    IN = RuleInputs(plan, Ancient)  # records are read once per DAG build
    os.utime(image, ns=(1, 1))  # touched: other time, same bytes
    got = IN.imaging_sources(subject)
    assert isinstance(got["image"], Ancient) and got["image"] == image
    assert not isinstance(got["label"], Ancient)  # no record of the label
    assert got["channels"] == [] and got["image_pair"] == []
    with open(image, "wb") as fh:
        fh.write(b"edited bytes")
    assert not isinstance(RuleInputs(plan, Ancient).label(subject), Ancient)
    assert not isinstance(RuleInputs(plan, Ancient).imaging_sources(subject)["image"], Ancient)


def test_the_demo_plans_rule_inputs(tmp_path, monkeypatch):
    plan, IN = _inputs(tmp_path, monkeypatch)
    L = plan.layout
    subject = SimpleNamespace(subject=plan.demo_subjects[0])
    assert IN.imaging_stats(subject) == L("imaging_stats")  # trained here
    assert IN.classify_oof() == [L("classify_oof", fold=k) for k in plan.task("classifier").folds]
    assert IN.qc_out_of_fold("imaging") == [L("qc_out_of_fold", modality="imaging")]
    assert IN.qc_exclusion("genomics") == []  # qc.exclude_flagged is off by default
    assert isinstance(IN.no_shared_content("imaging"), Ancient)
    assert IN.qc_config("imaging")["threshold"] == plan.config["qc"]["threshold"]
    assert IN.ingest_records(SimpleNamespace(modality="genomics")) == L.each(
        "genomics_ingest", plan.genomics_subjects)
    assert IN.bam(subject) == plan.subjects[subject.subject]["bam"]
    assert L("summary") in IN.final_outputs() and IN.headline() == []  # no summary yet


def test_the_classifier_reads_segmentation_probabilities_only_when_they_are_channels(
        tmp_path, monkeypatch):
    cfg = REPO / "tests/config/tiny_classify.yaml"  # image channel only
    plan, IN = _inputs(tmp_path, monkeypatch, cfg)
    assert len(plan.task("classifier").channels) == 1
    assert IN.classify_seg_probs() == [] and IN.infer_extra_outputs() == {}
    plan, IN = _inputs(tmp_path, monkeypatch, cfg,
                       imaging={"classify": {"with_segmentation": True}})
    assert len(plan.task("classifier").channels) > 1
    assert IN.classify_seg_probs() == plan.layout.each("imaging_probabilities",
                                                       plan.imaging_subjects)
    assert IN.classify_fit_seg_probs() == plan.layout.each(
        "imaging_probabilities", plan.task("classifier").fit_subjects)
    assert set(IN.infer_extra_outputs()) == {"probabilities"}


def test_resources_and_bundle_files():
    assert per_attempt(1000)(None, attempt=3) == 4000
    assert list(get_function_params(per_attempt(1))) == ["wildcards", "attempt"]
    assert ingest_mem_mb(None, [], attempt=2) == 6000
    assert bundle_outputs("m", torchscript=False) == [
        "m/bundle.json", "m/weights.safetensors", "m/README.md"]


def test_input_functions_have_their_parameters_recorded_once(tmp_path, monkeypatch):
    _, IN = _inputs(tmp_path, monkeypatch)
    assert list(get_function_params(IN.label)) == ["wildcards"]
    assert list(get_function_params(IN.classify_oof)) == ["wildcards"]
