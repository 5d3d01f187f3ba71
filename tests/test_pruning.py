"""Tests for minigrow.methods.pruning: the "what must hold" list of pruning.md §5 (float64 for theory checks).

The derivation under test is ours (pruning.md §2–3), built on the papers' stated principles.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

from minigrow import io
from minigrow.gradcheck import check_layer, check_network, numerical_gradient, rel_error
from minigrow.losses import SoftmaxCrossEntropy
from minigrow.optim import Adam
from minigrow.layers import Dense
from minigrow.methods.pruning import (PLAIN_SETTINGS, Gate, PruningTrainer, add_prior_weight_grads,
                                      exact_expectation, flip_cv_gradient, flip_gradient, forward_with_gates, gated_mlp,
                                      gates, layer_precisions, optimal_precision, pathwise_gradient, per_sample_losses,
                                      precision_cost, price_rates, price_sizes, prior_cost, prior_theta_grad, prune,
                                      remove_units, sample_gates, set_gates, score_function_gradient, theta_step,
                                      to_deterministic, unit_sizes, unit_sq_norms, weight_layers, widths)

CE = SoftmaxCrossEntropy()


def tiny(seed=0, sizes=(3, 3, 2, 3), input_gate=False, act="tanh"):
    rng = np.random.default_rng(seed)
    m = gated_mlp(list(sizes), act, rng=seed + 1, dtype=np.float64, input_gate=input_gate)
    for i in range(len(gates(m))):
        gates(m)[i].theta[:] = rng.uniform(0.15, 0.85, gates(m)[i].n_units)
    X = rng.standard_normal((9, sizes[0]))
    y = rng.integers(0, sizes[-1], 9)
    return m, X, y, rng


def flip_oracle(m, X, y, loss, i):
    """Slow loop oracle: for every unit j, force ξ_nj = 1 and 0 with the other sampled gates kept."""
    xis = [g.xi.copy() for g in gates(m)]
    p = i
    out = np.zeros(gates(m)[i].n_units)
    for j in range(gates(m)[i].n_units):
        on = [g.copy() for g in xis]
        off = [g.copy() for g in xis]
        on[p][:, j] = 1
        off[p][:, j] = 0
        out[j] = np.mean(per_sample_losses(loss, forward_with_gates(m, X, on), y)
                         - per_sample_losses(loss, forward_with_gates(m, X, off), y))
    return out


# ---------------------------------------------------------------------------------------------------------- 1
@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2, 5)])
def test_gate_gradients_with_fixed_gates_dense_and_nchw(shape):
    """ã = ξ ⊙ a on axis 1: (N, F) and NCHW (one gate per sample and channel, broadcast over H, W), float64."""
    rng = np.random.default_rng(0)
    layer = Gate(3, dtype=np.float64)
    layer.theta[:] = [0.3, 0.9, 0.6]
    x = rng.standard_normal(shape)
    layer.xi = (rng.random((shape[0], 3)) < 0.5).astype(float)
    report = check_layer(layer, x, rng=2)
    assert report.max_error < 1e-7, report
    out = layer.forward(x, train=True)
    xi = layer.xi.reshape(layer.xi.shape + (1,) * (x.ndim - 2))
    np.testing.assert_array_equal(out, x * xi)
    G = rng.standard_normal(shape)
    np.testing.assert_array_equal(layer.backward(G), G * xi)
    assert layer.last_upstream is G and layer.last_input is x
    np.testing.assert_array_equal(layer.forward(x, train=False), x * layer.theta.reshape((3,) + (1,) * (x.ndim - 2)))


def test_gate_pathwise_quantity_on_nchw_is_the_shared_gate_derivative():
    """For an NCHW gate the pathwise estimate is Σ over samples, H and W of G·a (= ∂L/∂ξ_c of one shared gate)."""
    from minigrow.methods.pruning.formulas import pathwise_estimate
    rng = np.random.default_rng(1)
    a, G = rng.standard_normal((4, 3, 2, 5)), rng.standard_normal((4, 3, 2, 5))
    np.testing.assert_allclose(pathwise_estimate(G, a), np.einsum("nchw,nchw->c", G, a), rtol=1e-12)


def test_network_gradient_with_fixed_gates_including_input_gate():
    m, X, y, rng = tiny(input_gate=True)
    sample_gates(m, X.shape[0], rng)
    report = check_network(m, CE, X, y)
    assert report.max_error < 1e-7, report


def test_pathwise_quantity_is_derivative_wrt_shared_gate():
    m, X, y, rng = tiny()
    sample_gates(m, X.shape[0], rng)
    out = m.forward(X, True)
    CE.forward(out, y)
    m.backward(CE.backward())
    for i in range(len(gates(m))):
        g = pathwise_gradient(m, i)
        xi = gates(m)[i].xi

        def f():
            return CE.forward(m.forward(X, True), y)
        num = numerical_gradient(f, xi)            # ∂L/∂ξ_nj, summed over n = shared-gate derivative
        assert rel_error(g, num.sum(axis=0)) < 1e-7


@pytest.mark.parametrize("price_on", ["incoming", "params"])
@pytest.mark.parametrize("price", [0.7, (0.7, 2.5, 0.3)])
@pytest.mark.parametrize("input_gate", [False, True])
def test_prior_gradients_by_finite_differences(price_on, price, input_gate):
    m, X, y, rng = tiny(input_gate=input_gate)
    N = 50
    for i in range(len(gates(m))):
        gates(m)[i].theta[:] = rng.uniform(0.1, 0.9, gates(m)[i].n_units)
    lams = layer_precisions(m)
    f = lambda: prior_cost(m, lams, price, N, price_on)            # noqa: E731
    for i in range(len(gates(m))):
        num = numerical_gradient(f, gates(m)[i].theta)
        assert rel_error(prior_theta_grad(m, i, lams, price, N, price_on), num) < 1e-8
    m.zero_grad()
    add_prior_weight_grads(m, lams, N)
    for layer in m.layers:
        for k, p in layer.params.items():
            assert rel_error(layer.grads[k], numerical_gradient(f, p)) < 1e-7


def test_price_params_counts_every_parameter_of_the_pruned_net():
    """price="params" (ours): at θ ∈ {0, 1}, γ P(θ) = γ × parameters of the deterministic net, and a unit is charged
    for its incoming weights, bias and outgoing column."""

    m = gated_mlp([6, 5, 4, 3], rng=0, dtype=np.float64)
    assert price_sizes(m, 0, "params").tolist() == [6 + 1 + 4] * 5
    assert price_sizes(m, 1, "params").tolist() == [5 + 1 + 3] * 4
    assert price_sizes(m, 1, "incoming").tolist() == [6] * 4
    gates(m)[0].theta[:] = [1, 0, 1, 1, 0]
    gates(m)[1].theta[:] = [0, 1, 1, 1]
    zero = {i: 0.0 for i in range(len(m.layers))}
    final, _ = to_deterministic(m)
    assert prior_cost(m, zero, 1.0, 1, "params") == pytest.approx(final.n_params())
    assert price_sizes(m, 1, "params").tolist() == [3 + 1 + 3] * 4


@pytest.mark.parametrize("input_gate", [False, True])
def test_prior_cost_is_the_sum_of_the_formula_per_layer(input_gate):
    """prior_cost (price_on="incoming") = Σ over weight layers of formulas.prior_term(θ, λ, ‖w‖², γ n) (θ = 1 and
    no price for ungated layers) + the input gate's price term."""
    from minigrow.methods.pruning.formulas import prior_term
    m, X, y, rng = tiny(21, input_gate=input_gate)
    lams = layer_precisions(m)
    gs = gates(m)
    hidden = gs[1:] if input_gate else gs
    total = 0.0
    for q, layer in enumerate(weight_layers(m)):
        gated = q < len(hidden)
        th = hidden[q].theta if gated else np.ones(layer.params["W"].shape[0])
        n = layer.params["W"].shape[1] + 1
        total += prior_term(th, lams[q], unit_sq_norms(layer), 0.7 * n if gated else 0.0, 50)
    if input_gate:
        total += prior_term(gs[0].theta, 0.0, 0.0, 0.7 * unit_sizes(m, 0), 50)
    assert prior_cost(m, lams, 0.7, 50, "incoming") == pytest.approx(total, rel=1e-12)


