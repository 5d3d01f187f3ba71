r"""The 2-d convolution  out = b + W ⋆ x  (cross-correlation, as in every deep-learning library), NCHW.

Internal layout (chosen by measurement)
    The user-facing layout is NCHW, batch first. Inside, the layer works channels-last (NHWC): the column matrix
    has one row per output position (n, i, j) and one column per kernel tap (p, q, c), so that

        cols[(n,i,j), (p,q,c)] = x_pad[n, c, i·s + p, j·s + q]        (M × K,  M = N·Ho·Wo,  K = kh·kw·C_in)

    and the whole batch is ONE matrix product ``cols @ W_rᵀ`` (W_r[o, (p,q,c)] = W[o, c, p, q]). The output is
    returned as the NCHW view (a transpose, no copy) of the NHWC result, so the next layer (pooling, ReLU, the
    next conv) reads it channels-last again for free.

    Measured with ``OPENBLAS_NUM_THREADS=1 python bench/conv_layouts.py`` (2 cores shared with other jobs, load
    8–9; OpenBLAS 0.3.31 Haswell, float32, process CPU time, medians of 15; LeNet-5-Caffe shapes, batch 128,
    forward + backward; three runs, ms):

    =========================================  =================  ====================
    layout                                     conv1 (no ∂x)      conv2 (with ∂x)
    =========================================  =================  ====================
    NHWC, cols (M × K), ∂cols tap-major        9.4 / 8.0 / 6.2    31.6 / 31.6 / 26.3
    NHWC, cols (M × K), ∂cols (M × K)          9.9 / 9.4 / 5.9    39.8 / 40.9 / 30.0
    NCHW, cols (K × M) (Caffe's layout)        6.0 / 4.2 / 4.7    38.0 / 28.8 / 35.2
    NCHW, cols (M × K), taps (c,p,q)           9.9 / 6.1 / 6.1    66.4 / 46.8 / 49.6
    this layer (NHWC; tap-major cols, C ≤ 3)   7.5 / 7.7 / 7.0    26.4 / 21.6 / 24.7
    =========================================  =================  ====================

    conv1 1→20 on 28×28, conv2 20→50 on 12×12, 5×5 kernels. conv2 holds ~80 % of LeNet-5's multiply-adds, so
    NHWC is kept for every conv (for conv1 alone Caffe's (K × M) layout is faster: not used, one layout for
    all); its ∂cols is computed tap-major (one batched product giving a contiguous
    (M × C) block per kernel offset), which makes col2im a sum of contiguous blocks into strided slices. For
    inputs with few channels the *column matrix* is filled tap-major as well (see :func:`_im2col`; the
    strided-window copy has runs of only kw·C floats there), which is the "this layer" conv1 figure.

Memory
    The column matrix (and ∂cols in backward) has M·K entries. When it would exceed :data:`MAX_COL_BYTES` the
    batch is processed in chunks of samples (forward and backward), and backward recomputes each chunk's columns
    from the cached padded input instead of keeping them (∂cols has as many entries: the peak is about twice the
    bound). Outputs, ∂x and ∂b are identical; ∂L/∂W equals the unchunked one up to the summation order across
    chunks (tested to 1e-13 relative in float64).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..initializers import init_conv
from ..validate import check_int, check_rng
from .base import Layer, check_keep, register_layer

__all__ = ["Conv2D", "MAX_COL_BYTES", "pair"]

#: Upper bound (bytes) on one column matrix; larger batches are processed in chunks of samples.
MAX_COL_BYTES = 256 * 2 ** 20

#: Inputs with at most this many channels get a tap-major column matrix (see :func:`_im2col`).
TAP_MAJOR_MAX_C = 3


def pair(name, v, lo):
    """An int or a pair of ints, each ≥ lo, as a tuple ``(a, b)``."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")
        return check_int(f"{name}[0]", v[0], lo=lo), check_int(f"{name}[1]", v[1], lo=lo)
    v = check_int(name, v, lo=lo)
    return v, v


