"""Layers with hand-written forward and backward passes.

Every layer owns three dicts with the same keys:

* ``params[name]`` — the parameter array,
* ``grads[name]``  — dL/d(param), written by ``backward``,
* ``state[name]``  — the optimiser's per-parameter state (momentum, Adam moments …), empty until the optimiser
  first touches the parameter.

Because the optimiser state lives next to the parameter, structural edits are local: inserting a layer brings
new parameters with empty (fresh) state, removing a layer takes its state with it, and removing units of a layer
slices the parameter, its gradient and its state arrays together (:meth:`Layer.slice_param`).

Conventions: batch-first arrays (``x`` has shape ``(batch, features)``); dense weights are stored as
``W ∈ R^{out × in}`` so that ``z = W a + b`` reads as in the papers and the batch version is ``Z = A Wᵀ + b``.
``forward`` caches what ``backward`` needs on the layer itself; ``backward(dout)`` fills ``grads`` and returns
the gradient with respect to the layer input.
"""
from __future__ import annotations

import numpy as np

from .initializers import init_dense
from .validate import check_array, check_choice, check_int, check_nonneg, check_rng

__all__ = [
    "Layer", "Dense", "Activation", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "ResidualBlock", "Sequential",
    "ACTIVATIONS", "register_layer", "LAYER_TYPES", "activation_layer",
]

LAYER_TYPES: dict[str, type] = {}


def register_layer(cls):
    """Class decorator: make a layer type known to :func:`minigrow.io.load` (by its class name)."""
    LAYER_TYPES[cls.__name__] = cls
    return cls


# --------------------------------------------------------------------------------------------------------------
# Activation functions σ and their derivatives, shared by activation layers and residual blocks.
# Each derivative is written in terms of the pre-activation z and the output a = σ(z), whichever is cheaper.
# --------------------------------------------------------------------------------------------------------------

def _relu(z, alpha):
    return np.maximum(z, 0)


def _relu_grad(z, a, da, alpha):
    # σ'(z) = 1[z > 0]; the convention σ'(0) = 0 matters for SensLI (sensli.md §2).
    return da * (z > 0)


def _leaky(z, alpha):
    return np.where(z > 0, z, alpha * z)


def _leaky_grad(z, a, da, alpha):
    return np.where(z > 0, da, alpha * da)


def _tanh(z, alpha):
    return np.tanh(z)


def _tanh_grad(z, a, da, alpha):
    return da * (1 - a * a)          # tanh' = 1 − tanh²


def _sigmoid(z, alpha):
    return 0.5 * (1 + np.tanh(0.5 * z))   # = 1/(1+e^{−z}), without overflow for large |z|


def _sigmoid_grad(z, a, da, alpha):
    return da * a * (1 - a)


def _identity(z, alpha):
    return z


def _identity_grad(z, a, da, alpha):
    return da


ACTIVATIONS = {
    "relu": (_relu, _relu_grad),
    "leaky_relu": (_leaky, _leaky_grad),
    "tanh": (_tanh, _tanh_grad),
    "sigmoid": (_sigmoid, _sigmoid_grad),
    "identity": (_identity, _identity_grad),
}


