r"""Pooling and flattening for NCHW images: MaxPool2d, AvgPool2d, GlobalAvgPool2d, Flatten.

A pooling window of size (kh, kw) with stride (sh, sw) over the input padded by (ph, pw) is read as kh·kw
*taps*: tap (p, q) is the strided view x_pad[:, :, p : p + sh(Ho−1)+1 : sh, q : … : sw] of shape (N, C, Ho, Wo),
Ho = ⌊(H + 2ph − kh)/sh⌋ + 1 (PyTorch's floor mode). When the windows tile the input (stride = kernel, no
padding, H and W divisible by the kernel) the taps come from the reshape (N, Ho, kh, Wo, kw, C) — no padding, no
copy, and backward writes each tap once; otherwise they are strided slices of the padded input and backward adds.

The taps are taken channels-last when the input lives in NHWC memory (the output of :class:`~.conv.Conv2D` does):
on LeNet-5's first pool (128×20×24×24 float32 in NHWC memory, ``bench/conv_layouts.py``, 1 thread) the max over
the 4 NHWC taps takes 0.79 / 1.07 ms (two runs), over the same taps on the NCHW axes 1.40 / 1.68 ms, and the
reshape-and-reduce ``x.reshape(N, C, Ho, 2, Wo, 2).max(axis=(3, 5))`` 3.12 / 4.30 ms — so even tiled windows are read tap by tap (from the
reshape view (N, Ho, kh, Wo, kw, C)) rather than reduced over the reshaped axes.
"""
from __future__ import annotations

import numpy as np

from ..validate import check_int
from .base import Layer, register_layer
from .conv import pair

__all__ = ["MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Flatten"]


def _check_image(name, x):
    if x.ndim != 4:
        raise ValueError(f"{name}: expected input of shape (batch, channels, height, width), got {x.shape}")


def _channels_last(x):
    """``(a, nhwc)``: ``a`` = x as NHWC view when x's memory is channels-last (cheap taps), else x itself."""
    if x.shape[1] > 1 and abs(x.strides[1]) < abs(x.strides[3]):
        return x.transpose(0, 2, 3, 1), True
    return x, False