def _im2col(xh, kh, kw, sh, sw, Ho, Wo):
    """The column matrix (M × K): rows (n,i,j), columns (p,q,c), cols[(n,i,j),(p,q,c)] = xh[n, i·sh+p, j·sw+q, c].

    Its memory order depends on C (``bench/conv_layouts.py``, LeNet-5 shapes, float32): for few channels (C ≤
    :data:`TAP_MAJOR_MAX_C`) it is the transposed view of a tap-major (K × M) array filled by one contiguous
    block copy per tap (conv1's input, C = 1, 28×28: 0.60–0.78 ms against 1.47–2.52 ms for the strided-window copy, whose
    contiguous runs are only kw·C = 5 floats long); otherwise a row-major copy of the strided window view
    (conv2's input, C = 20, 12×12: 0.91–0.99 ms against 4.62–5.24 ms tap-major; two runs). BLAS reads either order without a copy.
    The threshold 3 lies between the two measured cases, not at a measured crossover.
    """
    N, C = xh.shape[0], xh.shape[3]
    if C <= TAP_MAJOR_MAX_C:
        cT = np.empty((kh, kw, C, N, Ho, Wo), dtype=xh.dtype)
        for p in range(kh):
            for q in range(kw):
                cT[p, q] = xh[:, p:p + sh * (Ho - 1) + 1:sh, q:q + sw * (Wo - 1) + 1:sw, :].transpose(3, 0, 1, 2)
        return cT.reshape(kh * kw * C, N * Ho * Wo).T
    return np.ascontiguousarray(_windows(xh, kh, kw, sh, sw, Ho, Wo)).reshape(N * Ho * Wo, kh * kw * C)


def _col2im(dc, dxp, sh, sw):
    """Add the tap-major ∂cols ``dc`` (kh, kw, N, Ho, Wo, C) into the padded NHWC gradient ``dxp`` in place:
    ∂x_pad[n, i·sh+p, j·sw+q, c] += dc[p, q, n, i, j, c] — one vectorised add of a contiguous block into a
    strided slice per kernel offset (p, q), no ``np.add.at``."""
    kh, kw, _, Ho, Wo, _ = dc.shape
    for p in range(kh):
        for q in range(kw):
            dxp[:, p:p + sh * (Ho - 1) + 1:sh, q:q + sw * (Wo - 1) + 1:sw, :] += dc[p, q]


def _windows(xh, kh, kw, sh, sw, Ho, Wo):
    """Strided view ``(N, Ho, Wo, kh, kw, C)`` of the NHWC array ``xh``: entry [n,i,j,p,q,c] = xh[n, i·sh+p, j·sw+q, c].
    No copy; ``np.ascontiguousarray`` of it is the column matrix (rows (n,i,j), columns (p,q,c))."""
    s0, s1, s2, s3 = xh.strides
    return as_strided(xh, (xh.shape[0], Ho, Wo, kh, kw, xh.shape[3]), (s0, s1 * sh, s2 * sw, s1, s2, s3),
                      writeable=False)


