"""Network builders: plain MLPs and residual MLPs as :class:`~minigrow.layers.Sequential` chains.

``mlp([784, 300, 100, 10], "relu")``::

    Dense(784→300) ReLU Dense(300→100) ReLU Dense(100→10)

``residual_mlp(2, 3, n_blocks=2, n_out=2, activation="tanh")`` (the SensLI "res2" net)::

    Dense(2→3) Tanh ResidualBlock(3) ResidualBlock(3) Dense(3→2)

``vgg([1, 1, 1], width=8)`` / ``resnet(...)`` (the conflicting-bundles papers' conv nets, scaled for 28×28)::

    Conv2D(1→8, 3×3) BN ReLU  ConvBlock(8→8)  ConvBlock(8→16, /2)  ConvBlock(16→32, /2)  GlobalAvgPool  Dense(32→10)
"""
from __future__ import annotations

import numpy as np

from .layers import (BatchNorm2d, Conv2D, ConvBlock, Dense, GlobalAvgPool2d, ReLU, ResidualBlock, Sequential,
                     activation_layer)
from .validate import check_choice, check_dtype, check_int, check_rng

__all__ = ["mlp", "residual_mlp", "hidden_widths", "dense_layers", "conv_net", "vgg", "resnet"]


def mlp(sizes, activation="relu", init="torch", rng=0, dtype=np.float32, alpha=0.01, scale=1.0):
    """Fully connected net with layer sizes ``sizes = [n_in, h_1, …, h_L, n_out]``; linear output layer.

    Parameters
    ----------
    sizes : sequence of int, length ≥ 2
    activation : 'relu' | 'leaky_relu' | 'tanh' | 'sigmoid'
    init : 'torch' (U(±1/√fan_in), the SensLI default) | 'he' | 'glorot'
    rng : numpy Generator or int seed — the only source of randomness
    dtype : float32 (speed) or float64 (gradient and theory checks)
    """
    sizes = list(sizes) if not isinstance(sizes, (str, bytes)) else sizes
    if not isinstance(sizes, list) or len(sizes) < 2:
        raise ValueError(f"sizes: expected a list [n_in, hidden…, n_out] of at least 2 ints, got {sizes!r}")
    sizes = [check_int(f"sizes[{i}]", s, lo=1) for i, s in enumerate(sizes)]
    rng = check_rng("rng", rng)
    dtype = check_dtype("dtype", dtype)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(Dense(sizes[i], sizes[i + 1], init=init, rng=rng, dtype=dtype, scale=scale))
        if i < len(sizes) - 2:
            layers.append(activation_layer(activation, alpha))
    return Sequential(layers)


def residual_mlp(n_in, width, n_blocks, n_out, activation="tanh", init="torch", rng=0, dtype=np.float32,
                 hidden=None):
    """Residual MLP: h₁ = σ(W_in x + b_in), ``n_blocks`` × (h ← h + W2 σ(W1 h + b1)), linear output."""
    n_in = check_int("n_in", n_in, lo=1)
    width = check_int("width", width, lo=1)
    n_blocks = check_int("n_blocks", n_blocks, lo=0)
    n_out = check_int("n_out", n_out, lo=1)
    check_choice("activation", activation, {"relu", "leaky_relu", "tanh", "sigmoid"})
    rng = check_rng("rng", rng)
    dtype = check_dtype("dtype", dtype)
    layers = [Dense(n_in, width, init=init, rng=rng, dtype=dtype), activation_layer(activation)]
    for _ in range(n_blocks):
        layers.append(ResidualBlock(width, hidden, activation=activation, init=init, rng=rng, dtype=dtype))
    layers.append(Dense(width, n_out, init=init, rng=rng, dtype=dtype))
    return Sequential(layers)


def dense_layers(model):
    """Indices of the Dense layers of a Sequential, in order."""
    return [i for i, layer in enumerate(model.layers) if isinstance(layer, Dense)]


def hidden_widths(model):
    """Output widths of all Dense layers but the last (the hidden widths of an MLP)."""
    idx = dense_layers(model)
    return [model.layers[i].out_features for i in idx[:-1]]


def conv_net(blocks=(1, 1, 1), width=8, skip=True, n_classes=10, in_channels=1, init="he", rng=0,
             dtype=np.float32):
    """The conflicting-bundles papers' VGG (``skip=False``) / ResNet (``skip=True``) family, sized for 28×28 inputs
    and a CPU (bundles.md §7; what is scaled is listed below).

    stem: conv 3×3 (``width`` filters, stride 1) → BN → ReLU; stages t = 0, 1, …: ``blocks[t]``
    :class:`~minigrow.layers.ConvBlock` of ``width·2^t`` channels, the first block of every stage after the first
    with stride 2 (28 → 14 → 7); global average pooling; dense output.

    Scaled against the authors' nets: a 3×3 stride-1 stem instead of 7×7 stride 2 (the inputs are 28×28, not
    32×32 colour images); three stages of ``width``, 2·width, 4·width channels (default 8, 16, 32) instead of four
    of 64, 128, 256, 512. A stage with 0 blocks is skipped (its width is still doubled for the next stage).
    """
    if isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__len__") or len(blocks) < 1:
        raise ValueError(f"blocks: expected a list of block counts per stage, got {blocks!r}")
    blocks = [check_int(f"blocks[{t}]", b, lo=0) for t, b in enumerate(blocks)]
    width = check_int("width", width, lo=1)
    n_classes = check_int("n_classes", n_classes, lo=1)
    in_channels = check_int("in_channels", in_channels, lo=1)
    rng = check_rng("rng", rng)
    dtype = check_dtype("dtype", dtype)
    layers = [Conv2D(in_channels, width, 3, padding=1, bias=False, init=init, rng=rng, dtype=dtype),
              BatchNorm2d(width, dtype=dtype), ReLU()]
    c = width
    for t, n in enumerate(blocks):
        w = width * 2 ** t
        for i in range(n):
            stride = 2 if (i == 0 and t > 0) else 1
            layers.append(ConvBlock(c, w, stride=stride, skip=skip, init=init, rng=rng, dtype=dtype))
            c = w
    layers += [GlobalAvgPool2d(), Dense(c, n_classes, init="torch", rng=rng, dtype=dtype)]
    return Sequential(layers)


def vgg(blocks=(1, 1, 1), width=8, **kw):
    """Plain conv net of :func:`conv_net` (no skips): the "vgg" net of the conflicting-bundles papers."""
    return conv_net(blocks, width, skip=False, **kw)


def resnet(blocks=(1, 1, 1), width=8, **kw):
    """Residual conv net of :func:`conv_net`: the "resnet" net of the conflicting-bundles papers."""
    return conv_net(blocks, width, skip=True, **kw)
