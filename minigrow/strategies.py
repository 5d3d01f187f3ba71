"""Hypothesis strategies for property-testing layers — yours and minigrow's.

This is the only module of minigrow that imports `hypothesis <https://hypothesis.readthedocs.io>`_ (install it
with ``pip install 'minigrow[test]'``). The idea, from MyGrad's test suite: draw *tiny* float64 arrays (sides
≤ 4–5) with *bounded* elements, keep away from kinks (ReLU at 0), and compare the hand-written backward with a
numerical derivative::

    from hypothesis import given
    from minigrow import strategies as mst

    @given(x=mst.batches(n_features=3, away_from=0.0), seed=mst.seeds())
    def test_my_layer(x, seed):
        mst.assert_layer_gradients(MyLayer(3, rng=seed, dtype="float64"), x)

What each strategy draws
------------------------
``arrays(shape)``                float64 array, elements in [−bound, bound]
``batches(n_features)``          2-d (batch, features) float64 array; ``away_from=c`` keeps |x − c| ≥ margin
``images(n_channels)``           4-d NCHW (batch, channels, height, width) float64 array, small sides
``conv_params(h, w)``            (kernel_size, stride, padding) pairs that fit an h × w image
``spread_batches(shape)``        an array whose every unit has spread ≥ min_spread (for normalisation layers)
``dense_shapes()``               (batch, in_features, out_features) with small sides
``seeds()``                      an int seed for ``numpy.random.default_rng`` / ``rng=``
``activations()``                a name from ``layers.ACTIVATIONS`` (without 'identity')
``labels(n, n_classes)``         int64 class labels
``dense_cases()``                a ready (Dense layer, input) pair in float64
``residual_cases(activation)``   a (ResidualBlock, input) pair whose pre-activations keep away from the kink

An example per layer kind::

    @given(x=mst.batches(n_features=3, away_from=0.0))                 # dense / element-wise: away from kinks
    def test_dense(x): mst.assert_layer_gradients(Dense(3, 2, dtype=np.float64), x)

    @given(x=mst.images(n_channels=2, min_side=3), data=st.data())       # convolution: shapes, strides, paddings
    def test_conv(x, data):
        k, s, p = data.draw(mst.conv_params(x.shape[2], x.shape[3]))
        mst.assert_layer_gradients(Conv2D(2, 3, k, stride=s, padding=p, dtype=np.float64), x)

    @given(x=mst.spread_batches((4, 3)))                                 # normalisation: non-degenerate batches
    def test_bn(x): mst.assert_layer_gradients(BatchNorm1d(3, dtype=np.float64), x)

Helpers: :func:`assert_layer_gradients` (gradient check of every parameter and the input, raising an
``AssertionError`` that shows the report) and :func:`assume_away_from_kinks` (reject an example whose
pre-activations come within ``margin`` of a kink), :func:`assume_network_away_from_kinks` (the same for every
activation of a whole network).
"""
from __future__ import annotations

import numpy as np
from hypothesis import assume, reject
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .gradcheck import check_layer
from .layers import ACTIVATIONS, Dense, ResidualBlock

__all__ = [
    "arrays", "batches", "images", "conv_params", "spread_batches", "dense_shapes", "seeds", "activations", "labels", "dense_cases", "residual_cases",
    "assert_layer_gradients", "assume_away_from_kinks", "assume_network_away_from_kinks", "KINKS",
]

#: Where each activation's derivative jumps (finite differences across these points are meaningless).
KINKS = {"relu": (0.0,), "leaky_relu": (0.0,), "tanh": (), "sigmoid": (), "identity": ()}


def _elements(bound, away_from=None, margin=1e-3):
    """Floats in [−bound, bound]; with ``away_from=c`` only those with |x − c| ≥ margin."""
    if away_from is None:
        return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=64)
    lo = st.floats(-bound, away_from - margin, allow_nan=False, width=64)
    hi = st.floats(away_from + margin, bound, allow_nan=False, width=64)
    return st.one_of(lo, hi)


