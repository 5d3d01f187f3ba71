"""Exercise "softmax_ce": the mean softmax cross-entropy and its gradient, in one function.

For logits z of shape (N, K) and integer labels y:

    L = (1/N) Σ_n ( log Σ_k exp(z_nk) − z_{n,y_n} )         ∂L/∂z = (softmax(z) − onehot(y)) / N

Numerically: subtract each row's maximum before exp (log-sum-exp), or large logits overflow.
Grade it:  python -m minigrow grade softmax_ce.py
"""
import numpy as np

EXERCISE = "softmax_ce"


def softmax_cross_entropy(z, y):
    """Return (L, ∂L/∂z)."""
    # TODO
    raise NotImplementedError("TODO: softmax_cross_entropy")
