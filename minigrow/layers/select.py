r"""Feature selection on the unit axis:  out = x[:, index]  (a fixed subset of the input features, in order).

What a pruned network keeps of a *selecting* gate (a gate behind a flatten that reads only some of the flattened
features, :mod:`minigrow.methods.pruning.gate`): the gate is gone, the selection stays.

Units (for :mod:`minigrow.surgery`): the layer is element-wise on its *output* units (there are no per-unit
parameters to slice), and it renumbers its index when the layer in front of it loses input columns
(:meth:`Select.remap_inputs`, the surgery hook for an element-wise layer behind a flatten): removed columns drop
out of the selection, the remaining ones are renumbered to the compacted input.
"""
from __future__ import annotations

import numpy as np

from ..validate import check_int
from .base import Layer, check_keep, register_layer

__all__ = ["Select", "remap_selection"]


def remap_selection(index, n_inputs, keep_columns):
    r"""Renumber a selection ``index`` (sorted positions in an input of width ``n_inputs``) when the input keeps
    only the columns ``keep_columns`` (sorted): returns ``(new_index, survivors, new_n_inputs)`` with
    ``new_index`` the compacted positions of the selected columns that survive and ``survivors`` their positions
    in the old selection (what a consumer behind must keep of its inputs).

    new_pos[keep_columns[i]] = i; a selected column j survives iff j ∈ keep_columns."""
    keep_columns = check_keep("keep_columns", keep_columns, n_inputs)
    new_pos = np.full(n_inputs, -1, dtype=np.int64)
    new_pos[keep_columns] = np.arange(keep_columns.size)
    mapped = new_pos[np.asarray(index, dtype=np.int64)]
    survivors = np.flatnonzero(mapped >= 0)
    return mapped[survivors], survivors, int(keep_columns.size)


@register_layer
class Select(Layer):
    r"""out[:, j] = x[:, index_j] for a fixed sorted ``index`` into an input of ``n_inputs`` units (axis 1).

    Backward: ∂L/∂x = 0 except ∂L/∂x[:, index_j] = ∂L/∂out[:, j] (a scatter into the full input width). No
    parameters; ``index`` is saved by :func:`minigrow.io.save` through :meth:`extra_arrays`."""

    unit_kind = "elementwise"

    def __init__(self, n_inputs, n_units=None, index=None):
        super().__init__()
        self.n_inputs = check_int("n_inputs", n_inputs, lo=1)
        if index is None:
            index = np.arange(self.n_inputs if n_units is None else check_int("n_units", n_units, lo=1))
        self.index = check_keep("index", index, self.n_inputs)
        if n_units is not None and check_int("n_units", n_units, lo=1) != self.index.size:
            raise ValueError(f"n_units: {n_units} does not match the {self.index.size} indices given")

    @property
    def n_units(self):
        return int(self.index.size)

    @property
    def in_units(self):
        return self.n_inputs

    @property
    def out_units(self):
        return self.n_units

    def config(self):
        return {"n_inputs": self.n_inputs, "n_units": self.n_units}

    def forward(self, x, train=True):
        if x.shape[1] != self.n_inputs:
            raise ValueError(f"Select: expected {self.n_inputs} units on axis 1, got shape {x.shape}")
        self._cache = x.shape
        return x[:, self.index]

    def backward(self, dout, need_input_grad=True):
        if not need_input_grad:
            return None
        dx = np.zeros(self._cache, dtype=dout.dtype)
        dx[:, self.index] = dout                          # scatter; zeros at the features not selected
        return dx

    # --- units ------------------------------------------------------------------------------------------------
    def remove_outputs(self, keep):
        """Keep selected features ``keep`` (positions in the output)."""
        self.index = self.index[check_keep("keep", keep, self.n_units)].copy()

    def remap_inputs(self, keep_columns):
        """Surgery hook: the input keeps only columns ``keep_columns``; returns the kept output positions."""
        self.index, survivors, self.n_inputs = remap_selection(self.index, self.n_inputs, keep_columns)
        return survivors

    # --- io hooks ---------------------------------------------------------------------------------------------
    def extra_arrays(self):
        return {"index": self.index}

    def load_extra(self, extra, arrays):
        if "index" in arrays:
            self.index = check_keep("index", np.asarray(arrays["index"], dtype=np.int64), self.n_inputs)
