"""Genome windows: tiling, N skipping, contig split, geometry checks, soft clipping, stitching."""

from __future__ import annotations

import numpy as np
import pytest

from voxseq import VoxseqError
from voxseq.genomics.bigwig import centre_weights, predict_contig, tile_starts
from voxseq.genomics.windows import (
    assign_split,
    check_geometry,
    soft_clip,
    unclip,
    window_table,
)


def test_window_table_stride_split_and_n_skip():
    seqs = {"chr1": b"A" * 1000, "chr2": b"C" * 400 + b"N" * 200 + b"G" * 400, "chr3": b"T" * 300}
    lengths = {c: len(s) for c, s in seqs.items()}
    split = assign_split(list(seqs), ["chr2"], ["chr3"])
    assert split == {"chr1": "train", "chr2": "val", "chr3": "test"}
    rows = window_table(split, lengths, seqs, window=400, stride=200, max_n_fraction=0.25)
    got = [(r["contig"], r["start"], r["split"]) for r in rows]
    # chr1: starts 0..600 every 200; chr2: windows with > 25% N (start 200, 400) skipped;
    # chr3 is shorter than a window: none
    assert got == [("chr1", 0, "train"), ("chr1", 200, "train"), ("chr1", 400, "train"),
                   ("chr1", 600, "train"), ("chr2", 0, "val"), ("chr2", 600, "val")]
    assert [r["index"] for r in rows] == list(range(6))
    assert all(r["end"] - r["start"] == 400 for r in rows)


def test_split_errors_name_the_contigs():
    with pytest.raises(VoxseqError, match=r"\['chr9'\] are not in the reference"):
        assign_split(["chr1", "chr2"], ["chr9"], [])
    with pytest.raises(VoxseqError, match="both val_contigs and test_contigs"):
        assign_split(["chr1", "chr2"], ["chr2"], ["chr2"])
    with pytest.raises(VoxseqError, match="none left to train on"):
        assign_split(["chr1", "chr2"], ["chr1"], ["chr2"])


def test_geometry_must_be_multiples_of_the_bin():
    check_geometry(4096, 1024, 32)
    with pytest.raises(VoxseqError, match="genomics.stride = 1000"):
        check_geometry(4096, 1000, 32)
    with pytest.raises(VoxseqError, match="genomics.window = 16"):
        check_geometry(16, 32, 32)


def test_soft_clip_as_basenji_and_inverse():
    x = np.array([0.0, 10.0, 384.0, 400.0, 1000.0], dtype=np.float32)
    y = soft_clip(x, 384.0)
    np.testing.assert_allclose(y, [0, 10, 384, 384 + 4, 384 + np.sqrt(616)], rtol=1e-6)
    np.testing.assert_allclose(unclip(y, 384.0), x, rtol=1e-5)
    assert soft_clip(x, None) is x


def test_tile_starts_cover_the_contig_on_the_bin_grid():
    starts = tile_starts(10_000, 4096, 32)
    assert starts[0] == 0 and all(s % 32 == 0 for s in starts)
    assert starts[-1] + 4096 >= 10_000 // 32 * 32
    assert tile_starts(1000, 4096, 32) == [0]


def test_predict_contig_stitches_a_constant_model():
    def const(onehot):
        return np.full((len(onehot), onehot.shape[1] // 32, 2), 3.0)

    out = predict_contig(const, "ACGT" * 2500, 1024, 32, batch_size=3)
    assert out.shape == (10_000 // 32, 2)  # the last partial bin is not predicted
    np.testing.assert_allclose(out, 3.0, rtol=1e-6)
    short = predict_contig(const, "ACGT" * 100, 1024, 32)  # shorter than a window: N-padded
    assert short.shape == (-(-400 // 32), 2)
    assert centre_weights(8).argmax() in (3, 4)
