"""Benchmark: one epoch of LeNet-5-Caffe on MNIST, Adam(lr 1e-3), batch 128, float32 — minigrow vs PyTorch CPU.

The net is :func:`minigrow.convnets.lenet5` ("caffe": conv 5×5 1→20, ReLU, max-pool 2, conv 5×5 20→50, ReLU,
max-pool 2, dense 800→500, ReLU, dense 500→10). Both libraries start from the same initial weights (minigrow's
draw, copied into PyTorch) and see the same minibatch order (one ``Generator.permutation`` per epoch from the same
seed), on 1 and on 2 BLAS/PyTorch threads. Each library runs in a FRESH process, the libraries alternate over
rounds, and the figures are medians. Printed per thread count:

* seconds per epoch (wall and CPU) of each library and the ratio minigrow / PyTorch (target ≤ 1.5);
* the roofline: the epoch's multiply-adds (forward, ∂W and ∂x of every conv and dense layer; no ∂x for the first
  layer) at the float32 GEMM rate measured on this machine at the same matrix shapes (target: minigrow ≤ 2×);
* the peak memory (``resource.getrusage`` maxrss of the process, MNIST included; target ≤ 1 GB);
* the test accuracy after the epochs run (target ≥ 99.0 % after 5 epochs: ``--epochs 5 --rounds 1``);
* with ``--profile``, where minigrow's time goes: forward/backward per layer over a few batches, and inside the
  convolutions the im2col and col2im calls (timed by wrapping them) and the GEMMs at the same shapes.

    python bench/conv_epoch.py                                # 2 rounds × 2 epochs, threads 1 and 2 (~15 min)
    python bench/conv_epoch.py --epochs 5 --rounds 1 --threads 2    # the 5-epoch accuracy run
    python bench/conv_epoch.py --profile --threads 1 --no-torch     # the per-layer profile only

minigrow's side runs with this interpreter (NumPy only); PyTorch's side with ``--torch-python`` (default: this
interpreter if it can import torch, else /work/venv-torch/bin/python if present). When no interpreter has torch,
the script says so and prints minigrow's figures alone.

Not a test: timings depend on the machine and its load (``uptime`` is printed with the figures).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def _early_threads(argv):
    """``--only`` children get one thread count, which must reach OpenBLAS before NumPy is imported."""
    for i, a in enumerate(argv):
        if a == "--child-threads" and i + 1 < len(argv):
            return argv[i + 1]
    return None


if _early_threads(sys.argv[1:]):
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = _early_threads(sys.argv[1:])
    os.environ["MKL_NUM_THREADS"] = _early_threads(sys.argv[1:])

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minigrow.convnets import lenet5  # noqa: E402
from minigrow.data import load_mnist  # noqa: E402

DEFAULT_TORCH_PYTHON = "/work/venv-torch/bin/python"


def peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0      # Linux: kilobytes


def load_images(n_train=None):
    d = load_mnist(dtype=np.float32, n_train=n_train)
    return (d.X_train.reshape(-1, 1, 28, 28), d.y_train, d.X_test.reshape(-1, 1, 28, 28), d.y_test)


# --------------------------------------------------------------------------------------------- the two libraries
def run_minigrow(data, epochs, seed, batch_size):
    from minigrow.optim import Adam
    from minigrow.train import Trainer, evaluate
    X, y, Xt, yt = data
    model = lenet5("caffe", rng=seed, dtype=np.float32)
    tr = Trainer(model, "ce", Adam(1e-3), batch_size=batch_size, rng=np.random.default_rng(seed), progress=False)
    times = []
    for _ in range(epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        tr.fit(X, y, 1)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    _, acc = evaluate(model, "ce", Xt, yt, batch_size=1000)
    dtypes = sorted({str(layer.params[k].dtype) for layer, k in model.parameters()})
    return times, acc, f"parameter dtypes {dtypes}"


def run_torch(data, epochs, seed, batch_size, threads):
    import torch
    torch.set_num_threads(threads)
    X, y, Xt, yt = data
    ref = lenet5("caffe", rng=seed, dtype=np.float32)            # the same initial weights
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
    ours = [layer for layer in ref.layers if layer.params]
    theirs = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            b.weight.copy_(torch.from_numpy(a.params["W"]))
            b.bias.copy_(torch.from_numpy(a.params["b"]))
    Xtr, ytr = torch.from_numpy(X), torch.from_numpy(y)
    from torch_reference import torch_train
    times = torch_train(net, Xtr, ytr, epochs, batch_size, seed)
    with torch.no_grad():
        pred = torch.cat([net(torch.from_numpy(Xt[i:i + 1000])).argmax(1) for i in range(0, len(Xt), 1000)])
    acc = float((pred.numpy() == yt).mean())
    return times, acc, f"torch {torch.__version__}"


# --------------------------------------------------------------------------------------------- roofline
def gemm_shapes(batch_size):
    """(layer name, [(m, k, n), …]) of every matrix product of one training step: forward, ∂W, ∂x (not for the
    first layer) — the shapes minigrow multiplies (M = batch·Ho·Wo rows for a conv)."""
    net = lenet5("caffe", rng=0)
    net.forward(np.zeros((1, 1, 28, 28), np.float32))
    out, first = [], True
    for i, layer in enumerate(net.layers):
        if "W" not in layer.params:
            continue
        W = layer.params["W"]
        if W.ndim == 4:
            Co, C, kh, kw = W.shape
            Ho, Wo = layer.output_hw(*layer.input_hw)
            M, K = batch_size * Ho * Wo, C * kh * kw
            shapes = [(M, K, Co), (Co, M, K)] + ([] if first else [(M, Co, K)])
        else:
            o, k = W.shape
            shapes = [(batch_size, k, o), (o, batch_size, k)] + ([] if first else [(batch_size, o, k)])
        out.append((f"{i}:{type(layer).__name__}", shapes))
        first = False
    return out


def time_gemm(m, k, n, reps=20, clock=time.perf_counter):
    """Best (minimum) time of an (m × k)·(k × n) float32 product over ``reps`` runs: the rate the machine
    reaches at that shape when nothing disturbs it — a roofline, not a typical time. ``clock`` may be
    ``time.process_time`` (CPU seconds of all the process's threads: on a shared machine the wall clock counts
    the time other jobs hold the cores)."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, k), dtype=np.float32)
    B = rng.standard_normal((k, n), dtype=np.float32)
    A @ B
    ts = []
    for _ in range(reps):
        t = clock()
        A @ B
        ts.append(clock() - t)
    return float(np.min(ts))


