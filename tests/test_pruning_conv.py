"""Bernoulli gates on conv filters (pruning.md §6): placement, the channel flip estimator, removal through surgery,
the expected-parameter price across convolutions and flattens. float64 for the exact checks."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minigrow.convnets import lenet5
from minigrow.gradcheck import numerical_gradient, rel_error
from minigrow.layers import Conv2D, Dense, Flatten, MaxPool2d, ReLU, Sequential
from minigrow.losses import SoftmaxCrossEntropy
from minigrow.optim import Adam
from minigrow.methods.pruning import (PLAIN_SETTINGS, Gate, PruningTrainer, add_gates, exact_expectation,
                                      flip_cv_gradient, flip_gradient, forward_with_gates, gates, pathwise_gradient,
                                      per_sample_losses, price_sizes, prior_cost, prune, sample_gates, set_gates,
                                      to_deterministic, weight_layers, widths)
from minigrow.methods.pruning import formulas as F

CE = SoftmaxCrossEntropy()


def tiny_conv(seed=0, c1=3, c2=3, h=2, pad=1):
    """Conv 3×3 → ReLU → pool → [gate] → Conv 3×3 (padding) → ReLU → pool → [gate] → Flatten → Dense → ReLU → [gate]
    → Dense, on 1×10×10 images."""
    kw = dict(dtype=np.float64)
    m = Sequential([Conv2D(1, c1, 3, rng=seed, **kw), ReLU(), MaxPool2d(2),
                    Conv2D(c1, c2, 3, padding=pad, rng=seed + 1, **kw), ReLU(), MaxPool2d(2), Flatten(),
                    Dense(c2 * (4 if pad else 1), h, rng=seed + 2, **kw), ReLU(), Dense(h, 3, rng=seed + 3, **kw)])
    return add_gates(m)


def data(seed, n=5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 10, 10)), rng.integers(0, 3, n), rng


def flip_oracle(m, X, y, p):
    """Loop oracle: force ξ_nj = 1 and 0 for every unit j of gate p — a channel, a feature or a dense unit — (other
    sampled gates kept), full forward passes. Also used by tests/test_pruning_features.py."""
    xis = [g.xi.copy() for g in gates(m)]
    out = np.zeros((X.shape[0], gates(m)[p].n_units))
    for j in range(gates(m)[p].n_units):
        on, off = [v.copy() for v in xis], [v.copy() for v in xis]
        on[p][:, j], off[p][:, j] = 1, 0
        out[:, j] = (per_sample_losses(CE, forward_with_gates(m, X, on), y)
                     - per_sample_losses(CE, forward_with_gates(m, X, off), y))
    return out


def test_add_gates_puts_filter_gates_behind_the_pool_and_keeps_the_outputs():
    m = lenet5("caffe", rng=0, dtype=np.float64)
    X = np.random.default_rng(0).standard_normal((3, 1, 28, 28))
    ref = m(X)
    add_gates(m)
    names = [type(layer).__name__ for layer in m.layers]
    assert names[:4] == ["Conv2D", "ReLU", "MaxPool2d", "Gate"] and names[6:8] == ["MaxPool2d", "Gate"]
    assert widths(m) == [20, 50, 500]
    np.testing.assert_array_equal(m(X), ref)
    add_gates(m)                                           # idempotent behind a pool too
    assert widths(m) == [20, 50, 500]


def test_exact_enumeration_of_channel_gates_equals_the_flip_mean():
    m = tiny_conv(0)
    X, y, rng = data(1)
    for g in gates(m):
        g.theta[:] = rng.uniform(0.2, 0.8, g.n_units)
    _, exact = exact_expectation(m, X, y, CE)
    sizes = widths(m)
    theta = np.concatenate([g.theta for g in gates(m)])
    mean = [np.zeros(s) for s in sizes]
    for pat in itertools.product([0.0, 1.0], repeat=sum(sizes)):
        pat = np.array(pat)
        P = np.prod(np.where(pat == 1, theta, 1 - theta))
        set_gates(m, [np.tile(v, (X.shape[0], 1)) for v in np.split(pat, np.cumsum(sizes)[:-1])])
        m.forward(X, True)
        for p in range(len(sizes)):
            mean[p] += P * flip_gradient(m, p, y, CE)
    for p in range(len(sizes)):
        assert np.all(exact[p] != 0)
        np.testing.assert_allclose(mean[p], exact[p], rtol=1e-10, atol=1e-15)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), block=st.sampled_from([1, 2, 1 << 20]), pad=st.sampled_from([0, 1]))
def test_vectorised_channel_flip_equals_loop_oracle(seed, block, pad):
    m = tiny_conv(seed % 5, pad=pad)
    X, y, rng = data(seed)
    for g in gates(m):
        g.theta[:] = 0.5
    sample_gates(m, X.shape[0], rng)
    m.forward(X, True)
    for p in range(2):
        per = flip_gradient(m, p, y, CE, max_elements=block * X.shape[0] * 50, per_sample=True)
        np.testing.assert_allclose(per, flip_oracle(m, X, y, p), rtol=1e-9, atol=1e-13)
        sub = flip_gradient(m, p, y, CE, n_samples=np.array([0, 3]))
        np.testing.assert_allclose(sub, flip_oracle(m, X, y, p)[[0, 3]].mean(axis=0), rtol=1e-9, atol=1e-13)


def test_channel_contributions_sum_to_the_consumer():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 3, 7, 6))
    conv = Conv2D(3, 5, (3, 2), stride=(2, 1), padding=(1, 0), rng=0, dtype=np.float64)
    U = F.channel_contributions_conv(a, conv.params["W"], conv.stride, conv.padding)
    np.testing.assert_allclose(U.sum(axis=1) + conv.params["b"][:, None, None], conv(a), rtol=1e-12, atol=1e-13)
    W = rng.standard_normal((4, 3 * 42))
    np.testing.assert_allclose(F.channel_contributions_dense(a, W).sum(axis=1), a.reshape(4, -1) @ W.T, rtol=1e-12)


def test_pathwise_and_flip_cv_on_channel_gates():
    m = tiny_conv(3)
    X, y, rng = data(3, n=6)
    for g in gates(m):
        g.theta[:] = 0.6
    sample_gates(m, 6, rng)
    CE.forward(m.forward(X, True), y)
    m.backward(CE.backward())
    for p in range(2):
        xi = gates(m)[p].xi
        num = numerical_gradient(lambda: CE.forward(m.forward(X, True), y), xi).sum(axis=0)
        CE.forward(m.forward(X, True), y)
        m.backward(CE.backward())
        assert rel_error(pathwise_gradient(m, p), num) < 1e-7
        np.testing.assert_allclose(flip_cv_gradient(m, p, y, CE, 6), flip_gradient(m, p, y, CE), rtol=1e-9,
                                   atol=1e-14)


def test_removal_of_filters_equals_the_gated_net_keeps_the_loss_slices_state_and_cuts_params_and_flops():
    m = tiny_conv(4, c1=4, c2=5, h=3)
    X, y, rng = data(4)
    opt = Adam(1e-2)
    sample_gates(m, X.shape[0], rng)
    CE.forward(m.forward(X, True), y)
    m.backward(CE.backward())
    opt.step(m)
    gates(m)[0].theta[:] = [1, 0, 1, 0]
    gates(m)[1].theta[:] = [0, 1, 1, 0, 1]
    gates(m)[2].theta[:] = [1, 1, 0]
    full = forward_with_gates(m, X, [g.theta for g in gates(m)])
    det, _ = to_deterministic(m)
    np.testing.assert_allclose(det(X), full, rtol=0, atol=1e-12)
    loss, n_params, macs = CE.forward(m(X), y), m.n_params(), m.macs()
    conv2, dense1 = weight_layers(m)[1:3]
    m_state = dense1.state["W"]["m"].copy()
    prune(m, eps=0.0)
    assert widths(m) == [2, 3, 2]
    assert CE.forward(m(X), y) == pytest.approx(loss, abs=1e-12)
    assert m.n_params() < n_params and m.macs() < macs
    assert conv2.params["W"].shape == (3, 2, 3, 3) and conv2.state["W"]["m"].shape == (3, 2, 3, 3)
    cols = (np.array([1, 2, 4])[:, None] * 4 + np.arange(4)).ravel()       # channel c → columns c·HW … c·HW+3
    np.testing.assert_array_equal(dense1.state["W"]["m"], m_state[[0, 1]][:, cols])
    opt.step(m)


def test_expected_parameter_price_counts_kernels_and_flattened_blocks():
    """price_on="params": a filter pays k·k per active input channel + bias + k·k per active consumer filter (or
    H·W per unit of a Dense consumer behind a flatten); at θ ∈ {0, 1} the price is the pruned net's parameters."""
    m = tiny_conv(5, c1=4, c2=5, h=3)
    m(np.zeros((1, 1, 10, 10)))
    assert price_sizes(m, 0, "params").tolist() == [9 * 1 + 1 + 9 * 5] * 4
    assert price_sizes(m, 1, "params").tolist() == [9 * 4 + 1 + 4 * 3] * 5
    assert price_sizes(m, 1, "incoming").tolist() == [9 * 4 + 1] * 5
    gates(m)[0].theta[:] = [1, 0, 1, 0]
    gates(m)[1].theta[:] = [0, 1, 1, 0, 1]
    gates(m)[2].theta[:] = [1, 1, 0]
    zero = {q: 0.0 for q in range(4)}
    final, _ = to_deterministic(m)
    assert prior_cost(m, zero, 1.0, 1, "params") == pytest.approx(final.n_params())
    assert price_sizes(m, 1, "params").tolist() == [9 * 2 + 1 + 4 * 2] * 5


