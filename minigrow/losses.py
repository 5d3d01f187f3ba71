"""Losses with fused, numerically stable gradients (mean reduction over the batch).

Each loss has ``forward(outputs, targets) -> float`` that caches what ``backward() -> ∂L/∂outputs`` needs, and
``per_sample(outputs, targets)`` returning the vector of per-sample losses ℓ_n (used by the pruning flip estimator
and by the bundle loss bound).
"""
from __future__ import annotations

import numpy as np

from .validate import check_array, check_labels

__all__ = ["SoftmaxCrossEntropy", "MSE", "log_softmax", "softmax", "get_loss"]


def log_softmax(z):
    """log softmax along the last axis, shifted by the row maximum: log p = (z − m) − log Σ exp(z − m)."""
    s = z - z.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def softmax(z):
    s = z - z.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


class SoftmaxCrossEntropy:
    r"""Mean softmax cross-entropy over integer labels.

    .. math::  L = \frac1N Σ_n \big( \log Σ_k e^{z_{nk}} − z_{n,y_n} \big),
               \qquad ∂L/∂z_n = \frac1N (\mathrm{softmax}(z_n) − e_{y_n})
    """

    name = "ce"

    def _check(self, z, y):
        # Cheap checks only: this runs at every step. Non-finite *outputs* are not an input error but a diverged
        # network: they give a NaN loss, which the Trainer turns into TrainingDiverged.
        if not isinstance(z, np.ndarray) or z.ndim != 2 or z.shape[0] == 0:
            z = check_array("outputs", z, ndim=2, finite=False)
        y = np.asarray(y)
        if y.dtype.kind not in "iu" or y.ndim != 1 or y.shape[0] != z.shape[0] or \
                (y.size and (y.min() < 0 or y.max() >= z.shape[1])):
            y = check_labels("targets", y, n_classes=z.shape[1], n=z.shape[0])
        return z, y

    def per_sample(self, z, y):
        """ℓ_n = −log softmax(z_n)[y_n]."""
        z, y = self._check(z, y)
        return -log_softmax(z)[np.arange(z.shape[0]), y]

    def forward(self, z, y):
        z, y = self._check(z, y)
        n = z.shape[0]
        s = z - z.max(axis=1, keepdims=True)          # shift by the row maximum m: no overflow in exp
        e = np.exp(s)
        sum_e = e.sum(axis=1, keepdims=True)
        self.p = e / sum_e                            # softmax, kept for backward
        self.y = y
        # ℓ_n = log Σ_k e^{z_nk} − z_{n,y_n} = log Σ_k e^{s_nk} − s_{n,y_n}
        return float(np.mean(np.log(sum_e[:, 0]) - s[np.arange(n), y]))

    def backward(self):
        n = self.p.shape[0]
        d = self.p                            # reuse the buffer: softmax(z) − e_y, scaled by 1/N
        d[np.arange(n), self.y] -= 1
        d *= 1.0 / n
        self.p = None
        return d


class MSE:
    r"""Mean squared error over all entries,  L = \frac{1}{NK} Σ_{n,k} (z_{nk} − t_{nk})²,  ∂L/∂z = 2(z − t)/(NK)."""

    name = "mse"

    def _check(self, z, t):
        z = check_array("outputs", z, ndim=2, finite=False)     # NaN outputs → NaN loss (see SoftmaxCrossEntropy)
        t = check_array("targets", t, dtype=z.dtype)
        if t.ndim == 1:
            t = t[:, None]
        if t.shape != z.shape:
            raise ValueError(f"targets: expected shape {z.shape} (same as the outputs), got {t.shape}")
        return z, t

    def per_sample(self, z, t):
        z, t = self._check(z, t)
        return ((z - t) ** 2).mean(axis=1)

    def forward(self, z, t):
        z, t = self._check(z, t)
        self.r = z - t
        return float((self.r ** 2).mean())

    def backward(self):
        r = self.r
        self.r = None
        return r * (2.0 / r.size)


def get_loss(loss):
    """``'ce'`` → SoftmaxCrossEntropy, ``'mse'`` → MSE; a loss object is returned as is."""
    if isinstance(loss, (SoftmaxCrossEntropy, MSE)) or (hasattr(loss, "forward") and hasattr(loss, "backward")):
        return loss
    table = {"ce": SoftmaxCrossEntropy, "cross_entropy": SoftmaxCrossEntropy, "mse": MSE}
    if loss not in table:
        raise ValueError(f"loss: expected one of {sorted(table)} or a loss object, got {loss!r}")
    return table[loss]()
