"""Exercise "batchnorm": batch normalisation of (N, F) inputs, training and eval mode.

Training mode, per feature over the batch (M = N values):
    μ = mean x,  σ² = mean (x − μ)²  (biased),  σ = √(σ² + ε),  x̂ = (x − μ)/σ,  y = γ x̂ + β
and the running statistics, as in PyTorch (m = momentum = 0.1; the running variance takes the UNBIASED σ²·M/(M−1)):
    running_mean ← (1 − m)·running_mean + m·μ          running_var ← (1 − m)·running_var + m·σ²·M/(M − 1)
Backward (training), g = ∂L/∂y:
    ∂L/∂β = Σ g,   ∂L/∂γ = Σ g x̂,   ∂L/∂x = (γ/σ)/M · (M g − Σ g − x̂ Σ g x̂)
Eval mode (train=False): y = γ (x − running_mean)/√(running_var + ε) + β, updating NOTHING; ∂L/∂x = γ/σ_r · g.
Grade it:  python -m minigrow grade batchnorm.py
"""
import numpy as np

from minigrow.layers import Layer

EXERCISE = "batchnorm"


class BatchNorm1d(Layer):
    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.params["gamma"] = np.ones(num_features)
        self.params["beta"] = np.zeros(num_features)
        self.buffers["running_mean"] = np.zeros(num_features)
        self.buffers["running_var"] = np.ones(num_features)
        self._init_grads()

    def forward(self, x, train=True):
        raise NotImplementedError("TODO: BatchNorm1d.forward (training and eval mode)")

    def backward(self, dout, need_input_grad=True):
        raise NotImplementedError("TODO: BatchNorm1d.backward (training and eval mode)")
