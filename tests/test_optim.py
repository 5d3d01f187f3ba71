"""Optimiser steps against hand-computed numbers, the learning-rate schedule, and optimiser state across
structural edits (insert a layer, remove units)."""
import copy

import numpy as np
import pytest

from minigrow.layers import Dense, Sequential, Tanh
from minigrow.losses import SoftmaxCrossEntropy
from minigrow.network import mlp
from minigrow.optim import SGD, Adam, StepLR, adam_update, get_optimizer, sgd_update


def one_param_model(w0):
    """A Dense(2→1) without bias whose single weight row is w0: a handle for optimiser tests."""
    layer = Dense(2, 1, bias=False, dtype=np.float64)
    layer.params["W"][:] = w0
    return Sequential([layer]), layer


def run_steps(opt, grads, w0=(1.0, -0.5)):
    model, layer = one_param_model(w0)
    out = []
    for g in grads:
        layer.grads["W"][:] = g
        opt.step(model)
        out.append(layer.params["W"][0].copy())
    return out


G = [(0.2, -0.1), (0.1, 0.3), (-0.4, 0.05)]     # the gradients of three steps


def test_sgd_plain_by_hand():
    # w ← w − η g, η = 0.1:  1 − 0.02 = 0.98, −0.5 + 0.01 = −0.49;  0.98 − 0.01 = 0.97, −0.49 − 0.03 = −0.52;
    # 0.97 + 0.04 = 1.01, −0.52 − 0.005 = −0.525
    ws = run_steps(SGD(0.1), G)
    np.testing.assert_allclose(ws, [[0.98, -0.49], [0.97, -0.52], [1.01, -0.525]], rtol=0, atol=1e-15)


def test_sgd_momentum_by_hand():
    # μ = 0.9, η = 0.1.  v1 = g1 = (0.2, −0.1)            w1 = (0.98, −0.49)
    # v2 = 0.9 v1 + g2 = (0.28, 0.21)                     w2 = (0.952, −0.511)
    # v3 = 0.9 v2 + g3 = (−0.148, 0.239)                  w3 = (0.9668, −0.5349)
    ws = run_steps(SGD(0.1, momentum=0.9), G)
    np.testing.assert_allclose(ws, [[0.98, -0.49], [0.952, -0.511], [0.9668, -0.5349]], rtol=0, atol=1e-15)


def test_sgd_weight_decay_by_hand():
    # λ = 0.5: g = ∇ + λw.  step 1: g = (0.2 + 0.5, −0.1 − 0.25) = (0.7, −0.35) → w = (0.93, −0.465)
    # step 2: g = (0.1 + 0.465, 0.3 − 0.2325) = (0.565, 0.0675) → w = (0.8735, −0.47175)
    ws = run_steps(SGD(0.1, weight_decay=0.5), G[:2])
    np.testing.assert_allclose(ws, [[0.93, -0.465], [0.8735, -0.47175]], rtol=0, atol=1e-15)


def test_adam_by_hand():
    # η = 0.01, β1 = 0.9, β2 = 0.999, ε = 1e-8, no weight decay.
    # step 1 (first entry): m = 0.1·0.2 = 0.02, v = 0.001·0.04 = 4e-5, m̂ = 0.2, v̂ = 0.04, √v̂ = 0.2,
    #   w = 1 − 0.01·0.2/(0.2 + 1e-8) = 0.99 + 0.01·1e-8/0.2 = 0.9900000005   (Adam's first step ≈ η·sign g)
    # steps 2, 3 from the same recursion (m = β1 m + (1−β1) g, v = β2 v + (1−β2) g², bias-corrected):
    ws = run_steps(Adam(0.01), G)
    np.testing.assert_allclose(ws, [[0.9900000005, -0.490000001],
                                    [0.9806782047015365, -0.49494189911200653],
                                    [0.9827417748955475, -0.499713270674212]], rtol=1e-12)


def test_adam_weight_decay_by_hand():
    # λ = 0.1 (coupled, PyTorch style): g = ∇ + λw.
    # step 1, first entry: g = 0.2 + 0.1 = 0.3, m = 0.03, v = 9e-5, m̂ = 0.3, v̂ = 0.09, √v̂ = 0.3,
    #   w = 1 − 0.01·0.3/0.30000001 = 0.99000000033333…
    # step 2, first entry: g = 0.1 + 0.1·0.9900000003333 = 0.19900000003333, m = 0.0469000000033,
    #   v = 1.295110000133e-4, m̂ = m/0.19 = 0.24684210528, v̂ = v/0.001999 = 0.064787893954 → w = 0.98030222109826
    ws = run_steps(Adam(0.01, weight_decay=0.1), G)
    np.testing.assert_allclose(ws, [[0.9900000003333334, -0.4900000006666666],
                                    [0.9803022210982579, -0.49295244907868235],
                                    [0.9786682065573349, -0.4952500999510861]], rtol=1e-12)


