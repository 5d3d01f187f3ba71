"""Layers with hand-written forward and backward passes, one module per kind.

* :mod:`.base`         the layer contract (:class:`Layer`): cache, grads overwritten, buffers, train/eval mode,
                       composite layers, unit axes — read it first
* :mod:`.dense`        :class:`Dense`  z = W a + b
* :mod:`.activations`  ReLU, LeakyReLU, Tanh, Sigmoid
* :mod:`.residual`     :class:`ResidualBlock`  h ↦ h + W2 σ(W1 h + b1)
* :mod:`.sequential`   :class:`Sequential`, the chain every model is
* :mod:`.conv`         :class:`Conv2D`  out = b + W ⋆ x (NCHW, im2col + one matrix product per batch)
* :mod:`.pool`         :class:`MaxPool2d`, :class:`AvgPool2d`, :class:`GlobalAvgPool2d`, :class:`Flatten`
* :mod:`.norm`         :class:`BatchNorm1d`, :class:`BatchNorm2d` (running statistics as buffers), :class:`LayerNorm`
* :mod:`.dropout`      :class:`Dropout`  inverted dropout with its own seeded Generator (``hold_mask`` for checks)
* :mod:`.blocks`       :class:`ConvBlock`  the VGG / ResNet conv blocks (conv-BN-ReLU-conv-BN, + shortcut, ReLU)
* :mod:`.select`       :class:`Select`  out = x[:, index] (what a pruned net keeps of a selecting gate)

Conventions: batch-first arrays (axis 1 holds the units: features or channels); dense weights are stored as
``W ∈ R^{out × in}`` so that ``z = W a + b`` reads as in the papers and the batch version is ``Z = A Wᵀ + b``.
"""
from .base import LAYER_TYPES, Layer, check_keep, register_layer
from .activations import ACTIVATIONS, Activation, LeakyReLU, ReLU, Sigmoid, Tanh, activation_layer
from .dense import Dense
from .residual import ResidualBlock
from .sequential import Sequential, check_model
from .conv import Conv2D
from .pool import AvgPool2d, Flatten, GlobalAvgPool2d, MaxPool2d
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .dropout import Dropout
from .blocks import ConvBlock
from .select import Select

__all__ = [
    "Layer", "Dense", "Activation", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "ResidualBlock", "Sequential",
    "ACTIVATIONS", "register_layer", "LAYER_TYPES", "activation_layer", "check_keep", "check_model",
    "Conv2D", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Flatten",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Dropout", "ConvBlock", "Select",
]
