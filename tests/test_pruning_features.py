"""Feature gates behind a flatten (add_gates(feature_gate=True), pruning.md §6): the selecting gate mid-network, its
estimators, removal with channel compaction, the presence price of the conv in front, saving, the CLI. float64 for
the exact checks."""
import itertools
import json

import numpy as np
import pytest

import minigrow as mg
from minigrow import surgery
from minigrow.convnets import lenet5
from minigrow.gradcheck import numerical_gradient, rel_error
from minigrow.layers import Conv2D, Dense, Flatten, MaxPool2d, ReLU, Select, Sequential
from minigrow.losses import SoftmaxCrossEntropy
from minigrow.optim import Adam
from minigrow.methods.pruning import (PLAIN_SETTINGS, Gate, PruningTrainer, add_gates, exact_expectation,
                                      flip_cv_gradient, flip_gradient, forward_with_gates, gate_sites, gates,
                                      layer_precisions, pathwise_gradient, price_rates,
                                      price_sizes, prior_cost, prior_theta_grad, prune, remove_units, sample_gates,
                                      set_gates, to_deterministic, weight_layers, widths)
from minigrow.methods.pruning import formulas as F
from minigrow.methods.pruning.prior import add_prior_weight_grads

CE = SoftmaxCrossEntropy()

from test_pruning_conv import data, flip_oracle           # noqa: E402  (the same tiny data and loop oracle)


def tiny_feat(seed=0, c1=2, c2=2, h=2, pad=1):
    """Conv 3×3 → ReLU → pool → [channel gate] → Conv 3×3 → ReLU → pool → Flatten → [feature gate] → Dense → ReLU →
    [gate] → Dense, on 1×10×10 images; the flatten has c2·2·2 features (pad=1) or c2 (pad=0)."""
    kw = dict(dtype=np.float64)
    m = Sequential([Conv2D(1, c1, 3, rng=seed, **kw), ReLU(), MaxPool2d(2),
                    Conv2D(c1, c2, 3, padding=pad, rng=seed + 1, **kw), ReLU(), MaxPool2d(2), Flatten(),
                    Dense(c2 * (4 if pad else 1), h, rng=seed + 2, **kw), ReLU(), Dense(h, 3, rng=seed + 3, **kw)])
    return add_gates(m, feature_gate=True)


def test_add_gates_feature_gate_on_lenet5_replaces_the_conv2_channel_gate():
    m = lenet5("caffe", rng=0, dtype=np.float64)
    X = np.random.default_rng(0).standard_normal((3, 1, 28, 28))
    ref = m(X)
    add_gates(m, feature_gate=True)
    names = [type(layer).__name__ for layer in m.layers]
    assert names == ["Conv2D", "ReLU", "MaxPool2d", "Gate", "Conv2D", "ReLU", "MaxPool2d", "Flatten", "Gate", "Dense",
                     "ReLU", "Gate", "Dense"]
    assert widths(m) == [20, 800, 500] and gates(m)[1].n_inputs == 800
    s = gate_sites(m)[1]
    assert s.producer is None and s.feeder is m.layers[4] and s.consumer is m.layers[9]
    np.testing.assert_array_equal(m(X), ref)
    add_gates(m, feature_gate=True)                        # idempotent
    assert widths(m) == [20, 800, 500]


def test_selecting_gate_mid_network_backward_scatters_into_the_full_width():
    """Gradients of the whole gated net (parameters and input) by centred differences after some features were
    removed (the gate reads 5 of its 8 inputs), float64."""
    m = tiny_feat(1)
    X, y, rng = data(1)
    for g in gates(m):
        g.theta[:] = rng.uniform(0.3, 1.0, g.n_units)
    remove_units(m, 1, [0, 2, 3, 5, 7])
    assert gates(m)[1].n_units == 5 and gates(m)[1].n_inputs == 8
    g = gates(m)[1]
    f = lambda: CE.forward(m.forward(X, True), y)          # noqa: E731
    f()
    dx = m.backward(CE.backward())
    for layer in m.layers:
        for k, v in layer.params.items():
            assert rel_error(layer.grads[k], numerical_gradient(f, v)) < 1e-7
    assert rel_error(dx, numerical_gradient(f, X)) < 1e-7
    # the gate alone: ∂L/∂A is zero at the unread features
    a = np.random.default_rng(2).standard_normal((4, 8))
    g.forward(a, True)
    full = g.backward(np.ones((4, 5)))
    assert full.shape == (4, 8) and np.all(full[:, [1, 4, 6]] == 0)
    np.testing.assert_array_equal(full[:, g.index], np.tile(g.theta, (4, 1)))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("removed", [False, True])
