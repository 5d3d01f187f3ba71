"""Weight initialisers. Every draw comes from an explicit ``numpy.random.Generator``.

Weights are stored PyTorch-style as ``W ∈ R^{fan_out × fan_in}`` so that ``z = W a + b`` reads as in the papers;
batch-first code computes ``Z = A @ W.T + b`` (BLAS reads the transpose without a copy).

============ =====================================================================
name         distribution
============ =====================================================================
``torch``    W, b ~ U(−1/√fan_in, 1/√fan_in)   (PyTorch's ``nn.Linear`` default)
``he``       W ~ U(−√(6/fan_in), √(6/fan_in)), b = 0   (He-uniform, for ReLU)
``glorot``   W ~ U(−√(6/(fan_in+fan_out)), +…), b = 0   (Glorot/Xavier-uniform)
``identity`` W = I (square only), b = 0
``zeros``    W = 0, b = 0
============ =====================================================================

Convolutions (:func:`init_conv`, kernel ``W ∈ R^{C_out × C_in × kh × kw}``) use the same names with
fan_in = C_in·kh·kw and fan_out = C_out·kh·kw: ``torch`` is then PyTorch's ``nn.Conv2d`` default
(kaiming-uniform with a = √5, i.e. bound = √(6/((1+a²) fan_in)) = 1/√fan_in, for W and b alike).
"""
from __future__ import annotations

import numpy as np

from .validate import check_dtype, check_nonneg

INITS = ("torch", "he", "glorot", "identity", "zeros")


def init_dense(fan_in, fan_out, method, rng, dtype=np.float32, scale=1.0):
    """Return ``(W, b)`` for a dense layer, ``W`` of shape ``(fan_out, fan_in)``.

    ``scale`` multiplies the drawn weights and biases (used for init-scale robustness studies): a finite number
    >= 0. ``dtype``: float32 or float64 (integer parameters are refused). Memory: the draw is float64 (so that a
    seed gives the same weights in either dtype); it is scaled in place and cast once, so the peak is 12 bytes per
    float32 weight (not 20 as with ``(scale * W).astype``).
    """
    scale = check_nonneg("scale", scale)
    dtype = check_dtype("dtype", dtype)
    if method == "torch":
        bound = 1.0 / np.sqrt(fan_in)
        W = rng.uniform(-bound, bound, size=(fan_out, fan_in))
        b = rng.uniform(-bound, bound, size=fan_out)
    elif method == "he":
        bound = np.sqrt(6.0 / fan_in)
        W = rng.uniform(-bound, bound, size=(fan_out, fan_in))
        b = np.zeros(fan_out)
    elif method == "glorot":
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        W = rng.uniform(-bound, bound, size=(fan_out, fan_in))
        b = np.zeros(fan_out)
    elif method == "identity":
        if fan_in != fan_out:
            raise ValueError(f"init: 'identity' needs a square layer, got fan_in={fan_in}, fan_out={fan_out}")
        W = np.eye(fan_in)
        b = np.zeros(fan_out)
    elif method == "zeros":
        W = np.zeros((fan_out, fan_in))
        b = np.zeros(fan_out)
    else:
        raise ValueError(f"init: expected one of {list(INITS)}, got {method!r}")
    if scale != 1.0:
        W *= scale                                   # in place: no second float64 copy of W
        b *= scale
    return W.astype(dtype), b.astype(dtype)


CONV_INITS = ("torch", "he", "glorot", "zeros")


def init_conv(in_channels, out_channels, kernel_size, method, rng, dtype=np.float32):
    """Return ``(W, b)`` for a 2-d convolution, ``W`` of shape ``(out_channels, in_channels, kh, kw)``.

    fan_in = in_channels·kh·kw (the inputs one output value sums over), fan_out = out_channels·kh·kw:

    * ``torch``  W, b ~ U(−1/√fan_in, 1/√fan_in)   (PyTorch's ``nn.Conv2d`` default)
    * ``he``     W ~ U(−√(6/fan_in), √(6/fan_in)), b = 0
    * ``glorot`` W ~ U(−√(6/(fan_in+fan_out)), +…), b = 0
    * ``zeros``  W = 0, b = 0
    """
    kh, kw = kernel_size
    shape = (out_channels, in_channels, kh, kw)
    fan_in, fan_out = in_channels * kh * kw, out_channels * kh * kw
    if method == "torch":
        bound = 1.0 / np.sqrt(fan_in)
        W = rng.uniform(-bound, bound, size=shape)
        b = rng.uniform(-bound, bound, size=out_channels)
    elif method == "he":
        bound = np.sqrt(6.0 / fan_in)
        W = rng.uniform(-bound, bound, size=shape)
        b = np.zeros(out_channels)
    elif method == "glorot":
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        W = rng.uniform(-bound, bound, size=shape)
        b = np.zeros(out_channels)
    elif method == "zeros":
        W = np.zeros(shape)
        b = np.zeros(out_channels)
    else:
        raise ValueError(f"init: expected one of {list(CONV_INITS)} for a convolution, got {method!r}")
    return W.astype(dtype), b.astype(dtype)
