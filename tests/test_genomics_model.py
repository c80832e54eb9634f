"""The seqcnn architecture: shapes, registry, argument checks."""

from __future__ import annotations

import pytest
import torch

from voxseq.models import build_model
from voxseq.models.seqcnn import SeqCNN, pool_factors


def test_pool_factors():
    assert pool_factors(32) == [8, 4]
    assert pool_factors(128) == [8, 8, 2]
    assert pool_factors(1) == []
    with pytest.raises(ValueError, match="power of two"):
        pool_factors(48)


def test_output_shape_and_sign(device):
    model = build_model("seqcnn", n_tracks=3, bin_size=32, channels=8, dilated_layers=3)
    assert isinstance(model, SeqCNN)
    model.to(device).eval()
    x = torch.zeros(2, 4, 1024, device=device)
    x[:, 0] = 1.0
    y = model(x)
    assert y.shape == (2, 3, 32)
    assert (y >= 0).all()
    with pytest.raises(ValueError, match="not a multiple of the bin size"):
        model(torch.zeros(1, 4, 1000, device=device))