def test_unit_sizes_and_norms():
    m, *_ = tiny(sizes=(4, 3, 2, 3), input_gate=True)
    assert unit_sizes(m, 1).tolist() == [5, 5, 5]
    assert unit_sizes(m, 0).tolist() == [3] * 4                    # an input feeds 3 weights
    L = weight_layers(m)[0]
    assert np.allclose(unit_sq_norms(L), (L.params["W"] ** 2).sum(1) + L.params["b"] ** 2)


# ---------------------------------------------------------------------------------------------------------- 2
def test_expectation_is_affine_in_each_theta():
    m, X, y, _ = tiny()
    for i in range(len(gates(m))):
        th = gates(m)[i].theta
        for j in range(th.size):
            t0 = th[j]
            vals = []
            for t in (t0 - 0.1, t0, t0 + 0.1):
                th[j] = t
                vals.append(exact_expectation(m, X, y, CE)[0])
            th[j] = t0
            assert abs(vals[0] - 2 * vals[1] + vals[2]) < 1e-12      # second difference 0
            assert abs(vals[2] - vals[0]) > 1e-6                     # …and not trivially constant


def test_exact_gradient_matches_finite_difference():
    m, X, y, _ = tiny()
    E, grads = exact_expectation(m, X, y, CE)
    for p, i in enumerate(range(len(gates(m)))):
        num = numerical_gradient(lambda: exact_expectation(m, X, y, CE)[0], gates(m)[i].theta)
        assert rel_error(grads[p], num) < 1e-8


def test_flip_estimator_mean_equals_exact_gradient():
    m, X, y, _ = tiny()
    E, exact = exact_expectation(m, X, y, CE)
    idx = list(range(len(gates(m))))
    sizes = [gates(m)[i].n_units for i in idx]
    theta = np.concatenate([gates(m)[i].theta for i in idx])
    mean = [np.zeros(s) for s in sizes]
    for pat in itertools.product([0.0, 1.0], repeat=sum(sizes)):
        pat = np.array(pat)
        P = np.prod(np.where(pat == 1, theta, 1 - theta))
        set_gates(m, [np.tile(g, (X.shape[0], 1)) for g in np.split(pat, np.cumsum(sizes)[:-1])])
        m.forward(X, True)
        for p, i in enumerate(idx):
            mean[p] += P * flip_gradient(m, i, y, CE)
    for p in range(len(idx)):
        np.testing.assert_allclose(mean[p], exact[p], rtol=1e-10, atol=1e-13)


@given(seed=st.integers(0, 10_000), block=st.sampled_from([1, 2, 1 << 20]), input_gate=st.booleans())
def test_vectorised_flip_equals_loop_oracle(seed, block, input_gate):
    m, X, y, rng = tiny(seed, input_gate=input_gate, act="relu")
    sample_gates(m, X.shape[0], rng)
    m.forward(X, True)
    for i in range(len(gates(m))):
        fast = flip_gradient(m, i, y, CE, max_elements=block * X.shape[0] * 3)   # block units at a time
        np.testing.assert_allclose(fast, flip_oracle(m, X, y, CE, i), rtol=1e-9, atol=1e-12)


def test_flip_subsample_equals_flip_on_first_samples():
    m, X, y, rng = tiny(3)
    sample_gates(m, X.shape[0], rng)
    m.forward(X, True)
    sub = flip_gradient(m, 1, y, CE, n_samples=4)
    xi = [gates(m)[i].xi[:4] for i in list(range(len(gates(m))))]
    set_gates(m, xi)
    m.forward(X[:4], True)
    np.testing.assert_allclose(sub, flip_gradient(m, 1, y[:4], CE), rtol=1e-12)


def test_monte_carlo_means_converge_flip_and_score_unbiased_pathwise_biased():
    m, X, y, rng = tiny(5)
    _, exact = exact_expectation(m, X, y, CE)
    idx = list(range(len(gates(m))))
    K = 3000
    est = {"flip": [], "score": [], "pathwise": []}
    for _ in range(K):
        sample_gates(m, X.shape[0], rng)
        out = m.forward(X, True)
        ell = CE.per_sample(out, y)
        CE.forward(out, y)
        m.backward(CE.backward())
        est["flip"].append(np.concatenate([flip_gradient(m, i, y, CE) for i in idx]))
        est["score"].append(np.concatenate([score_function_gradient(m, i, ell) for i in idx]))
        est["pathwise"].append(np.concatenate([pathwise_gradient(m, i) for i in idx]))
    ex = np.concatenate(exact)
    for name in ("flip", "score"):
        a = np.array(est[name])
        se = a.std(0) / np.sqrt(K)
        assert np.all(np.abs(a.mean(0) - ex) < 5 * se + 1e-12), name
    assert np.array(est["score"]).std(0).mean() > 2 * np.array(est["flip"]).std(0).mean()   # noisier


