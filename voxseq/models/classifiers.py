"""Image classifiers for 3D volumes or 2D slices: ResNet, VGG, a slice RNN and a fold ensemble.

Every classifier splits its forward pass in two, so Grad-CAM (``voxseq.models.gradcam``) needs
no hooks::

    features = model.forward_features(x)   # last convolutional feature map, before pooling
    logits = model.classify(features)      # global pooling + head: (B, num_classes)
    embedding = model.embed(features)      # the penultimate features: (B, embedding_dim)

``forward(x)`` is ``classify(forward_features(x))``, and ``classify`` is the last linear layer
(after dropout) applied to ``embed`` (:func:`penultimate_features` takes them from an input).
Global average pooling makes the networks accept inputs of any size (non-cubic too);
``spatial_dims`` picks 3D (input (B, C, X, Y, Z)) or 2D (input (B, C, H, W)) layers.
Constructor arguments are plain JSON values, so a bundle can rebuild a model with
``build_model(name, **arguments)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import nn

CLASSIFIERS = ("resnet10", "resnet18", "resnet34", "vgg11", "vgg16", "slice_rnn")
"""The classifier names a config may choose (all registered in ``voxseq.models.MODELS``)."""

VGG_CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}
"""VGG configurations (Simonyan & Zisserman 2015, table 1): channels, "M" for a max pool."""


class _Ops(NamedTuple):
    conv: type[nn.Module]
    norm: type[nn.Module]
    pool: type[nn.Module]


def _ops(spatial_dims: int) -> _Ops:
    """Convolution, batch norm and max pool classes for 3D or 2D inputs."""
    if spatial_dims == 3:
        return _Ops(nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d)
    if spatial_dims == 2:
        return _Ops(nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
    raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")


def _init_weights(model: nn.Module) -> None:
    """He initialisation for convolutions (as torchvision); norms start as the identity."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _global_average(features: torch.Tensor) -> torch.Tensor:
    """(B, C, *spatial) -> (B, C)."""
    return features.flatten(2).mean(2)