class Layer:
    """Base class. Subclasses set ``params`` in ``__init__`` and implement ``forward``/``backward``."""

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, dict] = {}
        self.frozen: set[str] = set()      # parameter names the optimiser must not update

    # --- the math ---------------------------------------------------------------------------------------------
    def forward(self, x, train=True):
        raise NotImplementedError

    def backward(self, dout, need_input_grad=True):
        raise NotImplementedError

    # --- bookkeeping ------------------------------------------------------------------------------------------
    def _init_grads(self):
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def zero_grad(self):
        for g in self.grads.values():
            g.fill(0)

    def config(self) -> dict:
        """JSON-able hyper-parameters; ``type(self)(**config)`` rebuilds the layer (with placeholder params)."""
        return {}

    @classmethod
    def from_config(cls, config, params):
        cfg = dict(config)
        if "init" in cfg:
            cfg["init"] = "zeros"       # the values come from ``params``: skip the random draw
        layer = cls(**cfg)
        if "init" in config:
            layer.init = config["init"]
        for k, v in params.items():
            if k not in layer.params:
                raise ValueError(f"{cls.__name__}: unexpected parameter {k!r} in saved data")
            if layer.params[k].shape != v.shape:
                raise ValueError(f"{cls.__name__}.{k}: saved shape {v.shape} does not match the "
                                 f"configured shape {layer.params[k].shape}")
            layer.params[k] = np.array(v, copy=True)
        layer._init_grads()
        return layer

    @property
    def dtype(self):
        for v in self.params.values():
            return v.dtype
        return None

    def astype(self, dtype):
        """Cast parameters, gradients and optimiser state to ``dtype`` (in place); returns self."""
        for k in self.params:
            self.params[k] = self.params[k].astype(dtype)
            self.grads[k] = self.grads[k].astype(dtype)
            for s, v in self.state.get(k, {}).items():
                if isinstance(v, np.ndarray):
                    self.state[k][s] = v.astype(dtype)
        return self

    def n_params(self) -> int:
        return int(sum(v.size for v in self.params.values()))

    def macs(self) -> int:
        """Multiply-adds of one forward pass for one sample (backward costs about twice this)."""
        return 0

    def slice_param(self, name, axis, keep):
        """Keep only indices ``keep`` of parameter ``name`` along ``axis`` — in the parameter, its gradient and
        every optimiser-state array of the same shape. The primitive behind unit removal."""
        keep = np.asarray(keep)
        p = self.params[name]
        self.params[name] = np.ascontiguousarray(np.take(p, keep, axis=axis))
        self.grads[name] = np.ascontiguousarray(np.take(self.grads[name], keep, axis=axis))
        for s, v in self.state.get(name, {}).items():
            if isinstance(v, np.ndarray) and v.shape == p.shape:
                self.state[name][s] = np.ascontiguousarray(np.take(v, keep, axis=axis))

    def __repr__(self):
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({cfg})"


@register_layer
class Dense(Layer):
    r"""Affine layer  z = W a + b,  batch form  Z = A Wᵀ + b.

    Backward, for upstream δ = ∂L/∂Z (one row per sample):

    .. math::  ∂L/∂W = δᵀ A,\qquad ∂L/∂b = Σ_n δ_n,\qquad ∂L/∂A = δ W

    (``W`` has shape ``(out_features, in_features)``.)
    """

    def __init__(self, in_features, out_features, init="torch", rng=None, dtype=np.float32, bias=True,
                 scale=1.0):
        super().__init__()
        self.in_features = check_int("in_features", in_features, lo=1)
        self.out_features = check_int("out_features", out_features, lo=1)
        self.init = init
        self.bias = bool(check_choice("bias", bias, {True, False}))
        self.scale = float(scale)
        rng = check_rng("rng", 0 if rng is None else rng)
        W, b = init_dense(self.in_features, self.out_features, init, rng, dtype, scale)
        self.params["W"] = W
        if self.bias:
            self.params["b"] = b
        self._init_grads()

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "init": self.init,
                "bias": self.bias, "scale": self.scale}

    def forward(self, x, train=True):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Dense({self.in_features}→{self.out_features}): expected input of shape "
                             f"(batch, {self.in_features}), got {x.shape}")
        self.x = x
        z = x @ self.params["W"].T                            # Z = A Wᵀ + b
        if self.bias:
            z += self.params["b"]
        return z

    def backward(self, dout, need_input_grad=True):
        np.matmul(dout.T, self.x, out=self.grads["W"])        # ∂L/∂W = δᵀ A
        if self.bias:
            np.sum(dout, axis=0, out=self.grads["b"])         # ∂L/∂b = Σ_n δ_n
        return dout @ self.params["W"] if need_input_grad else None   # ∂L/∂A = δ W

    def macs(self):
        return self.in_features * self.out_features

    def remove_outputs(self, keep):
        """Keep output units ``keep`` (rows of W, entries of b)."""
        self.slice_param("W", 0, keep)
        if self.bias:
            self.slice_param("b", 0, keep)
        self.out_features = int(self.params["W"].shape[0])

    def remove_inputs(self, keep):
        """Keep input units ``keep`` (columns of W)."""
        self.slice_param("W", 1, keep)
        self.in_features = int(self.params["W"].shape[1])


