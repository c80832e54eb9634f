"""The run plan (voxseq.plan): the workflow's decisions, checked without Snakemake."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, load_config, run_snakemake

from voxseq import VoxseqError
from voxseq.bundle import FORMAT_VERSION
from voxseq.plan import Layout, build_plan
from voxseq.plan.layout import RESULTS, fill
from voxseq.plan.targets import final_outputs, sequence_training, summary_inputs

TINY = REPO / "tests/config"


def test_layout_fills_only_the_given_wildcards():
    L = Layout("c")
    assert L("imaging_store") == "results/c/imaging/normalise/{subject}.zarr"
    assert L("imaging_store", subject="s1") == "results/c/imaging/normalise/s1.zarr"
    assert L("qc_error_map", modality="imaging") == "results/c/imaging/qc/{subject}_qc_error.nii.gz"
    assert L.each("imaging_tiles", ["a", "b"]) == [
        "results/c/imaging/tile/a.tsv", "results/c/imaging/tile/b.tsv"]
    assert L.log("imaging/ingest/{subject}") == "results/c/logs/imaging/ingest/{subject}.log"
    assert L.bench("genomics/tile") == "results/c/benchmarks/genomics/tile.tsv"
    assert L.bundle("classifier") == "models/c/imaging_classify"
    assert fill("{a}/{b}", b=2) == "{a}/2"
    assert len(set(RESULTS.values())) == len(RESULTS)  # one name per path


def test_the_demo_plan(tmp_path):
    plan = build_plan(load_config(), tmp_path)
    assert plan.demo and plan.imaging and plan.genomics
    assert plan.samples == "results/demo/demo_input/samples.tsv"
    assert plan.config["genomics"]["reference"] == "results/demo/demo_input/reference.fa"
    assert len(plan.subjects) == 26 and len(plan.demo_subjects) == 24
    assert set(plan.split.values()) == {"train", "val", "test"}
    seg, cls, seq = (plan.task(n) for n in ("segmentation", "classifier", "sequence_model"))
    assert seg.train and cls.train and seq.train and plan.trains
    assert seg.bundle == "models/demo/imaging" and seg.applied is None
    assert all(plan.split[s] in ("train", "val") for s in seg.fit_subjects)
    # segmentation trains on complete subjects, the classifier on every one (stores completed)
    assert not set(seg.fit_subjects) & set(plan.missing_channels)
    assert set(cls.fit_subjects) - set(seg.fit_subjects) == set(plan.missing_channels)
    assert cls.folds == tuple(range(5))
    assert cls.channels == ("image", "t2", "seg_organ", "seg_lesion")
    assert seq.archs == ("dilated_cnn", "cnn_bilstm")
    qc = plan.task("imaging_qc")
    n_train = sum(plan.split[s] == "train" for s in plan.imaging_subjects)
    assert [plan.split[s] for s in qc.fit_subjects] == ["train"] * n_train + ["val"] * (
        len(qc.fit_subjects) - n_train)  # the training split first, then validation
    assert plan.qc_truth == "results/demo/demo_input/qc_truth.tsv"
    assert plan.contig_lengths and plan.coverage_mem_mb > 0
    # what the rules are given
    assert "results/demo/plan.json" in final_outputs(plan)
    assert summary_inputs(plan)["genomics_compare"] == "results/demo/genomics/train/compare.json"
    assert sequence_training(plan)["arch"] == "{arch}"
    text = json.dumps(plan.to_dict())  # plan.json: plain JSON, readable by a person
    written = json.loads(text)
    assert written["tasks"]["segmentation"]["action"] == "train"
    assert written["split_counts"]["imaging"] == {
        s: sum(plan.split[x] == s for x in plan.imaging_subjects) for s in ("train", "val", "test")}


def test_the_plan_leaves_the_config_it_was_given_alone(tmp_path):
    cfg = load_config()
    before = json.dumps(cfg, sort_keys=True)
    build_plan(cfg, tmp_path)
    assert json.dumps(cfg, sort_keys=True) == before


def test_one_architecture_trains_straight_into_the_bundle(tmp_path):
    cfg = load_config(TINY / "tiny_genomics.yaml", {"genomics": {"model": {"compare": []}}})
    plan = build_plan(cfg, tmp_path)
    seq = plan.task("sequence_model")
    assert len(seq.archs) == 1
    jobs = sequence_training(plan)
    assert jobs["bundle"] == seq.bundle and jobs["arch"] == seq.archs[0]
    assert "genomics_compare" not in summary_inputs(plan)


def _bundle(folder, modality, **pre):
    folder.mkdir(parents=True)
    (folder / "bundle.json").write_text(json.dumps({
        "format_version": FORMAT_VERSION, "modality": modality, "task": "segmentation",
        "cohort": "old", "preprocessing": pre}))
    return str(folder)


def test_applied_bundles_make_an_inference_only_plan(tmp_path):
    seg = _bundle(tmp_path / "seg", "imaging", labels=["background", "organ", "lesion"],
                  channels=["image"], target_spacing=[1.0, 1.0, 1.0], normalisation="zscore",
                  interpolation="linear", statistics=None)
    cfg = load_config(TINY / "tiny.yaml", {"models": {"imaging": seg}})
    plan = build_plan(cfg, tmp_path)
    task = plan.task("segmentation")
    assert task.apply and not task.train and task.bundle == seg and not plan.trains
    assert set(plan.split.values()) == {"test"}  # nothing trains: every subject is tested
    # the bundle's preprocessing, not the config's, said once
    assert plan.imaging_preprocessing["target_spacing"] == [1.0, 1.0, 1.0]
    assert any("imaging.target_spacing" in n and "[1.0, 1.0, 1.0]" in n for n in plan.notes)
    assert plan.to_dict()["tasks"]["segmentation"]["bundle_trained_on"] == "old"


def test_a_classifier_bundle_given_as_segmentation_is_refused(tmp_path):
    seg = tmp_path / "cls"
    _bundle(seg, "imaging", labels=["background", "organ", "lesion"])
    meta = json.loads((seg / "bundle.json").read_text())
    (seg / "bundle.json").write_text(json.dumps({**meta, "task": "classify"}))
    with pytest.raises(VoxseqError, match="a classifier bundle; set it as models.imaging_classify"):
        build_plan(load_config(TINY / "tiny.yaml", {"models": {"imaging": str(seg)}}), tmp_path)


def test_a_wrong_validation_contig_stops_the_plan(tmp_path):
    cfg = load_config(TINY / "tiny_genomics.yaml", {"genomics": {"val_contigs": ["chr9"]}})
    with pytest.raises(VoxseqError) as err:
        build_plan(cfg, tmp_path)
    assert ("genomics.val_contigs: contig(s) ['chr9'] are not in the reference "
            "results/tinyg/demo_input/reference.fa (its contigs: chr1, chr2, chr3, chr4)"
            ) in str(err.value)
    assert not (tmp_path / "results").exists()


def test_a_missing_sample_sheet_names_the_working_directory(tmp_path):
    cfg = load_config(TINY / "tiny.yaml", {"demo": {"enabled": False}, "samples": "my.tsv"})
    with pytest.raises(VoxseqError) as err:
        build_plan(cfg, tmp_path)
    assert "sample sheet my.tsv: file not found" in str(err.value)
    assert str(tmp_path.resolve()) in str(err.value)
    assert str((tmp_path / "my.tsv").resolve()) in str(err.value)


def test_a_partial_splits_block_means_what_it_says(tmp_path):
    """``splits: {train: 0.8, val: 0.2}`` in a --configfile: no test split (the default config's
    test fraction is not merged in), as the workflow plans it (14 subjects, all tiled)."""
    (tmp_path / "img.nii.gz").write_bytes(b"x")
    rows = "".join(f"s{i:02d}\timg.nii.gz\n" for i in range(14))
    (tmp_path / "s.tsv").write_text("subject\timage\n" + rows)
    (tmp_path / "c.yaml").write_text(
        f"demo: {{enabled: false}}\nsamples: {tmp_path / 's.tsv'}\n"
        "splits: {train: 0.8, val: 0.2}\nqc: {enabled: false}\n")
    res = run_snakemake(tmp_path / "run", "-n", "--configfile", str(TINY / "tiny.yaml"),
                        str(tmp_path / "c.yaml"))
    stats = (res.stdout + res.stderr).split("Job stats:")[1].split("total")[0]
    tiles = [line.split() for line in stats.splitlines() if line.startswith("imaging_tile ")]
    assert tiles == [["imaging_tile", "14"]]  # every subject is a train or val subject


# ---- imaging genetics ---------------------------------------------------------------------------
def test_the_demo_plan_runs_the_association(tmp_path):
    plan = build_plan(load_config(), tmp_path)
    g = plan.genetics
    assert g.enabled and g.absent_as_ref  # the demo's VCFs list only carried variants
    assert g.phenotypes == ("volume_lesion_mm3", "lesion_count", "lesion_burden_mm3")
    assert g.lesion_label == ("lesion", 2) and len(g.subjects) == 26 and len(g.vcfs) == 26
    assert g.covariates == ("age", "sex", "batch")  # the demo's sheet has all three
    assert all(r["age"] and r["sex"] for r in plan.subjects.values())
    out = final_outputs(plan)
    assert {"results/demo/subjects.tsv", "results/demo/subjects.columns.tsv",
            "results/demo/genetics/association/lesion_count_qq.png",
            "results/demo/genetics/association/volume_lesion_mm3_manhattan.png"} <= set(out)
    assert summary_inputs(plan)["association"] == (
        "results/demo/genetics/association/association.json")
    written = json.loads(json.dumps(plan.to_dict()))["genetics"]
    assert written["enabled"] and written["phenotypes"] == list(g.phenotypes)


def test_genetics_auto_is_off_without_genomics_and_true_is_refused(tmp_path):
    plan = build_plan(load_config(TINY / "tiny.yaml"), tmp_path)
    assert not plan.genetics.enabled
    assert "genomics.enabled is false" in plan.to_dict()["genetics"]["why"][0]
    assert "results/tiny/subjects.tsv" in final_outputs(plan)
    assert not [p for p in final_outputs(plan) if "/genetics/" in p]
    with pytest.raises(VoxseqError, match="genetics.enabled is true but genomics.enabled is "
                                          "false"):
        build_plan(load_config(TINY / "tiny.yaml", {"genetics": {"enabled": True}}), tmp_path)
    assert not (tmp_path / "results").exists()


def test_a_phenotype_the_subject_table_cannot_hold_is_refused(tmp_path):
    cfg = load_config({"genetics": {"phenotypes": ["volume_tumour_mm3"]}})
    with pytest.raises(VoxseqError, match=r"genetics.phenotypes: \['volume_tumour_mm3'\] cannot "
                                          r"be a column .*'volume_lesion_mm3'"):
        build_plan(cfg, tmp_path)
    cfg = load_config({"genetics": {"lesion_label": "organ",
                                    "phenotypes": ["organ_count", "intensity_image_body"]}})
    assert build_plan(cfg, tmp_path).genetics.lesion_label == ("organ", 1)


def test_a_users_sheet_keeps_its_covariates_and_reads_absent_variants_as_missing(tmp_path):
    for name in ("a.nii.gz", "a.bam", "a.vcf.gz"):
        (tmp_path / name).write_bytes(b"x")
    rows = "".join(f"s{i}\ta.nii.gz\ta.bam\ta.vcf.gz\t{40 + i}\tF\n" for i in range(4))
    (tmp_path / "s.tsv").write_text("subject\timage\tbam\tvcf\tage\tsex\n" + rows)
    cfg = load_config({"demo": {"enabled": False}, "samples": str(tmp_path / "s.tsv"),
                       "genomics": {"reference": str(tmp_path / "ref.fa")}})
    plan = build_plan(cfg, tmp_path)
    g = plan.genetics
    assert g.enabled and not g.absent_as_ref and g.covariates == ("age", "sex")
    assert any("['batch'] left out" in n for n in plan.notes)
    (tmp_path / "s.tsv").write_text("subject\timage\tbam\n" + "".join(
        f"s{i}\ta.nii.gz\ta.bam\n" for i in range(4)))
    assert not build_plan(cfg, tmp_path).genetics.enabled
    with pytest.raises(VoxseqError, match=r"genetics.enabled is true but 0 subject\(s\) of "):
        build_plan(load_config(cfg, {"genetics": {"enabled": True}}), tmp_path)


def test_a_missing_cohort_vcf_is_refused_before_any_job(tmp_path):
    with pytest.raises(VoxseqError, match="genetics.cohort_vcf: cohort.vcf.gz: file not found"):
        build_plan(load_config({"genetics": {"cohort_vcf": "cohort.vcf.gz"}}), tmp_path)
    (tmp_path / "cohort.vcf.gz").write_bytes(b"x")
    plan = build_plan(load_config({"genetics": {"cohort_vcf": "cohort.vcf.gz"}}), tmp_path)
    assert plan.genetics.cohort_vcf == "cohort.vcf.gz" and not plan.genetics.vcfs
