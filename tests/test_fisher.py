"""minigrow.fisher: per-sample gradient norms of every affine layer against a loop of one-sample backward passes
(the oracle), the mean empirical Fisher, and what the pass leaves alone."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minigrow.convnets import lenet5
from minigrow.fisher import affine_layers, mean_fisher, sample_grad_sq_norms
from minigrow.layers import BatchNorm2d, Conv2D, Dense, Flatten, MaxPool2d, ReLU, ResidualBlock, Sequential
from minigrow.losses import get_loss
from minigrow.network import mlp


def _oracle(model, X, y):
    """Σ_w (∂ℓ_n/∂w)² by one backward pass per sample (eval mode), per affine layer."""
    loss = get_loss("ce")
    layers = affine_layers(model)
    out = [np.zeros(len(X)) for _ in layers]
    for n in range(len(X)):
        z = model.forward(X[n:n + 1], train=False)
        loss.forward(z, y[n:n + 1])
        model.backward(loss.backward())
        for q, layer in enumerate(layers):
            out[q][n] = sum(float(np.sum(g.astype(np.float64) ** 2)) for g in layer.grads.values())
    return out


def _small_conv(rng):
    return Sequential([Conv2D(2, 3, 3, padding=1, rng=rng, dtype=np.float64), BatchNorm2d(3, dtype=np.float64),
                       ReLU(), MaxPool2d(2), Conv2D(3, 4, (2, 3), stride=(1, 2), rng=rng, dtype=np.float64), ReLU(),
                       Flatten(), Dense(4 * 3 * 1, 3, rng=rng, dtype=np.float64)])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 6))
def test_per_sample_norms_equal_the_one_sample_loop(seed, n):
    rng = np.random.default_rng(seed)
    for model, X in ((mlp([5, 7, 4, 3], rng=seed, dtype=np.float64), rng.normal(size=(n, 5))),
                     (_small_conv(rng), rng.normal(size=(n, 2, 8, 9)))):
        y = rng.integers(0, 3, size=n)
        got = sample_grad_sq_norms(model, "ce", X, y)
        want = _oracle(model, X, y)
        assert len(got) == len(want) == len(affine_layers(model))
        for a, b in zip(got, want):
            assert a.shape == (n,)
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-300)


def test_lenet5_and_no_bias_layers():
    rng = np.random.default_rng(1)
    m = lenet5(rng=0, dtype=np.float64)
    X, y = rng.normal(size=(3, 1, 28, 28)), rng.integers(0, 10, size=3)
    for a, b in zip(sample_grad_sq_norms(m, "ce", X, y), _oracle(m, X, y)):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    nb = Sequential([Sequential([Dense(4, 5, bias=False, rng=0, dtype=np.float64), ReLU()]),   # nested, too
                     Dense(5, 2, bias=False, rng=1, dtype=np.float64)])
    X, y = rng.normal(size=(4, 4)), rng.integers(0, 2, size=4)
    for a, b in zip(sample_grad_sq_norms(nb, "ce", X, y), _oracle(nb, X, y)):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_mean_fisher_is_the_mean_diagonal_and_leaves_buffers_alone():
    rng = np.random.default_rng(2)
    model = _small_conv(rng)
    model.forward(rng.normal(size=(8, 2, 8, 9)), train=True)           # BN running statistics move once
    bn = model.layers[1]
    before = {k: v.copy() for k, v in bn.buffers.items()}
    X, y = rng.normal(size=(5, 2, 8, 9)), rng.integers(0, 3, size=5)
    F = mean_fisher(model, "ce", X, y)
    want = [float(np.mean(s)) / sum(p.size for p in layer.params.values())
            for s, layer in zip(_oracle(model, X, y), affine_layers(model))]
    np.testing.assert_allclose(F, want, rtol=1e-10)
    for k, v in bn.buffers.items():
        assert np.array_equal(v, before[k])


def test_composite_layers_are_refused():
    m = Sequential([Dense(3, 3, rng=0), ResidualBlock(3, rng=1), Dense(3, 2, rng=2)])
    with pytest.raises(ValueError, match="composite"):
        mean_fisher(m, "ce", np.zeros((2, 3), np.float32), np.array([0, 1]))
    with pytest.raises(TypeError, match="Sequential"):
        mean_fisher(Dense(3, 2, rng=0), "ce", np.zeros((2, 3)), np.array([0, 1]))
