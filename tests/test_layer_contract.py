"""The layer contract (minigrow/layers/base.py), checked for every registered layer type.

Each case builds a small float64 layer and an input. For every one:

* gradients of every (nested) parameter and of the input = centred differences (float64, rel. error ≤ 1e-7),
  in training mode and in eval mode;
* ``backward`` overwrites: two backward passes after one forward give the same gradients, not their sum;
* eval mode updates nothing: parameters, buffers and (for stochastic layers) the RNG state are unchanged;
* save/load round-trips exactly (parameters, buffers, nested layers; eval outputs bit-identical);
* float32 works (output dtype float32, finite);
* the unit-axis metadata (``unit_kind``, ``out_axes``, ``in_axes``) agrees with a real removal of units.

A layer type that is registered but has no case here fails :func:`test_every_registered_layer_has_a_case`, so no
layer can skip the contract. Cases for layers defined in other test modules are collected from their
``CONTRACT_CASES`` dicts.
"""
import importlib

import numpy as np
import pytest

import minigrow as mg
from minigrow.gradcheck import check_layer
from minigrow.layers import LAYER_TYPES, Dense, LeakyReLU, ReLU, ResidualBlock, Sequential, Sigmoid, Tanh
from minigrow.layers.registry import import_all_layer_modules


def _x(rng, *shape, lo=0.2):
    """Entries with |x| ≥ lo (away from the ReLU kink at 0), random signs."""
    return rng.uniform(lo, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def _act(cls):
    def make(rng):
        return cls(), _x(rng, 3, 4)
    return make


def _dense(rng):
    return Dense(4, 3, rng=rng, dtype=np.float64), _x(rng, 5, 4)


def _residual(rng):
    return ResidualBlock(3, hidden=4, activation="tanh", rng=rng, dtype=np.float64), _x(rng, 5, 3)


def _sequential(rng):
    inner = Sequential([Dense(4, 4, rng=rng, dtype=np.float64), Tanh()])
    return Sequential([Dense(3, 4, rng=rng, dtype=np.float64), Tanh(), inner, Dense(4, 2, rng=rng,
                                                                                      dtype=np.float64)]), _x(rng, 5, 3)


def _gate(shape):
    def make(rng):
        from minigrow.methods.pruning import Gate
        layer = Gate(shape[1], dtype=np.float64)
        layer.theta[:] = rng.uniform(0.2, 1.0, shape[1])
        return layer, _x(rng, *shape)
    return make


def _selecting_gate(rng):
    """A feature gate behind a flatten after some features were removed: fed all 7 flattened features, it reads 4
    (backward scatters into the 7)."""
    from minigrow.methods.pruning import Gate
    layer = Gate(7, dtype=np.float64, n_inputs=7)
    layer.remove_outputs([0, 2, 3, 6])
    layer.theta[:] = rng.uniform(0.2, 1.0, 4)
    return layer, _x(rng, 5, 7)


def _select(rng):
    from minigrow.layers import Select
    return Select(7, index=[0, 3, 4, 6]), _x(rng, 5, 7)


def _dense_block(rng):
    from minigrow.methods.bundles import DenseBlock
    return DenseBlock(4, 3, rng=rng, dtype=np.float64), _x(rng, 5, 4)


def _conv_block(skip, stride, c_in, c_out):
    def make(rng):
        from minigrow.layers import ConvBlock
        block = ConvBlock(c_in, c_out, stride=stride, skip=skip, rng=rng, dtype=np.float64)
        return block, rng.standard_normal((4, c_in, 5, 5))
    return make


CORE_CASES = {
    "ConvBlock": _conv_block(True, 2, 2, 3), "ConvBlock[identity]": _conv_block(True, 1, 2, 2),
    "ConvBlock[vgg]": _conv_block(False, 1, 2, 3),
    "Gate": _gate((5, 4)), "Gate[nchw]": _gate((3, 4, 2, 3)), "Gate[selecting]": _selecting_gate,
    "Select": _select, "DenseBlock": _dense_block,
    "Dense": _dense, "ReLU": _act(ReLU), "LeakyReLU": _act(LeakyReLU), "Tanh": _act(Tanh),
    "Sigmoid": _act(Sigmoid), "ResidualBlock": _residual, "Sequential": _sequential,
}
# Test modules that define layers' cases (CONTRACT_CASES = {type name: factory(rng) -> (layer, x)}).
CASE_MODULES = ["test_norm", "test_conv"]


def all_cases():
    cases = dict(CORE_CASES)
    for name in CASE_MODULES:
        cases.update(importlib.import_module(name).CONTRACT_CASES)
    return cases


CASES = all_cases()


def test_every_registered_layer_has_a_case():
    import_all_layer_modules()
    missing = sorted(set(LAYER_TYPES) - {name.split("[")[0] for name in CASES})
    assert not missing, f"registered layer types without a contract case: {missing}"


def _make(name, seed=0):
    layer, x = CASES[name](np.random.default_rng(seed))
    return layer, np.asarray(x, dtype=np.float64)


def _arrays(layer):
    out = {}
    for path, sub in layer.named_layers():
        out.update({f"{path}.p.{k}": v.copy() for k, v in sub.params.items()})
        out.update({f"{path}.b.{k}": v.copy() for k, v in sub.buffers.items()})
    return out


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("train", [True, False])
def test_gradients(name, train):
    layer, x = _make(name)
    rep = check_layer(layer, x, train=train, tol=1e-7)
    assert rep.ok, f"{name} (train={train}):\n{rep}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_overwrites(name):
    layer, x = _make(name)
    out = layer.forward(x, True)
    u = np.random.default_rng(1).standard_normal(out.shape)
    dx1 = layer.backward(u)
    g1 = {(id(sub), k): sub.grads[k].copy() for sub, k in layer.parameters()}
    dx2 = layer.backward(u)
    for sub, k in layer.parameters():
        np.testing.assert_array_equal(sub.grads[k], g1[(id(sub), k)], err_msg=f"{name}.{k} accumulated")
    np.testing.assert_array_equal(dx1, dx2)


@pytest.mark.parametrize("name", sorted(CASES))
def test_eval_mode_updates_nothing(name):
    layer, x = _make(name)
    layer.forward(x, True)                      # training mode may update buffers: that is allowed
    before = _arrays(layer)
    rng_states = [sub.extra_state() for _, sub in layer.named_layers() if sub.stochastic]
    o1 = layer.forward(x, False)
    o2 = layer.forward(x, False)
    after = _arrays(layer)
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=f"{name}: eval mode changed {k}")
    assert rng_states == [sub.extra_state() for _, sub in layer.named_layers() if sub.stochastic]
    np.testing.assert_array_equal(o1, o2)


