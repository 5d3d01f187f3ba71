"""The dense residual block  h ↦ h + W2 σ(W1 h + b1)."""
from __future__ import annotations

import numpy as np

from ..initializers import init_dense
from ..validate import check_choice, check_int, check_rng
from .activations import ACTIVATIONS
from .base import Layer, register_layer

__all__ = ["ResidualBlock"]


@register_layer
class ResidualBlock(Layer):
    r"""Residual block  h ↦ h + W2 σ(W1 h + b1)  (W2 without bias, as in the SensLI ResNets, "res2").

    Forward:  z = W1 h + b1,  s = σ(z),  out = h + W2 s.
    Backward, for g = ∂L/∂out:

    .. math::
        ∂L/∂W2 = gᵀ s,\quad d_z = σ'(z) ⊙ (g W2),\quad ∂L/∂W1 = d_zᵀ h,\quad ∂L/∂b1 = Σ_n d_z,
        \quad ∂L/∂h = g + d_z W1
    """

    def __init__(self, width, hidden=None, activation="tanh", init="torch", rng=None, dtype=np.float32,
                 alpha=0.01):
        super().__init__()
        self.width = check_int("width", width, lo=1)
        self.hidden = self.width if hidden is None else check_int("hidden", hidden, lo=1)
        self.activation = check_choice("activation", activation, set(ACTIVATIONS))
        self.alpha = float(alpha)
        self.init = init
        self._f, self._df = ACTIVATIONS[self.activation]
        rng = check_rng("rng", 0 if rng is None else rng)
        W1, b1 = init_dense(self.width, self.hidden, init, rng, dtype)
        W2, _ = init_dense(self.hidden, self.width, init, rng, dtype)
        self.params.update(W1=W1, b1=b1, W2=W2)
        self._init_grads()

    input_ndim = 2          # (batch, features)

    def config(self):
        return {"width": self.width, "hidden": self.hidden, "activation": self.activation, "init": self.init,
                "alpha": self.alpha}

    @property
    def in_units(self):
        return self.width

    @property
    def out_units(self):
        return self.width

    def _check(self, x):
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"ResidualBlock({self.width}): expected input of shape (batch, {self.width}), "
                             f"got {x.shape}")

    def pre_activation(self, h):
        """z = W1 h + b1 (pure, no cache)."""
        self._check(h)
        z = h @ self.params["W1"].T
        z += self.params["b1"]
        return z

    def branch(self, h):
        """The residual branch W2 σ(W1 h + b1) alone (pure, no cache): the block's output is ``h + branch(h)``."""
        return self._f(self.pre_activation(h), self.alpha) @ self.params["W2"].T

    def forward(self, x, train=True):
        p = self.params
        z = self.pre_activation(x)                                   # z = W1 h + b1
        s = self._f(z, self.alpha)                                   # s = σ(z)
        out = s @ p["W2"].T                                          # out = h + W2 s
        out += x
        self._cache = (x, z, s)
        return out

    def backward(self, dout, need_input_grad=True):
        p, g = self.params, self.grads
        h, z, s = self._cache
        np.matmul(dout.T, s, out=g["W2"])                             # ∂L/∂W2 = gᵀ s
        dz = self._df(z, s, dout @ p["W2"], self.alpha)               # d_z = σ'(z) ⊙ (g W2)
        np.matmul(dz.T, h, out=g["W1"])                               # ∂L/∂W1 = d_zᵀ h
        np.sum(dz, axis=0, out=g["b1"])                               # ∂L/∂b1 = Σ_n d_z
        return dout + dz @ p["W1"] if need_input_grad else None      # ∂L/∂h = g + d_z W1

    def macs(self):
        return 2 * self.width * self.hidden
