"""Benchmark: BatchNorm2d, LayerNorm and Dropout forward/backward in float32, next to reference passes.

    python bench/norm_layers.py            # (128, 32, 28, 28) float32 batch, median of 7 runs
    python bench/norm_layers.py --quick    # (16, 8, 14, 14)

References, on the same array: one fused element-wise pass ``x * a + b`` (the floor any normalisation pays at
least a few times) and the *staged* batch-norm backward of the CS231n assignment (one small step per node of
the computation graph: ∂x̂, ∂σ², ∂μ …), which minigrow's compact form dx = (γ/σ)/M (M g − Σg − x̂ Σgx̂) replaces.
Both backward passes are checked to agree before timing. Timings are noisy on a shared machine: the load
average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minigrow.layers import BatchNorm2d, Dropout, LayerNorm  # noqa: E402


def median_ms(f, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def staged_backward(x, gamma, eps, g):
    """Batch-norm backward node by node (CS231n's batchnorm_backward), over axes (0, 2, 3)."""
    axes, sh = (0, 2, 3), (1, -1, 1, 1)
    M = x.size // x.shape[1]
    mu = x.mean(axes, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axes, keepdims=True)
    std = np.sqrt(var + eps)
    xhat = xc / std
    dxhat = g * gamma.reshape(sh)
    dvar = np.sum(dxhat * xc, axes, keepdims=True) * -0.5 * std ** -3
    dmu = np.sum(-dxhat / std, axes, keepdims=True) + dvar * np.mean(-2 * xc, axes, keepdims=True)
    dx = dxhat / std + dvar * 2 * xc / M + dmu / M
    return dx, np.sum(g * xhat, axes), np.sum(g, axes)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes")
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args(argv)
    shape = (16, 8, 14, 14) if args.quick else (128, 32, 28, 28)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    print(f"input {shape} float32 ({x.size:,} values), median of {args.repeat}, "
          f"load average {os.getloadavg()[0]:.2f}")

    bn = BatchNorm2d(shape[1])
    bn.params["gamma"] = rng.uniform(0.5, 1.5, shape[1]).astype(np.float32)
    bn.forward(x, train=True)
    dx = bn.backward(g)
    ref_dx, ref_dg, _ = staged_backward(x.astype(np.float64), bn.params["gamma"].astype(np.float64), bn.eps, g)
    assert np.allclose(dx, ref_dx, rtol=1e-3, atol=1e-4) and np.allclose(bn.grads["gamma"], ref_dg, rtol=1e-3)

    a, b = np.float32(2), np.float32(1)
    floor = median_ms(lambda: x * a + b, args.repeat)
    staged = median_ms(lambda: staged_backward(x, bn.params["gamma"], bn.eps, g), args.repeat)
    rows = [("x * a + b (one element-wise pass)", floor),
            ("BatchNorm2d forward, eval", median_ms(lambda: bn.forward(x, False), args.repeat)),
            ("BatchNorm2d forward, train", median_ms(lambda: bn.forward(x, True), args.repeat))]
    compact = median_ms(lambda: bn.backward(g), args.repeat)          # after a training-mode forward
    rows += [("BatchNorm2d backward (compact), train", compact),
             ("batch-norm backward, staged (reference)", staged)]
    ln = LayerNorm(shape[1:])
    rows += [("LayerNorm forward", median_ms(lambda: ln.forward(x, True), args.repeat))]
    ln.forward(x, True)
    rows += [("LayerNorm backward", median_ms(lambda: ln.backward(g), args.repeat))]
    d = Dropout(0.5)
    rows += [("Dropout forward, train (draws the mask)", median_ms(lambda: d.forward(x, True), args.repeat))]
    rows += [("Dropout backward", median_ms(lambda: d.backward(g), args.repeat))]
    print(f"{'pass':<42} {'ms':>8} {'× one pass':>11}")
    for name, ms in rows:
        print(f"{name:<42} {ms:>8.2f} {ms / floor:>11.1f}")
    print(f"compact / staged batch-norm backward: {compact / staged:.2f}")


if __name__ == "__main__":
    main()
