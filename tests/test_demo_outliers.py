"""Quality-control outliers of the demo cohort: two extra broken, unannotated subjects."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pysam
import pytest
from scipy.ndimage import gaussian_filter

from voxseq.demo.cohort import make_demo_cohort, outlier_ids
from voxseq.demo.imaging import ImagingDemoConfig, make_subject
from voxseq.io.atomic import read_tsv

SEED = 3
SUBJECTS = [f"qc{i:03d}" for i in range(1, 5)]
EXTRA = ["qc005", "qc006"]
CFG = ImagingDemoConfig.small()


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory) -> dict[bool, Path]:
    """The same small cohort without and with outliers."""
    out = {}
    for outliers in (False, True):
        root = tmp_path_factory.mktemp(f"outliers_{outliers}")
        make_demo_cohort(root, SUBJECTS, SEED, small=True, outliers=outliers)
        out[outliers] = root
    return out


def _sheet(root: Path) -> dict[str, dict[str, str]]:
    return {r["subject"]: r for r in read_tsv(root / "samples.tsv")}


def _truth(root: Path) -> dict[str, dict[str, str]]:
    return {r["kind"]: r for r in read_tsv(root / "qc_truth.tsv")}


def _object(subject: dict) -> np.ndarray:
    """The subject's body (smoothed noise-free threshold of its uncorrupted image)."""
    sc = subject["scanner"]
    return gaussian_filter((subject["image"] - sc.offset) / sc.scale, 1.0) > 0.5


def _bins(bam: pysam.AlignmentFile, fasta: pysam.FastaFile, size: int = 2_000) -> np.ndarray:
    """Read counts of the ``size`` bp bins that hold no N."""
    return np.array(
        [
            bam.count(ref, b, b + size)
            for ref, length in zip(bam.references, bam.lengths, strict=True)
            for b in range(0, length - size + 1, size)
            if "N" not in fasta.fetch(ref, b, b + size)
        ],
        dtype=float,
    )


def test_outlier_ids():
    demo = [f"demo{i:03d}" for i in range(1, 25)]
    assert outlier_ids(demo) == ["demo025", "demo026"]
    assert outlier_ids(["x098", "p099"]) == ["p100", "p101"]
    assert outlier_ids(["s9"]) == ["s10", "s11"]
    assert outlier_ids(["a1", "a3", "a2"]) == ["a4", "a5"]  # taken ids are skipped
    assert outlier_ids(["12"]) == ["13", "14"]
    assert outlier_ids(["sample_b", "sample_a"]) == ["sample_a_qc1", "sample_a_qc2"]
    with pytest.raises(ValueError):
        outlier_ids([])


def test_sheet_and_truth(cohorts):
    root = cohorts[True]
    sheet = _sheet(root)
    assert list(sheet) == SUBJECTS + EXTRA
    for sid in EXTRA:
        row = sheet[sid]
        assert row["label"] == "" and row["class"] == ""
        assert not (root / "imaging" / f"{sid}_label.nii.gz").exists()
        for col in ("image", "bam", "vcf"):
            assert (root / row[col]).is_file(), (sid, col)
    assert all(sheet[s]["label"] and sheet[s]["class"] for s in SUBJECTS)
    rows = read_tsv(root / "qc_truth.tsv")
    assert list(rows[0]) == ["subject", "modality", "kind", "contig", "start", "end"]
    assert [(r["subject"], r["modality"], r["kind"]) for r in rows] == [
        ("qc005", "imaging", "motion_ghosting"),
        ("qc005", "genomics", "duplication"),
        ("qc006", "imaging", "inverted_contrast"),
        ("qc006", "genomics", "failed_library"),
    ]
    for r in rows:
        if r["kind"] != "duplication":
            assert r["contig"] == r["start"] == r["end"] == ""
    dup = _truth(root)["duplication"]
    start, end = int(dup["start"]), int(dup["end"])
    with pysam.FastaFile(str(root / "reference.fa")) as fa:
        length = fa.get_reference_length(dup["contig"])
        assert length == max(fa.lengths)  # on the longest contig
        seq = fa.fetch(dup["contig"], start, end)
    assert 0 <= start < end <= length
    assert end - start == int(0.4 * length)  # small genome: 40 % of the longest contig
    assert seq.count("N") < 0.1 * len(seq)
    assert not (cohorts[False] / "qc_truth.tsv").exists()


