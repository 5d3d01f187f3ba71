"""Bundles of every hidden representation of a network: :func:`layer_report` (the definitions are in
:mod:`.formulas`).

Which points of a network are reported is decided by :func:`hidden_activations`; it works on plain chains,
residual networks, block networks (``DenseBlock``, nested Sequentials) and networks with extra elementwise layers
(gates, dropout), and only runs the layers' own eval-mode forward passes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...layers import Activation, Dense, ResidualBlock, Sequential, check_model
from ...validate import check_array, check_labels
from .formulas import BundleDivergenceError, Bundles, bundles, group_rows, weight_amplitude
from .settings import BundleSettings

__all__ = ["LayerBundles", "hidden_activations", "logits_distinct", "layer_report", "format_report"]


@dataclass
class LayerBundles:
    """Bundles of one recorded point of a network (``name``: e.g. 'hidden 3', 'block 2 branch')."""
    name: str
    kind: str           # 'hidden' (a^l after σ), 'branch' (residual branch output), 'block' (block output)
    index: int          # position in model.layers
    bundles: Bundles

    def __getattr__(self, item):        # report.n_bundles, report.entropy … read through to the Bundles
        if item in ("bundles", "__setstate__"):
            raise AttributeError(item)
        return getattr(self.bundles, item)

    def as_dict(self, arrays=False):
        return {"name": self.name, "kind": self.kind, "index": self.index, **self.bundles.as_dict(arrays)}


def _distinct(x, inv):
    """Keep one representative per distinct row of ``x``; ``inv`` maps samples to rows of ``x``."""
    g = group_rows(x)
    first = np.full(int(g.max()) + 1, x.shape[0])
    np.minimum.at(first, g, np.arange(x.shape[0]))
    return x[first], g[inv]


def hidden_activations(model, X, distinct_rows=False):
    """Yield ``(name, kind, index, a)`` for every hidden representation of ``model`` on ``X`` (eval mode).

    * a hidden layer ('hidden'): an activation layer's output a^l = σ(z^l) — or, when elementwise layers (a gate,
      dropout, …: ``unit_kind == "elementwise"``) follow the activation, the output of the **last** of them: they
      act unit by unit on a^l, and their output is what the next layer receives (``index`` is that layer);
    * :class:`ResidualBlock`: its branch output W2 σ(W1 h + b1) ('branch', :meth:`ResidualBlock.branch`) and its
      output h + branch ('block');
    * any other layer with parameters before the output layer, e.g. a nested :class:`Sequential` (reported as one
      block: its output) or a ``DenseBlock`` of a block network: its output ('block'), again after any elementwise
      layers that follow it.

    The layers are run one after the other with their own ``forward(x, train=False)`` (nothing is updated), as
    :meth:`Sequential.forward` does. ``distinct_rows=True`` evaluates every layer once per *distinct* input row and
    copies the result to the duplicates ("function semantics"): BLAS does not guarantee bit-identical outputs for
    identical rows (see :mod:`.formulas`), so the exact-equality propositions are checked this way. A generator:
    one layer's activations are alive at a time (apart from the consumer's).
    """
    check_model("model", model)
    x = check_array("X", X, dtype=model.dtype)                # here, not at the first next(): eager checks
    if x.ndim < 2:
        raise ValueError(f"X: expected a batch-first array (samples, …), got shape {x.shape}")
    return _hidden_activations(model, x, distinct_rows)


def _hidden_activations(model, x, distinct_rows):
    inv = np.arange(x.shape[0])
    if distinct_rows:
        x, inv = _distinct(x, inv)
    layers = model.layers
    # the output layer: the last layer with parameters (its outputs, the logits, are not a hidden layer)
    last_out = max((i for i, lay in enumerate(layers) if lay.params or isinstance(lay, Sequential)), default=-1)
    n_h = n_b = 0
    pending = None                    # [name, kind, index, x, inv]: a point whose elementwise run may go on
    for i, layer in enumerate(layers):
        elementwise = layer.unit_kind == "elementwise" and i < last_out
        if pending is not None and not elementwise:
            name, kind, idx, xp, ip = pending
            pending = None
            yield name, kind, idx, xp[ip]
        if isinstance(layer, ResidualBlock):
            branch = layer.branch(x)
            yield f"block {n_b} branch", "branch", i, branch[inv]
            x = layer.forward(x, train=False)          # h + branch
            if distinct_rows:
                x, inv = _distinct(x, inv)
            pending = [f"block {n_b}", "block", i, x, inv]
            n_b += 1
            continue
        x = layer.forward(x, train=False)
        if distinct_rows:
            x, inv = _distinct(x, inv)
        if i >= last_out:
            continue
        if elementwise:
            if pending is not None:                     # part of the pending point's output
                pending[2:] = [i, x, inv]
            elif isinstance(layer, Activation):
                pending = [f"hidden {n_h}", "hidden", i, x, inv]
                n_h += 1
        elif isinstance(layer, Sequential) or (layer.params and not isinstance(layer, Dense)):
            pending = [f"block {n_b}", "block", i, x, inv]
            n_b += 1
    if pending is not None:
        name, kind, idx, xp, ip = pending
        yield name, kind, idx, xp[ip]
    if distinct_rows:
        yield "logits", "logits", len(layers) - 1, x[inv]


def logits_distinct(model, X):
    """Logits with every layer evaluated once per distinct row (see :func:`hidden_activations`)."""
    out = None
    for name, kind, idx, a in hidden_activations(model, X, distinct_rows=True):
        out = a
    return out


def layer_report(model, X, y, lr=BundleSettings.lr, batch_size=BundleSettings.batch_size, n_classes=None,
                 grid=BundleSettings.grid, dtype=np.float32, last_only=False, kinds=None, distinct_rows=None):
    """Bundles of every hidden representation (see :func:`hidden_activations`) of ``model`` on ``(X, y)``.

    W_max is taken once from the model (:func:`weight_amplitude`). ``last_only`` keeps only a^(L), the last
    recorded point (cheap check of auto-tune); ``kinds`` filters e.g. ``{'block'}``. ``distinct_rows`` (default:
    on for ``grid=False``) evaluates the network once per distinct row (:func:`hidden_activations`).
    Returns a list of :class:`LayerBundles`.
    """
    check_model("model", model)
    X = check_array("X", X, ndim=2, finite=False)
    n_in = model.in_units
    if n_in is not None and X.shape[1] != n_in:
        raise ValueError(f"X: expected {n_in} features per sample (the input width of the model), got {X.shape[1]}")
    y = check_labels("y", y, n_classes=n_classes, n=X.shape[0])
    C = n_classes if n_classes is not None else int(y.max()) + 1
    w_max = weight_amplitude(model)
    out = []
    last = None
    if distinct_rows is None:
        distinct_rows = not grid
    for name, kind, idx, a in hidden_activations(model, X, distinct_rows):
        if kind == "logits" or (kinds is not None and kind not in kinds):
            continue
        if last_only:
            last = (name, kind, idx, a)
            continue
        try:
            b = bundles(a, y, w_max, lr, batch_size, C, grid, dtype)
        except BundleDivergenceError as exc:
            raise BundleDivergenceError(f"{name}: {exc}") from None
        out.append(LayerBundles(name, kind, idx, b))
    if last_only and last is not None:
        name, kind, idx, a = last
        out.append(LayerBundles(name, kind, idx, bundles(a, y, w_max, lr, batch_size, C, grid, dtype)))
    return out


def format_report(report) -> str:
    """A plain-text table of a :func:`layer_report`."""
    lines = [f"{'layer':<18} {'|B|':>6} {'H(B)':>8} {'acc_max':>8} {'conflicting':>11} {'largest':>8}"]
    for r in report:
        b = r.bundles
        lines.append(f"{r.name:<18} {b.n_bundles:>6d} {b.entropy:>8.4f} {b.acc_max:>8.4f} "
                     f"{b.n_conflicting:>11d} {int(b.sizes.max()):>8d}")
    return "\n".join(lines)
