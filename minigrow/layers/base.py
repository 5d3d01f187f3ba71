"""The layer contract: what every minigrow layer is and does.

Every layer — a dense or conv layer, an activation, a normalisation, a gate, a residual block, a whole
:class:`~minigrow.layers.Sequential` — is a :class:`Layer` and follows these rules. The rest of minigrow (optimisers,
the trainer, saving, checkpoints, surgery, gradient checking and the three methods) relies on nothing else.

The math
    ``out = forward(x, train=True)`` and ``dx = backward(dout, need_input_grad=True)``.

    * Inputs are **batch-first** N-D arrays: ``(N, features)`` for dense layers, ``(N, C, H, W)`` (NCHW) for images.
      Axis 1 is always the *unit axis*: features of a dense layer, channels of a conv layer.
    * ``forward`` keeps what ``backward`` needs in the layer's private ``_cache`` (CS231n's cache, kept on the
      layer); no other module reads it. ``backward`` must follow the ``forward`` it belongs to.
    * ``backward`` **overwrites** ``grads`` (it never accumulates) and returns ∂L/∂x (or None when
      ``need_input_grad`` is False and nothing upstream needs it).
    * ``train`` selects the mode. ``train=True``: training mode (batch statistics, dropout masks drawn, running
      statistics updated). ``train=False``: eval mode — the forward pass **updates nothing** (no buffer, no RNG
      draw), so it is the mode of evaluation, prediction and of every measurement the methods make (sensitivities,
      bundles). ``backward`` works after a forward pass in either mode.

The state
    * ``params[name]`` — trained arrays; ``grads[name]`` — ∂L/∂param, same keys and shapes;
    * ``state[name]`` — the optimiser's per-parameter state (Adam's m, v, t …), empty until first used;
    * ``buffers[name]`` — arrays that are not trained but belong to the model (running statistics of batch norm);
      saved, loaded, checkpointed and sliced with the units like parameters;
    * ``frozen`` — parameter names the optimiser leaves alone.

    Because all of it lives on the layer, structural edits are local: an inserted layer brings fresh optimiser
    state, a removed layer takes its state along, and removing units slices a parameter, its gradient, its
    optimiser state and the matching buffers together (:meth:`Layer.slice_param`, :mod:`minigrow.surgery`).

Composite layers
    A layer may hold sub-layers (as attributes, or in a list attribute such as ``Sequential.layers``);
    :meth:`children` finds them, so parameters, buffers, state, saving and checkpoints reach every nested layer.
    A layer object may appear only once in a network.

Units (for structural edits; :mod:`minigrow.surgery`)
    ``unit_kind`` says how a layer maps the units of axis 1 of its input to those of its output:

    * ``"affine"`` — a producer: each output unit has its own slice of the parameters (``out_axes``) and each input
      unit its own slice (``in_axes``), e.g. ``Dense`` (W rows / columns) and ``Conv2D`` (filters / input channels);
    * ``"elementwise"`` — unit j of the output depends on unit j of the input only (activations, pooling, dropout,
      batch norm, gates); per-unit parameters and buffers are listed in ``out_axes``;
    * ``"flatten"`` — ``(N, C, H, W) → (N, C·H·W)``: unit c becomes the block of H·W columns c·H·W … (c+1)·H·W − 1;
    * ``"opaque"`` — anything else (layer norm, residual blocks, whole sub-networks): surgery will not pass through.
"""
from __future__ import annotations

import re

import numpy as np

__all__ = ["Layer", "register_layer", "LAYER_TYPES", "check_keep", "display_path"]

LAYER_TYPES: dict[str, type] = {}


def register_layer(cls):
    """Class decorator: make a layer type known to :func:`minigrow.io.load` (by its class name)."""
    LAYER_TYPES[cls.__name__] = cls
    return cls


def display_path(path):
    """``"layers.2.layers.0"`` → ``"layers[2].layers[0]"`` (how a user indexes it)."""
    return re.sub(r"\.(\d+)", r"[\1]", path)


