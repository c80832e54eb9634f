"""Sequence-to-coverage model: convolution + pooling + bidirectional LSTM, DanQ-like.

one-hot ``(N, 4, L)`` -> conv stem (motif detectors, bp resolution) -> convolution + max-pool
stages down to the bin size (as :class:`voxseq.models.seqcnn.SeqCNN`) -> bidirectional LSTM over
the bins (long-range context in both directions) -> concatenated with the convolutional features
(a skip, so the local motif signal need not pass through the recurrence) -> 1x1 conv head ->
softplus: ``(N, T, L / bin)`` non-negative coverage, one channel per track.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from voxseq.models.seqcnn import _ConvBlock, pool_factors


class CNNBiLSTM(nn.Module):
    """Convolutional trunk and a bidirectional LSTM at bin resolution.

    Parameters
    ----------
    n_tracks
        Output channels (one per coverage track).
    bin_size
        Output resolution in bp; a power of two. Input length must be a multiple of it.
    channels
        Width of the stem and pooling stages (the LSTM's input features).
    stem_kernel
        Width (bp) of the first convolution, the motif detectors.
    lstm_hidden
        Hidden units per direction of the LSTM.
    lstm_layers
        Stacked LSTM layers.
    dropout
        Dropout on the LSTM's output (and between stacked layers).

    Input ``(N, 4, L)`` float one-hot (A, C, G, T); output ``(N, n_tracks, L // bin_size)``.
    """

    def __init__(self, n_tracks: int, bin_size: int = 32, channels: int = 32,
                 stem_kernel: int = 15, lstm_hidden: int = 32, lstm_layers: int = 1,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if lstm_hidden < 1 or lstm_layers < 1:
            raise ValueError(f"cnn_bilstm: lstm_hidden and lstm_layers must be >= 1, got "
                             f"{lstm_hidden} and {lstm_layers}")
        self.bin_size = bin_size
        layers: list[nn.Module] = [nn.Conv1d(4, channels, stem_kernel, padding=stem_kernel // 2)]
        for i, f in enumerate(pool_factors(bin_size, "cnn_bilstm")):
            if i:
                layers.append(_ConvBlock(channels, channels, 5))
            layers.append(nn.MaxPool1d(f))
        layers += [nn.BatchNorm1d(channels), nn.GELU()]
        self.trunk = nn.Sequential(*layers)
        self.lstm = nn.LSTM(channels, lstm_hidden, num_layers=lstm_layers, batch_first=True,
                            bidirectional=True, dropout=dropout if lstm_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Conv1d(channels + 2 * lstm_hidden, channels, 1), nn.GELU(),
                                  nn.Conv1d(channels, n_tracks, 1), nn.Softplus())

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % self.bin_size:
            raise ValueError(f"cnn_bilstm: input length {x.shape[-1]} is not a multiple of the "
                             f"bin size {self.bin_size}")
        conv = self.trunk(x)  # (N, C, bins)
        context, _ = self.lstm(conv.transpose(1, 2))  # (N, bins, 2H)
        context = self.dropout(context).transpose(1, 2)
        return self.head(torch.cat([conv, context], dim=1))