def test_score_function_is_zero_at_the_bounds():
    m, X, y, rng = tiny()
    gates(m)[0].theta[:] = [0.0, 1.0, 0.5]
    sample_gates(m, X.shape[0], rng)
    out = m.forward(X, True)
    g = score_function_gradient(m, 0, CE.per_sample(out, y))
    assert g[0] == 0 and g[1] == 0 and np.isfinite(g).all()


# ---------------------------------------------------------------------------------------------------------- 3
@pytest.mark.parametrize("a,b", [(1.0, 1e-8), (3.0, 0.5)])
def test_precision_cost_is_stationary_and_minimal_at_lambda_star(a, b):
    rng = np.random.default_rng(1)
    theta, sq, n = rng.uniform(0, 1, 7), rng.uniform(0.1, 2, 7), np.full(7, 5.0)
    lam = optimal_precision(theta, sq, n, a, b)
    f = lambda t: precision_cost(t, theta, sq, n, 100, a, b)        # noqa: E731
    h = 1e-6 * lam
    assert abs((f(lam + h) - f(lam - h)) / (2 * h)) < 1e-9
    assert f(lam) < f(1.1 * lam) and f(lam) < f(0.9 * lam)


def test_lambda_star_is_one_over_mean_square_for_a1_b0():
    rng = np.random.default_rng(2)
    layer = Dense(6, 4, rng=3, dtype=np.float64)
    sq, n = unit_sq_norms(layer), np.full(4, 7.0)
    assert np.isclose(optimal_precision(np.ones(4), sq, n, 1.0, 0.0),
                      1 / np.mean(np.concatenate([layer.params["W"].ravel(), layer.params["b"]]) ** 2))
    with pytest.raises(ValueError, match="a − 1"):
        optimal_precision(np.zeros(4), sq, n, 1.0, 0.0)


@given(theta=st.lists(st.floats(0, 1), min_size=1, max_size=6), g=st.floats(-1e3, 1e3), eta=st.floats(0, 10))
def test_theta_step_stays_in_unit_interval(theta, g, eta):
    th = np.array(theta)
    theta_step(th, np.full(th.shape, g), eta)
    assert np.all((th >= 0) & (th <= 1))


# ---------------------------------------------------------------------------------------------------------- 4
@pytest.mark.parametrize("input_gate", [False, True])
def test_shrunk_network_equals_full_network_with_binary_gates(input_gate):
    m, X, y, rng = tiny(7, sizes=(5, 6, 4, 3), input_gate=input_gate, act="relu")
    for i in range(len(gates(m))):
        th = (rng.random(gates(m)[i].n_units) < 0.5).astype(float)
        th[0] = 1.0
        gates(m)[i].theta[:] = th
    full = forward_with_gates(m, X, [gates(m)[i].theta for i in list(range(len(gates(m))))])
    det, ids = to_deterministic(m)
    Xd = X if ids is None else X[:, ids]
    np.testing.assert_allclose(det(Xd), full, rtol=0, atol=1e-12)
    loss_before = CE.forward(m(X), y)
    n_before = m.n_params()
    prune(m, eps=0.0)
    assert CE.forward(m(X), y) == pytest.approx(loss_before, abs=1e-12)
    assert m.n_params() < n_before
    assert all(np.all(gates(m)[i].theta == 1) for i in list(range(len(gates(m)))))


def test_pruning_keeps_one_unit_and_slices_optimiser_state():
    m, X, y, rng = tiny(8, sizes=(3, 5, 4, 3))
    opt = Adam(1e-2)
    sample_gates(m, X.shape[0], rng)
    CE.forward(m.forward(X, True), y)
    m.backward(CE.backward())
    opt.step(m)
    g0 = gates(m)[0]
    d0, d1 = weight_layers(m)[:2]
    g0.theta[:] = 0.0
    g0.theta[3] = 1e-4                                   # largest, kept although ≤ ε
    m1_state = d1.state["W"]["m"].copy()
    prune(m, eps=1e-3)
    assert widths(m) == [1, 4]
    assert g0.unit_ids.tolist() == [3]
    assert d0.state["W"]["m"].shape == (1, 3)
    np.testing.assert_array_equal(d1.state["W"]["m"], m1_state[:, [3]])
    opt.step(m)                                          # the optimiser still runs on the shrunk net


def test_remove_units_rejects_empty():
    m, *_ = tiny()
    with pytest.raises(ValueError, match="at least one"):
        remove_units(m, 0, [])


def test_save_load_round_trip_of_pruned_gated_net(tmp_path):
    m, X, y, rng = tiny(9, sizes=(4, 6, 5, 3), input_gate=True)
    gates(m)[1].theta[[1, 4]] = 0.0
    gates(m)[0].theta[2] = 0.0
    prune(m, eps=0.0)
    io.save(tmp_path / "p.npz", m)
    m2 = io.load(tmp_path / "p.npz")["model"]
    assert widths(m2) == widths(m)
    for i in range(len(gates(m))):
        np.testing.assert_array_equal(gates(m2)[i].theta, gates(m)[i].theta)
        np.testing.assert_array_equal(gates(m2)[i].unit_ids, gates(m)[i].unit_ids)
    np.testing.assert_array_equal(m2(X), m(X))


# ---------------------------------------------------------------------------------------------------- 5 + toy
def teacher_student(width, seed=0, epochs=80):
    from minigrow.experiments.pruning import teacher_student as ts
    return ts(k=3, width=width, seed=seed, epochs=epochs)


def test_params_and_flops_fall_and_teacher_student_finds_k_units():
    res = teacher_student(12)
    eps = res["trainer"].history.epochs
    params = [e["n_params"] for e in eps]
    macs = [e["macs"] for e in eps]
    assert all(b <= a for a, b in zip(params, params[1:])) and params[-1] < params[0]
    assert all(b <= a for a, b in zip(macs, macs[1:])) and macs[-1] < macs[0]
    assert 3 <= res["final_width"] <= 4
    assert res["theta_binary_frac"] == 1.0
    assert res["test_loss"] < 3 * res["noise_var"] + 0.01


def test_trainer_estimators_run_and_keep_theta_in_bounds():
    for est in ("flip", "pathwise", "score"):
        m, X, y, rng = tiny(10, sizes=(3, 8, 3))
        for i in range(len(gates(m))):
            gates(m)[i].theta[:] = 0.9
        tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=3, rng=0, settings=PLAIN_SETTINGS, price=0.5, eta_theta=0.5, estimator=est,
                            warmup_epochs=0, dtype=np.float64, progress=False)
        tr.fit(X, y, 3)
        th = gates(m)[0].theta
        assert np.all((th >= 0) & (th <= 1))
        assert len(tr.history.epochs) == 3 and "widths" in tr.history.epochs[-1]


