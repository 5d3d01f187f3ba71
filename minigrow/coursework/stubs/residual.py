"""Exercise "residual": the residual block  h ↦ h + W2 tanh(W1 h + b1)  (W2 without bias).

Shapes: W1 (hidden, width), b1 (hidden,), W2 (width, hidden). Forward: z = W1 h + b1, s = tanh z, out = h + W2 s.
Backward for g = ∂L/∂out:

    ∂L/∂W2 = gᵀ s      d_z = (1 − s²) ⊙ (g W2)      ∂L/∂W1 = d_zᵀ h      ∂L/∂b1 = Σ_n d_z      ∂L/∂h = g + d_z W1

(the "g +" is the skip connection: the gradient flows through the identity unchanged).
Grade it:  python -m minigrow grade residual.py
"""
import numpy as np

from minigrow.layers import Layer

EXERCISE = "residual"


class ResidualBlock(Layer):
    def __init__(self, width, hidden):
        super().__init__()
        rng = np.random.default_rng(0)
        self.params["W1"] = rng.standard_normal((hidden, width)) / np.sqrt(width)
        self.params["b1"] = np.zeros(hidden)
        self.params["W2"] = rng.standard_normal((width, hidden)) / np.sqrt(hidden)
        self._init_grads()

    def forward(self, x, train=True):
        raise NotImplementedError("TODO: ResidualBlock.forward")

    def backward(self, dout, need_input_grad=True):
        raise NotImplementedError("TODO: ResidualBlock.backward")