class _Pool2d(Layer):
    """Shared window bookkeeping of max and average pooling."""

    unit_kind = "elementwise"
    _fill = 0.0

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = pair("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else pair("stride", stride, 1)
        self.padding = pair("padding", padding, 0)
        kh, kw = self.kernel_size
        if self.padding[0] > kh // 2 or self.padding[1] > kw // 2:
            raise ValueError(f"padding: expected at most half the kernel size ({kh // 2}, {kw // 2}), got "
                             f"{self.padding} (a window would hold padding only)")

    def config(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding)}

    def output_hw(self, H, W):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1

    def _taps(self, x):
        """``(taps, a, nhwc, tiled, (Ho, Wo))``: ``taps[(p, q)]`` is the view of tap (p, q) in the layout of ``a``
        (NHWC or NCHW), over the padded input (padding filled with ``_fill``)."""
        _check_image(type(self).__name__, x)
        N, C, H, W = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        if H + 2 * ph < kh or W + 2 * pw < kw:
            raise ValueError(f"{type(self).__name__}: input of spatial size {H}×{W} is smaller than the "
                             f"{kh}×{kw} window")
        Ho, Wo = self.output_hw(H, W)
        a, nhwc = _channels_last(x)
        tiled = (sh, sw) == (kh, kw) and ph == pw == 0 and H % kh == 0 and W % kw == 0
        if tiled:                                       # windows tile the input: a reshape, no copy
            if nhwc:
                r = a.reshape(N, Ho, kh, Wo, kw, C)
                taps = {(p, q): r[:, :, p, :, q, :] for p in range(kh) for q in range(kw)}
            else:
                r = a.reshape(N, C, Ho, kh, Wo, kw)
                taps = {(p, q): r[:, :, :, p, :, q] for p in range(kh) for q in range(kw)}
            return taps, a, nhwc, True, (Ho, Wo)
        if ph or pw:
            if nhwc:
                ap = np.full((N, H + 2 * ph, W + 2 * pw, C), self._fill, dtype=x.dtype)
                ap[:, ph:ph + H, pw:pw + W, :] = a
            else:
                ap = np.full((N, C, H + 2 * ph, W + 2 * pw), self._fill, dtype=x.dtype)
                ap[:, :, ph:ph + H, pw:pw + W] = a
        else:
            ap = a
        taps = {(p, q): self._slice(ap, p, q, Ho, Wo, nhwc) for p in range(kh) for q in range(kw)}
        return taps, a, nhwc, False, (Ho, Wo)

    def _slice(self, a, p, q, Ho, Wo, nhwc):
        sh, sw = self.stride
        i, j = slice(p, p + sh * (Ho - 1) + 1, sh), slice(q, q + sw * (Wo - 1) + 1, sw)
        return a[:, i, j, :] if nhwc else a[:, :, i, j]

    def _scatter(self, shape_a, nhwc, tiled, Ho, Wo, dtype, per_tap):
        """∂L/∂x from ``per_tap(p, q)`` = the gradient arriving at tap (p, q) (layout of ``a``): written into a
        tiled input, added into the padded input otherwise (windows may overlap), then the padding is cropped."""
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        if nhwc:
            N, H, W, C = shape_a
            pad_shape = (N, H + 2 * ph, W + 2 * pw, C)
        else:
            N, C, H, W = shape_a
            pad_shape = (N, C, H + 2 * ph, W + 2 * pw)
        dap = (np.empty if tiled else np.zeros)(pad_shape, dtype=dtype)   # tiled: every entry written once
        for p in range(kh):
            for q in range(kw):
                sl = self._slice(dap, p, q, Ho, Wo, nhwc)
                if tiled:
                    sl[...] = per_tap(p, q)                     # = the reshape's tap (p, q): disjoint taps
                else:
                    sl += per_tap(p, q)                         # overlapping windows add up
        if ph or pw:
            dap = dap[:, ph:ph + H, pw:pw + W, :] if nhwc else dap[:, :, ph:ph + H, pw:pw + W]
        return dap.transpose(0, 3, 1, 2) if nhwc else dap


@register_layer
class MaxPool2d(_Pool2d):
    r"""Max pooling  out[n,c,i,j] = max_{p,q} x_pad[n, c, i·s_h + p, j·s_w + q]  (padding = −∞, as in PyTorch).

    Backward: each window sends its upstream gradient to the position of its maximum,
    ∂L/∂x[n,c,u,v] = Σ_{windows (i,j) whose max is at (u,v)} δ[n,c,i,j] (overlapping windows add up).

    **Ties**: when several positions of a window hold the maximum, the whole gradient goes to the *first* of them
    in the window's row-major scan order (p, then q) — PyTorch's CPU behaviour (its kernel keeps the first
    index with ``val > max``). The argmax is recomputed in backward from the cached input.

    ``stride`` defaults to ``kernel_size``; ``padding`` ≤ kernel_size // 2.
    """

    _fill = -np.inf

    def forward(self, x, train=True):
        taps, a, nhwc, tiled, hw = self._taps(x)
        vs = list(taps.values())
        m = vs[0].copy()
        for v in vs[1:]:
            np.maximum(m, v, out=m)                      # out = max over the kh·kw taps
        self._cache = (taps, a.shape, nhwc, tiled, hw, m, x.dtype)
        return m.transpose(0, 3, 1, 2) if nhwc else m

    def backward(self, dout, need_input_grad=True):
        taps, shape_a, nhwc, tiled, (Ho, Wo), m, dtype = self._cache
        d = dout.transpose(0, 2, 3, 1) if nhwc else dout
        # 0/1 masks in the float dtype (mixed bool·float ufuncs on strided views are several times slower)
        dt = np.result_type(dout.dtype, dtype)
        open_ = np.ones(m.shape, dtype=dt)              # 1 where the window's max is not found yet (first wins)
        hit = np.empty(m.shape, dtype=dt)

        def per_tap(p, q):
            np.equal(taps[(p, q)], m, out=hit)          # 1 where tap (p, q) holds the window's max
            np.multiply(hit, open_, out=hit)            # … and no earlier tap did
            np.subtract(open_, hit, out=open_)
            return np.multiply(d, hit, out=hit)

        return self._scatter(shape_a, nhwc, tiled, Ho, Wo, dt, per_tap)


