"""Benchmark: the internal layout of Conv2D (the measurement behind the choice documented in minigrow/layers/conv.py).

Forward + backward of the two convolutions of LeNet-5-Caffe (batch 128, float32) with three column layouts, and
the parts (im2col copy, the three matrix products, col2im) of the second one:

* ``nhwc``      channels-last, cols (M × K), rows (n,i,j), taps (p,q,c); ∂cols tap-major (one batched product)
                — the layout Conv2D uses;
* ``nhwc-MxK``  the same but ∂cols = δ W_r as one (M × K) product, col2im from its strided columns;
* ``nchw-KxM``  Caffe's layout, cols (K × M), taps (c,p,q), out = W_r cols;
* ``nchw-MxK``  NCHW input, cols (M × K) with taps (c,p,q).

    OPENBLAS_NUM_THREADS=1 python bench/conv_layouts.py

Not a test: timings depend on the machine; medians of 15 runs of the process CPU time (less distorted than wall
time on a busy machine; run it with one BLAS thread).
"""
import time

import numpy as np
from numpy.lib.stride_tricks import as_strided

rng = np.random.default_rng(0)


def nhwc_fb(x, W, b, need_dx=True, tap_major=True):
    N, C, H, Wd = x.shape
    Co, _, kh, kw = W.shape
    xh = x.transpose(0, 2, 3, 1)
    Ho, Wo = H - kh + 1, Wd - kw + 1
    st = xh.strides
    v = as_strided(xh, (N, Ho, Wo, kh, kw, C), (st[0], st[1], st[2], st[1], st[2], st[3]))
    cols = np.ascontiguousarray(v).reshape(N * Ho * Wo, kh * kw * C)
    Wr = W.transpose(0, 2, 3, 1).reshape(Co, -1)
    out = cols @ Wr.T
    out += b
    y = out.reshape(N, Ho, Wo, Co).transpose(0, 3, 1, 2)
    D = np.ascontiguousarray(y.transpose(0, 2, 3, 1)).reshape(N * Ho * Wo, Co)   # δ in the output's layout
    (D.T @ cols).reshape(Co, kh, kw, C).transpose(0, 3, 1, 2)
    D.sum(0)
    if need_dx:
        dx = np.zeros((N, H, Wd, C), x.dtype)
        if tap_major:
            dc = np.matmul(D, W.transpose(2, 3, 0, 1).reshape(kh * kw, Co, C)).reshape(kh, kw, N, Ho, Wo, C)
            for p in range(kh):
                for q in range(kw):
                    dx[:, p:p + Ho, q:q + Wo, :] += dc[p, q]
        else:
            dc = (D @ Wr).reshape(N, Ho, Wo, kh, kw, C)
            for p in range(kh):
                for q in range(kw):
                    dx[:, p:p + Ho, q:q + Wo, :] += dc[:, :, :, p, q, :]
    return y


def nchw_kxm_fb(x, W, b, need_dx=True):
    N, C, H, Wd = x.shape
    Co, _, kh, kw = W.shape
    Ho, Wo = H - kh + 1, Wd - kw + 1
    st = x.strides
    v = as_strided(x, (C, kh, kw, N, Ho, Wo), (st[1], st[2], st[3], st[0], st[2], st[3]))
    cols = np.ascontiguousarray(v).reshape(C * kh * kw, N * Ho * Wo)
    Wr = W.reshape(Co, -1)
    out = Wr @ cols
    out += b[:, None]
    y = out.reshape(Co, N, Ho, Wo).transpose(1, 0, 2, 3)
    D = out
    (D @ cols.T).reshape(W.shape)
    D.sum(1)
    if need_dx:
        dc = (Wr.T @ D).reshape(C, kh, kw, N, Ho, Wo)
        dx = np.zeros((C, N, H, Wd), x.dtype)
        for p in range(kh):
            for q in range(kw):
                dx[:, :, p:p + Ho, q:q + Wo] += dc[:, p, q]
    return y


def nchw_mxk_fb(x, W, b, need_dx=True):
    N, C, H, Wd = x.shape
    Co, _, kh, kw = W.shape
    Ho, Wo = H - kh + 1, Wd - kw + 1
    st = x.strides
    v = as_strided(x, (N, Ho, Wo, C, kh, kw), (st[0], st[2], st[3], st[1], st[2], st[3]))
    cols = np.ascontiguousarray(v).reshape(N * Ho * Wo, C * kh * kw)
    Wr = W.reshape(Co, -1)
    out = cols @ Wr.T
    out += b
    y = out.reshape(N, Ho, Wo, Co).transpose(0, 3, 1, 2)
    D = out
    (D.T @ cols).reshape(W.shape)
    D.sum(0)
    if need_dx:
        dc = (D @ Wr).reshape(N, Ho, Wo, C, kh, kw)
        dx = np.zeros((N, C, H, Wd), x.dtype)
        for p in range(kh):
            for q in range(kw):
                dx[:, :, p:p + Ho, q:q + Wo] += dc[:, :, :, :, p, q].transpose(0, 3, 1, 2)
    return y


def median_ms(f, n=15):
    f()
    ts = []
    for _ in range(n):
        t = time.process_time()
        f()
        ts.append(time.process_time() - t)
    return 1e3 * float(np.median(ts))


