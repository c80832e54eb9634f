"""Genomics subject features: standardisation from training rows, regions, coverage summaries,
QC latent codes, dosages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_genomics_qc import poisson_cohort, write_store

from voxseq import VoxseqError
from voxseq.subject_model.features import (
    FeatureTable,
    Region,
    Standardiser,
    coarse_bin_regions,
    demo_motif_regions,
    dosage_features,
    join_features,
    qc_latent_codes,
    read_regions_bed,
    region_coverage,
)


def test_standardiser_uses_the_training_rows_only():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (20, 4))
    x[2, 1] = np.nan  # a missing call in a training row
    x[:, 3] = 7.0  # no spread
    train = list(range(12))
    std = Standardiser.fit(x, train)
    moved = x.copy()
    moved[12:] = 1e6  # the held-out rows change beyond recognition: nothing fitted moves
    again = Standardiser.fit(moved, train)
    np.testing.assert_array_equal(again.mean, std.mean)
    np.testing.assert_array_equal(again.scale, std.scale)
    np.testing.assert_allclose(std.mean[:3], np.nanmean(x[train, :3], axis=0))
    np.testing.assert_allclose(std.scale[:3], np.nanstd(x[train, :3], axis=0, ddof=1))
    assert std.scale[3] == 1.0
    z = std.transform(x)
    assert z[2, 1] == 0.0  # missing -> the training mean
    np.testing.assert_allclose(z[train, 0].mean(), 0.0, atol=1e-12)
    back = Standardiser.from_dict(std.to_dict())
    np.testing.assert_array_equal(back.transform(x), z)


def test_tables_join_and_refuse_missing_columns():
    a = FeatureTable(["x", "y", "z"], ["f1"], [[1.0], [2.0], [3.0]])
    b = FeatureTable(["z", "x"], ["g1", "g2"], [[5.0, 6.0], [7.0, 8.0]])
    joined = join_features([a, b])
    assert joined.subjects == ["x", "z"] and joined.names == ["f1", "g1", "g2"]
    np.testing.assert_array_equal(joined.rows(["z"]), [[3.0, 5.0, 6.0]])
    with pytest.raises(VoxseqError, match=r"missing feature\(s\) \['g3'\]"):
        joined.columns(["g1", "g3"], "cohort B")
    with pytest.raises(VoxseqError, match="duplicate subject"):
        FeatureTable(["x", "x"], ["f"], [[1.0], [2.0]])
    with pytest.raises(VoxseqError, match="subject.*'q'"):
        joined.rows(["q"])


def test_regions_from_bins_and_bed(tmp_path):
    bins = coarse_bin_regions({"c1": 2500, "c2": 1000}, 1000)
    assert [(r.contig, r.start, r.end) for r in bins] == [
        ("c1", 0, 1000), ("c1", 1000, 2000), ("c1", 2000, 2500), ("c2", 0, 1000)]
    bed = tmp_path / "r.bed"
    bed.write_text("# sites\nc1\t10\t20\tmotif_a\nc2\t5\t9\tmotif_a\nc1\t40\t50\n")
    regions = read_regions_bed(bed)
    assert regions[0] == Region("motif_a", "c1", 10, 20) and regions[2].name == "c1:40-50"
    bed.write_text("c1\t20\t10\tx\n")
    with pytest.raises(VoxseqError, match="line 1: empty or negative"):
        read_regions_bed(bed)


def test_region_coverage_pools_the_bins_of_each_named_set(tmp_path):
    lengths = {"c1": 100, "c2": 50}
    raw = {"c1": np.arange(10) * 10, "c2": np.full(5, 30)}  # bin size 10: track = raw / 10
    stores = {"a": write_store(tmp_path / "a.h5", raw, lengths, 10),
              "b": write_store(tmp_path / "b.h5", {c: 2 * v for c, v in raw.items()}, lengths, 10)}
    regions = [Region("m", "c1", 5, 25), Region("m", "c1", 21, 29), Region("m", "c2", 0, 10),
               Region("tail", "c1", 95, 200)]
    table = region_coverage(stores, regions)
    assert table.names == ["coverage_m", "coverage_tail"]
    # m: c1 bins 0, 1, 2 (once, though two intervals touch bin 2) and c2 bin 0
    expected_m = np.mean([0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(table.values[0], np.log2(1 + np.array([expected_m, 9.0])))
    np.testing.assert_allclose(table.values[1], np.log2(1 + 2 * np.array([expected_m, 9.0])))
    with pytest.raises(VoxseqError, match=r"contig\(s\) \['c9'\]"):
        region_coverage(stores, [Region("x", "c9", 0, 10)])


def test_demo_motif_regions(tmp_path):
    from voxseq.demo.genomics import SMALL, find_sites, make_reference
    from voxseq.genomics.reference import ensure_fai

    genome = make_reference(np.random.default_rng([3, 10, 0]), SMALL)
    fasta = tmp_path / "ref.fa"
    fasta.write_text("".join(f">{c}\n{s.decode()}\n" for c, s in genome.items()))
    ensure_fai(fasta)
    regions = demo_motif_regions(fasta, flank=25, small=True)
    names = {r.name for r in regions}
    assert names == {f"motif_{m[0]}" for m in SMALL.motifs}
    sites = sum(len(find_sites(s.decode(), SMALL)) for s in genome.values())
    assert len(regions) == sites
    first = next(r for r in regions if r.contig == "chr1")
    start, t = find_sites(genome["chr1"].decode(), SMALL)[0]
    assert (first.start, first.end) == (max(start - 25, 0), start + 10 + 25)
    assert first.name == f"motif_{SMALL.motifs[t][0]}"


def test_qc_latent_codes_are_the_bundle_encoder_on_standardised_profiles(tmp_path):
    from voxseq.bundle import write_bundle
    from voxseq.genomics.qc import coarse_profiles
    from voxseq.models import build_model

    stores = poisson_cohort(tmp_path, 6, {"c1": 8000, "c2": 6000}, 100)
    prof = coarse_profiles(stores, 1000)
    centre, spread = prof.values.mean(0), prof.values.std(0) + 0.1
    torch.manual_seed(0)
    arch = {"n_bins": prof.values.shape[1], "hidden": 8, "latent": 3, "dropout": 0.0}
    model = build_model("profile_autoencoder", **arch).eval()
    write_bundle(tmp_path / "qc", model, "genomics", "profile_autoencoder", arch,
                 {"bin_size": 1000, "contigs": prof.contigs, "keep": prof.keep.tolist(),
                  "centre": centre.tolist(), "spread": spread.tolist()}, {}, {},
                 extra={"task": "qc", "reference": {
                     "subjects": [], "errors": [], "left_out": [],
                     "residual_centre": [0.0] * len(centre),
                     "residual_spread": [1.0] * len(centre)}})
    table = qc_latent_codes(stores, tmp_path / "qc")
    assert table.subjects == list(stores) and table.names == ["qc_latent_0", "qc_latent_1",
                                                              "qc_latent_2"]
    with torch.no_grad():
        x = torch.from_numpy(((prof.values - centre) / spread).astype(np.float32))
        np.testing.assert_allclose(table.values, model.encode(x).numpy(), rtol=1e-5, atol=1e-6)


def test_dosages_of_selected_variants():
    d = np.array([[0, 1, 2], [np.nan, 2, 0]], dtype=float)
    table = dosage_features(d, ["s1", "s2"], ["v1", "v2", "v3"], selected=["v3", "v1"])
    assert table.names == ["dosage_v3", "dosage_v1"]
    np.testing.assert_array_equal(table.values, [[2, 0], [0, np.nan]])
    with pytest.raises(VoxseqError, match="genotype dosages: missing feature.*dosage_v9"):
        dosage_features(d, ["s1", "s2"], ["v1", "v2", "v3"], selected=["v9"])
    with pytest.raises(VoxseqError, match="subject s1: dosage 3.0 of variant v2"):
        dosage_features(np.array([[0, 3.0]]), ["s1"], ["v1", "v2"])
    with pytest.raises(VoxseqError, match="shape"):
        dosage_features(d, ["s1"], ["v1", "v2", "v3"])
