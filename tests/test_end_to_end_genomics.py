"""The genomics DAG on a tiny genomics-only demo config, every output checked."""

from __future__ import annotations

import json
import os

import h5py
import pyBigWig
from conftest import REPO, run_snakemake

from voxseq.bundle import load_bundle
from voxseq.io.atomic import read_tsv

CFG = str(REPO / "tests/config/tiny_genomics.yaml")


def test_tiny_genomics_dag(tmp_path):
    run_snakemake(tmp_path, "--configfile", CFG, "--cores", "2")
    res = tmp_path / "results/tinyg"
    subjects = [r["subject"] for r in read_tsv(res / "sheet.tsv")]
    assert len(subjects) == 3
    for sid in subjects:
        report = json.loads((res / f"genomics/ingest/{sid}.json").read_text())
        assert report  # read counts by filter category
        assert (res / f"genomics/coverage/{sid}.h5").exists()
    with h5py.File(res / "genomics/tile/windows.h5", "r") as h5:
        assert len(h5["start"]) == len(read_tsv(res / "genomics/tile/windows.tsv"))
    model, meta = load_bundle(tmp_path / "models/tinyg/genomics", "genomics")
    assert meta["preprocessing"]["window"] == 1024
    assert len(meta["preprocessing"]["tracks"]) == 3
    bigwigs = sorted((res / "genomics/infer/bigwig").glob("*.bw"))
    assert len(bigwigs) == 3
    bw = pyBigWig.open(str(bigwigs[0]))
    assert set(bw.chroms()) == {"chr1", "chr2", "chr3", "chr4"}  # genome_wide: true
    bw.close()
    scores = read_tsv(res / "genomics/infer/variant_scores.tsv")
    assert {"contig", "pos", "ref", "alt", "status", "score"} <= set(scores[0])
    assert any(r["status"] == "ok" and r["score"] for r in scores)
    cohort = json.loads((res / "genomics/cohort.json").read_text())
    assert cohort["n_subjects"] == 3
    assert -1.0 <= cohort["test_pearson_mean"] <= 1.0
    summary = json.loads((res / "summary.json").read_text())
    assert summary["genomics"]["n_subjects"] == 3
    assert "vep_auroc" in summary["genomics"]
    assert summary["stage_seconds"]["genomics.train"] > 0
    for png in ("variant_effects.png", "genomics_training_curves.png"):
        assert (res / "genomics/report" / png).read_bytes()[:4] == b"\x89PNG"
    # a touch (same bytes, newer time) of every source file reruns nothing
    for sid in subjects:
        for ext in (".bam", ".bam.bai", ".vcf.gz", ".vcf.gz.tbi"):
            os.utime(res / f"demo_input/genomics/{sid}{ext}")
    for name in ("reference.fa", "reference.fa.fai", "samples.tsv"):
        if (res / "demo_input" / name).exists():
            os.utime(res / "demo_input" / name)
    dry = run_snakemake(tmp_path, "--configfile", CFG, "-n", "--config", "terminal=snakemake")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