def layer_input(shape, memory):
    """An NCHW array whose memory is channels-last (what a Conv2D/pool output is) or CNHW (Caffe layout's)."""
    N, C, H, Wd = shape
    if memory == "nhwc":
        return rng.standard_normal((N, H, Wd, C), dtype=np.float32).transpose(0, 3, 1, 2)
    if memory == "cnhw":
        return rng.standard_normal((C, N, H, Wd), dtype=np.float32).transpose(1, 0, 2, 3)
    return rng.standard_normal(shape, dtype=np.float32)


def main():
    cases = [((128, 1, 28, 28), 20, False), ((128, 20, 12, 12), 50, True)]
    variants = [("nhwc (kept)", lambda x, W, b, nd: nhwc_fb(x, W, b, nd), "nhwc"),
                ("nhwc-MxK", lambda x, W, b, nd: nhwc_fb(x, W, b, nd, tap_major=False), "nhwc"),
                ("nchw-KxM", nchw_kxm_fb, "cnhw"),
                ("nchw-MxK", nchw_mxk_fb, "nchw")]
    print("forward + backward per batch of 128, float32 (conv1 1→20 5×5 on 28×28 without ∂x; "
          "conv2 20→50 5×5 on 12×12 with ∂x)")
    for name, f, mem in variants:
        res = []
        for shape, Co, need in cases:
            x = layer_input(shape, mem)
            W = rng.standard_normal((Co, shape[1], 5, 5), dtype=np.float32)
            b = np.zeros(Co, np.float32)
            res.append(median_ms(lambda: f(x, W, b, need)))
        print(f"  {name:<12} conv1 {res[0]:6.2f} ms   conv2 {res[1]:6.2f} ms")
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from minigrow.layers import Conv2D
    res = []
    for shape, Co, need in cases:
        x = layer_input(shape, "nhwc")
        layer = Conv2D(shape[1], Co, 5)
        dout = layer_input((shape[0], Co, shape[2] - 4, shape[3] - 4), "nhwc")

        def step():
            layer.forward(x)
            layer.backward(dout, need)
        res.append(median_ms(step))
    print(f"  {'Conv2D':<12} conv1 {res[0]:6.2f} ms   conv2 {res[1]:6.2f} ms   (the layer itself: tap-major columns "
          f"for C <= 3, bias gradient as a GEMV)")
    print("parts (ms):")
    for (N, H, C) in [(128, 28, 1), (128, 12, 20)]:
        Ho = H - 4
        xh = rng.standard_normal((N, H, H, C), dtype=np.float32)
        s0, s1, s2, s3 = xh.strides
        v = as_strided(xh, (N, Ho, Ho, 5, 5, C), (s0, s1, s2, s1, s2, s3))

        def tap_major():
            cT = np.empty((5, 5, C, N, Ho, Ho), np.float32)
            for p in range(5):
                for q in range(5):
                    cT[p, q] = xh[:, p:p + Ho, q:q + Ho, :].transpose(3, 0, 1, 2)
            return cT
        print(f"  im2col C={C:<2} {H}×{H}: strided-window copy (M × K) {median_ms(lambda: np.ascontiguousarray(v)):.2f}"
              f", tap-major block copies {median_ms(tap_major):.2f}")
    xh = rng.standard_normal((128, 28, 28, 1), dtype=np.float32)
    cT = np.empty((5, 5, 1, 128, 24, 24), np.float32)
    for p in range(5):
        for q in range(5):
            cT[p, q] = xh[:, p:p + 24, q:q + 24, :].transpose(3, 0, 1, 2)
    cols = cT.reshape(25, -1).T                          # conv1's tap-major columns, as Conv2D holds them
    Wr = rng.standard_normal((20, 25), dtype=np.float32)
    WrT = np.ascontiguousarray(Wr.T)
    print(f"  conv1 forward product, tap-major columns: cols @ W_r.T (view) {median_ms(lambda: cols @ Wr.T):.2f}, "
          f"cols @ contiguous W_rᵀ {median_ms(lambda: cols @ WrT):.2f}")
    D = rng.standard_normal((128 * 24 * 24, 20), dtype=np.float32)
    ones = np.ones(D.shape[0], np.float32)
    print(f"  conv1 bias gradient: D.sum(0) {median_ms(lambda: D.sum(0)):.2f}, ones @ D {median_ms(lambda: ones @ D):.2f}")
    xh = rng.standard_normal((128, 24, 24, 20), dtype=np.float32)
    x = xh.transpose(0, 3, 1, 2)                        # NCHW view of channels-last memory (a conv output)

    def taps_nhwc():
        t = [xh[:, p::2, q::2, :] for p in range(2) for q in range(2)]
        m = t[0].copy()
        for u in t[1:]:
            np.maximum(m, u, out=m)
        return m

    def taps_nchw():
        t = [x[:, :, p::2, q::2] for p in range(2) for q in range(2)]
        m = t[0].copy()
        for u in t[1:]:
            np.maximum(m, u, out=m)
        return m
    print(f"  max-pool 2×2 forward, 128×20×24×24: NHWC taps {median_ms(taps_nhwc):.2f}, NCHW taps "
          f"{median_ms(taps_nchw):.2f}, reshape + max(axis=(3, 5)) "
          f"{median_ms(lambda: x.reshape(128, 20, 12, 2, 12, 2).max(axis=(3, 5))):.2f}")
    A = rng.standard_normal((2048, 2048), dtype=np.float32)
    t = median_ms(lambda: A @ A, 5)
    print(f"float32 GEMM 2048³: {2048 ** 3 / t / 1e6:.1f} G multiply-adds/s")


if __name__ == "__main__":
    main()
