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
