"""A plain 3D UNet: conv-norm-act blocks, strided-conv downsampling, transposed-conv upsampling.

The norm is instance normalisation written as ``GroupNorm(C, C)`` (one group per channel: the
same statistics, the same ``weight``/``bias`` parameters, so bundles written with
``InstanceNorm3d(affine=True)`` load unchanged). On the CPU, PyTorch's group norm keeps the
channels-last 3D layout, where oneDNN's 3D convolutions are fastest (instance norm copies it back
to contiguous): :func:`channels_last` runs inference in that layout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(cout, cout),  # instance norm (one group per channel), affine
        nn.LeakyReLU(0.01, inplace=True),
        nn.Conv3d(cout, cout, 3, padding=1, bias=False),
        nn.GroupNorm(cout, cout),
        nn.LeakyReLU(0.01, inplace=True),
    )


class UNet3D(nn.Module):
    """3D UNet for segmentation.

    Parameters
    ----------
    in_channels, out_channels
        Input channels; classes including background.
    depth
        Resolution levels (each below the first halves every axis, so patch sizes must be
        divisible by ``2 ** (depth - 1)``).
    base_channels
        Channels at the first level, doubled per level up to ``max_channels``.

    Input (B, in_channels, X, Y, Z) -> logits (B, out_channels, X, Y, Z).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        depth: int = 3,
        base_channels: int = 16,
        max_channels: int = 256,
    ):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        widths = [min(base_channels * 2**i, max_channels) for i in range(depth)]
        self.depth = depth
        self.encoders = nn.ModuleList(
            [_block(in_channels, widths[0])]
            + [_block(widths[i - 1], widths[i], stride=2) for i in range(1, depth)]
        )
        self.ups = nn.ModuleList(
            [
                nn.ConvTranspose3d(widths[i], widths[i - 1], 2, stride=2)
                for i in range(depth - 1, 0, -1)
            ]
        )
        self.decoders = nn.ModuleList(
            [_block(2 * widths[i - 1], widths[i - 1]) for i in range(depth - 1, 0, -1)]
        )
        self.head = nn.Conv3d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips[:-1]), strict=True):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


@contextlib.contextmanager
def channels_last(model: nn.Module, device: torch.device | str = "cpu") -> Iterator[bool]:
    """Hold ``model``'s 5D weights in the channels-last 3D layout inside the block, on the CPU.

    Values are unchanged (a layout, not a cast); the weights go back to contiguous on exit, so
    training after a validation in this block runs exactly as without it. Yields whether the
    layout was switched (only on the CPU: other devices are left as they are); the caller then
    passes channels-last inputs (``x.contiguous(memory_format=torch.channels_last_3d)``).
    Inference of :class:`UNet3D` in this layout takes about two thirds of the CPU time
    (oneDNN's direct 3D convolutions; the logits agree to float32 rounding, ~1e-5).
    """
    if torch.device(device).type != "cpu":
        yield False
        return
    model.to(memory_format=torch.channels_last_3d)
    try:
        yield True
    finally:
        model.to(memory_format=torch.contiguous_format)