class _BasicBlock(nn.Module):
    """Two 3x3(x3) convolutions with batch norm and a residual connection (He et al. 2016)."""

    def __init__(self, ops: _Ops, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ops.conv(cin, cout, 3, stride=stride, padding=1, bias=False),
            ops.norm(cout),
            nn.ReLU(inplace=True),
            ops.conv(cout, cout, 3, padding=1, bias=False),
            ops.norm(cout),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:  # 1x1 strided projection when the shape changes
            self.shortcut = nn.Sequential(
                ops.conv(cin, cout, 1, stride=stride, bias=False), ops.norm(cout)
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with basic residual blocks, in 3D or 2D (as torchvision / MedicalNet / MONAI).

    Stem: convolution kernel 7 stride 2, batch norm, ReLU, max pool 3 stride 2; then four stages
    of ``layers[i]`` basic blocks with widths ``base_channels * [1, 2, 4, 8]`` and first-block
    strides [1, 2, 2, 2] (the total stride is 32); global average pooling, dropout, linear head.

    Parameters
    ----------
    layers
        Basic blocks per stage, four positive integers ([2, 2, 2, 2] is ResNet-18).
    in_channels
        Input channels (modalities).
    num_classes
        Output logits.
    spatial_dims
        3 for volumes (B, C, X, Y, Z), 2 for images (B, C, H, W).
    base_channels
        Width of the stem and first stage (64 in the original; 16 by default here).
    dropout
        Dropout probability before the linear head.

    Input (B, in_channels, *spatial), any spatial size -> logits (B, num_classes).
    """

    def __init__(
        self,
        layers: list[int],
        in_channels: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 3,
        base_channels: int = 16,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers = list(layers)
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise ValueError(f"layers must be four positive block counts, got {layers!r}")
        ops = _ops(spatial_dims)
        widths = [base_channels * m for m in (1, 2, 4, 8)]
        self.stem = nn.Sequential(
            ops.conv(in_channels, base_channels, 7, stride=2, padding=3, bias=False),
            ops.norm(base_channels),
            nn.ReLU(inplace=True),
            ops.pool(3, stride=2, padding=1),
        )
        stages, cin = [], base_channels
        for n_blocks, width, stride in zip(layers, widths, (1, 2, 2, 2), strict=True):
            blocks = [_BasicBlock(ops, cin, width, stride)]
            blocks += [_BasicBlock(ops, width, width, 1) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = width
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1], num_classes)
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, *spatial) -> last stage's map (B, 8 * base_channels, *spatial / 32)."""
        return self.stages(self.stem(x))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Global average pooling: features -> penultimate features (B, 8 * base_channels)."""
        return _global_average(features)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Global average pooling, dropout, linear head: features -> logits (B, num_classes)."""
        return self.fc(self.dropout(self.embed(features)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.forward_features(x))


class VGG(nn.Module):
    """VGG with batch norm (Simonyan & Zisserman 2015), in 3D or 2D, with a light head.

    The convolutions follow ``cfg`` with channel numbers scaled so that 64 becomes
    ``base_channels`` (``c * base_channels // 64``); max pools use ``ceil_mode=True`` so small
    inputs (32 voxels along an axis) survive all five. The head is NOT torchvision's
    (7x7x512 -> 4096 -> 4096 fully connected layers, ~120 M weights): it is global average
    pooling -> Linear(hidden) -> ReLU -> Dropout -> Linear(num_classes), so any input size works.

    ``forward_features`` stops after the last convolution block, before the final max pool,
    so Grad-CAM sees the finest last-layer map (stride 16); ``classify`` applies that pool.

    Parameters
    ----------
    cfg
        "A" (VGG-11), "D" (VGG-16), or a list of channel numbers and "M" (max pool).
    in_channels, num_classes, spatial_dims, base_channels
        As for :class:`ResNet`.
    hidden
        Width of the head's hidden layer.
    dropout
        Dropout probability in the head.

    Input (B, in_channels, *spatial), any spatial size -> logits (B, num_classes).
    """

    def __init__(
        self,
        cfg: str | list[int | str],
        in_channels: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 3,
        base_channels: int = 16,
        hidden: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if isinstance(cfg, str):
            if cfg not in VGG_CONFIGS:
                raise ValueError(f"unknown VGG configuration {cfg!r}; known: {sorted(VGG_CONFIGS)}")
            cfg = VGG_CONFIGS[cfg]
        cfg = list(cfg)
        if not cfg or cfg[-1] != "M" or not any(isinstance(c, int) for c in cfg):
            raise ValueError(f"VGG cfg must hold convolutions and end with 'M', got {cfg!r}")
        ops = _ops(spatial_dims)
        layers: list[nn.Module] = []
        cin = in_channels
        for c in cfg[:-1]:  # the final pool belongs to classify()
            if c == "M":
                layers.append(ops.pool(2, stride=2, ceil_mode=True))
            else:
                cout = max(1, int(c) * base_channels // 64)
                layers += [ops.conv(cin, cout, 3, padding=1), ops.norm(cout), nn.ReLU(inplace=True)]
                cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = ops.pool(2, stride=2, ceil_mode=True)
        self.head = nn.Sequential(
            nn.Linear(cin, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, *spatial) -> last convolution block's map, before the final pool."""
        return self.features(x)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Final max pool, global average pooling, the head's hidden layer and its ReLU:
        features -> penultimate features (B, hidden)."""
        return self.head[1](self.head[0](_global_average(self.pool(features))))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Final max pool, global average pooling, head: features -> logits (B, num_classes)."""
        return self.head[3](self.head[2](self.embed(features)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.forward_features(x))


POOLINGS = ("attention", "mean")
"""How :class:`SliceRNN` pools the recurrent network's per-slice outputs."""


class SliceRNN(nn.Module):
    """A 2D CNN shared across the axial slices, a bidirectional GRU over them, pooling, a head.

    Each axial slice (the last axis, Z) of the input goes through the same 2D ResNet trunk
    (:class:`ResNet`'s stem and stages, ``encoder_layers`` blocks per stage) and is averaged
    over its plane into one vector; a bidirectional GRU (or LSTM) reads the Z vectors in order;
    attention pooling (a learned score per slice, softmax over the slices; Ilse et al. 2018) or
    the mean over slices gives one vector (the penultimate features, ``embed``), and dropout and
    a linear layer give the logits. The number of slices may differ between calls (within one
    batch all inputs share it), as the CNNs accept any spatial size.

    ``forward_features`` returns the trunk's maps of every slice as one 3D map
    (B, 8 * base_channels, x, y, Z) (x, y the slice plane at stride 32; Z not downsampled), so
    Grad-CAM gives a map per slice, upsampled to the input's grid like the 3D networks'.

    Parameters
    ----------
    in_channels, num_classes, base_channels
        As for :class:`ResNet`.
    spatial_dims
        3: inputs (B, C, X, Y, Z), slices along Z; 2: inputs (B, C, X, Y), one slice.
    dropout
        Dropout probability on the slice vectors (before the GRU) and before the linear head.
    hidden
        GRU hidden size per direction; the penultimate features have ``2 * hidden``.
    pooling
        ``attention`` or ``mean`` (:data:`POOLINGS`).
    rnn
        ``gru`` or ``lstm``.
    encoder_layers
        Basic blocks per stage of the 2D trunk ([1, 1, 1, 1], ResNet-10's, by default).

    Input (B, in_channels, X, Y, Z) (or (B, in_channels, X, Y)) -> logits (B, num_classes).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 3,
        base_channels: int = 16,
        dropout: float = 0.0,
        hidden: int = 64,
        pooling: str = "attention",
        rnn: str = "gru",
        encoder_layers: list[int] | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if rnn not in ("gru", "lstm"):
            raise ValueError(f"rnn must be 'gru' or 'lstm', got {rnn!r}")
        self.spatial_dims, self.pooling = spatial_dims, pooling
        trunk = ResNet(list(encoder_layers or [1, 1, 1, 1]), in_channels, 2, 2, base_channels)
        self.stem, self.stages = trunk.stem, trunk.stages  # trunk.fc is not used
        width = 8 * base_channels
        self.slice_dropout = nn.Dropout(dropout)
        recurrent = nn.GRU if rnn == "gru" else nn.LSTM
        self.rnn = recurrent(width, hidden, batch_first=True, bidirectional=True)
        self.attention = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * hidden, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, X, Y, Z) -> per-slice maps (B, F, x, y, Z); (B, C, X, Y) -> (B, F, x, y)."""
        if self.spatial_dims == 2:
            return self.stages(self.stem(x))
        b, c, _, _, z = x.shape
        slices = x.permute(0, 4, 1, 2, 3).reshape(b * z, c, *x.shape[2:4])
        maps = self.stages(self.stem(slices))  # (B * Z, F, x, y)
        return maps.reshape(b, z, *maps.shape[1:]).permute(0, 2, 3, 4, 1)

    def slice_weights(self, features: torch.Tensor) -> torch.Tensor:
        """Each slice's pooling weight (B, Z), summing to 1 over the slices."""
        return self._pool(features)[1]

    def _pool(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if features.ndim == 4:  # one slice
            features = features[..., None]
        vectors = features.mean(dim=(2, 3)).transpose(1, 2)  # (B, Z, F)
        outputs, _ = self.rnn(self.slice_dropout(vectors))  # (B, Z, 2 * hidden)
        if self.pooling == "mean":
            weights = torch.full(outputs.shape[:2], 1.0 / outputs.shape[1], device=outputs.device)
        else:
            weights = self.attention(outputs)[..., 0].softmax(dim=1)
        return torch.einsum("bz,bzh->bh", weights.to(outputs.dtype), outputs), weights

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Slice vectors, GRU, pooling over slices: -> penultimate features (B, 2 * hidden)."""
        return self._pool(features)[0]

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """The GRU over the slices, pooling, dropout, linear head -> logits (B, num_classes)."""
        return self.fc(self.dropout(self.embed(features)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.forward_features(x))


def resnet10(**kwargs) -> ResNet:
    """ResNet-10: one basic block per stage; keyword arguments as for :class:`ResNet`."""
    return ResNet([1, 1, 1, 1], **kwargs)


def resnet18(**kwargs) -> ResNet:
    """ResNet-18: [2, 2, 2, 2] basic blocks."""
    return ResNet([2, 2, 2, 2], **kwargs)


def resnet34(**kwargs) -> ResNet:
    """ResNet-34: [3, 4, 6, 3] basic blocks."""
    return ResNet([3, 4, 6, 3], **kwargs)


def vgg11(**kwargs) -> VGG:
    """VGG-11 with batch norm (configuration A); keyword arguments as for :class:`VGG`."""
    return VGG("A", **kwargs)


def vgg16(**kwargs) -> VGG:
    """VGG-16 with batch norm (configuration D)."""
    return VGG("D", **kwargs)


def slice_rnn(**kwargs) -> SliceRNN:
    """Slice RNN: a ResNet-10 2D trunk per axial slice, a bidirectional GRU, attention pooling;
    keyword arguments as for :class:`SliceRNN`."""
    return SliceRNN(**kwargs)


def penultimate_features(model: nn.Module, x: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """The penultimate features (``model.embed``) of each input, in eval mode, without grad.

    Parameters
    ----------
    model
        A classifier of this module (not an ensemble: its members' features are not comparable).
    x
        Inputs (N, C, *spatial) on the model's device.

    Returns
    -------
    torch.Tensor
        (N, D) float32 on the model's device; D is 8 * base_channels (ResNet), hidden (VGG)
        or 2 * hidden (SliceRNN).
    """
    if isinstance(model, ClassifierEnsemble) or not hasattr(model, "embed"):
        raise ValueError(f"{type(model).__name__} has no single penultimate layer; pass one member")
    model.eval()
    with torch.no_grad():
        out = [
            model.embed(model.forward_features(x[i : i + batch_size])).float()
            for i in range(0, len(x), batch_size)
        ]
    return torch.cat(out) if out else torch.zeros((0, 0))


class ClassifierEnsemble(nn.Module):
    """Several copies of one classifier (e.g. the models of a cross-validation's folds).

    **``forward`` returns PROBABILITIES, not logits**: the mean over members of
    ``softmax(member(x))``, shape (B, num_classes), each row summing to 1. Do not apply a
    softmax or a cross-entropy loss on top of it.

    This is how a fold ensemble is saved as one bundle: the architecture is
    ``classifier_ensemble`` with arguments ``{"member": ..., "arguments": ..., "n_members": ...}``
    and the state dict's keys are ``members.0.*``, ``members.1.*``, ... Fill it from the
    members' trained weights with :meth:`load_members` (equivalently,
    ``ensemble.members[i].load_state_dict(state_dicts[i])``).

    Parameters
    ----------
    member
        Registered name of the members' architecture (e.g. "resnet18").
    arguments
        Keyword arguments for ``build_model(member, **arguments)``.
    n_members
        Number of members.
    """

    def __init__(self, member: str, arguments: dict, n_members: int) -> None:
        super().__init__()
        from voxseq.models import build_model  # lazily: voxseq.models imports this module

        if member == "classifier_ensemble":
            raise ValueError("an ensemble's members cannot be ensembles themselves")
        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}")
        self.members = nn.ModuleList(build_model(member, **arguments) for _ in range(n_members))

    def load_members(self, state_dicts: Iterable[dict[str, torch.Tensor]]) -> None:
        """Load one state dict per member, in order (strict, as ``load_state_dict``)."""
        state_dicts = list(state_dicts)
        if len(state_dicts) != len(self.members):
            raise ValueError(
                f"got {len(state_dicts)} state dicts for {len(self.members)} ensemble members"
            )
        for m, state in zip(self.members, state_dicts, strict=True):
            m.load_state_dict(state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *spatial) -> mean softmax probabilities (B, num_classes); NOT logits."""
        return torch.stack([m(x).softmax(dim=1) for m in self.members]).mean(dim=0)