def test_trainer_prunes_filters_with_each_estimator():
    X, y, _ = data(6, n=12)
    for est in ("flip", "flip_cv", "pathwise"):
        m = tiny_conv(6)
        tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=6, rng=0, settings=PLAIN_SETTINGS, estimator=est,
                            price=5.0, eta_theta=0.5, warmup_epochs=0, dtype=np.float64, progress=False)
        tr.fit(X, y, 3)
        assert all(np.all((g.theta >= 0) & (g.theta <= 1)) for g in gates(m))
        assert sum(widths(m)) < 8                                 # a high price removes filters and units
        m(X)


# ------------------------------------------------------------------------------------------ θ binary by the dynamics
def test_lazy_theta_step_is_the_plain_step_for_margin_zero_and_stays_in_the_box():
    rng = np.random.default_rng(0)
    th = rng.uniform(0, 1, 50)
    g = rng.standard_normal(50) * 3
    plain = F.theta_step(th.copy(), g, 0.4)
    z = th.copy()
    np.testing.assert_array_equal(F.lazy_theta_step(z, g, 0.4, 0.0), plain)
    z = th.copy()
    for _ in range(20):
        t = F.lazy_theta_step(z, rng.standard_normal(50), 0.3, 0.5)
        assert np.all((t >= 0) & (t <= 1)) and np.all((z >= -0.5) & (z <= 1.5))
        np.testing.assert_array_equal(t, np.clip(z, 0, 1))
    assert F.robbins_monro_eta(0.1, 0, 5, 0.6) == 0.1 and F.robbins_monro_eta(0.1, 15, 5, 1.0) == pytest.approx(0.025)
    assert F.robbins_monro_eta(0.1, 15, 5, 0.0) == 0.1