class Layer:
    """Base class of every layer; see the module docstring for the contract.

    Subclasses fill ``params`` (and ``buffers``) in ``__init__``, call :meth:`_init_grads`, and implement
    :meth:`forward` and :meth:`backward`; :meth:`config` returns the constructor arguments.
    """

    unit_kind = "opaque"
    stochastic = False          # True for layers that draw random numbers in training mode (Dropout)

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, dict] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.frozen: set[str] = set()      # parameter names the optimiser must not update
        self._cache = None

    # --- the math ---------------------------------------------------------------------------------------------
    def forward(self, x, train=True):
        raise NotImplementedError

    def backward(self, dout, need_input_grad=True):
        raise NotImplementedError

    def __call__(self, x, train=False):
        """``layer(x)`` is an eval-mode forward pass."""
        return self.forward(x, train)

    # --- units ------------------------------------------------------------------------------------------------
    def out_axes(self) -> dict:
        """``{name: axis}`` of the parameters and buffers indexed by the layer's output units."""
        return {}

    def in_axes(self) -> dict:
        """``{name: axis}`` of the parameters indexed by the layer's input units (affine layers)."""
        return {}

    def remove_outputs(self, keep):
        """Keep output units ``keep`` (sorted, validated indices): slice every array listed in :meth:`out_axes`
        with its gradient and optimiser state. For a pass-through layer (activation, pooling) this does nothing.
        Use :func:`minigrow.surgery.remove_units`, which also slices the consumers."""
        for name, axis in self.out_axes().items():
            self.slice_param(name, axis, keep)
        self._resized()

    def remove_inputs(self, keep):
        """Keep input units ``keep``: slice every array listed in :meth:`in_axes` (affine layers)."""
        for name, axis in self.in_axes().items():
            self.slice_param(name, axis, keep)
        self._resized()

    def _resized(self):
        """Refresh size attributes (``out_features`` …) from the arrays after a removal; override as needed."""

    # --- composite layers -------------------------------------------------------------------------------------
    def children(self):
        """``[(name, layer), …]``: the direct sub-layers, in attribute order (``"layers.0"`` for list items)."""
        out = []
        for key, v in self.__dict__.items():
            if key.startswith("_"):
                continue
            if isinstance(v, Layer):
                out.append((key, v))
            elif isinstance(v, (list, tuple)) and v and all(isinstance(u, Layer) for u in v):
                out.extend((f"{key}.{i}", u) for i, u in enumerate(v))
        return out

    def named_layers(self, prefix=""):
        """Yield ``(path, layer)`` for this layer and every nested one, depth first (this layer first, path ``""``)."""
        yield prefix, self
        for name, child in self.children():
            yield from child.named_layers(f"{prefix}.{name}" if prefix else name)

    def parameters(self):
        """Yield ``(layer, name)`` for every parameter of this layer and its sub-layers (own parameters first)."""
        for _, layer in self.named_layers():
            for name in layer.params:
                yield layer, name

    def zero_grad(self):
        for _, layer in self.named_layers():
            for g in layer.grads.values():
                g.fill(0)

    def _init_grads(self):
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def check_unique_layers(self):
        """Raise ValueError when one layer object appears twice in this network (it would be trained twice
        per step and saved twice)."""
        seen = {}
        for path, layer in self.named_layers():
            if id(layer) in seen:
                raise ValueError(f"the same {type(layer).__name__} object appears twice in the network (at "
                                 f"{display_path(seen[id(layer)]) or 'the top'} and {display_path(path)}); use a "
                                 f"new layer for each place")
            seen[id(layer)] = path

    # --- bookkeeping ------------------------------------------------------------------------------------------
    def config(self) -> dict:
        """JSON-able hyper-parameters; ``type(self)(**config)`` rebuilds the layer (with placeholder params)."""
        return {}

    @classmethod
    def from_config(cls, config, params, buffers=None):
        """Rebuild a layer from :meth:`config` and its own arrays (sub-layers are filled in by the loader)."""
        cfg = dict(config)
        if "init" in cfg:
            cfg["init"] = "zeros"       # the values come from ``params``: skip the random draw
        layer = cls(**cfg)
        if "init" in config:
            layer.init = config["init"]
        for kind, stored, own in (("parameter", params, layer.params), ("buffer", buffers or {}, layer.buffers)):
            for k, v in stored.items():
                if k not in own:
                    raise ValueError(f"{cls.__name__}: unexpected {kind} {k!r} in saved data")
                if own[k].shape != v.shape:
                    raise ValueError(f"{cls.__name__}.{k}: saved shape {v.shape} does not match the "
                                     f"configured shape {own[k].shape}")
                own[k] = np.array(v, copy=True)
        layer._init_grads()
        return layer

    @property
    def dtype(self):
        for layer, name in self.parameters():
            return layer.params[name].dtype
        return None

    def astype(self, dtype):
        """Cast parameters, gradients, buffers and optimiser state (here and in sub-layers) to ``dtype``."""
        for _, layer in self.named_layers():
            for k in layer.params:
                layer.params[k] = layer.params[k].astype(dtype)
                layer.grads[k] = layer.grads[k].astype(dtype)
                for s, v in layer.state.get(k, {}).items():
                    if isinstance(v, np.ndarray):
                        layer.state[k][s] = v.astype(dtype)
            for k in layer.buffers:
                if layer.buffers[k].dtype.kind == "f":
                    layer.buffers[k] = layer.buffers[k].astype(dtype)
        return self

    def n_params(self) -> int:
        return int(sum(layer.params[name].size for layer, name in self.parameters()))

    def macs(self) -> int:
        """Multiply-adds of one forward pass for one sample (backward costs about twice this)."""
        return int(sum(child.macs() for _, child in self.children()))

    def slice_param(self, name, axis, keep):
        """Keep only indices ``keep`` of parameter (or buffer) ``name`` along ``axis`` — in the parameter, its
        gradient and every optimiser-state array of the same shape. The primitive behind unit removal."""
        keep = np.asarray(keep)
        if name in self.buffers and name not in self.params:
            self.buffers[name] = np.ascontiguousarray(np.take(self.buffers[name], keep, axis=axis))
            return
        p = self.params[name]
        self.params[name] = np.ascontiguousarray(np.take(p, keep, axis=axis))
        self.grads[name] = np.ascontiguousarray(np.take(self.grads[name], keep, axis=axis))
        for s, v in self.state.get(name, {}).items():
            if isinstance(v, np.ndarray) and v.shape == p.shape:
                self.state[name][s] = np.ascontiguousarray(np.take(v, keep, axis=axis))

    def __repr__(self):
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({cfg})"


