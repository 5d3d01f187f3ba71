"""Conv SensLI (sensli.md §8): virtual identity conv layers, the closed form (C3), the operator norms (C5), the rules
(C6), the pass, the insertion and the loop — in float64 wherever a formula is checked."""
import copy

import numpy as np
import pytest
from hypothesis import given, strategies as st

from minigrow.methods.sensli import conv as S
from minigrow.layers import BatchNorm2d, Conv2D, Dense, Flatten, LeakyReLU, MaxPool2d, ReLU, Sequential
from minigrow.optim import SGD, Adam
from minigrow.train import Trainer

F64 = np.float64


def tiny_net(seed=0, m=(2, 3, 4), dtype=F64, extra=()):
    """vgg_small on 8×8 inputs: 8 → 4 → 2 → 1."""
    return S.vgg_small(m, head=(5,), in_hw=(8, 8), n_classes=3, extra=extra, rng=seed, dtype=dtype)


def tiny_data(seed, n=37, dtype=F64):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 8, 8)).astype(dtype), rng.integers(0, 3, n)


def trained(model, X, y, steps=3, opt=None):
    """A few steps, so that the weights (and Adam's state) are not those of a fresh init."""
    Trainer(model, "ce", opt or SGD(0.05), batch_size=16, rng=0, progress=False,
            dtype=model.dtype).fit(X, y, steps)
    return model


# --- formulas ---------------------------------------------------------------------------------------------------

def test_identity_kernel():
    K = S.identity_kernel(3, 3, F64)
    assert K.shape == (3, 3, 3, 3)
    assert K.sum() == 3 and np.all(K[:, :, 1, 1] == np.eye(3))
    assert S.identity_kernel(2, 1).shape == (2, 2, 1, 1)
    with pytest.raises(ValueError, match="odd"):
        S.identity_kernel(2, 2)


def _loop_sensitivity(delta, a, k):
    N, Co, H, W = delta.shape
    r = k // 2
    ap = np.pad(a, ((0, 0), (0, 0), (r, r), (r, r)))
    G = np.zeros((Co, a.shape[1], k, k))
    for o in range(Co):
        for c in range(a.shape[1]):
            for u in range(k):
                for v in range(k):
                    G[o, c, u, v] = np.sum(delta[:, o] * ap[:, c, u:u + H, v:v + W])
    return G


@given(seed=st.integers(0, 10_000), k=st.sampled_from([1, 3, 5]), h=st.integers(1, 7), w=st.integers(1, 7),
       co=st.integers(1, 4), ci=st.integers(1, 4), n=st.integers(1, 3))
