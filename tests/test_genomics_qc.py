"""Genomics QC core: coarse profiles from coverage stores, residual z, region calls, scores."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from voxseq import VoxseqError
from voxseq.genomics.coverage import n_bins
from voxseq.genomics.qc import (
    Profiles,
    call_regions,
    coarse_profiles,
    covered_fraction,
    region_overlap,
    residual_z,
)


def write_store(path: Path, raw: dict[str, np.ndarray], lengths: dict[str, int], bin_size: int,
                mask: dict[str, np.ndarray] | None = None, subject: str = "s") -> Path:
    """A coverage store laid out as ``compute_coverage`` writes it (``track`` = raw / bin)."""
    with h5py.File(path, "w") as h5:
        attrs = {"subject": subject, "bin_size": bin_size, "normalisation": "none",
                 "library_size": int(sum(int(r.sum()) for r in raw.values()) // 100),
                 "scale": 1.0 / bin_size, "contigs": json.dumps(lengths)}
        for k, v in attrs.items():
            h5.attrs[k] = v
        for c, length in lengths.items():
            g = h5.create_group(c)
            g.attrs["length"] = length
            g.create_dataset("raw", data=np.asarray(raw[c], dtype=np.int64))
            g.create_dataset("track", data=(np.asarray(raw[c]) / bin_size).astype(np.float32))
            m = np.zeros(len(raw[c]), bool) if mask is None or c not in mask else mask[c]
            g.create_dataset("mask", data=m)
    return path


def poisson_cohort(tmp: Path, n: int, lengths: dict[str, int], fine: int, seed: int = 0,
                   depth_per_bp: float = 2.0, shift: dict | None = None,
                   depths: np.ndarray | None = None) -> dict[str, Path]:
    """Stores of ``n`` subjects: a shared bin-to-bin profile, per-subject depth, Poisson noise.

    ``shift`` = ``{"subject": i, "contig": c, "start": bp, "end": bp, "factor": f}`` multiplies
    one subject's expected depth inside the interval.
    """
    rng = np.random.default_rng(seed)
    shared = {c: np.exp(rng.normal(0, 0.3, n_bins(L, fine))) for c, L in lengths.items()}
    depths = rng.uniform(0.5, 2.0, n) if depths is None else depths
    paths = {}
    for i in range(n):
        raw = {}
        for c in lengths:
            lam = shared[c] * depths[i] * depth_per_bp * fine
            if shift and shift["subject"] == i and shift["contig"] == c:
                lam[shift["start"] // fine:shift["end"] // fine] *= shift["factor"]
            raw[c] = rng.poisson(lam)
        paths[f"s{i:02d}"] = write_store(tmp / f"s{i:02d}.h5", raw, lengths, fine)
    return paths


def test_coarse_sums_partial_bins_and_values_by_hand(tmp_path):
    lengths = {"chr1": 95, "chr2": 50}  # fine bins of 10 bp: 10 and 5
    raw = {"chr1": np.arange(1, 11) * 100, "chr2": np.full(5, 100)}
    paths = {s: write_store(tmp_path / f"{s}.h5", raw, lengths, 10) for s in ("a", "b", "c")}
    p = coarse_profiles(paths, 30)
    # chr1: [0,30) 600, [30,60) 1500, [60,90) 2400, [90,95) 5 bp < 15 -> dropped
    # chr2: [0,30) 300, [30,50) 200 over 20 bp -> counted as 300 per full bin, kept
    assert p.keep.tolist() == [True, True, True, False, True, True]
    assert p.contig.tolist() == ["chr1", "chr1", "chr1", "chr2", "chr2"]
    assert p.start.tolist() == [0, 30, 60, 0, 30]
    assert p.end.tolist() == [30, 60, 90, 30, 50]
    counts = np.array([600, 1500, 2400, 300, 200 * 30 / 20])
    scale = np.median(counts)
    np.testing.assert_allclose(p.library_scale, [scale] * 3)
    assert p.values.dtype == np.float32 and p.values.shape == (3, 5)
    np.testing.assert_allclose(p.values[1], np.log2((counts + 1) / scale), rtol=1e-6)
    assert p.subjects == ["a", "b", "c"]
    np.testing.assert_allclose(p.positions(), [15, 45, 75, 95 + 15, 95 + 40])
    assert p.boundaries() == [(0, "chr1"), (95, "chr2")]


def test_blacklisted_and_low_coverage_bins_are_dropped(tmp_path):
    lengths = {"chr1": 400}
    fine, n = 10, 5
    paths = {}
    for i in range(n):
        raw = np.full(40, 1000)
        raw[20:24] = 3  # coarse bin 5 ([200, 240)): empty in everyone (an N stretch)
        if i == 0:
            raw[28:32] = 0  # coarse bin 7: empty in one subject only -> kept
        mask = np.zeros(40, bool)
        if i == 2:
            mask[13] = True  # one blacklisted fine bin in one store -> coarse bin 3 dropped
        paths[f"s{i}"] = write_store(tmp_path / f"s{i}.h5", {"chr1": raw}, lengths, fine,
                                     {"chr1": mask})
    p = coarse_profiles(paths, 40)
    expected = np.ones(10, bool)
    expected[[3, 5]] = False
    assert p.keep.tolist() == expected.tolist()
    assert p.start.tolist() == [0, 40, 80, 160, 240, 280, 320, 360]
    # the empty bin of s0 is kept and shows as a deep loss
    assert p.values[0, 5] < -10 and abs(p.values[1, 5]) < 1e-3  # log2(40001 / 40000)


def test_library_size_is_normalised_away(tmp_path):
    lengths = {"chr1": 200_000, "chr2": 120_000}
    paths = poisson_cohort(tmp_path, 2, lengths, 100, depths=np.array([1.0, 2.0]))
    p = coarse_profiles(paths, 2000)
    assert abs(p.library_scale[1] / p.library_scale[0] - 2) < 0.01
    diff = p.values[1] - p.values[0]
    assert abs(np.median(diff)) < 0.01 and np.abs(diff).max() < 0.25
    for row in p.values:
        assert abs(np.median(row)) < 0.1  # centred near 0 (the shared profile is log-normal)


def grid_profiles(values: np.ndarray, bins_per_contig: int, bin_size: int = 1000) -> Profiles:
    """Profiles of a synthetic matrix: two contigs of ``bins_per_contig`` full bins each."""
    start = np.tile(np.arange(bins_per_contig) * bin_size, 2)
    return Profiles(subjects=[f"s{i:02d}" for i in range(len(values))],
                    values=values.astype(np.float32),
                    contig=np.array(["chr1"] * bins_per_contig + ["chr2"] * bins_per_contig),
                    start=start, end=start + bin_size, keep=np.ones(len(start), bool),
                    bin_size=bin_size)


def check_planted_call(p: Profiles, planted: int, truth: dict) -> None:
    recon = np.repeat(np.median(p.values, axis=0, keepdims=True), len(p.subjects), axis=0)
    z = residual_z(p.values, recon, np.arange(len(p.subjects)))
    assert z.shape == p.values.shape and z.dtype == np.float32
    regions = call_regions(z[planted], p)
    assert region_overlap(regions, truth) >= 0.8, regions
    assert covered_fraction(regions, truth) >= 0.8
    assert all(r["mean_z"] > 3 for r in regions if r["contig"] == "chr2")
    # with the default min_bins = 2, two adjacent noise bins beyond |z| = 3 already make a
    # region (a few per 10^4 bins with 20 subjects); three do not happen here
    for i in range(len(p.subjects)):
        if i != planted:
            assert call_regions(z[i], p, min_bins=3) == [], (p.subjects[i], regions)


def test_planted_shift_in_a_matrix_is_called_in_that_subject_only():
    rng = np.random.default_rng(0)
    values = rng.normal(0, 0.08, (20, 600))
    values[7, 400:420] += 0.58  # chr2 bins 100-119: x1.5 coverage
    p = grid_profiles(values, 300)
    check_planted_call(p, 7, {"contig": "chr2", "start": 100_000, "end": 120_000})


def test_planted_gain_in_coverage_stores_is_called(tmp_path):
    lengths = {"chr1": 600_000, "chr2": 600_000}
    truth = {"contig": "chr2", "start": 100_000, "end": 120_000}  # 20 bins of 1 kb
    depths = np.random.default_rng(1).uniform(0.8, 1.25, 20)
    paths = poisson_cohort(tmp_path, 20, lengths, 100, depths=depths,
                           shift={"subject": 7, **truth, "factor": 1.5})  # +0.58 log2
    p = coarse_profiles(paths, 1000)
    assert p.keep.all() and p.values.shape == (20, 1200)
    check_planted_call(p, 7, truth)


def test_residual_z_is_robust_and_floored():
    rng = np.random.default_rng(0)
    values = rng.normal(0, 0.1, (30, 50))
    values[:, 0] = 0.0  # a bin where everyone agrees: spread floored, not 0
    values[5, 0] = 0.5
    z = residual_z(values, np.zeros_like(values), np.arange(30))
    assert np.isfinite(z).all()
    floor = 0.5 * np.median(1.4826 * np.median(np.abs(values - np.median(values, 0)), 0))
    np.testing.assert_allclose(z[5, 0], 0.5 / floor, rtol=1e-5)
    assert np.abs(np.median(z[:, 1:], axis=0)).max() < 1e-6
    with pytest.raises(VoxseqError, match="same shape"):
        residual_z(values, values[:, :3], np.arange(30))


def small_profiles() -> Profiles:
    # chr1: bins [0,10) [10,20) [30,40) [40,50) [80,90) (one dropped bin at 20, three at 50-80)
    contig = np.array(["chr1"] * 5 + ["chr2"] * 2)
    start = np.array([0, 10, 30, 40, 80, 0, 10])
    return Profiles(subjects=["a"], values=np.zeros((1, 7), np.float32), contig=contig,
                    start=start, end=start + 10, keep=np.ones(7, bool), bin_size=10,
                    contigs={"chr1": 90, "chr2": 20})


def test_call_regions_runs_gaps_signs_and_contigs():
    p = small_profiles()
    # one dropped bin is bridged; three are not; contigs and signs split runs
    regions = call_regions(np.array([4, 5, 4, 4, 5, 6, 6.0]), p)
    assert regions == [{"contig": "chr1", "start": 0, "end": 50, "n_bins": 4, "mean_z": 4.25},
                       {"contig": "chr2", "start": 0, "end": 20, "n_bins": 2, "mean_z": 6.0}]
    regions = call_regions(np.array([4, -5, -4, 1, 5, np.nan, -6.0]), p)
    assert regions == [{"contig": "chr1", "start": 10, "end": 40, "n_bins": 2, "mean_z": -4.5}]
    assert call_regions(np.array([4, -5, -4, 1, 5, np.nan, -6.0]), p, min_bins=1)[0] == {
        "contig": "chr1", "start": 0, "end": 10, "n_bins": 1, "mean_z": 4.0}
    assert call_regions(np.array([4, 5, 4, 4, 5, 6, 6.0]), p, max_gap=0)[0]["end"] == 20
    with pytest.raises(VoxseqError, match="7 kept bins"):
        call_regions(np.zeros(6), p)


def test_overlap_measures():
    truth = {"contig": "chr1", "start": 100, "end": 200}
    called = [{"contig": "chr1", "start": 150, "end": 250}, {"contig": "chr1", "start": 90,
                                                             "end": 130},
              {"contig": "chr2", "start": 100, "end": 200}]
    assert region_overlap(called, truth) == pytest.approx(0.5)  # 50 / max(100, 100)
    assert region_overlap(called[1:2], truth) == pytest.approx(0.3)  # 30 / 100
    assert covered_fraction(called, truth) == pytest.approx(0.8)  # 100-130 and 150-200
    assert region_overlap([], truth) == 0.0 and covered_fraction([], truth) == 0.0
    assert region_overlap([truth], truth) == 1.0


def test_bin_size_must_be_a_multiple(tmp_path):
    lengths = {"chr1": 100}
    path = write_store(tmp_path / "odd.h5", {"chr1": np.ones(10)}, lengths, 10)
    with pytest.raises(VoxseqError, match=r"subject x: .*25 bp is not a positive multiple .*odd"):
        coarse_profiles({"x": path}, 25)
    with pytest.raises(VoxseqError, match="not a positive multiple"):
        coarse_profiles({"x": path}, 5)


def test_stores_must_agree(tmp_path):
    good = write_store(tmp_path / "a.h5", {"chr1": np.ones(10)}, {"chr1": 100}, 10)
    other_len = write_store(tmp_path / "b.h5", {"chr1": np.ones(11)}, {"chr1": 105}, 10)
    other_name = write_store(tmp_path / "c.h5", {"chrX": np.ones(10)}, {"chrX": 100}, 10)
    other_bin = write_store(tmp_path / "d.h5", {"chr1": np.ones(5)}, {"chr1": 100}, 20)
    with pytest.raises(VoxseqError, match=r"subject b: coverage store .*b\.h5 .*chr1 100 vs 105"):
        coarse_profiles({"a": good, "b": other_len, "c": other_name}, 20)
    with pytest.raises(VoxseqError, match=r"subject c: .*c\.h5 .*only in this one: \['chrX'\]"):
        coarse_profiles({"a": good, "c": other_name}, 20)
    with pytest.raises(VoxseqError, match=r"subject d: coverage store .*d\.h5 has bin size 20"):
        coarse_profiles({"a": good, "d": other_bin}, 20)
    with pytest.raises(VoxseqError, match=r"subject e: coverage store .*e\.h5: file not found"):
        coarse_profiles({"a": good, "e": tmp_path / "e.h5"}, 20)
    empty = write_store(tmp_path / "f.h5", {"chr1": np.zeros(10)}, {"chr1": 100}, 10)
    with pytest.raises(VoxseqError, match=r"subject f: coverage store .*f\.h5 has no counted"):
        coarse_profiles({"a": good, "f": empty}, 20)
