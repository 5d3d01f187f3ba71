r"""Normalisation layers: batch norm (1-d and 2-d) and layer norm, with hand-derived backward passes.

Batch normalisation (Ioffe & Szegedy 2015), per unit c of axis 1, statistics over every other axis
(``(N,)`` for ``(N, F)``, ``(N, L)`` for ``(N, C, L)``, ``(N, H, W)`` for ``(N, C, H, W)``), M values per unit:

.. math::
    μ = \frac1M Σ x,\qquad σ² = \frac1M Σ (x − μ)²,\qquad σ = \sqrt{σ² + ε},\qquad
    x̂ = (x − μ)/σ,\qquad y = γ x̂ + β

Layer normalisation (Ba, Kiros & Hinton 2016) is the same map with the statistics taken per *sample* over the
trailing ``normalized_shape`` axes and γ, β of that shape. The derivation of both backward passes is in
:class:`BatchNorm1d`'s docstring and in docs/derivations/batchnorm.md (same symbols).
"""
from __future__ import annotations

import numbers

import numpy as np

from ..validate import check_bool, check_dtype, check_int, check_positive, check_prob
from .base import Layer, register_layer

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


class _BatchNorm(Layer):
    r"""Batch normalisation over every axis but 1 (shared by :class:`BatchNorm1d` and :class:`BatchNorm2d`).

    Parameters
    ----------
    num_features : int
        C, the number of units on axis 1 (features of a dense layer, channels of a conv layer).
    eps : float
        ε added to the variance, default 1e-5.
    momentum : float or None
        m of the running statistics, default 0.1 (PyTorch's convention: r ← (1 − m) r + m·stat). ``None`` gives
        the cumulative average over all batches seen, m = 1 / num_batches_tracked.
    affine : bool
        Learn γ (``gamma``, ones) and β (``beta``, zeros); without them y = x̂.
    dtype : float32 or float64
        dtype of the parameters *and* of the running statistics.

    State
    -----
    params ``gamma``, ``beta`` (shape (C,), when ``affine``); buffers ``running_mean`` (zeros), ``running_var``
    (ones), both (C,), and ``num_batches_tracked`` (an int64 scalar, as in PyTorch).

    Training mode (``train=True``) normalises with the batch mean μ and the *biased* batch variance σ², and
    updates the running statistics with μ and the *unbiased* variance σ²·M/(M − 1) (PyTorch semantics):

    .. math::  r_μ ← (1 − m) r_μ + m μ,\qquad r_{σ²} ← (1 − m) r_{σ²} + m \frac{M}{M − 1} σ²

    (M ≥ 2 values per unit are needed). Eval mode (``train=False``) normalises with the running statistics,
    σ_r = √(r_{σ²} + ε), and updates nothing — it is the fixed affine map y = γ (x − r_μ)/σ_r + β.

    Backward, training mode. With g = ∂L/∂y and Σ a sum over the M values of one unit (the reduced axes):

    .. math::
        ∂L/∂β = Σ g,\qquad ∂L/∂γ = Σ g x̂,\qquad ∂L/∂x̂ = γ g

    and x depends on x̂ directly and through μ and σ. From ∂x̂_i/∂x_k = (δ_ik − 1/M)/σ − x̂_i x̂_k/(Mσ)
    (because ∂μ/∂x_k = 1/M and ∂σ/∂x_k = x̂_k/M):

    .. math::
        ∂L/∂x_k = Σ_i ∂L/∂x̂_i\, ∂x̂_i/∂x_k
                = \frac{γ}{σ}\Big(g_k − \frac1M Σ g − \frac{x̂_k}{M} Σ g x̂\Big)
                = \frac{γ/σ}{M}\big(M g_k − Σ g − x̂_k\, Σ g x̂\big)

    (so Σ_k ∂L/∂x_k = 0: shifting the unit's whole batch changes nothing; and Σ_k x̂_k ∂L/∂x_k =
    (γ/σ)(ε/σ²) Σ g x̂, zero but for ε: neither does scaling it).

    Backward, eval mode: μ, σ are the constants r_μ, σ_r, so x̂ = (x − r_μ)/σ_r and

    .. math::  ∂L/∂β = Σ g,\qquad ∂L/∂γ = Σ g x̂,\qquad ∂L/∂x = (γ/σ_r)\, g
    """

    unit_kind = "elementwise"
    _ranks: tuple = ()           # accepted input ranks

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, dtype=np.float32):
        super().__init__()
        num_features = check_int("num_features", num_features, lo=1)
        self.eps = check_positive("eps", eps)
        self.momentum = None if momentum is None else check_prob("momentum", momentum)
        self.affine = check_bool("affine", affine)
        dt = check_dtype("dtype", dtype)
        if self.affine:
            self.params["gamma"] = np.ones(num_features, dtype=dt)
            self.params["beta"] = np.zeros(num_features, dtype=dt)
        self.buffers["running_mean"] = np.zeros(num_features, dtype=dt)
        self.buffers["running_var"] = np.ones(num_features, dtype=dt)
        self.buffers["num_batches_tracked"] = np.array(0, dtype=np.int64)
        self._init_grads()

    # The number of units is read off the arrays, so slicing units (surgery) keeps it right.
    @property
    def num_features(self):
        return int(self.buffers["running_mean"].shape[0])

    @property
    def in_units(self):
        return self.num_features

    @property
    def out_units(self):
        return self.num_features

    @property
    def dtype(self):
        return self.buffers["running_mean"].dtype      # also without affine parameters

    def config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine}

    @classmethod
    def from_config(cls, config, params, buffers=None):
        cfg = dict(config)
        floats = [v for v in list(params.values()) + list((buffers or {}).values()) if v.dtype.kind == "f"]
        if floats:
            cfg["dtype"] = floats[0].dtype          # rebuild in the saved dtype (params and buffers alike)
        return super().from_config(cfg, params, buffers)

    def out_axes(self):
        axes = {"running_mean": 0, "running_var": 0}
        if self.affine:
            axes.update(gamma=0, beta=0)
        return axes

    def macs(self):
        return 0          # element-wise: O(1) per value and not a multiply-add count of a producer

    def _check_input(self, x):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{type(self).__name__}: expected a NumPy array, got {type(x).__name__}")
        if x.ndim not in self._ranks or x.shape[1] != self.num_features:
            want = " or ".join(f"({', '.join(['N', str(self.num_features)] + ['…'] * (r - 2))})"
                               if r > 2 else f"(N, {self.num_features})" for r in self._ranks)
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input of shape {want}, "
                             f"got {x.shape}")

    def forward(self, x, train=True):
        self._check_input(x)
        axes = (0,) + tuple(range(2, x.ndim))            # every axis but the unit axis 1
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)    # (C,) → broadcastable against x
        M = x.size // x.shape[1]
        if train:
            if M < 2:
                raise ValueError(f"{type(self).__name__}: training mode needs more than one value per unit "
                                 f"(got input of shape {x.shape}); use a batch of ≥ 2 samples or train=False")
            mu = x.mean(axis=axes)                                       # μ = (1/M) Σ x
            xc = x - mu.reshape(shape)
            var = np.mean(xc * xc, axis=axes)                            # σ² = (1/M) Σ (x − μ)²  (biased)
            inv_std = 1.0 / np.sqrt(var + self.eps)                      # 1/σ, σ = √(σ² + ε)
            xhat = xc * inv_std.reshape(shape)                           # x̂ = (x − μ)/σ
            self._update_running(mu, var, M)
        else:
            # eval: the fixed affine map y = γ (x − r_μ)/σ_r + β = a x + b with a = γ/σ_r, b = β − a r_μ
            # (one pass over x; x̂ is only formed in backward, for ∂L/∂γ)
            rm = self.buffers["running_mean"]
            inv_std = 1.0 / np.sqrt(self.buffers["running_var"] + self.eps)          # 1/σ_r
            a = inv_std * self.params["gamma"] if self.affine else inv_std
            b = self.params["beta"] - a * rm if self.affine else -a * rm
            self._cache = (x, inv_std, train, axes, shape, M)
            y = x * a.reshape(shape)
            y += b.reshape(shape).astype(y.dtype, copy=False)
            return y
        self._cache = (xhat, inv_std, train, axes, shape, M)
        if not self.affine:
            return xhat
        return xhat * self.params["gamma"].reshape(shape) + self.params["beta"].reshape(shape)   # y = γ x̂ + β

    def _update_running(self, mu, var, M):
        n = self.buffers["num_batches_tracked"] + 1
        self.buffers["num_batches_tracked"] = np.array(n, dtype=np.int64)
        m = 1.0 / float(n) if self.momentum is None else self.momentum
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        # r_μ ← (1 − m) r_μ + m μ;  r_σ² ← (1 − m) r_σ² + m σ² M/(M − 1)   (unbiased batch variance)
        self.buffers["running_mean"] = ((1 - m) * rm + m * mu).astype(rm.dtype, copy=False)
        self.buffers["running_var"] = ((1 - m) * rv + m * var * (M / (M - 1))).astype(rv.dtype, copy=False)

    def backward(self, dout, need_input_grad=True):
        cached, inv_std, train, axes, shape, M = self._cache     # cached: x̂ (training mode) or x (eval mode)
        scale = self.params["gamma"] * inv_std if self.affine else inv_std     # γ/σ  (γ/σ_r in eval mode)
        if not train:
            if self.affine:
                xhat = (cached - self.buffers["running_mean"].reshape(shape)) * inv_std.reshape(shape)  # x̂
                np.sum(dout, axis=axes, out=self.grads["beta"])          # ∂L/∂β = Σ g
                np.sum(dout * xhat, axis=axes, out=self.grads["gamma"])  # ∂L/∂γ = Σ g x̂
            return dout * scale.reshape(shape) if need_input_grad else None    # ∂L/∂x = (γ/σ_r) g
        xhat = cached
        sg = np.sum(dout, axis=axes)                                     # Σ g
        sgx = np.sum(dout * xhat, axis=axes)                             # Σ g x̂
        if self.affine:
            self.grads["beta"][...] = sg                                 # ∂L/∂β = Σ g
            self.grads["gamma"][...] = sgx                               # ∂L/∂γ = Σ g x̂
        if not need_input_grad:
            return None
        # ∂L/∂x = (γ/σ)/M · (M g − Σ g − x̂ Σ g x̂)
        return (scale / M).reshape(shape) * (M * dout - sg.reshape(shape) - xhat * sgx.reshape(shape))


