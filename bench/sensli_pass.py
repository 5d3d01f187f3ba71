"""Benchmark: cost of the SensLI sensitivity pass.

For each network and data set, times (best of ``--repeat``):

* ``epoch``     one ordinary epoch of gradient computation: forward + loss + backward of every batch (all weight
                gradients), no optimiser step — the reference;
* ``closed``    :func:`minigrow.methods.sensli.closed_form_sensitivities` (forward + input-gradient backward down to the
                earliest candidate + the outer products δᵀa / gᵀσ(0.8h));
* ``extended``  :func:`minigrow.methods.sensli.extended_sensitivities` (all candidates inserted and frozen, ordinary
                backprop through the bigger network).

Target (issue 3): closed ≤ 1.1 × epoch. Usage::

    python bench/sensli_pass.py [--repeat 5] [--quick]

Timings on a shared 2-core machine are noisy; the load average is printed with the results.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minigrow.data import load_mnist, two_spirals  # noqa: E402
from minigrow.losses import SoftmaxCrossEntropy  # noqa: E402
from minigrow.network import mlp, residual_mlp  # noqa: E402
from minigrow.methods.sensli import closed_form_sensitivities, extended_sensitivities  # noqa: E402


def gradient_epoch(model, X, y, batch_size):
    loss = SoftmaxCrossEntropy()
    bs = X.shape[0] if batch_size is None else batch_size
    for s in range(0, X.shape[0], bs):
        loss.forward(model.forward(X[s:s + bs], train=True), y[s:s + bs])
        model.backward(loss.backward(), need_input_grad=False)


def best_time(fn, repeat, inner):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smaller MNIST subset, fewer repeats")
    args = ap.parse_args(argv)
    repeat = 2 if args.quick else args.repeat
    n_mnist = 2000 if args.quick else 10000
    sp = two_spirals(rng=0, dtype=np.float32)
    mn = load_mnist(n_train=n_mnist, n_test=10)
    cases = [
        ("spirals FNN [5], full batch", mlp([2, 5, 2], rng=0), sp, None, 200),
        ("spirals FNN [5], batch 45", mlp([2, 5, 2], rng=0), sp, 45, 50),
        ("spirals FNN [4,4], full batch", mlp([2, 4, 4, 2], rng=0), sp, None, 200),
        ("spirals res2 tanh w3, 1 block, full", residual_mlp(2, 3, 1, 2, rng=0), sp, None, 200),
        (f"MNIST {n_mnist} FNN [50], batch 100", mlp([784, 50, 10], rng=0), mn, 100, 2),
        (f"MNIST {n_mnist} FNN [300,100], batch 128", mlp([784, 300, 100, 10], rng=0), mn, 128, 1),
        (f"MNIST {n_mnist} res tanh w64, 4 blocks, b128", residual_mlp(784, 64, 4, 10, rng=0), mn, 128, 1),
    ]
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
          f"{os.cpu_count()} CPUs, float32, best of {repeat}")
    print(f"{'case':<46} {'epoch ms':>9} {'closed ms':>10} {'ext. ms':>9} {'closed/epoch':>13} {'ext./epoch':>11}")
    rows = []
    for name, model, d, bs, inner in cases:
        X, y = d.X_train, d.y_train
        te = best_time(lambda: gradient_epoch(model, X, y, bs), repeat, inner)
        tc = best_time(lambda: closed_form_sensitivities(model, X, y, batch_size=bs), repeat, inner)
        tx = best_time(lambda: extended_sensitivities(model, X, y, batch_size=bs), repeat, inner)
        rows.append((name, te, tc, tx))
        print(f"{name:<46} {1e3 * te:>9.3f} {1e3 * tc:>10.3f} {1e3 * tx:>9.3f} {tc / te:>13.2f} {tx / te:>11.2f}")
    return rows


if __name__ == "__main__":
    main()