def arrays(shape, bound=2.0, away_from=None, margin=1e-3):
    """A float64 array of the given ``shape`` (a tuple or a strategy of tuples), elements in [−bound, bound].

    ``away_from=c`` draws only elements with |x − c| ≥ ``margin`` (e.g. ``away_from=0.0`` for ReLU inputs).
    """
    return hnp.arrays(np.float64, shape, elements=_elements(bound, away_from, margin))


def batches(n_features=None, max_batch=4, max_features=4, bound=2.0, away_from=None, margin=1e-3):
    """A 2-d batch-first float64 array (batch, features) with small sides.

    ``n_features`` fixes the second side (an int); otherwise it is drawn in 1 … ``max_features``.
    """
    feats = st.just(n_features) if n_features is not None else st.integers(1, max_features)
    shape = st.tuples(st.integers(1, max_batch), feats)
    return arrays(shape, bound, away_from, margin)


def images(n_channels=None, max_batch=3, max_channels=3, min_side=1, max_side=6, bound=2.0, away_from=None,
           margin=1e-3):
    """A 4-d NCHW float64 batch (batch, channels, height, width) with small sides (height and width drawn
    separately, so non-square images come up)."""
    ch = st.just(n_channels) if n_channels is not None else st.integers(1, max_channels)
    side = st.integers(min_side, max_side)
    shape = st.tuples(st.integers(1, max_batch), ch, side, side)
    return arrays(shape, bound, away_from, margin)


@st.composite
def conv_params(draw, height, width, max_kernel=3, max_stride=3, max_padding=2):
    """``(kernel_size, stride, padding)`` — each an (h, w) pair — that fit an image of size
    height × width (the padded image is at least as large as the kernel)."""
    def one(side):
        p = draw(st.integers(0, max_padding))
        k = draw(st.integers(1, min(max_kernel, side + 2 * p)))
        s = draw(st.integers(1, max_stride))
        return k, s, p
    (kh, sh, ph), (kw, sw, pw) = one(height), one(width)
    return (kh, kw), (sh, sw), (ph, pw)


def spread_batches(shape, min_spread=0.2, bound=2.0, axes=None):
    """A float64 array of ``shape`` whose values along every unit have a spread (max − min) of at least
    ``min_spread`` — a *non-degenerate* batch for normalisation layers. Batch norm's gradient is ill-conditioned
    on a batch whose values of one unit nearly coincide (σ → 0, and σ⁻¹ multiplies everything); hypothesis loves
    to shrink to such all-equal batches. ``axes``: the axes one unit's values run over (default: every axis but 1,
    as in batch norm; pass ``tuple(range(1, ndim))`` for layer norm's per-sample statistics)."""
    def ok(a):
        ax = tuple(i for i in range(a.ndim) if i != 1) if axes is None else axes
        return bool(np.all(np.ptp(a, axis=ax) >= min_spread)) if a.size else False
    return arrays(shape, bound).filter(ok)


def dense_shapes(max_batch=4, max_in=5, max_out=5):
    """A tuple (batch, in_features, out_features), every side ≥ 1."""
    return st.tuples(st.integers(1, max_batch), st.integers(1, max_in), st.integers(1, max_out))


def seeds():
    """An int seed (pass it as ``rng=`` to minigrow constructors)."""
    return st.integers(0, 2**32 - 1)


def activations(include_identity=False):
    """An activation name from :data:`minigrow.layers.ACTIVATIONS`."""
    names = sorted(n for n in ACTIVATIONS if include_identity or n != "identity")
    return st.sampled_from(names)


def labels(n, n_classes):
    """``n`` int64 class labels in [0, n_classes)."""
    return hnp.arrays(np.int64, n, elements=st.integers(0, n_classes - 1))


@st.composite
def dense_cases(draw, max_batch=4, max_in=5, max_out=5, bias=None, bound=2.0, min_abs=0.1):
    """A float64 :class:`~minigrow.layers.Dense` layer (random init from a drawn seed) and an input batch.

    Input entries have |x| ≥ ``min_abs``: if *every* input is tiny, every weight gradient ∂f/∂W = uᵀx is tiny and
    the finite-difference round-off (≈ ε_mach·|f|/h) dominates the relative error — a limit of the check, not a
    bug of the layer. ``min_abs=0`` lifts the restriction.
    """
    n, fan_in, fan_out = draw(dense_shapes(max_batch, max_in, max_out))
    has_bias = draw(st.booleans()) if bias is None else bias
    layer = Dense(fan_in, fan_out, init="torch", rng=draw(seeds()), dtype=np.float64, bias=has_bias)
    x = draw(arrays((n, fan_in), bound, away_from=0.0 if min_abs > 0 else None, margin=min_abs))
    return layer, x


