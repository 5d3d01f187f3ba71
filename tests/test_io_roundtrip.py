"""save/load: bit-exact round trip of architecture, parameters and optimiser state — MLPs and residual MLPs,
float32 and float64, after training, after inserting a layer and after removing units."""
import numpy as np
import pytest

from minigrow.io import load, save
from minigrow.layers import Dense, ReLU, Tanh
from minigrow.losses import SoftmaxCrossEntropy
from minigrow.network import mlp, residual_mlp
from minigrow.optim import SGD, Adam


def train_steps(model, opt, steps, seed=0):
    rng = np.random.default_rng(seed)
    dt = model.dtype
    loss = SoftmaxCrossEntropy()
    for _ in range(steps):
        X = rng.standard_normal((8, model.layers[0].in_features)).astype(dt)
        y = rng.integers(0, model.layers[-1].out_features, 8)
        loss.forward(model.forward(X), y)
        model.backward(loss.backward())
        opt.step(model)


def assert_same(a, b, with_state=True):
    assert [type(x) for x in a.layers] == [type(x) for x in b.layers]
    for la, lb in zip(a.layers, b.layers):
        assert la.config() == lb.config()
        assert la.params.keys() == lb.params.keys()
        for k in la.params:
            assert la.params[k].dtype == lb.params[k].dtype
            assert la.params[k].tobytes() == lb.params[k].tobytes()          # bit-exact
        if with_state:
            assert la.state.keys() == lb.state.keys()
            for k, st in la.state.items():
                assert st.keys() == lb.state[k].keys()
                for s, v in st.items():
                    w = lb.state[k][s]
                    if isinstance(v, np.ndarray):
                        assert v.dtype == w.dtype and v.tobytes() == w.tobytes()
                    else:
                        assert v == w and type(v) is type(w)


def roundtrip(tmp_path, model, opt, name="m.npz"):
    save(tmp_path / name, model, optimizer=opt, meta={"note": "test"})
    out = load(tmp_path / name)
    assert out["meta"]["note"] == "test"
    return out["model"], out["optimizer"]


ARCHS = {
    "mlp_relu": lambda dt: mlp([4, 6, 5, 3], "relu", rng=1, dtype=dt),
    "mlp_leaky": lambda dt: mlp([4, 6, 3], "leaky_relu", rng=1, dtype=dt, alpha=0.2),
    "resnet_tanh": lambda dt: residual_mlp(4, 3, 2, 3, "tanh", rng=2, dtype=dt),
    "resnet_relu_hidden": lambda dt: residual_mlp(4, 3, 1, 3, "relu", rng=3, dtype=dt, hidden=5),
}


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_after_training_and_resume_is_identical(tmp_path, arch, dtype):
    model = ARCHS[arch](dtype)
    opt = Adam(0.01, weight_decay=1e-3)
    train_steps(model, opt, 3)
    model2, opt2 = roundtrip(tmp_path, model, opt)
    assert_same(model, model2)
    assert opt2.config() == opt.config()
    train_steps(model, opt, 2, seed=5)                   # resuming from the file = never having stopped
    train_steps(model2, opt2, 2, seed=5)
    assert_same(model, model2)


def test_round_trip_sgd_momentum(tmp_path):
    model = mlp([3, 4, 2], "tanh", rng=0, dtype=np.float64)
    opt = SGD(0.1, momentum=0.9)
    train_steps(model, opt, 2)
    model2, opt2 = roundtrip(tmp_path, model, opt)
    assert_same(model, model2)
    assert isinstance(opt2, SGD) and opt2.momentum == 0.9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_after_insertion(tmp_path, dtype):
    model = mlp([3, 4, 2], "relu", rng=0, dtype=dtype)
    opt = Adam(0.01)
    train_steps(model, opt, 2)
    model.insert(2, Dense(4, 4, init="identity", dtype=dtype), ReLU())
    train_steps(model, opt, 1)                           # the new layer has t = 1, the others t = 3
    model2, opt2 = roundtrip(tmp_path, model, opt)
    assert_same(model, model2)
    assert model2.layers[2].state["W"]["t"] == 1 and model2.layers[0].state["W"]["t"] == 3
    assert model2.layers[2].config()["init"] == "identity"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_after_unit_removal(tmp_path, dtype):
    model = mlp([3, 6, 5, 2], "tanh", rng=0, dtype=dtype)
    opt = Adam(0.01)
    train_steps(model, opt, 2)
    model.layers[0].remove_outputs([0, 3, 5])
    model.layers[2].remove_inputs([0, 3, 5])
    model.layers[2].remove_outputs([1])
    model.layers[4].remove_inputs([1])
    model2, _ = roundtrip(tmp_path, model, opt)
    assert_same(model, model2)
    assert [layer.params["W"].shape for layer in model2.layers if "W" in layer.params] == [(3, 3), (1, 3), (2, 1)]


def test_without_optimiser_no_state_is_written(tmp_path):
    model = residual_mlp(2, 3, 1, 2, rng=0)
    opt = Adam(0.01)
    train_steps(model, opt, 1)
    save(tmp_path / "p.npz", model)
    out = load(tmp_path / "p.npz")
    assert out["optimizer"] is None
    assert_same(model, out["model"], with_state=False)
    assert all(not layer.state for layer in out["model"].layers)
    x = np.ones((2, 2), dtype=np.float32)
    np.testing.assert_array_equal(model.predict_logits(x), out["model"].predict_logits(x))


def test_extra_arrays_and_frozen(tmp_path):
    model = mlp([2, 3, 2], rng=0, dtype=np.float64)
    model.layers[0].frozen.add("b")
    save(tmp_path / "e.npz", model, arrays={"theta": np.arange(3.0)})
    out = load(tmp_path / "e.npz")
    assert out["model"].layers[0].frozen == {"b"}
    np.testing.assert_array_equal(out["arrays"]["theta"], np.arange(3.0))


def test_file_is_plain_npz_without_pickle(tmp_path):
    model = mlp([2, 3, 2], rng=0)
    save(tmp_path / "x.npz", model, optimizer=Adam(0.01))
    with np.load(tmp_path / "x.npz", allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)


def test_altered_or_truncated_file_is_refused(tmp_path):
    model = mlp([2, 3, 2], rng=0)
    path = save(tmp_path / "y.npz", model)
    raw = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError):
        load(tmp_path / "trunc.npz")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")


def test_unregistered_layer_type_is_refused(tmp_path):
    class Custom(Tanh):
        pass
    with pytest.raises(TypeError, match="not a registered layer type"):
        save(tmp_path / "z.npz", mlp([2, 2]).__class__([Custom()]))
