r"""Sensitivity-based layer insertion (SensLI) for ReLU feed-forward and residual networks.

Kreis, Herberg, Köhne, Schiela, Herzog, "Sensitivity-Based Layer Insertion for Residual and Feedforward Neural
Networks", arXiv 2311.15995 (2023; v2 2025 "SensLI"). Method note: ``docs/methods/sensli.md``; tutorial
``tutorials/01_sensli.py``. Everything below was written from the method note (which was worked out from the
abstract and the authors' code; the paper body was not available) — the closed forms (eqs. S4, S5) are *derived*
there and checked numerically here against the explicit extended network, not quoted from the paper.

The idea in equations (same symbols as the tutorial)
----------------------------------------------------
(S1) Virtual parameters ϑ extend the network so that the function is unchanged at ϑ = ϑ₀. Training the small
     network is the constrained problem

         min_{θ, ϑ} L(θ, ϑ)   subject to   ϑ = ϑ₀ .

(S2) Lagrangian  𝓛(θ, ϑ, λ) = L(θ, ϑ) + λᵀ(ϑ − ϑ₀).  Stationarity in ϑ at the current point gives the multiplier

         λ = −∇_ϑ L(θ, ϑ₀),

     the shadow price of the constraint: ‖λ‖ is the first-order rate at which the loss could fall if the
     constraint were released. SensLI inserts the candidate with the largest ‖λ_p‖.

(S3) Candidates ("virtual layers"):

     * identity form, after every hidden ReLU layer l of an FNN:  ã_l = σ(V_l a_l + c_l),  V_l = I, c_l = 0.
       Function preserving because σ(σ(z)) = σ(z) for ReLU; *not* for LeakyReLU or tanh (refused here).
     * residual form, at every residual position (after the input layer and after every block):
       h ↦ h + W2 σ(W1 h + b1) with W1 = 0.8·I, b1 = 0, W2 = 0. Function preserving for any σ.

(S4) Closed form for the identity form (ReLU, convention ReLU'(0) = 0):

         ∂L/∂V_l = mean_n δ_{l,n} a_{l,n}ᵀ ,     ∂L/∂c_l = mean_n δ_{l,n} ,

     δ_l = ∂L/∂z_l the ordinary backprop signal at the pre-activation z_l of the *small* network. (At V = I the
     inactive units of the virtual layer sit exactly at the kink 0, and ReLU'(0) = 0 gives δ̃_l = δ_l.)

(S5) Closed form for the residual form (W2 = 0 makes the gradients of W1 and b1 vanish):

         ∂L/∂W2 = mean_n g_{l,n} σ(0.8 h_{l,n})ᵀ ,

     g_l = ∂L/∂h at that point of the residual stream of the small network.

(S6) Score of position p, with the gradients averaged over the B minibatches of ONE pass first, then squared:

         G_p = (1/B) Σ_b ∇_{V_p} L_b ,     s_p = ‖G_p‖_F²      (optionally s_p / numel(V_p)).

     Only the weights enter (biases ignored). The pass updates nothing.

(S7) Selection: 'abs_max' (SensLI: first argmax), 'abs_min' (control: first argmin), 'fixed' (a given position),
     'threshold' (insert argmax only if max_p s_p > τ · s̄_free, where s̄_free is the mean, over the free (not
     frozen) weight matrices W of the current network, of the same score applied to their own pass-averaged
     gradients, ‖Ḡ_W‖_F² (or ‖Ḡ_W‖_F²/numel W when normalising). This definition is ours: the authors' FNN version
     of the threshold mode is buggy, see sensli.md §4.)

Where the multiply-adds are counted, the convention is: forward F = ``model.macs()`` per sample, one training
step ≈ 3F per sample (forward, weight gradients, input gradients).
"""
from __future__ import annotations

