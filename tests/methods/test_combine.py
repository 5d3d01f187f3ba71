"""Methods that work on any network: bundles of block networks and of networks with extra elementwise layers,
SensLI on a network with an extra elementwise layer after an activation.

The elementwise stand-ins are a second activation after the ReLU and a fixed positive per-unit scale (a gate
with constant values); the gated-network versions follow when the standalone Gate layer is merged.
"""
from __future__ import annotations

import numpy as np
import pytest

from minigrow.data import two_spirals
from minigrow.layers import Dense, Layer, ReLU, Sequential, Sigmoid, Tanh
from minigrow.methods import bundles as Bn
from minigrow.methods import sensli as S


class PositiveScale(Layer):
    """y = s ⊙ x with fixed s > 0 per unit (elementwise, no parameters): keeps a ≥ 0, like a gate in (0, 1]."""

    unit_kind = "elementwise"

    def __init__(self, scale):
        super().__init__()
        self.scale = np.asarray(scale)

    def forward(self, x, train=True):
        return x * self.scale

    def backward(self, dout, need_input_grad=True):
        return dout * self.scale


def _net(extra, dtype=np.float64, width=6):
    rng = np.random.default_rng(3)
    return Sequential([Dense(2, width, rng=rng, dtype=dtype), ReLU(), *extra,
                       Dense(width, width, rng=rng, dtype=dtype), ReLU(), Dense(width, 2, rng=rng, dtype=dtype)])


@pytest.fixture(scope="module")
def spirals():
    return two_spirals(rng=0, dtype=np.float64)


# --- bundles ----------------------------------------------------------------------------------------------------

def test_bundles_of_a_block_network_one_entry_per_block(spirals):
    net = Bn.block_net([2, 1], [8, 4], 2, 2, rng=0, dtype=np.float64)
    X, y = spirals.X_train, spirals.y_train
    rep = Bn.layer_report(net, X, y)
    assert [r.kind for r in rep] == ["block"] * 3 and [r.index for r in rep] == [0, 1, 2]
    outs = net.forward_all(X)
    w = Bn.weight_amplitude(net)
    for r, a in zip(rep, outs[1:4]):
        expect = Bn.bundles(a, y, w)
        assert r.n_bundles == expect.n_bundles and r.entropy == expect.entropy
        np.testing.assert_array_equal(r.assignment, expect.assignment)


def test_bundles_of_nested_sequential_blocks(spirals):
    rng = np.random.default_rng(1)
    net = Sequential([Sequential([Dense(2, 7, rng=rng, dtype=np.float64), ReLU()]),
                      Sequential([Dense(7, 7, rng=rng, dtype=np.float64), ReLU()]),
                      Dense(7, 2, rng=rng, dtype=np.float64)])
    X, y = spirals.X_train, spirals.y_train
    rep = Bn.layer_report(net, X, y, grid=False)
    assert [r.name for r in rep] == ["block 0", "block 1"]
    outs = net.forward_all(X)
    assert rep[1].n_bundles == Bn.bundles(outs[2], y, grid=False).n_bundles


@pytest.mark.parametrize("extra", [[Sigmoid()], [PositiveScale(np.linspace(0.5, 1.5, 6))]],
                         ids=["second_activation", "positive_scale"])
def test_an_elementwise_layer_after_the_activation_belongs_to_that_hidden_layer(spirals, extra):
    net = _net(extra)
    X, y = spirals.X_train, spirals.y_train
    rep = Bn.layer_report(net, X, y)
    assert [r.kind for r in rep] == ["hidden", "hidden"]
    assert [r.index for r in rep] == [2, 4]                  # after the extra layer, then the second ReLU
    outs = net.forward_all(X)
    expect = Bn.bundles(outs[3], y, Bn.weight_amplitude(net))
    np.testing.assert_array_equal(rep[0].assignment, expect.assignment)


