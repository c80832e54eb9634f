"""Sequence-to-coverage model: a dilated residual 1D CNN in the Basenji mould (registered as
``dilated_cnn``, and as ``seqcnn``, the name bundles written before ``genomics.model.arch`` carry).

one-hot ``(N, 4, L)`` -> conv stem (motif detectors, bp resolution) -> convolution + max-pool
stages down to the bin size -> dilated residual tower at bin resolution (dilation doubling per
layer, so the receptive field grows exponentially) -> 1x1 conv -> softplus: ``(N, T, L / bin)``
non-negative coverage, one channel per track.
"""

from __future__ import annotations

from torch import Tensor, nn


def pool_factors(bin_size: int, arch: str = "dilated_cnn") -> list[int]:
    """Split the bin size into max-pool factors of at most 8 (e.g. 32 -> [8, 4], 128 -> [8, 8, 2]).

    Raises
    ------
    ValueError
        When ``bin_size`` is not a power of two (the message names ``arch``).
    """
    if bin_size < 1 or bin_size & (bin_size - 1):
        raise ValueError(f"{arch}: bin_size must be a power of two, got {bin_size}")
    out, rest = [], bin_size
    while rest > 1:
        f = min(8, rest)
        out.append(f)
        rest //= f
    return out


class _ConvBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int = 1) -> None:
        super().__init__(
            nn.BatchNorm1d(c_in),
            nn.GELU(),
            nn.Conv1d(c_in, c_out, kernel, padding=dilation * (kernel // 2), dilation=dilation),
        )


class _DilatedResidual(nn.Module):
    def __init__(self, channels: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _ConvBlock(channels, channels // 2, 3, dilation),
            _ConvBlock(channels // 2, channels, 1),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class SeqCNN(nn.Module):
    """Dilated residual CNN mapping one-hot DNA to binned coverage tracks.

    Parameters
    ----------
    n_tracks
        Output channels (one per coverage track).
    bin_size
        Output resolution in bp; a power of two. Input length must be a multiple of it.
    channels
        Width of the stem, pooling stages and tower.
    dilated_layers
        Residual blocks in the tower, dilations 1, 2, 4, ...
    stem_kernel
        Width (bp) of the first convolution, the motif detectors.
    dropout
        Dropout in each residual block.

    Input ``(N, 4, L)`` float one-hot (A, C, G, T); output ``(N, n_tracks, L // bin_size)``.
    """

    def __init__(self, n_tracks: int, bin_size: int = 32, channels: int = 64,
                 dilated_layers: int = 6, stem_kernel: int = 15, dropout: float = 0.1) -> None:
        super().__init__()
        self.bin_size = bin_size
        layers: list[nn.Module] = [nn.Conv1d(4, channels, stem_kernel, padding=stem_kernel // 2)]
        for i, f in enumerate(pool_factors(bin_size)):
            if i:
                layers.append(_ConvBlock(channels, channels, 5))
            layers.append(nn.MaxPool1d(f))
        self.trunk = nn.Sequential(*layers)
        self.tower = nn.Sequential(
            *[_DilatedResidual(channels, 2**i, dropout) for i in range(dilated_layers)]
        )
        self.head = nn.Sequential(nn.BatchNorm1d(channels), nn.GELU(),
                                  nn.Conv1d(channels, n_tracks, 1), nn.Softplus())

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % self.bin_size:
            raise ValueError(f"dilated_cnn: input length {x.shape[-1]} is not a multiple of "
                             f"the bin size {self.bin_size}")
        return self.head(self.tower(self.trunk(x)))