@pytest.mark.parametrize("name", sorted(CASES))
def test_save_load_exact(name, tmp_path):
    layer, x = _make(name)
    layer.forward(x, True)                      # buffers (running statistics) away from their initial values
    model = Sequential([layer])
    mg.save(tmp_path / "m.npz", model)
    back = mg.load(tmp_path / "m.npz")["model"]
    a, b = _arrays(model), _arrays(back)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}: {k} changed in the round trip")
    np.testing.assert_array_equal(model.forward(x, False), back.forward(x, False))


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32(name):
    layer, x = _make(name)
    layer.astype(np.float32)
    out = layer.forward(x.astype(np.float32), True)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    dx = layer.backward(np.ones_like(out))
    assert dx.dtype == np.float32
    for sub, k in layer.parameters():
        assert sub.params[k].dtype == np.float32 and sub.grads[k].dtype == np.float32
    for _, sub in layer.named_layers():
        for k, v in sub.buffers.items():
            assert v.dtype.kind != "f" or v.dtype == np.float32, f"{name}: buffer {k} is {v.dtype}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_unit_axes_agree_with_removal(name):
    layer, x = _make(name)
    kind = layer.unit_kind
    assert kind in ("affine", "elementwise", "flatten", "opaque")
    names = set(layer.params) | set(layer.buffers)
    assert set(layer.out_axes()) <= names and set(layer.in_axes()) <= names
    if kind == "affine":
        out = layer.forward(x, False)
        keep = np.arange(0, out.shape[1], 2)
        layer.remove_outputs(keep)
        np.testing.assert_array_equal(layer.forward(x, False), out[:, keep])
        layer2, _ = _make(name)
        keep_in = np.arange(1, x.shape[1])
        x0 = x.copy()
        x0[:, 0] = 0                             # a removed input contributes nothing
        ref = layer2.forward(x0, False)
        layer2.remove_inputs(keep_in)
        np.testing.assert_allclose(layer2.forward(x[:, keep_in], False), ref, rtol=1e-12, atol=1e-12)
    elif kind == "elementwise" and layer.forward(x, False).shape[1] != x.shape[1]:
        # a selecting layer (reads some input units): removing outputs drops them; remap_inputs (the surgery hook
        # behind a flatten) renumbers the selection when the input loses columns and names the surviving outputs
        out = layer.forward(x, False)
        keep_cols = np.arange(1, x.shape[1])
        layer2, _ = _make(name)
        survivors = layer2.remap_inputs(keep_cols)
        np.testing.assert_array_equal(layer2.forward(np.ascontiguousarray(x[:, keep_cols]), False), out[:, survivors])
        assert survivors.size < out.shape[1]                 # input column 0 was selected: it is gone
        keep = np.arange(0, out.shape[1], 2)
        layer.remove_outputs(keep)
        np.testing.assert_array_equal(layer.forward(x, False), out[:, keep])
    elif kind == "elementwise":
        out = layer.forward(x, False)
        keep = np.arange(0, x.shape[1], 2)
        layer.remove_outputs(keep)
        np.testing.assert_array_equal(layer.forward(np.ascontiguousarray(x[:, keep]), False), out[:, keep])
    else:
        assert layer.out_axes() == {} and layer.in_axes() == {}


def test_surgery_through_a_flatten_restored_from_a_file(tmp_path):
    """conv → ReLU → pool → flatten → dense: removing filters slices the H·W column blocks, and a Flatten loaded
    from a file (its in_shape fixed) follows the new channel count."""
    from minigrow import surgery
    from minigrow.layers import Conv2D, Flatten, MaxPool2d
    rng = np.random.default_rng(0)
    net = Sequential([Conv2D(1, 4, 3, rng=rng, dtype=np.float64), ReLU(), MaxPool2d(2), Flatten(),
                      Dense(4 * 3 * 3, 2, rng=rng, dtype=np.float64)])
    x = rng.standard_normal((5, 1, 8, 8))
    net.forward(x, False)
    mg.save(tmp_path / "m.npz", net)
    net = mg.load(tmp_path / "m.npz")["model"]
    outs = net.forward_all(x)
    keep = np.array([0, 2, 3])
    h = outs[4].reshape(5, 4, 9)[:, keep].reshape(5, -1)             # the kept channels' blocks
    W = net.layers[4].params["W"].reshape(2, 4, 9)[:, keep].reshape(2, -1)
    ref = h @ W.T + net.layers[4].params["b"]
    surgery.remove_units(net, 0, keep)
    assert net.layers[3].in_shape == (3, 3, 3)
    np.testing.assert_allclose(net.forward(x, False), ref, rtol=1e-12, atol=1e-12)
