"""Normalisation and dropout layers: gradient checks in float64 on drawn shapes (rel. error <= 1e-7), train vs
eval mode, running statistics against a hand computation, loop oracles, dropout's randomness (seeded, holdable,
saved with the model) and float32 runs.

``CONTRACT_CASES`` (module level) gives one small float64 (layer, input) pair per layer type for the registry-wide
contract test."""
import json

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minigrow import io
from minigrow import strategies as mst
from minigrow.layers import BatchNorm1d, BatchNorm2d, Dense, Dropout, LayerNorm, ReLU, Sequential
from minigrow.optim import Adam
from minigrow.train import Trainer

TOL = 1e-7
MIN_STD = 0.3          # per-channel spread of drawn BN inputs (see _spread)


# --- factories for the contract test ----------------------------------------------------------------------------

def _randomise(layer, rng):
    """Random γ, β (γ away from 0) and running statistics, so no check passes by γ = 1, β = 0, r = (0, 1)."""
    for k, p in layer.params.items():
        v = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1.0, 1.0], p.shape) if k == "gamma" \
            else rng.standard_normal(p.shape)
        layer.params[k] = v.astype(p.dtype)
    if "running_mean" in layer.buffers:
        C = layer.num_features
        layer.buffers["running_mean"] = rng.standard_normal(C).astype(layer.dtype)
        layer.buffers["running_var"] = rng.uniform(0.5, 2.0, C).astype(layer.dtype)
    return layer


def _bn1d_case(rng):
    return _randomise(BatchNorm1d(3, dtype=np.float64), rng), rng.standard_normal((5, 3))


def _bn2d_case(rng):
    return _randomise(BatchNorm2d(2, dtype=np.float64), rng), rng.standard_normal((3, 2, 2, 3))


def _dropout_case(rng):
    layer = Dropout(0.4, rng=int(rng.integers(2**31)))
    layer.hold_mask = True
    return layer, rng.standard_normal((4, 2, 3, 3))


def _layernorm_case(rng):
    return _randomise(LayerNorm((2, 3), dtype=np.float64), rng), rng.standard_normal((3, 2, 3))


CONTRACT_CASES = {"BatchNorm1d": _bn1d_case, "BatchNorm2d": _bn2d_case, "Dropout": _dropout_case,
                  "LayerNorm": _layernorm_case}


# --- strategies ---------------------------------------------------------------------------------------------------

def _spread(x):
    """Standard deviation of each unit (axis 1) over every other axis."""
    axes = (0,) + tuple(range(2, x.ndim))
    return x.std(axis=axes)