def test_bad_arguments():
    m, *_ = tiny()
    with pytest.raises(ValueError, match="estimator"):
        PruningTrainer(m, estimator="magic")
    from minigrow.network import mlp
    with pytest.raises(ValueError, match="gated"):
        PruningTrainer(mlp([2, 3, 2]))
    with pytest.raises(ValueError, match="2\\^"):
        exact_expectation(gated_mlp([2, 20, 2], dtype=np.float64), np.zeros((1, 2)), np.zeros(1, int), CE)


def test_cli_prune_toy_quick_writes_results(tmp_path, capsys):
    from minigrow.cli import main
    assert main(["prune", "toy", "--quick", "--out", str(tmp_path), "--no-plots"]) == 0
    import json
    res = json.loads((tmp_path / "results" / "pruning_toy.json").read_text())
    assert {r["width"] for r in res["runs"]} == {6, 12}
    assert "final width" in capsys.readouterr().out


def test_cli_prune_bad_argument_is_one_line_error(capsys):
    from minigrow.cli import main
    assert main(["prune", "--gamma", "-1", "--no-plots"]) == 2
    assert "--gamma" in capsys.readouterr().err
    assert main(["prune", "--price", "-1", "--no-plots"]) == 2
    assert "--price" in capsys.readouterr().err


def test_prune_every_removes_units_inside_an_epoch():
    m, X, y, rng = tiny(11, sizes=(3, 8, 3))
    tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=3, rng=0, settings=PLAIN_SETTINGS, price=50.0, eta_theta=5.0, warmup_epochs=0,
                        prune_every=1, dtype=np.float64, progress=False)
    tr.fit(X, y, 1)
    steps = [e["step"] for e in tr.history.events if e["event"] == "prune"]
    assert steps and min(steps) < 2            # pruned during the first epoch (3 steps), not only at its end


def test_sample_gates_accepts_int_seed_or_generator():

    m = gated_mlp([3, 5, 4, 2], rng=0, theta0=0.5)
    a = sample_gates(m, 7, 3)
    b = sample_gates(m, 7, np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert 0 < sum(float(x.sum()) for x in a) < 7 * 9          # θ = ½: some gates on, some off


# --- flip estimator with the pathwise control variate (ours) and estimate_every (ours) ---------------------------
def _forward_backward(m, X, y, rng):
    sample_gates(m, X.shape[0], rng)
    out = m.forward(X, True)
    CE.forward(out, y)
    m.backward(CE.backward())


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_flip_cv_on_the_whole_batch_is_the_flip_estimator(act):
    m, X, y, rng = tiny(12, act=act, input_gate=True)
    _forward_backward(m, X, y, rng)
    for i in range(len(gates(m))):
        np.testing.assert_allclose(flip_cv_gradient(m, i, y, CE, X.shape[0]), flip_gradient(m, i, y, CE),
                                   rtol=1e-10, atol=1e-13)


def test_flip_cv_is_unbiased_and_less_noisy_than_the_flip_on_as_many_samples():
    """Monte Carlo over gates and batch orders (the S flipped samples are the first S of a shuffled batch): the
    mean of the control-variate estimator converges to the exact gradient (enumeration), the pathwise one does not,
    and with S = 2 of 9 samples the control variate is much less noisy than the flip on the same 2 samples."""
    m, X, y, rng = tiny(5)
    _, exact = exact_expectation(m, X, y, CE)
    ex = np.concatenate(exact)
    idx = list(range(len(gates(m))))
    K, S = 3000, 2
    est = {"cv": [], "flip_sub": [], "path": []}
    for _ in range(K):
        perm = rng.permutation(X.shape[0])
        Xp, yp = X[perm], y[perm]
        _forward_backward(m, Xp, yp, rng)
        est["cv"].append(np.concatenate([flip_cv_gradient(m, i, yp, CE, S) for i in idx]))
        est["flip_sub"].append(np.concatenate([flip_gradient(m, i, yp, CE, n_samples=S) for i in idx]))
        est["path"].append(np.concatenate([pathwise_gradient(m, i) for i in idx]))
    a = np.array(est["cv"])
    assert np.all(np.abs(a.mean(0) - ex) < 5 * a.std(0) / np.sqrt(K) + 1e-12)
    p = np.array(est["path"])
    assert np.any(np.abs(p.mean(0) - ex) > 10 * p.std(0) / np.sqrt(K))          # the pathwise one is biased
    assert a.std(0).mean() < 0.5 * np.array(est["flip_sub"]).std(0).mean()


def test_flip_cv_needs_a_backward_pass():
    m, X, y, rng = tiny(13)
    sample_gates(m, X.shape[0], rng)
    m.forward(X, True)
    with pytest.raises(ValueError, match="backward"):
        flip_cv_gradient(m, list(range(len(gates(m))))[0], y, CE, 3)
    _forward_backward(m, X, y, rng)
    with pytest.raises(ValueError, match="n_samples"):
        flip_cv_gradient(m, list(range(len(gates(m))))[0], y, CE, 0)
    with pytest.raises(ValueError, match="not by layer index"):
        flip_cv_gradient(m, len(gates(m)), y, CE, 3)


def test_estimate_every_moves_theta_only_on_estimate_steps_by_m_steps():
    """With estimate_every = M, θ moves only on steps ≡ 0 (mod M), and that move equals the plain trainer's move
    with η_θ·M from the same state (the estimate stands for M steps)."""
    def make(M, eta):
        m, X, y, _ = tiny(14, sizes=(3, 8, 3))
        for i in range(len(gates(m))):
            gates(m)[i].theta[:] = 0.8
        return PruningTrainer(m, "ce", Adam(1e-2), batch_size=3, rng=0, settings=PLAIN_SETTINGS, price=0.5, eta_theta=eta,
                              warmup_epochs=0, dtype=np.float64, progress=False, estimate_every=M, n_train=9), X, y
    tr, X, y = make(3, 0.05)
    ref, _, _ = make(1, 0.15)
    th0 = gates(tr.model)[0].theta.copy()
    tr.train_step(X[:3], y[:3])
    ref.train_step(X[:3], y[:3])
    assert not np.array_equal(gates(tr.model)[0].theta, th0)
    np.testing.assert_allclose(gates(tr.model)[0].theta, gates(ref.model)[0].theta, rtol=1e-12, atol=1e-15)
    for step in (1, 2, 3):
        before = gates(tr.model)[0].theta.copy()
        tr.step = step
        tr.train_step(X[3:6], y[3:6])
        assert np.array_equal(gates(tr.model)[0].theta, before) == (step % 3 != 0), step


def test_cv_every_uses_the_weighted_correction_on_every_mth_step_and_pathwise_between():
    m, X, y, rng = tiny(15, act="relu")
    tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=9, rng=0, settings=PLAIN_SETTINGS, price=0.5, eta_theta=0.1, estimator="flip_cv",
                        flip_samples=4, cv_every=3, warmup_epochs=0, dtype=np.float64, progress=False, n_train=9)
    _forward_backward(m, X, y, rng)
    for i in range(len(gates(m))):
        tr.step = 6
        np.testing.assert_allclose(tr.theta_gradient(i, y, None), flip_cv_gradient(m, i, y, CE, 4, weight=3),
                                   rtol=1e-12, atol=1e-15)
        corr = flip_cv_gradient(m, i, y, CE, 4) - pathwise_gradient(m, i)
        assert np.any(np.abs(corr) > 1e-6)                   # the correction is not trivially zero here
        tr.step = 7
        np.testing.assert_array_equal(tr.theta_gradient(i, y, None), pathwise_gradient(m, i))


