"""Gradient check of BatchNorm2d in training and eval mode, and the two identities of its input gradient
(docs/derivations/batchnorm.md). Run from the repository root:

    PYTHONPATH=$PWD python docs/derivations/batchnorm_check.py
"""
import numpy as np
from minigrow.gradcheck import check_layer
from minigrow.layers import BatchNorm2d
rng = np.random.default_rng(0)
bn = BatchNorm2d(3, dtype=np.float64)
bn.params["gamma"] = rng.uniform(0.5, 1.5, 3)
bn.params["beta"] = rng.standard_normal(3)
bn.buffers["running_mean"] = rng.standard_normal(3)
bn.buffers["running_var"] = rng.uniform(0.5, 2.0, 3)
x = rng.standard_normal((4, 3, 3, 3))
print("train mode"); print(check_layer(bn, x, train=True))
print("eval mode"); print(check_layer(bn, x, train=False))
# the two identities of the training-mode input gradient
bn.forward(x, train=True)
g = rng.standard_normal(x.shape)
dx = bn.backward(g)
xhat = (x - x.mean((0, 2, 3), keepdims=True)) / np.sqrt(x.var((0, 2, 3), keepdims=True) + bn.eps)
print("max_c |Σ dx|       =", np.abs(dx.sum((0, 2, 3))).max())
print("max_c |Σ x̂ dx|     =", np.abs((xhat * dx).sum((0, 2, 3))).max())
sigma = np.sqrt(x.var((0, 2, 3)) + bn.eps)
pred = bn.params["gamma"] / sigma * bn.eps / sigma**2 * (g * xhat).sum((0, 2, 3))
print("max_c |Σ x̂ dx − (γ/σ)(ε/σ²) Σ g x̂| =", np.abs((xhat * dx).sum((0, 2, 3)) - pred).max())
