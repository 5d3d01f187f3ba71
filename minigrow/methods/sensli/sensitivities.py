"""The sensitivity pass: SensLI's scores of every candidate of a network, without training anything.

:func:`closed_form_sensitivities` evaluates the closed forms (S4)/(S5) of :mod:`.formulas` with one eval-mode
forward pass (:meth:`~minigrow.layers.Sequential.forward_all`) and one input-gradient backward pass per batch
over the *small* network; :func:`extended_sensitivities` is the oracle: every candidate inserted and frozen
(:func:`extended_network`), gradients by ordinary backprop.

Where the multiply-adds are counted, the convention is: forward F = ``model.macs()`` per sample, one training
step ≈ 3F per sample (forward, weight gradients, input gradients).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np

from ...layers import Activation, Dense
from ...losses import get_loss
from ...validate import check_array, check_int, check_Xy
from .candidates import candidates, insert_candidate
from .formulas import (identity_form_gradients, identity_form_signal, pass_average, residual_form_gradient,
                       scores_from_grads)

__all__ = ["Sensitivities", "closed_form_sensitivities", "extended_network", "extended_sensitivities",
           "check_data"]


@dataclass
class Sensitivities:
    """Result of one sensitivity pass.

    ``grads[p]`` = G_p (pass-averaged ∂L/∂V_p, or ∂L/∂W2 for residual candidates), ``bias_grads[p]`` (∂L/∂c_p;
    None for residual candidates), ``scores[p]`` = s_p (S6), ``free_score`` = s̄_free (only when requested),
    ``macs`` of the pass (total, all samples), ``seconds``.
    """

    candidates: list
    grads: list
    bias_grads: list
    scores: np.ndarray
    normalise: bool = False
    free_score: float | None = None
    n_batches: int = 0
    macs: int = 0
    seconds: float = 0.0

    def as_dict(self):
        return {"positions": [c.describe() for c in self.candidates], "scores": [float(s) for s in self.scores],
                "normalise": self.normalise, "free_score": self.free_score, "n_batches": self.n_batches,
                "macs": int(self.macs), "seconds": self.seconds}


def _input_grad(layer, dout):
    """∂L/∂(layer input) only — the input-gradient half of the layer's backward, without weight gradients."""
    if isinstance(layer, Dense):
        return dout @ layer.params["W"]                                       # ∂L/∂A = δ W
    return layer.backward(dout)          # activations: σ'(z) ⊙ dout (ReLU'(0) = 0); blocks: g + d_z W1


def _io_units(model):
    """(input units, output units) of the model (:attr:`Sequential.in_units`, ``out_units``; None if unknown)."""
    return model.in_units, model.out_units


def check_data(model, X, y, loss, dtype, xname="X", yname="y"):
    """X: finite, 2-d, as wide as the model's input, cast to ``dtype``; y: labels in [0, n_out) for the
    cross-entropy (one per row), else finite targets with one row per sample."""
    n_in, n_out = _io_units(model)
    if getattr(loss, "name", None) == "ce":
        return check_Xy(X, y, n_features=n_in, n_classes=n_out, dtype=dtype, xname=xname, yname=yname)
    X = check_array(xname, X, ndim=2, dtype=dtype)
    if n_in is not None and X.shape[1] != n_in:
        raise ValueError(f"{xname}: expected {n_in} features per sample, got {X.shape[1]}")
    y = check_array(yname, y, dtype=X.dtype)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{yname}: expected {X.shape[0]} targets (one per sample), got {y.shape[0]}")
    return X, y


def _batches(n, batch_size):
    bs = n if batch_size is None else check_int("batch_size", batch_size, lo=1)
    return [slice(s, min(s + bs, n)) for s in range(0, n, bs)]