import copy
import json
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .layers import Activation, Dense, ReLU, ResidualBlock, Sequential, activation_layer, ACTIVATIONS
from .losses import get_loss
from .optim import SGD, Adam, Optimizer, StepLR
from .train import Trainer, evaluate, iterate_minibatches
from .validate import (check_array, check_callable, check_choice, check_int, check_model, check_nonneg,
                       check_positive, check_rng, check_Xy)

__all__ = [
    "Candidate", "Sensitivities", "candidates", "identity_layers", "residual_candidate_block",
    "closed_form_sensitivities", "extended_network", "extended_sensitivities", "scores_from_grads", "select",
    "insert_candidate", "InsertionRun", "InsertionSchedule", "sensli_train", "train_macs_per_sample",
    "RESIDUAL_W1_SCALE",
]

RESIDUAL_W1_SCALE = 0.8     # W1 = 0.8·I of the virtual residual block (sensli.md §3)
FORMS = ("identity", "residual")
MODES = ("abs_max", "abs_min", "fixed", "threshold")


# ----------------------------------------------------------------------------------------------------------------
# Candidates (S3)
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """One virtual layer.

    ``position``: number of the candidate (0, 1, … in network order); ``after``: index in ``model.layers`` of the
    layer whose output the candidate acts on (it is inserted at ``after + 1``); ``width``: h_l;
    ``form``: 'identity' or 'residual'; ``activation``: σ of the candidate.
    """

    position: int
    after: int
    width: int
    form: str
    activation: str

    @property
    def weight_shape(self):
        return (self.width, self.width)

    def describe(self):
        kind = "identity Dense+ReLU" if self.form == "identity" else f"residual block (W1=0.8I, W2=0, {self.activation})"
        return f"p={self.position}: {kind} of width {self.width} after layer {self.after}"


def _detect_form(model):
    return "residual" if any(isinstance(layer, ResidualBlock) for layer in model.layers) else "identity"


