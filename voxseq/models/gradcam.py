"""Grad-CAM (Selvaraju et al. 2017) for the classifiers in ``voxseq.models.classifiers``.

The class activation map is computed on the last convolutional feature map ``A`` (the output
of ``model.forward_features``)::

    w_c = mean over space of d logit_k / d A_c        (one weight per channel)
    cam = ReLU(sum_c w_c A_c), upsampled to the input's size, scaled to [0, 1] per sample

The models expose ``forward_features`` and ``classify``, so no hooks are needed.

Resolution: the map is as coarse as ``A`` (stride 32 for the ResNets, 16 for the VGGs), and
the upsampling (``align_corners=False``, as in common Grad-CAM tools) puts feature cell ``k`` at
the centre of its block, voxel ``stride * k + stride / 2 - 0.5``. That is where VGG's pools
centre the cell, but the ResNets' padded strided convolutions centre it near ``stride * k``, so
ResNet maps peak about half a cell (~16 voxels) towards higher indices of where the network
looked (measured on receptive fields; the localisation test allows for it with a large target).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from voxseq.models.classifiers import ClassifierEnsemble

_UPSAMPLING = {2: "bilinear", 3: "trilinear"}


def grad_cam(model: nn.Module, x: torch.Tensor, class_index: int | Sequence[int]) -> np.ndarray:
    """Grad-CAM heat maps of ``class_index`` for each sample of ``x``.

    Parameters
    ----------
    model
        A classifier with ``forward_features`` and ``classify`` (every model in
        ``voxseq.models.classifiers``), or a :class:`ClassifierEnsemble`, whose map is the
        mean of its members' (scaled) maps. Use eval mode: in training mode batch norm mixes
        the samples of a batch (and updates its running statistics).
    x
        Input (B, C, H, W) or (B, C, X, Y, Z), on the model's device.
    class_index
        The class to explain: one for all samples, or one per sample.

    Returns
    -------
    np.ndarray
        float32 (B, *x.shape[2:]): each sample's map divided by its maximum, so in [0, 1]
        (a map without positive evidence stays all zeros). The parameters' ``.grad`` are
        left untouched.
    """
    if isinstance(model, ClassifierEnsemble):
        return np.mean([grad_cam(m, x, class_index) for m in model.members], axis=0)
    spatial = tuple(x.shape[2:])
    if len(spatial) not in _UPSAMPLING:
        raise ValueError(f"x must be (B, C, H, W) or (B, C, X, Y, Z), got shape {tuple(x.shape)}")
    with torch.enable_grad():
        # an input that requires grad keeps the graph even for a frozen model
        features = model.forward_features(x.detach().requires_grad_(True))
        logits = model.classify(features)
        index = _class_indices(class_index, logits.shape[0], logits.shape[1]).to(logits.device)
        score = logits.gather(1, index[:, None]).sum()  # samples are independent in eval mode
        (grad,) = torch.autograd.grad(score, features)
    weights = grad.flatten(2).mean(2)  # (B, C)
    cam = F.relu(torch.einsum("bc,bc...->b...", weights, features.detach()))
    mode = _UPSAMPLING[len(spatial)]
    cam = F.interpolate(cam[:, None], size=spatial, mode=mode, align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(1).clamp_min(torch.finfo(cam.dtype).tiny)
    cam = cam / peak.view(-1, *[1] * len(spatial))
    return cam.cpu().numpy().astype(np.float32)


def _class_indices(class_index: int | Sequence[int], batch: int, num_classes: int) -> torch.Tensor:
    """One class index per sample, checked against the batch size and the number of classes."""
    if isinstance(class_index, int | np.integer):
        indices = [int(class_index)] * batch
    else:
        indices = [int(i) for i in class_index]
        if len(indices) != batch:
            raise ValueError(f"got {len(indices)} class indices for a batch of {batch}")
    bad = [i for i in indices if not 0 <= i < num_classes]
    if bad:
        raise ValueError(f"class indices {bad} out of range for {num_classes} classes")
    return torch.tensor(indices, dtype=torch.long)
