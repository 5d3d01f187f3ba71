"""``python -m minigrow demo``: the main job on the bundled data, about two minutes on 2 cores.

Runs one part per idea and prints a summary; every part writes its plots to the output folder (none with
``--no-plots`` or without matplotlib).
"""
from __future__ import annotations

import importlib
import sys
import time

import numpy as np

from ..data import load_mnist
from ..network import mlp
from ..optim import Adam
from ..train import Trainer
from .common import RunFolder, add_threads_arg, nonneg_int, write_json

# (name, module under minigrow.cli, what it shows). Each module has demo(out_dir, seed, quick, progress, plots=True)
# -> dict.
PARTS = [
    ("core", None, "MLP 784-300-100-10 on MNIST, hand-written backprop"),
    ("insert", "insert", "SensLI layer insertion on the spirals: FNN [5] and res2 tanh vs no insertion and bigger net"),
    ("bundles", "bundles", "conflicting bundles of a deep plain vs residual MLP on MNIST, then auto-tune"),
    ("prune", "prune", "variational Bernoulli unit pruning: teacher-student toy and MNIST 784-300-100-10"),
]


def register(sub):
    from pathlib import Path
    p = sub.add_parser("demo", help="the main job: every method on the bundled data (~2 min on 2 cores)",
                       description="Run every part of minigrow on the bundled data and write plots.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds), for tests")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plots", action="store_true", help="skip the plots (no matplotlib needed)")
    p.add_argument("--only", default=None, help="comma-separated parts to run: " + ",".join(n for n, *_ in PARTS))
    add_threads_arg(p)
    p.set_defaults(func=run)


def core_demo(out, seed, quick, progress, plots=True):
    """MNIST 784-300-100-10 ReLU, Adam 1e-3, batch 128 (the network of bench/mlp_epoch.py), hand-written backprop."""
    n_train, n_test, epochs, sizes = (2000, 500, 1, [784, 64, 10]) if quick else (None, None, 3, [784, 300, 100, 10])
    d = load_mnist(n_train=n_train, n_test=n_test)
    model = mlp(sizes, "relu", init="torch", rng=seed)
    tr = Trainer(model, "ce", Adam(1e-3), batch_size=128, rng=seed, progress=progress)
    tr.fit(d.X_train, d.y_train, epochs, d.X_test, d.y_test)
    name = "-".join(map(str, sizes))
    if plots:
        from ..plotting import plot_history
        plot_history(tr.history, out / "core_history.png", title=f"MLP {name} on MNIST")
    last = tr.history.epochs[-1]
    train_s = sum(e["seconds"] for e in tr.history.epochs)
    return {"summary": f"MLP {name}, {epochs} epochs on {d.X_train.shape[0]} MNIST images: test accuracy "
                       f"{last['test_acc']:.4f}, {train_s:.1f} s incl. evaluation",
            "test_acc": last["test_acc"], "plots": ["core_history.png"] if plots else []}


def run(args):
    wanted = None if args.only is None else set(args.only.split(","))
    known = {n for n, *_ in PARTS}
    if wanted is not None and not wanted <= known:
        raise ValueError(f"--only: unknown part(s) {sorted(wanted - known)}; expected some of {sorted(known)}")
    results = {}
    t_all = time.perf_counter()
    with RunFolder(args.out, "demo", ["summary.json"]) as rf:
        stage = rf.stage()
        for name, module, what in PARTS:
            if wanted is not None and name not in wanted:
                continue
            print(f"== {name}: {what}", file=sys.stderr)
            t0 = time.perf_counter()
            fn = core_demo if module is None else importlib.import_module(f"{__package__}.{module}").demo
            res = fn(stage, args.seed, args.quick, not args.no_progress, plots=not args.no_plots)
            res["seconds"] = time.perf_counter() - t0
            results[name] = res
        write_json(rf.stage("summary.json"), results)
        rf.commit()
    out = args.out
    print(f"\nminigrow demo — {time.perf_counter() - t_all:.0f} s in all, plots and summary.json in {out}/")
    for name, res in results.items():
        print(f"  [{name}] {res['summary']}  ({res['seconds']:.0f} s)")
    return 0
