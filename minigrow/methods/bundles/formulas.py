r"""Conflicting bundles (Peer, Stabinger, Rodriguez-Sanchez, WACV 2021, arXiv 2011.02956).

Two training samples are in the same **bundle** at hidden layer l when their activations a_i^(l), a_j^(l) are
so close that a float32 weight update of size (η/B)·a cannot tell them apart. Following the authors' code
(``conflicting_bundle.py``, read, not copied) this is exact float32 equality, in every component, of

.. math::  q_i = \mathrm{fl}_{32}\big( W_{max} − (a_i · η) · (1/B) \big)                            \tag{B1}

with W_max = max |w| over every trainable tensor of the whole model (one float32 scalar), η the training
learning rate and B the training batch size. Each operation is rounded to float32 in this order:
``t = fl32(a·fl32(η))``, ``t = fl32(t·fl32(1/B))``, ``q = fl32(W_max − t)``. (B1) is a **rounding grid**
(effective γ ≈ ulp(W_max)·B/η), not a distance threshold: computed in float64 almost no two rows coincide,
so the dtype and the order of the operations are part of the definition (see ``tutorials/02``).

Given the partition B^l = {b_1, …, b_|B|} of the N samples and the labels y with C classes, n_bc = #{i ∈ b: y_i = c}:

.. math::
    |B^l| = \text{number of bundles},\qquad
    H(B^l) = \frac1N Σ_b |b| \Big(−Σ_c p_{bc} \ln p_{bc}\Big) = \frac1N Σ_b Σ_c n_{bc} \ln\frac{|b|}{n_{bc}},
    \qquad p_{bc} = n_{bc}/|b|                                                                     \tag{B2}

.. math::  \mathrm{acc}_{max}(B^l) = \frac1N Σ_b \max_c n_{bc}                                       \tag{B3}

A bundle is **conflicting** when it holds ≥ 2 distinct labels. H is the empirical conditional entropy
H(Y | bundle), 0 ≤ H ≤ ln C; whether H > 0 is decided from the integer counts, so a network whose bundles are
all pure gets H = 0.0 exactly (the authors' code adds 1e-5 inside the log and clips at 0; we do not).

Computation. Exact equality after quantisation is transitive, so the bundles are a true partition and hashing
is exact: −0.0 is canonicalised to +0.0 (``q + 0.0``), each row gets a 64-bit fingerprint that
``np.unique(…, return_inverse=True)`` groups in O(N D + N log N), and the grouping is verified row by row (on a
collision: each contiguous row viewed as one opaque byte string and grouped the same way) — no pairwise loop. Bundle ids are then
renumbered in order of first appearance (bundle 0 holds sample 0), like the reference loop.
:func:`bundles_pairwise` is that straightforward reference loop, kept as the test oracle.

Propositions P1–P5 (``check_p1_accuracy_bound`` … ``check_p5_dead_layer``) are **derived by us** from the
definitions (bundles.md §2), not taken from the papers; they hold exactly for exact-equality bundles
(``grid=False``) and approximately for the float32 grid.

A numerical caveat we measured: identical input rows of a BLAS matrix product do not always give bit-identical
output rows (edge rows of the blocked kernel sum in another order), so "equal at layer l ⇒ equal above l" holds
exactly in real arithmetic but only up to an ulp in float arithmetic. The grid of (B1) absorbs such ulp
differences except for values that sit on a rounding boundary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .layers import Activation, Dense, ResidualBlock, Sequential
from .losses import log_softmax, softmax
from .validate import check_array, check_int, check_labels, check_model, check_positive

__all__ = [
    "BundleDivergenceError", "Bundles", "LayerBundles", "PropositionCheck",
    "weight_amplitude", "quantize", "grid_gamma", "group_rows", "bundle_stats", "bundles", "bundles_pairwise",
    "label_entropy", "majority_share", "hidden_activations", "logits_distinct", "layer_report", "format_report",
    "check_p1_accuracy_bound", "check_p2_loss_bound", "check_p3_gradient_cancellation",
    "check_p4_depth_monotonicity", "check_p5_dead_layer",
]


class BundleDivergenceError(ValueError):
    """Activations (or weights) contain NaN or ±inf: the network diverged and bundles are undefined."""


# ----------------------------------------------------------------------------------------------------------------
# The definition: quantisation grid (B1)
# ----------------------------------------------------------------------------------------------------------------

def weight_amplitude(model) -> np.float32:
    """W_max = max |w| over all trainable (non-frozen) parameter tensors of the whole model, as float32.

    One scalar for the whole model, as ``_get_weight_amplitude(model)`` in the authors' code. 0 if the model has
    no trainable parameter.
    """
    check_model("model", model)
    m = np.float32(0.0)
    for layer, name in model.parameters():
        if name in layer.frozen:
            continue
        w = layer.params[name]
        if w.size:
            mx = np.abs(w).max()
            if not np.isfinite(mx):
                raise BundleDivergenceError(f"weights of {type(layer).__name__}.{name} contain NaN/inf: the "
                                            f"network diverged; bundles are undefined (lower the learning rate)")
            m = max(m, np.float32(mx))
    return np.float32(m)


def _check_finite(name, a):
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise BundleDivergenceError(
            f"{name}: activations contain {a[tuple(bad)]} at sample {int(bad[0])}: the network diverged, bundles "
            f"are undefined (NaN never equals itself) — lower the learning rate or check the data")


def quantize(a, w_max, lr=1e-3, batch_size=64, dtype=np.float32):
    r"""The rounding grid (B1): q_i = fl(W_max − (a_i·η)·(1/B)), one row per sample, every op rounded to ``dtype``.

    Parameters
    ----------
    a : array (N, …) — activations of one layer; flattened per sample
    w_max : float — W_max (:func:`weight_amplitude`)
    lr, batch_size : the *training* η and B
    dtype : float32 is the definition; float64 exists only to show that the grid then (almost) vanishes

    Returns
    -------
    q : (N, D) contiguous array of ``dtype`` with −0.0 canonicalised to +0.0
    """
    a = np.asarray(a)
    if a.ndim < 1 or a.shape[0] < 1:
        raise ValueError(f"a: expected activations of shape (N, …) with N >= 1, got shape {a.shape}")
    w_max = check_positive("w_max", w_max)
    lr = check_positive("lr", lr)
    batch_size = check_int("batch_size", batch_size, lo=1)
    dt = np.dtype(dtype)
    a = a.reshape(a.shape[0], -1).astype(dt, copy=False)
    _check_finite("a", a)
    eta, inv_b, w = dt.type(lr), dt.type(1.0 / batch_size), dt.type(w_max)
    t = a * eta                       # fl(a·η)
    t *= inv_b                        # fl(fl(a·η)·(1/B))
    q = np.subtract(w, t, out=t)      # fl(W_max − …)
    q += dt.type(0.0)                 # −0.0 → +0.0 (no-op for finite W_max ≥ 0, kept for clarity)
    return np.ascontiguousarray(q)


def grid_gamma(w_max, lr=1e-3, batch_size=64, dtype=np.float32):
    """Effective resolution of the grid: γ ≈ ulp(W_max)·B/η (activation differences below γ usually vanish)."""
    dt = np.dtype(dtype)
    return float(np.spacing(dt.type(w_max))) * batch_size / lr


# ----------------------------------------------------------------------------------------------------------------
# Grouping equal rows (hashing) and the statistics (B2), (B3)
# ----------------------------------------------------------------------------------------------------------------

_MULT = {}


def _multipliers(n_words):
    """Two fixed vectors of odd 32-bit multipliers (a seeded Generator, the same in every run)."""
    if n_words not in _MULT:
        g = np.random.default_rng(20210301)
        _MULT[n_words] = g.integers(1, 2 ** 32, size=(n_words, 2), dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    return _MULT[n_words]


def group_rows(q):
    """Partition the rows of ``q`` by exact (bitwise, after −0.0 → +0.0) equality.

    Fast path: each row, read as 32-bit words w, gets a 64-bit fingerprint from two multiply-add hashes
    (Σ_k w_k m_k mod 2³², two fixed odd multiplier vectors); the fingerprints are grouped with ``np.unique`` and the
    grouping is then **verified** (every row must equal its group's first row bit for bit). If a fingerprint
    collision ever merges different rows, the exact path runs instead: each row viewed as one opaque byte string
    (a NumPy void scalar) and grouped with ``np.unique``. Either way the result is exact.
    Ids are renumbered in order of first appearance. Returns ``assignment`` (N,) int64 with values 0 … |B|−1.
    """
    q = np.asarray(q)
    if q.ndim == 1:
        q = q[:, None]
    q = q.reshape(q.shape[0], -1)
    if q.dtype.kind == "f":
        _check_finite("q", q)
        q = q + q.dtype.type(0.0)        # canonicalise −0.0 (bitwise different, numerically equal)
    q = np.ascontiguousarray(q)
    if q.shape[1] == 0:
        return np.zeros(q.shape[0], dtype=np.int64)
    row_bytes = q.dtype.itemsize * q.shape[1]
    inverse = None
    if row_bytes % 4 == 0:
        words = q.view(np.uint32).reshape(q.shape[0], row_bytes // 4)
        h = words @ _multipliers(words.shape[1])                     # (N, 2) uint32, arithmetic mod 2³²
        fp = (h[:, 0].astype(np.uint64) << np.uint64(32)) | h[:, 1].astype(np.uint64)
        _, first, inv = np.unique(fp, return_index=True, return_inverse=True)   # first occurrences
        inv = inv.ravel()
        if np.array_equal(words, words[first[inv]]):                 # verify: no collision merged two rows
            inverse = inv
    if inverse is None:
        rows = q.view(np.dtype((np.void, row_bytes))).ravel()
        _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
    # renumber: the bundle that appears first gets id 0
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse]


@dataclass
class Bundles:
    """The bundles of one layer.

    Attributes
    ----------
    assignment : (N,) bundle id of every sample, ids in order of first appearance
    counts : (|B|, C) n_bc, samples of class c in bundle b
    n_bundles : |B^l|
    entropy : H(B^l) of (B2), natural log; exactly 0.0 when no bundle is conflicting
    acc_max : (B3), the accuracy bound of P1
    n_conflicting : bundles holding ≥ 2 labels
    """
    assignment: np.ndarray
    counts: np.ndarray
    n_bundles: int
    entropy: float
    acc_max: float
    n_conflicting: int

    @property
    def sizes(self):
        """|b| for every bundle."""
        return self.counts.sum(axis=1)

    @property
    def conflicting(self) -> bool:
        """True when some bundle holds two or more labels (decided from integer counts)."""
        return self.n_conflicting > 0

    @property
    def n_samples(self) -> int:
        return int(self.assignment.shape[0])

    def as_dict(self, arrays=False):
        d = {"n_bundles": self.n_bundles, "entropy": self.entropy, "acc_max": self.acc_max,
             "n_conflicting": self.n_conflicting, "largest_bundle": int(self.sizes.max())}
        if arrays:
            d["sizes"] = self.sizes.tolist()
            d["assignment"] = self.assignment.tolist()
        return d


def bundle_stats(assignment, y, n_classes=None) -> Bundles:
    r"""|B|, H (B2), acc_max (B3) from a partition and the labels, via the (|B| × C) count matrix n_bc."""
    assignment = np.asarray(assignment, dtype=np.int64)
    y = check_labels("y", y, n_classes=n_classes, n=assignment.shape[0])
    C = int(n_classes) if n_classes is not None else int(y.max()) + 1
    nb = int(assignment.max()) + 1
    counts = np.bincount(assignment * C + y, minlength=nb * C).reshape(nb, C)
    size = counts.sum(axis=1)
    n_labels = (counts > 0).sum(axis=1)
    conflicting = n_labels >= 2
    N = assignment.shape[0]
    if conflicting.any():
        k = counts[conflicting].astype(np.float64)
        s = size[conflicting].astype(np.float64)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(k > 0, k * (np.log(s) - np.log(np.where(k > 0, k, 1.0))), 0.0)
        entropy = float(terms.sum() / N)     # Σ_b Σ_c n_bc ln(|b|/n_bc) / N
    else:
        entropy = 0.0
    acc_max = float(counts.max(axis=1).sum() / N)
    return Bundles(assignment=assignment, counts=counts, n_bundles=nb, entropy=entropy, acc_max=acc_max,
                   n_conflicting=int(conflicting.sum()))


def bundles(a, y, w_max=None, lr=1e-3, batch_size=64, n_classes=None, grid=True, dtype=np.float32) -> Bundles:
    """Bundles of one layer's activations ``a`` (N, …) with labels ``y``.

    ``grid=True`` (the definition): quantise with (B1) in ``dtype`` (float32), then group equal rows.
    ``grid=False``: exact equality of the raw activations (the idealised bundles of the propositions).
    ``w_max`` is required with ``grid=True`` (use :func:`weight_amplitude` of the model).
    """
    a = np.asarray(a)
    if a.ndim < 1:
        raise ValueError(f"a: expected activations of shape (N, …), got a scalar")
    _check_finite("a", a.reshape(a.shape[0], -1))
    if grid:
        if w_max is None:
            raise ValueError("w_max: required with grid=True (pass weight_amplitude(model))")
        q = quantize(a, w_max, lr, batch_size, dtype)
    else:
        q = a.reshape(a.shape[0], -1)
    return bundle_stats(group_rows(q), y, n_classes)


def bundles_pairwise(q, y, n_classes=None) -> Bundles:
    """Reference implementation (the test oracle): take the first unassigned sample, put every unassigned
    sample whose row equals it in every component into a new bundle, repeat. O(|B|·N·D) plus a Python loop over
    bundles; the entropy by plain Python loops with ``math.log``."""
    q = np.asarray(q)
    q = q.reshape(q.shape[0], -1)
    y = np.asarray(y, dtype=np.int64)
    N = q.shape[0]
    C = int(n_classes) if n_classes is not None else int(y.max()) + 1
    assignment = np.full(N, -1, dtype=np.int64)
    nb = 0
    for i in range(N):
        if assignment[i] >= 0:
            continue
        same = np.all(q == q[i], axis=1) & (assignment < 0)      # −0.0 == +0.0 numerically
        assignment[same] = nb
        nb += 1
    counts = np.zeros((nb, C), dtype=np.int64)
    for i in range(N):
        counts[assignment[i], y[i]] += 1
    H, best, n_conf = 0.0, 0, 0
    for b in range(nb):
        size = int(counts[b].sum())
        best += int(counts[b].max())
        labels = [int(c) for c in counts[b] if c > 0]
        if len(labels) >= 2:
            n_conf += 1
            H += sum(c * math.log(size / c) for c in labels)
    return Bundles(assignment=assignment, counts=counts, n_bundles=nb, entropy=H / N, acc_max=best / N,
                   n_conflicting=n_conf)


def label_entropy(y, n_classes=None) -> float:
    """H(Y) of the empirical label distribution (natural log) = H(B) when everything is one bundle."""
    y = check_labels("y", y, n_classes=n_classes)
    p = np.bincount(y) / y.shape[0]
    p = p[p > 0]
    return float(-(p * np.log(p)).sum()) if p.size > 1 else 0.0


def majority_share(y) -> float:
    """Share of the most frequent label = acc_max of a single bundle."""
    y = check_labels("y", y)
    return float(np.bincount(y).max() / y.shape[0])


# ----------------------------------------------------------------------------------------------------------------
# Per-layer reports on a network
# ----------------------------------------------------------------------------------------------------------------

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
    """Yield ``(name, kind, index, a)`` for every hidden representation of ``model`` on ``X`` (inference mode).

    * plain chain: the output of every activation layer (a^l = σ(z^l)), logits excluded;
    * :class:`ResidualBlock`: its branch output W2 σ(W1 h + b1) ('branch') and its output h + branch ('block');
    * any other layer with parameters before the output layer, e.g. a nested :class:`Sequential` or a
      ``DenseBlock`` of a block network: its output ('block').

    ``distinct_rows=True`` evaluates every layer once per *distinct* input row and copies the result to the
    duplicates ("function semantics"): BLAS does not guarantee bit-identical outputs for identical rows (see the
    module note), so the exact-equality propositions are checked this way. A generator: one layer's activations
    are alive at a time (apart from the consumer's).
    """
    check_model("model", model)
    x = np.asarray(X, dtype=model.dtype or np.asarray(X).dtype)
    inv = np.arange(x.shape[0])
    if distinct_rows:
        x, inv = _distinct(x, inv)
    layers = model.layers
    # the output layer: the last layer with parameters (its outputs, the logits, are not a hidden layer)
    last_out = max((i for i, lay in enumerate(layers) if lay.params or isinstance(lay, Sequential)), default=-1)
    n_h = n_b = 0
    for i, layer in enumerate(layers):
        if isinstance(layer, ResidualBlock):
            branch = layer.branch(x)
            out = x + branch
            yield f"block {n_b} branch", "branch", i, branch[inv]
            x = out
            if distinct_rows:
                x, inv = _distinct(x, inv)
            yield f"block {n_b}", "block", i, x[inv]
            n_b += 1
            continue
        x = layer.forward(x, train=False)
        if distinct_rows:
            x, inv = _distinct(x, inv)
        if i >= last_out:
            continue
        if isinstance(layer, Sequential) or (layer.params and not isinstance(layer, Dense)):
            yield f"block {n_b}", "block", i, x[inv]
            n_b += 1
        elif isinstance(layer, Activation):
            yield f"hidden {n_h}", "hidden", i, x[inv]
            n_h += 1
    if distinct_rows:
        yield "logits", "logits", len(layers) - 1, x[inv]


def logits_distinct(model, X):
    """Logits with every layer evaluated once per distinct row (see :func:`hidden_activations`)."""
    out = None
    for name, kind, idx, a in hidden_activations(model, X, distinct_rows=True):
        out = a
    return out


def layer_report(model, X, y, lr=1e-3, batch_size=64, n_classes=None, grid=True, dtype=np.float32,
                 last_only=False, kinds=None, distinct_rows=None):
    """Bundles of every hidden representation (see :func:`hidden_activations`) of ``model`` on ``(X, y)``.

    W_max is taken once from the model (:func:`weight_amplitude`). ``last_only`` keeps only a^(L), the last
    recorded point (cheap check of auto-tune); ``kinds`` filters e.g. ``{'block'}``. ``distinct_rows`` (default:
    on for ``grid=False``) evaluates the network once per distinct row (:func:`hidden_activations`).
    Returns a list of :class:`LayerBundles`.
    """
    check_model("model", model)
    X = check_array("X", X, ndim=2, finite=False)
    n_in = next((lay.params["W"].shape[1] for lay in model.layers if "W" in lay.params), None)
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


# ----------------------------------------------------------------------------------------------------------------
# Propositions P1–P5 (derived by us, bundles.md §2) as readable checks
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class PropositionCheck:
    """Result of one proposition check: the bound, the observed quantity and whether the inequality holds."""
    name: str
    statement: str
    bound: float
    observed: float
    holds: bool
    details: dict = field(default_factory=dict)

    def __str__(self):
        return (f"{self.name}: {self.statement}\n    bound {self.bound:.6g}, observed {self.observed:.6g} → "
                f"{'holds' if self.holds else 'VIOLATED'}")


def _report(model, X, y, grid, lr, batch_size, n_classes):
    return layer_report(model, X, y, lr=lr, batch_size=batch_size, n_classes=n_classes, grid=grid)


def check_p1_accuracy_bound(model, X, y, grid=False, lr=1e-3, batch_size=64, n_classes=None, report=None):
    r"""P1 (derived): every sample of a bundle gets the same prediction, so the training accuracy on (X, y) is
    at most acc_max(B^l) (B3) at every hidden layer l; the bound is the minimum over layers.

    Proof sketch: in a chain the logits are a function of a^(l); equal a^(l) ⇒ equal logits ⇒ equal argmax;
    the best a bundle can do is predict its majority label, which is right for max_c n_bc of its samples.
    Exact for ``grid=False``; approximate on the float32 grid (members of a grid bundle differ by < γ).
    """
    report = report or _report(model, X, y, grid, lr, batch_size, n_classes)
    z = model.predict_logits(X) if grid else logits_distinct(model, X)
    acc = float((z.argmax(1) == np.asarray(y)).mean())
    per_layer = [r.acc_max for r in report]
    bound = min(per_layer) if per_layer else 1.0
    return PropositionCheck("P1", "training accuracy ≤ acc_max(B^l) for every hidden layer l", bound, acc,
                            acc <= bound + 1e-12, {"acc_max_per_layer": per_layer,
                                                   "layers": [r.name for r in report]})


def check_p2_loss_bound(model, X, y, grid=False, lr=1e-3, batch_size=64, n_classes=None, report=None, tol=1e-9):
    r"""P2 (derived): mean softmax cross-entropy ≥ H(B^l) at every hidden layer, equality iff every bundle outputs
    its own label distribution p̂_b.

    Proof sketch: the logits z_b are shared in a bundle, so Σ_{i∈b} CE_i = −Σ_c n_bc ln softmax(z_b)_c
    = |b|·[H(p̂_b) + KL(p̂_b ‖ softmax(z_b))] ≥ |b| H(p̂_b) (Gibbs); sum over b and divide by N.
    The bound is the maximum over layers (the deepest layer gives the largest H by P4).
    """
    report = report or _report(model, X, y, grid, lr, batch_size, n_classes)
    z = (model.predict_logits(X) if grid else logits_distinct(model, X)).astype(np.float64)
    ce = float(-log_softmax(z)[np.arange(z.shape[0]), np.asarray(y)].mean())
    per_layer = [r.entropy for r in report]
    bound = max(per_layer) if per_layer else 0.0
    return PropositionCheck("P2", "mean cross-entropy ≥ H(B^l) for every hidden layer l", bound, ce,
                            ce >= bound - tol, {"entropy_per_layer": per_layer})


def check_p3_gradient_cancellation(logits, y, assignment, tol=1e-9):
    r"""P3 (derived): within a bundle the logits are shared, so the summed per-sample gradients are

    .. math::  Σ_{i∈b} ∂CE_i/∂z = |b|\,(\mathrm{softmax}(z_b) − p̂_b),

    which vanishes at the bundle's optimum z_b* = ln p̂_b although each ∂CE_i/∂z = softmax(z_b) − e_{y_i} ≠ 0 when
    the bundle is conflicting: the samples of a conflicting bundle pull in opposite directions and cancel.

    ``logits`` (N, C) of the samples, ``assignment`` their bundle ids at some layer (logits are taken as equal to
    the bundle's first sample's up to float noise). Returns the identity's deviation (``observed``, bound
    ``tol``) and, in ``details``, the norm of the summed gradient at z_b* (≈ 0) against the mean per-sample
    gradient norm there (> 0) over the conflicting bundles.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    assignment = np.asarray(assignment, dtype=np.int64)
    N, C = z.shape
    nb = int(assignment.max()) + 1
    g = softmax(z)
    g[np.arange(N), y] -= 1.0                                       # ∂CE_i/∂z_i = softmax(z_i) − e_{y_i}
    S = np.zeros((nb, C))
    np.add.at(S, assignment, g)                                     # Σ_{i∈b} ∂CE_i/∂z
    counts = np.zeros((nb, C))
    np.add.at(counts, (assignment, y), 1.0)
    size = counts.sum(1, keepdims=True)
    p_hat = counts / size
    first = np.full(nb, N)
    np.minimum.at(first, assignment, np.arange(N))
    predicted = size * (softmax(z[first]) - p_hat)                  # |b| (softmax(z_b) − p̂_b)
    dev = float(np.abs(S - predicted).max())
    conflicting = (counts > 0).sum(1) >= 2
    det = {"n_conflicting": int(conflicting.sum()), "summed_norm_at_opt": 0.0, "per_sample_norm_at_opt": 0.0}
    if conflicting.any():
        with np.errstate(divide="ignore"):
            z_opt = np.log(p_hat)                                   # z_b* = ln p̂_b (−inf for absent classes)
        p_opt = np.exp(z_opt)                                       # softmax(ln p̂_b) = p̂_b (Σ p̂ = 1)
        g_opt = p_opt[assignment] - np.eye(C)[y]
        S_opt = np.zeros((nb, C))
        np.add.at(S_opt, assignment, g_opt)
        sel = conflicting[assignment]
        det["summed_norm_at_opt"] = float(np.linalg.norm(S_opt[conflicting], axis=1).max())
        det["per_sample_norm_at_opt"] = float(np.linalg.norm(g_opt[sel], axis=1).mean())
        # cancellation in the actual network: ‖Σ_i g_i‖ / Σ_i ‖g_i‖ over conflicting bundles (1 = no cancellation)
        norms = np.zeros(nb)
        np.add.at(norms, assignment, np.linalg.norm(g, axis=1))
        det["cancellation_ratio"] = float((np.linalg.norm(S, axis=1)[conflicting]
                                           / np.maximum(norms[conflicting], 1e-300)).mean())
    holds = dev <= tol and det["summed_norm_at_opt"] <= 1e-12 and \
        (det["n_conflicting"] == 0 or det["per_sample_norm_at_opt"] > 0)
    return PropositionCheck("P3", "Σ_{i∈b} ∂CE_i/∂z = |b|(softmax(z_b) − p̂_b); = 0 at z_b = ln p̂_b", tol, dev,
                            holds, det)


def check_p4_depth_monotonicity(report):
    r"""P4 (derived): in a plain chain, samples bundled at l stay bundled at every k > l, so the partitions are
    nested, |B^k| ≤ |B^l| and H(B^k) ≥ H(B^l).

    Proof sketch: a^(k) = f(a^(l)) for a function f; a_i^(l) = a_j^(l) ⇒ a_i^(k) = a_j^(k). Coarsening a
    partition can only merge bundles (fewer of them) and conditional entropy can only grow when the conditioning
    variable is coarsened. Exact for exact-equality bundles in exact arithmetic, approximate with the float grid
    (and with BLAS, see the module note). ``report``: a :func:`layer_report` of consecutive layers of a chain.

    ``observed`` = number of samples that leave their bundle-mates between consecutive layers (0 if nested);
    ``details`` has the per-layer counts and entropies and the pairwise count/entropy violations.
    """
    counts = [r.n_bundles for r in report]
    ent = [r.entropy for r in report]
    split = 0
    for lo, hi in zip(report[:-1], report[1:]):
        a, b = lo.assignment, hi.assignment
        # a bundle of the lower layer is split above when its members have several ids above
        pairs = np.unique(np.stack([a, b], axis=1), axis=0)
        n_up = np.bincount(pairs[:, 0], minlength=lo.n_bundles)       # ids above per lower bundle
        split += int((np.bincount(a, minlength=lo.n_bundles)[n_up > 1]).sum())
    count_viol = sum(int(c2 > c1) for c1, c2 in zip(counts[:-1], counts[1:]))
    ent_viol = sum(int(h2 < h1 - 1e-12) for h1, h2 in zip(ent[:-1], ent[1:]))
    holds = split == 0 and count_viol == 0 and ent_viol == 0
    return PropositionCheck("P4", "partitions nested with depth: |B^k| ≤ |B^l|, H(B^k) ≥ H(B^l) for k > l", 0.0,
                            float(split), holds, {"n_bundles": counts, "entropy": ent,
                                                  "count_violations": count_viol, "entropy_violations": ent_viol})


def check_p5_dead_layer(model, X, y, layer_index, lr=1e-3, batch_size=64):
    r"""P5 (derived): if every pre-activation of the ReLU layer ``model.layers[layer_index]`` is ≤ 0 on X, then
    a^(l) = 0 for every sample: |B^l| = 1, H(B^l) = H(Y), acc_max = majority share, and the cross-entropy sends
    exactly zero gradient to every parameter below l (ReLU'(z) = 0 for z ≤ 0): the layers below can never
    learn, the layers above only see a constant — the network can only learn the class prior.

    Returns bound 0 and observed max |∂L/∂w| over the layers below l; details hold |B|, H, H(Y), acc_max.
    """
    from .losses import SoftmaxCrossEntropy
    layer = model.layers[layer_index]
    if not isinstance(layer, Activation) or layer.name != "relu":
        raise ValueError(f"layer_index: expected the index of a ReLU layer, got {type(layer).__name__} at "
                         f"{layer_index}")
    y = np.asarray(y)
    loss = SoftmaxCrossEntropy()
    outs = model.forward_all(X, train=True)
    pre, a = outs[layer_index], outs[layer_index + 1]         # the ReLU layer's input z and output a
    out = outs[-1]
    dead = bool((pre <= 0).all())
    loss.forward(out, y)
    model.backward(loss.backward(), need_input_grad=False)
    below = [g for lay in model.layers[:layer_index] for g in lay.grads.values()]
    above = [g for lay in model.layers[layer_index:] for g in lay.grads.values()]
    g_below = float(max((np.abs(g).max() for g in below if g.size), default=0.0))
    g_above = float(max((np.abs(g).max() for g in above if g.size), default=0.0))
    w_max = weight_amplitude(model)
    b = bundles(a, y, w_max, lr, batch_size)
    H_y, maj = label_entropy(y), majority_share(y)
    holds = dead and g_below == 0.0 and b.n_bundles == 1 and abs(b.entropy - H_y) <= 1e-12 and \
        abs(b.acc_max - maj) <= 1e-12
    return PropositionCheck("P5", "dead ReLU layer ⇒ |B^l| = 1, H = H(Y), zero gradient below l", 0.0, g_below,
                            holds, {"dead": dead, "n_bundles": b.n_bundles, "entropy": b.entropy,
                                    "label_entropy": H_y, "acc_max": b.acc_max, "majority_share": maj,
                                    "max_grad_above": g_above})