@register_layer
class BatchNorm1d(_BatchNorm):
    __doc__ = (_BatchNorm.__doc__.replace("over every axis but 1 (shared by :class:`BatchNorm1d` and "
                                          ":class:`BatchNorm2d`)", "of ``(N, C)`` (or ``(N, C, L)``) inputs"))
    _ranks = (2, 3)


@register_layer
class BatchNorm2d(_BatchNorm):
    __doc__ = (_BatchNorm.__doc__.replace("over every axis but 1 (shared by :class:`BatchNorm1d` and "
                                          ":class:`BatchNorm2d`)", "of NCHW inputs, per channel over (N, H, W)"))
    _ranks = (4,)


@register_layer
class LayerNorm(Layer):
    r"""Layer normalisation: each sample normalised over its trailing ``normalized_shape`` axes (PyTorch semantics).

    Parameters
    ----------
    normalized_shape : int or tuple of int
        S, the trailing shape of the input to normalise over (``F`` for ``(N, F)``; ``(C, H, W)`` for a whole
        NCHW sample, ``W`` for the rows of an image …). The input's shape must end with S.
    eps : float
        ε added to the variance, default 1e-5.
    elementwise_affine : bool
        Learn γ (``gamma``, ones) and β (``beta``, zeros) of shape S.
    dtype : float32 or float64

    Forward, per sample (one set of leading indices), over the M = ∏S trailing values, no running statistics
    (training and eval mode are the same map):

    .. math::  μ = \frac1M Σ x,\quad σ = \sqrt{\frac1M Σ (x − μ)² + ε},\quad x̂ = (x − μ)/σ,\quad y = γ ⊙ x̂ + β

    Backward: as batch norm's (see :class:`BatchNorm1d`) with the roles of the axes swapped and γ inside the sum,
    since γ varies over the normalised axes. With g = ∂L/∂y, ĝ = γ ⊙ g = ∂L/∂x̂ and Σ over the normalised axes of
    one sample:

    .. math::
        ∂L/∂β = Σ_{samples} g,\qquad ∂L/∂γ = Σ_{samples} g ⊙ x̂,\qquad
        ∂L/∂x = \frac{1/σ}{M}\big(M ĝ − Σ ĝ − x̂\, Σ ĝ x̂\big)

    ``unit_kind`` is ``"opaque"``: every output depends on every normalised input of its sample.
    """

    unit_kind = "opaque"

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, dtype=np.float32):
        super().__init__()
        if isinstance(normalized_shape, (numbers.Integral, np.integer)) and not isinstance(normalized_shape, bool):
            normalized_shape = (normalized_shape,)
        if not isinstance(normalized_shape, (tuple, list)) or not normalized_shape:
            raise TypeError(f"normalized_shape: expected an int or a non-empty tuple of ints, got "
                            f"{normalized_shape!r}")
        self.normalized_shape = tuple(check_int(f"normalized_shape[{i}]", s, lo=1)
                                      for i, s in enumerate(normalized_shape))
        self.eps = check_positive("eps", eps)
        self.elementwise_affine = check_bool("elementwise_affine", elementwise_affine)
        self._dtype = check_dtype("dtype", dtype)
        if self.elementwise_affine:
            self.params["gamma"] = np.ones(self.normalized_shape, dtype=self._dtype)
            self.params["beta"] = np.zeros(self.normalized_shape, dtype=self._dtype)
        self._init_grads()

    def config(self):
        return {"normalized_shape": list(self.normalized_shape), "eps": self.eps,
                "elementwise_affine": self.elementwise_affine}

    @classmethod
    def from_config(cls, config, params, buffers=None):
        cfg = dict(config)
        cfg["normalized_shape"] = tuple(cfg["normalized_shape"])       # JSON gives a list
        if params:
            cfg["dtype"] = next(iter(params.values())).dtype
        return super().from_config(cfg, params, buffers)

    @property
    def dtype(self):
        return self.params["gamma"].dtype if self.elementwise_affine else self._dtype

    def astype(self, dtype):
        self._dtype = check_dtype("dtype", dtype)
        return super().astype(dtype)

    def macs(self):
        return 0

    def forward(self, x, train=True):
        S = self.normalized_shape
        if not isinstance(x, np.ndarray):
            raise TypeError(f"LayerNorm: expected a NumPy array, got {type(x).__name__}")
        if x.ndim < len(S) + 1 or x.shape[x.ndim - len(S):] != S:
            raise ValueError(f"LayerNorm{S}: expected input of shape (N, …, {', '.join(map(str, S))}), "
                             f"got {x.shape}")
        axes = tuple(range(x.ndim - len(S), x.ndim))       # the trailing normalised axes
        mu = x.mean(axis=axes, keepdims=True)                               # μ = (1/M) Σ x   (per sample)
        xc = x - mu
        inv_std = 1.0 / np.sqrt(np.mean(xc * xc, axis=axes, keepdims=True) + self.eps)   # 1/σ
        xhat = xc * inv_std                                                 # x̂ = (x − μ)/σ
        self._cache = (xhat, inv_std, axes)
        if not self.elementwise_affine:
            return xhat
        return xhat * self.params["gamma"] + self.params["beta"]            # y = γ ⊙ x̂ + β

    def backward(self, dout, need_input_grad=True):
        xhat, inv_std, axes = self._cache
        lead = tuple(range(dout.ndim - len(axes)))          # the sample (leading) axes
        if self.elementwise_affine:
            np.sum(dout, axis=lead, out=self.grads["beta"])                 # ∂L/∂β = Σ_samples g
            np.sum(dout * xhat, axis=lead, out=self.grads["gamma"])         # ∂L/∂γ = Σ_samples g ⊙ x̂
        if not need_input_grad:
            return None
        gh = dout * self.params["gamma"] if self.elementwise_affine else dout     # ĝ = ∂L/∂x̂ = γ ⊙ g
        M = int(np.prod(self.normalized_shape))
        sg = np.sum(gh, axis=axes, keepdims=True)                           # Σ ĝ
        sgx = np.sum(gh * xhat, axis=axes, keepdims=True)                   # Σ ĝ x̂
        return (inv_std / M) * (M * gh - sg - xhat * sgx)                   # ∂L/∂x = (1/σ)/M (M ĝ − Σĝ − x̂ Σĝx̂)