def test_binarize_rounds_removes_zeros_freezes_theta_and_is_idempotent():
    m, X, y, rng = tiny(16, sizes=(3, 6, 4, 3))
    l1, l2 = gates(m)
    l1.theta[:] = [0.9, 0.2, 0.5, 0.49, 1.0, 0.0]
    l2.theta[:] = [0.1, 0.3, 0.2, 0.4]                       # all below ½: the largest is kept
    tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=3, rng=0, settings=PLAIN_SETTINGS, price=0.5, eta_theta=0.1, warmup_epochs=0,
                        dtype=np.float64, progress=False, n_train=9)
    removed = tr.binarize()
    assert widths(m) == [3, 1] and removed == {0: 3, 1: 3}
    assert list(l1.unit_ids) == [0, 2, 4] and list(l2.unit_ids) == [3]
    assert np.all(l1.theta == 1) and np.all(l2.theta == 1) and tr.eta_theta == 0
    ev = [e for e in tr.history.events if e["event"] == "binarize"]
    assert len(ev) == 1 and ev[0]["theta_binary_before"] == 2 / 10
    W1, W2 = weight_layers(m)[:2]
    before = [p.copy() for p in (W1.params["W"], W2.params["W"])]
    assert tr.binarize() == {} and len([e for e in tr.history.events if e["event"] == "binarize"]) == 1
    assert all(np.array_equal(a, b) for a, b in zip(before, (W1.params["W"], W2.params["W"])))


def test_fit_schedule_finetune_epochs_train_a_deterministic_net():
    m, X, y, rng = tiny(17, sizes=(3, 8, 3))
    X = np.tile(X, (4, 1))
    y = np.tile(y, 4)
    tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=6, rng=0, settings=PLAIN_SETTINGS, price=0.5, eta_theta=0.3, warmup_epochs=0,
                        dtype=np.float64, progress=False)
    tr.fit_schedule(X, y, 5, finetune_epochs=2)
    assert [e["epoch"] for e in tr.history.events if e["event"] == "binarize"] == [3]
    recs = tr.history.epochs
    assert all(r["theta_binary_frac"] == 1.0 for r in recs[3:])
    th = [t for s_, p, ids, t in tr.theta_trace if s_ >= recs[2]["epoch"] * 6]
    assert all(np.all(t == 1) for t in th[1:])              # frozen at 1 after the rounding
    W = weight_layers(m)[0].params["W"]
    assert np.all(np.isfinite(W)) and recs[-1]["widths"] == widths(m)


def test_input_gated_net_keeps_accepting_the_full_input_after_pruning(tmp_path):
    """After inputs are pruned the network is still fed all original features (the gate selects the kept ones):
    training continues on the full X, and a save/load round trip keeps that width."""
    m, X, y, rng = tiny(18, sizes=(3, 8, 3), input_gate=True)
    gate = gates(m)[0]
    gate.theta[:] = [1.0, 0.0, 1.0]
    prune(m, 1e-3)
    assert gate.n_units == 2 and gate.input_width == 3 and list(gate.unit_ids) == [0, 2]
    tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=3, rng=0, settings=PLAIN_SETTINGS, price=0.5, eta_theta=0.1, warmup_epochs=0,
                        dtype=np.float64, progress=False)
    tr.fit(X, y, 1, X, y)                                   # full-width X and X_test accepted
    io.save(tmp_path / "m.npz", m)
    m2 = io.load(tmp_path / "m.npz")["model"]
    g2 = gates(m2)[0]
    assert g2.input_width == 3 and list(g2.unit_ids) == [0, 2]
    set_gates(m, None)
    np.testing.assert_array_equal(m2.forward(X, train=False), m.forward(X, train=False))


def test_per_layer_prices_price_each_parameter_by_its_layer():
    """At a vertex, the price term with one γ_k per weight layer is Σ_k γ_k × (parameters of W^k in the pruned
    net); a common γ reproduces the single-γ results exactly."""
    m, X, y, rng = tiny(19, sizes=(3, 5, 4, 2))
    l1, l2 = gates(m)
    l1.theta[:] = [1, 0, 1, 1, 0]
    l2.theta[:] = [0, 1, 1, 0]
    lams = {i: 0.0 for i in layer_precisions(m)}
    gam = (0.5, 2.0, 3.0)
    expect = 0.5 * (3 * 3 + 3) + 2.0 * (3 * 2 + 2) + 3.0 * (2 * 2 + 2)      # W1 3×3+b, W2 2×3+b, W3 2×2+b
    assert prior_cost(m, lams, gam, 1, "params") == pytest.approx(expect)
    for i in range(len(gates(m))):
        np.testing.assert_array_equal(price_rates(m, i, 0.7, "params"), 0.7 * price_sizes(m, i, "params"))
        np.testing.assert_allclose(price_rates(m, i, (0.7, 0.7, 0.7), "params"), 0.7 * price_sizes(m, i, "params"))
    with pytest.raises(ValueError, match="one price per weight layer"):
        prior_cost(m, lams, (0.5, 2.0), 1, "params")
    with pytest.raises(ValueError, match="price"):
        PruningTrainer(m, price=(0.5, -1.0, 1.0))
    with pytest.raises(TypeError, match="now called price"):
        PruningTrainer(m, gamma=0.5)


# --- the standalone Gate on any network (issue 11) -----------------------------------------------------------------
from minigrow.layers import Layer, ReLU, Sequential, Sigmoid, Tanh          # noqa: E402
from minigrow.methods.pruning import PruningSettings, add_gates             # noqa: E402
from minigrow.network import mlp                                            # noqa: E402


