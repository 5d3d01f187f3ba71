"""Conflicting bundles: the definition, the hashing implementation against the pairwise oracle, and P1–P5
(bundles.md §6). float64 for the theory checks, float32 where the definition (the grid B1) requires it."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from minigrow.methods.bundles import (BundleDivergenceError, bundle_stats, bundles, bundles_pairwise,
                              check_p1_accuracy_bound, check_p2_loss_bound, check_p3_gradient_cancellation,
                              check_p4_depth_monotonicity, check_p5_dead_layer, format_report, group_rows, hidden_activations,
                              label_entropy, layer_report, logits_distinct, majority_share, quantize,
                              weight_amplitude)
from minigrow.layers import Dense, ReLU, Sequential
from minigrow.network import mlp, residual_mlp
from minigrow.optim import Adam
from minigrow.train import Trainer


def blobs(n=150, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.standard_normal((n, 2)) + np.array([[2, 0], [-1, 1.7], [-1, -1.7]])[y]
    return X, y


@pytest.fixture(scope="module")
def trained_bottleneck():
    """A small float64 ReLU net with a width-1 bottleneck: the samples with a negative bottleneck
    pre-activation collapse into one conflicting bundle (a non-trivial case for P1–P4)."""
    X, y = blobs()
    m = mlp([2, 16, 1, 16, 3], "relu", init="he", rng=1, dtype=np.float64)
    Trainer(m, "ce", Adam(1e-2), batch_size=None, rng=0, progress=False, dtype=np.float64).fit(X, y, 200)
    return m, X, y


# ---- 1. a zero/dead layer: one bundle, H = label entropy, acc_max = majority share -----------------------------
@pytest.mark.parametrize("grid", [True, False])
def test_zero_layer_is_one_bundle(grid):
    y = np.array([0, 0, 0, 1, 1, 2, 0, 1])
    a = np.zeros((8, 5), dtype=np.float32)
    a[::2] = -0.0                                             # −0.0 and +0.0 are the same activation
    b = bundles(a, y, w_max=0.3, grid=grid)
    assert b.n_bundles == 1
    p = np.array([4, 3, 1]) / 8
    assert b.entropy == pytest.approx(-(p * np.log(p)).sum(), abs=1e-14)
    assert b.entropy == pytest.approx(label_entropy(y), abs=1e-14)
    assert b.acc_max == majority_share(y) == 0.5
    assert b.conflicting and b.n_conflicting == 1 and b.sizes.tolist() == [8]


# ---- 2. distinct inputs through an identity: N bundles, H = 0 exactly -------------------------------------------
def test_identity_keeps_every_sample_apart():
    rng = np.random.default_rng(0)
    N, d = 64, 6
    X = 1.0 + rng.permutation(N * d).reshape(N, d) * 0.1          # positive, distinct by ≥ 0.1 ≫ γ
    y = rng.integers(0, 4, N)
    model = Sequential([Dense(d, d, init="identity"), ReLU(), Dense(d, 4, rng=0)])
    rep = layer_report(model, X, y, lr=1e-3, batch_size=64)
    assert len(rep) == 1 and rep[0].n_bundles == N
    assert rep[0].entropy == 0.0 and rep[0].acc_max == 1.0 and not rep[0].conflicting


def test_pure_bundles_give_exactly_zero_entropy():
    a = np.repeat(np.arange(10.0)[:, None], 7, axis=0)           # 10 bundles of 7 equal rows
    y = np.repeat(np.arange(10) % 3, 7)                            # each bundle pure
    b = bundles(a, y, grid=False)
    assert b.n_bundles == 10 and b.entropy == 0.0 and b.acc_max == 1.0


# ---- 3. hashing == pairwise oracle on tensors with many ties; permutation invariance ----------------------------
tie_rows = hnp.arrays(np.float32, st.tuples(st.integers(1, 60), st.integers(1, 4)),
                      elements=st.sampled_from([-1.0, 0.0, -0.0, 1.0, 0.5]))


@given(q=tie_rows, seed=st.integers(0, 2 ** 16))
def test_hashing_matches_pairwise_oracle(q, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, q.shape[0])
    fast = bundle_stats(group_rows(q), y, n_classes=3)
    slow = bundles_pairwise(q, y, n_classes=3)
    assert np.array_equal(fast.assignment, slow.assignment)
    assert np.array_equal(fast.counts, slow.counts)
    assert fast.n_bundles == slow.n_bundles and fast.n_conflicting == slow.n_conflicting
    assert fast.entropy == pytest.approx(slow.entropy, abs=1e-12)
    assert fast.acc_max == slow.acc_max


@given(q=tie_rows, seed=st.integers(0, 2 ** 16))
def test_bundles_are_permutation_invariant(q, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, q.shape[0])
    perm = rng.permutation(q.shape[0])
    b, bp = bundles(q, y, grid=False), bundles(q[perm], y[perm], grid=False)
    assert (b.n_bundles, b.n_conflicting, b.acc_max) == (bp.n_bundles, bp.n_conflicting, bp.acc_max)
    assert b.entropy == pytest.approx(bp.entropy, abs=1e-12)
    # the same pairs of samples share a bundle
    same = b.assignment[:, None] == b.assignment[None, :]
    same_p = bp.assignment[:, None] == bp.assignment[None, :]
    assert np.array_equal(same[np.ix_(perm, perm)], same_p)


def test_hashing_matches_oracle_on_network_activations():
    X, y = blobs(300)
    m = mlp([2, 8, 8, 3], "relu", init="he", rng=3)
    w = weight_amplitude(m)
    for name, kind, idx, a in hidden_activations(m, X):
        assert np.array_equal(bundles(a, y, w).assignment, bundles_pairwise(quantize(a, w), y).assignment)


# ---- 4. the dtype and the order of operations are part of the definition -----------------------------------------
def test_float32_and_float64_grids_give_different_counts():
    a = 1.0 + 1e-7 * np.arange(100)[:, None] * np.ones((1, 3))   # differences far below γ32, far above γ64
    y = np.arange(100) % 2
    b32 = bundles(a, y, w_max=1.0, lr=1e-3, batch_size=64, dtype=np.float32)
    b64 = bundles(a, y, w_max=1.0, lr=1e-3, batch_size=64, dtype=np.float64)
    assert b32.n_bundles == 1 and b64.n_bundles == 100
    assert b32.entropy == pytest.approx(np.log(2)) and b64.entropy == 0.0


def test_quantize_follows_the_authors_order_of_float32_operations():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, 7)).astype(np.float32) * 3
    w = np.float32(0.731)
    lr, B = 3e-3, 48                                            # 1/B not a power of two: the order matters
    expect = np.empty_like(a)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            t = np.float32(a[i, j] * np.float32(lr))            # fl32(a·η)
            t = np.float32(t * np.float32(1.0 / B))             # fl32(·(1/B))
            expect[i, j] = np.float32(w - t)                    # fl32(W_max − ·)
    q = quantize(a, w, lr, B)
    assert q.dtype == np.float32 and np.array_equal(q.view(np.uint32), expect.view(np.uint32))


def test_weight_amplitude_is_model_wide_and_skips_frozen():
    m = mlp([3, 4, 2], rng=0)
    m.layers[2].params["b"][:] = [0.0, -7.5]                    # the largest |w| sits in the output bias
    assert weight_amplitude(m) == np.float32(7.5)
    m.layers[2].frozen.add("b")
    assert weight_amplitude(m) < 7.5
    assert weight_amplitude(m).dtype == np.float32


def test_nan_activations_raise_divergence_error():
    a = np.ones((4, 3), dtype=np.float32)
    a[2, 1] = np.nan
    with pytest.raises(BundleDivergenceError, match="diverged"):
        bundles(a, np.array([0, 1, 0, 1]), w_max=1.0)
    with pytest.raises(BundleDivergenceError, match="diverged"):
        group_rows(np.array([[np.inf], [1.0]]))
    m = mlp([2, 4, 2], rng=0)
    m.layers[0].params["W"][0, 0] = np.nan
    with pytest.raises(BundleDivergenceError, match="diverged"):
        layer_report(m, np.ones((3, 2)), np.array([0, 1, 0]))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="w_max"):
        bundles(np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValueError, match="lr"):
        quantize(np.zeros((2, 2)), 1.0, lr=0)
    with pytest.raises(ValueError, match="labels"):
        bundles(np.zeros((2, 2)), [0, 1, 1], grid=False)


# ---- per-layer reports: every hidden layer of an FNN; branch and block outputs of a residual net ---------------
def test_reports_cover_hidden_layers_and_residual_parts():
    X, y = blobs(50)
    rep = layer_report(mlp([2, 5, 6, 7, 3], rng=0), X, y)
    assert [r.name for r in rep] == ["hidden 0", "hidden 1", "hidden 2"]
    rep = layer_report(residual_mlp(2, 4, 2, 3, "relu", rng=0), X, y)
    assert [(r.name, r.kind) for r in rep] == [("hidden 0", "hidden"), ("block 0 branch", "branch"),
                                               ("block 0", "block"), ("block 1 branch", "branch"),
                                               ("block 1", "block")]
    assert "acc_max" in format_report(rep)
    last = layer_report(residual_mlp(2, 4, 2, 3, "relu", rng=0), X, y, last_only=True)
    assert [r.name for r in last] == ["block 1"]


# ---- 5. P1–P5 on trained networks --------------------------------------------------------------------------------
def test_p1_accuracy_bound(trained_bottleneck):
    m, X, y = trained_bottleneck
    c = check_p1_accuracy_bound(m, X, y)
    assert c.bound < 0.9                     # the bound is not trivial: a conflicting bundle exists
    assert c.holds and c.observed <= c.bound


def test_p2_loss_bound_and_equality_case(trained_bottleneck):
    m, X, y = trained_bottleneck
    c = check_p2_loss_bound(m, X, y)
    assert c.bound > 0.1 and c.holds and c.observed >= c.bound
    # equality when every bundle outputs its label distribution: CE(ln p̂_b) = H
    b = layer_report(m, X, y, grid=False)[-1].bundles
    p_hat = b.counts / b.sizes[:, None]
    with np.errstate(divide="ignore"):
        ce = -np.log(p_hat[b.assignment, y]).mean()
    assert ce == pytest.approx(b.entropy, abs=1e-12)


def test_p3_gradient_cancellation(trained_bottleneck):
    m, X, y = trained_bottleneck
    b = layer_report(m, X, y, grid=False)[-1]
    c = check_p3_gradient_cancellation(logits_distinct(m, X), y, b.assignment)
    assert c.holds and c.details["n_conflicting"] >= 1
    assert c.details["summed_norm_at_opt"] < 1e-12 < c.details["per_sample_norm_at_opt"]
    # the trained net sits close to the optimum of its conflicting bundle: strong cancellation
    assert c.details["cancellation_ratio"] < 0.2
    # the identity check can fail: wrong logits for one bundle member
    z = logits_distinct(m, X).copy()
    i = int(np.flatnonzero(b.assignment == b.assignment[np.argmax(b.sizes[b.assignment])])[1])
    z[i, 0] += 1.0                                           # (a shift of all logits would not count)
    assert not check_p3_gradient_cancellation(z, y, b.assignment).holds


def test_p4_depth_monotonicity(trained_bottleneck):
    m, X, y = trained_bottleneck
    rep = layer_report(m, X, y, grid=False)
    c = check_p4_depth_monotonicity(rep)
    assert c.holds and c.details["n_bundles"][0] > c.details["n_bundles"][-1]
    # and the check can fail: a report in the wrong order is not nested
    assert not check_p4_depth_monotonicity(rep[::-1]).holds


def test_p4_collapsed_deep_net():
    X, y = blobs(120)
    m = mlp([2] + [4] * 30 + [3], "relu", init="he", rng=0, dtype=np.float64)
    rep = layer_report(m, X, y, grid=False)
    c = check_p4_depth_monotonicity(rep)
    assert c.holds
    assert rep[-1].n_bundles == 1 and rep[-1].entropy == pytest.approx(label_entropy(y), abs=1e-14)


def test_p5_dead_layer_blocks_all_gradients():
    X, y = blobs(90)
    m = mlp([2, 8, 8, 3], "relu", init="he", rng=0, dtype=np.float64)
    m.layers[2].params["b"][:] = -100.0                     # second hidden layer dead on every sample
    c = check_p5_dead_layer(m, X, y, layer_index=3)
    assert c.holds and c.observed == 0.0 and c.details["max_grad_above"] > 0
    assert c.details["entropy"] == pytest.approx(label_entropy(y), abs=1e-14)
    # training cannot change the layers below; the net learns the class prior only
    W0 = m.layers[0].params["W"].copy()
    Trainer(m, "ce", Adam(1e-2), batch_size=None, rng=0, progress=False, dtype=np.float64).fit(X, y, 300)
    assert np.array_equal(W0, m.layers[0].params["W"])
    p = np.exp(m.predict_logits(X))
    p /= p.sum(1, keepdims=True)
    assert np.allclose(p, np.bincount(y) / len(y), atol=0.02)
    # a live layer is not reported as dead
    m2 = mlp([2, 8, 8, 3], "relu", init="he", rng=0, dtype=np.float64)
    assert not check_p5_dead_layer(m2, X, y, layer_index=3).holds


def test_fingerprint_collisions_fall_back_to_the_exact_path():
    import minigrow.methods.bundles.formulas as B
    rng = np.random.default_rng(0)
    q = rng.integers(0, 3, (200, 5)).astype(np.float32)
    expect = bundles_pairwise(q, np.zeros(200, dtype=int)).assignment
    saved = B._MULT.get(5)
    B._MULT[5] = np.zeros((5, 2), dtype=np.uint32)            # every fingerprint collides
    try:
        assert np.array_equal(group_rows(q), expect)
    finally:
        if saved is None:
            B._MULT.pop(5)
        else:
            B._MULT[5] = saved
    assert np.array_equal(group_rows(q), expect)