def check_keep(name, keep, n):
    """Validate the indices of the units to keep out of ``n``: integers, sorted or not, in [0, n), no duplicates,
    at least one. A boolean mask of length ``n`` is accepted too. Returns a sorted int64 array."""
    if isinstance(keep, (str, bytes, dict)) or keep is None:
        raise TypeError(f"{name}: expected unit indices (a sequence of ints) or a boolean mask, got "
                        f"{type(keep).__name__}")
    k = np.asarray(keep)
    if k.dtype == bool:
        if k.shape != (n,):
            raise ValueError(f"{name}: a boolean mask must have one entry per unit ({n}), got shape {k.shape}")
        k = np.flatnonzero(k)
    elif k.dtype.kind not in "iu" and not (k.size == 0 and k.dtype.kind == "f"):
        raise TypeError(f"{name}: expected integer unit indices, got dtype {k.dtype}")
    k = k.astype(np.int64).reshape(-1) if k.ndim <= 1 else None
    if k is None:
        raise ValueError(f"{name}: expected a 1-d sequence of unit indices, got shape {np.asarray(keep).shape}")
    if k.size == 0:
        raise ValueError(f"{name}: at least one unit must be kept (got no indices)")
    if k.min() < 0 or k.max() >= n:
        bad = int(k[(k < 0) | (k >= n)][0])
        raise ValueError(f"{name}: unit indices must lie in [0, {n}), got {bad}")
    s = np.sort(k)
    if np.any(s[1:] == s[:-1]):
        raise ValueError(f"{name}: duplicate unit index {int(s[1:][s[1:] == s[:-1]][0])}")
    return s
