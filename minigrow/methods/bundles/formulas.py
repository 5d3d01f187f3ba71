r"""Conflicting bundles (Peer, Stabinger, Rodriguez-Sanchez, WACV 2021, arXiv 2011.02956).

Two training samples are in the same **bundle** at hidden layer l when their activations a_i^(l), a_j^(l) are
so close that a float32 weight update of size (η/B)·a cannot tell them apart. Following the authors' code
(``conflicting_bundle.py``, read, not copied) this is exact float32 equality, in every component, of

.. math::  q_i = \mathrm{fl}_{32}\big( W_{max} − (a_i · η) · (1/B) \big)                            \tag{B1}

with W_max = max |w| over every trainable tensor of the whole model (one float32 scalar), η the training
learning rate and B the training batch size. Each operation is rounded to float32 in this order:
``t = fl32(a·fl32(η))``, ``t = fl32(t·fl32(1/B))``, ``q = fl32(W_max − t)``. (B1) is a **rounding grid**
(effective spacing ulp(W_max)·B/η, :func:`grid_spacing`), not a distance threshold: computed in float64 almost no two rows coincide,
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

This module holds the definitions (B1)–(B3) as functions of arrays; the per-layer report of a network is
:mod:`.report`, the propositions P1–P5 are :mod:`.propositions`, auto-tune and the lesion study are
:mod:`.autotune` and :mod:`.lesion`.

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
from dataclasses import dataclass

import numpy as np

from ...layers import check_model
from ...validate import check_int, check_labels, check_positive

__all__ = [
    "BundleDivergenceError", "Bundles", "weight_amplitude", "quantize", "grid_spacing", "group_rows",
    "bundle_stats", "bundles", "bundles_pairwise", "label_entropy", "majority_share",
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


def grid_spacing(w_max, lr=1e-3, batch_size=64, dtype=np.float32):
    """Effective spacing of the grid (B1): ulp(W_max)·B/η (activation differences below it usually vanish)."""
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
