"""Exercise "relu": a = max(z, 0).

Backward: ∂L/∂z = 1[z > 0] ⊙ ∂L/∂a — with the convention ReLU'(0) = 0 (SensLI relies on it). No parameters.
Works for inputs of any shape (dense (N, F) and images (N, C, H, W)).
Grade it:  python -m minigrow grade relu.py
"""
import numpy as np

from minigrow.layers import Layer

EXERCISE = "relu"


class ReLU(Layer):
    def forward(self, x, train=True):
        # TODO: a = max(z, 0); keep what backward needs in self._cache (do not modify x in place)
        raise NotImplementedError("TODO: ReLU.forward")

    def backward(self, dout, need_input_grad=True):
        # TODO: return 1[z > 0] ⊙ dout
        raise NotImplementedError("TODO: ReLU.backward")