def assume_away_from_kinks(z, activation, margin=1e-3):
    """``hypothesis.assume`` that no pre-activation in ``z`` lies within ``margin`` of a kink of ``activation``.

    Inside a layer the kinks sit on *computed* values (e.g. z = W1 h + b1 in a residual block), which a strategy
    cannot control directly; rejecting the rare examples that come close is the simplest honest fix.
    """
    z = np.asarray(z)
    for c in KINKS.get(activation, ()):
        assume(z.size == 0 or float(np.min(np.abs(z - c))) >= margin)


def assume_network_away_from_kinks(model, X, margin=1e-3):
    """Run ``model`` on ``X`` and ``assume`` that every activation input (of activation layers and inside residual
    blocks) keeps ``margin`` away from its kink — the precondition of a finite-difference check of a whole ReLU
    network."""
    from .layers import Activation
    h = X
    for layer in model.layers:
        out = layer.forward(h, train=False)
        if isinstance(layer, Activation):
            assume_away_from_kinks(h, layer.name, margin)
        elif isinstance(layer, ResidualBlock):
            assume_away_from_kinks(layer.pre_activation(h), layer.activation, margin)
        h = out


@st.composite
def residual_cases(draw, activation=None, max_batch=4, max_width=4, max_hidden=4, bound=2.0, margin=1e-2,
                   min_abs=0.1):
    """A float64 :class:`~minigrow.layers.ResidualBlock` and an input batch (entries |x| ≥ ``min_abs``, see
    :func:`dense_cases`), with every pre-activation z = W1 h + b1 at least ``margin`` away from the activation's
    kink."""
    act = draw(activations()) if activation is None else activation
    n = draw(st.integers(1, max_batch))
    width = draw(st.integers(1, max_width))
    hidden = draw(st.integers(1, max_hidden))
    block = ResidualBlock(width, hidden, activation=act, rng=draw(seeds()), dtype=np.float64)
    x = draw(arrays((n, width), bound, away_from=0.0 if min_abs > 0 else None, margin=min_abs))
    z = x @ block.params["W1"].T + block.params["b1"]
    assume_away_from_kinks(z, act, margin)
    return block, x


def assert_layer_gradients(layer, x, tol=1e-7, h=1e-5, rng=0, check_input=True, n_entries=None):
    """Gradient-check every parameter of ``layer`` and its input gradient at ``x`` (use float64) and raise an
    ``AssertionError`` showing the report if the relative error exceeds ``tol``. Returns the report.

    Round-off floor: a centred difference of f = Σ out ⊙ u carries an absolute error of about
    ε_mach·Σ|out|/h, so an array whose gradients are *all* smaller than that divided by ``tol`` cannot be checked
    to ``tol`` (this happens when a sum such as ∂L/∂b = Σ_n δ_n cancels on a 1-unit layer). Inside a hypothesis
    test such an example is rejected (``hypothesis.reject``) instead of failed; outside one the error says so.
    A failing array *above* the floor always fails.
    """
    report = check_layer(layer, x, rng=rng, h=h, tol=tol, check_input=check_input, n_entries=n_entries)
    if report.ok:
        return report
    floor = np.finfo(np.float64).eps * float(np.abs(layer.forward(np.asarray(x, dtype=np.float64))).sum()) / h / tol
    failing = [e for e in report.entries if e["error"] > tol]
    if all(e["scale"] < floor for e in failing):
        if currently_in_test_context():
            reject()
        raise AssertionError(f"gradient check of {layer!r}: every failing array has gradients below the round-off "
                             f"floor {floor:.1e}; the check cannot resolve them at tol {tol:g}:\n{report}")
    raise AssertionError(f"gradient check of {layer!r} failed:\n{report}")