class Activation(Layer):
    """Element-wise a = σ(z) with ∂L/∂z = σ'(z) ⊙ ∂L/∂a. No parameters."""

    name = "identity"

    def __init__(self, alpha=0.01):
        super().__init__()
        self.alpha = check_nonneg("alpha", alpha)
        self._f, self._df = ACTIVATIONS[self.name]

    def config(self):
        return {"alpha": self.alpha} if self.name == "leaky_relu" else {}

    def forward(self, x, train=True):
        self.z = x
        self.a = self._f(x, self.alpha)
        return self.a

    def backward(self, dout, need_input_grad=True):
        return self._df(self.z, self.a, dout, self.alpha)


@register_layer
class ReLU(Activation):
    """σ(z) = max(z, 0), with σ'(0) = 0."""
    name = "relu"

    def __init__(self):
        super().__init__()


@register_layer
class LeakyReLU(Activation):
    """σ(z) = z for z > 0, αz otherwise."""
    name = "leaky_relu"


@register_layer
class Tanh(Activation):
    """σ(z) = tanh z, σ' = 1 − σ²."""
    name = "tanh"

    def __init__(self):
        super().__init__()


@register_layer
class Sigmoid(Activation):
    """σ(z) = 1/(1 + e^{−z}), σ' = σ(1 − σ)."""
    name = "sigmoid"

    def __init__(self):
        super().__init__()


def activation_layer(name, alpha=0.01):
    """Return a fresh activation layer for ``name`` in ``ACTIVATIONS`` (except 'identity')."""
    table = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
    check_choice("activation", name, set(table) | {"leaky_relu"})
    return LeakyReLU(alpha) if name == "leaky_relu" else table[name]()


@register_layer
class ResidualBlock(Layer):
    r"""Residual block  h ↦ h + W2 σ(W1 h + b1)  (W2 without bias, as in the SensLI ResNets, "res2").

    Forward:  z = W1 h + b1,  s = σ(z),  out = h + W2 s.
    Backward, for g = ∂L/∂out:

    .. math::
        ∂L/∂W2 = gᵀ s,\quad d_z = σ'(z) ⊙ (g W2),\quad ∂L/∂W1 = d_zᵀ h,\quad ∂L/∂b1 = Σ_n d_z,
        \quad ∂L/∂h = g + d_z W1
    """

    def __init__(self, width, hidden=None, activation="tanh", init="torch", rng=None, dtype=np.float32,
                 alpha=0.01):
        super().__init__()
        self.width = check_int("width", width, lo=1)
        self.hidden = self.width if hidden is None else check_int("hidden", hidden, lo=1)
        self.activation = check_choice("activation", activation, set(ACTIVATIONS))
        self.alpha = float(alpha)
        self.init = init
        self._f, self._df = ACTIVATIONS[self.activation]
        rng = check_rng("rng", 0 if rng is None else rng)
        W1, b1 = init_dense(self.width, self.hidden, init, rng, dtype)
        W2, _ = init_dense(self.hidden, self.width, init, rng, dtype)
        self.params.update(W1=W1, b1=b1, W2=W2)
        self._init_grads()

    def config(self):
        return {"width": self.width, "hidden": self.hidden, "activation": self.activation, "init": self.init,
                "alpha": self.alpha}

    def forward(self, x, train=True):
        p = self.params
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"ResidualBlock({self.width}): expected input of shape (batch, {self.width}), "
                             f"got {x.shape}")
        self.h = x
        self.z = x @ p["W1"].T                                       # z = W1 h + b1
        self.z += p["b1"]
        self.s = self._f(self.z, self.alpha)                         # s = σ(z)
        out = self.s @ p["W2"].T                                     # out = h + W2 s
        out += x
        return out

    def backward(self, dout, need_input_grad=True):
        p, g = self.params, self.grads
        np.matmul(dout.T, self.s, out=g["W2"])                        # ∂L/∂W2 = gᵀ s
        dz = self._df(self.z, self.s, dout @ p["W2"], self.alpha)     # d_z = σ'(z) ⊙ (g W2)
        np.matmul(dz.T, self.h, out=g["W1"])                          # ∂L/∂W1 = d_zᵀ h
        np.sum(dz, axis=0, out=g["b1"])                               # ∂L/∂b1 = Σ_n d_z
        return dout + dz @ p["W1"] if need_input_grad else None      # ∂L/∂h = g + d_z W1

    def macs(self):
        return 2 * self.width * self.hidden