def test_feature_flip_equals_loop_oracle(seed, removed):
    m = tiny_feat(seed)
    X, y, rng = data(seed + 10)
    for g in gates(m):
        g.theta[:] = 0.5
    if removed:
        remove_units(m, 1, [1, 2, 6])
    sample_gates(m, X.shape[0], rng)
    m.forward(X, True)
    for p in range(3):
        per = flip_gradient(m, p, y, CE, max_elements=2 * X.shape[0] * 3, per_sample=True)
        np.testing.assert_allclose(per, flip_oracle(m, X, y, p), rtol=1e-9, atol=1e-13)
        sub = flip_gradient(m, p, y, CE, n_samples=np.array([0, 3]))
        np.testing.assert_allclose(sub, flip_oracle(m, X, y, p)[[0, 3]].mean(axis=0), rtol=1e-9, atol=1e-13)


def test_exact_enumeration_of_feature_gates_equals_the_flip_mean():
    """2 conv1 channels, 2 channels × 2×2 = 8 flattened features, 2 dense units: 12 gates, 4096 patterns."""
    m = tiny_feat(0)
    X, y, rng = data(1)
    for g in gates(m):
        g.theta[:] = rng.uniform(0.2, 0.8, g.n_units)
    _, exact = exact_expectation(m, X, y, CE)
    sizes = widths(m)
    assert sizes == [2, 8, 2]
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


def test_pathwise_and_flip_cv_on_feature_gates():
    m = tiny_feat(3)
    X, y, rng = data(3, n=6)
    for g in gates(m):
        g.theta[:] = 0.6
    remove_units(m, 1, [0, 1, 3, 4, 7])
    sample_gates(m, 6, rng)
    CE.forward(m.forward(X, True), y)
    m.backward(CE.backward())
    xi = gates(m)[1].xi
    num = numerical_gradient(lambda: CE.forward(m.forward(X, True), y), xi).sum(axis=0)
    CE.forward(m.forward(X, True), y)
    m.backward(CE.backward())
    assert rel_error(pathwise_gradient(m, 1), num) < 1e-7
    np.testing.assert_allclose(flip_cv_gradient(m, 1, y, CE, 6), flip_gradient(m, 1, y, CE), rtol=1e-9, atol=1e-14)


def _trained_step(m, X, y, rng):
    opt = Adam(1e-2)
    sample_gates(m, X.shape[0], rng)
    CE.forward(m.forward(X, True), y)
    m.backward(CE.backward(), need_input_grad=False)
    opt.step(m)
    return opt


