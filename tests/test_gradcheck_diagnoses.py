"""The gradient checker catches the mistakes students make and says which one (minigrow.gradcheck.check_layer).

Each wrong layer below is a correct one with one typical mistake; the check must fail with a diagnosis or hint
that names the mistake — and the correct layer must pass.
"""
import numpy as np
import pytest

from minigrow.gradcheck import check_layer
from minigrow.layers import BatchNorm1d, Dense, Dropout, Layer, LayerNorm


class Scale(Layer):
    """out = x ⊙ w (w per feature) — the correct reference for the mistakes below."""

    def __init__(self, n=3, seed=0):
        super().__init__()
        self.params["w"] = np.random.default_rng(seed).uniform(0.5, 1.5, n)
        self._init_grads()

    def forward(self, x, train=True):
        self._cache = x
        return x * self.params["w"]

    def backward(self, dout, need_input_grad=True):
        x = self._cache
        self.grads["w"][...] = np.sum(dout * x, axis=0)
        return dout * self.params["w"]


class Accumulates(Scale):
    def backward(self, dout, need_input_grad=True):
        self.grads["w"] += np.sum(dout * self._cache, axis=0)
        return dout * self.params["w"]


class MutatesInput(Scale):
    def forward(self, x, train=True):
        self._cache = x.copy()
        x *= self.params["w"]
        return x


class MutatesUpstream(Scale):
    def backward(self, dout, need_input_grad=True):
        self.grads["w"][...] = np.sum(dout * self._cache, axis=0)
        dout *= self.params["w"]
        return dout


class WrongShape(Scale):
    def backward(self, dout, need_input_grad=True):
        self.grads["w"] = np.sum(dout * self._cache, axis=0, keepdims=True)
        return dout * self.params["w"]


class MissingKey(Scale):
    def __init__(self):
        super().__init__()
        self.params["b"] = np.zeros(3)
        self._init_grads()
        del self.grads["b"]

    def forward(self, x, train=True):
        self._cache = x
        return x * self.params["w"] + self.params["b"]


class SignSlip(Scale):
    def backward(self, dout, need_input_grad=True):
        self.grads["w"][...] = -np.sum(dout * self._cache, axis=0)
        return dout * self.params["w"]


class MeanNotSum(Scale):
    def backward(self, dout, need_input_grad=True):
        self.grads["w"][...] = np.mean(dout * self._cache, axis=0)
        return dout * self.params["w"]


class RandomForward(Scale):
    """A dropout that draws from a fresh random source every call (no way to hold the mask)."""

    def forward(self, x, train=True):
        self._mask = np.random.default_rng().random(x.shape) > 0.5
        self._cache = x
        return x * self.params["w"] * self._mask

    def backward(self, dout, need_input_grad=True):
        self.grads["w"][...] = np.sum(dout * self._cache * self._mask, axis=0)
        return dout * self.params["w"] * self._mask


class MissingTerm(Layer):
    """out = x ⊙ σ(w x): the input gradient forgets the w x σ(1 − σ) term."""

    def __init__(self):
        super().__init__()
        self.params["w"] = np.array([0.7, -0.4, 1.3])
        self._init_grads()

    def forward(self, x, train=True):
        s = 1 / (1 + np.exp(-self.params["w"] * x))
        self._cache = (x, s)
        return x * s

    def backward(self, dout, need_input_grad=True):
        x, s = self._cache
        self.grads["w"][...] = np.sum(dout * x * x * s * (1 - s), axis=0)
        return dout * s                                       # forgot + w x s (1 − s)


class WrongAxis(Layer):
    """Dense with ∂L/∂b summed over the wrong axis (over units, broadcast back)."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(3)
        self.params["W"] = rng.standard_normal((3, 4))
        self.params["b"] = rng.standard_normal(3)
        self._init_grads()

    def forward(self, x, train=True):
        self._cache = x
        return x @ self.params["W"].T + self.params["b"]

    def backward(self, dout, need_input_grad=True):
        self.grads["W"][...] = dout.T @ self._cache
        self.grads["b"][...] = dout.sum(axis=1)[:3]            # wrong axis (samples ↔ units)
        return dout @ self.params["W"]


X = np.random.default_rng(1).uniform(0.3, 1.5, (3, 3))

CATALOGUE = [
    (Accumulates, "adds to grads"),
    (MutatesInput, "modified its input"),
    (MutatesUpstream, "modified its upstream gradient"),
    (WrongShape, "has shape (1, 3)"),
    (MissingKey, "no entry 'b'"),
    (SignSlip, "sign slip"),
    (MeanNotSum, "constant factor"),
    (RandomForward, "different outputs"),
    (MissingTerm, "input"),
]


def test_correct_reference_passes():
    rep = check_layer(Scale(), X)
    assert rep.ok and not rep.diagnoses, str(rep)


@pytest.mark.parametrize("cls,needle", CATALOGUE, ids=[c.__name__ for c, _ in CATALOGUE])
def test_mistake_is_caught_and_named(cls, needle):
    rep = check_layer(cls(), X)
    text = str(rep)
    assert not rep.ok, f"{cls.__name__} passed:\n{text}"
    assert needle in text, f"{cls.__name__}: {needle!r} not in\n{text}"


def test_missing_term_names_the_input_array():
    rep = check_layer(MissingTerm(), X)
    assert rep.worst["name"] == "input" and rep.worst["hint"], str(rep)


def test_wrong_axis_is_caught_with_a_hint():
    rep = check_layer(WrongAxis(), np.random.default_rng(2).standard_normal((5, 4)))
    assert not rep.ok and rep.worst["name"] == "b" and rep.worst["hint"], str(rep)


def test_float32_layer_is_checked_in_a_float64_copy_with_a_warning():
    layer = Dense(4, 3, rng=0)                                  # the library default: float32
    rep = check_layer(layer, np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    assert rep.ok, str(rep)                                     # a correct float32 layer passes …
    assert any("float64" in d["message"] and not d["fatal"] for d in rep.diagnoses)   # … with the warning
    assert layer.dtype == np.float32                            # and the user's layer is untouched


def test_upstream_is_independent_of_an_input_drawn_with_the_same_seed():
    # a correct batch norm checked at x = default_rng(0) draws: u must not be that same array
    x = np.random.default_rng(0).standard_normal((6, 3))
    rep = check_layer(BatchNorm1d(3, dtype=np.float64), x, rng=0)
    assert rep.ok, str(rep)


def test_stochastic_layer_is_held_fixed_through_the_protocol():
    layer = Dropout(0.5, rng=0)
    rep = check_layer(layer, np.random.default_rng(0).standard_normal((4, 5)))
    assert rep.ok, str(rep)
    assert layer.hold_mask is False                             # restored afterwards


def test_layernorm_written_outside_the_package_passes():
    rep = check_layer(LayerNorm(4, dtype=np.float64), np.random.default_rng(5).standard_normal((3, 4)))
    assert rep.ok, str(rep)


def test_nan_input_is_refused():
    with pytest.raises(ValueError, match="x"):
        check_layer(Scale(), np.array([[1.0, np.nan, 0.5]]))