def roofline(n_train, batch_size, clock=time.perf_counter):
    """Seconds per epoch of the step's GEMMs alone, each at the rate measured at its shape; and the MACs."""
    steps_full, last = divmod(n_train, batch_size)
    total_t, total_macs, per_layer = 0.0, 0, []
    for name, shapes in gemm_shapes(batch_size):
        t = sum(time_gemm(*s, clock=clock) for s in shapes)
        macs = sum(m * k * n for m, k, n in shapes)
        per_layer.append((name, t, macs))
        total_t += t
        total_macs += macs
    scale = steps_full + last / batch_size            # the last, smaller batch costs about its share
    return total_t * scale, int(total_macs * scale), per_layer


# --------------------------------------------------------------------------------------------- profile
def profile_minigrow(batch_size, n_batches=20, seed=0):
    """Per-layer forward/backward times of a training step (median over batches) and, inside the convs, the
    im2col / col2im calls (wrapped) and the GEMMs (timed at the same shapes)."""
    import minigrow.layers.conv as conv_module
    from minigrow.losses import get_loss
    spent = {"im2col": [0.0], "col2im": [0.0]}
    originals = {k: getattr(conv_module, f"_{k}") for k in spent}

    def wrap(name, f):
        def g(*a, **kw):
            t = time.perf_counter()
            r = f(*a, **kw)
            spent[name][0] += time.perf_counter() - t
            return r
        return g

    per = {}
    for k, f in originals.items():
        setattr(conv_module, f"_{k}", wrap(k, f))
    try:
        rng = np.random.default_rng(seed)
        X, y, _, _ = load_images(n_train=batch_size * n_batches)
        net = lenet5("caffe", rng=seed)
        loss = get_loss("ce")
        fw = {i: [] for i in range(len(net.layers))}
        bw = {i: [] for i in range(len(net.layers))}
        convs = {i: {"im2col": [], "col2im": []} for i, lay in enumerate(net.layers) if "W" in lay.params
                 and lay.params["W"].ndim == 4}
        for b in range(n_batches):
            idx = rng.permutation(X.shape[0])[:batch_size]
            h = X[idx]
            for i, layer in enumerate(net.layers):
                for v in spent.values():
                    v[0] = 0.0
                t = time.perf_counter()
                h = layer.forward(h, True)
                fw[i].append(time.perf_counter() - t)
                if i in convs:
                    convs[i]["im2col"].append(spent["im2col"][0])
            loss.forward(h, y[idx])
            d = loss.backward()
            for i in range(len(net.layers) - 1, -1, -1):
                for v in spent.values():
                    v[0] = 0.0
                t = time.perf_counter()
                d = net.layers[i].backward(d, i > 0)
                bw[i].append(time.perf_counter() - t)
                if i in convs:
                    convs[i]["im2col"][-1] += spent["im2col"][0]
                    convs[i]["col2im"].append(spent["col2im"][0])
        gemm = {name: t for name, t, _ in roofline(batch_size, batch_size)[2]}
        med = lambda v: 1e3 * float(np.median(v[3:]))   # noqa: E731  (skip warm-up batches)
        for i, layer in enumerate(net.layers):
            key = f"{i}:{type(layer).__name__}"
            row = {"forward": med(fw[i]), "backward": med(bw[i])}
            if i in convs:
                row["im2col"] = med(convs[i]["im2col"])
                row["col2im"] = med(convs[i]["col2im"]) if convs[i]["col2im"] and max(convs[i]["col2im"]) else 0.0
            if key in gemm:
                row["gemm"] = 1e3 * gemm[key]
            per[key] = row
    finally:
        for k, f in originals.items():
            setattr(conv_module, f"_{k}", f)
    return per


