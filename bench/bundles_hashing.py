"""Benchmark: bundles by row hashing vs the pairwise reference loop; bundles of every layer of a 100-layer net.

    python bench/bundles_hashing.py            # N = 512, 2048, 8192 with D = 512; 100 layers × 10,000 samples
    python bench/bundles_hashing.py --quick    # small sizes (seconds)

Part 1: activations with many ties (half the rows are copies of other rows, values on a coarse grid), quantised
with the float32 grid (B1); time ``group_rows`` + ``bundle_stats`` (hashing) against ``bundles_pairwise`` (the
O(|B|·N·D) reference, timed once at the largest N since it is slow) and check that both give the same partition.
Part 2: a plain 100-hidden-layer ReLU MLP (width 64, He init, MNIST-sized input) on 10,000 random inputs;
time the forward pass and the bundles of all 100 hidden layers (``layer_report``).
Timings are noisy on a shared machine: the load average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minigrow.methods.bundles import bundle_stats, bundles_pairwise, group_rows, layer_report, quantize  # noqa: E402
from minigrow.network import mlp  # noqa: E402


def tied_activations(N, D, rng):
    base = np.maximum(rng.standard_normal((N, D)), 0).round(1).astype(np.float32)
    src = rng.integers(0, N // 2, N // 2)
    base[N // 2:] = base[src]                                   # half the rows duplicate earlier rows
    return base[rng.permutation(N)], rng.integers(0, 10, N)


def best_of(fn, repeat):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), out


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    Ns = [256, 512] if args.quick else [512, 2048, 8192]
    D = 64 if args.quick else 512
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
          f"numpy {np.__version__}")
    print(f"{'N':>6} {'D':>4} {'|B|':>6} {'hashing (s)':>12} {'pairwise (s)':>13} {'ratio':>8}")
    for N in Ns:
        a, y = tied_activations(N, D, rng)
        q = quantize(a, 0.8)
        t_hash, fast = best_of(lambda: bundle_stats(group_rows(q), y, 10), 5)
        t_pair, slow = best_of(lambda: bundles_pairwise(q, y, 10), 1 if N >= 2048 else 3)
        assert np.array_equal(fast.assignment, slow.assignment) and abs(fast.entropy - slow.entropy) < 1e-12
        print(f"{N:>6} {D:>4} {fast.n_bundles:>6} {t_hash:>12.5f} {t_pair:>13.3f} {t_pair / t_hash:>7.0f}x")

    L, N, width = (20, 2000, 32) if args.quick else (100, 10000, 64)
    model = mlp([784] + [width] * L + [10], "relu", init="he", rng=0)
    X = rng.random((N, 784), dtype=np.float32)
    y = rng.integers(0, 10, N)
    t_fwd, _ = best_of(lambda: model.predict_logits(X, batch_size=N), 3)
    t_all, rep = best_of(lambda: layer_report(model, X, y, n_classes=10), 3)
    print(f"{L}-layer ReLU MLP (width {width}), {N} samples: forward {t_fwd:.3f} s; forward + bundles of all "
          f"{len(rep)} hidden layers {t_all:.3f} s (bundles alone ≈ {t_all - t_fwd:.3f} s); "
          f"|B^L| = {rep[-1].n_bundles}")


if __name__ == "__main__":
    main()
