"""Builders and whole-network gradients: directional checks ⟨∇L, v⟩ vs finite differences for MLPs and residual
MLPs on drawn architectures, full checks of small nets, and a training smoke test."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigrow import strategies as mst
from minigrow.gradcheck import check_directional, check_network
from minigrow.layers import Dense, ReLU, ResidualBlock, Tanh
from minigrow.network import dense_layers, hidden_widths, mlp, residual_mlp
from minigrow.optim import Adam
from minigrow.train import Trainer

ACTS = ["relu", "leaky_relu", "tanh", "sigmoid"]


@st.composite
def mlp_cases(draw):
    sizes = draw(st.lists(st.integers(1, 6), min_size=3, max_size=5))
    n_out = max(sizes[-1], 2)
    sizes[-1] = n_out
    act = draw(st.sampled_from(ACTS))
    seed = draw(mst.seeds())
    model = mlp(sizes, act, rng=seed, dtype=np.float64)
    n = draw(st.integers(1, 6))
    X = draw(mst.arrays((n, sizes[0]), bound=2.0))
    y = draw(mst.labels(n, n_out))
    mst.assume_network_away_from_kinks(model, X, margin=1e-3)
    return model, X, y


@st.composite
def resnet_cases(draw):
    act = draw(st.sampled_from(ACTS))
    n_in, width, blocks, n_out = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(0, 3)), \
        draw(st.integers(2, 4))
    hidden = draw(st.one_of(st.none(), st.integers(1, 4)))
    model = residual_mlp(n_in, width, blocks, n_out, act, rng=draw(mst.seeds()), dtype=np.float64, hidden=hidden)
    n = draw(st.integers(1, 6))
    X = draw(mst.arrays((n, n_in), bound=2.0))
    y = draw(mst.labels(n, n_out))
    mst.assume_network_away_from_kinks(model, X, margin=1e-3)
    return model, X, y


@given(case=mlp_cases(), seed=mst.seeds())
def test_mlp_directional_gradient(case, seed):
    model, X, y = case
    rep = check_directional(model, "ce", X, y, rng=seed)
    assert rep.ok, str(rep)


@given(case=resnet_cases(), seed=mst.seeds())
def test_residual_mlp_directional_gradient(case, seed):
    model, X, y = case
    rep = check_directional(model, "ce", X, y, rng=seed)
    assert rep.ok, str(rep)


@given(case=mlp_cases(), seed=mst.seeds())
def test_mlp_directional_gradient_mse(case, seed):
    model, X, _ = case
    t = np.random.default_rng(seed).standard_normal((X.shape[0], model.layers[-1].out_features))
    assert check_directional(model, "mse", X, t, rng=seed).ok


def min_abs_preactivation(model, X):
    """Smallest |input| of any activation in the network (kinks of ReLU/leaky ReLU sit at 0)."""
    from minigrow.layers import Activation
    h, smallest = X, np.inf
    for layer in model.layers:
        out = layer.forward(h, train=False)
        if isinstance(layer, Activation):
            smallest = min(smallest, float(np.abs(h).min()))
        elif isinstance(layer, ResidualBlock):
            smallest = min(smallest, float(np.abs(layer.pre_activation(h)).min()))
        h = out
    return smallest


@pytest.mark.parametrize("activation", ACTS)
def test_check_network_small_residual_and_mlp(activation):
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, (5, 2))
    y = rng.integers(0, 3, 5)
    for model in (residual_mlp(2, 3, 2, 3, activation, rng=8, dtype=np.float64),
                  mlp([2, 4, 3, 3], activation, rng=9, dtype=np.float64)):
        assert min_abs_preactivation(model, X) > 1e-3       # away from kinks, so the check is meaningful
        rep = check_network(model, "ce", X, y)
        assert rep.ok, f"{activation}\n{rep}"


def test_directional_check_uses_all_parameters():
    """Zeroing one layer's gradient (a forgotten term) must be caught by the single directional comparison."""
    model = residual_mlp(3, 4, 2, 2, "tanh", rng=0, dtype=np.float64)
    block = model.layers[2]
    orig = type(block).backward

    def forgetful(dout, need_input_grad=True):
        dx = orig(block, dout, need_input_grad)
        block.grads["b1"][:] = 0
        return dx
    block.backward = forgetful
    X = np.random.default_rng(1).standard_normal((6, 3))
    assert not check_directional(model, "ce", X, np.array([0, 1, 1, 0, 1, 0])).ok


def test_mlp_structure():
    m = mlp([784, 300, 100, 10], "relu", rng=0)
    assert [type(layer).__name__ for layer in m] == ["Dense", "ReLU", "Dense", "ReLU", "Dense"]
    assert dense_layers(m) == [0, 2, 4] and hidden_widths(m) == [300, 100]
    assert m.n_params() == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    assert m.dtype == np.float32
    m2 = mlp([784, 300, 100, 10], "relu", rng=0)
    assert all(np.array_equal(a.params[k], b.params[k]) for (a, k), (b, _) in zip(m.parameters(), m2.parameters()))


def test_residual_mlp_structure():
    m = residual_mlp(2, 3, 2, 2, "tanh", rng=0)
    assert [type(layer).__name__ for layer in m] == ["Dense", "Tanh", "ResidualBlock", "ResidualBlock", "Dense"]
    assert isinstance(m[2], ResidualBlock) and m[2].hidden == 3
    assert isinstance(m[0], Dense) and isinstance(m[1], Tanh)
    assert isinstance(mlp([2, 3, 2], "relu")[1], ReLU)


@pytest.mark.parametrize("call, match", [
    (lambda: mlp([5]), "sizes: expected a list"),
    (lambda: mlp([5, 0, 2]), r"sizes\[1\]: expected an integer >= 1"),
    (lambda: mlp([5, 2], dtype=np.int32), "dtype: expected float32 or float64"),
    (lambda: mlp([5, 3, 2], activation="elu"), "activation: expected one of"),
    (lambda: residual_mlp(2, 3, -1, 2), "n_blocks: expected an integer >= 0"),
])
def test_builder_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_mlp_rejects_none_rng():
    with pytest.raises(TypeError, match="rng: expected a numpy.random.Generator or an int seed"):
        mlp([2, 2], rng=None)


def test_training_reduces_loss_on_spirals():
    from minigrow.data import two_spirals
    d = two_spirals(rng=0)
    model = mlp([2, 16, 16, 2], "tanh", rng=0)
    tr = Trainer(model, "ce", Adam(1e-2), batch_size=45, rng=0, progress=False)
    tr.fit(d.X_train, d.y_train, 30, d.X_test, d.y_test)
    loss = tr.history.column("train_loss")
    assert loss[-1] < 0.6 * loss[0]
    assert tr.history.epochs[-1]["test_acc"] > 0.7
