"""Softmax cross-entropy and MSE: values against direct formulas, gradients in float64 on drawn inputs,
numerical stability, bad inputs."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigrow import strategies as mst
from minigrow.gradcheck import numerical_gradient, rel_error
from minigrow.losses import MSE, SoftmaxCrossEntropy, get_loss, log_softmax, softmax

TOL = 1e-7


@st.composite
def logits_and_labels(draw, max_n=5, max_k=5, bound=5.0):
    n, k = draw(st.integers(1, max_n)), draw(st.integers(2, max_k))
    z = draw(mst.arrays((n, k), bound))
    return z, draw(mst.labels(n, k))


@given(case=logits_and_labels())
def test_ce_value_is_mean_of_minus_log_softmax(case):
    z, y = case
    # direct formula, no shift: L = 1/N Σ_n (log Σ_k e^{z_nk} − z_{n,y_n})
    direct = np.mean([np.log(np.sum(np.exp(z[n]))) - z[n, y[n]] for n in range(len(y))])
    assert SoftmaxCrossEntropy().forward(z, y) == pytest.approx(direct, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(SoftmaxCrossEntropy().per_sample(z, y).mean(), direct, rtol=1e-12, atol=1e-14)


@given(case=logits_and_labels())
def test_ce_gradient(case):
    z, y = case
    loss = SoftmaxCrossEntropy()
    loss.forward(z, y)
    analytic = loss.backward()
    z = z.copy()
    numeric = numerical_gradient(lambda: SoftmaxCrossEntropy().forward(z, y), z)
    assert rel_error(analytic, numeric) <= TOL
    # closed form: (softmax(z) − e_y) / N
    expected = softmax(z)
    expected[np.arange(len(y)), y] -= 1
    np.testing.assert_allclose(analytic, expected / len(y), rtol=1e-12, atol=1e-15)


@given(z=mst.batches(max_features=5, bound=3.0), t_seed=mst.seeds())
def test_mse_value_and_gradient(z, t_seed):
    t = np.random.default_rng(t_seed).standard_normal(z.shape)
    loss = MSE()
    value = loss.forward(z, t)
    assert value == pytest.approx(np.sum((z - t) ** 2) / z.size, rel=1e-12)
    analytic = loss.backward()
    z = z.copy()
    numeric = numerical_gradient(lambda: MSE().forward(z, t), z)
    assert rel_error(analytic, numeric) <= TOL
    np.testing.assert_allclose(analytic, 2 * (z - t) / z.size, rtol=1e-13)


def test_mse_accepts_1d_targets_for_one_output():
    assert MSE().forward(np.array([[1.0], [3.0]]), np.array([0.0, 1.0])) == pytest.approx((1 + 4) / 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ce_is_stable_for_huge_logits(dtype):
    z = np.array([[1000.0, 0.0, -1000.0], [-1e4, 1e4, 0.0]], dtype=dtype)
    y = np.array([0, 0])
    loss = SoftmaxCrossEntropy()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = loss.forward(z, y)
        d = loss.backward()
    assert value == pytest.approx((0.0 + 2e4) / 2, rel=1e-6)
    assert np.isfinite(d).all() and d.dtype == dtype
    np.testing.assert_allclose(d, np.array([[0, 0, 0], [-1, 1, 0]]) / 2, atol=1e-7)


def test_ce_keeps_float32():
    z = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    loss = SoftmaxCrossEntropy()
    loss.forward(z, np.array([0, 1, 2, 0]))
    assert loss.backward().dtype == np.float32


@given(z=mst.batches(max_features=6, bound=50.0))
def test_log_softmax_normalises(z):
    np.testing.assert_allclose(np.exp(log_softmax(z)).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(softmax(z).sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("z, y, match", [
    (np.zeros((3, 4)), np.array([0, 1, 4]), r"targets: expected integer labels in \[0, 4\), got 4 at index 2"),
    (np.zeros((3, 4)), np.array([0, -1, 2]), r"got -1 at index 1"),
    (np.zeros((3, 4)), np.array([0, 1]), r"targets: expected 3 labels"),
    (np.zeros((3, 4)), np.array([0.5, 1, 2]), r"targets: expected integer labels, got 0.5 at index 0"),
    (np.zeros(4), np.array([0]), r"outputs: expected a 2-d array"),
    (np.zeros((0, 4)), np.array([], dtype=int), r"outputs: expected at least 1 sample"),
])
def test_ce_bad_inputs(z, y, match):
    with pytest.raises(ValueError, match=match):
        SoftmaxCrossEntropy().forward(z, y)


def test_ce_of_non_finite_outputs_is_nan_not_an_error():
    """A diverged network is not an input error: the loss is NaN and the Trainer raises TrainingDiverged."""
    with np.errstate(invalid="ignore"):
        assert np.isnan(SoftmaxCrossEntropy().forward(np.array([[0.0, np.nan]]), np.array([0])))
        assert not np.isfinite(MSE().forward(np.array([[np.inf]]), np.array([0.0])))


def test_mse_bad_inputs():
    with pytest.raises(ValueError, match=r"targets: expected shape \(2, 3\)"):
        MSE().forward(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="targets: expected finite values"):
        MSE().forward(np.zeros((2, 1)), np.array([0.0, np.inf]))


def test_get_loss():
    assert isinstance(get_loss("ce"), SoftmaxCrossEntropy)
    assert isinstance(get_loss("mse"), MSE)
    obj = MSE()
    assert get_loss(obj) is obj
    with pytest.raises(ValueError, match="loss: expected one of"):
        get_loss("hinge")
