"""Genome-scale windows: block-wise writing equals the in-memory result and holds one block at a
time, np.take one-hot equals the old indexing, chunked evaluation equals the in-memory one,
and the warnings for meaningless splits, tracks and Pearsons."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import write_coverage_store, write_fasta
from torch import nn

from voxseq.genomics import sequence, windows
from voxseq.genomics.metrics import PearsonAccumulator, pearson_per_track, pearson_warnings
from voxseq.genomics.train import GenomicsTask, train_genomics
from voxseq.genomics.windows import read_meta, soft_clip, tile_genome, tile_warnings

BIN, WINDOW, STRIDE, CLIP = 32, 512, 256, 5.0


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    """4 contigs (one with an N run, lower-case stretches), 3 tracks; chr4 has no coverage in
    track s2."""
    root = tmp_path_factory.mktemp("wscale")
    rng = np.random.default_rng(0)
    lengths = {"chr1": 64 * BIN * 40, "chr2": 64 * BIN * 25, "chr3": 64 * BIN * 12,
               "chr4": 64 * BIN * 2}
    genome = {}
    for c, n in lengths.items():
        seq = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, n)].copy()
        seq[n // 3:n // 3 + 700] = ord("N")
        seq[100:400] += 32  # soft-masked (lower case)
        genome[c] = seq.tobytes()
    fasta = write_fasta(root / "ref.fa", genome)
    cov = {}
    for k, s in enumerate(("s1", "s2", "s3")):
        tracks = {c: rng.gamma(1.0 + k, 2.0, n // BIN) for c, n in lengths.items()}
        if s == "s2":
            tracks["chr4"][:] = 0.0
        cov[s] = write_coverage_store(root / f"{s}.h5", tracks, BIN, [90_000, 120_000, 400][k])
    return {"root": root, "fasta": fasta, "genome": genome, "lengths": lengths, "cov": cov}


def reference_tiling(g, max_n: float) -> tuple[list[tuple], np.ndarray, np.ndarray]:
    """The windows the old whole-genome code wrote, from the definition: every contig in memory,
    one-hot by table indexing, targets by bin slices."""
    rows, seqs, tgts = [], [], []
    split = {"chr1": "train", "chr2": "train", "chr3": "val", "chr4": "test"}
    covs = {s: h5py.File(p, "r") for s, p in sorted(g["cov"].items())}
    for c, n in g["lengths"].items():
        seq = np.frombuffer(g["genome"][c], np.uint8)
        for start in range(0, n - WINDOW + 1, STRIDE):
            frac = float((~sequence._LOOKUP[seq[start:start + WINDOW]].any(-1)).sum()) / WINDOW
            if frac > max_n:
                continue
            rows.append((len(rows), c, start, start + WINDOW, split[c], round(frac, 4)))
            seqs.append(sequence._LOOKUP[seq[start:start + WINDOW]])
            b = start // BIN
            tgts.append(np.stack([soft_clip(h5[c]["track"][b:b + WINDOW // BIN], CLIP)
                                  for h5 in covs.values()], -1))
    for h5 in covs.values():
        h5.close()
    return rows, np.stack(seqs), np.stack(tgts)


def tile(g, out: Path, **kw) -> dict:
    return tile_genome(g["fasta"], g["cov"], out / "w.h5", out / "w.tsv", WINDOW, STRIDE, 0.1,
                       ["chr3"], ["chr4"], CLIP, **kw)


def test_one_hot_by_take_equals_table_indexing():
    rng = np.random.default_rng(1)
    every = np.arange(256, dtype=np.uint8)
    assert np.array_equal(sequence.one_hot(every), sequence._LOOKUP[every])
    codes = rng.integers(0, 256, size=(7, 300)).astype(np.uint8)
    got = sequence.one_hot(codes)
    assert got.dtype == np.uint8 and np.array_equal(got, sequence._LOOKUP[codes])
    assert np.array_equal(sequence.known(codes), sequence._LOOKUP[codes].any(-1))
    assert np.array_equal(sequence.one_hot("acgtNRY"), sequence._LOOKUP[
        np.frombuffer(b"acgtNRY", np.uint8)])


@pytest.mark.parametrize("block_bp", [None, 1024, 3 * 256 + 100, "many tracks"])
def test_block_tiling_equals_the_whole_genome_result(genome, tmp_path, block_bp, monkeypatch):
    if block_bp == "many tracks":  # blocks and write batches shrink with the tracks
        monkeypatch.setattr(windows, "BLOCK_VALUES", 3 * WINDOW // BIN * 5)
        block_bp = None
    counts = tile(genome, tmp_path, block_bp=block_bp)
    rows, seqs, tgts = reference_tiling(genome, 0.1)
    lines = (tmp_path / "w.tsv").read_text().splitlines()
    assert lines[0] == "\t".join(windows.WINDOW_COLUMNS)
    assert lines[1:] == ["\t".join(str(v) if not isinstance(v, float) else f"{v:.6g}"
                                   for v in r) for r in rows]
    with h5py.File(tmp_path / "w.h5") as h5:
        assert np.array_equal(h5["sequence"][()], seqs)
        assert np.array_equal(h5["targets"][()], tgts)
        assert h5["sequence"].chunks == (1, WINDOW, 4) and h5["targets"].dtype == np.float32
        assert h5["start"][()].tolist() == [r[2] for r in rows]
    assert counts == {s: sum(r[4] == s for r in rows) for s in ("train", "val", "test")}
    meta = read_meta(tmp_path / "w.h5")
    assert meta["val_contigs"] == ["chr3"] and meta["test_contigs"] == ["chr4"]


def test_writer_holds_one_block_at_a_time(genome, tmp_path, monkeypatch):
    """Sequence, coverage and one-hot arrays are bounded by the block, not the genome."""
    fetched, bins, encoded = [], [], []
    real_bins, real_one_hot, real_fasta = windows._coverage_bins, windows.one_hot, \
        windows.pysam.FastaFile

    def spy_bins(paths, contig, b0, b1):
        bins.append(b1 - b0)
        return real_bins(paths, contig, b0, b1)

    def spy_one_hot(codes):
        encoded.append(np.asarray(codes).size)
        return real_one_hot(codes)

    class SpyFasta:
        def __init__(self, path):
            self.fa = real_fasta(path)

        def fetch(self, contig, start=None, end=None):
            out = self.fa.fetch(contig, start, end)
            fetched.append(len(out))
            return out

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fa.close()

    monkeypatch.setattr(windows, "_coverage_bins", spy_bins)
    monkeypatch.setattr(windows, "one_hot", spy_one_hot)
    monkeypatch.setattr(windows.pysam, "FastaFile", SpyFasta)
    block = 2048
    tile(genome, tmp_path, block_bp=block)
    assert max(fetched) <= block - STRIDE + WINDOW < max(genome["lengths"].values())
    assert max(bins) <= (block - STRIDE + WINDOW) // BIN
    assert max(encoded) <= windows.WRITE_BATCH * WINDOW
    assert sum(encoded) == len((tmp_path / "w.tsv").read_text().splitlines()[1:]) * WINDOW


def test_tile_warnings_for_small_splits_and_failed_libraries(genome, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="voxseq.genomics.windows"):
        tile(genome, tmp_path)
    meta = read_meta(tmp_path / "w.h5")
    # chr4 (4 kb): under 15 test windows of 512 bp; s3 has 400 reads
    assert any(m.startswith("the test split has ") and "under 20" in m for m in meta["warnings"])
    assert not any("the val split" in m for m in meta["warnings"])
    assert ("subject s3: 400 reads pass the filters (under 1,000; CPM scale 2,500 per read): "
            "its coverage track is mostly noise") in meta["warnings"]
    assert set(meta["warnings"]) <= {r.getMessage() for r in caplog.records}
    assert tile_warnings({"val": 500, "test": 0}, {"a": 10**6, "c": 10**6, "b": 9_000},
                         "cpm") == [
        "subject b: 9,000 reads pass the filters (under 10,000; CPM scale 111 per read): its "
        "coverage track is mostly noise"]


def test_pearson_accumulator_equals_the_whole_array_value():
    rng = np.random.default_rng(2)
    pred, obs = rng.gamma(2.0, 1.0, (50, 16, 3)), rng.gamma(2.0, 1.0, (50, 16, 3))
    obs[..., 2] = 0.0  # no coverage: undefined
    one = PearsonAccumulator(3)
    one.update(pred.astype(np.float32), obs.astype(np.float32))
    whole = pearson_per_track(pred.astype(np.float32), obs.astype(np.float32))
    assert np.array_equal(one.result(), whole, equal_nan=True)  # bitwise for one chunk
    many = PearsonAccumulator(3)
    for i in range(0, 50, 7):
        many.update(pred[i:i + 7], obs[i:i + 7])
    np.testing.assert_allclose(many.result(), pearson_per_track(pred, obs), rtol=1e-12)
    assert many.reasons() == [None, None, "observed coverage is constant (0) over 800 bins"]
    log1p = PearsonAccumulator(3, log1p=True)
    log1p.update(pred, obs)
    assert np.array_equal(log1p.result(), pearson_per_track(pred, obs, log1p=True),
                          equal_nan=True)
    assert pearson_warnings(["a", "b", "c"], many.reasons(), "test", ["chr4"]) == [
        "test Pearson of track c on chr4 cannot be computed: observed coverage is constant (0) "
        "over 800 bins; it is left out of the mean"]


class Const(nn.Module):
    """A model with a sequence-dependent output: bin means of the A channel, one per track."""

    def __init__(self, tracks: int):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(0.5, 1.5, tracks))

    def forward(self, x):  # (N, 4, L) -> (N, T, L / BIN)
        a = x[:, 0].unflatten(1, (-1, BIN)).mean(-1) + 0.1
        return a[:, None] * self.w[:, None]


def test_chunked_evaluation_equals_the_in_memory_one(genome, tmp_path):
    tile(genome, tmp_path)
    task = GenomicsTask(tmp_path / "w.h5", seed=0, batch_size=4)
    model, device = Const(3), torch.device("cpu")
    idx = np.flatnonzero(h5py.File(tmp_path / "w.h5")["split"][()] == 0)  # train windows
    whole = task.evaluate(model, device, idx)
    # the old in-memory code path
    from voxseq.genomics.train import predict
    seq, tgt = task.read(idx)
    pred, y = predict(model, seq, device), tgt / task.scale
    r = pearson_per_track(pred, y)
    assert whole["score"] == float(np.nanmean(r))
    assert whole["val_loss"] == float(np.mean((pred - y * np.log(pred + 1e-6))[..., task.kept]))
    task.eval_chunk = 7
    chunked = task.evaluate(model, device, idx)
    assert chunked.keys() == whole.keys()
    for k in whole:
        assert chunked[k] == pytest.approx(whole[k], rel=1e-6), k
    test, warnings = task.assess(model, device, "test")
    assert np.isnan(test["pearson_s2"]) and np.isfinite(test["score"])
    assert warnings == [f"test Pearson of track s2 on chr4 cannot be computed: observed "
                        f"coverage is constant (0) over {n_test_bins(tmp_path)} bins; it is left "
                        "out of the mean"]
    task.close()


def n_test_bins(path: Path) -> int:
    with h5py.File(path / "w.h5") as h5:
        return int((h5["split"][()] == 2).sum()) * WINDOW // BIN


def test_training_reports_the_warnings(genome, tmp_path, caplog):
    tile(genome, tmp_path)
    train = {"epochs": 1, "iters_per_epoch": 2, "batch_size": 4, "device": "cpu", "amp": False,
             "num_workers": 0}
    with caplog.at_level(logging.WARNING, logger="voxseq.genomics.train"):
        metrics = train_genomics(tmp_path / "w.h5", tmp_path / "bundle", tmp_path / "m.tsv",
                                 tmp_path / "ckpt", {"channels": 8, "dilated_layers": 1},
                                 train, seed=1, eval_json=tmp_path / "eval.json")
    warnings = metrics["warnings"]
    assert any("subject s3" in w for w in warnings)
    assert any(w.startswith("test Pearson of track s2 on chr4 cannot be computed") for w in
               warnings)
    assert json.loads((tmp_path / "eval.json").read_text())["warnings"] == warnings
    assert set(warnings) <= {r.getMessage() for r in caplog.records}