@register_layer
class AvgPool2d(_Pool2d):
    r"""Average pooling  out[n,c,i,j] = (1/(kh·kw)) Σ_{p,q} x_pad[n, c, i·s_h + p, j·s_w + q]  (zero padding
    counted in the divisor, PyTorch's default ``count_include_pad=True``).

    Backward: ∂L/∂x_pad[n,c,i·s_h+p, j·s_w+q] += δ[n,c,i,j] / (kh·kw) for every tap (p, q).
    """

    def forward(self, x, train=True):
        taps, a, nhwc, tiled, hw = self._taps(x)
        vs = list(taps.values())
        s = vs[0].astype(np.result_type(x.dtype, np.float32), copy=True)
        for v in vs[1:]:
            s += v
        s *= 1.0 / len(vs)
        self._cache = (a.shape, nhwc, tiled, hw, x.dtype)
        return s.transpose(0, 3, 1, 2) if nhwc else s

    def backward(self, dout, need_input_grad=True):
        shape_a, nhwc, tiled, (Ho, Wo), dtype = self._cache
        kh, kw = self.kernel_size
        d = (dout.transpose(0, 2, 3, 1) if nhwc else dout) * (1.0 / (kh * kw))
        return self._scatter(shape_a, nhwc, tiled, Ho, Wo, d.dtype, lambda p, q: d)


@register_layer
class GlobalAvgPool2d(Layer):
    r"""(N, C, H, W) → (N, C):  out[n,c] = (1/(H·W)) Σ_{u,v} x[n,c,u,v];  ∂L/∂x[n,c,u,v] = δ[n,c] / (H·W)."""

    unit_kind = "elementwise"

    def forward(self, x, train=True):
        _check_image("GlobalAvgPool2d", x)
        self._cache = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dout, need_input_grad=True):
        N, C, H, W = self._cache
        dx = np.empty((N, H, W, C), dtype=dout.dtype)     # channels-last memory, like a conv's input gradient
        dx[...] = (dout * (1.0 / (H * W)))[:, None, None, :]
        return dx.transpose(0, 3, 1, 2)


@register_layer
class Flatten(Layer):
    """(N, C, H, W) → (N, C·H·W) in C order: channel c becomes the columns c·H·W … (c+1)·H·W − 1.

    ``in_shape`` (C, H, W) is recorded at every forward pass; when given to the constructor (or restored from a
    saved config) a forward pass with another shape is refused. ``out_units`` = C·H·W once known.
    """

    unit_kind = "flatten"

    def __init__(self, in_shape=None):
        super().__init__()
        if in_shape is not None:
            if not isinstance(in_shape, (tuple, list)) or len(in_shape) != 3:
                raise ValueError(f"in_shape: expected (channels, height, width), got {in_shape!r}")
            in_shape = tuple(check_int(f"in_shape[{i}]", v, lo=1) for i, v in enumerate(in_shape))
        self._fixed = in_shape is not None
        self.in_shape = in_shape

    def config(self):
        return {"in_shape": list(self.in_shape)} if self.in_shape is not None else {}

    @property
    def in_units(self):
        return None if self.in_shape is None else self.in_shape[0]

    @property
    def out_units(self):
        return None if self.in_shape is None else int(np.prod(self.in_shape))

    def remove_outputs(self, keep):
        """Surgery: the input channels ``keep`` stay (their H·W column blocks are sliced in the next layer by
        :func:`minigrow.surgery.remove_units`); the recorded ``in_shape`` follows."""
        if self.in_shape is not None:
            self.in_shape = (int(np.asarray(keep).size),) + tuple(self.in_shape[1:])

    def forward(self, x, train=True):
        _check_image("Flatten", x)
        if self._fixed and tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"Flatten: expected input of shape (batch, {', '.join(map(str, self.in_shape))}), "
                             f"got {x.shape}")
        self.in_shape = tuple(int(s) for s in x.shape[1:])
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, need_input_grad=True):
        return dout.reshape(self._cache)