def test_an_elementwise_layer_after_a_block_belongs_to_the_block(spirals):
    net = Bn.block_net([2], [8], 2, 2, rng=0, dtype=np.float64)
    net.insert(1, PositiveScale(np.full(8, 0.5)))
    rep = Bn.layer_report(net, spirals.X_train, spirals.y_train)
    assert [(r.kind, r.index) for r in rep] == [("block", 1), ("block", 2)]


# --- SensLI -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [[ReLU()], [PositiveScale(np.linspace(0.5, 1.5, 6))]],
                         ids=["second_relu", "positive_scale"])
def test_sensli_candidates_go_after_the_last_elementwise_layer(spirals, extra):
    net = _net(extra)
    cands = S.candidates(net)
    assert [(c.after, c.form, c.activation) for c in cands] == [(2, "identity", "relu"), (4, "identity", "relu")]
    X, y = spirals.X_train, spirals.y_train
    closed = S.closed_form_sensitivities(net, X, y, batch_size=100)
    oracle = S.extended_sensitivities(net, X, y, batch_size=100)
    np.testing.assert_allclose(closed.scores, oracle.scores, rtol=1e-10)
    for g, h in zip(closed.bias_grads, oracle.bias_grads):
        np.testing.assert_allclose(g, h, rtol=1e-10, atol=1e-15)
    before = net.predict_logits(X)
    at = S.insert_candidate(net, cands[0])
    assert at == 3 and isinstance(net.layers[3], Dense)
    np.testing.assert_array_equal(net.predict_logits(X), before)


def test_sensli_residual_form_after_a_non_relu_elementwise_layer(spirals):
    net = _net([Tanh()])
    with pytest.raises(ValueError, match="identity insertion after a tanh"):
        S.candidates(net, "identity")
    X, y = spirals.X_train, spirals.y_train
    closed = S.closed_form_sensitivities(net, X, y, form="residual")
    oracle = S.extended_sensitivities(net, X, y, form="residual")
    assert [c.after for c in closed.candidates] == [2, 4]
    np.testing.assert_allclose(closed.scores, oracle.scores, rtol=1e-10)


def test_sensli_train_grows_a_network_with_an_extra_elementwise_layer(spirals):
    net = _net([PositiveScale(np.linspace(0.5, 1.5, 6))], dtype=np.float32)
    run = S.sensli_train(net, spirals.X_train, spirals.y_train, [5, 5], lr=0.2)
    assert run.insertions[0]["inserted"]
    chosen = run.insertions[0]["chosen"]
    assert isinstance(net.layers[[3, 5][chosen]], Dense) and net.layers[[3, 5][chosen]].init == "identity"
    assert len(net.layers) == 8


def test_sensli_on_a_block_network(spirals):
    """A DenseBlock is a hidden layer with its own ReLU: a candidate goes right after each block."""
    net = Bn.block_net([2, 1], [8, 4], 2, 2, rng=0, dtype=np.float64)
    cands = S.candidates(net)
    assert [(c.after, c.width) for c in cands] == [(0, 8), (1, 8), (2, 4)]
    X, y = spirals.X_train, spirals.y_train
    closed = S.closed_form_sensitivities(net, X, y, batch_size=150)
    oracle = S.extended_sensitivities(net, X, y, batch_size=150)
    np.testing.assert_allclose(closed.scores, oracle.scores, rtol=1e-10)
    net32 = Bn.block_net([2], [8], 2, 2, rng=0)
    run = S.sensli_train(net32, spirals.X_train, spirals.y_train, [4, 4], lr=0.1)
    assert run.insertions[0]["inserted"] and len(net32.layers) == 5


