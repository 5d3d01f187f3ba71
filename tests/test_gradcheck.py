"""The gradient checker itself: the error formula, one-sided vs centred differences at a kink, that a planted
error is found (and where), the directional and function checks."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigrow import strategies as mst
from minigrow.gradcheck import (GradCheckReport, check_directional, check_function, check_layer, check_network,
                                numerical_gradient, rel_error)
from minigrow.layers import Dense, ReLU, Sequential, Tanh
from minigrow.network import mlp


def test_rel_error_formula():
    a = np.array([1.0, -2.0, 3.0])
    n = np.array([1.0, -2.5, 3.0])
    # max|a − n| = 0.5; max(|a| + |n|) = 6 (at index 2)
    assert rel_error(a, n) == 0.5 / 6.0
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.array([1e-12]), np.array([0.0])) == pytest.approx(1e-12 / 1e-8)   # the 1e-8 floor
    assert rel_error(np.array([]), np.array([])) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        rel_error(np.zeros(2), np.zeros(3))


@given(a=mst.arrays((3,), bound=10.0), b=mst.arrays((3,), bound=10.0))
def test_rel_error_is_symmetric_and_bounded(a, b):
    e = rel_error(a, b)
    assert e == rel_error(b, a)
    assert 0.0 <= e <= 1.0 or np.max(np.abs(a) + np.abs(b)) < 1e-8


def test_numerical_gradient_methods_on_smooth_function():
    x = np.array([0.3, -1.2, 2.0])
    exact = 3 * x ** 2
    f = lambda: float(np.sum(x ** 3))                       # noqa: E731
    central = numerical_gradient(f, x, h=1e-5)
    forward = numerical_gradient(f, x, h=1e-5, method="forward")
    backward = numerical_gradient(f, x, h=1e-5, method="backward")
    assert rel_error(central, exact) < 1e-9                 # O(h²)
    assert 1e-7 < rel_error(forward, exact) < 1e-4          # O(h): clearly worse
    assert 1e-7 < rel_error(backward, exact) < 1e-4
    np.testing.assert_array_equal(x, [0.3, -1.2, 2.0])      # restored after perturbing


def test_one_sided_vs_central_at_the_kink_of_abs_and_relu():
    x = np.zeros(1)
    f_abs = lambda: float(np.abs(x).sum())                  # noqa: E731
    assert numerical_gradient(f_abs, x)[0] == 0.0                       # central: (h − h)/2h
    assert numerical_gradient(f_abs, x, method="forward")[0] == 1.0     # right derivative
    assert numerical_gradient(f_abs, x, method="backward")[0] == -1.0   # left derivative
    f_relu = lambda: float(np.maximum(x, 0).sum())          # noqa: E731
    assert numerical_gradient(f_relu, x)[0] == 0.5          # central: halfway, matches neither one-sided value
    assert numerical_gradient(f_relu, x, method="forward")[0] == 1.0
    assert numerical_gradient(f_relu, x, method="backward")[0] == 0.0   # the left derivative = ReLU'(0) = 0
    layer = ReLU()                                          # so a check of ReLU *at* 0 fails centrally …
    rep = check_layer(layer, np.zeros((1, 2)))
    assert not rep.ok and rep.worst["error"] == pytest.approx(1.0)   # analytic 0 vs numeric u/2: |u/2|/|u/2|
    rep_left = check_layer(ReLU(), np.zeros((1, 2)), method="backward")
    assert rep_left.ok                                      # … and passes with the left-sided difference


def test_numerical_gradient_indices_and_bad_method():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    g = numerical_gradient(lambda: float(np.sum(x ** 2)), x, indices=[(1, 0)])
    np.testing.assert_allclose(g, [[0, 0], [6, 0]], atol=1e-8)
    with pytest.raises(ValueError, match="method: expected one of"):
        numerical_gradient(lambda: 0.0, x, method="sideways")
    with pytest.raises(ValueError, match="h: expected a number > 0"):
        numerical_gradient(lambda: 0.0, x, h=0)


class BrokenDense(Dense):
    """Dense with a planted bug in one entry of ∂L/∂W."""

    def backward(self, dout, need_input_grad=True):
        dx = super().backward(dout, need_input_grad)
        self.grads["W"][1, 2] += 0.01
        return dx


class BrokenInput(Dense):
    def backward(self, dout, need_input_grad=True):
        return 1.01 * super().backward(dout, need_input_grad)


def test_report_finds_the_planted_wrong_entry():
    x = np.random.default_rng(0).standard_normal((4, 3))
    rep = check_layer(BrokenDense(3, 2, dtype=np.float64), x)
    assert not rep.ok
    assert rep.worst["name"] == "W" and rep.worst["worst_index"] == (1, 2)
    assert rep.worst["analytic"] - rep.worst["numeric"] == pytest.approx(0.01, rel=1e-6)
    by_name = {e["name"]: e for e in rep.entries}
    assert by_name["b"]["error"] < 1e-9 and by_name["input"]["error"] < 1e-9
    text = str(rep)
    assert "<-- above tol" in text and "FAILED" in text and "(1, 2)" in text
    rep2 = check_layer(BrokenInput(3, 2, dtype=np.float64), x)
    assert rep2.worst["name"] == "input" and 1e-3 < rep2.max_error < 1e-2


def test_strategy_helper_does_not_hide_real_bugs():
    with pytest.raises(AssertionError, match="failed"):
        mst.assert_layer_gradients(BrokenDense(3, 2, dtype=np.float64), np.ones((2, 3)))


def test_check_layer_with_sampled_entries():
    x = np.random.default_rng(1).standard_normal((5, 6))
    rep = check_layer(Dense(6, 7, dtype=np.float64), x, n_entries=4)
    assert rep.ok
    rep_bad = check_layer(BrokenDense(6, 7, dtype=np.float64), x, n_entries=42)   # all 42 entries of W
    assert not rep_bad.ok


def test_check_network_all_entries_small_nets():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 3))
    y = rng.integers(0, 2, 6)
    for model in (mlp([3, 4, 2], "tanh", rng=1, dtype=np.float64),
                  mlp([3, 4, 3, 2], "sigmoid", rng=2, dtype=np.float64)):
        rep = check_network(model, "ce", X, y)
        assert rep.ok, str(rep)
        assert len(rep.entries) == sum(1 for _ in model.parameters())
    t = rng.standard_normal((6, 2))
    assert check_network(mlp([3, 5, 2], "tanh", rng=3, dtype=np.float64), "mse", X, t).ok


def test_check_network_finds_a_bug_in_a_big_net_by_sampling():
    model = Sequential([Dense(30, 40, dtype=np.float64, rng=0), Tanh(), BrokenDense(40, 5, dtype=np.float64)])
    # plant the error on many entries so that a random sample meets one
    orig = BrokenDense.backward

    def backward(self, dout, need_input_grad=True):
        dx = orig(self, dout, need_input_grad)
        self.grads["W"] *= 1.001
        return dx
    model.layers[2].backward = backward.__get__(model.layers[2])
    X = np.random.default_rng(0).standard_normal((8, 30))
    rep = check_network(model, "ce", X, np.arange(8) % 5, n_entries=10)
    by_name = {e["name"]: e["error"] for e in rep.entries}
    assert by_name["layers[0].W"] < 1e-7 and by_name["layers[2].W"] > 1e-5


@given(seed=mst.seeds())
def test_check_function_on_a_formula(seed):
    # f(x) = tanh(x) ⊙ x, Jᵀu = u ⊙ (1 − tanh² x) ⊙ x + u ⊙ tanh x
    f = lambda x: np.tanh(x) * x                                            # noqa: E731
    good = lambda x, u: u * ((1 - np.tanh(x) ** 2) * x + np.tanh(x))        # noqa: E731
    bad = lambda x, u: u * (1 - np.tanh(x) ** 2) * x                        # noqa: E731
    x = np.random.default_rng(seed).uniform(-2, 2, (3, 2))
    assert check_function(f, good, x, rng=seed).ok
    assert not check_function(f, bad, x, rng=seed).ok


def test_directional_check_detects_a_wrong_gradient():
    model = Sequential([Dense(3, 4, rng=0, dtype=np.float64), Tanh(), BrokenInput(4, 2, rng=1, dtype=np.float64)])
    X = np.random.default_rng(0).standard_normal((5, 3))
    rep = check_directional(model, "ce", X, np.array([0, 1, 0, 1, 1]))
    assert not rep.ok and rep.entries[0]["name"] == "directional"


def test_report_container():
    rep = GradCheckReport(tol=1e-3)
    assert rep.ok and rep.max_error == 0.0 and rep.worst is None
    rep.add("a", np.array([1.0, 2.0]), np.array([1.0, 2.001]))
    assert rep.ok and rep.worst["worst_index"] == (1,)
    rep.add("b", np.array([[1.0]]), np.array([[2.0]]))
    assert not rep.ok and rep.worst["name"] == "b"