@register_layer
class Sequential(Layer):
    """A chain of layers. ``forward`` runs them in order, ``backward`` in reverse.

    Structural edits — :meth:`insert`, :meth:`remove` and the layers' own ``remove_outputs``/``remove_inputs`` —
    keep every untouched layer's parameters *and optimiser state* as they are.
    """

    def __init__(self, layers=()):
        super().__init__()
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}]: expected a minigrow Layer, got {type(layer).__name__}")

    # A Sequential holds no parameters itself; its layers do.
    def forward(self, x, train=True):
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, dout, need_input_grad=True):
        for i in range(len(self.layers) - 1, -1, -1):
            dout = self.layers[i].backward(dout, need_input_grad or i > 0)
        return dout

    def __call__(self, x, train=False):
        return self.forward(x, train)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def parameters(self):
        """Yield ``(layer, name)`` for every parameter of every (nested) layer."""
        for layer in self.layers:
            if isinstance(layer, Sequential):
                yield from layer.parameters()
            else:
                for name in layer.params:
                    yield layer, name

    def insert(self, index, *layers):
        """Insert ``layers`` before position ``index`` (0 … len). New parameters start with fresh state."""
        index = check_int("index", index, lo=0, hi=len(self.layers))
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"insert: expected minigrow Layers, got {type(layer).__name__}")
        self.layers[index:index] = list(layers)

    def remove(self, index):
        """Remove and return the layer at ``index`` (its optimiser state goes with it)."""
        index = check_int("index", index, lo=-len(self.layers), hi=len(self.layers) - 1)
        return self.layers.pop(index)

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

    def astype(self, dtype):
        for layer in self.layers:
            layer.astype(dtype)
        return self

    @property
    def dtype(self):
        for layer in self.layers:
            if layer.dtype is not None:
                return layer.dtype
        return None

    def n_params(self):
        return int(sum(layer.n_params() for layer in self.layers))

    def macs(self):
        return int(sum(layer.macs() for layer in self.layers))

    def config(self):
        return {}

    def predict_logits(self, X, batch_size=4096):
        """Inference-mode outputs for ``X`` in chunks (no caches kept beyond one chunk)."""
        X, batch_size = check_array("X", X, ndim=2), check_int("batch_size", batch_size, lo=1)
        dt = self.dtype or X.dtype
        out = [self.forward(X[i:i + batch_size].astype(dt, copy=False), train=False)
               for i in range(0, X.shape[0], batch_size)]
        return np.concatenate(out, axis=0)

    def predict(self, X, batch_size=4096):
        """Predicted class (argmax of the outputs) for each row of ``X``."""
        return self.predict_logits(X, batch_size).argmax(axis=1)

    def summary(self) -> str:
        lines = [f"{'#':>3}  {'layer':<44} {'params':>10} {'MACs/sample':>12}"]
        for i, layer in enumerate(self.layers):
            lines.append(f"{i:>3}  {repr(layer)[:44]:<44} {layer.n_params():>10,} {layer.macs():>12,}")
        lines.append(f"     {'total':<44} {self.n_params():>10,} {self.macs():>12,}")
        return "\n".join(lines)

    def __repr__(self):
        return "Sequential(\n" + "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers)) + "\n)"
