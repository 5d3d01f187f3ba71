"""Conv2D, pooling and Flatten: the fast kernels against obviously-correct loop oracles, gradient checks,
chunking, float32, the layer contract, unit removal, and LeNet-5 end to end."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrow.layers.conv as conv_module
from minigrow.convnets import lenet5
from minigrow.gradcheck import check_layer, check_network
from minigrow.layers import (LAYER_TYPES, AvgPool2d, Conv2D, Dense, Flatten, GlobalAvgPool2d, MaxPool2d, ReLU,
                             Sequential)
from minigrow.optim import Adam
from minigrow.train import Trainer, evaluate


# ------------------------------------------------------------------------------------------ loop oracles
def pad(x, ph, pw, value=0.0):
    N, C, H, W = x.shape
    out = np.full((N, C, H + 2 * ph, W + 2 * pw), value)
    out[:, :, ph:ph + H, pw:pw + W] = x
    return out


def conv_oracle(x, W, b, stride, padding):
    """out[n,o,i,j] = b_o + Σ_{c,p,q} W[o,c,p,q] x_pad[n,c,i·sh+p,j·sw+q], one output value at a time."""
    (sh, sw), (ph, pw) = stride, padding
    xp = pad(x, ph, pw)
    N, C, Hp, Wp = xp.shape
    Co, _, kh, kw = W.shape
    Ho, Wo = (Hp - kh) // sh + 1, (Wp - kw) // sw + 1
    out = np.zeros((N, Co, Ho, Wo))
    for n in range(N):
        for o in range(Co):
            for i in range(Ho):
                for j in range(Wo):
                    s = b[o]
                    for c in range(C):
                        for p in range(kh):
                            for q in range(kw):
                                s += W[o, c, p, q] * xp[n, c, i * sh + p, j * sw + q]
                    out[n, o, i, j] = s
    return out


def conv_backward_oracle(x, W, dout, stride, padding):
    """(dx, dW, db): every output value sends δ·W to the inputs it read and δ·x to the weights it used."""
    (sh, sw), (ph, pw) = stride, padding
    xp = pad(x, ph, pw)
    dxp, dW, db = np.zeros_like(xp), np.zeros(W.shape), np.zeros(W.shape[0])
    N, Co, Ho, Wo = dout.shape
    _, C, kh, kw = W.shape
    for n in range(N):
        for o in range(Co):
            for i in range(Ho):
                for j in range(Wo):
                    d = dout[n, o, i, j]
                    db[o] += d
                    for c in range(C):
                        for p in range(kh):
                            for q in range(kw):
                                dW[o, c, p, q] += d * xp[n, c, i * sh + p, j * sw + q]
                                dxp[n, c, i * sh + p, j * sw + q] += d * W[o, c, p, q]
    H, Wd = x.shape[2:]
    return dxp[:, :, ph:ph + H, pw:pw + Wd], dW, db


def pool_oracle(x, dout, kind, kernel, stride, padding):
    """(out, dx) of max or average pooling, one window at a time. Max: the first maximum in row-major window
    order gets the gradient (PyTorch's rule); average: zero padding counted in the divisor."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = pad(x, ph, pw, -np.inf if kind == "max" else 0.0)
    N, C, Hp, Wp = xp.shape
    Ho, Wo = (Hp - kh) // sh + 1, (Wp - kw) // sw + 1
    out, dxp = np.zeros((N, C, Ho, Wo)), np.zeros_like(xp)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    best, arg, total = -np.inf, None, 0.0
                    for p in range(kh):
                        for q in range(kw):
                            v = xp[n, c, i * sh + p, j * sw + q]
                            total += v
                            if v > best:
                                best, arg = v, (i * sh + p, j * sw + q)
                    if kind == "max":
                        out[n, c, i, j] = best
                        if dout is not None:
                            dxp[n, c, arg[0], arg[1]] += dout[n, c, i, j]
                    else:
                        out[n, c, i, j] = total / (kh * kw)
                        if dout is not None:
                            for p in range(kh):
                                for q in range(kw):
                                    dxp[n, c, i * sh + p, j * sw + q] += dout[n, c, i, j] / (kh * kw)
    H, W = x.shape[2:]
    return out, dxp[:, :, ph:ph + H, pw:pw + W]


def channels_last(x):
    """The same NCHW values in NHWC memory (what a Conv2D or pooling output is)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


# ------------------------------------------------------------------------------------------ strategies
@st.composite
def conv_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, kh - 2 * ph), 7))
    W = draw(st.integers(max(1, kw - 2 * pw), 7))
    return dict(N=draw(st.integers(1, 3)), C=draw(st.integers(1, 3)), Co=draw(st.integers(1, 3)), H=H, W=W,
                kernel=(kh, kw), stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), padding=(ph, pw),
                bias=draw(st.booleans()), nhwc=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 16)))


@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    return dict(N=draw(st.integers(1, 2)), C=draw(st.integers(1, 3)), H=draw(st.integers(kh, 7)),
                W=draw(st.integers(kw, 7)), kernel=(kh, kw), stride=stride, padding=(ph, pw),
                nhwc=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 16)))


# ------------------------------------------------------------------------------------------ Conv2D
@given(conv_cases())
def test_conv_matches_loop_oracle(case):
    rng = np.random.default_rng(case["seed"])
    layer = Conv2D(case["C"], case["Co"], case["kernel"], case["stride"], case["padding"], bias=case["bias"],
                   rng=rng, dtype=np.float64)
    x = rng.standard_normal((case["N"], case["C"], case["H"], case["W"]))
    b = layer.params["b"] if case["bias"] else np.zeros(case["Co"])
    out = layer.forward(channels_last(x) if case["nhwc"] else x)
    expect = conv_oracle(x, layer.params["W"], b, layer.stride, layer.padding)
    np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    edx, edW, edb = conv_backward_oracle(x, layer.params["W"], dout, layer.stride, layer.padding)
    np.testing.assert_allclose(dx, edx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], edW, rtol=1e-12, atol=1e-12)
    if case["bias"]:
        np.testing.assert_allclose(layer.grads["b"], edb, rtol=1e-12, atol=1e-12)
    assert layer.backward(dout, need_input_grad=False) is None


@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 0), ((2, 3), (2, 1), (1, 2)), (3, 2, 1)])
def test_conv_gradcheck(kernel, stride, padding):
    rng = np.random.default_rng(3)
    layer = Conv2D(2, 3, kernel, stride, padding, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, 5, 6))
    report = check_layer(layer, x, rng=1)
    assert report.max_error <= 1e-7, str(report)


def test_conv_chunked_equals_unchunked(monkeypatch):
    rng = np.random.default_rng(4)
    layer = Conv2D(3, 4, 3, stride=2, padding=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((7, 3, 9, 8))
    out = layer.forward(x).copy()
    dout = rng.standard_normal(out.shape)
    dx, dW, db = layer.backward(dout).copy(), layer.grads["W"].copy(), layer.grads["b"].copy()
    per_sample = 5 * 4 * 9 * 3 * 8                      # Ho·Wo·kh·kw·C float64 bytes of one sample's columns
    monkeypatch.setattr(conv_module, "MAX_COL_BYTES", 2 * per_sample)   # chunks of 2 samples: 2, 2, 2, 1
    assert layer._chunk(7, 5, 4, 8) == 2
    out2 = layer.forward(x)
    dx2 = layer.backward(dout)
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(dx2, dx)
    np.testing.assert_array_equal(layer.grads["b"], db)
    np.testing.assert_allclose(layer.grads["W"], dW, rtol=1e-13, atol=1e-13)   # summed by chunks


def test_conv_float32_and_backward_overwrites():
    rng = np.random.default_rng(5)
    layer = Conv2D(3, 4, 3, padding=1, rng=rng)            # float32 by default
    x = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    out = layer.forward(x)
    assert out.dtype == np.float32 and out.shape == (4, 4, 6, 6)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx1 = layer.backward(dout).copy()
    g1 = {k: v.copy() for k, v in layer.grads.items()}
    dx2 = layer.backward(dout)
    assert dx2.dtype == np.float32 and layer.grads["W"].dtype == np.float32
    np.testing.assert_array_equal(dx1, dx2)
    for k in g1:                                             # a second backward overwrites, never accumulates
        np.testing.assert_array_equal(layer.grads[k], g1[k])
    ref = conv_oracle(x.astype(np.float64), layer.params["W"].astype(np.float64),
                      layer.params["b"].astype(np.float64), (1, 1), (1, 1))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_conv_init_and_config_roundtrip():
    layer = Conv2D(4, 6, (3, 2), stride=(1, 2), padding=1, rng=0, dtype=np.float64)
    bound = 1 / np.sqrt(4 * 3 * 2)                          # PyTorch's U(±1/√fan_in), fan_in = C_in·kh·kw
    assert np.abs(layer.params["W"]).max() <= bound and np.abs(layer.params["W"]).max() > 0.8 * bound
    assert np.abs(layer.params["b"]).max() <= bound
    he = Conv2D(4, 6, 3, init="he", rng=0)
    assert np.all(he.params["b"] == 0) and np.abs(he.params["W"]).max() <= np.sqrt(6 / 36)
    twin = Conv2D.from_config(layer.config(), layer.params)
    assert twin.kernel_size == (3, 2) and twin.stride == (1, 2) and twin.padding == (1, 1)
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 5))
    np.testing.assert_array_equal(twin.forward(x), layer.forward(x))
    assert LAYER_TYPES["Conv2D"] is Conv2D and layer.unit_kind == "affine"
    assert (layer.in_units, layer.out_units) == (4, 6)
    assert layer.out_axes() == {"W": 0, "b": 0} and layer.in_axes() == {"W": 1}


def test_conv_macs_from_last_input():
    layer = Conv2D(3, 8, 3, stride=2, padding=1)
    assert layer.macs() == 0                                 # spatial size unknown before a forward pass
    layer.forward(np.zeros((1, 3, 10, 10), np.float32))
    assert layer.macs() == 8 * 3 * 9 * 5 * 5


@pytest.mark.parametrize("bad, match", [
    (dict(in_channels=0, out_channels=2, kernel_size=3), "in_channels"),
    (dict(in_channels=1, out_channels=2, kernel_size=(3, 3, 3)), "kernel_size"),
    (dict(in_channels=1, out_channels=2, kernel_size=3, stride=0), "stride"),
    (dict(in_channels=1, out_channels=2, kernel_size=3, padding=-1), "padding"),
    (dict(in_channels=1, out_channels=2, kernel_size=3, init="identity"), "init"),
])
def test_conv_bad_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        Conv2D(**bad)


def test_conv_bad_input():
    layer = Conv2D(3, 2, 3)
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 3, height, width\)"):
        layer.forward(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match="smaller than the 3×3 kernel"):
        layer.forward(np.zeros((2, 3, 2, 5), np.float32))


def test_conv_remove_outputs_and_inputs_keep_remaining_channels():
    rng = np.random.default_rng(6)
    a = Conv2D(3, 5, 3, padding=1, rng=rng, dtype=np.float64)
    b = Conv2D(5, 4, 3, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 3, 6, 6))
    ha = a.forward(x).copy()
    keep = [0, 2, 4]
    a.remove_outputs(keep)
    assert a.out_channels == 3 and a.params["W"].shape == (3, 3, 3, 3) and a.grads["b"].shape == (3,)
    np.testing.assert_allclose(a.forward(x), ha[:, keep], rtol=1e-13)
    # the next conv without input channels 1 and 3 equals the full one fed zeros on those channels
    h0 = ha.copy()
    h0[:, [1, 3]] = 0
    full = b.forward(h0).copy()
    b.remove_inputs(keep)
    assert b.in_channels == 3 and b.params["W"].shape == (4, 3, 3, 3)
    np.testing.assert_allclose(b.forward(ha[:, keep]), full, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="duplicate"):
        a.remove_outputs([0, 0])


def test_conv_removal_slices_optimizer_state():
    rng = np.random.default_rng(7)
    net = Sequential([Conv2D(1, 4, 3, rng=rng, dtype=np.float64), ReLU(), Flatten(),
                      Dense(4 * 4 * 4, 2, rng=rng, dtype=np.float64)])
    tr = Trainer(net, "ce", Adam(1e-2), batch_size=4, rng=0, progress=False, dtype=np.float64)
    tr.fit(rng.standard_normal((8, 1, 6, 6)), rng.integers(0, 2, 8), 1)
    conv = net.layers[0]
    m_before = conv.state["W"]["m"].copy()
    conv.remove_outputs([1, 3])
    np.testing.assert_array_equal(conv.state["W"]["m"], m_before[[1, 3]])


# ------------------------------------------------------------------------------------------ pooling
@pytest.mark.parametrize("kind", ["max", "avg"])
@given(case=pool_cases())
def test_pool_matches_loop_oracle_with_ties(kind, case):
    rng = np.random.default_rng(case["seed"])
    # small integers: many ties inside windows, so the first-maximum rule is exercised
    x = rng.integers(-2, 3, (case["N"], case["C"], case["H"], case["W"])).astype(np.float64)
    layer = (MaxPool2d if kind == "max" else AvgPool2d)(case["kernel"], case["stride"], case["padding"])
    out = layer.forward(channels_last(x) if case["nhwc"] else x)
    dout = rng.standard_normal(out.shape)
    expect, edx = pool_oracle(x, dout, kind, layer.kernel_size, layer.stride, layer.padding)
    np.testing.assert_allclose(out, expect, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(layer.backward(dout), edx, rtol=1e-14, atol=1e-14)


def test_maxpool_ties_go_to_first_maximum():
    x = np.array([[[[1.0, 1.0], [1.0, 0.0]]]])
    layer = MaxPool2d(2)
    assert layer.forward(x).item() == 1.0
    np.testing.assert_array_equal(layer.backward(np.array([[[[5.0]]]])), [[[[5.0, 0.0], [0.0, 0.0]]]])


@pytest.mark.parametrize("cls, args", [(MaxPool2d, (2,)), (MaxPool2d, (3, 2, 1)), (AvgPool2d, (2,)),
                                       (AvgPool2d, ((3, 2), (2, 1), (1, 0)))])
def test_pool_gradcheck(cls, args):
    rng = np.random.default_rng(8)
    # distinct values at least 0.01 apart: finite differences (h = 1e-5) never cross a tie
    x = (rng.permutation(2 * 3 * 6 * 5) * 0.01).reshape(2, 3, 6, 5)
    report = check_layer(cls(*args), x, rng=2)
    assert report.max_error <= 1e-7, str(report)


def test_global_avg_pool_and_flatten():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 4, 5))
    g = GlobalAvgPool2d()
    np.testing.assert_allclose(g.forward(x), x.mean(axis=(2, 3)))
    assert check_layer(g, x, rng=0).max_error <= 1e-7
    f = Flatten()
    assert f.out_units is None
    out = f.forward(channels_last(x))
    np.testing.assert_array_equal(out, x.reshape(2, -1))     # C order: channel c is columns c·H·W … (c+1)·H·W−1
    assert f.in_shape == (3, 4, 5) and f.out_units == 60 and f.in_units == 3 and f.unit_kind == "flatten"
    np.testing.assert_array_equal(f.backward(out), x)
    fixed = Flatten.from_config(f.config(), {})
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 3, 4, 5\)"):
        fixed.forward(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match="in_shape"):
        Flatten(in_shape=(3, 4))


def test_pool_bad_arguments():
    with pytest.raises(ValueError, match="padding"):
        MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="expected input of shape"):
        MaxPool2d(2).forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="smaller than the 3×3 window"):
        AvgPool2d(3).forward(np.zeros((1, 1, 2, 2)))


# ------------------------------------------------------------------------------------------ networks
def test_lenet5_shapes_params_and_gradcheck():
    caffe = lenet5("caffe", rng=0)
    out = caffe.forward(np.zeros((2, 1, 28, 28), np.float32))
    assert out.shape == (2, 10) and out.dtype == np.float32
    assert caffe.n_params() == 431_080 and caffe.macs() == 2_293_000
    classic = lenet5("classic", rng=0)
    assert classic.forward(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    assert classic.n_params() == 61_706
    with pytest.raises(ValueError, match="variant"):
        lenet5("alexnet")
    rng = np.random.default_rng(10)
    small = Sequential([Conv2D(1, 2, 3, padding=1, rng=rng, dtype=np.float64), ReLU(), MaxPool2d(2),
                        Conv2D(2, 3, 3, rng=rng, dtype=np.float64), ReLU(), AvgPool2d(2, 1), Flatten(),
                        Dense(3, 2, rng=rng, dtype=np.float64)])
    X = rng.standard_normal((3, 1, 8, 8))
    report = check_network(small, "ce", X, np.array([0, 1, 1]))
    assert report.max_error <= 1e-7, str(report)


def test_trainer_fits_a_convnet_on_images():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = (X[:, 0, :4].sum(axis=(1, 2)) > X[:, 0, 4:].sum(axis=(1, 2))).astype(np.int64)   # top vs bottom half
    net = Sequential([Conv2D(1, 4, 3, padding=1, rng=1), ReLU(), MaxPool2d(2), Flatten(), Dense(64, 2, rng=1)])
    loss0, _ = evaluate(net, "ce", X, y)
    Trainer(net, "ce", Adam(1e-2), batch_size=16, rng=0, progress=False).fit(X, y, 15)
    loss1, acc = evaluate(net, "ce", X, y)
    assert loss1 < 0.5 * loss0 and acc >= 0.9
    with pytest.raises(ValueError, match="expected 1 channels"):
        evaluate(net, "ce", np.zeros((2, 3, 8, 8), np.float32), [0, 1])
    for bad in (np.zeros(8, np.float32), np.zeros((2, 64), np.float32), np.zeros((2, 1, 64), np.float32)):
        with pytest.raises(ValueError, match=r"X: expected a 4-d array \(samples, channels, height, width\)"):
            evaluate(net, "ce", bad, [0, 1][:bad.shape[0]] if bad.ndim > 1 else [0])
    with pytest.raises(ValueError, match=r"X: expected a 2-d array"):     # a dense net still wants 2-d input
        evaluate(Sequential([Dense(64, 2)]), "ce", X, y)


# ------------------------------------------------------------------------------------------ for the contract test
def _conv_case(rng):
    return Conv2D(2, 3, 3, stride=1, padding=1, rng=rng, dtype=np.float64), rng.standard_normal((2, 2, 5, 4))


def _distinct(rng, shape):
    return (rng.permutation(int(np.prod(shape))) * 0.01).reshape(shape)


CONTRACT_CASES = {
    "Conv2D": _conv_case,
    "MaxPool2d": lambda rng: (MaxPool2d(2), _distinct(rng, (2, 3, 4, 6))),
    "AvgPool2d": lambda rng: (AvgPool2d(3, 2, 1), rng.standard_normal((2, 3, 5, 5))),
    "GlobalAvgPool2d": lambda rng: (GlobalAvgPool2d(), rng.standard_normal((2, 3, 4, 5))),
    "Flatten": lambda rng: (Flatten(), rng.standard_normal((2, 3, 4, 5))),
}


@pytest.mark.parametrize("name", sorted(CONTRACT_CASES))
def test_contract_cases_gradcheck(name):
    layer, x = CONTRACT_CASES[name](np.random.default_rng(0))
    assert type(layer).__name__ == name and LAYER_TYPES[name] is type(layer)
    assert check_layer(layer, x, rng=0).max_error <= 1e-7


def test_lenet5_save_load_roundtrip(tmp_path):
    import minigrow
    net = lenet5("caffe", rng=3)
    x = np.random.default_rng(12).random((3, 1, 28, 28), dtype=np.float32)
    out = net.forward(x).copy()
    minigrow.save_model(tmp_path / "lenet5.npz", net)
    back = minigrow.load_model(tmp_path / "lenet5.npz")
    np.testing.assert_array_equal(back.forward(x), out)
    assert back.layers[0].kernel_size == (5, 5) and back.layers[6].in_shape == (50, 4, 4)


def test_conv_backward_after_eval_forward():
    """Eval mode keeps no column matrix; a backward pass after it recomputes it and gives the same gradients."""
    rng = np.random.default_rng(13)
    layer = Conv2D(2, 3, 3, stride=2, padding=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, 2, 7, 6))
    dout = rng.standard_normal(layer.forward(x, train=True).shape)
    dx = layer.backward(dout).copy()
    g = {k: v.copy() for k, v in layer.grads.items()}
    layer.forward(x, train=False)
    np.testing.assert_array_equal(layer.backward(dout), dx)
    for k in g:
        np.testing.assert_array_equal(layer.grads[k], g[k])