def nested_net(seed=0, dtype=np.float64):
    """A residual-free network of nested Sequentials: 4 → 6 → 5 → 3, activations in different containers."""
    return Sequential([Sequential([Dense(4, 6, rng=seed, dtype=dtype), Tanh()]),
                       Sequential([Dense(6, 5, rng=seed + 1, dtype=dtype), ReLU(),
                                   Sequential([Dense(5, 3, rng=seed + 2, dtype=dtype)])])])


def test_add_gates_on_mlp_gives_the_ungated_outputs_with_theta_one():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 5))
    m = mlp([5, 7, 6, 3], "relu", rng=0, dtype=np.float64)
    ref = m(X)
    assert add_gates(m) is m and widths(m) == [7, 6]
    assert [type(layer).__name__ for layer in m.layers] == ["Dense", "ReLU", "Gate"] * 2 + ["Dense"]
    np.testing.assert_array_equal(m(X), ref)
    add_gates(m)                                               # idempotent: an activation gets one gate
    assert widths(m) == [7, 6]
    # same weights as gated_mlp with the same rng, input gate included
    g = gated_mlp([5, 7, 6, 3], rng=0, dtype=np.float64, input_gate=True)
    assert isinstance(g.layers[0], Gate) and g.layers[0].input_width == 5 and widths(g) == [5, 7, 6]
    np.testing.assert_array_equal(g(X), ref)
    # nested Sequentials: the gates go into the container of their activation; an output activation is not gated
    n = nested_net()
    ref = n(X[:, :4])
    add_gates(n)
    assert widths(n) == [6, 5] and isinstance(n.layers[0].layers[2], Gate) and isinstance(n.layers[1].layers[2], Gate)
    np.testing.assert_array_equal(n(X[:, :4]), ref)
    s = Sequential([Dense(4, 3, rng=0), ReLU(), Dense(3, 2, rng=1), Sigmoid()])
    add_gates(s)
    assert widths(s) == [3]


