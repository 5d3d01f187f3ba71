"""The affine layer  z = W a + b."""
from __future__ import annotations

import numpy as np

from ..initializers import init_dense
from ..validate import check_choice, check_int, check_rng
from .base import Layer, check_keep, register_layer

__all__ = ["Dense"]


@register_layer
class Dense(Layer):
    r"""Affine layer  z = W a + b,  batch form  Z = A Wᵀ + b.

    Backward, for upstream δ = ∂L/∂Z (one row per sample):

    .. math::  ∂L/∂W = δᵀ A,\qquad ∂L/∂b = Σ_n δ_n,\qquad ∂L/∂A = δ W

    (``W`` has shape ``(out_features, in_features)``: output unit j is row j of W and entry j of b, input unit i is
    column i of W.)
    """

    unit_kind = "affine"

    def __init__(self, in_features, out_features, init="torch", rng=None, dtype=np.float32, bias=True,
                 scale=1.0):
        super().__init__()
        self.in_features = check_int("in_features", in_features, lo=1)
        self.out_features = check_int("out_features", out_features, lo=1)
        self.init = init
        self.bias = bool(check_choice("bias", bias, {True, False}))
        self.scale = float(scale)
        rng = check_rng("rng", 0 if rng is None else rng)
        W, b = init_dense(self.in_features, self.out_features, init, rng, dtype, scale)
        self.params["W"] = W
        if self.bias:
            self.params["b"] = b
        self._init_grads()

    input_ndim = 2          # (batch, features)

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "init": self.init,
                "bias": self.bias, "scale": self.scale}

    @property
    def in_units(self):
        return self.in_features

    @property
    def out_units(self):
        return self.out_features

    def forward(self, x, train=True):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Dense({self.in_features}→{self.out_features}): expected input of shape "
                             f"(batch, {self.in_features}), got {x.shape}")
        self._cache = x
        z = x @ self.params["W"].T                            # Z = A Wᵀ + b
        if self.bias:
            z += self.params["b"]
        return z

    def backward(self, dout, need_input_grad=True):
        x = self._cache
        np.matmul(dout.T, x, out=self.grads["W"])             # ∂L/∂W = δᵀ A
        if self.bias:
            np.sum(dout, axis=0, out=self.grads["b"])         # ∂L/∂b = Σ_n δ_n
        return dout @ self.params["W"] if need_input_grad else None   # ∂L/∂A = δ W

    def sample_grad_sq_norms(self, x, dout):
        r"""Σ over this layer's parameters of (∂ℓ_n/∂θ)² for every sample n (shape (N,), float64), from its input
        ``x`` (N, D) and the per-sample output gradients ``dout`` (N, F) = ∂ℓ_n/∂z_n (not divided by N).
        ∂ℓ_n/∂W = δ_n x_nᵀ has ‖·‖² = ‖δ_n‖² ‖x_n‖² and ∂ℓ_n/∂b = δ_n, so no per-sample matrix is formed. Pure: uses
        no cache (for the empirical Fisher of :mod:`minigrow.fisher`)."""
        d2 = np.einsum("nf,nf->n", dout, dout).astype(np.float64)
        x2 = np.einsum("nd,nd->n", x, x).astype(np.float64)
        return d2 * (x2 + (1.0 if self.bias else 0.0))

    def macs(self):
        return self.in_features * self.out_features

    def out_axes(self):
        return {"W": 0, "b": 0} if self.bias else {"W": 0}

    def in_axes(self):
        return {"W": 1}

    def remove_outputs(self, keep):
        """Keep output units ``keep`` (rows of W, entries of b) — with their gradients and optimiser state."""
        keep = check_keep("keep", keep, self.out_features)
        for name, axis in self.out_axes().items():
            self.slice_param(name, axis, keep)
        self.out_features = int(self.params["W"].shape[0])

    def remove_inputs(self, keep):
        """Keep input units ``keep`` (columns of W)."""
        keep = check_keep("keep", keep, self.in_features)
        self.slice_param("W", 1, keep)
        self.in_features = int(self.params["W"].shape[1])
