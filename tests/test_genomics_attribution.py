"""Attributions (gradient x input, ISM) on models whose answer is known, MEME writing and
parsing, matching discovered motifs against planted cores."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from voxseq import VoxseqError
from voxseq.genomics.attribution import (
    Attributions,
    central_bins,
    gradient_x_input,
    read_attributions,
    saturation_mutagenesis,
    top_windows,
    write_attributions,
)
from voxseq.genomics.motifs import (
    Motif,
    consensus,
    format_meme,
    hamming_to_core,
    match_planted,
    read_meme,
    trim_motif,
    write_meme,
)
from voxseq.genomics.sequence import one_hot, reverse_complement

L, BIN = 256, 32
CORE = "TGACTCAGCA"


class FixedFilter(nn.Module):
    """Exactly a linear filter: every output bin is ``<W, x[:, p:p+k]>`` (one read-out place),
    plus, with ``mirror``, the reverse-complement filter at the mirrored place (then the model is
    strand-symmetric: s(rc(x)) = s(x))."""

    def __init__(self, weight: torch.Tensor, at: int, mirror: bool = False) -> None:
        super().__init__()
        self.weight, self.at, self.mirror = weight, at, mirror

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.weight.shape[1]
        y = (x[:, :, self.at:self.at + k] * self.weight).sum((1, 2))
        if self.mirror:
            m = x.shape[2] - self.at - k
            y = y + (x[:, :, m:m + k] * self.weight.flip(0, 1)).sum((1, 2))
        return y[:, None, None].expand(-1, 2, x.shape[2] // BIN)  # 2 identical tracks


def _window(rng: np.random.Generator, at: int) -> np.ndarray:
    seq = list(rng.choice(list("ACGT"), L))
    seq[at:at + len(CORE)] = CORE
    return one_hot("".join(seq))


@pytest.fixture()
def filt() -> torch.Tensor:
    return torch.tensor(np.random.default_rng(1).normal(size=(4, len(CORE))), dtype=torch.float32)


def test_central_bins_symmetric():
    assert central_bins(128, 32) == (48, 80)
    assert central_bins(8, 3) == (2, 6)  # one more bin: symmetric on both strands
    assert central_bins(8, None) == (0, 8)
    with pytest.raises(ValueError, match="center_bins"):
        central_bins(8, 9)


def test_gradient_x_input_is_the_filter_at_the_motif(filt):
    at = 100
    x = _window(np.random.default_rng(0), at)
    bins = central_bins(L // BIN, 2)
    n_bins = bins[1] - bins[0]
    grad, scalar = gradient_x_input(FixedFilter(filt, at), x[None], bins, rc_average=False)
    attr = (grad * x)[0]
    w = filt.numpy().T  # (k, 4)
    obs = x[at:at + len(CORE)].astype(bool)
    # the scalar sums n_bins equal bins, mean over 2 identical tracks
    np.testing.assert_allclose(attr[at:at + len(CORE)][obs] / n_bins, w[obs], rtol=1e-6)
    assert np.all(attr[:at] == 0) and np.all(attr[at + len(CORE):] == 0)
    np.testing.assert_allclose(scalar[0] / n_bins, w[obs].sum(), rtol=1e-5)


def test_rc_averaged_attributions_of_a_strand_symmetric_filter(filt):
    at = 40
    x = _window(np.random.default_rng(2), at)
    model = FixedFilter(filt, at, mirror=True)
    bins = central_bins(L // BIN, 1)  # one bin -> two, symmetric
    n_bins = bins[1] - bins[0]
    grad, _ = gradient_x_input(model, x[None], bins, rc_average=True)
    attr = (grad * x)[0] / n_bins
    w = filt.numpy().T
    obs = x[at:at + len(CORE)].astype(bool)
    np.testing.assert_allclose(attr[at:at + len(CORE)][obs], w[obs], rtol=1e-5)
    # and the reverse strand sees the same numbers (averaging kept them)
    grad_rc, _ = gradient_x_input(model, reverse_complement(x)[None], bins, rc_average=True)
    np.testing.assert_allclose(reverse_complement(grad_rc[0]), grad[0], rtol=1e-5, atol=1e-6)


def test_ism_is_the_weight_difference(filt):
    at = 100
    x = _window(np.random.default_rng(3), at)
    bins = central_bins(L // BIN, 2)
    n_bins = bins[1] - bins[0]
    span = (at - 3, at + len(CORE) + 3)
    eff = saturation_mutagenesis(FixedFilter(filt, at), x, span, bins, rc_average=False,
                                 batch_size=7)
    w = filt.numpy().T
    ref = x[at:at + len(CORE)].argmax(1)
    expected = w - w[np.arange(len(CORE)), ref][:, None]
    np.testing.assert_allclose(eff[3:3 + len(CORE)] / n_bins, expected, rtol=1e-5, atol=1e-6)
    assert np.all(eff[:3] == 0) and np.all(eff[-3:] == 0)  # outside the filter: no effect
    with pytest.raises(ValueError, match="span"):
        saturation_mutagenesis(FixedFilter(filt, at), x, (250, 260), bins)


def test_top_windows_by_central_observed_signal(tmp_path):
    path = tmp_path / "w.h5"
    tg = np.zeros((5, 8, 2), np.float32)
    tg[1, 3:5] = 5.0  # central
    tg[2, 0] = 100.0  # outside the central bins
    tg[4, 4] = 1.0
    with h5py.File(path, "w") as h5:
        h5["targets"] = tg
        h5["split"] = np.array([2, 2, 2, 0, 2], np.uint8)
    idx, sig = top_windows(path, 2, central_bins(8, 2))
    assert idx.tolist() == [1, 4] and sig.tolist() == [10.0, 1.0]
    with pytest.raises(VoxseqError, match="no val window"):
        top_windows(path, 2, (3, 5), split="val")


def test_attributions_file_round_trip(tmp_path, filt):
    x = np.stack([_window(np.random.default_rng(i), 50) for i in range(3)])
    grad, scalar = gradient_x_input(FixedFilter(filt, 50), x, (3, 5))
    attr = Attributions(onehot=x, gradient=grad, scalar=scalar, observed=scalar + 1,
                        index=np.array([7, 3, 9]), contig=["chr4"] * 3,
                        start=np.array([0, 1024, 2048]), bins=(3, 5), bin_size=BIN,
                        ism=np.zeros((1, 20, 4), np.float32), ism_window=np.array([0]),
                        ism_start=np.array([45]))
    write_attributions(tmp_path / "a.h5", attr, True, "models/x", ["s1", "s2"])
    back = read_attributions(tmp_path / "a.h5")
    np.testing.assert_array_equal(back["attributions"], grad * x)
    np.testing.assert_allclose(back["hypothetical"].sum(-1), 0, atol=1e-5)
    assert back["contig"] == ["chr4"] * 3 and back["end"].tolist() == [256, 1280, 2304]
    assert back["attrs"]["center_bp"].tolist() == [96, 160] and back["attrs"]["rc_average"]
    assert "central bins" in back["attrs"]["scalar"]


# ---- motifs ----------------------------------------------------------------------------------
def _motif(name: str, seq: str, purity: float = 0.85) -> Motif:
    ppm = one_hot(seq).astype(float) * (purity - (1 - purity) / 3) + (1 - purity) / 3
    return Motif(name, ppm, one_hot(seq) * 0.5, 30)


def test_meme_round_trip_and_format(tmp_path):
    motifs = [_motif("pos_0", "ATGACTCAGCAT"), _motif("pos_1", "CCAATCGGAT")]
    write_meme(tmp_path / "m.meme", motifs, background=[0.29, 0.21, 0.21, 0.29])
    text = (tmp_path / "m.meme").read_text()
    assert text.startswith("MEME version 4\n") and "ALPHABET= ACGT" in text
    assert "letter-probability matrix: alength= 4 w= 12 nsites= 30" in text
    back = read_meme(tmp_path / "m.meme")
    assert [m.name for m in back] == ["pos_0", "pos_1"]
    for a, b in zip(motifs, back, strict=True):
        np.testing.assert_allclose(a.ppm, b.ppm, atol=1e-6)
        assert a.consensus == b.consensus and b.n_sites == 30


def test_meme_parser_rejects_broken_files(tmp_path):
    good = format_meme([_motif("m", "ACGTAC")])
    bad = tmp_path / "bad.meme"
    bad.write_text(good.replace("MEME version 4", "hello"))
    with pytest.raises(VoxseqError, match="MEME version"):
        read_meme(bad)
    lines = good.splitlines()
    lines[-2] = "0.5 0.5 0.0"  # a row with 3 values
    bad.write_text("\n".join(lines))
    with pytest.raises(VoxseqError, match="expected 4"):
        read_meme(bad)
    bad.write_text(good.replace("0.850000", "0.950000", 1))
    with pytest.raises(VoxseqError, match="sum to 1"):
        read_meme(bad)


def test_hamming_either_strand_and_offset():
    assert hamming_to_core("GG" + CORE + "T", CORE) == (0, "+", 2)
    rc = "TGCTGAGTCA"  # reverse complement of CORE
    assert hamming_to_core("A" + rc, CORE) == (0, "-", 1)
    assert hamming_to_core(CORE[:8], CORE)[0] == 2  # two core bases fall outside
    assert hamming_to_core("TGACTGAGCA", CORE)[0] == 1


def test_match_planted_best_motif_per_core():
    motifs = [_motif("pos_0", "CATGCTGAGTCAA"),  # CORE, reverse strand
              _motif("pos_1", "CCAATCGCAT"),  # one mismatch
              _motif("pos_2", "TTTTTTTTTT")]
    rows = match_planted(motifs, [("ap1", CORE), ("ccaat", "CCAATCGGAT"),
                                  ("gata", "GATAAGGCTT")])
    by = {r["planted"]: r for r in rows}
    assert by["ap1"]["motif"] == "pos_0" and by["ap1"]["distance"] == 0
    assert by["ap1"]["strand"] == "-" and by["ap1"]["recovered"]
    assert by["ccaat"]["motif"] == "pos_1" and by["ccaat"]["distance"] == 1
    assert by["ccaat"]["recovered"]
    assert not by["gata"]["recovered"] and by["gata"]["distance"] >= 2
    assert match_planted([], [("ap1", CORE)])[0]["motif"] is None


def test_trim_keeps_the_informative_core():
    cwm = np.zeros((14, 4))
    cwm[3:13] = one_hot(CORE) * 1.0
    cwm[0, 0] = 0.1
    m = trim_motif(Motif("m", np.full((14, 4), 0.25), cwm, 5))
    assert len(m.ppm) == 10 and m.cwm[0].argmax() == 3  # T
    assert consensus(m.cwm) == CORE


def _planted_attributions(rng: np.random.Generator, n: int = 60, length: int = 600):
    """Random windows with two motifs planted (either strand) whose bases carry contribution,
    plus Gaussian noise: what a model that learned them would give."""
    cores = {"ap1": CORE, "gata": "GATAAGGCTT"}
    seqs = rng.choice(list("ACGT"), (n, length))
    hyp = rng.normal(0, 0.05, (n, length, 4)).astype(np.float32)
    for i in range(n):
        for k, core in enumerate(cores.values()):
            for at in range(40 + 250 * k, length - 40, 500):
                seq = core if rng.random() < 0.5 else reverse_complement(one_hot(core))
                site = one_hot(seq) if isinstance(seq, str) else seq
                seqs[i, at:at + 10] = list("ACGT"[j] for j in site.argmax(1))
                hyp[i, at:at + 10] += site * (1.0 if k == 0 else 0.4)
    oh = one_hot("".join(seqs.ravel())).reshape(n, length, 4)
    return oh, hyp, cores


def test_discover_motifs_recovers_planted_motifs():
    from voxseq.genomics.motifs import discover_motifs

    oh, hyp, cores = _planted_attributions(np.random.default_rng(5))
    motifs = discover_motifs(oh, hyp, min_seqlets=10)
    rows = {r["planted"]: r for r in match_planted(motifs, cores.items())}
    assert rows["ap1"]["distance"] == 0 and rows["gata"]["distance"] == 0, rows
    assert rows["ap1"]["motif"] != rows["gata"]["motif"]
    assert all(m.name.startswith("pos_") for m in motifs if m.name in
               {rows["ap1"]["motif"], rows["gata"]["motif"]})
    # noise alone: no motif
    assert discover_motifs(oh, np.random.default_rng(1).normal(0, 0.05, hyp.shape),
                           min_seqlets=10) == []


def test_rc_averaged_gradient_of_a_cnn_is_strand_symmetric():
    from voxseq.models.seqcnn import SeqCNN

    torch.manual_seed(0)
    model = SeqCNN(n_tracks=3, bin_size=BIN, channels=8, dilated_layers=2).eval()
    x = np.stack([_window(np.random.default_rng(i), 60) for i in range(2)])
    bins = central_bins(L // BIN, 2)
    grad, s = gradient_x_input(model, x, bins, rc_average=True)
    grad_rc, s_rc = gradient_x_input(model, reverse_complement(x), bins, rc_average=True)
    np.testing.assert_allclose(s_rc, s, rtol=1e-5)
    np.testing.assert_allclose(reverse_complement(grad_rc), grad, rtol=1e-4, atol=1e-6)
    one, _ = gradient_x_input(model, x, bins, rc_average=False)
    assert not np.allclose(one, grad, atol=1e-6)  # a random CNN is not strand-symmetric itself
