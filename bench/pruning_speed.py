"""Benchmark for variational Bernoulli pruning (prints figures; not a test).

1. Wall time of a pruning run vs the dense run of the same net for the same epochs (target ≤ 0.6×).
2. Cost of the flip estimator per step relative to one ordinary training step (full-width 784-300-100-10).
3. Inference time of the final pruned net vs the dense net on the MNIST test set.

    python bench/pruning_speed.py                 # 20k MNIST images, 10 epochs (MNIST_SETTINGS scaled to N)
    python bench/pruning_speed.py --n-train 60000 --epochs 20
    python bench/pruning_speed.py --n-train 60000 --epochs 20 --hidden 1000,300     # a wider start
    python bench/pruning_speed.py --spread                                          # the estimators' spread

Timings on a shared 2-core machine are noisy: the script prints the load average (``uptime``) with them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minigrow.data import load_mnist                                      # noqa: E402
from minigrow.experiments.pruning import MNIST_SETTINGS, dense_baseline, mnist_run   # noqa: E402
from minigrow.losses import SoftmaxCrossEntropy                           # noqa: E402
from minigrow.methods.pruning import (flip_cv_gradient, flip_gradient, gated_mlp, gates,   # noqa: E402
                                      sample_gates)


def load():
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def best_of(f, repeat=5, number=10):
    f()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            f()
        ts.append((time.perf_counter() - t0) / number)
    return min(ts)


def flip_cost(batch=100, seed=0):
    rng = np.random.default_rng(seed)
    m = gated_mlp([784, 300, 100, 10], "relu", rng=seed)
    X = rng.random((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    L = SoftmaxCrossEntropy()

    def step():
        sample_gates(m, batch, rng)
        L.forward(m.forward(X, True), y)
        m.backward(L.backward(), need_input_grad=False)

    t_step = best_of(step)
    step()
    out = {"step_ms": 1e3 * t_step}
    for ns in (None, 32):
        t = best_of(lambda: [flip_gradient(m, i, y, L, n_samples=ns) for i in range(len(gates(m)))])
        out[f"flip_ms_{ns or batch}"] = 1e3 * t
        out[f"flip_ratio_{ns or batch}"] = t / t_step
    ns = MNIST_SETTINGS.flip_samples
    t = best_of(lambda: [flip_cv_gradient(m, i, y, L, ns) for i in range(len(gates(m)))])
    out["cv_ms"], out["cv_ratio"], out["cv_samples"] = 1e3 * t, t / t_step, ns
    return out


def estimator_spread(seed=0, n_train=20000, batches=150):
    """Spread and cost of the θ-estimators on 784-300-100-10 after one epoch of training (all θ set to 0.9):
    per-unit standard deviation over random batches (in units of 1/N), mean |estimate|, ms per call."""
    from minigrow.optim import Adam
    from minigrow.methods.pruning import PruningTrainer, pathwise_gradient
    d = load_mnist(n_train=n_train)
    m = gated_mlp([784, 300, 100, 10], "relu", rng=seed)
    PruningTrainer(m, "ce", Adam(1e-3), batch_size=100, rng=seed, warmup_epochs=5, progress=False, sigma0=0.5,
                   strength=1.0).fit(d.X_train, d.y_train, 1)
    for g in gates(m):
        g.theta[:] = 0.9
    L = SoftmaxCrossEntropy()
    rng = np.random.default_rng(seed + 1)
    est = {"flip, 100 samples": lambda i, y: flip_gradient(m, i, y, L),
           "flip, 10 samples": lambda i, y: flip_gradient(m, i, y, L, n_samples=10),
           "flip_cv, 10 samples": lambda i, y: flip_cv_gradient(m, i, y, L, 10),
           "pathwise": lambda i, y: pathwise_gradient(m, i)}
    vals = {(k, p): [] for k in est for p in range(2)}
    times = {k: 0.0 for k in est}
    for _ in range(batches):
        idx = rng.choice(n_train, 100, replace=False)
        xb, yb = d.X_train[idx], d.y_train[idx]
        sample_gates(m, 100, rng)
        L.forward(m.forward(xb, True), yb)
        m.backward(L.backward(), need_input_grad=False)
        for k, f in est.items():
            t0 = time.perf_counter()
            out = [f(i, yb) for i in range(len(gates(m)))]
            times[k] += time.perf_counter() - t0
            for p, o in enumerate(out):
                vals[(k, p)].append(o * n_train)
    print(f"θ-estimators after one epoch on {n_train} images, θ = 0.9, {batches} random batches of 100 "
          f"(values × N): median per-unit std (layer 1 / layer 2), mean |mean| (layer 1 / layer 2), ms per call")
    for k in est:
        a = [np.array(vals[(k, p)]) for p in range(2)]
        print(f"  {k:<20} std {np.median(a[0].std(0)):6.1f} / {np.median(a[1].std(0)):6.1f}   mean|.| "
              f"{np.abs(a[0].mean(0)).mean():6.1f} / {np.abs(a[1].mean(0)).mean():6.1f}   "
              f"{1e3 * times[k] / batches:6.2f} ms")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", default="300,100", help="starting hidden widths (default 300,100)")
    p.add_argument("--rounds", type=int, default=3, help="pruned and dense runs alternate this many times")
    p.add_argument("--prune-every", type=int, default=None, help="also prune every N steps (default: epoch ends)")
    p.add_argument("--spread", action="store_true", help="only the estimators' spread and cost (about 30 s)")
    a = p.parse_args()
    if a.spread:
        estimator_spread(a.seed)
        return
    hidden = tuple(int(v) for v in a.hidden.split(","))
    print(f"[{load()}]")
    fc = flip_cost(seed=a.seed)
    print(f"one training step (784-300-100-10, batch 100): {fc['step_ms']:.1f} ms; flip estimator, all layers: "
          f"{fc['flip_ms_100']:.1f} ms = {fc['flip_ratio_100']:.2f}× a step (all 100 samples), "
          f"{fc['flip_ms_32']:.1f} ms = {fc['flip_ratio_32']:.2f}× (32 samples); flip with the pathwise control "
          f"variate on {fc['cv_samples']} samples: {fc['cv_ms']:.1f} ms = {fc['cv_ratio']:.2f}× "
          f"(MNIST_SETTINGS: estimator {MNIST_SETTINGS.estimator!r}, {MNIST_SETTINGS.flip_samples} samples, "
          f"correction every {MNIST_SETTINGS.cv_every} batches)")
    d = load_mnist(n_train=a.n_train)
    # Same price per unit and sample as at N = 60000, and the same θ movement per epoch (fewer steps per epoch).
    price = MNIST_SETTINGS.price if a.n_train == 60000 else MNIST_SETTINGS.price * a.n_train / 60000
    eta = MNIST_SETTINGS.eta_theta if a.n_train == 60000 else MNIST_SETTINGS.eta_theta * 60000 / a.n_train
    print(f"pruning run 784-{'-'.join(map(str, hidden))}-10: γ = {price:.4f}, η_θ = {eta:.4g}, other settings as "
          f"MNIST_SETTINGS; {a.rounds} rounds, pruned and dense alternating")
    tp, td, ep_rounds_p, ep_rounds_d = [], [], [], []
    for k in range(a.rounds):
        r = mnist_run(hidden, seed=a.seed, data=d, epochs=a.epochs, price=price, eta_theta=eta,
                      prune_every=a.prune_every)
        dn = dense_baseline(hidden, seed=a.seed, data=d, epochs=a.epochs, lr_step=MNIST_SETTINGS.lr_step,
                            lr_decay=MNIST_SETTINGS.lr_decay)
        tp.append(r["seconds"])
        td.append(dn["seconds"])
        ep_rounds_p.append([e["seconds"] for e in r["history"]])
        ep_rounds_d.append([e["seconds"] for e in dn["history"]])
        print(f"  round {k + 1} [{load()}]: pruned {r['seconds']:.1f} s, dense {dn['seconds']:.1f} s, ratio "
              f"{r['seconds'] / dn['seconds']:.2f}", flush=True)
    print(f"training {a.epochs} epochs on {a.n_train} images: pruned {min(tp):.1f} s (fastest round; median "
          f"{np.median(tp):.1f}; widths {r['widths']}, test error {100 * r['test_err']:.2f} %), dense {min(td):.1f} s "
          f"(median {np.median(td):.1f}; test error {100 * dn['test_err']:.2f} %): ratio of the fastest rounds "
          f"{min(tp) / min(td):.2f}, of the medians {np.median(tp) / np.median(td):.2f}")
    # The runs are deterministic, so epoch e does the same work in every round: the per-epoch minimum over rounds
    # filters out the machine's noise; its sum is our best estimate of each run's time.
    ep_p = np.min(np.array(ep_rounds_p), axis=0)
    ep_d = np.min(np.array(ep_rounds_d), axis=0)
    print(f"  sum over epochs of the per-epoch minimum over the {a.rounds} rounds: pruned {ep_p.sum():.1f} s, dense "
          f"{ep_d.sum():.1f} s: ratio {ep_p.sum() / ep_d.sum():.2f}")
    w = MNIST_SETTINGS.warmup_epochs
    print(f"  seconds per epoch (per-epoch minima): dense {np.median(ep_d):.2f}; pruned: warm-up {np.mean(ep_p[:w]):.2f}, "
          f"epochs {w + 1}-{w + 3} {np.mean(ep_p[w:w + 3]):.2f}, last 5 {np.mean(ep_p[-5:]):.2f} at widths "
          f"{r['widths']} (= {np.mean(ep_p[-5:]) / np.median(ep_d):.2f} of a dense epoch)")
    small = dense_baseline(tuple(r["widths"]), seed=a.seed, data=d, epochs=3)
    t_small = min(e["seconds"] for e in small["history"])
    print(f"  a plain dense net with the final widths {r['widths']}: {t_small:.2f} s per epoch (fastest of 3; "
          f"= {t_small / np.median(ep_d):.2f} of a dense {'-'.join(map(str, hidden))} epoch): the floor for the "
          f"pruned run's late epochs")
    Xte = d.X_test
    t_p = best_of(lambda: r["model"].predict(Xte), repeat=3, number=2)
    t_d = best_of(lambda: dn["model"].predict(Xte), repeat=3, number=2)
    print(f"inference on {Xte.shape[0]} test images: pruned {1e3 * t_p:.1f} ms ({r['n_params']:,} parameters), "
          f"dense {1e3 * t_d:.1f} ms ({dn['n_params']:,}): ratio {t_p / t_d:.2f}")
    print(f"[{load()}]")


if __name__ == "__main__":
    main()