def closed_form_sensitivities(model, X, y, loss="ce", batch_size=None, form="auto", normalise=False,
                              free_score=False):
    """SensLI scores of every candidate by the closed forms (S4)/(S5), averaged over batches then squared (S6).

    One forward pass and one backward pass per batch over the *small* network; backward only propagates the
    input gradients (no weight gradients are formed) and stops at the earliest candidate position, so the pass
    costs about as much as one ordinary epoch of gradient computation. Nothing is updated.

    Identity form (S4):  G_l += δ_lᵀ a_l  per batch (δ already carries the 1/N of the mean loss), with a_l the
    output of the hidden layer's last elementwise layer and δ_l = ∂L/∂a_l ⊙ 1[a_l > 0] — right after a ReLU, the
    ReLU layer's own backward ∂L/∂z_l.
    Residual form (S5):  G_l += g_lᵀ σ(0.8 h_l),  g_l = ∂L/∂h arriving at that point of the stream.

    ``free_score=True`` also computes s̄_free for the 'threshold' mode (S7); this needs the weight gradients of
    the existing layers, i.e. an ordinary full backward.

    ``X`` (finite, 2-d, as wide as the model's input) and ``y`` (labels in [0, n_out) for the cross-entropy) are
    checked at entry; a ValueError names the one that is wrong.
    """
    t0 = time.perf_counter()
    loss = get_loss(loss)
    cands = candidates(model, form)
    X, y = check_data(model, X, y, loss, model.dtype)
    at = {c.after: c for c in cands}
    first = min(at)
    n = X.shape[0]
    G = [np.zeros(c.weight_shape, dtype=np.float64) for c in cands]
    Gb = [np.zeros(c.width, dtype=np.float64) if c.form == "identity" else None for c in cands]
    free = {}
    sl = _batches(n, batch_size)
    layers = model.layers
    F = model.macs()
    macs = 0
    for s in sl:
        xb, yb = X[s], y[s]
        nb = xb.shape[0]
        outs = model.forward_all(xb, train=False)  # eval mode: the pass updates nothing
        loss.forward(outs[-1], yb)
        dout = loss.backward()
        macs += nb * F
        stop = 0 if free_score else first
        for i in range(len(layers) - 1, stop - 1, -1):
            layer = layers[i]
            c = at.get(i)
            if c is not None:
                a = outs[i + 1]                         # a_l (identity form) or h_l (residual form)
                if c.form == "identity":
                    relu_here = isinstance(layer, Activation) and layer.name == "relu"
                    # dout = ∂L/∂a_l here; δ_l = ∂L/∂a_l ⊙ 1[a_l > 0]. Right after the ReLU this is the ReLU
                    # layer's own backward (∂L/∂z_l), which the pass needs anyway.
                    delta = layer.backward(dout) if relu_here else identity_form_signal(dout, a)
                    gV, gc = identity_form_gradients(delta, a)                  # (S4) δ_lᵀ a_l, Σ_n δ_l,n
                    G[c.position] += gV
                    Gb[c.position] += gc
                    macs += nb * c.width * c.width
                    if relu_here:
                        dout = delta
                        continue
                else:
                    G[c.position] += residual_form_gradient(dout, a, c.activation)  # (S5) gᵀ σ(0.8 h)
                    macs += nb * c.width * c.width
            if free_score:
                dout = layer.backward(dout, need_input_grad=i > 0)
                for k, g in layer.grads.items():
                    if k.startswith("W") and k not in layer.frozen:
                        free.setdefault((i, k), np.zeros(g.shape, dtype=np.float64))
                        free[(i, k)] += g
                macs += nb * layer.macs() * (2 if i > 0 else 1)
            elif i > first:
                dout = _input_grad(layer, dout)
                macs += nb * layer.macs()
    B = len(sl)
    G = [pass_average(g, B) for g in G]                                          # (S6)
    Gb = [None if g is None else pass_average(g, B) for g in Gb]
    scores = scores_from_grads(G, normalise)
    fs = None
    if free_score:
        fs = float(np.mean(scores_from_grads([pass_average(g, B) for g in free.values()], normalise))) \
            if free else 0.0
    return Sensitivities(cands, G, Gb, scores, bool(normalise), fs, B, macs, time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------------------------
# The extended network: all candidates inserted and frozen, gradients by ordinary backprop (the oracle)
# ----------------------------------------------------------------------------------------------------------------

def extended_network(model, form="auto"):
    """A copy of ``model`` with every candidate inserted at its initial values and frozen.

    Returns ``(extended, cands, index)``: ``index[p]`` is the position in ``extended.layers`` of the layer that
    holds candidate p's weight (V_p in a Dense, or W2 in a ResidualBlock). The extended network computes the
    same function as ``model`` (bit-identical).
    """
    cands = candidates(model, form)
    ext = copy.deepcopy(model)
    index = {}
    for c in sorted(cands, key=lambda c: c.after, reverse=True):     # back to front keeps indices valid
        insert_candidate(ext, c)
    shift = 0
    for c in cands:                                                  # front to back: where each one ended up
        index[c.position] = c.after + 1 + shift
        shift += 2 if c.form == "identity" else 1
    for p, i in index.items():
        layer = ext.layers[i]
        layer.frozen = set(layer.params)
    return ext, cands, index


def extended_sensitivities(model, X, y, loss="ce", batch_size=None, form="auto", normalise=False):
    """The same G_p and s_p as :func:`closed_form_sensitivities`, by ordinary backprop through the extended
    network (every parameter's gradient is formed; candidates frozen, nothing updated). Slower; the oracle."""
    t0 = time.perf_counter()
    loss = get_loss(loss)
    ext, cands, index = extended_network(model, form)
    X, y = check_data(model, X, y, loss, model.dtype)
    wname = {c.position: ("W" if c.form == "identity" else "W2") for c in cands}
    G = [np.zeros(c.weight_shape, dtype=np.float64) for c in cands]
    Gb = [np.zeros(c.width, dtype=np.float64) if c.form == "identity" else None for c in cands]
    sl = _batches(X.shape[0], batch_size)
    F = ext.macs()
    macs = 0
    for s in sl:
        loss.forward(ext.forward(X[s], train=False), y[s])       # eval mode: updates nothing
        ext.backward(loss.backward(), need_input_grad=False)
        macs += 3 * F * (s.stop - s.start)
        for c in cands:
            layer = ext.layers[index[c.position]]
            G[c.position] += layer.grads[wname[c.position]]
            if Gb[c.position] is not None:
                Gb[c.position] += layer.grads["b"]
    B = len(sl)
    G = [g / B for g in G]
    Gb = [None if g is None else g / B for g in Gb]
    return Sensitivities(cands, G, Gb, scores_from_grads(G, normalise), bool(normalise), None, B, macs,
                         time.perf_counter() - t0)
