"""Autoencoders for cohort quality control: a 3D convolutional one for volumes, a dense one for
binned coverage profiles.

Both split their forward pass so the latent code can be mapped across a cohort::

    code = model.encode(x)            # (B, latent)
    reconstruction = model.decode(code)

``forward(x)`` is ``decode(encode(x))``. Constructor arguments are plain JSON values, so a bundle
rebuilds a model with ``build_model(name, **arguments)``. Neither network has batch or instance
normalisation: a subject's reconstruction must not depend on the batch it sits in, and
per-sample normalisation would hide an inverted or rescaled contrast, which QC must see.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ConvAutoencoder3D(nn.Module):
    """Convolutional autoencoder for (B, C, X, Y, Z) volumes of a fixed size.

    Parameters
    ----------
    input_size
        (X, Y, Z); each must divide by ``2 ** levels``.
    in_channels
        Image channels.
    base_channels
        Width of the first level; doubled at each of the ``levels`` stride-2 stages.
    levels
        Down-sampling stages (each halves every axis).
    latent
        Length of the code (a dense bottleneck, so the code summarises the whole volume).
    """

    def __init__(
        self,
        input_size: Sequence[int],
        in_channels: int = 1,
        base_channels: int = 8,
        levels: int = 3,
        latent: int = 32,
    ) -> None:
        super().__init__()
        size = [int(s) for s in input_size]
        if len(size) != 3 or any(s % (2**levels) for s in size):
            raise ValueError(
                f"input_size {list(input_size)} must be three sizes divisible by 2**levels "
                f"({2**levels})"
            )
        widths = [base_channels * 2**i for i in range(levels + 1)]
        enc: list[nn.Module] = [nn.Conv3d(in_channels, widths[0], 3, padding=1), nn.SiLU()]
        for i in range(levels):
            enc += [nn.Conv3d(widths[i], widths[i + 1], 4, stride=2, padding=1), nn.SiLU()]
            enc += [nn.Conv3d(widths[i + 1], widths[i + 1], 3, padding=1), nn.SiLU()]
        self.encoder = nn.Sequential(*enc)
        self.bottom = [widths[-1], *(s // 2**levels for s in size)]
        flat = widths[-1] * (size[0] * size[1] * size[2]) // 8**levels
        self.to_code = nn.Linear(flat, latent)
        self.from_code = nn.Linear(latent, flat)
        dec: list[nn.Module] = []
        for i in reversed(range(levels)):
            dec += [nn.SiLU(), nn.ConvTranspose3d(widths[i + 1], widths[i], 4, stride=2, padding=1)]
            dec += [nn.SiLU(), nn.Conv3d(widths[i], widths[i], 3, padding=1)]
        dec += [nn.SiLU(), nn.Conv3d(widths[0], in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_code(self.encoder(x).flatten(1))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.from_code(code).view(-1, *self.bottom))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class ProfileAutoencoder(nn.Module):
    """Dense autoencoder for (B, n_bins) profiles (e.g. standardised log-coverage per bin).

    Parameters
    ----------
    n_bins
        Profile length.
    hidden
        Width of the hidden layer on each side of the code.
    latent
        Length of the code; small, so that a subject-specific change (a copy-number gain, a
        biased library) cannot be reproduced from it and stays in the residual.
    dropout
        Dropout on the input (a denoising autoencoder's corruption).
    """

    def __init__(self, n_bins: int, hidden: int = 64, latent: int = 4, dropout: float = 0.1):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(n_bins, hidden), nn.SiLU(), nn.Linear(hidden, latent)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden), nn.SiLU(), nn.Linear(hidden, n_bins)
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
