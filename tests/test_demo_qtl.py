"""The demo's planted lesion QTL: recovered by the association as the top variant of its
phenotype, invisible to every other draw of the demo (the subject's class included), and not a
variant-effect truth row."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pysam
import pytest

from voxseq.demo.cohort import make_demo_cohort
from voxseq.demo.genomics import generate_genomics
from voxseq.demo.imaging import ImagingDemoConfig, generate_imaging, make_subject
from voxseq.demo.qtl import QTL_PHENOTYPE, qtl_dosage
from voxseq.genetics.cohort import association_cohort, genotype_cohort
from voxseq.genetics.subjects import Sources, subject_table
from voxseq.io.atomic import read_tsv
from voxseq.io.sheet import read_sheet

SEED = 42


def _recovered(tmp_path, n: int) -> tuple[dict, dict]:
    """Full-size demo images (the small phantom's lesions merge into one), the small genome;
    the association of the labels' lesion count with the genotypes."""
    ids = [f"d{i + 1:03d}" for i in range(n)]
    dosages = {s: qtl_dosage(SEED, i) for i, s in enumerate(ids)}
    made = generate_imaging(tmp_path, ids, SEED, ImagingDemoConfig(), qtl_dosages=dosages)
    vcfs = generate_genomics(tmp_path, ids, SEED, small=True, qtl_dosages=dosages)
    rows = [{"subject": s, "split": "", "class": made[s]["class"], "batch": made[s]["batch"]}
            for s in ids]
    segs = {s: str(tmp_path / made[s]["label"]) for s in ids}
    subject_table(rows, Sources(segmentations=segs, lesion_label=("lesion", 2)),
                  tmp_path / "subjects.tsv", tmp_path / "subjects.columns.tsv")
    genotype_cohort(str(tmp_path / "g"), str(tmp_path / "qc.tsv"), absent_as_ref=True,
                    vcfs={s: str(tmp_path / vcfs[s]["vcf"]) for s in ids})
    summary = association_cohort(str(tmp_path / "g"), str(tmp_path / "subjects.tsv"),
                                 [QTL_PHENOTYPE, "lesion_burden_mm3"], ["batch"],
                                 str(tmp_path / "assoc"))
    truth = read_tsv(tmp_path / "genomics" / "qtl_truth.tsv")[0]
    return summary["association_phenotypes"][QTL_PHENOTYPE], truth


def test_the_planted_qtl_is_the_top_hit_of_its_phenotype(tmp_path):
    """12 subjects (the demo has 26): top variant of lesion_count, p < 0.05 / variants tested."""
    top, truth = _recovered(tmp_path, 12)
    assert truth["phenotype"] == QTL_PHENOTYPE
    assert top["top_variant"] == truth["id"], (top, truth)
    assert top["top_p"] < 0.05 / top["tested"] and top["top_beta"] > 0


@pytest.mark.slow
def test_the_planted_qtl_is_the_top_hit_at_demo_size(tmp_path):
    top, truth = _recovered(tmp_path, 26)
    assert top["top_variant"] == truth["id"] and top["top_p"] < 0.05 / top["tested"]


def test_the_qtl_changes_no_other_draw(tmp_path):
    """A small demo with both modalities: the non-carriers' images are the ones drawn without
    the QTL, carriers' VCFs hold it with their dosage, the variant truth table does not, and the
    sheet carries age and sex."""
    ids = [f"q{i}" for i in range(6)]
    sheet = make_demo_cohort(tmp_path, ids, SEED, small=True)
    rows = {r["subject"]: r for r in read_sheet(sheet)}
    truth = read_tsv(tmp_path / "genomics" / "qtl_truth.tsv")[0]
    assert all(r["age"] and r["sex"] in ("M", "F") for r in rows.values())
    assert not [v for v in read_tsv(tmp_path / "genomics" / "variant_truth.tsv")
                if (v["contig"], v["pos"]) == (truth["contig"], truth["pos"])]
    cfg = ImagingDemoConfig.small()
    dosages = [qtl_dosage(SEED, i) for i in range(len(ids))]
    assert 0 in dosages and max(dosages) > 0
    for i, sid in enumerate(ids):
        with pysam.VariantFile(rows[sid]["vcf"]) as vcf:
            gts = [r.samples[0]["GT"] for r in vcf if (r.chrom, r.pos) == (truth["contig"],
                                                                         int(truth["pos"]))]
        assert [sum(g) for g in gts] == ([dosages[i]] if dosages[i] else [])
        plain = make_subject(SEED, i, cfg)
        planted = make_subject(SEED, i, cfg, qtl_dosage=dosages[i])
        changed = plain["label"] != planted["label"]
        if not dosages[i]:
            assert not changed.any() and np.array_equal(plain["image"], planted["image"])
        else:  # lesion voxels are added; nothing else moves
            assert changed.any() and (planted["label"][changed] == 2).all()
        assert planted["class"] == plain["class"] == rows[sid]["class"]


def _lesion_mm3(subject: dict) -> float:
    return float((subject["label"] == 2).sum() * abs(np.linalg.det(subject["affine"][:3, :3])))


@pytest.mark.parametrize("index", [0, 3])
def test_the_qtl_lesions_do_not_move_the_class(index):
    """With the class threshold just above a subject's disease burden, two ALT alleles push its
    measured lesion volume over the threshold, yet its class stays that of the subject without
    the QTL: the class is drawn from the disease lesions only, so it does not depend on the
    genotype (nor blur what the classifier is asked to learn)."""
    cfg = ImagingDemoConfig.small()
    plain = make_subject(SEED, index, cfg)
    voxel = abs(np.linalg.det(plain["affine"][:3, :3]))
    cfg = replace(cfg, burden_threshold_mm3=_lesion_mm3(plain) + 0.5 * voxel)
    plain = make_subject(SEED, index, cfg)
    planted = make_subject(SEED, index, cfg, qtl_dosage=2)
    assert _lesion_mm3(planted) > cfg.burden_threshold_mm3 > _lesion_mm3(plain)
    assert planted["class"] == plain["class"] == "low_burden"
    cfg = replace(cfg, burden_threshold_mm3=_lesion_mm3(plain))
    assert make_subject(SEED, index, cfg, qtl_dosage=2)["class"] == "high_burden"


@pytest.mark.slow
def test_the_default_demo_classes_at_demo_size():
    """The default demo's 24 subjects: 14 heavy and 10 light (as without the QTL), and the whole
    lesion volume, the QTL's lesions included, puts every light subject below every heavy one."""
    cfg = ImagingDemoConfig()
    volume = {"high_burden": [], "low_burden": []}
    for i in range(24):
        s = make_subject(SEED, i, cfg, qtl_dosage=qtl_dosage(SEED, i))
        volume[s["class"]].append(_lesion_mm3(s))
    assert (len(volume["high_burden"]), len(volume["low_burden"])) == (14, 10)
    assert max(volume["low_burden"]) < min(volume["high_burden"])
