"""Bias and spread of the θ-gradient estimators on channel (filter) gates — measured as for units (tutorial 03 §6).

A tiny conv net (conv 3×3, 3 filters → max-pool → conv 3×3, 3 filters → max-pool → flatten → dense 2 → dense 3,
float64) has 8 gates, so the exact gradient of E_ξ[mean loss] comes from enumerating the 256 gate patterns. Each of
K draws shuffles the batch, samples the gates per sample and computes every estimator; printed: the largest |bias|
over the gates, the largest |bias| / standard error (unbiased estimators stay within a few), the mean per-gate
standard deviation.

    python bench/pruning_conv_spread.py [--draws 3000] [--seed 0]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minigrow.layers import Conv2D, Dense, Flatten, MaxPool2d, ReLU, Sequential  # noqa: E402
from minigrow.losses import SoftmaxCrossEntropy  # noqa: E402
from minigrow.experiments.pruning import bias_and_spread, estimator_draws  # noqa: E402
from minigrow.methods.pruning import add_gates, exact_expectation, gates  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    CE = SoftmaxCrossEntropy()
    rng = np.random.default_rng(args.seed)
    f64 = dict(dtype=np.float64)
    net = add_gates(Sequential([Conv2D(1, 3, 3, rng=0, **f64), ReLU(), MaxPool2d(2),
                                Conv2D(3, 3, 3, padding=1, rng=1, **f64), ReLU(), MaxPool2d(2), Flatten(),
                                Dense(12, 2, rng=2, **f64), ReLU(), Dense(2, 3, rng=3, **f64)]))
    X, y = rng.standard_normal((8, 1, 10, 10)), rng.integers(0, 3, 8)
    for g in gates(net):
        g.theta[:] = rng.uniform(0.2, 0.8, g.n_units)
    exact = np.concatenate(exact_expectation(net, X, y, CE)[1])
    est = estimator_draws(net, X, y, CE, args.draws, rng)
    print(f"{'estimator':<12} {'max |bias|':>11} {'max bias/SE':>12} {'mean std':>9}   ({args.draws} draws, batch 8, "
          f"3 + 3 filter gates and 2 unit gates)")
    for name, (b, r, sd) in bias_and_spread(est, exact).items():
        print(f"{name:<12} {b:>11.5f} {r:>12.1f} {sd:>9.4f}")
    print("exact ∂E/∂θ:", np.round(exact, 5))


if __name__ == "__main__":
    main()