def candidates(model, form="auto"):
    """All candidate positions of ``model`` (S3), in network order.

    form='identity': after every hidden activation layer (one followed later by a Dense layer).
    form='residual': after every hidden activation layer and after every ResidualBlock — for the "res2" net
    Dense, σ, [ResidualBlock]×B, Dense these are the #blocks + 1 positions of sensli.md §3.
    form='auto': 'residual' if the network has a ResidualBlock, else 'identity'.

    Raises ValueError for form='identity' after an activation other than ReLU: identity insertion would change
    the network function there (σ(σ(z)) ≠ σ(z)); use form='residual' instead.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a minigrow Sequential, got {type(model).__name__}")
    form = _detect_form(model) if form == "auto" else check_choice("form", form, set(FORMS))
    layers = model.layers
    dense_idx = [i for i, layer in enumerate(layers) if isinstance(layer, Dense)]
    if not dense_idx:
        raise ValueError("model: expected at least one Dense layer (a linear output layer)")
    last_dense = dense_idx[-1]
    out, width, act = [], None, None
    for i, layer in enumerate(layers[:last_dense]):
        if isinstance(layer, Dense):
            width = layer.out_features
            continue
        if isinstance(layer, Activation):
            act = layer.name
        elif isinstance(layer, ResidualBlock):
            width, act = layer.width, layer.activation
            if form == "identity":
                continue
        else:
            continue
        if form == "identity" and act != "relu":
            raise ValueError(
                f"identity insertion after a {act} layer (layer {i}) would change the network output: "
                f"σ(σ(z)) ≠ σ(z) for {act} (see sensli.md §2). Use form='residual' (a residual block with "
                f"W1 = 0.8·I, W2 = 0 preserves the function for any σ)")
        out.append(Candidate(len(out), i, int(width), form, act))
    if not out:
        raise ValueError("model: no hidden layer, so there is no position to insert a layer at")
    return out


def identity_layers(width, activation="relu", dtype=np.float32):
    """The identity candidate (S3): Dense(width → width) with V = I, c = 0, followed by σ.

    Function preserving only for ReLU; :func:`insert_candidate` refuses other σ. Exposed so that the tests and
    the tutorial can show what goes wrong for LeakyReLU/tanh.
    """
    dense = Dense(width, width, init="identity", dtype=dtype)
    return dense, activation_layer(activation)


def residual_candidate_block(width, activation="tanh", dtype=np.float32):
    """The residual candidate (S3): h ↦ h + W2 σ(W1 h + b1) with W1 = 0.8·I, b1 = 0, W2 = 0."""
    block = ResidualBlock(width, width, activation=activation, init="zeros", dtype=dtype)
    block.params["W1"][...] = RESIDUAL_W1_SCALE * np.eye(width, dtype=dtype)
    return block


def _candidate_layers(c, dtype):
    if c.form == "identity":
        if c.activation != "relu":
            raise ValueError(f"identity insertion after {c.activation} changes the network output; "
                             f"use form='residual'")
        return identity_layers(c.width, "relu", dtype)
    return (residual_candidate_block(c.width, c.activation, dtype),)


def insert_candidate(model, candidate):
    """Insert ``candidate`` into ``model`` in place at its initial values; returns the index of the new layer.

    The output is bit-identical: identity form computes σ(a I + 0) = a for a ≥ 0 exactly (products with 0 and 1
    are exact); residual form computes h + σ(0.8 h) 0ᵀ = h + 0 = h. Every existing layer keeps its parameters and
    optimiser state (``layer.state``); the new layer starts with empty (fresh) state.
    """
    if not isinstance(candidate, Candidate):
        raise TypeError(f"candidate: expected a Candidate from sensli.candidates(model), got "
                        f"{type(candidate).__name__}")
    check_int("candidate.after", candidate.after, lo=0, hi=len(model.layers) - 2)
    new = _candidate_layers(candidate, model.dtype or np.float32)
    model.insert(candidate.after + 1, *new)
    return candidate.after + 1


# ----------------------------------------------------------------------------------------------------------------
# Closed-form sensitivities (S4, S5, S6): one forward + one input-gradient backward per batch, no updates
# ----------------------------------------------------------------------------------------------------------------

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


def scores_from_grads(grads, normalise=False):
    """s_p = ‖G_p‖_F²  (S6), divided by numel(G_p) when ``normalise``."""
    return np.array([float(np.sum(np.square(G, dtype=np.float64))) / (G.size if normalise else 1)
                     for G in grads])


def _input_grad(layer, dout):
    """∂L/∂(layer input) only — the input-gradient half of the layer's backward, without weight gradients."""
    if isinstance(layer, Dense):
        return dout @ layer.params["W"]                                       # ∂L/∂A = δ W
    return layer.backward(dout)          # activations: σ'(z) ⊙ dout (ReLU'(0) = 0); blocks: g + d_z W1


def _widths(model):
    """(input width, output width) of a Dense-based model, from its first and last Dense layer."""
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    return (dense[0].in_features, dense[-1].out_features) if dense else (None, None)


