"""Reproduction of the SensLI settings A–F (sensli.md §6).

Each setting trains several *variants* over many seeds and compares them pairwise (same seed ⇒ same initial
small network, same minibatch order):

=====  =========================================  ===========================================================
 A     ReLU FNN [5], full-batch GD lr 0.2          SensLI (insert at 450 of 1850) · same net, no insertion ·
                                                   [5, 5] from the start
 B     res2 tanh width 3, 1 block, GD lr 0.1       SensLI · no insertion · 2 blocks from the start
 C     ReLU FNN [5], SGD batch 45, lr 0.01         as A (minibatch version)
 D     ReLU FNN [4, 4], full-batch GD lr 0.2       insertion at argmax vs argmin (and the two baselines)
 E     ReLU FNN [5], GD lr 0.2, decrease 0.8       insertion at epoch 150, 250, …, 850 of 1850; no insertion
 F     MNIST FNN [50], Adam lr 0.01 (wd 5e-3),     2 insertions, 5 epochs per phase · no insertion ·
       batch 100, StepLR(5, 0.5)                   [50, 50, 50] from the start (small-data sanity run)
=====  =========================================  ===========================================================

Interpretation choices (ours, stated because the paper body was not available): the spirals data set is drawn
once (data seed 0) and the seeds vary the network initialisation and the minibatch order; "res2 [3, 3]" of the
authors' scripts is read as two hidden layers of width 3 = the input layer plus one residual block; the training
loss at epoch e is the loss recorded during epoch e (full batch: the loss before that epoch's step).

``reproduce("A", seeds=30)`` writes ``docs/results/sensli_A.json`` and ``docs/figures/sensli_A.png``; the CLI
spelling is ``python -m minigrow reproduce sensli A --seeds 30``.
"""
from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

import numpy as np

from ..data import load_mnist, two_spirals
from ..network import mlp, residual_mlp
from ..methods.sensli import sensli_train
from ..sweep import run_sweep
from ..validate import check_choice, check_int

__all__ = ["SETTINGS", "run_variant", "variant_run", "reproduce", "summarise", "plot_setting", "REPO_ROOT",
           "build_model", "plot_run", "demo"]

from . import REPO_ROOT, touches_committed  # noqa: E402

_FNN_GD = dict(optimizer="sgd", lr=0.2, batch_size=None)


def _spec(arch, hidden, epochs, **kw):
    return dict(arch=arch, hidden=hidden, epochs=epochs, **kw)


SETTINGS = {
    "A": dict(title="A: ReLU FNN [5] on spirals, full-batch GD lr 0.2", data="spirals", seeds=30, checkpoints=[450, 500, 1000, 1850],
              variants={"sensli": _spec("mlp", [5], [450, 1400], **_FNN_GD),
                        "small": _spec("mlp", [5], [1850], **_FNN_GD),
                        "big": _spec("mlp", [5, 5], [1850], **_FNN_GD)}),
    "B": dict(title="B: res2 tanh width 3 on spirals, full-batch GD lr 0.1", data="spirals", seeds=30,
              checkpoints=[450, 500, 1000, 1850],
              variants={"sensli": _spec("res", [3, 1], [450, 1400], optimizer="sgd", lr=0.1, batch_size=None),
                        "small": _spec("res", [3, 1], [1850], optimizer="sgd", lr=0.1, batch_size=None),
                        "big": _spec("res", [3, 2], [1850], optimizer="sgd", lr=0.1, batch_size=None)}),
    "C": dict(title="C: ReLU FNN [5] on spirals, SGD batch 45 lr 0.01", data="spirals", seeds=30,
              checkpoints=[450, 500, 1000, 1850],
              variants={"sensli": _spec("mlp", [5], [450, 1400], optimizer="sgd", lr=0.01, batch_size=45),
                        "small": _spec("mlp", [5], [1850], optimizer="sgd", lr=0.01, batch_size=45),
                        "big": _spec("mlp", [5, 5], [1850], optimizer="sgd", lr=0.01, batch_size=45)}),
    "D": dict(title="D: ReLU FNN [4,4] on spirals, insertion at argmax vs argmin", data="spirals", seeds=30,
              checkpoints=[450, 500, 1000, 1850],
              variants={"argmax": _spec("mlp", [4, 4], [450, 1400], mode="abs_max", **_FNN_GD),
                        "argmin": _spec("mlp", [4, 4], [450, 1400], mode="abs_min", **_FNN_GD),
                        "small": _spec("mlp", [4, 4], [1850], **_FNN_GD),
                        "big": _spec("mlp", [4, 4, 4], [1850], **_FNN_GD)}),
    "E": dict(title="E: ReLU FNN [5] on spirals, when to insert (lr decrease 0.8)", data="spirals", seeds=30,
              checkpoints=[1000, 1850],
              variants={**{f"at{e}": _spec("mlp", [5], [e, 1850 - e], decrease=0.8, **_FNN_GD)
                           for e in range(150, 851, 100)},
                        "small": _spec("mlp", [5], [1850], **_FNN_GD)}),
    "F": dict(title="F: MNIST FNN [50], Adam lr 0.01, batch 100, StepLR(5, 0.5)", data="mnist", seeds=3,
              checkpoints=[5, 10, 15],
              variants={"sensli": _spec("mlp", [50], [5, 5, 5], optimizer="adam", lr=0.01, weight_decay=5e-3,
                                        batch_size=100, step_size=5, gamma=0.5),
                        "small": _spec("mlp", [50], [15], optimizer="adam", lr=0.01, weight_decay=5e-3,
                                       batch_size=100, step_size=5, gamma=0.5),
                        "big": _spec("mlp", [50, 50, 50], [15], optimizer="adam", lr=0.01, weight_decay=5e-3,
                                     batch_size=100, step_size=5, gamma=0.5)}),
}