@register_layer
class Conv2D(Layer):
    r"""2-d convolution (cross-correlation) of NCHW input with ``W`` of shape ``(C_out, C_in, kh, kw)``.

    Forward, with x_pad the input zero-padded by (ph, pw) and stride s = (sh, sw):

    .. math::  out[n,o,i,j] = b_o + Σ_{c,p,q} W[o,c,p,q]\; x_{pad}[n, c, i·s_h + p, j·s_w + q]

    output size Ho = ⌊(H + 2ph − kh)/sh⌋ + 1, Wo likewise. As a matrix product: ``out = cols @ W_rᵀ + b``.

    Backward, for δ = ∂L/∂out (δ_m = its row for output position m = (n,i,j)):

    .. math::

        ∂L/∂W[o,c,p,q] = Σ_{n,i,j} δ[n,o,i,j]\; x_{pad}[n,c,i·s_h+p, j·s_w+q]
            \quad (\text{a correlation of δ with the input}; \; ∂L/∂W_r = δᵀ\,cols)

        ∂L/∂b_o = Σ_{n,i,j} δ[n,o,i,j]

        ∂L/∂x_{pad}[n,c,u,v] = Σ_{o,p,q:\, u = i·s_h+p,\, v = j·s_w+q} W[o,c,p,q]\; δ[n,o,i,j]

    — for stride 1 a *full* convolution of δ with the flipped kernel; computed as col2im of ∂cols = δ W_r: for
    each kernel offset (p, q) the block ∂cols[:, (p,q,·)] is added to the strided slice
    x_pad[:, p : p + s_h(Ho−1)+1 : s_h, q : … : s_w, :] (kh·kw vectorised adds, no ``np.add.at``), then the
    padding is cropped off.

    Units: output unit o is filter W[o] and b[o] (``out_axes`` {W: 0, b: 0}); input unit c is W[:, c]
    (``in_axes`` {W: 1}).

    ``macs()`` is the count for the spatial size of the **last input seen** (``input_hw``, recorded at every
    forward pass; not saved): C_out·C_in·kh·kw·Ho·Wo per sample. It is 0 before the first forward pass.
    """

    unit_kind = "affine"
    input_ndim = 4          # (batch, channels, height, width)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, init="torch",
                 rng=None, dtype=np.float32):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, lo=1)
        self.out_channels = check_int("out_channels", out_channels, lo=1)
        self.kernel_size = pair("kernel_size", kernel_size, 1)
        self.stride = pair("stride", stride, 1)
        self.padding = pair("padding", padding, 0)
        self.bias = bool(bias)
        self.init = init
        self.input_hw = None
        rng = check_rng("rng", 0 if rng is None else rng)
        W, b = init_conv(self.in_channels, self.out_channels, self.kernel_size, init, rng, dtype)
        self.params["W"] = W
        if self.bias:
            self.params["b"] = b
        self._init_grads()

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding),
                "bias": self.bias, "init": self.init}

    @property
    def in_units(self):
        return self.in_channels

    @property
    def out_units(self):
        return self.out_channels

    def out_axes(self):
        return {"W": 0, "b": 0} if self.bias else {"W": 0}

    def in_axes(self):
        return {"W": 1}

    def output_hw(self, H, W):
        """Spatial size (Ho, Wo) of the output for an input of spatial size (H, W)."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1

    def macs(self):
        if self.input_hw is None:
            return 0
        Ho, Wo = self.output_hw(*self.input_hw)
        kh, kw = self.kernel_size
        return self.out_channels * self.in_channels * kh * kw * Ho * Wo

    # --- the math ---------------------------------------------------------------------------------------------
    def _chunk(self, N, Ho, Wo, itemsize):
        """Samples per chunk so that one column matrix stays under MAX_COL_BYTES (at least one sample)."""
        kh, kw = self.kernel_size
        per_sample = Ho * Wo * kh * kw * self.in_channels * itemsize
        return max(1, min(N, MAX_COL_BYTES // max(per_sample, 1)))

    def forward(self, x, train=True):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2D({self.in_channels}→{self.out_channels}): expected input of shape "
                             f"(batch, {self.in_channels}, height, width), got {x.shape}")
        N, C, H, Wd = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        if H + 2 * ph < kh or Wd + 2 * pw < kw:
            raise ValueError(f"Conv2D: input of spatial size {H}×{Wd} (padding {ph}, {pw}) is smaller than the "
                             f"{kh}×{kw} kernel; use a smaller kernel or more padding")
        Ho, Wo = self.output_hw(H, Wd)
        self.input_hw = (H, Wd)
        xh = x.transpose(0, 2, 3, 1)                                  # NHWC view (free for conv/pool outputs)
        if ph or pw:                                                  # zero padding, channels last
            xp = np.zeros((N, H + 2 * ph, Wd + 2 * pw, C), dtype=x.dtype)
            xp[:, ph:ph + H, pw:pw + Wd, :] = xh
            xh = xp
        W = self.params["W"]
        # W_rᵀ[(p,q,c), o] = W[o,c,p,q], made contiguous (against the transposed view of W_r: 2.32 vs 2.29 ms
        # for conv1's product in bench/conv_layouts.py — no measurable difference)
        WrT = np.ascontiguousarray(W.transpose(2, 3, 1, 0).reshape(-1, self.out_channels))
        M = N * Ho * Wo
        step = self._chunk(N, Ho, Wo, x.dtype.itemsize)
        if step >= N:
            cols = _im2col(xh, kh, kw, sh, sw, Ho, Wo)
            out = cols @ WrT                                           # (M, C_out) = cols W_rᵀ
        else:
            cols = None                                                # recomputed per chunk in backward
            out = np.empty((M, self.out_channels), dtype=np.result_type(x.dtype, W.dtype))
            for s in range(0, N, step):
                e = min(N, s + step)
                c = _im2col(xh[s:e], kh, kw, sh, sw, Ho, Wo)
                np.matmul(c, WrT, out=out[s * Ho * Wo:e * Ho * Wo])
        if self.bias:
            out += self.params["b"]                                    # + b_o
        # eval mode keeps only the input: a backward pass after it (rare) recomputes the columns
        self._cache = (xh, cols if train else None, (N, C, H, Wd, Ho, Wo), step)
        return out.reshape(N, Ho, Wo, self.out_channels).transpose(0, 3, 1, 2)   # NCHW view of NHWC memory

    def backward(self, dout, need_input_grad=True):
        xh, cols, (N, C, H, Wd, Ho, Wo), step = self._cache
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        Co, P = self.out_channels, Ho * Wo
        D = np.ascontiguousarray(dout.transpose(0, 2, 3, 1)).reshape(N * P, Co)   # δ, one row per (n,i,j)
        W = self.params["W"]
        if self.bias:
            # ∂L/∂b = Σ_m δ_m, as the product 1ᵀδ (a GEMV: 0.09 ms against 1.07–1.26 ms for D.sum(0) on conv1's δ)
            np.matmul(np.ones(D.shape[0], dtype=D.dtype), D, out=self.grads["b"])
        if need_input_grad:
            # W3[(p,q), o, c] = W[o,c,p,q]: ∂cols comes out tap-major, each tap's block contiguous (faster col2im)
            W3 = W.transpose(2, 3, 0, 1).reshape(kh * kw, Co, C)
            dxp = np.zeros((N, H + 2 * ph, Wd + 2 * pw, C), dtype=np.result_type(D.dtype, W.dtype))
        dWr = None
        for s in range(0, N, step):
            e = min(N, s + step)
            Dc = D[s * P:e * P]
            c = cols if cols is not None else _im2col(xh[s:e], kh, kw, sh, sw, Ho, Wo)
            g = Dc.T @ c                                               # ∂L/∂W_r = δᵀ cols
            dWr = g if dWr is None else dWr + g
            if need_input_grad:
                dc = np.matmul(Dc, W3).reshape(kh, kw, e - s, Ho, Wo, C)   # ∂cols = δ W_r, tap-major
                _col2im(dc, dxp[s:e], sh, sw)
        self.grads["W"][...] = dWr.reshape(Co, kh, kw, C).transpose(0, 3, 1, 2)
        if not need_input_grad:
            return None
        return dxp[:, ph:ph + H, pw:pw + Wd, :].transpose(0, 3, 1, 2)  # crop the padding; NCHW view

    def sample_grad_sq_norms(self, x, dout):
        r"""Σ over this layer's parameters of (∂ℓ_n/∂θ)² for every sample n (shape (N,), float64), from its input
        ``x`` (N, C, H, W) and the per-sample output gradients ``dout`` (N, C_out, Ho, Wo) = ∂ℓ_n/∂z_n (not divided
        by N): ∂ℓ_n/∂W_r = δ_nᵀ cols_n, one (C_out × k·k·C) matrix per sample (a batched product), and
        ∂ℓ_n/∂b_o = Σ_{i,j} δ_n[o, i, j]. Pure: uses no cache (for the empirical Fisher of :mod:`minigrow.fisher`);
        memory N·C_out·k·k·C, so call it on a few hundred samples at a time."""
        N, C, H, Wd = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        Ho, Wo = self.output_hw(H, Wd)
        xh = x.transpose(0, 2, 3, 1)
        if ph or pw:
            xp = np.zeros((N, H + 2 * ph, Wd + 2 * pw, C), dtype=x.dtype)
            xp[:, ph:ph + H, pw:pw + Wd, :] = xh
            xh = xp
        cols = _im2col(xh, kh, kw, sh, sw, Ho, Wo).reshape(N, Ho * Wo, -1)        # (N, P, K)
        D = dout.reshape(N, self.out_channels, Ho * Wo)                           # (N, C_out, P)
        G = np.matmul(D, cols)                                                    # ∂ℓ_n/∂W_r, (N, C_out, K)
        out = np.einsum("nok,nok->n", G, G).astype(np.float64)
        if self.bias:
            gb = D.sum(axis=2)
            out += np.einsum("no,no->n", gb, gb)
        return out

    # --- units ------------------------------------------------------------------------------------------------
    def remove_outputs(self, keep):
        """Keep output channels ``keep`` (filters W[o] and b[o]) — with their gradients and optimiser state."""
        keep = check_keep("keep", keep, self.out_channels)
        for name, axis in self.out_axes().items():
            self.slice_param(name, axis, keep)
        self.out_channels = int(self.params["W"].shape[0])

    def remove_inputs(self, keep):
        """Keep input channels ``keep`` (W[:, c])."""
        keep = check_keep("keep", keep, self.in_channels)
        self.slice_param("W", 1, keep)
        self.in_channels = int(self.params["W"].shape[1])