def test_regular_subjects_unchanged(cohorts):
    off, on = cohorts[False], cohorts[True]
    assert list(_sheet(off)) == SUBJECTS
    for sid in SUBJECTS:
        assert _sheet(off)[sid] == _sheet(on)[sid]
        for kind in ("image", "label"):
            name = f"imaging/{sid}_{kind}.nii.gz"
            a, b = nib.load(off / name), nib.load(on / name)
            assert a.get_data_dtype() == b.get_data_dtype()
            np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
            np.testing.assert_array_equal(a.affine, b.affine)
        for name in (f"genomics/{sid}.bam", f"genomics/{sid}.vcf.gz"):
            assert (off / name).read_bytes() == (on / name).read_bytes(), name
    for name in ("reference.fa", "genomics/variant_truth.tsv"):
        assert (off / name).read_bytes() == (on / name).read_bytes(), name


def test_motion_ghosting_in_background(cohorts):
    index = len(SUBJECTS)  # the first extra subject
    clean = make_subject(SEED, index, CFG)
    ghosted = np.asarray(nib.load(cohorts[True] / "imaging" / "qc005_image.nii.gz").dataobj)
    assert ghosted.dtype == np.dtype(clean["scanner"].dtype)
    np.testing.assert_allclose(ghosted, make_subject(SEED, index, CFG, "motion_ghosting")["image"])
    obj = _object(clean)
    diff = (ghosted - clean["image"]) / clean["scanner"].scale  # same noise: the ghost only
    outside, inside = diff[~obj].mean(), diff[obj].mean()
    assert outside > 0.1  # a ghost of 40 % of the body wrapped into the background
    assert abs(inside) < 0.5 * outside  # inside, intensity is only redistributed


def test_inverted_contrast(cohorts):
    index = len(SUBJECTS) + 1  # the second extra subject
    normal = make_subject(SEED, index, CFG)
    image = np.asarray(nib.load(cohorts[True] / "imaging" / "qc006_image.nii.gz").dataobj)
    assert image.dtype == np.dtype(normal["scanner"].dtype)
    label, obj = normal["label"], _object(normal)
    body = obj & (label == 0)
    scale = normal["scanner"].scale
    assert normal["image"][label == 1].mean() > normal["image"][body].mean() + 0.5 * scale
    assert image[label == 1].mean() < image[body].mean() - 0.5 * scale
    assert image[label == 2].mean() < image[label == 1].mean()  # lesions darkest
    assert image[body].mean() > image[~obj].mean() + 2 * scale  # the subject stays bright
    assert abs(image[~obj].mean() - normal["image"][~obj].mean()) < 0.15 * scale


def _ratio(bam: pysam.AlignmentFile, contig: str, start: int, end: int) -> float:
    """Reads in the interval over the mean of the same coordinates on the other contigs."""
    others = [bam.count(c, start, end) for c in bam.references if c != contig]
    return bam.count(contig, start, end) / np.mean(others)


def test_duplication_raises_depth(cohorts):
    root = cohorts[True]
    dup = _truth(root)["duplication"]
    where = (dup["contig"], int(dup["start"]), int(dup["end"]))
    ratios = {}
    for sid in SUBJECTS + EXTRA[:1]:
        with pysam.AlignmentFile(str(root / "genomics" / f"{sid}.bam")) as bam:
            ratios[sid] = _ratio(bam, *where)
    normal = np.median([ratios[s] for s in SUBJECTS])
    assert ratios["qc005"] > 1.3 * normal, ratios


def test_failed_library_uneven_coverage(cohorts):
    root = cohorts[True]
    bins = {}
    with pysam.FastaFile(str(root / "reference.fa")) as fasta:
        for sid in SUBJECTS + EXTRA[1:]:
            with pysam.AlignmentFile(str(root / "genomics" / f"{sid}.bam")) as bam:
                bins[sid] = _bins(bam, fasta)
    cv = {s: b.std() / b.mean() for s, b in bins.items()}
    # normal subjects' 2 kb bins already vary by 0.3-0.5 (motif-site density of the small genome)
    assert cv["qc006"] > 1.5 * max(cv[s] for s in SUBJECTS), cv
    # against the normal subjects' median profile (motif sites divided out) the gap is larger
    shares = {s: b / b.sum() for s, b in bins.items()}
    median = np.median([shares[s] for s in SUBJECTS], axis=0)
    ncv = {s: (x / median).std() / (x / median).mean() for s, x in shares.items()}
    assert ncv["qc006"] > 3 * max(ncv[s] for s in SUBJECTS), ncv