_QUICK = {"spirals": dict(scale=0.05), "mnist": dict(n_train=1000, n_test=500, scale=0.2)}


def _data(kind, quick, mnist_train=10000, mnist_test=2000):
    if kind == "spirals":
        return two_spirals(rng=0, dtype=np.float32)
    if quick:
        return load_mnist(n_train=_QUICK["mnist"]["n_train"], n_test=_QUICK["mnist"]["n_test"])
    return load_mnist(n_train=mnist_train, n_test=mnist_test)


def _scaled_epochs(epochs, quick, kind):
    if not quick:
        return list(epochs)
    f = _QUICK[kind]["scale"]
    return [max(1, int(round(e * f))) for e in epochs]


@functools.lru_cache(maxsize=4)
def _cached_data(kind, quick, mnist_train=10000, mnist_test=2000):
    """The data of a setting, loaded once per process (a sweep worker runs many variants on it; never mutated)."""
    return _data(kind, quick, mnist_train, mnist_test)


def variant_run(setting, variant, seed, quick=False, mnist_train=10000, mnist_test=2000):
    """One run of a sweep: variant ``variant`` of setting ``setting`` (A–F) for one ``seed`` — a module-level
    function of keyword arguments, so that :func:`minigrow.sweep.run_sweep` can run it in another process."""
    s = SETTINGS[setting]
    data = _cached_data(s["data"], quick, mnist_train, mnist_test)
    return run_variant(s["variants"][variant], data, seed, quick, s["data"])


def run_variant(spec, data, seed, quick=False, kind="spirals", dtype=np.float32):
    """Train one variant for one seed; returns the loss curve, final test error, cost and chosen positions."""
    n_in, n_out = data.X_train.shape[1], int(data.y_train.max()) + 1
    if spec["arch"] == "mlp":
        model = mlp([n_in, *spec["hidden"], n_out], "relu", rng=seed, dtype=dtype)
    else:
        width, blocks = spec["hidden"]
        model = residual_mlp(n_in, width, blocks, n_out, "tanh", rng=seed, dtype=dtype)
    kw = {k: spec[k] for k in ("optimizer", "lr", "batch_size", "weight_decay", "step_size", "gamma", "decrease",
                               "mode") if k in spec}
    run = sensli_train(model, data.X_train, data.y_train, _scaled_epochs(spec["epochs"], quick, kind),
                       data.X_test, data.y_test, rng=np.random.default_rng(seed), **kw)
    return {"train_loss": np.array(run.train_loss), "test_error": 1 - run.test_acc[-1][1],
            "train_macs": run.train_macs, "sensitivity_macs": run.sensitivity_macs,
            "seconds": run.seconds, "sensitivity_seconds": float(sum(e["seconds"] for e in run.insertions)),
            "chosen": [e["chosen"] for e in run.insertions],
            "scores": [e["scores"] for e in run.insertions],
            "insert_epochs": [e["epoch"] for e in run.insertions], "final_params": model.n_params()}


