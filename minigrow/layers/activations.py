"""Element-wise activation layers a = σ(z) and the activation functions σ with their derivatives."""
from __future__ import annotations

import numpy as np

from ..validate import check_choice, check_nonneg
from .base import Layer, register_layer

__all__ = ["ACTIVATIONS", "Activation", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "activation_layer"]


# --------------------------------------------------------------------------------------------------------------
# Activation functions σ and their derivatives, shared by activation layers and residual blocks.
# Each derivative is written in terms of the pre-activation z and the output a = σ(z), whichever is cheaper.
# --------------------------------------------------------------------------------------------------------------

def _relu(z, alpha):
    return np.maximum(z, 0)


def _relu_grad(z, a, da, alpha):
    # σ'(z) = 1[z > 0]; the convention σ'(0) = 0 matters for SensLI (sensli.md §2).
    return da * (z > 0)


def _leaky(z, alpha):
    return np.where(z > 0, z, alpha * z)


def _leaky_grad(z, a, da, alpha):
    return np.where(z > 0, da, alpha * da)


def _tanh(z, alpha):
    return np.tanh(z)


def _tanh_grad(z, a, da, alpha):
    return da * (1 - a * a)          # tanh' = 1 − tanh²


def _sigmoid(z, alpha):
    return 0.5 * (1 + np.tanh(0.5 * z))   # = 1/(1+e^{−z}), without overflow for large |z|


def _sigmoid_grad(z, a, da, alpha):
    return da * a * (1 - a)


def _identity(z, alpha):
    return z


def _identity_grad(z, a, da, alpha):
    return da


ACTIVATIONS = {
    "relu": (_relu, _relu_grad),
    "leaky_relu": (_leaky, _leaky_grad),
    "tanh": (_tanh, _tanh_grad),
    "sigmoid": (_sigmoid, _sigmoid_grad),
    "identity": (_identity, _identity_grad),
}


class Activation(Layer):
    """Element-wise a = σ(z) with ∂L/∂z = σ'(z) ⊙ ∂L/∂a. No parameters."""

    name = "identity"

    def __init__(self, alpha=0.01):
        super().__init__()
        self.alpha = check_nonneg("alpha", alpha)
        self._f, self._df = ACTIVATIONS[self.name]

    def config(self):
        return {"alpha": self.alpha} if self.name == "leaky_relu" else {}

    unit_kind = "elementwise"

    def apply(self, z):
        """σ(z) as a pure function: no cache, any shape."""
        return self._f(z, self.alpha)

    def forward(self, x, train=True):
        a = self._f(x, self.alpha)
        self._cache = (x, a)
        return a

    def backward(self, dout, need_input_grad=True):
        z, a = self._cache
        return self._df(z, a, dout, self.alpha)


@register_layer
class ReLU(Activation):
    """σ(z) = max(z, 0), with σ'(0) = 0."""
    name = "relu"

    def __init__(self):
        super().__init__()


@register_layer
class LeakyReLU(Activation):
    """σ(z) = z for z > 0, αz otherwise."""
    name = "leaky_relu"


@register_layer
class Tanh(Activation):
    """σ(z) = tanh z, σ' = 1 − σ²."""
    name = "tanh"

    def __init__(self):
        super().__init__()


@register_layer
class Sigmoid(Activation):
    """σ(z) = 1/(1 + e^{−z}), σ' = σ(1 − σ)."""
    name = "sigmoid"

    def __init__(self):
        super().__init__()


def activation_layer(name, alpha=0.01):
    """Return a fresh activation layer for ``name`` in ``ACTIVATIONS`` (except 'identity')."""
    table = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
    check_choice("activation", name, set(table) | {"leaky_relu"})
    return LeakyReLU(alpha) if name == "leaky_relu" else table[name]()