def test_margin_makes_a_noisy_drifting_theta_exactly_binary_where_the_plain_step_does_not():
    """The mechanism of formulas.lazy_theta_step on its own: gradients with a mean drift μ = ±0.2 towards a vertex and
    noise σ = 1. The plain projected step leaves most θ strictly inside (0, 1) at any time (a reflected random walk,
    whatever η); the latent with margin ½ and Robbins–Monro steps ends with every θ exactly 0 or 1."""
    rng = np.random.default_rng(1)
    mu = np.where(np.arange(400) % 2, 0.2, -0.2)
    th_plain, z = np.full(400, 0.5), np.full(400, 0.5)
    for t in range(4000):
        g = mu + rng.standard_normal(400)
        F.theta_step(th_plain, g, 0.02)
        th_lazy = F.lazy_theta_step(z, g, F.robbins_monro_eta(0.02, t, 500, 0.6), 0.5)
    assert np.mean((th_plain == 0) | (th_plain == 1)) < 0.5
    assert np.mean((th_lazy == 0) | (th_lazy == 1)) == 1.0
    np.testing.assert_array_equal(th_lazy, (mu < 0).astype(float))


def test_trainer_with_margin_and_robbins_monro_keeps_the_latent_through_pruning_and_checkpoints(tmp_path):
    from minigrow import io
    X, y, _ = data(7, n=12)
    m = tiny_conv(7)
    tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=6, rng=0, settings=PLAIN_SETTINGS, price=2.0, eta_theta=0.3,
                        warmup_epochs=0, theta_margin=0.5, eta_power=1.0, eta_tau=1.0, dtype=np.float64,
                        progress=False)
    tr.fit(X, y, 3)
    for g in gates(m):
        assert g.zeta is not None and g.zeta.shape == g.theta.shape
        np.testing.assert_array_equal(g.theta, np.clip(g.zeta, 0, 1))
    meta, _ = tr.state_dict()
    assert meta["theta_start"] == 0
    io.save(tmp_path / "m.npz", m)
    back = io.load(tmp_path / "m.npz")["model"]
    for g, h in zip(gates(m), gates(back)):
        np.testing.assert_array_equal(g.zeta, h.zeta)