def test_feature_removal_compacts_channels_and_equals_the_gated_net():
    """Removing features slices the gate and fc1's columns (with Adam state); a conv2 channel none of whose H·W
    features is kept is removed physically (kernels, bias, state, the Flatten's shape) and the gate's features are
    renumbered; the shrunk net equals the gated net with ξ = θ (1e-12)."""
    m = tiny_feat(4, c1=3, c2=4, h=3)
    X, y, rng = data(4)
    opt = _trained_step(m, X, y, rng)
    gates(m)[0].theta[:] = [1, 0, 1]
    gates(m)[1].theta[:] = 0.0
    gates(m)[1].theta[[1, 2, 9, 12, 15]] = 1.0             # channel 0: 2 features, 1: none, 2: 1, 3: 2
    gates(m)[2].theta[:] = [1, 0, 1]
    full = forward_with_gates(m, X, [g.theta for g in gates(m)])
    conv2, dense1 = weight_layers(m)[1:3]
    w_state, d_state = conv2.state["W"]["m"].copy(), dense1.state["W"]["m"].copy()
    prune(m, eps=0.0)
    assert widths(m) == [2, 5, 2]
    g = gates(m)[1]
    assert g.n_inputs == 12 and g.index.tolist() == [1, 2, 5, 8, 11]          # channels 0, 2, 3 → 0, 1, 2
    assert g.unit_ids.tolist() == [1, 2, 9, 12, 15]                          # the original feature numbers stay
    assert conv2.params["W"].shape == (3, 2, 3, 3) and conv2.state["W"]["m"].shape == (3, 2, 3, 3)
    np.testing.assert_array_equal(conv2.state["W"]["m"], w_state[[0, 2, 3]][:, [0, 2]])
    np.testing.assert_array_equal(dense1.state["W"]["m"], d_state[[0, 2]][:, [1, 2, 9, 12, 15]])
    assert m.layers[7].in_shape == (3, 2, 2)
    np.testing.assert_allclose(m(X), full, rtol=0, atol=1e-12)
    det, ids = to_deterministic(m)
    assert ids is None and not gates(det)
    assert [layer.index.tolist() for layer in det.layers if isinstance(layer, Select)] == [[1, 2, 5, 8, 11]]
    np.testing.assert_allclose(det(X), full, rtol=0, atol=1e-12)
    opt.step(m)                                              # the optimiser state fits


def test_to_deterministic_keeps_a_select_layer_and_saves_exactly(tmp_path):
    m = tiny_feat(5, c1=3, c2=3, h=3)
    X, y, rng = data(5)
    _trained_step(m, X, y, rng)
    gates(m)[1].theta[:] = [1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 1]     # channel 1 loses all its features
    full = forward_with_gates(m, X, [g.theta for g in gates(m)])
    det, ids = to_deterministic(m)
    assert ids is None
    names = [type(layer).__name__ for layer in det.layers]
    assert "Gate" not in names and names[7] == "Select"
    assert det.layers[7].n_inputs == 8 and det.layers[7].index.tolist() == [0, 3, 4, 5, 7]
    np.testing.assert_allclose(det(X), full, rtol=0, atol=1e-12)
    for net, name in ((m, "gated"), (det, "det")):
        mg.save(tmp_path / f"{name}.npz", net)
        back = mg.load(tmp_path / f"{name}.npz")["model"]
        np.testing.assert_array_equal(back(X), net(X))
    prune(m, eps=0.0)                                        # compacted: conv2 2 channels, the gate 5 of 8
    assert m.layers[7].in_shape == (2, 2, 2) and gates(m)[1].n_inputs == 8
    np.testing.assert_allclose(m(X), full, rtol=0, atol=1e-12)
    mg.save(tmp_path / "gated.npz", m)
    back = mg.load(tmp_path / "gated.npz")["model"]
    np.testing.assert_array_equal(back(X), m(X))
    for g, h in zip(gates(m), gates(back)):
        assert g.n_inputs == h.n_inputs
        np.testing.assert_array_equal(g.unit_ids, h.unit_ids)
        assert (g.index is None) == (h.index is None)
        if g.index is not None:
            np.testing.assert_array_equal(g.index, h.index)
        np.testing.assert_array_equal(g.theta, h.theta)


def test_surgery_on_the_conv_renumbers_the_selecting_gate_and_drops_its_features_of_removed_channels():
    """The general hook: removing a conv2 channel that still has kept features through minigrow.surgery drops
    them from the gate (θ, ids) and fc1's columns, and the net equals the gated net with those features closed."""
    m = tiny_feat(6, c1=2, c2=3, h=2)
    X, y, rng = data(6)
    remove_units(m, 1, [0, 2, 5, 6, 9, 11])                  # channel 0: 0, 2; 1: 5, 6; 2: 9, 11
    g = gates(m)[1]
    g.theta[:] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    closed = g.theta.copy()
    closed[[2, 3]] = 0
    ref = forward_with_gates(m, X, [gates(m)[0].theta, closed, gates(m)[2].theta])
    surgery.remove_units(Sequential(list(m.layers)), 4, [0, 2])
    assert g.index.tolist() == [0, 2, 5, 7] and g.n_inputs == 8 and g.theta.tolist() == [0.3, 0.4, 0.7, 0.8]
    assert g.unit_ids.tolist() == [0, 2, 9, 11]
    assert weight_layers(m)[2].params["W"].shape == (2, 4)
    np.testing.assert_allclose(m(X), ref, rtol=0, atol=1e-12)


