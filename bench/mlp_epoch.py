"""Benchmark: one epoch of MNIST 784-300-100-10 ReLU, Adam(lr 1e-3), batch 128, float32.

Prints the seconds per epoch (median over the epochs run) and the test accuracy after the last epoch for minigrow,
the same epoch as a hand-written NumPy loop (the floor a library can reach), and — when PyTorch is importable — for the same network in PyTorch CPU in the same run: the same initial weights
(minigrow's U(±1/√fan_in) draw, copied), the same optimiser and the same minibatch order (one
``Generator.permutation`` per epoch from the same seed). PyTorch gets as many threads as NumPy's BLAS.

    python bench/mlp_epoch.py                 # 3 rounds × 3 epochs per library, each run in a fresh process (~1 min)
    python bench/mlp_epoch.py --epochs 5 --threads 1    # both libraries on one thread (robust on a busy machine)

Not a test: timings depend on the machine and its load (``uptime`` is printed with the figures). The CPU time
(``time.process_time``, all threads of the process) is printed too: on a busy machine it is less distorted than
the wall time, especially with ``--threads 1``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def _early_threads(argv):
    """``--threads N`` must reach OpenBLAS before NumPy is imported (the thread count is fixed at load time)."""
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return None


if _early_threads(sys.argv[1:]):
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = _early_threads(sys.argv[1:])

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minigrow.data import load_mnist  # noqa: E402
from minigrow.network import mlp  # noqa: E402
from minigrow.optim import Adam  # noqa: E402
from minigrow.train import Trainer, evaluate  # noqa: E402

SIZES = [784, 300, 100, 10]


def blas_threads():
    """Threads NumPy's OpenBLAS uses: the usual environment variables, else the CPU count."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var):
            return int(os.environ[var])
    return os.cpu_count() or 1


def init_weights(seed):
    """The initial (W, b) of every Dense layer: minigrow's U(±1/√fan_in) draw, shared by all three runs."""
    model = mlp(SIZES, "relu", init="torch", rng=seed, dtype=np.float32)
    return [(layer.params["W"].copy(), layer.params["b"].copy()) for layer in model.layers if "W" in layer.params]