def _check_data(model, X, y, loss, dtype, xname="X", yname="y"):
    """X: finite, 2-d, as wide as the model's input, cast to ``dtype``; y: labels in [0, n_out) for the
    cross-entropy (one per row), else finite targets with one row per sample."""
    n_in, n_out = _widths(model)
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

    Identity form (S4):  G_l += δ_lᵀ a_l  per batch (δ already carries the 1/N of the mean loss), with
    δ_l = ∂L/∂z_l the output of the ReLU layer's backward and a_l its cached output.
    Residual form (S5):  G_l += g_lᵀ σ(0.8 h_l),  g_l = ∂L/∂h arriving at that point of the stream.

    ``free_score=True`` also computes s̄_free for the 'threshold' mode (S7); this needs the weight gradients of
    the existing layers, i.e. an ordinary full backward.

    ``X`` (finite, 2-d, as wide as the model's input) and ``y`` (labels in [0, n_out) for the cross-entropy) are
    checked at entry; a ValueError names the one that is wrong.
    """
    t0 = time.perf_counter()
    loss = get_loss(loss)
    cands = candidates(model, form)
    X, y = _check_data(model, X, y, loss, model.dtype)
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
        h = xb
        stream = {}
        for i, layer in enumerate(layers):
            h = layer.forward(h, train=True)
            if i in at:
                stream[i] = h                       # a_l (identity form) or h_l (residual form)
        loss.forward(h, yb)
        dout = loss.backward()
        macs += nb * F
        stop = 0 if free_score else first
        for i in range(len(layers) - 1, stop - 1, -1):
            layer = layers[i]
            c = at.get(i)
            if c is not None:
                if c.form == "identity":
                    # dout = ∂L/∂a_l here; the ReLU layer i turns it into δ_l = ∂L/∂z_l = ∂L/∂a_l ⊙ 1[z_l > 0]
                    delta = layer.backward(dout)
                    G[c.position] += delta.T @ stream[i]                        # (S4) δ_lᵀ a_l
                    Gb[c.position] += delta.sum(axis=0)                         # ∂L/∂c_l = Σ_n δ_l,n
                    macs += nb * c.width * c.width
                    dout = delta
                    continue
                f = ACTIVATIONS[c.activation][0]
                G[c.position] += dout.T @ f(RESIDUAL_W1_SCALE * stream[i], 0.01)  # (S5) gᵀ σ(0.8 h)
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
    G = [g / B for g in G]
    Gb = [None if g is None else g / B for g in Gb]
    scores = scores_from_grads(G, normalise)
    fs = None
    if free_score:
        fs = float(np.mean(scores_from_grads([g / B for g in free.values()], normalise))) if free else 0.0
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
    X, y = _check_data(model, X, y, loss, model.dtype)
    wname = {c.position: ("W" if c.form == "identity" else "W2") for c in cands}
    G = [np.zeros(c.weight_shape, dtype=np.float64) for c in cands]
    Gb = [np.zeros(c.width, dtype=np.float64) if c.form == "identity" else None for c in cands]
    sl = _batches(X.shape[0], batch_size)
    F = ext.macs()
    macs = 0
    for s in sl:
        loss.forward(ext.forward(X[s], train=True), y[s])
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


# ----------------------------------------------------------------------------------------------------------------
# Selection (S7)
# ----------------------------------------------------------------------------------------------------------------

def select(scores, mode="abs_max", position=None, tau=None, free_score=None):
    """Chosen position, or None (threshold not reached).

    'abs_max': first index of the maximum (np.argmax); 'abs_min': first index of the minimum; 'fixed':
    ``position``; 'threshold': argmax if max s_p > τ · s̄_free else None (S7).
    """
    mode = check_choice("mode", mode, set(MODES))
    scores = check_array("scores", scores, ndim=1, dtype=np.float64, min_rows=0)   # finite: NaN is an error
    if scores.size == 0:
        raise ValueError(f"scores: expected a non-empty 1-d array, got shape {scores.shape}")
    if mode == "abs_max":
        return int(np.argmax(scores))
    if mode == "abs_min":
        return int(np.argmin(scores))
    if mode == "fixed":
        if position is None:
            raise ValueError("position: mode='fixed' needs a position")
        return check_int("position", position, lo=0, hi=scores.size - 1)
    if tau is None or free_score is None:
        raise ValueError("mode='threshold' needs tau and free_score (the mean score of the free weights)")
    tau = check_nonneg("tau", tau)
    return int(np.argmax(scores)) if scores.max() > tau * free_score else None


# ----------------------------------------------------------------------------------------------------------------
# The insertion loop (sensli.md §5)
# ----------------------------------------------------------------------------------------------------------------

def train_macs_per_sample(model):
    """Multiply-adds of one training step per sample, 3F (forward, weight gradients, input gradients)."""
    return 3 * model.macs()


@dataclass
class InsertionRun:
    """Result of :func:`sensli_train`: the final model and its history.

    ``train_loss``/``test_loss``/``test_acc`` per epoch (global numbering), ``insertions`` (one dict per
    sensitivity pass: epoch, scores, positions, chosen, loss before/after the insertion, cost of the pass),
    ``phases`` (epochs, seconds, multiply-adds, learning rates, parameter count of each training phase).
    """

    model: Sequential
    train_loss: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    insertions: list = field(default_factory=list)
    phases: list = field(default_factory=list)
    trainer: Trainer | None = field(default=None, repr=False)

    @property
    def train_macs(self):
        return int(sum(p["macs"] for p in self.phases))

    @property
    def sensitivity_macs(self):
        return int(sum(e["macs"] for e in self.insertions))

    @property
    def seconds(self):
        return float(sum(p["seconds"] for p in self.phases) + sum(e["seconds"] for e in self.insertions))

    def as_dict(self):
        return {"train_loss": self.train_loss, "test_loss": self.test_loss, "test_acc": self.test_acc,
                "insertions": self.insertions, "phases": self.phases, "train_macs": self.train_macs,
                "sensitivity_macs": self.sensitivity_macs, "seconds": self.seconds,
                "final_params": self.model.n_params(), "final_macs_per_sample": self.model.macs()}


def _make_optimizer(name, lr, weight_decay):
    check_choice("optimizer", name, {"sgd", "adam"})
    return SGD(lr, weight_decay=weight_decay) if name == "sgd" else Adam(lr, weight_decay=weight_decay)


class InsertionSchedule:
    """The insertion loop of sensli.md §5 as the epoch-end callback of ONE :class:`~minigrow.train.Trainer`.

    The trainer runs all Σ_k e_k epochs in one ``fit``; this callback counts the epochs of the current phase k and,
    when e_k of them are done (a phase boundary),

    1. records the phase (epochs, seconds, multiply-adds, learning rate at its start and end, size) and calls the
       user's ``callback(run, k)``;
    2. unless k is the last phase: runs the sensitivity pass (:func:`closed_form_sensitivities`, no updates),
       selects (:func:`select`) and inserts (:func:`insert_candidate`), recording the scores, positions, chosen
       position, training loss before/after and the cost of the pass;
    3. starts phase k+1 with a fresh optimiser — every parameter's optimiser state is forgotten
       (``Optimizer.reset_state``; the optimiser object only holds hyper-parameters) — at the learning rate
       η ← ``decrease`` · η_end (η_end = the learning rate at the end of phase k; unchanged when nothing was
       inserted), and restarts the StepLR from it (``base_lr = η``, position 0), as a new ``StepLR`` would.

    Test loss/accuracy are evaluated every ``test_every`` epochs of a phase (0: only at its end).

    Checkpoints (:mod:`minigrow.checkpoint`): :meth:`state_dict` holds the phase index, the epoch within the phase,
    the learning rate at the phase start, the records (test loss/accuracy, insertions, phases) and the settings of
    the schedule; the trainer stores the rest (the grown network, optimiser state and learning rate, StepLR
    position, RNG, counters, and the history, which gives back the per-epoch training loss). The trainer writes its
    checkpoint after the callbacks, so a checkpoint taken at a phase boundary already holds the inserted layer and
    the fresh optimiser.
    """

    state_key = "sensli"

    def __init__(self, epochs, X, y, X_test=None, y_test=None, *, loss, mode="abs_max", position=None, tau=None,
                 batch_size=None, decrease=1.0, form="auto", normalise=False, fresh_optimizer=True, test_every=0,
                 progress=False, callback=None, settings=None):
        self.epochs = list(epochs)
        self.X, self.y, self.X_test, self.y_test = X, y, X_test, y_test
        self.loss, self.mode, self.position, self.tau = loss, mode, position, tau
        self.batch_size, self.decrease, self.form, self.normalise = batch_size, decrease, form, normalise
        self.fresh_optimizer, self.test_every, self.progress, self.callback = (fresh_optimizer, test_every,
                                                                              progress, callback)
        # what must match on resume (JSON-normalised so that it compares equal to what a checkpoint returns)
        self._settings_json = json.dumps(settings or {}, sort_keys=True)
        self.settings = json.loads(self._settings_json)
        self.run = None          # the InsertionRun; its ``trainer`` is the trainer this callback belongs to
        self.phase, self.in_phase, self.lr_start, self.phase_seconds, self.done = 0, 0, None, 0.0, False
        self._records_json = None    # cache of the records for state_dict (None: changed since)

    # --- the loop --------------------------------------------------------------------------------------------
    def start(self, trainer):
        """Begin phase 0 of a new run (before the first ``fit``); phases of 0 epochs are passed at once."""
        self._start_phase(trainer, trainer.optimizer.lr)
        self._boundaries(trainer)

    def __call__(self, trainer):
        rec = trainer.history.epochs[-1]
        self.in_phase += 1
        self.run.train_loss.append(float(rec["train_loss"]))
        self.phase_seconds += rec["seconds"]
        if self.X_test is not None and ((self.test_every > 0 and self.in_phase % self.test_every == 0)
                                        or self.in_phase == self.epochs[self.phase]):
            t0 = time.perf_counter()
            tl, ta = evaluate(trainer.model, self.loss, self.X_test, self.y_test)
            self.run.test_loss.append((trainer.epoch, tl))
            self.run.test_acc.append((trainer.epoch, ta))
            self._records_json = None
            self.phase_seconds += time.perf_counter() - t0
        self._boundaries(trainer)

    def _boundaries(self, trainer):
        while not self.done and self.in_phase >= self.epochs[self.phase]:
            self._end_phase(trainer)
            if self.phase == len(self.epochs) - 1:
                self.done = True
                break
            lr = self._insert(trainer)
            self.phase += 1
            self._start_phase(trainer, lr)

    def _start_phase(self, trainer, lr):
        """Fresh optimiser at learning rate ``lr`` (sensli.md §5) and a restarted StepLR."""
        opt = trainer.optimizer
        if self.fresh_optimizer:
            Optimizer.reset_state(trainer.model)
        opt.lr = float(lr)           # a Python float: an np.float64 lr would change float32 updates (NEP 50)
        if trainer.scheduler is not None:
            trainer.scheduler.base_lr, trainer.scheduler.last_epoch = opt.lr, 0
        self.lr_start, self.in_phase, self.phase_seconds = opt.lr, 0, 0.0

    def _end_phase(self, trainer):
        model, e = trainer.model, self.epochs[self.phase]
        self.run.phases.append({"phase": self.phase, "epochs": e, "seconds": self.phase_seconds,
                                "macs": int(e * self.X.shape[0] * train_macs_per_sample(model)),
                                "lr_start": self.lr_start, "lr_end": trainer.optimizer.lr,
                                "n_params": int(model.n_params()), "macs_per_sample": int(model.macs())})
        self._records_json = None
        if self.callback is not None:
            self.callback(self.run, self.phase)

    def _insert(self, trainer):
        """Sensitivity pass, selection, insertion; returns the learning rate of the next phase."""
        model, lr_end = trainer.model, trainer.optimizer.lr
        sens = closed_form_sensitivities(model, self.X, self.y, self.loss, self.batch_size, self.form,
                                         self.normalise, free_score=(self.mode == "threshold"))
        chosen = select(sens.scores, self.mode, self.position, self.tau, sens.free_score)
        before = evaluate(model, self.loss, self.X, self.y)[0]
        if chosen is not None:
            insert_candidate(model, sens.candidates[chosen])
        after = evaluate(model, self.loss, self.X, self.y)[0]
        rec = sens.as_dict()
        rec.update(epoch=trainer.epoch, chosen=chosen, inserted=chosen is not None, loss_before=before,
                   loss_after=after, lr_before=lr_end)
        self.run.insertions.append(rec)
        self._records_json = None
        trainer.history.events.append({"event": "insert" if chosen is not None else "no insertion",
                                       "epoch": trainer.epoch, "chosen": chosen})
        lr = self.decrease * lr_end if chosen is not None else lr_end
        if self.progress:
            print(f"epoch {rec['epoch']}: scores {np.array2string(sens.scores, precision=3)} -> "
                  f"{'insert at p=' + str(chosen) if chosen is not None else 'no insertion'} "
                  f"(loss {before:.4f} -> {after:.4f}), lr {lr:.4g}", file=sys.stderr)
        return lr

    # --- checkpoint protocol ----------------------------------------------------------------------------------
    def state_dict(self):
        """``(meta, {})``: position in the schedule, plus the settings and the records as JSON text.

        Settings and records travel as JSON strings because the trainer copies the method state at every epoch start
        (for the divergence rollback) and a string costs nothing to copy, nested lists of records do. The per-epoch
        training loss is not stored here: it is the trainer's history (restored before this state)."""
        if self._records_json is None:
            r = self.run
            self._records_json = json.dumps({"test_loss": r.test_loss, "test_acc": r.test_acc,
                                             "insertions": r.insertions, "phases": r.phases})
        return {"settings": self._settings_json, "phase": self.phase, "in_phase": self.in_phase,
                "lr_start": self.lr_start, "phase_seconds": self.phase_seconds, "done": self.done,
                "records": self._records_json}, {}

    def load_state_dict(self, meta, arrays):
        saved = json.loads(meta["settings"])
        for key in sorted(set(saved) | set(self.settings)):
            if saved.get(key) != self.settings.get(key):
                raise ValueError(f"{key}: the checkpoint's insertion run used {saved.get(key)!r}, got "
                                 f"{self.settings.get(key)!r}; resume with the settings of the original run")
        self.phase, self.in_phase, self.done = int(meta["phase"]), int(meta["in_phase"]), bool(meta["done"])
        self.lr_start, self.phase_seconds = meta["lr_start"], float(meta["phase_seconds"])
        rec = json.loads(meta["records"])
        r = self.run
        r.train_loss = [float(e["train_loss"]) for e in r.trainer.history.epochs]
        r.test_loss = [tuple(t) for t in rec["test_loss"]]
        r.test_acc = [tuple(t) for t in rec["test_acc"]]
        r.insertions, r.phases = rec["insertions"], rec["phases"]
        self._records_json = meta["records"]


def sensli_train(model, X, y, epochs, X_test=None, y_test=None, *, mode="abs_max", position=None, tau=None,
                 optimizer="sgd", lr=0.1, weight_decay=0.0, batch_size=None, step_size=None, gamma=0.5,
                 decrease=1.0, form="auto", normalise=False, fresh_optimizer=True, test_every=0, rng=0,
                 progress=False, callback=None, checkpoint_dir=None, checkpoint_every=1, resume=None,
                 checkpoint_meta=None):
    """Train with layer insertions (sensli.md §5); ``model`` is changed in place.

    ``epochs = [e_0, e_1, …, e_K]``: train e_0 epochs, insert, train e_1, …, insert, train e_K — K insertions.
    ``epochs = [e]`` trains without insertion (the baseline, same code path). Every phase starts a fresh
    optimiser (``optimizer`` 'sgd' without momentum or 'adam', ``weight_decay``) and, if ``step_size`` is given,
    a fresh StepLR(step_size, gamma). After an insertion the learning rate becomes ``decrease`` × (the learning
    rate at the end of the phase). ``mode``/``position``/``tau``: selection (:func:`select`); ``mode='none'``
    would be spelled ``epochs=[total]``.

    One :class:`~minigrow.train.Trainer` runs all Σ e_k epochs; the loop of §5 is its epoch-end callback
    :class:`InsertionSchedule` (``run.trainer`` is the trainer, ``run.trainer.history`` its per-epoch records).

    The training loss per epoch is the mean of its step losses (full batch: the loss at the start of the epoch's
    step). ``test_every=0``: test loss/accuracy only at the end of each phase; k > 0: every k epochs.
    ``callback(run, phase)`` is called after every phase (used by the CLI for progress).

    Checkpoints: ``checkpoint_dir`` writes ``epoch-NNNN.npz`` there every ``checkpoint_every`` epochs (the newest
    two are kept; ``checkpoint_meta`` is a JSON-able dict stored in each). ``resume`` (a checkpoint file, or a
    folder: its newest checkpoint) continues such a run: call ``sensli_train`` with the same model builder, data and
    settings plus ``resume=path``; the network (grown), optimiser state, learning rate, StepLR position, RNG,
    phase position and all records come from the file, and the result is bit-identical to the uninterrupted run
    (tests/test_sensli.py). Different settings are refused with a ValueError.
    """
    if isinstance(epochs, (str, bytes)) or not isinstance(epochs, (list, tuple, np.ndarray)) or \
            np.ndim(epochs) != 1:
        raise TypeError(f"epochs: expected a list [e_0, …, e_K] of epoch counts (one per phase), got "
                        f"{type(epochs).__name__} {epochs!r}"[:160])
    epochs = [check_int(f"epochs[{i}]", e, lo=0) for i, e in enumerate(epochs)]
    if not epochs:
        raise ValueError("epochs: expected a list [e_0, …, e_K] of at least one epoch count")
    check_model("model", model)
    check_choice("mode", mode, set(MODES))
    lr = check_positive("lr", lr)
    decrease = check_positive("decrease", decrease)
    test_every = check_int("test_every", test_every, lo=0)
    if callback is not None:
        check_callable("callback", callback)
    rng = check_rng("rng", rng)
    loss = get_loss("ce")
    dtype = model.dtype or np.float32
    X, y = _check_data(model, X, y, loss, dtype)
    if (X_test is None) != (y_test is None):
        raise ValueError(f"X_test, y_test: give both or neither, got X_test={'None' if X_test is None else '…'} "
                         f"and y_test={'None' if y_test is None else '…'}")
    if X_test is not None:
        X_test, y_test = _check_data(model, X_test, y_test, loss, dtype, "X_test", "y_test")
    if len(epochs) > 1:
        candidates(model, form)            # refuse an impossible insertion before training, not after
    opt = _make_optimizer(optimizer, lr, weight_decay)
    sched = StepLR(opt, step_size, gamma) if step_size else None
    settings = dict(epochs=epochs, mode=mode, position=position, tau=tau, optimizer=optimizer, lr=lr,
                    weight_decay=opt.weight_decay, batch_size=batch_size, step_size=step_size or None,
                    gamma=float(gamma), decrease=decrease, form=form, normalise=bool(normalise),
                    fresh_optimizer=bool(fresh_optimizer), test_every=test_every, n_train=int(X.shape[0]),
                    dtype=str(np.dtype(dtype)))
    schedule = InsertionSchedule(epochs, X, y, X_test, y_test, loss=loss, mode=mode, position=position, tau=tau,
                                 batch_size=batch_size, decrease=decrease, form=form, normalise=normalise,
                                 fresh_optimizer=fresh_optimizer, test_every=test_every, progress=progress,
                                 callback=callback, settings=settings)
    trainer = Trainer(model, loss, opt, batch_size=batch_size, rng=rng, scheduler=sched, callbacks=[schedule],
                      progress=False, dtype=dtype, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                      checkpoint_meta=checkpoint_meta)
    schedule.run = InsertionRun(model, trainer=trainer)
    if resume is None:
        schedule.start(trainer)
    else:
        from .checkpoint import resume as _resume
        _resume(resume, trainer)
    trainer.fit(X, y, sum(epochs) - trainer.epoch)
    return schedule.run