def summarise(results, checkpoints, reference="small"):
    """Per variant: mean/std/median of the training loss at the checkpoints, test error, multiply-adds,
    fraction of seeds in which the variant beats ``reference`` (paired, same seed) at each checkpoint."""
    out = {}
    ref = results.get(reference)
    for name, runs in results.items():
        L = np.stack([r["train_loss"] for r in runs])
        te = np.array([r["test_error"] for r in runs])
        d = {"n_seeds": len(runs), "loss_at": {}, "test_error": {"mean": float(te.mean()), "std": float(te.std())},
             "train_macs": float(np.mean([r["train_macs"] for r in runs])),
             "sensitivity_macs": float(np.mean([r["sensitivity_macs"] for r in runs])),
             "seconds_mean": float(np.mean([r["seconds"] for r in runs])),
             "sensitivity_seconds_mean": float(np.mean([r["sensitivity_seconds"] for r in runs])),
             "final_params": int(runs[0]["final_params"])}
        if runs[0]["chosen"]:
            ch = np.array([r["chosen"][0] if r["chosen"][0] is not None else -1 for r in runs])
            d["chosen_first_insertion"] = {int(v): int((ch == v).sum()) for v in np.unique(ch)}
        for e in checkpoints:
            e_ = min(e, L.shape[1])
            v = L[:, e_ - 1]
            d["loss_at"][str(e)] = {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v)),
                                    "q25": float(np.quantile(v, 0.25)), "q75": float(np.quantile(v, 0.75))}
        if ref is not None and name != reference:
            R = np.stack([r["train_loss"] for r in ref])
            n = min(L.shape[1], R.shape[1])
            d["wins_vs_" + reference] = {str(e): float(np.mean(L[:, min(e, n) - 1] < R[:, min(e, n) - 1]))
                                         for e in checkpoints}
            rte = np.array([r["test_error"] for r in ref])
            d["test_error_wins_vs_" + reference] = float(np.mean(te < rte))
            d["test_error_ties_vs_" + reference] = float(np.mean(te == rte))
        out[name] = d
    return out