def run_minigrow(d, epochs, seed, batch_size):
    model = mlp(SIZES, "relu", init="torch", rng=seed, dtype=np.float32)
    init = [(layer.params["W"].copy(), layer.params["b"].copy()) for layer in model.layers if "W" in layer.params]
    tr = Trainer(model, "ce", Adam(1e-3), batch_size=batch_size, rng=np.random.default_rng(seed), progress=False)
    times = []
    for _ in range(epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        tr.fit(d.X_train, d.y_train, 1)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    _, acc = evaluate(model, "ce", d.X_test, d.y_test)
    dtypes = {str(layer.params[k].dtype) for layer, k in model.parameters()}
    dtypes |= {str(v.dtype) for layer, k in model.parameters() for v in layer.state[k].values()
               if isinstance(v, np.ndarray)}
    return times, acc, init, dtypes


def run_hand_numpy(d, epochs, seed, batch_size, init):
    """The same epoch as a hand-written NumPy loop (no library): the floor minigrow should stay close to."""
    W = [w.copy() for w, _ in init]
    b = [bb.copy() for _, bb in init]
    params = W + b
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    buf = [np.empty_like(p) for p in params]
    X, Y = d.X_train, d.y_train
    rng = np.random.default_rng(seed)
    t, times = 0, []
    for _ in range(epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        perm = rng.permutation(X.shape[0])
        for s in range(0, X.shape[0], batch_size):
            idx = perm[s:s + batch_size]
            x, y, n = X[idx], Y[idx], len(idx)
            z1 = x @ W[0].T
            z1 += b[0]
            a1 = np.maximum(z1, 0)
            z2 = a1 @ W[1].T
            z2 += b[1]
            a2 = np.maximum(z2, 0)
            z3 = a2 @ W[2].T
            z3 += b[2]
            z3 -= z3.max(1, keepdims=True)
            e = np.exp(z3)
            e /= e.sum(1, keepdims=True)
            float(np.mean(-np.log(e[np.arange(n), y])))
            e[np.arange(n), y] -= 1
            e *= 1.0 / n
            d2 = e @ W[2]
            d2 *= z2 > 0
            d1 = d2 @ W[1]
            d1 *= z1 > 0
            grads = [d1.T @ x, d2.T @ a1, e.T @ a2, d1.sum(0), d2.sum(0), e.sum(0)]
            t += 1
            c2 = np.sqrt(1 - 0.999 ** t)
            eta = 1e-3 * c2 / (1 - 0.9 ** t)
            for p, g, mm, vv, bf in zip(params, grads, m, v, buf):
                mm *= 0.9
                mm += np.multiply(g, 0.1, out=bf)
                vv *= 0.999
                np.multiply(g, g, out=bf)
                bf *= 0.001
                vv += bf
                np.sqrt(vv, out=bf)
                bf += 1e-8 * c2
                np.divide(mm, bf, out=bf)
                bf *= eta
                p -= bf
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times


def run_torch(d, epochs, seed, batch_size, init, threads):
    import torch
    torch.set_num_threads(threads)
    layers = []
    for i, (W, b) in enumerate(init):
        lin = torch.nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(init) - 1:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    X = torch.from_numpy(d.X_train)
    y = torch.from_numpy(d.y_train)
    from torch_reference import torch_train
    times = torch_train(net, X, y, epochs, batch_size, seed)
    with torch.no_grad():
        acc = float((net(torch.from_numpy(d.X_test)).argmax(1).numpy() == d.y_test).mean())
    return times, acc


def _measure(name, d, args, threads):
    """Run one library in this process; returns (median wall s/epoch, median CPU s/epoch, test acc, extra)."""
    init = init_weights(args.seed)
    if name == "minigrow":
        t, acc, _, dtypes = run_minigrow(d, args.epochs, args.seed, args.batch_size)
        extra = f"parameter/state dtypes {sorted(dtypes)}"
    elif name == "hand":
        t, acc, extra = run_hand_numpy(d, args.epochs, args.seed, args.batch_size, init), float("nan"), ""
    else:
        import torch
        t, acc = run_torch(d, args.epochs, args.seed, args.batch_size, init, threads)
        extra = f"torch {torch.__version__}"
    return float(np.median([x[0] for x in t])), float(np.median([x[1] for x in t])), acc, extra, t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=None, help="threads for NumPy's BLAS and PyTorch (default: the BLAS default, usually the CPU count)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--rounds", type=int, default=3,
                   help="alternate the libraries this many times, each in a fresh process (default 3); the "
                        "figures are medians over rounds. A fresh process per run keeps one library's idle "
                        "threads from slowing the other")
    p.add_argument("--only", choices=["minigrow", "hand", "torch"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    threads = args.threads or blas_threads()

    d = load_mnist(dtype=np.float32)
    if args.only:                        # a child process: one library, one machine-readable line
        wall, cpu, acc, extra, t = _measure(args.only, d, args, threads)
        print(f"RESULT {args.only} {wall:.6f} {cpu:.6f} {acc:.6f} " + " ".join(f"{x[0]:.3f}" for x in t)
              + f" | {extra}")
        return

    print(f"MNIST {d.X_train.shape[0]} train / {d.X_test.shape[0]} test, net {SIZES} ReLU, Adam lr 1e-3, "
          f"batch {args.batch_size}, float32, seed {args.seed}, {args.epochs} epochs, BLAS threads {threads}, "
          f"{args.rounds} rounds (a fresh process per library and round)")
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    names = ["minigrow", "hand"]
    if not args.no_torch:
        try:
            import importlib.util
            if importlib.util.find_spec("torch") is None:
                raise ImportError
            names.append("torch")
        except ImportError:
            print("torch: not installed, no comparison")
    res = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names:
            cmd = [sys.executable, __file__, "--only", n, "--epochs", str(args.epochs), "--seed", str(args.seed),
                   "--batch-size", str(args.batch_size), "--threads", str(threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            line = next(l for l in out.splitlines() if l.startswith("RESULT "))
            head, extra = line.split(" | ", 1)
            f = head.split()
            res[n].append((float(f[2]), float(f[3]), float(f[4]), extra))
            print(f"  round {r + 1} {n:<8} median epoch {float(f[2]):.2f} s (CPU {float(f[3]):.2f} s)  "
                  f"epochs: {' '.join(f[5:])}")
    med = {n: (float(np.median([x[0] for x in v])), float(np.median([x[1] for x in v])), v[-1][2], v[-1][3])
           for n, v in res.items()}
    print(f"minigrow: {med['minigrow'][0]:.2f} s/epoch (CPU {med['minigrow'][1]:.2f} s); test accuracy after "
          f"{args.epochs} epochs {100 * med['minigrow'][2]:.2f} %  ({med['minigrow'][3]})")
    print(f"hand-written NumPy loop: {med['hand'][0]:.2f} s/epoch (CPU {med['hand'][1]:.2f} s); minigrow / hand "
          f"loop: wall {med['minigrow'][0] / med['hand'][0]:.2f}")
    if "torch" in med:
        print(f"{med['torch'][3]} CPU ({threads} threads): {med['torch'][0]:.2f} s/epoch (CPU {med['torch'][1]:.2f} s); "
              f"test accuracy {100 * med['torch'][2]:.2f} %")
        ratios = [a[0] / b[0] for a, b in zip(res["minigrow"], res["torch"])]
        print(f"ratio minigrow / torch, median epoch wall time: {med['minigrow'][0] / med['torch'][0]:.2f} "
              f"(per round: {', '.join(f'{x:.2f}' for x in ratios)}; target <= 0.75); "
              f"hand-written NumPy loop / torch: {med['hand'][0] / med['torch'][0]:.2f}")
    print("load after: ", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