def test_channel_presence_and_its_derivative():
    rng = np.random.default_rng(0)
    th = rng.uniform(0, 1, 9)
    th[[2, 6]] = [1.0, 0.0]
    ch, pos = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2]), np.array([0, 1, 3, 0, 2, 0, 1, 2, 3])
    P, d = F.channel_presence(th, ch, pos, 4, 4)
    for c in range(4):
        assert P[c] == pytest.approx(1 - np.prod(1 - th[ch == c]), abs=1e-15)
    assert P[3] == 0
    for j in range(9):
        others = (ch == ch[j]) & (np.arange(9) != j)
        assert d[j] == pytest.approx(np.prod(1 - th[others]), abs=1e-15)


def _randomise(m, rng, lo=0.1, hi=0.9):
    for g in gates(m):
        g.theta[:] = rng.uniform(lo, hi, g.n_units)


@pytest.mark.parametrize("price_on", ["params", "flops", "incoming"])
@pytest.mark.parametrize("price", [0.7, (0.7, 2.5, 0.3, 1.1)])
@pytest.mark.parametrize("removed", [False, True])
def test_feature_price_is_the_derivative_of_the_prior_cost(price_on, price, removed):
    """price_rates (through prior_theta_grad) = ∂ prior_cost/∂θ by centred differences for every gate, float64 —
    the feature gate included (its channel term Π_{k'≠k}(1 − θ_ck')) — and the weight prior's gradient too."""
    m = tiny_feat(7, c1=3, c2=3, h=3)
    X, y, rng = data(7)
    m(X)                                                  # spatial sizes for the flops
    if removed:
        remove_units(m, 1, [0, 1, 4, 6, 9, 10, 11])
    _randomise(m, rng)
    gates(m)[1].theta[1] = 1.0                            # exact at θ = 1 too (no division)
    N = 50
    lams = layer_precisions(m)
    f = lambda: prior_cost(m, lams, price, N, price_on)  # noqa: E731
    for p in range(3):
        num = numerical_gradient(f, gates(m)[p].theta)
        assert rel_error(prior_theta_grad(m, p, lams, price, N, price_on), num) < 1e-8, p
    m.zero_grad()
    add_prior_weight_grads(m, lams, N)
    for layer in weight_layers(m):
        for k, v in layer.params.items():
            assert rel_error(layer.grads[k], numerical_gradient(f, v)) < 1e-7


def test_feature_price_sizes_by_hand():
    """params: feature (c, k) pays its fc1 column (h units) + (conv2 kernel 9·Σθ_conv1 + bias) × Π_{k'≠k}(1 − θ_ck');
    conv1's filters pay 9·Σ_c E[present_c] for their outgoing kernels."""
    m = tiny_feat(8, c1=2, c2=2, h=3)
    m(data(8)[0])
    th = np.array([0.5, 1.0, 0.0, 0.25, 0.0, 0.0, 0.0, 0.0])
    gates(m)[1].theta[:] = th
    gates(m)[0].theta[:] = [1.0, 0.5]
    c_cost = 9 * 1.5 + 1
    expect = 3 + c_cost * np.array([0.0, 0.375, 0.0, 0.0, 1, 1, 1, 1])   # θ_01 = 1 closes the others
    np.testing.assert_allclose(price_sizes(m, 1, "params"), expect, rtol=1e-14)
    present = 1 + 0                                       # channel 0: 1 − 0.5·0·1·0.75 = 1; channel 1: 0
    np.testing.assert_allclose(price_sizes(m, 0, "params"), 9 * 1 + 1 + 9 * present, rtol=1e-14)
    np.testing.assert_allclose(price_rates(m, 1, 2.0, "params"), 2.0 * expect, rtol=1e-14)