def test_cli_prune_lenet5_quick_writes_results_and_plots(tmp_path, capsys):
    import json
    from minigrow.cli import main
    assert main(["prune", "lenet5", "--quick", "--n-test", "100", "--out", str(tmp_path)]) == 2
    assert "--n-test" in capsys.readouterr().err
    assert main(["prune", "lenet5", "--quick", "--epochs", "2", "--out", str(tmp_path), "--no-progress"]) == 0
    res = json.loads((tmp_path / "results" / "pruning_lenet5_quick.json").read_text())
    row = res["rows"][0]
    assert len(row["widths"]) == 4 and row["widths"][2] == 16 * row["widths"][1]
    assert res["settings"]["theta_margin"] == 0.5 and res["dense"]["n_params"] == 431_080
    assert (tmp_path / "figures" / "pruning_lenet5_quick_theta.png").exists()
    assert "pruned/dense wall time" in capsys.readouterr().out
    assert main(["prune", "lenet5", "--hiddens", "3-3", "--quick", "--out", str(tmp_path)]) == 2


def test_expected_flops_price_counts_the_multiply_adds_of_the_pruned_net():
    """price_on="flops" (ours): a filter pays kh·kw·Ho·Wo multiply-adds per active input channel and per active
    filter of the next conv; at θ ∈ {0, 1} the price is the forward multiply-adds of the pruned net."""
    m = tiny_conv(5, c1=4, c2=5, h=3)
    with pytest.raises(ValueError, match="run one forward pass first"):
        price_sizes(m, 0, "flops")
    m(np.zeros((1, 1, 10, 10)))
    assert price_sizes(m, 0, "flops").tolist() == [9 * 64 * 1 + 9 * 16 * 5] * 4      # 8×8 and 4×4 outputs
    assert price_sizes(m, 1, "flops").tolist() == [9 * 16 * 4 + 4 * 3] * 5
    gates(m)[0].theta[:] = [1, 0, 1, 0]
    gates(m)[1].theta[:] = [0, 1, 1, 0, 1]
    gates(m)[2].theta[:] = [1, 1, 0]
    zero = {q: 0.0 for q in range(4)}
    final, _ = to_deterministic(m)
    final(np.zeros((1, 1, 10, 10)))
    assert prior_cost(m, zero, 1.0, 1, "flops") == pytest.approx(final.macs())
    from minigrow.methods.pruning import gated_mlp
    mlp_ = gated_mlp([6, 5, 4, 3], rng=0, dtype=np.float64)          # a dense net: the parameters without biases
    assert price_sizes(mlp_, 0, "flops").tolist() == [6 + 4] * 5
    assert price_sizes(mlp_, 1, "flops").tolist() == [5 + 3] * 4


def test_lambda_star_per_conv_layer_and_a_flops_priced_trainer_step():
    from minigrow.methods.pruning import layer_precisions, optimal_precision, unit_sizes, unit_sq_norms
    m = tiny_conv(8, c1=4, c2=5, h=3)
    X, y, _ = data(8, n=6)
    for g in gates(m):
        g.theta[:] = np.linspace(0.3, 0.9, g.n_units)
    lams = layer_precisions(m)
    conv2 = weight_layers(m)[1]
    assert unit_sizes(m, 1).tolist() == [9 * 4 + 1] * 5
    assert lams[1] == pytest.approx(optimal_precision(gates(m)[1].theta, unit_sq_norms(conv2), unit_sizes(m, 1)))
    tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=6, rng=0, settings=PLAIN_SETTINGS, price_on="flops",
                        price=0.01, eta_theta=0.1, warmup_epochs=0, dtype=np.float64, progress=False, n_train=6)
    before = [g.theta.copy() for g in gates(m)]
    tr.train_step(X, y)
    assert any(not np.array_equal(b, g.theta) for b, g in zip(before, gates(m)))


def test_cli_prune_lenet5_grid_refuses_dense_flag(tmp_path, capsys):
    from minigrow.cli import main
    assert main(["prune", "lenet5", "--quick", "--seeds", "0,1", "--no-dense", "--out", str(tmp_path)]) == 2
    assert "--dense" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