def test_units_of_a_dense_block_are_removed_with_their_consumer(spirals):
    from minigrow.surgery import remove_units
    net = Bn.block_net([2], [8], 2, 2, rng=0, dtype=np.float64)
    X = spirals.X_train
    keep = [0, 2, 3, 7]
    h = net.layers[0](X)[:, keep]
    W1 = net.layers[1].params["W"][:, keep].copy()
    remove_units(net, 0, keep)
    assert net.layers[0].out_units == 4 and net.layers[1].in_units == 4
    np.testing.assert_array_equal(net.layers[1].params["W"], W1)
    np.testing.assert_allclose(net.layers[0](X), h)
    np.testing.assert_allclose(net(X), net.layers[2](net.layers[1](h)))


# --- the methods on each other's networks, with the real Gate layer ------------------------------------------------

def _gated(theta_seed=4, width=6):
    """A ReLU MLP turned into a gated net by add_gates, with θ strictly inside (0, 1]."""
    from minigrow.methods.pruning import add_gates, gates
    net = add_gates(_net([], width=width))
    rng = np.random.default_rng(theta_seed)
    for g in gates(net):
        g.theta[:] = rng.uniform(0.3, 1.0, g.theta.size)
    return net


def test_bundles_of_a_gated_network_are_taken_after_the_gates(spirals):
    from minigrow.methods.pruning import add_gates, gates
    X, y = spirals.X_train, spirals.y_train
    plain = _net([])
    net = add_gates(_net([]))                                  # θ = 1: the gates are the identity
    assert len(gates(net)) == 2
    rep_plain, rep_gated = Bn.layer_report(plain, X, y), Bn.layer_report(net, X, y)
    assert [r.kind for r in rep_gated] == ["hidden", "hidden"]
    assert [r.index for r in rep_gated] == [2, 5]              # Dense ReLU Gate | Dense ReLU Gate | Dense
    for a, b in zip(rep_plain, rep_gated):
        assert a.n_bundles == b.n_bundles and a.entropy == b.entropy
    net = _gated()                                             # θ < 1: the report sees the gated (mean) values
    rep = Bn.layer_report(net, X, y)
    outs = net.forward_all(X)
    np.testing.assert_array_equal(rep[0].assignment, Bn.bundles(outs[3], y, Bn.weight_amplitude(net)).assignment)


def test_sensli_on_a_gated_network_closed_form_equals_the_extended_network(spirals):
    net = _gated()
    X, y = spirals.X_train, spirals.y_train
    cands = S.candidates(net)
    assert [c.after for c in cands] == [2, 5]                  # after each gate (the hidden layer's last layer)
    closed = S.closed_form_sensitivities(net, X, y, batch_size=150)
    oracle = S.extended_sensitivities(net, X, y, batch_size=150)
    np.testing.assert_allclose(closed.scores, oracle.scores, rtol=1e-10)
    before = net.predict_logits(X)
    S.insert_candidate(net, cands[1])
    np.testing.assert_array_equal(net.predict_logits(X), before)   # bit-identical insertion into a gated net


def test_pruning_a_grown_network(spirals):
    """Grow with SensLI, then add gates to the grown net and prune it: the removal keeps the loss (ξ = θ)."""
    from minigrow.losses import SoftmaxCrossEntropy
    from minigrow.methods.pruning import PruningTrainer, add_gates, gates, prune, widths
    X, y = spirals.X_train, spirals.y_train
    net = _net([], dtype=np.float64)
    run = S.sensli_train(net, X, y, [3, 3], lr=0.2, rng=0)
    assert run.insertions[0]["inserted"] and len(net.layers) == 7
    add_gates(net)
    assert len(gates(net)) == 3
    tr = PruningTrainer(net, "ce", batch_size=64, rng=0, progress=False, dtype=np.float64)
    tr.fit(X, y, 3)
    g = gates(net)
    g[0].theta[:2] = 0.0                                       # two units of the first layer are switched off
    ce = SoftmaxCrossEntropy()
    before = ce.forward(net.predict_logits(X), y)
    w0 = widths(net)
    prune(net, eps=0.0)
    assert widths(net)[0] == w0[0] - 2
    np.testing.assert_allclose(ce.forward(net.predict_logits(X), y), before, rtol=1e-12)
