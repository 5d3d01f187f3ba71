"""A chain of layers, and the container every model is."""
from __future__ import annotations

import numpy as np

from ..validate import _describe, check_array, check_int
from .base import Layer, register_layer

__all__ = ["Sequential", "check_model"]


#: Chunk sizes of evaluation and prediction: 4096 rows of (samples, features); 256 images — a conv net's activations
#: and column matrices per image are ~10⁴–10⁵ numbers, so 4096 images would take gigabytes (LeNet-5: 1.7 GB peak
#: measured, 0.39 GB with 256).
EVAL_BATCH, EVAL_BATCH_IMAGES = 4096, 256


def eval_batch(X, batch_size=None):
    """``batch_size`` if given, else the default chunk for ``X``: 4096 rows, or 256 images for N-D input."""
    return batch_size if batch_size is not None else (EVAL_BATCH if X.ndim == 2 else EVAL_BATCH_IMAGES)


@register_layer
class Sequential(Layer):
    """A chain of layers. ``forward`` runs them in order, ``backward`` in reverse.

    Structural edits — :meth:`insert`, :meth:`remove` and :mod:`minigrow.surgery` — keep every untouched
    layer's parameters, buffers *and optimiser state* as they are. A Sequential may hold Sequentials (and any
    composite layer); each layer object may appear only once in the whole network.
    """

    def __init__(self, layers=()):
        super().__init__()
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}]: expected a minigrow Layer, got {type(layer).__name__}")
        self.layers = layers
        self.check_unique_layers()

    # A Sequential holds no parameters itself; its layers do.
    def forward(self, x, train=True):
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, dout, need_input_grad=True):
        for i in range(len(self.layers) - 1, -1, -1):
            dout = self.layers[i].backward(dout, need_input_grad or i > 0)
        return dout

    def forward_all(self, x, train=False):
        """The output of every layer, ``[x, out_0, out_1, …]`` (eval mode by default). ``backward`` may follow."""
        outs = [x]
        for layer in self.layers:
            outs.append(layer.forward(outs[-1], train))
        return outs

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def children(self):
        return [(f"layers.{i}", layer) for i, layer in enumerate(self.layers)]

    def insert(self, index, *layers):
        """Insert ``layers`` before position ``index`` (0 … len). New parameters start with fresh state."""
        index = check_int("index", index, lo=0, hi=len(self.layers))
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"insert: expected minigrow Layers, got {type(layer).__name__}")
        old = list(self.layers)
        self.layers[index:index] = list(layers)
        try:
            self.check_unique_layers()
        except ValueError:
            self.layers = old
            raise

    def remove(self, index):
        """Remove and return the layer at ``index`` (its optimiser state goes with it)."""
        index = check_int("index", index, lo=-len(self.layers), hi=len(self.layers) - 1)
        return self.layers.pop(index)

    @property
    def in_units(self):
        """Units (axis 1) the first layer that knows it expects, or None."""
        for layer in self.layers:
            n = getattr(layer, "in_units", None)
            if n is not None:
                return n
            if layer.params:
                return None
        return None

    @property
    def out_units(self):
        for layer in reversed(self.layers):
            n = getattr(layer, "out_units", None)
            if n is not None:
                return n
            if layer.params:
                return None
        return None

    def config(self):
        return {}

    def predict_logits(self, X, batch_size=None):
        """Eval-mode outputs for ``X`` (batch first, any rank) in chunks of ``batch_size`` samples (default 4096
        rows, 256 images), no caches kept beyond one chunk."""
        X = check_array("X", X)
        if X.ndim < 2:
            raise ValueError(f"X: expected a batch-first array of rank ≥ 2 (samples, …), got shape {X.shape}")
        batch_size = eval_batch(X, None if batch_size is None else check_int("batch_size", batch_size, lo=1))
        dt = self.dtype or X.dtype
        out = [self.forward(X[i:i + batch_size].astype(dt, copy=False), train=False)
               for i in range(0, X.shape[0], batch_size)]
        return np.concatenate(out, axis=0)

    def predict(self, X, batch_size=None):
        """Predicted class (argmax of the outputs) for each sample of ``X``."""
        return self.predict_logits(X, batch_size).argmax(axis=1)

    def summary(self) -> str:
        lines = [f"{'#':>3}  {'layer':<44} {'params':>10} {'MACs/sample':>12}"]
        for i, layer in enumerate(self.layers):
            lines.append(f"{i:>3}  {repr(layer)[:44]:<44} {layer.n_params():>10,} {layer.macs():>12,}")
        lines.append(f"     {'total':<44} {self.n_params():>10,} {self.macs():>12,}")
        return "\n".join(lines)

    def __repr__(self):
        return "Sequential(\n" + "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers)) + "\n)"


def check_model(name, model):
    """A :class:`Sequential` (the container every model is), else a TypeError naming ``name``."""
    if not isinstance(model, Sequential):
        raise TypeError(f"{name}: expected a minigrow Sequential (e.g. from minigrow.mlp), got "
                        f"{_describe(model)}")
    return model
