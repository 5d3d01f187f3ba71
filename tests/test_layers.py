"""Every layer gradient-checked in float64 on drawn shapes and values (rel. error <= 1e-7, away from kinks),
plus shape checks, structural edits and slow loop oracles for the vectorised kernels."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigrow import strategies as mst
from minigrow.layers import (ACTIVATIONS, Dense, LeakyReLU, ReLU, ResidualBlock, Sequential, Sigmoid, Tanh,
                             activation_layer)

TOL = 1e-7


@given(case=mst.dense_cases())
def test_dense_gradients(case):
    layer, x = case
    report = mst.assert_layer_gradients(layer, x, tol=TOL)
    assert {e["name"] for e in report.entries} == set(layer.params) | {"input"}


@given(case=mst.dense_cases(max_batch=3, max_in=3, max_out=3, bias=True), scale=st.floats(0.1, 3.0))
def test_dense_forward_matches_loop_oracle(case, scale):
    layer, x = case
    layer.params["W"] *= scale
    z = layer.forward(x)
    W, b = layer.params["W"], layer.params["b"]
    for n in range(x.shape[0]):                      # z_n = W a_n + b, one sample at a time
        for j in range(W.shape[0]):
            assert z[n, j] == pytest.approx(sum(W[j, i] * x[n, i] for i in range(W.shape[1])) + b[j],
                                            rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("cls", [ReLU, LeakyReLU])
@given(x=mst.batches(away_from=0.0, margin=1e-3))
def test_piecewise_linear_activation_gradients(cls, x):
    mst.assert_layer_gradients(cls(), x, tol=TOL)


@pytest.mark.parametrize("cls", [Tanh, Sigmoid])
@given(x=mst.batches(bound=4.0))
def test_smooth_activation_gradients(cls, x):
    mst.assert_layer_gradients(cls(), x, tol=TOL)


@given(x=mst.batches(bound=3.0), alpha=st.floats(0.0, 0.5))
def test_leaky_relu_values(x, alpha):
    a = LeakyReLU(alpha).forward(x)
    np.testing.assert_array_equal(a, np.where(x > 0, x, alpha * x))


def test_relu_derivative_at_zero_is_zero():
    layer = ReLU()
    layer.forward(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


def test_sigmoid_is_logistic_and_does_not_overflow():
    z = np.array([[-800.0, -3.0, 0.0, 3.0, 800.0]])
    with np.errstate(over="raise"):
        a = Sigmoid().forward(z)
    np.testing.assert_allclose(a[0, 1:4], 1 / (1 + np.exp(-z[0, 1:4])), rtol=1e-15)
    assert a[0, 0] == 0.0 and a[0, -1] == 1.0


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid"])
@given(data=st.data())
def test_residual_block_gradients(activation, data):
    block, x = data.draw(mst.residual_cases(activation))
    mst.assert_layer_gradients(block, x, tol=TOL)


@given(case=mst.residual_cases("tanh"))
def test_residual_block_is_h_plus_W2_sigma(case):
    block, x = case
    p = block.params
    expected = x + np.tanh(x @ p["W1"].T + p["b1"]) @ p["W2"].T
    np.testing.assert_allclose(block.forward(x), expected, rtol=1e-13, atol=1e-13)
    assert set(p) == {"W1", "b1", "W2"}           # W2 has no bias (SensLI res2)


def test_residual_block_with_zero_W2_is_identity():
    block = ResidualBlock(3, 5, "relu", rng=1, dtype=np.float64)
    block.params["W2"][:] = 0
    x = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_array_equal(block.forward(x), x)


@given(shape=mst.dense_shapes(), seed=mst.seeds())
def test_sequential_backward_is_chain_of_layers(shape, seed):
    n, fan_in, fan_out = shape
    model = Sequential([Dense(fan_in, 4, rng=seed, dtype=np.float64), Tanh(),
                        Dense(4, fan_out, rng=seed + 1, dtype=np.float64)])
    x = np.random.default_rng(seed).standard_normal((n, fan_in))
    mst.assert_layer_gradients(model.layers[0], x)
    out = model.forward(x)
    u = np.ones_like(out)
    dx = model.backward(u)
    # by hand: dx = ((u W2) ⊙ (1 − tanh²)) W1
    W1, W2 = model.layers[0].params["W"], model.layers[2].params["W"]
    a = np.tanh(x @ W1.T + model.layers[0].params["b"])
    np.testing.assert_allclose(dx, ((u @ W2) * (1 - a * a)) @ W1, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bad", [np.zeros((2, 4)), np.zeros(3), np.zeros((2, 3, 1))])
def test_dense_rejects_wrong_input_shape(bad):
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 3\)"):
        Dense(3, 2).forward(bad)


def test_residual_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"ResidualBlock\(3\): expected input of shape"):
        ResidualBlock(3).forward(np.zeros((2, 2), dtype=np.float32))


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_features=0, out_features=2), "in_features: expected an integer >= 1"),
    (dict(in_features=2, out_features=2, init="bogus"), "init: expected one of"),
    (dict(in_features=2, out_features=3, init="identity"), "identity' needs a square layer"),
])
def test_dense_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Dense(**kwargs)


def test_unknown_activation():
    with pytest.raises(ValueError, match="activation: expected one of"):
        activation_layer("swish")
    with pytest.raises(ValueError, match="activation: expected one of"):
        ResidualBlock(2, activation="swish")


def test_sequential_rejects_non_layers():
    with pytest.raises(TypeError, match=r"layers\[1\]: expected a minigrow Layer"):
        Sequential([ReLU(), np.zeros(3)])


@given(seed=mst.seeds(), keep=st.lists(st.integers(0, 5), min_size=1, max_size=6, unique=True))
def test_remove_units_keeps_function_of_remaining_units(seed, keep):
    """Removing hidden units k ∉ keep (rows of W_l, columns of W_{l+1}) equals zeroing their outgoing weights."""
    keep = sorted(keep)
    model = Sequential([Dense(3, 6, rng=seed, dtype=np.float64), Tanh(), Dense(6, 2, rng=seed + 1, dtype=np.float64)])
    x = np.random.default_rng(seed).standard_normal((5, 3))
    drop = [k for k in range(6) if k not in keep]
    ref = Sequential([Dense(3, 6, rng=seed, dtype=np.float64), Tanh(), Dense(6, 2, rng=seed + 1, dtype=np.float64)])
    ref.layers[2].params["W"][:, drop] = 0
    model.layers[0].remove_outputs(keep)
    model.layers[2].remove_inputs(keep)
    assert model.layers[0].out_features == len(keep) == model.layers[2].in_features
    assert model.layers[0].grads["W"].shape == model.layers[0].params["W"].shape
    np.testing.assert_allclose(model.forward(x), ref.forward(x), rtol=1e-13, atol=1e-14)


def test_insert_and_remove_layers():
    model = Sequential([Dense(2, 3), ReLU(), Dense(3, 2)])
    new = [Dense(3, 3, init="identity"), ReLU()]
    model.insert(2, *new)
    assert [type(layer).__name__ for layer in model] == ["Dense", "ReLU", "Dense", "ReLU", "Dense"]
    assert model.layers[2] is new[0]
    assert model.remove(3) is new[1]
    assert len(model) == 4
    with pytest.raises(ValueError, match="index: expected an integer <= 4"):
        model.insert(5, ReLU())
    with pytest.raises(TypeError, match="insert: expected minigrow Layers"):
        model.insert(0, "Dense")


def test_identity_insertion_keeps_function():
    """A Dense(identity) + ReLU inserted after a ReLU changes nothing: relu(I·relu(z)) = relu(z)."""
    model = Sequential([Dense(2, 4, rng=3, dtype=np.float64), ReLU(), Dense(4, 2, rng=4, dtype=np.float64)])
    x = np.random.default_rng(0).standard_normal((7, 2))
    before = model.forward(x)
    model.insert(2, Dense(4, 4, init="identity", dtype=np.float64), ReLU())
    np.testing.assert_array_equal(model.forward(x), before)


def test_counts_and_summary():
    model = Sequential([Dense(784, 300), ReLU(), Dense(300, 10), ResidualBlock(10, 4)])
    assert model.n_params() == 784 * 300 + 300 + 300 * 10 + 10 + (10 * 4 + 4 + 4 * 10)
    assert model.macs() == 784 * 300 + 300 * 10 + 2 * 10 * 4
    assert "total" in model.summary() and "ResidualBlock" in repr(model)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_through_forward_and_backward(dtype):
    model = Sequential([Dense(3, 4, dtype=dtype), ReLU(), ResidualBlock(4, 2, "tanh", dtype=dtype),
                        Dense(4, 2, dtype=dtype)])
    x = np.ones((5, 3), dtype=dtype)
    out = model.forward(x)
    assert out.dtype == dtype
    assert model.backward(np.ones_like(out)).dtype == dtype
    assert all(layer.grads[k].dtype == dtype for layer, k in model.parameters())


def test_activation_table_derivatives_match_closed_forms():
    z = np.linspace(-3, 3, 13) + 0.05           # avoid z = 0 exactly
    for name, (f, df) in ACTIVATIONS.items():
        a = f(z, 0.1)
        num = (f(z + 1e-6, 0.1) - f(z - 1e-6, 0.1)) / 2e-6
        np.testing.assert_allclose(df(z, a, np.ones_like(z), 0.1), num, rtol=1e-7, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("init", ["torch", "he", "glorot"])
def test_initialiser_bounds(init):
    layer = Dense(50, 40, init=init, rng=0, dtype=np.float64)
    bound = {"torch": 1 / np.sqrt(50), "he": np.sqrt(6 / 50), "glorot": np.sqrt(6 / 90)}[init]
    W = layer.params["W"]
    assert np.abs(W).max() <= bound and np.abs(W).max() > 0.9 * bound
    assert abs(W.mean()) < 0.1 * bound
    if init != "torch":
        assert not layer.params["b"].any()
    assert np.array_equal(W, Dense(50, 40, init=init, rng=0, dtype=np.float64).params["W"])   # seeded