def test_adam_state_after_two_steps():
    model, layer = one_param_model((1.0, -0.5))
    opt = Adam(0.01)
    for g in G[:2]:
        layer.grads["W"][:] = g
        opt.step(model)
    st = layer.state["W"]
    assert st["t"] == 2
    np.testing.assert_allclose(st["m"][0], [0.9 * 0.02 + 0.1 * 0.1, 0.9 * -0.01 + 0.1 * 0.3], rtol=1e-13)
    np.testing.assert_allclose(st["v"][0], [0.999 * 4e-5 + 0.001 * 0.01, 0.999 * 1e-5 + 0.001 * 0.09],
                               rtol=1e-13)


def test_pure_rules_without_scratch_buffer_agree():
    rng = np.random.default_rng(0)
    w, dw = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    w1, w2, s1, s2 = w.copy(), w.copy(), {}, {}
    for _ in range(3):
        adam_update(w1, dw, s1, 1e-2, weight_decay=0.01)
        adam_update(w2, dw, s2, 1e-2, weight_decay=0.01, buf=np.full_like(w, np.nan))   # buf content is ignored
    np.testing.assert_array_equal(w1, w2)
    w3, s3 = w.copy(), {}
    sgd_update(w3, dw, s3, 0.1, momentum=0.5)
    np.testing.assert_allclose(w3, w - 0.1 * dw, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimisers_keep_dtype(dtype):
    model = mlp([3, 4, 2], rng=0, dtype=dtype)
    for opt in (SGD(0.1, momentum=0.9, weight_decay=1e-3), Adam(1e-3, weight_decay=1e-3)):
        for layer, k in model.parameters():
            layer.grads[k][:] = 0.5
        opt.step(model)
        opt.step(model)
        for layer, k in model.parameters():
            assert layer.params[k].dtype == dtype
            assert all(v.dtype == dtype for v in layer.state[k].values() if isinstance(v, np.ndarray))
        Adam.reset_state(model)


def test_frozen_parameters_are_skipped():
    model = mlp([2, 3, 2], rng=0, dtype=np.float64)
    layer = model.layers[0]
    layer.frozen.add("W")
    before = layer.params["W"].copy()
    for lay, k in model.parameters():
        lay.grads[k][:] = 1.0
    Adam(0.1).step(model)
    np.testing.assert_array_equal(layer.params["W"], before)
    assert "W" not in layer.state and "b" in layer.state


def test_step_lr():
    opt = SGD(0.1)
    sched = StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        sched.step()
        lrs.append(opt.lr)
    # η_e = 0.1 · 0.5^{⌊e/2⌋} for e = 1…5
    assert lrs == pytest.approx([0.1, 0.05, 0.05, 0.025, 0.025], rel=1e-15)
    assert sched.config()["last_epoch"] == 5


@pytest.mark.parametrize("call, match", [
    (lambda: Adam(lr=-1.0), "lr: expected a number > 0"),
    (lambda: Adam(beta1=1.0), r"beta1: expected a number in \[0, 1\)"),
    (lambda: SGD(0.1, momentum=1.5), r"momentum: expected a number in \[0, 1\)"),
    (lambda: SGD(0.1, weight_decay=-1), "weight_decay: expected a number >= 0"),
    (lambda: StepLR(SGD(0.1), 0), "step_size: expected an integer >= 1"),
    (lambda: get_optimizer({"name": "rmsprop", "lr": 0.1}), "optimizer: expected one of"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_get_optimizer_round_trip():
    opt = Adam(0.003, beta1=0.8, weight_decay=0.01)
    again = get_optimizer(opt.config())
    assert isinstance(again, Adam) and again.config() == opt.config()


# ---------------------------------------------------------------- state across structural edits
def train_steps(model, opt, steps, seed=0):
    rng = np.random.default_rng(seed)
    n_in = model.layers[0].in_features
    n_out = model.layers[-1].out_features
    loss = SoftmaxCrossEntropy()
    for _ in range(steps):
        X = rng.standard_normal((8, n_in))
        y = rng.integers(0, n_out, 8)
        loss.forward(model.forward(X), y)
        model.backward(loss.backward())
        opt.step(model)


def snapshot(model):
    return [{k: {s: (v.copy() if isinstance(v, np.ndarray) else v) for s, v in st.items()}
             for k, st in layer.state.items()} for layer in model.layers]


def test_insert_keeps_existing_state_and_new_layer_starts_fresh():
    model = mlp([3, 4, 2], "tanh", rng=0, dtype=np.float64)
    opt = Adam(0.01)
    train_steps(model, opt, 2)
    old_layers = list(model.layers)
    before = snapshot(model)
    new = Dense(4, 4, init="identity", dtype=np.float64)
    model.insert(2, new, Tanh())
    assert new.state == {}
    for layer, snap in zip(old_layers, before):                 # untouched: identical m, v, t
        assert layer.state.keys() == snap.keys()
        for k in snap:
            assert layer.state[k]["t"] == 2
            np.testing.assert_array_equal(layer.state[k]["m"], snap[k]["m"])
            np.testing.assert_array_equal(layer.state[k]["v"], snap[k]["v"])
    W0 = new.params["W"].copy()
    train_steps(model, opt, 1, seed=1)
    assert new.state["W"]["t"] == 1 and old_layers[0].state["W"]["t"] == 3
    # a fresh Adam's first step is η g/(|g| + ε) (m̂ = g, v̂ = g²)
    g = new.grads["W"]
    np.testing.assert_allclose(new.params["W"], W0 - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("make_opt", [lambda: Adam(0.01, weight_decay=1e-3), lambda: SGD(0.05, momentum=0.9)])
def test_unit_removal_slices_state_and_next_step_matches_a_sliced_fresh_copy(make_opt):
    keep = np.array([0, 2, 3])
    model = mlp([3, 5, 2], "tanh", rng=0, dtype=np.float64)
    opt = make_opt()
    train_steps(model, opt, 3)
    d0, d1 = model.layers[0], model.layers[2]
    before = snapshot(model)

    # the "equally-sliced fresh copy", built by hand with numpy slicing
    ref = mlp([3, 3, 2], "tanh", rng=99, dtype=np.float64)
    r0, r1 = ref.layers[0], ref.layers[2]
    r0.params["W"][:] = d0.params["W"][keep]
    r0.params["b"][:] = d0.params["b"][keep]
    r1.params["W"][:] = d1.params["W"][:, keep]
    r1.params["b"][:] = d1.params["b"]
    for src, dst, sl in ((before[0]["W"], r0, ("W", lambda a: a[keep])), (before[0]["b"], r0, ("b", lambda a: a[keep])),
                         (before[2]["W"], r1, ("W", lambda a: a[:, keep])), (before[2]["b"], r1, ("b", lambda a: a))):
        name, f = sl
        dst.state[name] = {s: (np.ascontiguousarray(f(v)) if isinstance(v, np.ndarray) else v)
                           for s, v in src.items()}
    ref_opt = copy.deepcopy(opt)

    d0.remove_outputs(keep)
    d1.remove_inputs(keep)
    for layer, rlayer in ((d0, r0), (d1, r1)):
        for k in layer.params:
            assert layer.state[k].keys() == rlayer.state[k].keys()
            for s, v in layer.state[k].items():
                np.testing.assert_array_equal(v, rlayer.state[k][s])      # rows / columns dropped consistently
    train_steps(model, opt, 1, seed=7)
    train_steps(ref, ref_opt, 1, seed=7)
    for (la, k), (lb, _) in zip(model.parameters(), ref.parameters()):
        np.testing.assert_array_equal(la.params[k], lb.params[k])


def test_reset_state_is_a_fresh_optimiser():
    model = mlp([3, 4, 2], rng=0, dtype=np.float64)
    twin = copy.deepcopy(model)
    opt = Adam(0.01)
    train_steps(model, opt, 2)
    Adam.reset_state(model)
    assert all(not layer.state for layer in model.layers)
    for (a, k), (b, _) in zip(model.parameters(), twin.parameters()):
        b.params[k][:] = a.params[k]
    train_steps(model, opt, 1, seed=3)
    train_steps(twin, Adam(0.01), 1, seed=3)
    for (a, k), (b, _) in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(a.params[k], b.params[k])