def test_kernel_sensitivity_is_the_conv_weight_gradient(seed, k, h, w, co, ci, n):
    rng = np.random.default_rng(seed)
    a = rng.random((n, ci, h, w))
    delta = rng.standard_normal((n, co, h, w))
    G = S.kernel_sensitivity(delta, a, k)
    conv = Conv2D(ci, co, k, padding=k // 2, rng=seed, dtype=F64)
    conv.forward(a)
    conv.backward(delta, need_input_grad=False)
    np.testing.assert_allclose(G, conv.grads["W"], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(G, _loop_sensitivity(delta, a, k), rtol=1e-12, atol=1e-13)


def test_kernel_sensitivity_blocks_and_errors(monkeypatch):
    rng = np.random.default_rng(1)
    a, delta = rng.random((3, 2, 9, 7)), rng.standard_normal((3, 4, 9, 7))
    whole = S.kernel_sensitivity(delta, a)
    monkeypatch.setattr(S, "_ROW_BLOCK", 5)           # many row blocks: the same sums
    np.testing.assert_allclose(S.kernel_sensitivity(delta, a), whole, rtol=1e-13, atol=1e-14)
    with pytest.raises(ValueError, match="same batch size and spatial size"):
        S.kernel_sensitivity(delta[:, :, :8], a)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        S.kernel_sensitivity(delta[0], a)
    with pytest.raises(ValueError, match="odd"):
        S.kernel_sensitivity(delta, a, 2)


def _circular_operator(K, H, W):
    """The explicit matrix of the circular correlation x ↦ (o,i,j) ↦ Σ K[o,c,u,v] x[c,(i+u−r) mod H,(j+v−r) mod W],
    built column by column from basis images."""
    Co, Ci, kh, kw = K.shape
    rh, rw = kh // 2, kw // 2
    cols = []
    for idx in range(Ci * H * W):
        x = np.zeros(Ci * H * W)
        x[idx] = 1
        x = x.reshape(Ci, H, W)
        out = np.zeros((Co, H, W))
        for u in range(kh):
            for v in range(kw):
                xs = np.roll(x, (rh - u, rw - v), axis=(1, 2))       # xs[c,i,j] = x[c, i+u−rh, j+v−rw]
                out += np.einsum("oc,cij->oij", K[:, :, u, v], xs)
        cols.append(out.reshape(-1))
    return np.array(cols).T


def _zero_padded_operator(K, H, W):
    """The explicit matrix of Conv2D(padding k//2) (what the layers compute) on H×W, from basis images."""
    Co, Ci, k, _ = K.shape
    conv = Conv2D(Ci, Co, k, padding=k // 2, bias=False, init="zeros", dtype=F64)
    conv.params["W"][...] = K
    eye = np.eye(Ci * H * W).reshape(-1, Ci, H, W)
    return conv.forward(eye, train=False).reshape(Ci * H * W, -1).T


@given(seed=st.integers(0, 10_000), co=st.integers(1, 3), ci=st.integers(1, 3), h=st.integers(1, 6),
       w=st.integers(1, 6))
def test_op22_from_the_spatial_fft_is_the_largest_singular_value_of_the_circular_operator(seed, co, ci, h, w):
    K = np.random.default_rng(seed).standard_normal((co, ci, 3, 3))
    M = _circular_operator(K, h, w)
    s = np.linalg.svd(M, compute_uv=False)
    assert S.op22(K, (h, w)) == pytest.approx(s[0] ** 2, rel=1e-10)
    # every singular value, not just the largest (Sedghi et al.: the union over the H·W frequencies)
    np.testing.assert_allclose(np.sort(S.conv_singular_values(K, (h, w)).ravel())[::-1], s[:h * w * min(co, ci)],
                               rtol=1e-9, atol=1e-12)
    # per output channel: the operator of K[o] is the block of rows of channel o
    per = np.array([np.linalg.svd(M[o * h * w:(o + 1) * h * w], compute_uv=False)[0] for o in range(co)])
    assert S.op22_2(K, (h, w)) == pytest.approx(np.sum(per ** 2), rel=1e-10)
    assert S.op22_1(K, (h, w)) == pytest.approx(np.sum(per) ** 2, rel=1e-10)
    nm = S.kernel_norms(K, (h, w))
    assert nm["op22"] == pytest.approx(S.op22(K, (h, w)), rel=1e-12)
    assert nm["op22"] <= nm["op22_2"] * (1 + 1e-12) and nm["op22_2"] <= nm["op22_1"] * (1 + 1e-12)


def test_channel_axis_fft_is_not_the_operator_norm():
    """The authors' helper transforms axes (0, 1) of the (out, in, kh, kw) kernel: not the operator norm."""
    K = np.random.default_rng(3).standard_normal((4, 4, 3, 3))
    theirs = np.linalg.svd(np.fft.fft2(K, (3, 3), axes=[0, 1]), compute_uv=False).max() ** 2
    ours = S.op22(K, (5, 5))
    truth = np.linalg.svd(_circular_operator(K, 5, 5), compute_uv=False)[0] ** 2
    assert ours == pytest.approx(truth, rel=1e-10)
    assert abs(theirs - truth) > 1e-3 * truth


@pytest.mark.parametrize("h,w", [(3, 3), (4, 6), (7, 5)])
def test_zero_padding_is_the_circular_operator_on_a_larger_grid_restricted_to_the_interior(h, w):
    """T_zero = P C_{H+1,W+1} E exactly (a 3×3 kernel reaches one pixel beyond the image; on an (H+1)×(W+1) grid that
    pixel is a zero of the embedding, never a wrapped-around image pixel), so ‖T_zero‖² ≤ op22(K, (H+1, W+1))."""
    rng = np.random.default_rng(h * 10 + w)
    K = rng.standard_normal((2, 3, 3, 3))
    Z = _zero_padded_operator(K, h, w)
    C = _circular_operator(K, h + 1, w + 1)
    interior = lambda ch: np.array([c * (h + 1) * (w + 1) + i * (w + 1) + j      # noqa: E731
                                    for c in range(ch) for i in range(h) for j in range(w)])
    np.testing.assert_array_equal(Z, C[np.ix_(interior(2), interior(3))])
    z = np.linalg.svd(Z, compute_uv=False)[0] ** 2
    assert z <= S.op22(K, (h + 1, w + 1)) * (1 + 1e-12)


def test_norm_identities():
    rng = np.random.default_rng(0)
    K = rng.standard_normal((3, 5, 3, 3))
    grid = (6, 7)
    assert S.fro2(K) == pytest.approx(np.sum(K ** 2))
    assert S.fro2_per_entry(K) == pytest.approx(np.sum(K ** 2) / K.size)
    assert S.op22(2 * K, grid) == pytest.approx(4 * S.op22(K, grid))
    # Parseval: mean over frequencies of ‖K̂_f‖_F² = ‖K‖_F², so op22 ≥ ‖K‖_F² / min(C_out, C_in); ‖K̂_f‖ ≤ 3‖K‖_F
    assert S.fro2(K) / 3 <= S.op22(K, grid) <= 9 * S.fro2(K)
    assert S.op22(S.identity_kernel(4, 3, F64), grid) == pytest.approx(1.0)
    one = K[:1]                                        # one output channel: the three operator norms agree
    assert S.op22(one, grid) == pytest.approx(S.op22_1(one, grid)) == pytest.approx(S.op22_2(one, grid))
    with pytest.raises(ValueError, match="grid"):
        S.op22(K, (0, 2))
    with pytest.raises(ValueError, match="grid"):
        S.op22(K, None)
    with pytest.raises(ValueError, match="kernel of shape"):
        S.fro2(K[0])


def test_rules():
    s = np.array([0.3, 0.7, 0.7, 0.1])
    assert S.select(s, "abs_max") == 1                  # first index on ties
    assert S.select(s, "abs_min") == 3
    assert S.select([0.2, 0.2], "abs_min") == 0
    assert S.select(s, "fixed", position=2) == 2
    assert S.select(s, "threshold_abs") == 1            # 0.7 > 1e-4
    assert S.select([1e-4, 5e-5], "threshold_abs") is None    # not strictly above τ_abs = 1e-4
    assert S.select(s, "threshold_abs", tau_abs=0.7) is None
    assert S.select(s, "threshold_rel", denominator=0.5) == 1     # 0.7 / 0.5 > 1
    assert S.select(s, "threshold_rel", denominator=0.7) is None  # ratio exactly 1: no insertion
    assert S.select(s, "threshold_rel", denominator=0.8) is None
    with pytest.raises(ValueError, match="position"):
        S.select(s, "fixed")
    with pytest.raises(ValueError, match="position"):
        S.select(s, "fixed", position=4)
    with pytest.raises(ValueError, match="denominator"):
        S.select(s, "threshold_rel")
    with pytest.raises(ValueError, match="rule"):
        S.select(s, "argmax")
    with pytest.raises(ValueError, match="scores"):
        S.select([np.nan, 1.0], "abs_max")
    with pytest.raises(ValueError, match="non-empty"):
        S.select([], "abs_max")


# --- candidates and insertion -----------------------------------------------------------------------------------

def test_candidates_of_a_vgg_net_and_what_is_refused():
    net = tiny_net()
    cands = S.conv_candidates(net)
    assert [c.after for c in cands] == [1, 4, 7] and [c.conv for c in cands] == [0, 3, 6]
    assert [c.channels for c in cands] == [2, 3, 4]
    S.insert_virtual_conv(net, cands[1])
    assert [c.after for c in S.conv_candidates(net)] == [1, 4, 6, 9]     # the virtual conv + ReLU is a position too
    bn = Sequential([Conv2D(1, 2, 3, padding=1), BatchNorm2d(2), ReLU(), MaxPool2d(2), Flatten(), Dense(8, 2)])
    assert [c.after for c in S.conv_candidates(bn)] == [2]
    leaky = Sequential([Conv2D(1, 2, 3, padding=1), LeakyReLU(), Flatten(), Dense(32, 2)])
    with pytest.raises(ValueError, match="no Conv2D followed by a ReLU"):
        S.conv_candidates(leaky)
    with pytest.raises(TypeError, match="Sequential"):
        S.conv_candidates(Conv2D(1, 2, 3))
    with pytest.raises(ValueError, match="recompute conv_candidates"):
        S.insert_virtual_conv(tiny_net(), S.ConvCandidate(0, 0, 0, 2))


@given(seed=st.integers(0, 10_000), m=st.lists(st.integers(1, 4), min_size=3, max_size=3),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_virtual_conv_insertion_is_bit_identical(seed, m, dtype):
    X, y = tiny_data(seed, 20, dtype)
    net = trained(tiny_net(seed, tuple(m), dtype), X, y, steps=1)
    before = net.predict_logits(X)
    train_before = net.forward(X, train=True)
    for c in S.conv_candidates(net):
        ext = copy.deepcopy(net)
        i = S.insert_virtual_conv(ext, c)
        assert isinstance(ext.layers[i], Conv2D) and type(ext.layers[i + 1]) is ReLU and len(ext) == len(net) + 2
        assert np.array_equal(ext.predict_logits(X), before)
        assert np.array_equal(ext.forward(X, train=True), train_before)
        hw = (8 >> c.position, 8 >> c.position)
        assert ext.macs() - net.macs() == c.channels ** 2 * 9 * hw[0] * hw[1]     # counted before any forward


def test_insertion_keeps_every_other_layers_optimizer_state():
    X, y = tiny_data(0)
    net = trained(tiny_net(1), X, y, steps=2, opt=Adam(1e-2))
    snap = {id(layer): ({k: v.copy() for k, v in layer.params.items()},
                        {k: {s: (v.copy() if isinstance(v, np.ndarray) else v) for s, v in st_.items()}
                         for k, st_ in layer.state.items()}, {k: id(v) for k, v in layer.params.items()})
            for _, layer in net.named_layers()}
    assert any(snap[k][1] for k in snap)               # Adam left state on the existing layers
    c = S.conv_candidates(net)[2]
    i = S.insert_virtual_conv(net, c)
    new = net.layers[i]
    assert new.state == {} and id(new) not in snap
    for _, layer in net.named_layers():
        if id(layer) not in snap:
            continue
        params, state, ids = snap[id(layer)]
        assert {k: id(v) for k, v in layer.params.items()} == ids
        for k, v in params.items():
            assert np.array_equal(layer.params[k], v)
        assert set(layer.state) == set(state)
        for k, d in state.items():
            for s, v in d.items():
                assert np.array_equal(layer.state[k][s], v)
    opt = Adam(1e-2)                                   # the same optimiser object would continue; the new conv
    out = net.forward(X, train=True)                   # gets its own fresh state at its first step
    from minigrow.losses import SoftmaxCrossEntropy
    loss = SoftmaxCrossEntropy()
    loss.forward(out, y)
    net.backward(loss.backward(), need_input_grad=False)
    opt.step(net)
    t0 = snap[id(net.layers[0])][1]["W"]["t"]
    assert new.state["W"]["t"] == 1 and net.layers[0].state["W"]["t"] == t0 + 1


# --- the closed form against the extended network ---------------------------------------------------------------

@pytest.mark.parametrize("seed,batch_size,grow", [(0, 16, False), (4, None, False), (5, 10, True)])
def test_closed_form_equals_the_extended_networks_gradient(seed, batch_size, grow):
    X, y = tiny_data(seed)                             # 37 samples: an uneven last batch
    net = trained(tiny_net(seed, (3, 4, 5)), X, y, steps=3)
    if grow:                                           # a virtual conv followed by candidates of its own
        S.insert_virtual_conv(net, S.conv_candidates(net)[1])
        trained(net, X, y, steps=1)
    closed = S.sensitivity_pass(net, X, y, batch_size, free=True)
    ext = S.extended_sensitivities(net, X, y, batch_size)
    assert len(closed.grads) == (4 if grow else 3)
    for a, b, ab, bb in zip(closed.grads, ext.grads, closed.bias_grads, ext.bias_grads):
        assert np.abs(b).max() > 1e-6                   # not a vacuous comparison
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-15 * np.abs(b).max())
        np.testing.assert_allclose(ab, bb, rtol=1e-11, atol=1e-15 * np.abs(bb).max())
    np.testing.assert_allclose(closed.scores, ext.scores, rtol=1e-10)
    assert closed.grids == ext.grids


def test_threshold_rel_denominator_is_the_mean_over_the_extended_nets_conv_layers():
    X, y = tiny_data(4)
    net = trained(tiny_net(4), X, y, steps=2)
    sens = S.sensitivity_pass(net, X, y, 16, norm="fro2", free=True)
    ext, cands, index = S.extended_network(net)
    B = 3
    grads = {i: np.zeros(layer.params["W"].shape) for i, layer in enumerate(ext.layers) if isinstance(layer, Conv2D)}
    from minigrow.losses import SoftmaxCrossEntropy
    loss = SoftmaxCrossEntropy()
    for s in range(0, 37, 16):
        loss.forward(ext.forward(X[s:s + 16], train=False), y[s:s + 16])
        ext.backward(loss.backward(), need_input_grad=False)
        for i in grads:
            grads[i] += ext.layers[i].grads["W"]
    want = np.mean([S.fro2(g / B) for g in grads.values()])
    assert len(grads) == 6 and sens.denominator == pytest.approx(want, rel=1e-10)
    free = [f["norms"]["fro2"] for f in sens.free_norms]
    assert free == pytest.approx([S.fro2(grads[i] / B) for i in sorted(grads) if i not in index.values()], rel=1e-10)


def test_the_pass_changes_nothing():
    X, y = tiny_data(5)
    net = trained(tiny_net(5), X, y, steps=2, opt=Adam(1e-2))
    before = copy.deepcopy(net)
    for free in (False, True):
        S.sensitivity_pass(net, X, y, 8, free=free)
    for (_, a), (_, b) in zip(net.named_layers(), before.named_layers()):
        for k in a.params:
            assert np.array_equal(a.params[k], b.params[k]) and np.array_equal(a.grads[k], b.grads[k])
        assert a.state.keys() == b.state.keys()
    assert len(net) == len(before)


def test_pass_input_errors():
    net = tiny_net()
    X, y = tiny_data(0)
    with pytest.raises(ValueError, match="X"):
        S.sensitivity_pass(net, X[:, 0], y)
    with pytest.raises(ValueError, match="y"):
        S.sensitivity_pass(net, X, y + 5)
    with pytest.raises(ValueError, match="norm"):
        S.sensitivity_pass(net, X, y, norm="spectral")


# --- the builder and the loop -----------------------------------------------------------------------------------

def test_vgg_small_builder():
    net = S.vgg_small()
    assert net.predict_logits(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    assert isinstance(net.layers[9], Flatten) and net.layers[9].in_shape == (32, 3, 3)
    assert not net.layers[-1].bias
    macs = 8 * 9 * 784 + 8 * 16 * 9 * 196 + 16 * 32 * 9 * 49 + 288 * 10 + 10 * 10
    assert net.macs() == macs
    big = S.vgg_small(extra=(1,))
    assert big.macs() == macs + 16 * 16 * 9 * 196 and len(big) == len(net) + 2
    with pytest.raises(ValueError, match="too small"):
        S.vgg_small(in_hw=(4, 4))


def test_training_loop_inserts_with_bit_identical_outputs_and_continuous_loss():
    X, y = tiny_data(6, 48, np.float32)
    net = tiny_net(6, dtype=np.float32)
    n0 = len(net)
    run = S.sensli_conv_train(net, X, y, [2, 1], X, y, rule="fixed", position=2, lr=0.05, batch_size=16, rng=0)
    assert len(net) == n0 + 2 and isinstance(net.layers[8], Conv2D)
    rec = run.insertions[0]
    assert rec["chosen"] == 2 and rec["output_unchanged"] is True and rec["epoch"] == 2
    assert len(run.train_loss) == 3 and run.phases[1]["macs_per_sample"] > run.phases[0]["macs_per_sample"]
    assert run.sensitivity_macs > 0 and run.seconds > 0
    multi = S.sensli_conv_train(tiny_net(6, dtype=np.float32), X, y, [1, 1, 1, 1], rule="threshold_rel",
                                lr=0.05, batch_size=16, rng=0)
    assert len(multi.insertions) == 3 and all(r["denominator"] > 0 for r in multi.insertions)
    with pytest.raises(ValueError, match="rule"):
        S.sensli_conv_train(tiny_net(), X, y, [1, 1], rule="best")
    with pytest.raises(TypeError, match="epochs"):
        S.sensli_conv_train(tiny_net(), X, y, 3)


def test_experiment_quick_run_writes_only_under_out_dir(tmp_path):
    from minigrow.experiments import sensli_conv as E
    s = E.reproduce("mnist", seeds=1, quick=True, out_dir=tmp_path, progress=False, plots=False)
    assert (tmp_path / "results" / "sensli_conv_mnist.json").exists()
    assert set(s["summary"]) == {"small", "sensli", "big", "at2", "multi"}
    assert s["summary"]["sensli"]["outputs_unchanged_at_insertion"] is True
    assert s["summary"]["sensli"]["macs"]["mean"] > s["summary"]["small"]["macs"]["mean"]
    assert "| mnist | sensli | 1 |" in E.markdown_table(tmp_path / "results")
    with pytest.raises(ValueError, match="out_dir"):
        E.reproduce("mnist", quick=True)
    assert E.main(["--quick", "--data", "mnist"]) == 2