def test_at_a_vertex_the_price_counts_parameters_and_multiply_adds_of_the_pruned_net():
    m = tiny_feat(9, c1=3, c2=4, h=3)
    X, *_ = data(9)
    m(X)
    gates(m)[0].theta[:] = [1, 0, 1]
    gates(m)[1].theta[:] = 0.0
    gates(m)[1].theta[[0, 3, 8, 14]] = 1.0                 # channels 0, 2, 3 present, 1 gone
    gates(m)[2].theta[:] = [0, 1, 1]
    zero = {q: 0.0 for q in range(4)}
    final, _ = to_deterministic(m)
    final(X)
    assert prior_cost(m, zero, 1.0, 1, "params") == pytest.approx(final.n_params(), rel=1e-14)
    assert prior_cost(m, zero, 1.0, 1, "flops") == pytest.approx(final.macs(), rel=1e-14)
    prune(m, eps=0.0)
    m(X)
    assert m.n_params() == final.n_params() and m.macs() == final.macs()
    assert prior_cost(m, zero, 1.0, 1, "params") == pytest.approx(final.n_params(), rel=1e-14)
    assert prior_cost(m, zero, 1.0, 1, "flops") == pytest.approx(final.macs(), rel=1e-14)


def test_a_channel_gate_and_a_feature_gate_on_the_same_conv_are_refused():
    m = tiny_feat(10)
    conv_gate = Gate(2, dtype=np.float64)
    m.insert(6, conv_gate)                                 # behind conv2's pool, in front of the flatten
    with pytest.raises(ValueError, match="feature gate"):
        price_sizes(m, 2, "params")


