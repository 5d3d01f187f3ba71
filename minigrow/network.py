"""Network builders: plain MLPs and residual MLPs as :class:`~minigrow.layers.Sequential` chains.

``mlp([784, 300, 100, 10], "relu")``::

    Dense(784→300) ReLU Dense(300→100) ReLU Dense(100→10)

``residual_mlp(2, 3, n_blocks=2, n_out=2, activation="tanh")`` (the SensLI "res2" net)::

    Dense(2→3) Tanh ResidualBlock(3) ResidualBlock(3) Dense(3→2)

Convolutional networks (LeNet-5, the VGG/ResNet families): :mod:`minigrow.convnets`.
"""
from __future__ import annotations

import numpy as np

from .layers import Dense, ResidualBlock, Sequential, activation_layer
from .validate import check_choice, check_dtype, check_int, check_rng

__all__ = ["mlp", "residual_mlp", "hidden_widths", "dense_layers"]


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

