"""Optimisers and a learning-rate schedule.

The update rules are pure per-parameter functions, CS231n style: ``rule(w, dw, state, hyper-parameters)``
updates ``w`` in place and keeps whatever it needs in the dict ``state``. The optimiser objects only walk the
network and hand each parameter its own state dict, which lives on the layer (``layer.state[name]``). That is
what makes structural edits safe:

* a newly inserted layer has empty state, so it starts fresh (Adam's step count t = 0 for it alone);
* a removed layer takes its state with it;
* removing units slices the state arrays like the parameter (``Layer.slice_param``).
"""
from __future__ import annotations

import math

import numpy as np

from .validate import check_int, check_nonneg, check_positive, check_prob

__all__ = ["sgd_update", "adam_update", "SGD", "Adam", "StepLR", "get_optimizer"]


def sgd_update(w, dw, state, lr, momentum=0.0, weight_decay=0.0, buf=None):
    r"""SGD with optional (heavy-ball, PyTorch-style) momentum and L2 weight decay.

    .. math::  g = ∇w + λ w,\quad v ← μ v + g \;(v_0 = g),\quad w ← w − η v   \qquad (μ = 0:\; w ← w − η g)

    ``buf`` is an optional scratch array shaped like ``w`` (the optimiser passes one so that a step allocates no
    temporaries); its content is irrelevant and is overwritten.
    """
    g = dw if weight_decay == 0 else dw + weight_decay * w
    if momentum:
        v = state.get("v")
        if v is None:
            v = state["v"] = np.array(g, copy=True)
        else:
            v *= momentum
            v += g
        g = v
    buf = np.empty_like(w) if buf is None else buf
    w -= np.multiply(g, lr, out=buf)                        # w ← w − η g


def adam_update(w, dw, state, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, buf=None):
    r"""Adam (Kingma & Ba 2015, Algorithm 1) with PyTorch's coupled L2 weight decay.

    .. math::
        g = ∇w + λw,\quad m ← β_1 m + (1−β_1) g,\quad v ← β_2 v + (1−β_2) g²,\quad t ← t + 1,\\
        w ← w − η \frac{\hat m}{\sqrt{\hat v} + ε},\qquad \hat m = \frac{m}{1−β_1^t},\; \hat v = \frac{v}{1−β_2^t}

    The last line is evaluated in the paper's "more efficient order" (end of its §2):
    :math:`w ← w − η_t\, m / (\sqrt v + \hat ε)` with :math:`η_t = η\sqrt{1−β_2^t}/(1−β_1^t)` and
    :math:`\hat ε = ε\sqrt{1−β_2^t}` — algebraically identical to the line above (and to PyTorch's Adam).
    ``buf`` is an optional scratch array shaped like ``w``: with it a step allocates no temporaries (without weight
    decay), which matters more than one would think — every large temporary costs page faults.
    """
    g = dw if weight_decay == 0 else dw + weight_decay * w
    if "m" not in state:
        state["m"] = np.zeros_like(w)
        state["v"] = np.zeros_like(w)
        state["t"] = 0
    m, v = state["m"], state["v"]
    state["t"] += 1
    t = state["t"]
    buf = np.empty_like(w) if buf is None else buf
    m *= beta1                                              # m ← β1 m + (1 − β1) g
    m += np.multiply(g, 1 - beta1, out=buf)
    v *= beta2                                              # v ← β2 v + (1 − β2) g²
    np.multiply(g, g, out=buf)
    buf *= 1 - beta2
    v += buf
    c2 = math.sqrt(1 - beta2 ** t)
    eta_t = lr * c2 / (1 - beta1 ** t)                      # η_t = η √(1 − β2^t) / (1 − β1^t)
    np.sqrt(v, out=buf)                                     # √v + ε̂,  ε̂ = ε √(1 − β2^t)
    buf += eps * c2
    np.divide(m, buf, out=buf)                              # w ← w − η_t m / (√v + ε̂)
    buf *= eta_t
    w -= buf


class Optimizer:
    """Walks ``model.parameters()`` and applies ``self.rule`` to each non-frozen parameter."""

    rule = None
    name = "optimizer"

    def __init__(self, lr):
        self.lr = check_positive("lr", lr)
        self._scratch = {}       # (shape, dtype) -> scratch array handed to the rule; never saved

    def _buffer(self, w):
        key = (w.shape, w.dtype.str)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = np.empty_like(w)
        return buf

    def hyper(self) -> dict:
        return {}

    def step(self, model):
        hyper = self.hyper()
        lr = float(self.lr)      # a NumPy float64 lr would upcast float32 updates
        for layer, name in model.parameters():
            if name in layer.frozen:
                continue
            state = layer.state.get(name)
            if state is None:
                state = layer.state[name] = {}
            w = layer.params[name]
            type(self).rule(w, layer.grads[name], state, lr, buf=self._buffer(w), **hyper)

    @staticmethod
    def reset_state(model):
        """Forget all optimiser state (a "fresh optimiser", as SensLI uses at every phase)."""
        for layer, name in model.parameters():
            layer.state.pop(name, None)

    def config(self) -> dict:
        return {"name": self.name, "lr": self.lr, **self.hyper()}


class SGD(Optimizer):
    """Stochastic gradient descent, optional momentum μ and L2 weight decay λ (:func:`sgd_update`)."""

    rule = staticmethod(sgd_update)
    name = "sgd"

    def __init__(self, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(lr)
        self.momentum = check_prob("momentum", momentum, open_right=True)
        self.weight_decay = check_nonneg("weight_decay", weight_decay)

    def hyper(self):
        return {"momentum": self.momentum, "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam with optional coupled L2 weight decay (:func:`adam_update`)."""

    rule = staticmethod(adam_update)
    name = "adam"

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        self.beta1 = check_prob("beta1", beta1, open_right=True)
        self.beta2 = check_prob("beta2", beta2, open_right=True)
        self.eps = check_positive("eps", eps)
        self.weight_decay = check_nonneg("weight_decay", weight_decay)

    def hyper(self):
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps, "weight_decay": self.weight_decay}


def get_optimizer(config):
    """Rebuild an optimiser from ``Optimizer.config()``."""
    cfg = dict(config)
    name = cfg.pop("name", None)
    table = {"sgd": SGD, "adam": Adam}
    if name not in table:
        raise ValueError(f"optimizer: expected one of {sorted(table)}, got {name!r}")
    return table[name](**cfg)


class StepLR:
    """η_e = η_0 · γ^{⌊e / step_size⌋}: multiply the learning rate by γ every ``step_size`` epochs.

    Call :meth:`step` once at the end of every epoch (as in PyTorch).
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.optimizer = optimizer
        self.step_size = check_int("step_size", step_size, lo=1)
        self.gamma = check_positive("gamma", gamma)
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def step(self):
        self.last_epoch += 1
        self.optimizer.lr = self.base_lr * self.gamma ** (self.last_epoch // self.step_size)

    def config(self):
        return {"step_size": self.step_size, "gamma": self.gamma, "base_lr": self.base_lr,
                "last_epoch": self.last_epoch}