@st.composite
def bn_cases(draw, rank):
    """A float64 BatchNorm of the given input rank with random γ, β, running statistics, and an input whose every
    channel has std ≥ MIN_STD over its M ≥ 3 values (a channel with (almost) no spread makes x̂ = (x − μ)/σ
    ill-conditioned: its gradient ~ 1/σ, and with M = 2 x̂ = ±1 hardly depends on x at all)."""
    C = draw(st.integers(1, 3))
    if rank == 2:
        shape = (draw(st.integers(3, 6)), C)
    else:
        shape = (draw(st.integers(1, 3)), C, draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        assume(shape[0] * shape[2] * shape[3] >= 3)
    x = draw(mst.arrays(shape, bound=2.0))
    assume(float(_spread(x).min()) >= MIN_STD)
    cls = BatchNorm1d if rank == 2 else BatchNorm2d
    layer = _randomise(cls(C, dtype=np.float64), np.random.default_rng(draw(mst.seeds())))
    return layer, x


def _loop_bn_stats(x):
    """Per-channel mean and biased/unbiased variance, one channel and one value at a time (the oracle)."""
    C = x.shape[1]
    mean, var_b, var_u = np.zeros(C), np.zeros(C), np.zeros(C)
    for c in range(C):
        vals = [float(v) for v in np.moveaxis(x, 1, 0)[c].ravel()]
        M = len(vals)
        mean[c] = sum(vals) / M
        ss = sum((v - mean[c]) ** 2 for v in vals)
        var_b[c], var_u[c] = ss / M, ss / (M - 1)
    return mean, var_b, var_u


# --- batch norm ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("rank", [2, 4], ids=["1d", "2d"])
@given(data=st.data())
def test_batchnorm_gradients(rank, train, data):
    layer, x = data.draw(bn_cases(rank))
    report = layer_check(layer, x, train)
    assert {e["name"] for e in report.entries} == {"gamma", "beta", "input"}


def layer_check(layer, x, train):
    from minigrow.gradcheck import check_layer
    report = check_layer(layer, x, tol=TOL, train=train)
    assert report.ok, f"{layer!r}, train={train}, x.shape={x.shape}:\n{report}"
    return report


def test_check_layer_restores_running_statistics():
    rng = np.random.default_rng(2)
    layer = _randomise(BatchNorm2d(2, dtype=np.float64), rng)
    before = {k: v.copy() for k, v in layer.buffers.items()}
    layer_check(layer, rng.standard_normal((3, 2, 2, 2)), True)          # ~100 training-mode forward passes
    for k, v in before.items():
        np.testing.assert_array_equal(layer.buffers[k], v)


def test_batchnorm1d_accepts_ncl_and_checks_gradients():
    rng = np.random.default_rng(3)
    layer = _randomise(BatchNorm1d(2, dtype=np.float64), rng)
    x = rng.standard_normal((3, 2, 4))
    layer_check(layer, x, True)
    layer_check(layer, x, False)


def test_batchnorm_without_affine_has_no_params_and_checks_gradients():
    rng = np.random.default_rng(4)
    layer = BatchNorm2d(3, affine=False, dtype=np.float64)
    assert layer.params == {} and layer.n_params() == 0 and layer.dtype == np.float64
    assert set(layer.out_axes()) == {"running_mean", "running_var"}
    x = rng.standard_normal((2, 3, 2, 2))
    np.testing.assert_allclose(layer.forward(x), (x - x.mean((0, 2, 3), keepdims=True))
                               / np.sqrt(x.var((0, 2, 3), keepdims=True) + 1e-5), rtol=1e-12, atol=1e-12)
    layer_check(layer, x, True)


@pytest.mark.parametrize("cls,shape", [(BatchNorm1d, (7, 3)), (BatchNorm2d, (4, 3, 2, 5))])
def test_batchnorm_train_forward_matches_loop_oracle(cls, shape):
    rng = np.random.default_rng(5)
    layer = _randomise(cls(shape[1], dtype=np.float64), rng)
    x = rng.standard_normal(shape) * 3 + 1
    y = layer.forward(x, train=True)
    mean, var_b, _ = _loop_bn_stats(x)
    g, b = layer.params["gamma"], layer.params["beta"]
    for idx in np.ndindex(shape):
        c = idx[1]
        assert y[idx] == pytest.approx(g[c] * (x[idx] - mean[c]) / np.sqrt(var_b[c] + 1e-5) + b[c], rel=1e-12,
                                       abs=1e-12)


@pytest.mark.parametrize("cls,shape", [(BatchNorm1d, (6, 4)), (BatchNorm2d, (3, 2, 3, 2))])
def test_batchnorm_eval_uses_running_stats_and_updates_nothing(cls, shape):
    rng = np.random.default_rng(6)
    layer = _randomise(cls(shape[1], dtype=np.float64), rng)
    layer.forward(rng.standard_normal(shape), train=True)           # something tracked already
    before = {k: v.copy() for k, v in layer.buffers.items()}
    params = {k: v.copy() for k, v in layer.params.items()}
    x = rng.standard_normal(shape) * 2 + 0.5
    y = layer.forward(x, train=False)
    layer.backward(rng.standard_normal(shape))
    y2 = layer(x)                                                    # __call__ is eval mode
    for k, v in before.items():                                     # bit-identical, including num_batches_tracked
        assert layer.buffers[k].dtype == v.dtype
        np.testing.assert_array_equal(layer.buffers[k], v)
    for k, v in params.items():
        np.testing.assert_array_equal(layer.params[k], v)
    np.testing.assert_array_equal(y, y2)
    sh = (1, shape[1]) + (1,) * (len(shape) - 2)
    rm, rv = before["running_mean"].reshape(sh), before["running_var"].reshape(sh)
    expect = params["gamma"].reshape(sh) * (x - rm) / np.sqrt(rv + 1e-5) + params["beta"].reshape(sh)
    np.testing.assert_allclose(y, expect, rtol=1e-13, atol=1e-13)
    # the eval map is affine in x: its input gradient is (γ/σ_r) g whatever the batch
    g = rng.standard_normal(shape)
    layer.forward(x, train=False)
    np.testing.assert_allclose(layer.backward(g), g * params["gamma"].reshape(sh) / np.sqrt(rv + 1e-5), rtol=1e-13)


def test_batchnorm_input_gradient_identities():
    """Σ_k ∂L/∂x_k = 0 and Σ_k x̂_k ∂L/∂x_k = (γ/σ)(ε/σ²) Σ g x̂ per unit (docs/derivations/batchnorm.md)."""
    rng = np.random.default_rng(1)
    layer = _randomise(BatchNorm2d(3, eps=1e-2, dtype=np.float64), rng)
    x = rng.standard_normal((4, 3, 2, 3)) * 0.5
    layer.forward(x, train=True)
    g = rng.standard_normal(x.shape)
    dx = layer.backward(g)
    axes = (0, 2, 3)
    sigma = np.sqrt(x.var(axes) + 1e-2)
    xhat = (x - x.mean(axes, keepdims=True)) / sigma.reshape(1, 3, 1, 1)
    np.testing.assert_allclose(dx.sum(axes), 0, atol=1e-13)
    pred = layer.params["gamma"] / sigma * 1e-2 / sigma**2 * (g * xhat).sum(axes)
    assert np.all(np.abs(pred) > 1e-3)
    np.testing.assert_allclose((xhat * dx).sum(axes), pred, rtol=1e-10)


def test_batchnorm_train_output_does_not_depend_on_running_stats():
    rng = np.random.default_rng(7)
    a = _randomise(BatchNorm2d(2, dtype=np.float64), rng)
    b = BatchNorm2d(2, dtype=np.float64)
    b.params = {k: v.copy() for k, v in a.params.items()}
    x = rng.standard_normal((2, 2, 3, 3))
    np.testing.assert_array_equal(a.forward(x, train=True), b.forward(x, train=True))


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
@pytest.mark.parametrize("cls,shape", [(BatchNorm1d, (5, 3)), (BatchNorm2d, (2, 3, 2, 3))])
def test_running_stats_follow_hand_computation_over_batches(cls, shape, momentum):
    """r ← (1 − m) r + m·stat with the batch mean and the *unbiased* batch variance (PyTorch); momentum=None is
    the cumulative average m = 1/k over the k batches seen."""
    rng = np.random.default_rng(8)
    layer = cls(shape[1], momentum=momentum, dtype=np.float64)
    rm, rv = np.zeros(shape[1]), np.ones(shape[1])
    for k in range(1, 6):
        x = rng.standard_normal(shape) * (k + 0.5) + 2.0 * k         # a different distribution each batch
        layer.forward(x, train=True)
        mean, _, var_u = _loop_bn_stats(x)
        m = 1.0 / k if momentum is None else momentum
        rm = (1 - m) * rm + m * mean
        rv = (1 - m) * rv + m * var_u
        np.testing.assert_allclose(layer.buffers["running_mean"], rm, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(layer.buffers["running_var"], rv, rtol=1e-12)
        assert int(layer.buffers["num_batches_tracked"]) == k
    if momentum is None:                        # the cumulative average of the batch statistics
        assert layer.buffers["running_mean"][0] == pytest.approx(np.mean([2.0 * k for k in range(1, 6)]), abs=2.0)


def test_batchnorm_train_needs_two_values_per_channel_and_checks_shapes():
    layer = BatchNorm1d(3)
    with pytest.raises(ValueError, match="more than one value per unit"):
        layer.forward(np.ones((1, 3), dtype=np.float32), train=True)
    assert layer.forward(np.ones((1, 3), dtype=np.float32), train=False).shape == (1, 3)   # eval: fine
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): expected input of shape \(N, 3\)"):
        layer.forward(np.ones((4, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\).*got \(4, 3\)"):
        BatchNorm2d(3).forward(np.ones((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm2d(0)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm1d(2, momentum=1.5)
    with pytest.raises(TypeError, match="affine"):
        BatchNorm1d(2, affine=1)


def test_batchnorm_float32_and_astype():
    rng = np.random.default_rng(9)
    layer = BatchNorm2d(3)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    y = layer.forward(x, train=True)
    assert y.dtype == np.float32 and layer.backward(np.ones_like(y)).dtype == np.float32
    assert all(layer.buffers[k].dtype == np.float32 for k in ("running_mean", "running_var"))
    assert layer.grads["gamma"].dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)      # normalised per channel
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)
    layer.astype(np.float64)
    assert layer.dtype == np.float64
    assert all(layer.buffers[k].dtype == np.float64 for k in ("running_mean", "running_var"))
    assert layer.buffers["num_batches_tracked"].dtype == np.int64
    assert layer.forward(x.astype(np.float64), train=False).dtype == np.float64


def test_batchnorm_config_roundtrip_and_unit_slicing():
    rng = np.random.default_rng(10)
    layer = _randomise(BatchNorm2d(4, eps=1e-3, momentum=0.2, dtype=np.float64), rng)
    cfg = json.loads(json.dumps(layer.config()))
    copy = BatchNorm2d.from_config(cfg, layer.params, layer.buffers)
    assert copy.config() == layer.config() and copy.dtype == np.float64
    x = rng.standard_normal((2, 4, 3, 3))
    np.testing.assert_array_equal(copy.forward(x, train=False), layer.forward(x, train=False))
    assert layer.unit_kind == "elementwise"
    assert layer.out_axes() == {"gamma": 0, "beta": 0, "running_mean": 0, "running_var": 0}
    keep = [0, 2, 3]
    full = layer.forward(x, train=False)
    for name, axis in layer.out_axes().items():          # what surgery does to an element-wise layer
        layer.slice_param(name, axis, keep)
    assert layer.num_features == 3 and layer.config()["num_features"] == 3
    np.testing.assert_array_equal(layer.forward(x[:, keep], train=False), full[:, keep])
    with pytest.raises(ValueError, match="unexpected buffer"):
        BatchNorm2d.from_config(cfg, copy.params, {"nope": np.zeros(4)})


# --- backward overwrites ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CONTRACT_CASES))
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_backward_overwrites_grads(name, train):
    layer, x = CONTRACT_CASES[name](np.random.default_rng(11))
    g = np.random.default_rng(12).standard_normal(layer.forward(x, train).shape)
    dx1 = layer.backward(g)
    first = {k: v.copy() for k, v in layer.grads.items()}
    dx2 = layer.backward(g)
    np.testing.assert_array_equal(dx1, dx2)
    for k, v in first.items():
        np.testing.assert_array_equal(layer.grads[k], v)
    assert layer.backward(g, need_input_grad=False) is None
    for k, v in first.items():
        np.testing.assert_array_equal(layer.grads[k], v)


@pytest.mark.parametrize("name", sorted(CONTRACT_CASES))
def test_contract_cases_gradient_check(name):
    layer, x = CONTRACT_CASES[name](np.random.default_rng(13))
    assert x.dtype == np.float64 and (layer.dtype is None or layer.dtype == np.float64)
    layer_check(layer, x, True)
    layer_check(layer, x, False)


# --- dropout -----------------------------------------------------------------------------------------------------

def test_dropout_is_deterministic_given_the_seed():
    x = np.random.default_rng(14).standard_normal((8, 3, 4, 4))
    a, b, c = Dropout(0.3, rng=5), Dropout(0.3, rng=5), Dropout(0.3, rng=6)
    ya = [a.forward(x, train=True) for _ in range(3)]
    yb = [b.forward(x, train=True) for _ in range(3)]
    for u, v in zip(ya, yb):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(ya[0], ya[1])                  # a fresh mask each step
    assert not np.array_equal(ya[0], c.forward(x, train=True))
    np.testing.assert_array_equal(Dropout(0.3).forward(x), Dropout(0.3, rng=0).forward(x))    # default seed 0


def test_dropout_mask_values_and_backward():
    x = np.random.default_rng(15).standard_normal((6, 10))
    layer = Dropout(0.25, rng=1)
    y = layer.forward(x, train=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-15)        # inverted: scaled by 1/(1 − p)
    g = np.random.default_rng(16).standard_normal(x.shape)
    dx = layer.backward(g)
    np.testing.assert_allclose(dx, np.where(kept, g / 0.75, 0.0), rtol=1e-15)


def test_dropout_p0_identity_p1_zeros_and_eval_identity_without_draws():
    x = np.random.default_rng(17).standard_normal((5, 4))
    np.testing.assert_array_equal(Dropout(0.0).forward(x, train=True), x)
    np.testing.assert_array_equal(Dropout(1.0).forward(x, train=True), np.zeros_like(x))
    layer = Dropout(0.5, rng=3)
    state = json.dumps(layer.extra_state())
    assert layer.forward(x, train=False) is x                 # identity, no copy
    np.testing.assert_array_equal(layer.backward(x), x)
    assert json.dumps(layer.extra_state()) == state           # eval mode draws nothing
    with pytest.raises(ValueError, match="p: expected a number in"):
        Dropout(1.5)
    with pytest.raises(TypeError, match="rng"):
        Dropout(0.5, rng="seed")
    with pytest.raises(TypeError, match="NumPy array"):
        Dropout(0.5).forward([1.0, 2.0])


def test_dropout_hold_mask_reproduces_the_output():
    rng = np.random.default_rng(18)
    x = rng.standard_normal((4, 6))
    layer = Dropout(0.5, rng=2)
    layer.hold_mask = True
    y1 = layer.forward(x, train=True)
    y2 = layer.forward(x, train=True)
    np.testing.assert_array_equal(y1, y2)
    x2 = rng.standard_normal((4, 6))
    np.testing.assert_array_equal(layer.forward(x2, train=True) != 0, y1 != 0)    # same mask, new input
    y3 = layer.forward(rng.standard_normal((3, 6)), train=True)     # shape changed: a new mask is drawn
    assert y3.shape == (3, 6)
    layer.hold_mask = False
    assert not np.array_equal(layer.forward(x, train=True), y1)


def test_dropout_expected_value_is_the_input():
    """E[y] = x: over n = 200 000 values of x = 1 with p = 0.3, mean(y) has standard deviation
    √(p/(1 − p)/n) ≈ 0.00146; the test allows 5 of them (0.0073). The kept fraction is 1 − p within 5·√(p(1 − p)/n)."""
    p, n = 0.3, 200_000
    y = Dropout(p, rng=19).forward(np.ones((2000, 100)), train=True)
    assert abs(y.mean() - 1.0) <= 5 * np.sqrt(p / (1 - p) / n)
    assert abs(np.mean(y != 0) - (1 - p)) <= 5 * np.sqrt(p * (1 - p) / n)


@given(rank=st.sampled_from([2, 4]), data=st.data(), p=st.floats(0.0, 0.9), seed=mst.seeds())
def test_dropout_gradients_with_held_mask(rank, data, p, seed):
    shape = data.draw(st.tuples(*[st.integers(1, 3)] * rank))
    x = data.draw(mst.arrays(shape, bound=2.0))
    layer = Dropout(p, rng=seed)
    layer.hold_mask = True
    report = layer_check(layer, x, True)
    assert [e["name"] for e in report.entries] == ["input"]


def test_dropout_float32_keeps_the_dtype_and_the_mask():
    x = np.random.default_rng(20).standard_normal((4, 2, 3, 3))
    y64 = Dropout(0.5, rng=4).forward(x, train=True)
    y32 = Dropout(0.5, rng=4).forward(x.astype(np.float32), train=True)
    assert y32.dtype == np.float32
    np.testing.assert_array_equal(y32 != 0, y64 != 0)        # one seed, one mask, whatever the dtype
    np.testing.assert_allclose(y32, y64, rtol=1e-6)


def test_dropout_generator_argument_seeds_an_own_stream():
    g = np.random.default_rng(21)
    layer = Dropout(0.5, rng=g)
    assert layer.rng is not g
    before = g.bit_generator.state
    layer.forward(np.ones((3, 3)), train=True)
    assert g.bit_generator.state == before                   # the layer's draws do not advance the caller's rng


@pytest.mark.parametrize("bitgen", ["PCG64", "MT19937", "Philox"])
def test_dropout_rng_state_roundtrips_through_json(bitgen):
    x = np.ones((5, 7))
    layer = Dropout(0.5)
    layer.rng = np.random.Generator(getattr(np.random, bitgen)(22))
    layer.forward(x, train=True)
    extra = json.loads(json.dumps(layer.extra_state()))          # what minigrow.io stores
    expected = [layer.forward(x, train=True) for _ in range(3)]
    other = Dropout(0.5)
    other.load_extra(extra, {})
    assert type(other.rng.bit_generator).__name__ == bitgen
    for e in expected:
        np.testing.assert_array_equal(other.forward(x, train=True), e)
    with pytest.raises(ValueError, match="unknown bit generator"):
        other.load_extra({"rng": {"bit_generator": "Nope", "state": {}}}, {})


def test_dropout_resumes_bit_identically_from_a_saved_model(tmp_path):
    """End to end: a model saved mid-run and loaded draws the masks the uninterrupted model draws next."""
    rng = np.random.default_rng(23)
    model = Sequential([Dense(6, 5, rng=1, dtype=np.float64), Dropout(0.4, rng=7), Dense(5, 2, rng=2,
                                                                                       dtype=np.float64)])
    X = rng.standard_normal((8, 6))
    for _ in range(3):
        model.forward(X, train=True)
    io.save(tmp_path / "m.npz", model)
    loaded = io.load(tmp_path / "m.npz")["model"]
    assert isinstance(loaded.layers[1], Dropout) and loaded.layers[1].p == 0.4
    for _ in range(3):
        np.testing.assert_array_equal(loaded.forward(X, train=True), model.forward(X, train=True))
    np.testing.assert_array_equal(loaded.forward(X, train=False), model.forward(X, train=False))


def test_dropout_is_stochastic_elementwise_and_parameter_free():
    layer = Dropout()
    assert Dropout.stochastic and layer.unit_kind == "elementwise"
    assert layer.params == {} and layer.buffers == {} and layer.out_axes() == {} and layer.dtype is None
    assert layer.config() == {"p": 0.5}


# --- layer norm ---------------------------------------------------------------------------------------------------

@st.composite
def layernorm_cases(draw):
    """A float64 LayerNorm over k = 1…3 trailing axes of a rank k+1…k+2 input, random γ, β; every sample's
    normalised block has std ≥ MIN_STD over its M ≥ 3 values (cf. bn_cases)."""
    k = draw(st.integers(1, 3))
    S = tuple(draw(st.integers(1, 3)) for _ in range(k))
    assume(int(np.prod(S)) >= 3)
    lead = tuple(draw(st.integers(1, 3)) for _ in range(draw(st.integers(1, 2))))
    x = draw(mst.arrays(lead + S, bound=2.0))
    axes = tuple(range(len(lead), x.ndim))
    assume(float(x.std(axis=axes).min()) >= MIN_STD)
    arg = S[0] if k == 1 and draw(st.booleans()) else S
    layer = _randomise(LayerNorm(arg, dtype=np.float64), np.random.default_rng(draw(mst.seeds())))
    return layer, x


@given(case=layernorm_cases())
def test_layernorm_gradients(case):
    layer, x = case
    report = layer_check(layer, x, True)
    assert {e["name"] for e in report.entries} == {"gamma", "beta", "input"}


@pytest.mark.parametrize("S,shape", [(4, (3, 4)), ((3, 2, 2), (2, 3, 2, 2)), (2, (2, 3, 2, 2)), ((2, 2), (2, 3, 2, 2))])
def test_layernorm_matches_per_sample_loop(S, shape):
    rng = np.random.default_rng(24)
    layer = _randomise(LayerNorm(S, dtype=np.float64), rng)
    x = rng.standard_normal(shape) * 2 - 1
    y = layer.forward(x, train=True)
    np.testing.assert_array_equal(layer.forward(x, train=False), y)     # no running statistics: one map
    S = (S,) if isinstance(S, int) else S
    lead = shape[:len(shape) - len(S)]
    g, b = layer.params["gamma"], layer.params["beta"]
    for i in np.ndindex(lead):                       # one sample (one set of leading indices) at a time
        vals = [float(v) for v in x[i].ravel()]
        mu = sum(vals) / len(vals)
        sd = np.sqrt(sum((v - mu) ** 2 for v in vals) / len(vals) + 1e-5)
        for j in np.ndindex(S):
            assert y[i + j] == pytest.approx(g[j] * (x[i + j] - mu) / sd + b[j], rel=1e-12, abs=1e-12)


def test_layernorm_checks_shapes_config_and_float32():
    layer = LayerNorm((3, 4))
    assert layer.unit_kind == "opaque" and layer.params["gamma"].shape == (3, 4)
    with pytest.raises(ValueError, match=r"LayerNorm\(3, 4\): expected input of shape \(N, …, 3, 4\), got \(2, 4, 3\)"):
        layer.forward(np.ones((2, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"got \(3, 4\)"):
        layer.forward(np.ones((3, 4), dtype=np.float32))        # no batch axis
    with pytest.raises(TypeError, match="normalized_shape"):
        LayerNorm("4")
    with pytest.raises(ValueError, match=r"normalized_shape\[1\]"):
        LayerNorm((2, 0))
    x = np.random.default_rng(25).standard_normal((5, 3, 4)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32 and layer.backward(np.ones_like(y)).dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-5)
    cfg = json.loads(json.dumps(layer.config()))
    copy = LayerNorm.from_config(cfg, {k: v.astype(np.float64) for k, v in layer.params.items()})
    assert copy.normalized_shape == (3, 4) and copy.dtype == np.float64
    bare = LayerNorm(4, elementwise_affine=False)
    assert bare.params == {} and bare.dtype == np.float32
    assert bare.astype(np.float64).dtype == np.float64


# --- in a model, with the trainer --------------------------------------------------------------------------------

def _bn_dropout_model():
    return Sequential([Dense(6, 16, rng=1), BatchNorm1d(16), ReLU(), Dropout(0.2, rng=3), Dense(16, 2, rng=2)])


def _toy_data():
    rng = np.random.default_rng(27)
    X = (rng.standard_normal((256, 6)) * 3 + 1).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 2).astype(np.int64)


def test_trainer_fits_a_model_with_batchnorm_and_dropout_reproducibly():
    X, y = _toy_data()
    runs = []
    for _ in range(2):
        model = _bn_dropout_model()
        hist = Trainer(model, optimizer=Adam(1e-2), batch_size=32, progress=False).fit(X, y, 4)
        runs.append((model, [e["train_loss"] for e in hist.epochs]))
    (model, losses), (model2, losses2) = runs
    assert losses == losses2                                      # seeded: bit-identical runs
    assert losses[-1] < 0.5 * losses[0], losses
    bn = model.layers[1]
    assert int(bn.buffers["num_batches_tracked"]) == 4 * 8 and bn.buffers["running_mean"].dtype == np.float32
    np.testing.assert_array_equal(model.predict_logits(X), model.predict_logits(X))     # eval: deterministic
    assert np.mean(model.predict(X) == y) > 0.9


def test_trainer_rollback_snapshot_restores_running_stats_and_dropout_rng():
    """The epoch snapshot behind divergence rollback keeps batch-norm buffers and the dropout random state."""
    X, y = _toy_data()
    model = _bn_dropout_model()
    trainer = Trainer(model, batch_size=32, progress=False)
    trainer.fit(X, y, 1)
    bn, drop = model.layers[1], model.layers[3]
    trainer._take_snapshot()
    before = {k: v.copy() for k, v in bn.buffers.items()}
    model.forward(X[:32], train=True)                             # moves the running stats, draws a mask
    after_mask = drop.forward(np.ones((3, 4), dtype=np.float32), train=True)
    trainer._restore_snapshot()
    for k, v in before.items():
        np.testing.assert_array_equal(bn.buffers[k], v)
    model.forward(X[:32], train=True)
    np.testing.assert_array_equal(drop.forward(np.ones((3, 4), dtype=np.float32), train=True), after_mask)


# --- optional parity with PyTorch (never required) ----------------------------------------------------------------

def test_batchnorm_and_layernorm_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(26)
    x = rng.standard_normal((4, 3, 2, 5))
    g = rng.standard_normal(x.shape)
    ours = _randomise(BatchNorm2d(3, momentum=0.3, dtype=np.float64), rng)
    ref = torch.nn.BatchNorm2d(3, momentum=0.3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(ours.params["gamma"]))
        ref.bias.copy_(torch.from_numpy(ours.params["beta"]))
        ref.running_mean.copy_(torch.from_numpy(ours.buffers["running_mean"]))
        ref.running_var.copy_(torch.from_numpy(ours.buffers["running_var"]))
    for train in (True, False):
        ref.train(train)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = ref(xt)
        yt.backward(torch.from_numpy(g))
        y = ours.forward(x, train=train)
        dx = ours.backward(g)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours.grads["gamma"], ref.weight.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(ours.grads["beta"], ref.bias.grad.numpy(), rtol=1e-10)
        ref.weight.grad = ref.bias.grad = None
        for k in ("running_mean", "running_var"):
            np.testing.assert_allclose(ours.buffers[k], getattr(ref, k).numpy(), rtol=1e-12)
    cum, cref = BatchNorm1d(3, momentum=None, dtype=np.float64), torch.nn.BatchNorm1d(3, momentum=None).double()
    for k in range(3):                                   # cumulative average over the batches seen
        xb = rng.standard_normal((5, 3)) * (k + 1) + k
        cum.forward(xb, train=True)
        cref(torch.from_numpy(xb))
    for k in ("running_mean", "running_var"):
        np.testing.assert_allclose(cum.buffers[k], getattr(cref, k).numpy(), rtol=1e-12)
    assert int(cum.buffers["num_batches_tracked"]) == int(cref.num_batches_tracked) == 3
    ln = _randomise(LayerNorm((2, 5), dtype=np.float64), rng)
    lref = torch.nn.LayerNorm((2, 5)).double()
    with torch.no_grad():
        lref.weight.copy_(torch.from_numpy(ln.params["gamma"]))
        lref.bias.copy_(torch.from_numpy(ln.params["beta"]))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = lref(xt)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(ln.forward(x), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ln.backward(g), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ln.grads["gamma"], lref.weight.grad.numpy(), rtol=1e-10)
