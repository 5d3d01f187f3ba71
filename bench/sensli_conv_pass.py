"""Benchmark: cost of the conv SensLI sensitivity pass against one epoch of gradient computation.

Side by side in one run, interleaved (epoch, pass, epoch, pass, …) so that both see the same machine load, medians
of ``--repeat`` rounds:

* ``epoch``     one ordinary epoch of gradient computation on the same data and batch size: forward (training mode)
                + mean cross-entropy + backward with every weight gradient, no optimiser step — the reference;
* ``pass``      :func:`minigrow.methods.sensli.conv.sensitivity_pass` (rule abs_max: forward, backward down to the earliest
                position, the closed-form kernel gradients (C3) of all positions, the five norms);
* ``pass+free`` the same with ``free=True`` (also every existing conv's weight gradient: what 'threshold_rel' needs);
* ``extended``  :func:`minigrow.methods.sensli.conv.extended_sensitivities` (the extended network built, ordinary backprop).

Target (issue 15): pass ≤ 1.1 × epoch. Also printed: the multiply-adds per sample of each (the pass must form the
m_l²·9·H_l·W_l products of (C3), which for channel widths that double per stage are 2× the conv they follow, so the
multiply-add ratio bounds what any direct implementation can reach). Usage::

    OPENBLAS_NUM_THREADS=1 python bench/sensli_conv_pass.py [--repeat 7] [--n 2000] [--batch 64] [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minigrow.data import load_mnist  # noqa: E402
from minigrow.losses import SoftmaxCrossEntropy  # noqa: E402
from minigrow.methods.sensli.conv import (extended_sensitivities, sensitivity_macs_per_sample,  # noqa: E402
                                  sensitivity_pass, train_macs_per_sample, vgg_small)


def gradient_epoch(model, X, y, batch_size):
    loss = SoftmaxCrossEntropy()
    for s in range(0, X.shape[0], batch_size):
        loss.forward(model.forward(X[s:s + batch_size], train=True), y[s:s + batch_size])
        model.backward(loss.backward(), need_input_grad=False)


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--n", type=int, default=2000, help="training images (MNIST, first n)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="500 images, 2 rounds, no extended network")
    args = ap.parse_args(argv)
    n, repeat = (500, 2) if args.quick else (args.n, args.repeat)
    d = load_mnist(n_train=n, n_test=10, flatten=False)
    X, y = d.X_train[:, None], d.y_train
    cases = [("vgg_small m=(8,16,32), head (10,)", vgg_small((8, 16, 32), rng=0)),
             ("vgg_small m=(16,32,64), head (10,)", vgg_small((16, 32, 64), rng=0))]
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}, {os.cpu_count()} CPUs, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, float32, MNIST {n} images, "
          f"batch {args.batch}, medians of {repeat} interleaved rounds")
    print(f"{'case':<36} {'epoch s':>8} {'pass s':>8} {'pass/ep':>8} {'+free s':>8} {'+free/ep':>9} "
          f"{'ext. s':>7} {'ext/ep':>7} {'MACs pass/ep':>13}")
    rows = []
    for name, model in cases:
        model.forward(X[:2], train=False)
        te, tp, tf, tx = [], [], [], []
        for _ in range(repeat):
            te.append(timed(lambda: gradient_epoch(model, X, y, args.batch)))
            tp.append(timed(lambda: sensitivity_pass(model, X, y, args.batch)))
            tf.append(timed(lambda: sensitivity_pass(model, X, y, args.batch, free=True)))
            if not args.quick:
                tx.append(timed(lambda: extended_sensitivities(model, X, y, args.batch)))
        me, mp, mf = np.median(te), np.median(tp), np.median(tf)
        mx = np.median(tx) if tx else float("nan")
        mac_ratio = sensitivity_macs_per_sample(model) / train_macs_per_sample(model)
        rows.append({"case": name, "epoch": me, "pass": mp, "free": mf, "extended": mx, "mac_ratio": mac_ratio})
        print(f"{name:<36} {me:>8.3f} {mp:>8.3f} {mp / me:>8.2f} {mf:>8.3f} {mf / me:>9.2f} {mx:>7.3f} "
              f"{mx / me:>7.2f} {mac_ratio:>13.2f}")
    print(f"target: pass/epoch ≤ 1.1; load average now {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return rows


if __name__ == "__main__":
    main()
