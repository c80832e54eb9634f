"""The subject stage's rule entry points (voxseq.genetics.run)."""

from __future__ import annotations

import json

import pytest
from test_genotypes import _vcf

from voxseq import VoxseqError
from voxseq.genetics.run import run_genotypes, subject_images


def test_subject_images_by_column_or_4d_volume():
    rows = [{"subject": "a", "image": "a.nii", "image_t2": "a_t2.nii"}]
    assert subject_images(rows, ["a"], ["t1", "t2"], ["image_t2"]) == {
        "a": {"t1": "a.nii", "t2": "a_t2.nii"}}
    four_d = [{"subject": "a", "image": "a4d.nii"}]
    assert subject_images(four_d, ["a"], ["t1", "flair"], []) == {
        "a": {"t1": ("a4d.nii", 0), "flair": ("a4d.nii", 1)}}
    assert subject_images(four_d, ["a"], ["image"], []) == {"a": {"image": "a4d.nii"}}


def _cohort(tmp_path, n):
    return {f"s{i}": _vcf(tmp_path / f"s{i}.vcf.gz", [f"s{i}"], [
        ("chr1", 100, ".", "A", "G", ".", "PASS", ".", "GT", "0/1" if i % 2 else "1/1"),
        ("chr1", 200, ".", "C", "T", ".", "PASS", ".", "GT", "0/1")]) for i in range(n)}


def test_run_genotypes_writes_counts_and_clears_old_dosages(tmp_path):
    prefix = tmp_path / "g"
    (tmp_path / "g.dosage.npy").write_bytes(b"stale")  # from an earlier run with FORMAT DS
    qc = {"min_maf": 0.0, "min_mac": 1, "min_hwe_p": 0.0}
    summary = run_genotypes(str(prefix), str(tmp_path / "qc.tsv"), str(tmp_path / "g.json"),
                            _cohort(tmp_path, 4), None, [], True, qc)
    assert json.loads((tmp_path / "g.json").read_text()) == summary
    assert summary["genotype_variants_pass"] == 2 and summary["genotype_samples_pass"] == 4
    assert not (tmp_path / "g.dosage.npy").exists()


def test_run_genotypes_refuses_a_cohort_with_nothing_left(tmp_path):
    with pytest.raises(VoxseqError, match=r"0 of 2 variants .* pass QC .*qc.tsv"):
        run_genotypes(str(tmp_path / "g"), str(tmp_path / "qc.tsv"), str(tmp_path / "g.json"),
                      _cohort(tmp_path, 4), None, [], True, {"min_mac": 50})
    assert not (tmp_path / "g.json").exists()


def test_summary_genetics_block_and_headline(tmp_path):
    from voxseq.io.atomic import write_tsv
    from voxseq.summary import genetics_block, headline

    pheno = {"top_variant": "chr4:10:C:G", "top_p": 1e-6, "top_beta": 2.0, "lambda_gc": 1.01,
             "tested": 100, "hits": 0, "obs_ct_max": 26}
    (tmp_path / "a.json").write_text(json.dumps({
        "association_subjects": 26, "association_variants": 100, "association_covariates": [],
        "association_pcs": 0, "association_phenotypes": {"lesion_count": pheno,
                                                         "volume_lesion_mm3": {**pheno,
                                                                               "top_p": 0.01}}}))
    (tmp_path / "g.json").write_text(json.dumps({
        "genotype_variants": 120, "genotype_variants_pass": 100, "genotype_samples": 26,
        "genotype_samples_pass": 26, "genotype_skipped": {"not_snv": 3}}))
    truth = [{"id": "chr4:10:C:G", "phenotype": "lesion_count"}]
    write_tsv(tmp_path / "q.tsv", truth, ["id", "phenotype"])
    block = genetics_block(tmp_path / "a.json", tmp_path / "g.json", tmp_path / "q.tsv")
    assert block["genotype_qc"]["variants_pass"] == 100
    assert block["phenotypes"]["lesion_count"]["top_p"] == 1e-6
    assert block["planted_qtl"]["recovered"]  # top of its phenotype, 1e-6 < 0.05 / 100
    write_tsv(tmp_path / "q.tsv", [{**truth[0], "phenotype": "volume_lesion_mm3"}],
              ["id", "phenotype"])  # 0.01 > 0.05 / 100: not recovered
    assert not genetics_block(tmp_path / "a.json", None, tmp_path / "q.tsv")["planted_qtl"][
        "recovered"]
    (tmp_path / "summary.json").write_text(json.dumps({"cohort": "c", "genetics": block}))
    line = [x for x in headline(tmp_path / "summary.json") if x.startswith("  genetics:")][0]
    assert "26 subjects x 100 variants; lesion_count top chr4:10:C:G p 1e-06" in line
    assert line.endswith("planted QTL chr4:10:C:G (lesion_count) recovered")
