"""Exercise "dense": the affine layer  z = W a + b.

Batch form, one row per sample:  Z = A Wᵀ + b, with W of shape (out_features, in_features) and b of shape
(out_features,). For the upstream gradient δ = ∂L/∂Z (same shape as Z):

    ∂L/∂W = δᵀ A            ∂L/∂b = Σ_n δ_n            ∂L/∂A = δ W

Rules of the layer contract (minigrow/layers/base.py): keep what backward needs in self._cache; backward must
OVERWRITE self.grads[...] (never add to them) and return ∂L/∂A; never modify x or dout in place.
Grade it:  python -m minigrow grade dense.py
"""
import numpy as np

from minigrow.layers import Layer

EXERCISE = "dense"


class Dense(Layer):
    def __init__(self, in_features, out_features):
        super().__init__()
        rng = np.random.default_rng(0)
        self.params["W"] = rng.standard_normal((out_features, in_features)) / np.sqrt(in_features)
        self.params["b"] = np.zeros(out_features)
        self._init_grads()

    def forward(self, x, train=True):
        # TODO: Z = A Wᵀ + b; keep A for backward in self._cache
        raise NotImplementedError("TODO: Dense.forward")

    def backward(self, dout, need_input_grad=True):
        # TODO: self.grads["W"][...] = …, self.grads["b"][...] = …; return ∂L/∂A
        raise NotImplementedError("TODO: Dense.backward")