def test_pruning_a_network_built_by_add_gates_keeps_the_loss_through_surgery():
    """Nested net + add_gates + input gate: binary θ, prune (units removed by minigrow.surgery, through the nesting)
    and to_deterministic give the gated net's outputs with ξ = θ (float64, 1e-12); the optimiser state is sliced."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((11, 4)), rng.integers(0, 3, 11)
    m = add_gates(nested_net(1), input_gate=True)
    opt = Adam(1e-2)
    CE.forward(m.forward(X, True), y)
    m.backward(CE.backward())
    opt.step(m)
    for g in gates(m):
        th = (rng.random(g.n_units) < 0.5).astype(float)
        th[0] = 1.0
        g.theta[:] = th
    keep1, keep2 = (np.flatnonzero(g.theta) for g in gates(m)[1:])
    m_state = weight_layers(m)[1].state["W"]["m"].copy()
    full = forward_with_gates(m, X, [g.theta for g in gates(m)])
    loss = CE.forward(full, y)
    det, ids = to_deterministic(m)
    np.testing.assert_allclose(det(X[:, ids]), full, rtol=0, atol=1e-12)
    removed = prune(m, eps=0.0)
    assert removed and widths(m) == [int(g.theta.size) for g in gates(m)]
    assert CE.forward(m(X), y) == pytest.approx(loss, abs=1e-12)
    np.testing.assert_array_equal(weight_layers(m)[1].state["W"]["m"], m_state[np.ix_(keep2, keep1)])
    opt.step(m)                                                # the optimiser runs on the shrunk nested net
    tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=4, rng=0, settings=PLAIN_SETTINGS, price=0.5, eta_theta=0.2,
                        warmup_epochs=0, dtype=np.float64, progress=False)
    tr.fit(X, y, 2)                                            # trains and prunes a user-built gated network
    assert all(np.isfinite(v).all() for layer, k in m.parameters() for v in [layer.params[k]])


@given(seed=st.integers(0, 10_000), block=st.sampled_from([1, 1 << 20]))
def test_flip_equals_loop_oracle_on_a_nested_gated_net(seed, block):
    rng = np.random.default_rng(seed)
    m = add_gates(nested_net(seed % 7), input_gate=True)
    X, y = rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    for g in gates(m):
        g.theta[:] = rng.uniform(0.2, 0.8, g.n_units)
    sample_gates(m, 5, rng)
    m.forward(X, True)
    for p in range(len(gates(m))):
        np.testing.assert_allclose(flip_gradient(m, p, y, CE, max_elements=block * 5 * 6), flip_oracle(m, X, y, CE, p),
                                   rtol=1e-9, atol=1e-12)


class Conv1x1(Layer):
    """A 1×1 convolution on NCHW (an affine layer that is not a Dense): z_{n,o,h,w} = Σ_c W_{o,c} x_{n,c,h,w} + b_o."""
    unit_kind = "affine"

    def __init__(self, cin, cout, rng=0):
        super().__init__()
        r = np.random.default_rng(rng)
        self.params = {"W": r.standard_normal((cout, cin, 1, 1)) / np.sqrt(cin), "b": 0.1 * r.standard_normal(cout)}
        self._init_grads()

    in_units = property(lambda self: self.params["W"].shape[1])
    out_units = property(lambda self: self.params["W"].shape[0])

    def out_axes(self):
        return {"W": 0, "b": 0}

    def in_axes(self):
        return {"W": 1}

    def forward(self, x, train=True):
        self._cache = x
        return np.einsum("oc,nchw->nohw", self.params["W"][:, :, 0, 0], x) + self.params["b"][:, None, None]

    def backward(self, dout, need_input_grad=True):
        x = self._cache
        self.grads["W"][:, :, 0, 0] = np.einsum("nohw,nchw->oc", dout, x)
        self.grads["b"][:] = dout.sum(axis=(0, 2, 3))
        return np.einsum("oc,nohw->nchw", self.params["W"][:, :, 0, 0], dout) if need_input_grad else None


class GlobalMean(Layer):
    """(N, C, H, W) → (N, C), mean over H, W (unit c stays unit c)."""
    unit_kind = "elementwise"

    def forward(self, x, train=True):
        self._cache = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dout, need_input_grad=True):
        n, c, h, w = self._cache
        return np.broadcast_to(dout[:, :, None, None] / (h * w), self._cache).copy()


def conv_net():
    return add_gates(Sequential([Conv1x1(3, 5, 0), ReLU(), Conv1x1(5, 4, 1), ReLU(), GlobalMean(), Dense(4, 3, rng=2,
                                                                                                        dtype=np.float64)]))


def test_gates_on_conv_filters_pathwise_works_flip_refuses_an_unknown_consumer():
    """Gates of shape (N, C) on NCHW activations (conv filters gated): the pathwise estimate is the derivative of
    one shared gate; the flip estimator refuses a non-Dense consumer with a clear ValueError; pruning removes
    filters through surgery and keeps the outputs with ξ = θ."""
    rng = np.random.default_rng(4)
    m = conv_net()
    assert widths(m) == [5, 4]
    X, y = rng.standard_normal((6, 3, 2, 3)), rng.integers(0, 3, 6)
    for g in gates(m):
        g.theta[:] = 0.6
    sample_gates(m, 6, rng)
    CE.forward(m.forward(X, True), y)
    m.backward(CE.backward())
    for p in range(2):
        xi = gates(m)[p].xi
        num = numerical_gradient(lambda: CE.forward(m.forward(X, True), y), xi).sum(axis=0)
        assert rel_error(pathwise_gradient(m, p), num) < 1e-7
    with pytest.raises(ValueError, match="a channel gate must feed a Conv2D directly"):
        flip_gradient(m, 0, y, CE)
    tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=3, rng=0, settings=PLAIN_SETTINGS, estimator="pathwise",
                        price=0.5, eta_theta=0.2, warmup_epochs=0, dtype=np.float64, progress=False, n_train=6)
    tr.train_step(X[:3], y[:3])                                # prior, θ step and pathwise estimate on conv gates
    gates(m)[0].theta[:] = [1, 0, 1, 0, 1]
    gates(m)[1].theta[:] = [0, 1, 1, 1]
    full = forward_with_gates(m, X, [g.theta for g in gates(m)])
    prune(m, eps=0.0)
    assert widths(m) == [3, 3] and m.layers[3].params["W"].shape == (3, 3, 1, 1)
    np.testing.assert_allclose(m(X), full, rtol=0, atol=1e-12)


def test_full_batch_flip_samples_are_drawn_at_random(monkeypatch):
    """batch_size=None (the batch is the whole data set in a fixed order) and fewer flip samples than data: the
    flipped samples are drawn from the trainer's Generator each step, not always the first ones. With minibatches
    (shuffled) the first samples of each batch are used, as before."""
    import minigrow.methods.pruning.trainer as T
    seen = []

    def spy(model, p, y, loss, max_elements=1 << 23, n_samples=None, per_sample=False):
        seen.append(n_samples)
        return flip_gradient(model, p, y, loss, max_elements, n_samples, per_sample)
    monkeypatch.setattr(T, "flip_gradient", spy)
    m, X, y, rng = tiny(20, sizes=(3, 6, 3))
    tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=None, rng=0, settings=PLAIN_SETTINGS, price=0.1,
                        eta_theta=0.01, flip_samples=3, warmup_epochs=0, dtype=np.float64, progress=False)
    tr.fit(X, y, 8)
    assert all(isinstance(s, np.ndarray) and s.size == 3 and len(set(s.tolist())) == 3 for s in seen)
    assert len({tuple(s) for s in seen}) > 1 and len(set(np.concatenate(seen).tolist())) > 3
    seen.clear()
    tr = PruningTrainer(tiny(20, sizes=(3, 6, 3))[0], "ce", Adam(1e-2), batch_size=9, rng=0, settings=PLAIN_SETTINGS,
                        flip_samples=3, warmup_epochs=0, dtype=np.float64, progress=False)
    tr.fit(X, y, 2)
    assert seen == [3, 3]


def test_readme_snippet_with_default_settings_does_not_collapse():
    """The README's PruningTrainer(gated_mlp([784, 300, 100, 10]), "ce", Adam(1e-3), batch_size=100, rng=0) with the
    default settings on 5 000 MNIST images: 2 warm-up epochs and one θ epoch (with its pruning pass) keep both
    layers wide and the net accurate. (The earlier defaults collapsed to widths [1, 100] at chance accuracy. A dense
    784-300-100-10 with the same optimiser reaches 0.85 after 2 epochs on these images, so the bar is 0.8.)"""
    from minigrow.data import load_mnist
    from minigrow.train import evaluate
    d = load_mnist(n_train=5000, n_test=2000)
    tr = PruningTrainer(gated_mlp([784, 300, 100, 10], rng=0), "ce", Adam(1e-3), batch_size=100, rng=0, progress=False)
    assert tr.settings == PruningSettings() and tr.price == 0.04 and tr.estimator == "flip_cv"
    tr.fit(d.X_train, d.y_train, 3)
    assert min(widths(tr.model)) > 10
    assert any(np.any(g.theta < 1) for g in gates(tr.model))             # θ did move in the third epoch
    final, ids = tr.finalize()
    assert evaluate(final, "ce", d.X_test, d.y_test)[1] > 0.8


def test_settings_one_source_dict_round_trip_and_old_names():
    s = PruningSettings(price=(0.04, 0.4, 0.04))
    assert PruningSettings.from_dict(s.as_dict()) == s
    old = {"gamma": 0.2, "price": "incoming", "eta_theta": 0.5}           # a dict written before the rename
    t = PruningSettings.from_dict(old)
    assert (t.price, t.price_on, t.eta_theta) == (0.2, "incoming", 0.5)
    with pytest.raises(TypeError, match="now called price"):
        s.replace(gamma=1.0)
    with pytest.raises(ValueError, match="price_on"):
        PruningSettings(price_on="macs")
    with pytest.raises(TypeError, match="fit_schedule"):
        PruningTrainer(gated_mlp([2, 3, 2]), epochs=3)
    m, *_ = tiny()
    tr = PruningTrainer(m, settings=s.as_dict() | {"price": 0.3}, progress=False)
    assert tr.price == 0.3 and tr.state_dict()[0]["settings"]["price"] == 0.3
    from minigrow.experiments.pruning import MNIST_SETTINGS
    assert MNIST_SETTINGS == PruningSettings()


def test_cli_gamma_is_deprecated_for_price(tmp_path, capsys):
    from minigrow.cli import main
    assert main(["prune", "--data", "spirals", "--hidden", "4", "--epochs", "1", "--gamma", "0.5", "--price",
                 "incoming", "--out", str(tmp_path), "--no-plots", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "--gamma is deprecated; use --price" in err and "--price incoming is now --price-on incoming" in err
    meta = io.load(tmp_path / "gated_model.npz")["meta"]["settings"]
    assert meta["price"] == 0.5 and meta["price_on"] == "incoming"


def test_core_imports_no_method_and_load_finds_the_gate_by_name(tmp_path):
    """`import minigrow` (and its core modules) loads no method package; minigrow.io.load of a gated net in a fresh
    process finds the Gate type through the registry's name table."""
    import subprocess
    import sys
    from pathlib import Path
    m = gated_mlp([3, 4, 2], rng=0, input_gate=True)
    io.save(tmp_path / "g.npz", m)
    code = ("import sys, minigrow, minigrow.io, minigrow.train, minigrow.checkpoint\n"
            "assert not [k for k in sys.modules if k.startswith('minigrow.methods')], sorted(sys.modules)\n"
            f"m = minigrow.io.load({str(tmp_path / 'g.npz')!r})['model']\n"
            "print(type(m.layers[0]).__name__, m.layers[0].input_width)")
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                       env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["Gate", "3"]