def test_trainer_prunes_features_and_compacts_channels():
    X, y, _ = data(11, n=12)
    for est in ("flip", "flip_cv", "pathwise"):
        m = tiny_feat(11, c1=3, c2=3, h=3)
        tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=6, rng=0, settings=PLAIN_SETTINGS, estimator=est,
                            price=5.0, eta_theta=0.5, warmup_epochs=0, dtype=np.float64, progress=False,
                            price_on="params")
        tr.fit(X, y, 3)
        assert widths(m)[1] < 12
        g = gates(m)[1]
        conv2 = weight_layers(m)[1]
        assert g.n_inputs == 4 * conv2.out_units
        assert np.unique(g.index // 4).size == conv2.out_units        # every channel left has a kept feature
        final, _ = tr.finalize()
        final(X)


def test_cli_prune_lenet5_feature_gates_end_to_end(tmp_path):
    from minigrow.cli import main
    assert main(["prune", "lenet5", "--feature-gates", "--n-train", "300", "--n-test", "100", "--epochs", "1",
                 "--warmup", "0", "--price", "0.05", "--no-dense", "--out", str(tmp_path), "--no-progress", "--tag", "_fg"]) == 0
    res = json.loads((tmp_path / "results" / "pruning_lenet5_features_fg.json").read_text())
    assert (tmp_path / "figures" / "pruning_lenet5_features_fg_widths.png").exists()
    assert "--feature-gates" in res["command"] and res["feature_gates"] is True
    row = res["rows"][0]
    c1, c2, fc1, fc2 = row["widths"]
    assert 1 <= c1 <= 20 and 1 <= c2 <= 50 and c2 <= fc1 <= 16 * c2 and 1 <= fc2 <= 500
    assert all(len(w) == 4 for w in row["widths_per_epoch"])
    assert row["n_params"] > 0 and row["macs"] > 0


@pytest.mark.parametrize("removed", [False, True])
def test_params_plus_flops_price_is_the_sum_and_the_derivative_of_its_cost(removed):
    """price_on="params+flops" with price (γ_P, γ_F): prior cost = γ_P P + γ_F F (+ the λ term once), rates = the
    sum of the two rates = ∂ prior_cost/∂θ (centred differences, float64), at a vertex γ_P·params + γ_F·MACs."""
    m = tiny_feat(12, c1=3, c2=3, h=3)
    X, y, rng = data(12)
    m(X)
    if removed:
        remove_units(m, 1, [0, 2, 3, 7, 8, 11])
    _randomise(m, rng)
    N, price = 50, (0.7, 0.01)
    lams = layer_precisions(m)
    zero = {q: 0.0 for q in lams}
    both = prior_cost(m, lams, price, N, "params+flops")
    assert both == pytest.approx(prior_cost(m, lams, 0.7, N, "params") + prior_cost(m, zero, 0.01, N, "flops"),
                                 rel=1e-13)
    f = lambda: prior_cost(m, lams, price, N, "params+flops")  # noqa: E731
    for p in range(3):
        rates = price_rates(m, p, price, "params+flops")
        np.testing.assert_allclose(rates, price_rates(m, p, 0.7, "params") + price_rates(m, p, 0.01, "flops"),
                                   rtol=1e-14)
        num = numerical_gradient(f, gates(m)[p].theta)
        assert rel_error(prior_theta_grad(m, p, lams, price, N, "params+flops"), num) < 1e-8
    for g in gates(m):
        g.theta[:] = (rng.random(g.n_units) < 0.6)
        g.theta[0] = 1.0
    final, _ = to_deterministic(m)
    final(X)
    assert prior_cost(m, zero, (2.0, 0.5), 1, "params+flops") == pytest.approx(
        2.0 * final.n_params() + 0.5 * final.macs(), rel=1e-14)
    with pytest.raises(ValueError, match="pair"):
        prior_cost(m, lams, 0.7, N, "params+flops")
    with pytest.raises(ValueError, match="two prices"):
        price_sizes(m, 1, "params+flops")


def test_trainer_and_cli_accept_params_plus_flops(tmp_path):
    from minigrow.cli import main
    X, y, _ = data(13, n=12)
    m = tiny_feat(13)
    tr = PruningTrainer(m, "ce", Adam(1e-2), batch_size=6, rng=0, settings=PLAIN_SETTINGS, price_on="params+flops",
                        price=(2.0, 0.05), eta_theta=0.5, warmup_epochs=0, dtype=np.float64, progress=False)
    tr.fit(X, y, 2)
    assert sum(widths(m)) < 12
    with pytest.raises(ValueError, match="pair"):
        PruningTrainer(tiny_feat(13), "ce", Adam(1e-2), settings=PLAIN_SETTINGS, price_on="params+flops", price=1.0)
    assert main(["prune", "lenet5", "--feature-gates", "--price-on", "params+flops", "--price", "0.04,0.0075",
                 "--n-train", "200", "--n-test", "100", "--epochs", "1", "--warmup", "0", "--no-dense",
                 "--out", str(tmp_path), "--no-progress", "--no-plots"]) == 0
    res = json.loads((tmp_path / "results" / "pruning_lenet5_features.json").read_text())
    assert res["settings"]["price_on"] == "params+flops" and res["settings"]["price"] == [0.04, 0.0075]
    assert "--price-on params+flops" in res["command"] and "--price 0.04,0.0075" in res["command"]


def test_lenet5_widths_with_a_feature_gate_count_present_channels_and_kept_features():
    from minigrow.experiments.pruning import lenet5_widths
    m = lenet5("caffe", rng=0)
    m(np.zeros((1, 1, 28, 28), dtype=np.float32))
    add_gates(m, feature_gate=True)
    assert lenet5_widths(m) == [20, 50, 800, 500]
    keep = np.flatnonzero(np.arange(800) // 16 >= 2)[::3]   # channels 0, 1 lose every feature
    remove_units(m, 1, keep)
    assert lenet5_widths(m) == [20, 48, keep.size, 500]
    assert weight_layers(m)[1].params["W"].shape[0] == 48 and m.layers[7].in_shape == (48, 4, 4)