# --------------------------------------------------------------------------------------------- driver
def child(args):
    threads = int(args.child_threads)
    if args.only == "profile":
        per = profile_minigrow(args.batch_size)
        for name, row in per.items():
            print("PROFILE " + name + " " + " ".join(f"{k}={v:.3f}" for k, v in row.items()))
        return
    data = load_images(args.n_train)
    if args.only == "roofline":
        t, macs, per_layer = roofline(data[0].shape[0], args.batch_size)
        t_cpu = roofline(data[0].shape[0], args.batch_size, clock=time.process_time)[0]
        print(f"ROOFLINE {t:.6f} {macs} " + " ".join(f"{n}={tt * 1e3:.3f}ms/{m}" for n, tt, m in per_layer)
              + f" cpu={t_cpu:.6f}")
        return
    if args.only == "minigrow":
        t, acc, extra = run_minigrow(data, args.epochs, args.seed, args.batch_size)
    else:
        t, acc, extra = run_torch(data, args.epochs, args.seed, args.batch_size, threads)
    wall, cpu = float(np.median([x[0] for x in t])), float(np.median([x[1] for x in t]))
    print(f"RESULT {args.only} {wall:.6f} {cpu:.6f} {acc:.6f} {peak_rss_mb():.1f} "
          + " ".join(f"{x[0]:.3f}" for x in t) + f" | {extra}")


def find_torch_python(requested):
    cands = [requested] if requested else [sys.executable, DEFAULT_TORCH_PYTHON]
    for py in cands:
        if py and Path(py).exists():
            r = subprocess.run([py, "-c", "import torch, numpy"], capture_output=True, text=True)
            if r.returncode == 0:
                return py
    return None


