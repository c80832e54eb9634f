"""One-hot encoding: round trip, N and IUPAC codes, reverse complement (numpy and torch)."""

from __future__ import annotations

import numpy as np
import torch

from voxseq.genomics.sequence import decode, n_fraction, one_hot, reverse_complement
from voxseq.genomics.train import rc_tensor, shift_onehot


def test_round_trip_and_dtype():
    seq = "ACGTTGCAAC"
    oh = one_hot(seq)
    assert oh.shape == (10, 4) and oh.dtype == np.uint8
    assert (oh.sum(axis=1) == 1).all()
    assert decode(oh) == seq
    assert np.array_equal(one_hot(seq.lower()), oh)
    assert np.array_equal(one_hot(seq.encode()), oh)


def test_n_and_iupac_are_all_zeros():
    oh = one_hot("ANRYn-C")
    assert oh[[1, 2, 3, 4, 5]].sum() == 0
    assert decode(oh) == "ANNNNNC"
    assert n_fraction("ACNN") == 0.5
    assert n_fraction("") == 0.0


def test_batched_lookup():
    codes = np.frombuffer(b"ACGTNACGTN", dtype=np.uint8).reshape(2, 5)
    assert one_hot(codes).shape == (2, 5, 4)


def test_reverse_complement():
    seq = "AACGTNGGT"
    comp = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}
    expected = "".join(comp[b] for b in reversed(seq))
    assert decode(reverse_complement(one_hot(seq))) == expected
    assert np.array_equal(reverse_complement(reverse_complement(one_hot(seq))), one_hot(seq))
    x = torch.from_numpy(one_hot(seq)[None].astype(np.float32)).transpose(1, 2)  # (1, 4, L)
    rc = rc_tensor(x).transpose(1, 2)[0].numpy().astype(np.uint8)
    assert decode(rc) == expected


def test_shift_pads_with_n():
    oh = one_hot("ACGTA")
    assert decode(shift_onehot(oh, 2)) == "NNACG"
    assert decode(shift_onehot(oh, -1)) == "CGTAN"
    assert decode(shift_onehot(oh, 0)) == "ACGTA"
