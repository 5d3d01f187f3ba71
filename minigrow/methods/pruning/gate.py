r"""The gate layer, gated networks, and how the pruning code finds its way around any network that has gates.

* :class:`Gate` — ã = ξ ⊙ a on the unit axis (axis 1: features of (N, F), channels of NCHW), the Bernoulli keep
  probabilities θ, the sampled ξ, and the public quantities the estimators read (:attr:`Gate.last_input`,
  :attr:`Gate.last_upstream`).
* :func:`add_gates` — one call turns a network into a gated one (a Gate after every activation that follows a
  Dense or Conv2D, except at the output; optionally one at the input); :func:`gated_mlp` = ``add_gates(mlp(…))``.
* Structure walks (:func:`gate_sites`, :func:`weight_layers`) — every gate's *producer* (the affine layer whose
  units it gates, or none for an input gate) and *consumer* (the next affine layer that reads them), found by the
  layers' ``unit_kind`` through nested Sequentials; nothing here switches on layer types.
* Sampling, fixed-gate forward passes (:func:`forward_with_gates`), removal of units through
  :func:`minigrow.surgery.remove_units` (:func:`remove_units`, :func:`prune`) and the final deterministic net
  (:func:`to_deterministic`).

Gates are numbered ``p = 0, 1, …`` in the order the network applies them; every function here takes that number.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ...layers import (Activation, AvgPool2d, BatchNorm1d, BatchNorm2d, Dense, Layer, MaxPool2d, Select, Sequential,
                       check_keep, register_layer)
from ...layers.select import remap_selection
from ...network import mlp
from ...surgery import insert_layers
from ...surgery import remove_units as surgery_remove_units
from ...validate import check_choice, check_dtype, check_int, check_nonneg, check_prob, check_rng

__all__ = ["Gate", "add_gates", "gated_mlp", "gates", "gate_sites", "weight_layers", "widths", "sample_gates",
           "set_gates", "forward_with_gates", "remove_units", "prune", "to_deterministic", "GateSite"]


@register_layer
class Gate(Layer):
    r"""Bernoulli gates on the unit axis: ã = ξ ⊙ a (pruning.md §2).

    Forward, batch-first; gates Ξ of shape (N, units) — one draw per sample and unit, broadcast over H, W for an
    NCHW input:

    .. math::  \tilde A = Ξ ⊙ A \qquad\text{(training, ξ set)},\qquad \tilde A = θ ⊙ A \qquad\text{(otherwise)}

    Backward, for upstream G = ∂L/∂Ã:  ∂L/∂A = Ξ ⊙ G. No trained parameters.

    State (not optimiser parameters; saved by :func:`minigrow.io.save` through :meth:`extra_arrays`):

    * ``theta`` — keep probabilities θ_j, float64, moved by the projected step of :mod:`.formulas`;
    * ``unit_ids`` — each unit's index in the original network (θ trajectories can be followed through pruning);
    * ``index`` — a selecting gate's positions in its *current* input (None otherwise; equal to ``unit_ids`` for an
      input gate, renumbered for a feature gate when channels in front of the flatten are compacted);
    * ``zeta`` — the latent of the lazy θ step (θ = clip(ζ, 0, 1), :func:`.formulas.lazy_theta_step`) or None;
    * ``xi`` — the sampled gates of the current batch, (N, units) or None (then forward uses θ).

    Public per-pass quantities, for the estimators (:mod:`.estimators`):

    * ``last_input`` — the input a of the last forward pass (ungated values; for an input gate after input pruning,
      the kept features);
    * ``last_upstream`` — the upstream gradient G = ∂L/∂ã of the last backward pass;
    * :meth:`backward_pair` — ``(a, G)`` of the last backward pass (a of the forward pass it followed), consistent
      even when eval-mode forward passes came in between.

    ``n_inputs`` makes it a **selecting gate**: it accepts an input of that full width and selects the kept
    features (``index``, positions in that input) itself. In front of the network it is the *input gate* (the
    width of the data; after input units are pruned the caller still feeds every feature). Behind a Flatten it is
    a *feature gate* (:func:`add_gates` with ``feature_gate=True``): it gates the flattened features one by one,
    and backward scatters ∂L/∂A into the full input width (zeros at the features it no longer reads). A gate on
    the units of a producer leaves ``n_inputs`` None.

    For a feature gate, ``index`` holds positions in the *current* flattened input: when channels in front of
    the flatten are removed (:func:`remove_units` compacts them), :meth:`remap_inputs` renumbers it and
    ``n_inputs`` shrinks by H·W per removed channel; ``unit_ids`` keep the original feature numbers.
    """

    unit_kind = "elementwise"

    def __init__(self, n_units, theta0=1.0, dtype=np.float32, n_inputs=None):
        super().__init__()
        self.n_units = check_int("n_units", n_units, lo=1)
        self.n_inputs = None if n_inputs is None else check_int("n_inputs", n_inputs, lo=self.n_units)
        self.gate_dtype = check_dtype("dtype", dtype)
        self.theta = np.full(self.n_units, float(check_prob("theta0", theta0)), dtype=np.float64)
        self.unit_ids = np.arange(self.n_units)
        self.index = None if self.n_inputs is None else np.arange(self.n_units)
        self.zeta = None          # latent of the lazy θ step (formulas.lazy_theta_step); None = plain step
        self.xi = None
        self.last_input = None
        self.last_upstream = None
        self._backward_input = None
        self._selected = False

    def config(self):
        return {"n_units": self.n_units, "dtype": np.dtype(self.gate_dtype).name, "n_inputs": self.n_inputs}

    @property
    def input_width(self):
        """Width of the data an input gate accepts (the original number of features); None inside a network."""
        return self.n_inputs

    @property
    def in_units(self):
        """Units an input gate accepts on axis 1 (``n_inputs``; what a containing Sequential reports); None inside
        a network, where the producer fixes the width."""
        return self.n_inputs

    # --- the math ---------------------------------------------------------------------------------------------
    def multiplier(self, train, dtype):
        """The gate used in forward: the sampled ξ in training (when set), else the mean gate θ (equal to the
        deterministic network when θ ∈ {0, 1}); in ``dtype``."""
        g = self.xi if train and self.xi is not None else self.theta
        return g.astype(dtype, copy=False)

    def select(self, x):
        """A selecting gate (``n_inputs`` set) is fed its full input width: keep the kept features."""
        if self.n_inputs is not None and x.shape[1] != self.n_units:
            if x.shape[1] != self.n_inputs:
                raise ValueError(f"Gate({self.n_units} of {self.n_inputs}): expected {self.n_inputs} (or "
                                 f"{self.n_units}) units on axis 1, got shape {x.shape}")
            x = x[:, self.index]
        return x

    def forward(self, x, train=True):
        self._in_shape = x.shape
        self._selected = self.n_inputs is not None and x.shape[1] != self.n_units
        x = self.select(x)
        if x.shape[1] != self.n_units:
            raise ValueError(f"Gate({self.n_units}): expected {self.n_units} units on axis 1, got shape {x.shape}")
        g = self.multiplier(train, x.dtype)
        if x.ndim > 2:                                   # NCHW: one gate per (sample, channel), broadcast over H, W
            g = g.reshape(g.shape + (1,) * (x.ndim - 2))
        self.last_input = x
        self._cache = g
        return x * g                                     # Ã = Ξ ⊙ A

    def backward(self, dout, need_input_grad=True):
        self.last_upstream = dout                        # G = ∂L/∂Ã
        self._backward_input = self.last_input
        if not need_input_grad:
            return None
        dx = dout * self._cache                          # ∂L/∂A = Ξ ⊙ G
        if self._selected:                               # a selecting gate: scatter into the full input width
            full = np.zeros(self._in_shape, dtype=dx.dtype)
            full[:, self.index] = dx
            return full
        return dx

    def backward_pair(self):
        """``(a, G)``: the input of the forward pass the last backward pass followed, and that pass's upstream
        gradient; ``(None, None)`` before any backward pass."""
        if self.last_upstream is None:
            return None, None
        return self._backward_input, self.last_upstream

    def apply(self, x, gate=None):
        """Pure forward (no caches) with a given gate (θ when None): for 2-d or 3-d x (batch, [variants,] units)
        the gate broadcasts against x as given; for NCHW x it is (N, C) or (C,) and broadcasts over H, W."""
        x = self.select(x)
        g = self.theta if gate is None else gate
        if x.ndim == 4:                                  # NCHW: (…, C) gates broadcast over H, W
            g = np.reshape(g, np.shape(g) + (1, 1))
        return x * g

    # --- units ------------------------------------------------------------------------------------------------
    def remove_outputs(self, keep):
        """Keep units ``keep``: θ and unit ids are sliced; the sampled ξ and the per-pass quantities are dropped."""
        keep = check_keep("keep", keep, self.n_units)
        self.theta = self.theta[keep].copy()
        self.unit_ids = self.unit_ids[keep].copy()
        if self.index is not None:
            self.index = self.index[keep].copy()
        if self.zeta is not None:
            self.zeta = self.zeta[keep].copy()
        self.n_units = int(keep.size)
        self.xi = None
        self.last_input = self.last_upstream = self._backward_input = None

    def remap_inputs(self, keep_columns):
        """Surgery hook (:func:`minigrow.surgery.remove_units`): the layer in front keeps only the input units
        ``keep_columns``. A gate on a producer's units loses the same units; a selecting gate drops the selected
        features among the removed columns, renumbers ``index`` to the compacted input (new index of column j =
        its rank among ``keep_columns``) and shrinks ``n_inputs``. Returns the positions of the gate's units that
        survive (what the consumer keeps of its inputs)."""
        if self.n_inputs is None:
            keep = check_keep("keep_columns", keep_columns, self.n_units)
            self.remove_outputs(keep)
            return keep
        idx, survivors, n_inputs = remap_selection(self.index, self.n_inputs, keep_columns)
        if survivors.size == 0:
            raise ValueError(f"Gate({self.n_units} of {self.n_inputs}): the removal would leave it no feature")
        self.remove_outputs(survivors)
        self.index, self.n_inputs = idx, n_inputs
        return survivors

    # --- io hooks ---------------------------------------------------------------------------------------------
    def extra_arrays(self):
        out = {"theta": self.theta, "unit_ids": self.unit_ids}
        if self.index is not None:
            out["index"] = self.index
        if self.zeta is not None:
            out["zeta"] = self.zeta
        return out

    def load_extra(self, extra, arrays):
        if "theta" in arrays:
            th = np.asarray(arrays["theta"], dtype=np.float64)
            if th.shape != (self.n_units,):
                raise ValueError(f"Gate: saved theta has shape {th.shape}, expected ({self.n_units},)")
            self.theta = th.copy()
        if "unit_ids" in arrays:
            self.unit_ids = np.asarray(arrays["unit_ids"], dtype=np.int64).copy()
        if self.n_inputs is not None:            # files written before ``index`` existed: it was ``unit_ids``
            self.index = np.asarray(arrays.get("index", self.unit_ids), dtype=np.int64).copy()
        if "zeta" in arrays:
            self.zeta = np.asarray(arrays["zeta"], dtype=np.float64).copy()


# ==============================================================================================================
# Structure walks
# ==============================================================================================================

def _leaves(model):
    """``[(container, index, layer), …]``: the layers in the order they run, nested Sequentials expanded (any other
    composite layer — a residual block — is one opaque step)."""
    out = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Sequential):
            out.extend(_leaves(layer))
        else:
            out.append((model, i, layer))
    return out


def _check_model(model):
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a minigrow Sequential, got {type(model).__name__}")
    return model


@dataclass
class GateSite:
    """Where gate number ``p`` sits: its position in the flattened chain of layers, its producer (the affine layer
    whose output units it gates; None for an input gate and a feature gate) and its consumer (the next affine
    layer; None when the units are the network's outputs or pass through a layer that mixes units), with their
    chain positions and their numbers among the weight layers. For a feature gate (a selecting gate behind a
    Flatten) also the *feeder*: the affine layer (a Conv2D) whose channels that flatten flattens, and the
    flatten's position."""
    gate: Gate
    pos: int
    producer: Layer | None
    prod_pos: int | None
    consumer: Layer | None
    cons_pos: int | None
    q_prod: int | None
    q_cons: int | None
    blocked: str | None = None          # why there is no consumer
    feeder: Layer | None = None         # feature gate: the affine layer whose channels the flatten in front flattens
    feed_pos: int | None = None
    q_feed: int | None = None
    flatten_pos: int | None = None


def _structure(model):
    """``(chain, sites, weights)``: the flattened layers, one :class:`GateSite` per gate, the affine layers."""
    chain = [layer for _, _, layer in _leaves(_check_model(model))]
    weights = [k for k, layer in enumerate(chain) if layer.unit_kind == "affine"]
    qof = {k: q for q, k in enumerate(weights)}
    sites = []
    for k, layer in enumerate(chain):
        if not isinstance(layer, Gate):
            continue
        prod = None
        for m in range(k - 1, -1, -1):                    # back through element-wise layers to the producer
            kind = chain[m].unit_kind
            if kind == "affine":
                prod = m
            if kind != "elementwise":
                break
        cons, blocked = None, "its units are the network's outputs"
        for m in range(k + 1, len(chain)):                # forward through element-wise layers and flattens
            kind = chain[m].unit_kind
            if kind == "affine":
                cons, blocked = m, None
                break
            if kind not in ("elementwise", "flatten"):
                blocked = f"its units pass through {type(chain[m]).__name__}, which mixes units"
                break
        feed = flat = None
        if prod is None and layer.n_inputs is not None:   # a selecting gate: behind a flatten of a producer?
            m = k - 1
            while m >= 0 and chain[m].unit_kind == "elementwise":
                m -= 1
            if m >= 0 and chain[m].unit_kind == "flatten":
                flat, m = m, m - 1
                while m >= 0 and chain[m].unit_kind == "elementwise":
                    m -= 1
                if m >= 0 and chain[m].unit_kind == "affine":
                    feed = m
        sites.append(GateSite(layer, k, None if prod is None else chain[prod], prod,
                              None if cons is None else chain[cons], cons,
                              None if prod is None else qof[prod], None if cons is None else qof[cons], blocked,
                              None if feed is None else chain[feed], feed, None if feed is None else qof[feed], flat))
    return chain, sites, [chain[k] for k in weights]


def gate_sites(model):
    """One :class:`GateSite` per gate of ``model``, in order."""
    return _structure(model)[1]


def gates(model):
    """The Gate layers of ``model`` in the order they run (nested Sequentials included)."""
    return [layer for _, _, layer in _leaves(_check_model(model)) if isinstance(layer, Gate)]


def weight_layers(model):
    """The affine layers (Dense, Conv2D: ``unit_kind == 'affine'``) of ``model`` in order — the layers with a prior."""
    return _structure(model)[2]


def widths(model):
    """Number of units of every gate."""
    return [g.n_units for g in gates(model)]


def _gate_number(p, n):
    """Validate a gate number p (gates counted 0, 1, … in the order they run) of a network with n gates."""
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or not 0 <= p < n:
        raise ValueError(f"p: expected a gate number in [0, {n}) (gates are counted in the order they run, not by "
                         f"layer index; the network has {n} gate{'s' if n != 1 else ''}), got {p!r}")
    return int(p)


# ==============================================================================================================
# Building gated networks
# ==============================================================================================================

WHERE = ("after_activation",)

#: Per-unit layers a gate is placed *behind* when they follow the activation (conv nets, pruning.md §6): a
#: normalisation (its shift β would make a closed unit non-zero before it; behind it a closed channel contributes
#: exactly 0) and pooling. Max and average pooling act on each channel separately and are positively homogeneous,
#: pool(ξ a) = ξ pool(a) for a per-(sample, channel) gate ξ ≥ 0, so the outputs are the same on either side; behind
#: the pool the gate and its estimators work on the 4× smaller pooled map and the flipped channel reaches the
#: consumer with no layer in between (the rank-one / single-channel update of the flip estimator is exact there).
GATE_AFTER = (BatchNorm1d, BatchNorm2d, MaxPool2d, AvgPool2d)


def add_gates(model, where="after_activation", theta0=1.0, input_gate=False, feature_gate=False):
    """Add a :class:`Gate` after every activation that follows a Dense or Conv2D (possibly through other
    element-wise layers) — behind any normalisation and pooling directly after the activation (:data:`GATE_AFTER`;
    conv filters: pruning.md §6) — and whose units a later affine layer reads — i.e. not at the output; with
    ``input_gate=True`` also one in front of the network (its units are the input features). Works on any
    Sequential, nested ones too (gates go into the Sequential that holds the activation); an activation already
    followed by a Gate gets no second one. Returns ``model`` (changed in place; the new gates have θ = ``theta0``,
    so with θ = 1 the outputs are those of the ungated net).

    ``feature_gate=True`` (ours): a *selecting* gate (``n_inputs`` = the flattened width) goes right after every
    Flatten whose consumer is a Dense layer, gating the flattened features one by one, and the channel gate that
    would sit in front of that flatten is not added — a channel of the conv in front is then removed when all of
    its H·W features are (:func:`remove_units`; its price: :mod:`.prior`)."""
    _check_model(model)
    check_choice("where", where, set(WHERE))
    theta0 = check_prob("theta0", theta0)
    leaves = _leaves(model)
    chain = [layer for _, _, layer in leaves]
    todo = []
    for k, (container, i, layer) in enumerate(leaves):
        if not isinstance(layer, Activation):
            continue
        at = k + 1                                        # the gate goes after the activation, and after the
        while (at < len(chain) and isinstance(chain[at], GATE_AFTER)       # normalisation and pooling that
               and leaves[at][0] is container):                            # follow it in the same Sequential
            at += 1
        if at < len(chain) and isinstance(chain[at], (Gate, Activation)):
            continue
        prod = next((m for m in range(k - 1, -1, -1) if chain[m].unit_kind != "elementwise"), None)
        if prod is None or chain[prod].unit_kind != "affine":
            continue
        cons = next((m for m in range(k + 1, len(chain)) if chain[m].unit_kind not in ("elementwise", "flatten")),
                    None)
        if cons is None or chain[cons].unit_kind != "affine":
            continue                                      # the output (or units mixed before any consumer)
        if feature_gate and any(chain[m].unit_kind == "flatten" for m in range(k + 1, cons)) \
                and isinstance(chain[cons], Dense):
            continue                                      # the feature gate behind the flatten replaces it
        src = chain[prod]
        todo.append((container, i + (at - k), Gate(src.out_units, theta0, _dtype_of(src))))
    if feature_gate:
        for k, (container, i, layer) in enumerate(leaves):
            if layer.unit_kind != "flatten":
                continue
            m = k + 1
            while m < len(chain) and chain[m].unit_kind == "elementwise" and not isinstance(chain[m], Gate):
                m += 1
            if m < len(chain) and isinstance(chain[m], Gate) or m >= len(chain) or not isinstance(chain[m], Dense):
                continue                                  # already gated, or not read by a Dense layer
            n = chain[m].in_units
            todo.append((container, i + 1, Gate(n, theta0, _dtype_of(chain[m]), n_inputs=n)))
    todo.sort(key=lambda t: (id(t[0]), t[1]))
    for container, index, gate in reversed(todo):         # back to front: earlier indices stay valid
        insert_layers(container, index, gate)
    if input_gate and not isinstance(chain[0] if chain else None, Gate):
        first = next((layer for layer in chain if layer.unit_kind == "affine"), None)
        if first is None:
            raise ValueError("input_gate: the network has no Dense or Conv2D layer to read the input")
        n = first.in_units
        container = model
        while isinstance(container.layers[0], Sequential):
            container = container.layers[0]
        insert_layers(container, 0, Gate(n, theta0, _dtype_of(first), n_inputs=n))
    return model


def _dtype_of(layer):
    dt = layer.dtype
    return np.float32 if dt is None else dt


def gated_mlp(sizes, activation="relu", init="torch", rng=0, dtype=np.float32, scale=1.0, theta0=1.0,
              input_gate=False, alpha=0.01):
    """``[n_in, h_1, …, h_L, n_out]`` → [Gate?] Dense → activation → Gate … Dense → activation → Gate, Dense:
    ``add_gates(mlp(…))``. Same random draws as :func:`minigrow.network.mlp` for the same ``rng`` (so a gated and a
    dense net start from the same weights)."""
    if isinstance(sizes, (list, tuple)) and len(sizes) < 3:
        sizes = [check_int(f"sizes[{i}]", s, lo=1) for i, s in enumerate(sizes)]
        raise ValueError(f"sizes: expected [n_in, at least one hidden width, n_out], got {sizes}")
    theta0 = check_prob("theta0", theta0)
    model = mlp(sizes, activation, init=init, rng=check_rng("rng", rng), dtype=dtype, alpha=alpha, scale=scale)
    return add_gates(model, theta0=theta0, input_gate=input_gate)


# ==============================================================================================================
# Gates: sampling, fixed-gate forward
# ==============================================================================================================

def sample_gates(model, batch, rng):
    """Draw ξ^l_{nj} ~ Bernoulli(θ^l_j), one independent draw per sample n, for every gate; sets ``xi``.
    ``rng``: a numpy Generator or an int seed. Returns the list of ξ."""
    return _sample_gates(model, check_int("batch", batch, lo=1), check_rng("rng", rng))


def _sample_gates(model, batch, rng):
    gs = gates(model)
    for g in gs:
        if np.all(g.theta == 1.0):         # ξ = 1 surely: no draw (warm-up, deterministic net)
            g.xi = np.ones((batch, g.n_units), dtype=g.gate_dtype)
            continue
        u = rng.random((batch, g.n_units), dtype=np.float32)    # float32 uniforms: half the cost of float64
        g.xi = (u < g.theta).astype(g.gate_dtype)
    return [g.xi for g in gs]


def set_gates(model, values):
    """Set ``xi`` of the gates to ``values`` (one array per gate, shape (units,) or (batch, units); None clears
    them, so forward uses θ)."""
    gs = gates(model)
    if values is None:
        values = [None] * len(gs)
    if len(values) != len(gs):
        raise ValueError(f"gates: expected {len(gs)} arrays (one per gate), got {len(values)}")
    for g, v in zip(gs, values):
        g.xi = None if v is None else np.asarray(v, dtype=g.gate_dtype)


def apply_layer(layer, x, gate=None):
    """Pure forward of one layer (no caches, eval mode), with a given gate for a Gate. ``x`` may have extra
    leading axes (batch, variants, features) for dense layers, activations and gates."""
    if isinstance(layer, Gate):
        return layer.apply(x, gate)
    if isinstance(layer, Dense):
        z = x @ layer.params["W"].T
        return z + layer.params["b"] if "b" in layer.params else z
    if isinstance(layer, Activation):
        return layer.apply(x)
    return layer.forward(x, train=False)


def forward_with_gates(model, X, values):
    """Network outputs with the gates fixed to ``values`` (one array per gate, broadcastable to (batch, units));
    no gate state is touched. The oracle for the tests and the enumeration."""
    chain, sites, _ = _structure(model)
    if len(values) != len(sites):
        raise ValueError(f"values: expected {len(sites)} arrays (one per gate), got {len(values)}")
    at = {s.pos: v for s, v in zip(sites, values)}
    for k, layer in enumerate(chain):
        X = apply_layer(layer, X, at.get(k))
    return X


# ==============================================================================================================
# Physical pruning
# ==============================================================================================================

def remove_units(model, p, keep):
    """Keep only units ``keep`` of gate ``p``: through :func:`minigrow.surgery.remove_units` at its producer (rows
    of W and b with their optimiser state, θ and unit ids by the gate's own :meth:`Gate.remove_outputs`, the
    consumer's input columns); for an input gate, the gate and the consumer's columns. Returns the sorted kept
    indices. Works through nested Sequentials (the edit runs on the flattened chain of the same layer objects)."""
    chain, sites, _ = _structure(model)
    if not sites:
        raise ValueError("model: expected a network with gated units (Gate layers; see add_gates or gated_mlp)")
    p = _gate_number(p, len(sites))
    site = sites[p]
    keep = check_keep("keep", keep, site.gate.n_units)
    if site.consumer is None:
        raise ValueError(f"cannot remove units of gate {p}: {site.blocked}")
    view = Sequential(chain)                              # the same layer objects, nesting flattened
    if site.producer is not None:
        return surgery_remove_units(view, site.prod_pos, keep)
    if site.gate.n_inputs is None and not _is_input_gate(chain, site.pos):
        raise ValueError(f"cannot remove units of gate {p}: it has no producer and is not the network's input gate")
    plan = [chain[m] for m in range(site.pos + 1, site.cons_pos)]
    if any(layer.unit_kind != "elementwise" for layer in plan):
        raise ValueError(f"cannot remove input units of gate {p}: a flatten lies between it and its consumer")
    site.gate.remove_outputs(keep)                        # θ, ζ, unit_ids: the gate selects the rest itself
    for layer in plan:
        layer.remove_outputs(keep)
    site.consumer.remove_inputs(keep)                     # the consumer's columns with their optimiser state
    if site.feeder is not None:
        _compact(view, site)
    return keep


def _is_input_gate(chain, pos):
    """Whether the gate at chain position ``pos`` sees the network's input (only parameter-free element-wise
    layers in front of it)."""
    return all(chain[m].unit_kind == "elementwise" and not chain[m].params for m in range(pos))


def _compact(view, site):
    r"""Compaction behind a feature gate: every channel c of the feeder (the conv in front of the flatten) none of
    whose H·W flattened features c·HW … c·HW + HW − 1 the gate still reads is removed physically through
    :func:`minigrow.surgery.remove_units` (its kernels and bias with their optimiser state, any per-channel layer
    in between, the Flatten's shape); the gate renumbers its features on the way (:meth:`Gate.remap_inputs`), the
    consumer keeps all its columns. The network's function is unchanged: the removed channels were read by no
    one. Returns the kept channels."""
    g, C = site.gate, site.feeder.out_units
    hw = g.n_inputs // C
    present = np.unique(g.index // hw)                 # channels with at least one kept feature
    if present.size < C:
        surgery_remove_units(view, site.feed_pos, present)
    return present


def prune(model, eps=1e-3, min_units=1):
    """Remove every unit with θ_j ≤ ε at every gate, keeping at least ``min_units`` (the largest θ).
    Returns ``{gate number: number removed}``."""
    check_nonneg("eps", eps)
    removed = {}
    for p, g in enumerate(gates(model)):
        th = g.theta
        keep = np.flatnonzero(th > eps)
        if keep.size < min_units:
            keep = np.sort(np.argsort(-th, kind="stable")[:min(min_units, th.size)])
        if keep.size < th.size:
            removed[p] = int(th.size - keep.size)
            remove_units(model, p, keep)
    return removed


def _drop_gates(seq):
    seq.layers = [layer for layer in seq.layers if not isinstance(layer, Gate)]
    for layer in seq.layers:
        if isinstance(layer, Sequential):
            _drop_gates(layer)


def _keep_selections(model, chain, sites):
    """Before the gates are dropped: a selecting gate inside the network (a feature gate) leaves a
    :class:`~minigrow.layers.Select` of its features in its place when it reads fewer than its input width."""
    for s in sites:
        g = s.gate
        if g.n_inputs is None or _is_input_gate(chain, s.pos) or g.n_units == g.n_inputs:
            continue
        for _, layer in model.named_layers():
            if isinstance(layer, Sequential) and any(x is g for x in layer.layers):
                i = next(i for i, x in enumerate(layer.layers) if x is g)
                layer.layers[i] = Select(g.n_inputs, g.n_units, g.index)
                break


def to_deterministic(model, threshold=0.5):
    """The final network without gates: units with θ_j < ``threshold`` are removed, the others get gate 1 and the
    gates disappear (an input gate's ``unit_ids`` are returned so the caller feeds only the kept inputs; a
    feature gate behind a flatten that reads fewer than all flattened features becomes a
    :class:`~minigrow.layers.Select` of them, a parameter-free layer saved with the net). Returns
    ``(Sequential, input_ids or None)``, a copy with fresh optimiser state. For θ ∈ {0, 1} the outputs equal those
    of the gated network with ξ = θ."""
    threshold = check_prob("threshold", threshold)
    m = copy.deepcopy(model)
    for p, g in enumerate(gates(m)):
        keep = np.flatnonzero(g.theta >= threshold)
        if keep.size == 0:
            keep = np.array([int(np.argmax(g.theta))])
        if keep.size < g.n_units:
            remove_units(m, p, keep)
        g.theta[:] = 1.0
    chain, sites, _ = _structure(m)
    input_ids = next((s.gate.unit_ids.copy() for s in sites
                      if s.gate.n_inputs is not None and _is_input_gate(chain, s.pos)), None)
    _keep_selections(m, chain, sites)
    _drop_gates(m)
    for _, layer in m.named_layers():
        layer.state = {}
        layer._init_grads()
        layer._cache = None
    return m, input_ids
