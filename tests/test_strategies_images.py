"""The image, conv and normalisation strategies of minigrow.strategies, used as their docstring shows."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from minigrow import strategies as mst
from minigrow.layers import BatchNorm1d, BatchNorm2d, Conv2D, LayerNorm


@given(x=mst.images(n_channels=2, min_side=3), data=st.data())
def test_conv_gradients_on_drawn_shapes_strides_paddings(x, data):
    k, s, p = data.draw(mst.conv_params(x.shape[2], x.shape[3]))
    mst.assert_layer_gradients(Conv2D(2, 3, k, stride=s, padding=p, rng=0, dtype=np.float64), x)


@given(x=mst.spread_batches((4, 3)))
def test_batchnorm1d_on_non_degenerate_batches(x):
    mst.assert_layer_gradients(BatchNorm1d(3, dtype=np.float64), x)


@given(x=mst.spread_batches((2, 2, 3, 3)))
def test_batchnorm2d_on_non_degenerate_batches(x):
    mst.assert_layer_gradients(BatchNorm2d(2, dtype=np.float64), x)


@given(x=mst.spread_batches((3, 4), axes=(1,)))
def test_layernorm_on_non_degenerate_samples(x):
    mst.assert_layer_gradients(LayerNorm(4, dtype=np.float64), x)


@given(x=mst.spread_batches((5, 3)))
def test_spread_batches_have_the_promised_spread(x):
    assert np.all(np.ptp(x, axis=0) >= 0.2)


# Normalisation layers as a student writes them outside the package (CS231n's textbook forms), checked with the
# same strategies: they must pass (the shrunk all-equal batch used to fail correct layers).
from minigrow.layers import Layer  # noqa: E402


class StudentBatchNorm(Layer):
    def __init__(self, n, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.params.update(gamma=np.linspace(0.5, 1.5, n), beta=np.linspace(-0.2, 0.3, n))
        self._init_grads()

    def forward(self, x, train=True):
        mu, var = x.mean(0), x.var(0)
        xhat = (x - mu) / np.sqrt(var + self.eps)
        self._cache = (xhat, np.sqrt(var + self.eps))
        return self.params["gamma"] * xhat + self.params["beta"]

    def backward(self, dout, need_input_grad=True):
        xhat, sd = self._cache
        m = dout.shape[0]
        self.grads["beta"] = dout.sum(0)
        self.grads["gamma"] = (dout * xhat).sum(0)
        dxhat = dout * self.params["gamma"]
        return (m * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0)) / (m * sd)


class StudentLayerNorm(Layer):
    def __init__(self, n, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.params.update(gamma=np.linspace(0.5, 1.5, n), beta=np.linspace(-0.2, 0.3, n))
        self._init_grads()

    def forward(self, x, train=True):
        mu, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
        xhat = (x - mu) / np.sqrt(var + self.eps)
        self._cache = (xhat, np.sqrt(var + self.eps))
        return self.params["gamma"] * xhat + self.params["beta"]

    def backward(self, dout, need_input_grad=True):
        xhat, sd = self._cache
        d = dout.shape[1]
        self.grads["beta"] = dout.sum(0)
        self.grads["gamma"] = (dout * xhat).sum(0)
        dxhat = dout * self.params["gamma"]
        return (d * dxhat - dxhat.sum(1, keepdims=True) - xhat * (dxhat * xhat).sum(1, keepdims=True)) / (d * sd)


@given(x=mst.spread_batches((4, 3)))
def test_student_batchnorm_passes(x):
    mst.assert_layer_gradients(StudentBatchNorm(3), x)


@given(x=mst.spread_batches((3, 4), axes=(1,)))
def test_student_layernorm_passes(x):
    mst.assert_layer_gradients(StudentLayerNorm(4), x)