def run_child(python, what, threads, args):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    cmd = [python, __file__, "--only", what, "--child-threads", str(threads), "--epochs", str(args.epochs),
           "--seed", str(args.seed), "--batch-size", str(args.batch_size)]
    if args.n_train:
        cmd += ["--n-train", str(args.n_train)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"conv_epoch: the {what} run failed:\n{r.stderr[-3000:]}")
    return r.stdout


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", default="1,2", help="comma-separated BLAS/PyTorch thread counts (default 1,2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n-train", type=int, default=None, help="first n training images only (quick runs)")
    p.add_argument("--torch-python", default=None, help="interpreter with torch for PyTorch's side")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--profile", action="store_true", help="also print minigrow's per-layer profile")
    p.add_argument("--only", choices=["minigrow", "torch", "roofline", "profile"], default=None,
                   help=argparse.SUPPRESS)
    p.add_argument("--child-threads", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.only:
        return child(args)

    thread_list = [int(t) for t in str(args.threads).split(",")]
    torch_py = None if args.no_torch else find_torch_python(args.torch_python)
    n_train = args.n_train or 60000
    print(f"LeNet-5-Caffe, MNIST {n_train} train / 10000 test, Adam lr 1e-3, batch {args.batch_size}, float32, "
          f"seed {args.seed}, {args.epochs} epoch(s) per run, {args.rounds} round(s), a fresh process per run")
    print(f"minigrow python: {sys.executable}")
    if torch_py is None:
        print("torch: NOT AVAILABLE (no interpreter with torch: pass --torch-python, or install it into "
              f"{DEFAULT_TORCH_PYTHON}); minigrow's figures only" if not args.no_torch else "torch: skipped")
    else:
        print(f"torch python: {torch_py}")
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    for threads in thread_list:
        print(f"\n=== {threads} thread(s) ===")
        out = run_child(sys.executable, "roofline", threads, args)
        f = next(line for line in out.splitlines() if line.startswith("ROOFLINE")).split()
        roof, macs = float(f[1]), int(f[2])
        roof_cpu = float(f[-1].split("=")[1])
        print(f"roofline: {macs / 1e9:.1f} G multiply-adds per epoch in the GEMMs; at the float32 GEMM rate "
              f"measured at the same shapes ({macs / roof / 1e9:.1f} G/s): {roof:.2f} s/epoch wall; "
              f"{roof_cpu:.2f} CPU-s/epoch by the process clock  [{' '.join(f[3:-1])}]")
        names = ["minigrow"] + (["torch"] if torch_py else [])
        res = {n: [] for n in names}
        for r in range(args.rounds):
            for n in names:
                out = run_child(sys.executable if n == "minigrow" else torch_py, n, threads, args)
                line = next(x for x in out.splitlines() if x.startswith("RESULT "))
                head, extra = line.split(" | ", 1)
                g = head.split()
                res[n].append((float(g[2]), float(g[3]), float(g[4]), float(g[5]), extra))
                print(f"  round {r + 1} {n:<8} median epoch {float(g[2]):.2f} s (CPU {float(g[3]):.2f} s), "
                      f"peak RSS {float(g[5]):.0f} MB, test acc {100 * float(g[4]):.2f} %; epochs: {' '.join(g[6:])}")
        med = {n: [float(np.median([x[j] for x in v])) for j in range(4)] + [v[-1][4]] for n, v in res.items()}
        m = med["minigrow"]
        print(f"minigrow: {m[0]:.2f} s/epoch (CPU {m[1]:.2f} s), peak memory {m[3]:.0f} MB "
              f"(target <= 1024: {'met' if m[3] <= 1024 else 'NOT met'}), test accuracy after {args.epochs} "
              f"epoch(s) {100 * m[2]:.2f} %  ({m[4]})")
        print(f"minigrow / roofline: {m[0] / roof:.2f} wall (target <= 2: {'met' if m[0] <= 2 * roof else 'NOT met'}); "
              f"by CPU time (epoch CPU-s / GEMM CPU-s, robust to other jobs on the machine): {m[1] / roof_cpu:.2f}")
        if "torch" in med:
            t = med["torch"]
            ratios = [a[0] / b[0] for a, b in zip(res["minigrow"], res["torch"])]
            print(f"{t[4]} CPU: {t[0]:.2f} s/epoch (CPU {t[1]:.2f} s), peak memory {t[3]:.0f} MB, test accuracy "
                  f"{100 * t[2]:.2f} %; torch / roofline {t[0] / roof:.2f} wall, {t[1] / roof_cpu:.2f} by CPU time")
            print(f"ratio minigrow / torch by CPU time: {m[1] / t[1]:.2f}")
            print(f"ratio minigrow / torch, median epoch wall time: {m[0] / t[0]:.2f} (per round: "
                  f"{', '.join(f'{x:.2f}' for x in ratios)}; target <= 1.5: "
                  f"{'met' if m[0] <= 1.5 * t[0] else 'NOT met'})")
        if args.epochs >= 5:
            print(f"accuracy target (>= 99.0 % after 5 epochs): {'met' if m[2] >= 0.99 else 'NOT met'}")
        if args.profile:
            out = run_child(sys.executable, "profile", threads, args)
            print("minigrow profile, one training step of batch", args.batch_size, "(ms, medians of 17 batches; "
                  "gemm = the layer's products timed alone at the same shapes):")
            for line in out.splitlines():
                if line.startswith("PROFILE "):
                    print("   ", line[8:])
    print("\nload after: ", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
