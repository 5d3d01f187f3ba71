r"""The empirical Fisher information of each weight layer, from per-sample gradients (core; knows no method).

For the per-sample losses ℓ_n of a batch and the parameters θ of weight layer q (its W and b)::

    F_q = (1/P_q) Σ_{w ∈ layer q} (1/N) Σ_n (∂ℓ_n/∂w)²        (mean of the diagonal of the empirical Fisher)

Per-sample gradients are never stored: each affine layer returns Σ_w (∂ℓ_n/∂w)² from its input and its per-sample
output gradient (``Dense.sample_grad_sq_norms``: ‖δ_n‖²(‖x_n‖² + 1); ``Conv2D.sample_grad_sq_norms``: one batched
product). One forward pass in eval mode (no buffer or RNG is touched: BatchNorm uses its running statistics, dropout
is off, a pruning gate multiplies by its mean θ) and one backward pass; the layers' gradients are overwritten, so
call it before (not between) a training step's forward and backward passes.

Used by the pruning method for its Fisher-balanced price (:mod:`minigrow.methods.pruning.formulas`,
``price_balance="fisher"``); useful on its own, e.g. to see which layers the data pin down.
"""
from __future__ import annotations

import numpy as np

from .layers.sequential import Sequential
from .losses import get_loss

__all__ = ["affine_layers", "sample_grad_sq_norms", "mean_fisher"]


def _chain(model):
    """The layers of ``model`` in the order they run (nested Sequentials expanded); composite layers are refused."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a minigrow Sequential, got {type(model).__name__}")
    chain = []
    for _, layer in model.named_layers():                # depth first: a composite comes before its sub-layers
        if isinstance(layer, Sequential):
            continue
        if list(layer.children()) or layer.unit_kind == "opaque":
            raise ValueError(f"mean_fisher: {type(layer).__name__} is a composite layer (e.g. a residual block); "
                             f"only chains of plain layers (nested Sequentials allowed) are supported")
        chain.append(layer)
    return chain


def affine_layers(model):
    """The affine layers (``unit_kind == 'affine'``: Dense, Conv2D) of ``model`` in the order they run."""
    return [layer for layer in _chain(model) if layer.unit_kind == "affine"]


def sample_grad_sq_norms(model, loss, X, y):
    r"""One (N,) array per affine layer of ``model`` (in order): Σ_{w ∈ layer} (∂ℓ_n/∂w)² for every sample n of
    ``(X, y)``, ℓ_n the per-sample loss (``loss``: a name or a loss object, as for :class:`minigrow.train.Trainer`)."""
    chain = _chain(model)
    loss = get_loss(loss)
    x = X
    inputs = []
    for layer in chain:
        inputs.append(x)
        x = layer.forward(x, train=False)
    loss.forward(x, y)
    d = loss.backward() * x.shape[0]                      # ∂ℓ_n/∂out_n (the loss's gradient is of the batch mean)
    out = []
    first = next(i for i, layer in enumerate(chain) if layer.unit_kind == "affine") if any(
        layer.unit_kind == "affine" for layer in chain) else len(chain)
    for i in range(len(chain) - 1, first - 1, -1):        # back to the first affine layer, no further
        layer = chain[i]
        if layer.unit_kind == "affine":
            out.append(layer.sample_grad_sq_norms(inputs[i], d))
        if i > first:
            d = layer.backward(d, need_input_grad=True)
    return out[::-1]


def mean_fisher(model, loss, X, y):
    """F_q for every affine layer (a list of floats, in order): the mean over its parameters of the diagonal of the
    empirical Fisher, (1/P_q) mean_n Σ_w (∂ℓ_n/∂w)², on the samples ``(X, y)``."""
    norms = sample_grad_sq_norms(model, loss, X, y)
    layers = affine_layers(model)
    return [float(np.mean(s)) / sum(p.size for p in layer.params.values()) for s, layer in zip(norms, layers)]
