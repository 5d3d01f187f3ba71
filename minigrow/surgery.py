"""Structural edits of a network — the one mechanism SensLI insertion, pruning and auto-tune removal share.

Every edit keeps the parameters, buffers and **optimiser state** of everything it does not touch, because all of
that lives on the layers (:mod:`minigrow.layers.base`):

* :func:`insert_layers` — new layers at a position; they start with fresh optimiser state (Adam's t = 0 for them
  alone).
* :func:`remove_layer` — a layer leaves and takes its state along.
* :func:`remove_units` — keep units ``keep`` of one layer's output *and* slice everything that depends on them, up
  to and including the next layer that consumes them::

      Dense/Conv2D ──► BatchNorm / activation / gate / pool / dropout … ──► [Flatten] ──► Dense/Conv2D
      out_axes sliced   per-unit params and buffers sliced (out_axes)     H·W blocks     in_axes sliced

  The walk follows each layer's ``unit_kind`` (affine, elementwise, flatten, opaque); it is planned in full
  before anything is changed, so an edit that cannot be done (an opaque layer such as a residual block or layer
  norm on the way, or no consumer at all) raises ``ValueError`` and leaves the network as it was.

An element-wise layer may implement the optional hook ``remap_inputs(keep) -> kept outputs``: instead of losing
the same units as its input it is told which input units (columns, behind a flatten) are kept, renumbers itself
and returns the positions of its own outputs that survive, which the walk passes on. A *selecting* layer behind a
flatten uses it (:class:`minigrow.layers.Select`, the selecting gate of the pruning method): it reads only some
flattened features, so removing a channel in front of it drops only the selected features of that channel (none,
when the channel had none selected: then the layers behind are untouched) and shifts the others' indices.

Units live on axis 1 of the activations (features of a dense layer, channels of a conv layer). For a flatten of
``(C, H, W)``, channel c becomes the columns c·H·W … (c+1)·H·W − 1 of the next dense layer.
"""
from __future__ import annotations

import numpy as np

from .layers.base import check_keep
from .layers.sequential import Sequential
from .validate import check_int

__all__ = ["insert_layers", "remove_layer", "remove_units", "unit_consumers"]


def _check_seq(model):
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a minigrow Sequential (or a nested one), got {type(model).__name__}")
    return model


def insert_layers(model, index, *layers):
    """Insert ``layers`` before position ``index`` of the Sequential ``model``; returns ``index``.
    The new layers start with fresh optimiser state; every other layer keeps its own."""
    _check_seq(model).insert(index, *layers)
    return index


def remove_layer(model, index):
    """Remove and return the layer at ``index`` of the Sequential ``model`` (its optimiser state goes with it).
    The caller is responsible for the shapes fitting afterwards (e.g. removing a width-preserving block)."""
    return _check_seq(model).remove(index)


def unit_consumers(model, index):
    """The plan of :func:`remove_units`: ``[(position, layer, role), …]`` for the layers after ``index`` whose
    arrays depend on the output units of ``model.layers[index]``; role is 'elementwise', 'flatten' or 'affine'
    (the consumer, always last). Raises ``ValueError`` when the units cannot be removed."""
    model = _check_seq(model)
    index = check_int("index", index, lo=0, hi=len(model.layers) - 1)
    src = model.layers[index]
    if src.unit_kind != "affine":
        raise ValueError(f"index: layers[{index}] ({type(src).__name__}) does not produce units of its own; remove "
                         f"units at the Dense or Conv2D layer that produces them")
    plan = []
    for pos in range(index + 1, len(model.layers)):
        layer = model.layers[pos]
        kind = layer.unit_kind
        if kind in ("elementwise", "flatten"):
            if kind == "flatten" and getattr(layer, "in_shape", None) is None:
                raise ValueError(f"layers[{pos}] (Flatten) does not know its input shape yet: run one forward pass "
                                 f"or build it with in_shape=(C, H, W)")
            plan.append((pos, layer, kind))
            continue
        if kind == "affine":
            plan.append((pos, layer, "affine"))
            return plan
        raise ValueError(f"cannot remove units of layers[{index}] ({type(src).__name__}): its outputs pass through "
                         f"layers[{pos}] ({type(layer).__name__}), which mixes units (unit_kind {kind!r})")
    raise ValueError(f"cannot remove units of layers[{index}] ({type(src).__name__}): no later layer consumes them "
                     f"(they are the network's outputs)")


def remove_units(model, index, keep):
    """Keep only output units ``keep`` of ``model.layers[index]`` (a Dense or Conv2D) and slice every layer that
    depends on them (per-unit parameters and buffers of the layers in between, the H·W column blocks behind a
    flatten, the inputs of the next Dense or Conv2D) — with their gradients and optimiser state.

    ``keep`` : unit indices (order ignored) or a boolean mask. Returns the sorted kept indices.
    """
    model = _check_seq(model)
    index = check_int("index", index, lo=0, hi=len(model.layers) - 1)
    src = model.layers[index]
    plan = unit_consumers(model, index)
    keep = check_keep("keep", keep, src.out_units)
    src.remove_outputs(keep)
    k = keep
    for pos, layer, role in plan:
        if role == "elementwise":
            remap = getattr(layer, "remap_inputs", None)
            if remap is not None:                   # a layer that selects some of its input columns renumbers
                k = remap(k)                        # itself and says which of its outputs survive
            else:
                layer.remove_outputs(k)
        elif role == "flatten":
            c, h, w = layer.in_shape
            layer.remove_outputs(k)
            k = (k[:, None] * (h * w) + np.arange(h * w)).reshape(-1)       # channel c → columns c·HW … c·HW+HW−1
        else:
            layer.remove_inputs(k)
    return keep
