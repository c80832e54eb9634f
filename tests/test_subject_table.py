"""The subject table: sheet covariates checked, both modalities joined, empty never zero."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import write_nifti

from voxseq import VoxseqError
from voxseq.genetics.phenotypes import otsu_threshold
from voxseq.genetics.subjects import (
    Sources,
    check_covariates,
    phenotype_matrix,
    subject_table,
)
from voxseq.io.atomic import read_tsv, write_tsv

SPACING = np.diag([1.0, 1.0, 2.0, 1.0])


def _sheet():
    return [
        {"subject": "A", "split": "train", "class": "light", "batch": "s1", "age": "61.5",
         "sex": "female", "covar_site": "north", "covar_dose": "1.5"},
        {"subject": "B", "split": "test", "class": "heavy", "batch": "s2", "age": "",
         "sex": "M", "covar_site": "south", "covar_dose": ""},
        {"subject": "C", "split": "val", "class": "", "batch": "", "age": "40", "sex": "",
         "covar_site": "", "covar_dose": "-2"},
    ]


def test_check_covariates_kinds_and_normalises():
    rows = _sheet()
    kinds = check_covariates(rows, "s.tsv")
    assert kinds == {"age": "numeric", "sex": "categorical", "covar_site": "categorical",
                     "covar_dose": "numeric"}
    assert [r["sex"] for r in rows] == ["F", "M", ""]


@pytest.mark.parametrize("column, value, message", [
    ("age", "200", "subject B in sample sheet s.tsv: age '200' is not a number of years"),
    ("age", "old", "age 'old' is not a number"),
    ("sex", "x", "sex 'x' is not M or F"),
    ("covar_dose", "high", "covar_dose 'high' is not numbers like the other cells"),
])
def test_check_covariates_refuses(column, value, message):
    rows = _sheet()
    rows[1][column] = value
    with pytest.raises(VoxseqError, match=message):
        check_covariates(rows, "s.tsv")


def _segmentation(path, lesions: int):
    seg = np.zeros((20, 20, 10), np.uint8)
    seg[2:18, 2:18, 1:9] = 1
    for k in range(lesions):
        seg[3 + 5 * k:5 + 5 * k, 4:6, 3:5] = 2  # 2 x 2 x 2 voxels, 16 mm^3 each
    return str(write_nifti(path, seg, SPACING))


def _image(path, level: float):
    img = np.full((20, 20, 10), 0.05, np.float32)
    img[2:18, 2:18, 1:9] = level
    return str(write_nifti(path, img, SPACING))


def _image4d(path, level: float):
    img = np.full((20, 20, 10, 2), 0.05, np.float32)
    img[2:18, 2:18, 1:9, 0] = 99.0
    img[2:18, 2:18, 1:9, 1] = level
    return str(write_nifti(path, img, SPACING))


def test_subject_table_joins_modalities(tmp_path):
    t = tmp_path
    write_tsv(t / "cohort.tsv", [
        {"subject": "A", "split": "train", "volume_organ_mm3": 4000.0, "volume_lesion_mm3": 48.0},
        {"subject": "B", "split": "test", "volume_organ_mm3": 3900.0, "volume_lesion_mm3": 0.0},
    ], ["subject", "split", "volume_organ_mm3", "volume_lesion_mm3"])
    write_tsv(t / "iqc.tsv", [{"subject": "A", "score": 0.5, "flagged": "false"},
                              {"subject": "B", "score": 4.2, "flagged": "true"}],
              ["subject", "score", "flagged"])
    write_tsv(t / "pred.tsv", [{"subject": "A", "predicted": "light", "prob_heavy": 0.2,
                                "prob_light": 0.8}], ["subject", "predicted", "prob_heavy",
                                                      "prob_light"])
    write_tsv(t / "gqc.tsv", [{"subject": "A", "score": 1.0, "flagged": "false"},
                              {"subject": "C", "score": 3.5, "flagged": "true"}],
              ["subject", "score", "flagged"])
    write_tsv(t / "regions.tsv", [{"subject": "C", "contig": "c1", "start": 100, "end": 600}],
              ["subject", "contig", "start", "end"])
    stores = {}
    for sid, reads in (("A", 5000), ("C", 8000)):
        stores[sid] = str(t / f"{sid}.h5")
        with h5py.File(stores[sid], "w") as h5:
            h5.attrs.update({"library_size": reads, "scale": 1e6 / reads,
                             "normalisation": "cpm"})
    sources = Sources(
        imaging_cohort=str(t / "cohort.tsv"),
        segmentations={"A": _segmentation(t / "a_seg.nii.gz", 3),
                       "B": _segmentation(t / "b_seg.nii.gz", 0)},
        images={"A": {"image": _image(t / "a.nii.gz", 2.0)},
                "B": {"image": (_image4d(t / "b.nii.gz", 3.0), 1)}},
        lesion_label=("lesion", 2), imaging_qc=str(t / "iqc.tsv"),
        predictions=str(t / "pred.tsv"), genomics_qc=str(t / "gqc.tsv"),
        genomics_regions=str(t / "regions.tsv"), coverage=stores)
    rows = subject_table(_sheet(), sources, t / "subjects.tsv", t / "subjects.columns.tsv")
    table = {r["subject"]: r for r in read_tsv(t / "subjects.tsv")}
    a, b, c = table["A"], table["B"], table["C"]
    assert (a["lesion_count"], a["lesion_burden_mm3"]) == ("3", "48")
    assert (b["lesion_count"], b["lesion_burden_mm3"]) == ("0", "0")
    assert c["lesion_count"] == c["volume_organ_mm3"] == c["intensity_image_body"] == ""
    assert a["intensity_image_body"] == "2" and b["intensity_image_body"] == "3"
    assert (b["imaging_qc_flagged"], b["classify_prob_light"]) == ("true", "")
    assert a["classify_prob_light"] == "0.8" and a["sex"] == "F"
    assert (a["reads_passing"], b["reads_passing"], c["reads_passing"]) == ("5000", "", "8000")
    assert (a["cnv_regions"], b["cnv_regions"], c["cnv_regions_bp"]) == ("0", "", "500")
    assert (b["age"], b["covar_dose"]) == ("", "")
    spec = {r["column"]: r for r in read_tsv(t / "subjects.columns.tsv")}
    assert list(spec) == list(a)
    assert spec["lesion_burden_mm3"]["unit"] == "mm^3" and "26-connected" in spec[
        "lesion_count"]["rule"]
    assert all(r["rule"] for r in spec.values())
    y = phenotype_matrix(rows, ["lesion_burden_mm3", "age"])
    np.testing.assert_array_equal(y, [[48.0, 61.5], [0.0, np.nan], [np.nan, 40.0]])


def test_otsu_separates_two_levels():
    rng = np.random.default_rng(0)
    v = np.r_[rng.normal(0, 0.1, 500), rng.normal(5, 0.1, 300)]
    assert 0.5 < otsu_threshold(v) < 4.5
