"""Where SensLI's virtual layers go in a network, and how the chosen one is inserted (S3 of :mod:`.formulas`).

A *hidden layer* of a chain is a producer (a ``Dense``, or a ``ResidualBlock`` for the residual form) followed by a
run of elementwise layers (``unit_kind == "elementwise"``: the activation and whatever acts unit by unit after it —
a gate, dropout, another activation). A candidate acts on the output of the **last** elementwise layer of that run,
i.e. on what the next layer actually receives, and is inserted right after it (``Candidate.after + 1``) with
:func:`minigrow.surgery.insert_layers`.

Function preservation of the identity form (σ(V a + c) = a at V = I, c = 0) needs a ≥ 0 and σ = ReLU: the hidden
layer's last *activation* must be a ReLU, and any elementwise layer after it must keep a ≥ 0 (gates in [0, 1],
dropout, a second ReLU do). The residual form preserves the function for any σ and any elementwise layers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...layers import Activation, Dense, ResidualBlock, Sequential, activation_layer
from ...surgery import insert_layers
from ...validate import check_choice, check_int
from .formulas import residual_candidate

__all__ = ["Candidate", "FORMS", "candidates", "hidden_points", "identity_layers", "residual_candidate_block",
           "candidate_layers", "insert_candidate"]

FORMS = ("identity", "residual")


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


def hidden_points(model):
    """``[(after, width, activation, kind), …]``: the hidden representations of the chain ``model`` in order.

    ``kind`` 'hidden': a Dense followed by a run of elementwise layers containing an activation; ``after`` is the
    run's last layer, ``activation`` the run's last activation. A producer whose output has already been through
    its own activation (an ``"affine"`` layer with an ``activation`` attribute, e.g. the ``DenseBlock`` of a block
    network) starts such a run itself. ``kind`` 'block': a ResidualBlock (and the
    elementwise layers after it, if any); ``activation`` is the block's σ. Only layers before the last Dense (the
    output layer) count. Any other layer (a nested Sequential, an opaque layer) ends a run without a point.
    """
    layers = model.layers
    dense_idx = [i for i, layer in enumerate(layers) if isinstance(layer, Dense)]
    if not dense_idx:
        raise ValueError("model: expected at least one Dense layer (a linear output layer)")
    points, width, run = [], None, None          # run = [after, width, activation, kind] of the open run
    for i, layer in enumerate(layers[:dense_idx[-1]]):
        if isinstance(layer, Dense):
            if run is not None:
                points.append(tuple(run))
            width, run = layer.out_features, None
        elif layer.unit_kind == "affine" and isinstance(getattr(layer, "activation", None), str):
            if run is not None:                      # a block with its own σ (DenseBlock): a hidden layer by itself
                points.append(tuple(run))
            width = int(layer.out_units)
            run = [i, width, layer.activation, "hidden"]
        elif isinstance(layer, ResidualBlock):
            if run is not None:
                points.append(tuple(run))
            width, run = layer.width, [i, layer.width, layer.activation, "block"]
        elif layer.unit_kind == "elementwise" and width is not None:
            if isinstance(layer, Activation):
                if run is None or run[3] == "hidden":
                    run = [i, width, layer.name, "hidden"]
                else:                                # an activation after a block: a new hidden point
                    points.append(tuple(run))
                    run = [i, width, layer.name, "hidden"]
            elif run is not None:
                run[0] = i                           # a gate/dropout after the activation: the run goes on
        else:
            if run is not None:
                points.append(tuple(run))
            width, run = None, None
    if run is not None:
        points.append(tuple(run))
    return [(int(a), int(w), act, kind) for a, w, act, kind in points]


def candidates(model, form="auto"):
    """All candidate positions of ``model`` (S3), in network order.

    form='identity': after every hidden layer (Dense, then activation and any elementwise layers; the candidate
    goes after the last of them). form='residual': after every hidden layer and after every ResidualBlock — for the
    "res2" net Dense, σ, [ResidualBlock]×B, Dense these are the #blocks + 1 positions of sensli.md §3.
    form='auto': 'residual' if the network has a ResidualBlock, else 'identity'.

    Raises ValueError for form='identity' after an activation other than ReLU: identity insertion would change
    the network function there (σ(σ(z)) ≠ σ(z)); use form='residual' instead.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a minigrow Sequential, got {type(model).__name__}")
    form = _detect_form(model) if form == "auto" else check_choice("form", form, set(FORMS))
    out = []
    for after, width, act, kind in hidden_points(model):
        if form == "identity" and kind == "block":
            continue
        if form == "identity" and act != "relu":
            raise ValueError(
                f"identity insertion after a {act} layer (layer {after}) would change the network output: "
                f"σ(σ(z)) ≠ σ(z) for {act} (see sensli.md §2). Use form='residual' (a residual block with "
                f"W1 = 0.8·I, W2 = 0 preserves the function for any σ)")
        out.append(Candidate(len(out), after, width, form, act))
    if not out:
        raise ValueError("model: no hidden layer, so there is no position to insert a layer at")
    return out


def identity_layers(width, activation="relu", dtype=np.float32):
    """The identity candidate (S3): Dense(width → width) with V = I, c = 0, followed by σ.

    Function preserving only for ReLU; :func:`insert_candidate` refuses other σ. Exposed so that the tests and
    the tutorial can show what goes wrong for LeakyReLU/tanh.
    """
    dense = Dense(width, width, init="identity", dtype=dtype)         # V = I, c = 0 (formulas.identity_candidate)
    return dense, activation_layer(activation)


def residual_candidate_block(width, activation="tanh", dtype=np.float32):
    """The residual candidate (S3): h ↦ h + W2 σ(W1 h + b1) with W1 = 0.8·I, b1 = 0, W2 = 0."""
    block = ResidualBlock(width, width, activation=activation, init="zeros", dtype=dtype)
    for name, value in zip(("W1", "b1", "W2"), residual_candidate(width, dtype)):
        block.params[name][...] = value
    return block


def candidate_layers(c, dtype=np.float32):
    """The layers of candidate ``c`` at their initial values (a Dense and a ReLU, or one ResidualBlock)."""
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
    optimiser state (``layer.state``); the new layer starts with empty (fresh) state
    (:func:`minigrow.surgery.insert_layers`).
    """
    if not isinstance(candidate, Candidate):
        raise TypeError(f"candidate: expected a Candidate from sensli.candidates(model), got "
                        f"{type(candidate).__name__}")
    check_int("candidate.after", candidate.after, lo=0, hi=len(model.layers) - 2)
    return insert_layers(model, candidate.after + 1, *candidate_layers(candidate, model.dtype or np.float32))