def plot_setting(name, setting, results, path):
    """Mean training loss per epoch with a band (25–75 % quantiles across seeds) per variant; for E also the
    final loss against the insertion epoch."""
    from ..plotting import pyplot, savefig
    plt = pyplot()
    if name == "E":
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    else:
        fig, a1 = plt.subplots(1, 1, figsize=(6, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, (vname, runs) in enumerate(results.items()):
        if name == "E" and vname not in ("small", "at150", "at450", "at850"):
            continue
        L = np.stack([r["train_loss"] for r in runs])
        x = np.arange(1, L.shape[1] + 1)
        c = colors[j % len(colors)]
        a1.plot(x, L.mean(0), color=c, lw=1.4, label=f"{vname} (mean of {L.shape[0]})")
        a1.fill_between(x, np.quantile(L, 0.25, axis=0), np.quantile(L, 0.75, axis=0), color=c, alpha=0.2, lw=0)
        for e in runs[0]["insert_epochs"]:
            a1.axvline(e, color=c, ls=":", lw=0.8)
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss")
    a1.set_yscale("log")
    a1.legend(fontsize=7)
    a1.set_title(setting["title"], fontsize=8)
    if name == "E":
        ins = [v for v in results if v.startswith("at")]
        ep = [int(v[2:]) for v in ins]
        fin = [np.array([r["train_loss"][-1] for r in results[v]]) for v in ins]
        base = np.array([r["train_loss"][-1] for r in results["small"]])
        med = np.array([np.median(f) for f in fin])
        lo = med - np.array([np.quantile(f, 0.25) for f in fin])
        hi = np.array([np.quantile(f, 0.75) for f in fin]) - med
        a2.errorbar(ep, med, yerr=[lo, hi], fmt="o-", capsize=3, label="insert at epoch (median, 25-75 %)")
        a2.plot(ep, [f.mean() for f in fin], "s", color="C1", ms=4, label="insert at epoch (mean)")
        a2.axhline(np.median(base), color="k", ls="--", label="no insertion (median)")
        a2.axhline(base.mean(), color="k", ls=":", label="no insertion (mean)")
        a2.set_xlabel("insertion epoch")
        a2.set_ylabel(f"training loss at epoch {results['small'][0]['train_loss'].size}")
        a2.legend(fontsize=7)
    return savefig(fig, path)


def reproduce(setting, seeds=None, quick=False, out_dir=None, progress=True, plots=True, mnist_train=10000,
              mnist_test=2000, jobs=1, scheduler=None):
    """Run one setting A–F over ``seeds`` seeds (default: as in the table), write
    ``<out_dir>/results/sensli_<X>.json`` and ``<out_dir>/figures/sensli_<X>.png``; returns the summary dict.

    ``quick``: epochs scaled by 0.05 (spirals) or 0.2 (MNIST, 1000 images) — for tests only.
    ``out_dir`` defaults to the repository's ``docs/``. ``jobs``/``scheduler``: the runs (variants × seeds) go
    through :func:`minigrow.sweep.run_sweep` — a process pool or a Dask cluster, bit-identical to ``jobs=1``.
    """
    from ..output import write_json
    name = check_choice("setting", str(setting).upper(), set(SETTINGS))
    s = SETTINGS[name]
    seeds = s["seeds"] if seeds is None else check_int("seeds", seeds, lo=1)
    out_dir = REPO_ROOT / "docs" if out_dir is None else Path(out_dir)
    data = _cached_data(s["data"], quick, mnist_train, mnist_test)
    t0 = time.perf_counter()
    # one independent run per (variant, seed): serially or in parallel (minigrow.sweep), the same results
    tasks = [dict(setting=name, variant=vname, seed=seed, quick=bool(quick), mnist_train=mnist_train,
                  mnist_test=mnist_test) for vname in s["variants"] for seed in range(seeds)]
    flat = run_sweep(variant_run, tasks, jobs=jobs, scheduler=scheduler)
    results = {vname: flat[i * seeds:(i + 1) * seeds] for i, vname in enumerate(s["variants"])}
    if progress:
        print(f"[{name}] {len(tasks)} runs ({len(s['variants'])} variants × {seeds} seeds) in "
              f"{time.perf_counter() - t0:.1f} s" + (f", {jobs} jobs" if jobs > 1 and scheduler is None else "")
              + (f" on {scheduler}" if scheduler else ""), file=sys.stderr)
    checkpoints = s["checkpoints"] if not quick else [len(results["small"][0]["train_loss"])]
    reference = "small"
    summary = {"setting": name, "title": s["title"], "seeds": seeds, "quick": bool(quick),
               "variants": {k: {kk: vv for kk, vv in v.items()} for k, v in s["variants"].items()},
               "data": (s["data"] if s["data"] == "spirals" else
                        f"mnist first {data.X_train.shape[0]} train / {data.X_test.shape[0]} test images"),
               "summary": summarise(results, checkpoints, reference),
               "mean_curves": {k: np.stack([r["train_loss"] for r in v]).mean(0)[::10 if not quick else 1].tolist()
                               for k, v in results.items()},
               "per_seed": {k: {"final_loss": [float(r["train_loss"][-1]) for r in v],
                                "test_error": [float(r["test_error"]) for r in v],
                                "chosen": [r["chosen"] for r in v]} for k, v in results.items()},
               "seconds": time.perf_counter() - t0,
               "command": f"python -m minigrow reproduce sensli {name} --seeds {seeds}" + (" --quick" if quick else "")}
    if name == "D":
        pa = np.array([r["train_loss"][-1] for r in results["argmax"]])
        pi = np.array([r["train_loss"][-1] for r in results["argmin"]])
        same = np.array([r["chosen"][0] for r in results["argmax"]]) == \
            np.array([r["chosen"][0] for r in results["argmin"]])
        summary["argmax_vs_argmin"] = {"fraction_argmax_lower_final_loss": float(np.mean(pa < pi)),
                                       "fraction_same_position": float(same.mean()),
                                       "mean_final_loss_argmax": float(pa.mean()),
                                       "mean_final_loss_argmin": float(pi.mean())}
    if name == "E":
        summary["when_to_insert"] = {
            v: {"mean_final_loss": float(np.mean([r["train_loss"][-1] for r in results[v]])),
                "std_final_loss": float(np.std([r["train_loss"][-1] for r in results[v]]))}
            for v in results}
    if not quick or not touches_committed(out_dir):      # a quick run never writes the committed results
        write_json(out_dir / "results" / f"sensli_{name}.json", summary)
        if plots:
            plot_setting(name, s, results, out_dir / "figures" / f"sensli_{name}.png")
    return summary


def markdown_table(results_dir=None):
    """The README table of all settings found in ``<results_dir>`` (default docs/results), from the JSON files:
    ``python -c "from minigrow.experiments.sensli import markdown_table; print(markdown_table())"``."""
    import json
    results_dir = REPO_ROOT / "docs" / "results" if results_dir is None else Path(results_dir)
    rows = ["| setting | variant | seeds | loss at checkpoints (mean ± std; median) | test error | "
            "wins vs no insertion (loss, last checkpoint) | MACs per run |",
            "|---|---|---|---|---|---|---|"]
    for name in SETTINGS:
        f = results_dir / f"sensli_{name}.json"
        if not f.exists():
            continue
        r = json.loads(f.read_text())
        for v, d in r["summary"].items():
            at = "; ".join(f"e{e}: {x['mean']:.3f} ± {x['std']:.3f} ({x['median']:.3f})" for e, x in d["loss_at"].items())
            last = list(d["loss_at"])[-1]
            w = d.get("wins_vs_small", {}).get(last)
            rows.append(f"| {name} | {v} | {d['n_seeds']} | {at} | {d['test_error']['mean']:.3f} ± "
                        f"{d['test_error']['std']:.3f} | {'—' if w is None else f'{w:.0%}'} | "
                        f"{d['train_macs'] + d['sensitivity_macs']:.3g} |")
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------------------------------
# One run of `python -m minigrow insert`, and the SensLI part of `python -m minigrow demo`
# ------------------------------------------------------------------------------------------------------------------

def build_model(arch, hidden, activation, n_in, n_out, seed, dtype=np.float32):
    """The network of one ``python -m minigrow insert`` run: 'mlp' with hidden widths ``hidden`` (ReLU by
    default), or 'resnet' with ``hidden = [width, blocks]`` (the "res2" net, tanh by default)."""
    if arch == "mlp":
        return mlp([n_in, *hidden, n_out], activation or "relu", rng=seed, dtype=dtype)
    if len(hidden) != 2:
        raise ValueError(f"--hidden: for --arch resnet give WIDTH,BLOCKS (e.g. 3,1), got {hidden}")
    return residual_mlp(n_in, hidden[0], hidden[1], n_out, activation or "tanh", rng=seed, dtype=dtype)


def plot_run(run, path, title):
    """Training loss of one insertion run (log scale) with the insertion epochs marked."""
    from ..plotting import pyplot, savefig
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(np.arange(1, len(run.train_loss) + 1), run.train_loss, lw=1.2, label="training loss")
    for e in run.insertions:
        if e["inserted"]:
            ax.axvline(e["epoch"], color="k", ls=":", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=9)
    return savefig(fig, path)


def demo(out_dir, seed, quick, progress, plots=True):
    """The SensLI part of ``python -m minigrow demo``: setting A (spirals, ReLU FNN [5]) and B (res2 tanh) over a
    few seeds — SensLI vs the same net without insertion vs the bigger net from the start."""
    n_seeds = 2 if quick else 6
    data = _data("spirals", quick)
    figs, parts = [], []
    for name in ("A", "B"):
        s = SETTINGS[name]
        res = {v: [run_variant(spec, data, seed + k, quick, "spirals") for k in range(n_seeds)]
               for v, spec in s["variants"].items()}
        fin = {v: np.array([r["train_loss"][-1] for r in rs]) for v, rs in res.items()}
        wins = int(np.sum(fin["sensli"] < fin["small"]))
        if plots:
            plot_setting(name, s, res, out_dir / f"insert_{name}.png")
            figs.append(f"insert_{name}.png")
        parts.append(f"{name}: final loss SensLI {fin['sensli'].mean():.3f} / no insertion {fin['small'].mean():.3f}"
                     f" / bigger net {fin['big'].mean():.3f}, SensLI wins {wins}/{n_seeds}")
        if progress:
            print(parts[-1], file=sys.stderr)
    return {"summary": f"spirals, {n_seeds} seeds" + (" (quick)" if quick else "") + ": " + "; ".join(parts),
            "plots": figs}
