"""Model architectures, found by name through an explicit registry."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from voxseq.models.autoencoder import ConvAutoencoder3D, ProfileAutoencoder
from voxseq.models.classifiers import (
    ClassifierEnsemble,
    resnet10,
    resnet18,
    resnet34,
    slice_rnn,
    vgg11,
    vgg16,
)
from voxseq.models.cnn_bilstm import CNNBiLSTM
from voxseq.models.seqcnn import SeqCNN
from voxseq.models.unet import UNet3D

MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet3d": UNet3D,
    "dilated_cnn": SeqCNN,  # genomics.model.arch names (voxseq.genomics.archs)
    "cnn_bilstm": CNNBiLSTM,
    "seqcnn": SeqCNN,  # the dilated CNN's name in bundles written before genomics.model.arch
    "resnet10": resnet10,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "vgg11": vgg11,
    "vgg16": vgg16,
    "slice_rnn": slice_rnn,
    "classifier_ensemble": ClassifierEnsemble,
    "conv_autoencoder3d": ConvAutoencoder3D,
    "profile_autoencoder": ProfileAutoencoder,
}


def register(name: str, factory: Callable[..., nn.Module]) -> None:
    """Add an architecture to the registry."""
    MODELS[name] = factory


def build_model(name: str, **kwargs) -> nn.Module:
    """Instantiate a registered architecture with its keyword arguments."""
    if name not in MODELS:
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](**kwargs)