@given(seed=st.integers(0, 10_000))
def test_flip_with_the_gate_before_the_activation_equals_the_oracle(seed):
    """A gate placed before its activation f (f(0) ≠ 0 for the sigmoid): the flip changes the consumer's input by
    (1 − 2ξ)(f(a) − f(0)), still exact."""
    rng = np.random.default_rng(seed)
    m = Sequential([Dense(3, 4, rng=seed, dtype=np.float64), Gate(4, dtype=np.float64), Sigmoid(),
                    Dense(4, 3, rng=seed + 1, dtype=np.float64), Tanh(), Gate(3, dtype=np.float64),
                    Dense(3, 2, rng=seed + 2, dtype=np.float64)])
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)
    for g in gates(m):
        g.theta[:] = rng.uniform(0.2, 0.8, g.n_units)
    sample_gates(m, 6, rng)
    m.forward(X, True)
    for p in range(2):
        np.testing.assert_allclose(flip_gradient(m, p, y, CE), flip_oracle(m, X, y, CE, p), rtol=1e-9, atol=1e-12)


# --- eq. R (ours): the Fisher-balanced price ---------------------------------------------------------------------
def test_fisher_rate_is_the_minimised_kl_plus_noise_term():
    """½ ln(1 + NF/λ) = min_s [KL(N(μ,s²) ‖ N(0,1/λ)) + ½NFs²] − ½λμ², checked by minimising over s numerically."""
    from minigrow.methods.pruning.formulas import fisher_rate
    for N, Fw, lam, mu in ((60000, 3e-5, 400.0, 0.05), (10000, 1e-2, 8.0, -0.3), (5, 0.0, 2.0, 1.0)):
        s2 = np.exp(np.linspace(-30, 5, 200001))
        kl = 0.5 * (lam * s2 + lam * mu ** 2 - 1 - np.log(lam * s2))
        total = np.min(kl + 0.5 * N * Fw * s2) - 0.5 * lam * mu ** 2
        assert abs(float(fisher_rate(Fw, lam, N)) - total) < 1e-6
    with pytest.raises(ValueError, match="F ≥ 0"):
        fisher_rate(-1.0, 1.0, 10)


def test_balanced_prices_keep_the_total_charge_and_the_ratios():
    from minigrow.methods.pruning.formulas import balanced_prices
    rates, sizes = np.array([0.002, 0.02, 1.0]), np.array([235500, 30100, 1010])
    g = np.array(balanced_prices(0.04, rates, sizes))
    assert np.isclose(np.sum(g * sizes), 0.04 * np.sum(sizes))            # the net is charged γ Σ S_q in all
    assert np.allclose(g / g[0], rates / rates[0])                       # in proportion to r_q
    assert balanced_prices(0.04, np.zeros(3), sizes) == (0.04, 0.04, 0.04)  # no information: the uniform price


def test_price_balance_settings_are_checked():
    with pytest.raises(ValueError, match="single price"):
        PruningSettings(price=(0.1, 0.2, 0.3), price_balance="fisher")
    with pytest.raises(ValueError, match="price_on"):
        PruningSettings(price_balance="fisher", price_on="incoming")
    with pytest.raises(ValueError, match="price_balance"):
        PruningSettings(price_balance="balanced")
    assert "price_balance" not in PruningSettings().as_dict()            # earlier result files stay as they were


def test_fisher_balance_sets_per_layer_prices_from_the_batch():
    from minigrow.fisher import mean_fisher
    from minigrow.methods.pruning import formulas as F
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 6)).astype(np.float32), rng.integers(0, 3, size=200)
    model = gated_mlp([6, 8, 5, 3], rng=0)
    tr = PruningTrainer(model, "ce", Adam(1e-2), batch_size=50, rng=0, price=0.5, price_balance="fisher",
                        balance_every=2, warmup_epochs=0, progress=False)
    tr.n_train = 200
    tr.lams = layer_precisions(model, tr.hyper)
    tr.update_balance(X[:50], y[:50])
    want_f = np.array(mean_fisher(model, "ce", X[:50], y[:50]))
    assert np.allclose(tr.fisher, want_f)
    r = F.fisher_rate(want_f, [tr.lams[q] for q in range(3)], 200)
    sizes = [sum(a.size for a in layer.params.values()) for layer in weight_layers(model)]
    assert np.allclose(tr.current_price, F.balanced_prices(0.5, r, sizes))
    tr.fit(X, y, 2)                                                      # runs, and the prices follow the Fisher
    assert tr.layer_price is not None and len(tr.layer_price) == 3 and tr._fisher_count == 1 + 4   # steps 0, 2, 4, 6


def test_fisher_prices_of_a_dense_net_follow_eq_R():
    from minigrow.experiments.pruning import fisher_prices
    from minigrow.fisher import mean_fisher
    from minigrow.methods.pruning import formulas as F
    from minigrow.network import mlp
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(1200, 6)), rng.integers(0, 3, size=1200)
    model = mlp([6, 9, 5, 3], rng=1, dtype=np.float64)
    r = fisher_prices(model, X, y, price=0.3, n_fisher=1100, seed=4)
    idx = np.sort(np.random.default_rng(4).choice(1200, 1100, replace=False))
    f = np.array(mean_fisher(model, "ce", X[idx], y[idx]))            # one pass = the chunked mean
    np.testing.assert_allclose(r["fisher"], f, rtol=1e-12)
    layers = weight_layers(gated_mlp([6, 9, 5, 3], rng=1))
    sizes = np.array([sum(a.size for a in layer.params.values()) for layer in layers])
    lam = [sizes[q] / sum(float(np.sum(a ** 2)) for a in layer.params.values())
           for q, layer in enumerate(model.layers[::2])]
    np.testing.assert_allclose(r["lam"], lam, rtol=1e-12)
    np.testing.assert_allclose(r["rate"], F.fisher_rate(f, lam, 1200), rtol=1e-12)
    assert np.isclose(np.dot(r["price"], sizes), 0.3 * sizes.sum())
