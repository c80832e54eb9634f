"""Meaningless splits are said, not hidden: a test split of a handful of windows, a near-empty
library and a test Pearson that cannot be computed reach cohort.json, the inference log,
summary.json, the end-of-run headline and the results page."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import write_coverage_store, write_fasta

from voxseq.genomics import infer
from voxseq.genomics.metrics import pearson_per_track
from voxseq.genomics.train import train_genomics
from voxseq.genomics.windows import read_meta, tile_genome
from voxseq.report import render_results, warnings_html
from voxseq.summary import MAX_HEADLINE_WARNINGS, headline, write_summary

BIN, WINDOW, STRIDE, CLIP = 32, 512, 256, 5.0
LENGTHS = {"chr1": 64 * BIN * 8, "chr2": 64 * BIN * 4, "chr3": 64 * BIN}  # chr3: 7 windows


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """3 contigs (train chr1, val chr2, test chr3 of 7 windows), 3 tracks: s2 has no coverage on
    chr3, s3 has 400 passing reads; a tiny bundle trained on them."""
    root = tmp_path_factory.mktemp("gwarn")
    rng = np.random.default_rng(3)
    genome = {c: np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, n)].tobytes()
              for c, n in LENGTHS.items()}
    fasta = write_fasta(root / "ref.fa", genome)
    cov = {}
    for k, s in enumerate(("s1", "s2", "s3")):
        tracks = {c: rng.gamma(1.0 + k, 2.0, n // BIN) for c, n in LENGTHS.items()}
        if s == "s2":
            tracks["chr3"][:] = 0.0
        cov[s] = write_coverage_store(root / f"{s}.h5", tracks, BIN, [90_000, 120_000, 400][k])
    windows = root / "windows.h5"
    tile_genome(fasta, cov, windows, root / "windows.tsv", WINDOW, STRIDE, 0.1, ["chr2"],
                ["chr3"], CLIP)
    torch.set_num_threads(2)
    bundle = root / "bundle"
    train_genomics(windows, bundle, root / "metrics.tsv", root / "ck",
                   {"channels": 4, "dilated_layers": 1},
                   {"epochs": 1, "iters_per_epoch": 1, "batch_size": 4, "device": "cpu"}, 1)
    return {"root": root, "fasta": fasta, "cov": cov, "windows": windows, "bundle": bundle}


def run_infer(cohort, out: Path, windows: Path | None = None) -> dict:
    return infer.infer_genomics(
        cohort["bundle"], cohort["fasta"], windows or cohort["windows"], {},
        bigwig_dir=out / "bw", pearson_tsv=out / "pearson.tsv", variants_tsv=out / "variants.tsv",
        cohort_json=out / "cohort.json", track_png=out / "track.png",
        pearson_png=out / "pearson.png", device="cpu")


def test_cohort_json_says_small_split_empty_library_and_undefined_pearson(cohort, tmp_path,
                                                                         caplog):
    with caplog.at_level(logging.WARNING, logger="voxseq.genomics.infer"):
        run_infer(cohort, tmp_path)
    data = json.loads((tmp_path / "cohort.json").read_text())
    warnings = data["warnings"]
    text = "\n".join(warnings)
    assert "the test split has 7 windows (under 20)" in text
    assert "subject s3: 400 reads pass the filters" in text and "CPM scale 2,500 per read" in text
    assert ("test Pearson of track s2 on chr3 cannot be computed: observed coverage is constant "
            "(0) over 112 bins; it is left out of the mean") in warnings
    # the training cohort's warnings are the bundle's: said once, not twice
    assert len(warnings) == len(set(warnings))
    assert not [w for w in warnings if w.startswith("model bundle (training): the test split")]
    # the mean is over the tracks that have a Pearson, not a silent null
    assert data["test_pearson"]["s2"] is None
    assert data["test_pearson_mean"] == pytest.approx(
        np.mean([data["test_pearson"]["s1"], data["test_pearson"]["s3"]]))
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert all(w in logged for w in warnings)


def test_no_test_windows_is_a_warning_not_a_silent_null(cohort, tmp_path):
    windows = tmp_path / "windows.h5"
    tile_genome(cohort["fasta"], cohort["cov"], windows, tmp_path / "windows.tsv", WINDOW, STRIDE,
                0.1, ["chr2"], [], CLIP)
    data = json.loads((run_infer(cohort, tmp_path / "out", windows) and
                       (tmp_path / "out" / "cohort.json")).read_text())
    assert data["test_pearson_mean"] is None
    assert any(w.startswith("no test windows") for w in data["warnings"])
    # this cohort's windows have no small test split; the bundle's training ones are kept
    assert "model bundle (training): the test split has 7 windows (under 20): its metrics " \
        "rest on a handful of windows" in data["warnings"]


class GCPredictor:
    """A stand-in bundle: per bin and track, the GC count of the bin (deterministic)."""

    tracks = ["s1", "s2", "s3"]

    def __call__(self, onehot: np.ndarray) -> np.ndarray:
        gc = onehot[..., 1:3].sum(-1).reshape(len(onehot), -1, BIN).sum(-1).astype(np.float32)
        return np.stack([gc, gc * 0.5, gc + 1.0], -1)


def test_chunked_test_evaluation_equals_the_in_memory_one(cohort, tmp_path, monkeypatch):
    windows = tmp_path / "windows.h5"  # test split chr1: 63 windows (under one read of 64)
    tile_genome(cohort["fasta"], cohort["cov"], windows, tmp_path / "windows.tsv", WINDOW, 128,
                0.1, ["chr2"], ["chr1"], CLIP)
    wmeta = read_meta(windows)
    whole, region, warns = infer.evaluate_test_windows(GCPredictor(), windows, wmeta)
    with h5py.File(windows, "r") as h5:
        idx = np.flatnonzero(h5["split"][()] == 2)
        obs = h5["targets"][idx]
        pred = GCPredictor()(h5["sequence"][idx])
    assert len(idx) > 64
    expected = pearson_per_track(pred, obs)
    assert [r["pearson"] for r in whole] == expected.tolist()  # one chunk: exactly
    monkeypatch.setattr(infer, "_eval_chunk", lambda wmeta, read=64: 1)  # a chunk per read
    chunked, region2, _ = infer.evaluate_test_windows(GCPredictor(), windows, wmeta)
    np.testing.assert_allclose([r["pearson"] for r in chunked], expected, rtol=1e-12)
    np.testing.assert_allclose([r["pearson_log1p"] for r in chunked],
                               pearson_per_track(pred, obs, log1p=True), rtol=1e-12)
    assert region2["region"] == region["region"] and warns == []


def test_summary_headline_and_results_page_carry_the_warnings(tmp_path):
    warnings = ["the test split has 7 windows (under 20): its metrics rest on a handful of "
                "windows",
                "test Pearson of track s2 on chr3 cannot be computed: observed coverage is "
                "constant (0) over 112 bins; it is left out of the mean",
                "subject s3: 400 reads pass the filters (under 1,200; CPM scale 2,500 per read): "
                "its coverage track is mostly noise",
                "model bundle (training): val Pearson of track <s4> cannot be computed"]
    gen = {"n_subjects": 3, "test_pearson_mean": 0.5, "test_contigs": ["chr3"]}
    (tmp_path / "with.json").write_text(json.dumps({**gen, "warnings": warnings}))
    (tmp_path / "old.json").write_text(json.dumps(gen))
    (tmp_path / "bench").mkdir()
    summary = write_summary(tmp_path / "summary.json", "c",
                            {"genomics": str(tmp_path / "with.json")}, str(tmp_path / "bench"))
    assert summary["genomics"]["warnings"] == warnings
    old = write_summary(tmp_path / "old_summary.json", "c",
                        {"genomics": str(tmp_path / "old.json")}, str(tmp_path / "bench"))
    assert old["genomics"]["warnings"] == []

    lines = headline(tmp_path / "summary.json")
    text = "\n".join(lines)
    assert "genomics: 4 warnings" in text
    assert all(f"- {w}" in text for w in warnings[:MAX_HEADLINE_WARNINGS])
    assert "... and 1 more" in text
    assert "warning" not in "\n".join(headline(tmp_path / "old_summary.json"))

    page = render_results(summary)
    assert '<div class="vx-warn">' in page and "Genomics: 4 warnings" in page
    assert "test Pearson of track s2 on chr3 cannot be computed" in page
    assert "track &lt;s4&gt;" in page  # escaped
    assert page.index("vx-cards") < page.index('<div class="vx-warn">')
    assert warnings_html(old) == ""
    assert '<div class="vx-warn">' not in render_results(old)
