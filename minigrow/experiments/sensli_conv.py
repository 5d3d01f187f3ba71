"""Conv SensLI experiments (sensli.md §8) on MNIST and Fashion-MNIST with the VGG-style net, sized for a CPU.

Variants (every one over the same seeds; seed s ⇒ the same initial small net and the same minibatch order, so
the comparisons are paired):

==========  ========================================================================================================
 small      vgg_small(m) trained for all epochs, no insertion
 sensli     the same net, sensitivity pass + 'abs_max' on op22 after ``insert_at`` epochs, one virtual conv inserted
 big        the net SensLI ends with in that seed (an extra conv + ReLU at the chosen stage) from the start, its own
            random init (PyTorch default), trained for all epochs
 at<e>      as sensli but inserting after e epochs ("when to insert"; MNIST only)
 multi      up to 3 insertions with 'threshold_rel' (epochs split in 4 phases; MNIST only)
==========  ========================================================================================================

What is scaled against the authors' runs (CIFAR-10, m = [64, 128, 256], 50 + 50 epochs, SGD lr 0.01): the data
(the first ``n_train`` training images of MNIST / Fashion-MNIST, test on the first ``n_test`` test images), the
widths (their MNIST net VGG_small — they used m = [2, 4, 8] — with m = (8, 16, 32); head Linear(288 → 10) → ReLU →
Linear(10 → 10, no bias)),
the epochs (8 in all, insertion after 3), and the step size (lr 0.05, batch 32, so that 8 short epochs train:
SGD momentum 0.9 and weight decay 5e-4 as theirs). Single-threaded BLAS (OPENBLAS_NUM_THREADS=1) for the timings.

Full run (writes docs/results/sensli_conv_<data>.json and docs/figures/sensli_conv_<data>.png)::

    OPENBLAS_NUM_THREADS=1 python -m minigrow.experiments.sensli_conv --data mnist --seeds 10
    OPENBLAS_NUM_THREADS=1 python -m minigrow.experiments.sensli_conv --data fashion --seeds 10

``--quick`` (tiny sizes, seconds) writes only under ``--out-dir`` (required with --quick), never into docs/.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..data import FASHION_DIR, load_fashion_mnist, load_mnist
from ..methods.sensli.conv import sensli_conv_train, vgg_small
from ..validate import check_choice, check_int

__all__ = ["CONFIG", "QUICK", "VARIANTS", "load_images", "run_variant", "summarise", "reproduce", "markdown_table",
           "REPO_ROOT", "main"]

REPO_ROOT = Path(__file__).resolve().parents[2]

CONFIG = dict(m=(8, 16, 32), head=(10,), n_train=800, n_test=2000, epochs=8, insert_at=3, when=(1, 5),
              multi_epochs=(2, 2, 2, 2), lr=0.05, batch_size=32, momentum=0.9, weight_decay=5e-4, norm="op22",
              seeds=10)
QUICK = dict(CONFIG, n_train=96, n_test=64, epochs=3, insert_at=1, when=(2,), multi_epochs=(1, 1, 1), seeds=2)
VARIANTS = {"mnist": ("small", "sensli", "big", "when", "multi"), "fashion": ("small", "sensli", "big")}


def load_images(kind, n_train, n_test):
    """(X, y, X_test, y_test) as (N, 1, 28, 28) float32 in [0, 1]; None when Fashion-MNIST is not installed."""
    if kind == "mnist":
        d = load_mnist(n_train=n_train, n_test=n_test, flatten=False)
    else:
        if not Path(FASHION_DIR).exists():
            return None
        d = load_fashion_mnist(n_train=n_train, n_test=n_test, flatten=False)
    return d.X_train[:, None], d.y_train, d.X_test[:, None], d.y_test


def run_variant(name, data, seed, cfg, extra=()):
    """Train one variant for one seed; returns curves, test error, cost and the insertion records."""
    X, y, Xt, yt = data
    E = cfg["epochs"]
    rule = "abs_max"
    if name in ("small", "big"):
        epochs = [E]
    elif name == "sensli":
        epochs = [cfg["insert_at"], E - cfg["insert_at"]]
    elif name.startswith("at"):
        e = int(name[2:])
        epochs = [e, E - e]
    elif name == "multi":
        epochs, rule = list(cfg["multi_epochs"]), "threshold_rel"
    else:
        raise ValueError(f"variant: unknown {name!r}")
    model = vgg_small(cfg["m"], cfg["head"], extra=extra if name == "big" else (), rng=seed)
    run = sensli_conv_train(model, X, y, epochs, Xt, yt, rule=rule, norm=cfg["norm"], lr=cfg["lr"],
                            momentum=cfg["momentum"], weight_decay=cfg["weight_decay"],
                            batch_size=cfg["batch_size"], rng=np.random.default_rng(10_000 + seed))
    ins = run.insertions
    return {"train_loss": [float(v) for v in run.train_loss], "test_error": 1.0 - run.test_acc[-1][1],
            "test_loss": run.test_loss[-1][1], "train_macs": run.train_macs,
            "sensitivity_macs": run.sensitivity_macs, "macs": run.train_macs + run.sensitivity_macs,
            "seconds": run.seconds, "sensitivity_seconds": float(sum(e["seconds"] for e in ins)),
            "chosen": [e["chosen"] for e in ins], "scores": [e["scores"] for e in ins],
            "denominators": [e["denominator"] for e in ins], "insert_epochs": [e["epoch"] for e in ins],
            "output_unchanged": [e.get("output_unchanged") for e in ins if e["inserted"]],
            "n_insertions": int(sum(e["inserted"] for e in ins)),
            "final_params": int(model.n_params()), "final_macs_per_sample": int(model.macs())}


def _stats(v):
    v = np.asarray(v, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v)),
            "q25": float(np.quantile(v, 0.25)), "q75": float(np.quantile(v, 0.75))}


def summarise(results, reference="small"):
    """Per variant: final training loss, test error, multiply-adds, wall time (mean, std, median, quartiles);
    paired wins against ``reference`` (same seed); chosen positions and insertion counts."""
    out = {}
    ref = results.get(reference)
    for name, runs in results.items():
        fl = np.array([r["train_loss"][-1] for r in runs])
        te = np.array([r["test_error"] for r in runs])
        d = {"n_seeds": len(runs), "final_train_loss": _stats(fl), "test_error": _stats(te),
             "macs": _stats([r["macs"] for r in runs]), "seconds": _stats([r["seconds"] for r in runs]),
             "sensitivity_seconds": _stats([r["sensitivity_seconds"] for r in runs]),
             "final_macs_per_sample": _stats([r["final_macs_per_sample"] for r in runs]),
             "final_params": _stats([r["final_params"] for r in runs])}
        if any(r["chosen"] for r in runs):
            first = [r["chosen"][0] if r["chosen"] and r["chosen"][0] is not None else -1 for r in runs]
            d["first_choice"] = {str(k): int(first.count(k)) for k in sorted(set(first))}
            n_ins = [r["n_insertions"] for r in runs]
            d["n_insertions"] = {str(k): int(n_ins.count(k)) for k in sorted(set(n_ins))}
            d["outputs_unchanged_at_insertion"] = bool(all(all(r["output_unchanged"]) for r in runs))
        if ref is not None and name != reference:
            rl = np.array([r["train_loss"][-1] for r in ref])
            rte = np.array([r["test_error"] for r in ref])
            d["wins_vs_" + reference] = {"train_loss": float(np.mean(fl < rl)), "test_error": float(np.mean(te < rte)),
                                         "test_error_ties": float(np.mean(te == rte))}
        out[name] = d
    return out


def _write_json(path, obj):
    """Atomic write: a temporary file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)
    return path


def plot(results, title, path, when_names=()):
    """Left: mean training loss per epoch with the 25–75 % band across seeds; right (when given): final
    training loss against the insertion epoch."""
    from ..plotting import pyplot, savefig
    plt = pyplot()
    two = bool(when_names)
    fig, axes = plt.subplots(1, 2 if two else 1, figsize=(10 if two else 6, 3.8))
    a1 = axes[0] if two else axes
    for j, (name, runs) in enumerate(results.items()):
        if name.startswith("at"):
            continue
        L = np.array([r["train_loss"] for r in runs])
        x = np.arange(1, L.shape[1] + 1)
        c = f"C{j % 10}"
        a1.plot(x, L.mean(0), color=c, lw=1.4, label=f"{name} (mean of {L.shape[0]})")
        a1.fill_between(x, np.quantile(L, 0.25, axis=0), np.quantile(L, 0.75, axis=0), color=c, alpha=0.2, lw=0)
        for e in sorted({e for r in runs for e in r["insert_epochs"]}):
            a1.axvline(e, color=c, ls=":", lw=0.8)
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss (mean of the epoch's steps)")
    a1.set_yscale("log")
    a1.legend(fontsize=7)
    a1.set_title(title, fontsize=8)
    if two:
        a2 = axes[1]
        ep, med, lo, hi = [], [], [], []
        for name in when_names:
            f = np.array([r["train_loss"][-1] for r in results[name]])
            e = results[name][0]["insert_epochs"][0]
            ep.append(e)
            med.append(np.median(f))
            lo.append(np.median(f) - np.quantile(f, 0.25))
            hi.append(np.quantile(f, 0.75) - np.median(f))
        o = np.argsort(ep)
        a2.errorbar(np.array(ep)[o], np.array(med)[o], yerr=[np.array(lo)[o], np.array(hi)[o]], fmt="o-",
                    capsize=3, label="insert after epoch e (median, 25–75 %)")
        base = np.array([r["train_loss"][-1] for r in results["small"]])
        a2.axhline(np.median(base), color="k", ls="--", label="no insertion (median)")
        a2.set_xlabel("insertion epoch e")
        a2.set_ylabel("final training loss")
        a2.legend(fontsize=7)
    return savefig(fig, path)


def reproduce(kind="mnist", seeds=None, quick=False, out_dir=None, progress=True, plots=True):
    """Run every variant of ``kind`` ('mnist' or 'fashion') over ``seeds`` seeds; write
    ``<out_dir>/results/sensli_conv_<kind>.json`` (and the figure under ``<out_dir>/figures/``); return the summary.

    ``out_dir`` defaults to the repository's docs/ — for a full run only: a quick run needs an explicit ``out_dir``.
    Returns None (after a note on stderr) when Fashion-MNIST is not installed.
    """
    kind = check_choice("kind", kind, set(VARIANTS))
    cfg = dict(QUICK if quick else CONFIG)
    seeds = cfg["seeds"] if seeds is None else check_int("seeds", seeds, lo=1)
    if out_dir is None:
        if quick:
            raise ValueError("out_dir: a quick run never writes into docs/; give out_dir (e.g. a temporary folder)")
        out_dir = REPO_ROOT / "docs"
    out_dir = Path(out_dir)
    data = load_images(kind, cfg["n_train"], cfg["n_test"])
    if data is None:
        print(f"sensli_conv: {FASHION_DIR} not found — Fashion-MNIST skipped (install the Debian package "
              f"dataset-fashion-mnist)", file=sys.stderr)
        return None
    t0 = time.perf_counter()
    results = {}
    order = ["small", "sensli", "big"]
    if "when" in VARIANTS[kind]:
        order += [f"at{e}" for e in cfg["when"] if e != cfg["insert_at"]]
    if "multi" in VARIANTS[kind]:
        order.append("multi")
    for name in order:
        tv = time.perf_counter()
        runs = []
        for seed in range(seeds):
            extra = ()
            if name == "big":
                ch = results["sensli"][seed]["chosen"][0]
                extra = (ch,)
            runs.append(run_variant(name, data, seed, cfg, extra))
        results[name] = runs
        if progress:
            print(f"[{kind}] {name}: {seeds} seeds in {time.perf_counter() - tv:.1f} s", file=sys.stderr)
    when_names = [n for n in results if n.startswith("at")]
    if when_names:
        when_names = sorted(when_names + ["sensli"], key=lambda n: results[n][0]["insert_epochs"][0])
    summary = {
        "data": f"{kind}: first {data[0].shape[0]} training / {data[2].shape[0]} test images, 28×28",
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}, "seeds": seeds,
        "quick": bool(quick), "summary": summarise(results),
        "when_to_insert": {n: {"insert_after": results[n][0]["insert_epochs"][0],
                               "final_train_loss": _stats([r["train_loss"][-1] for r in results[n]]),
                               "test_error": _stats([r["test_error"] for r in results[n]])} for n in when_names},
        "curves": {n: np.array([r["train_loss"] for r in v]).mean(0).tolist() for n, v in results.items()},
        "per_seed": {n: [{k: r[k] for k in ("train_loss", "test_error", "macs", "seconds", "chosen", "scores",
                                            "denominators", "insert_epochs", "n_insertions")} for r in v]
                     for n, v in results.items()},
        "seconds": time.perf_counter() - t0,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "command": f"OPENBLAS_NUM_THREADS=1 python -m minigrow.experiments.sensli_conv --data {kind} --seeds {seeds}"
                   + (" --quick --out-dir …" if quick else ""),
    }
    _write_json(out_dir / "results" / f"sensli_conv_{kind}.json", summary)
    if plots:
        try:
            plot(results, f"conv SensLI, {summary['data']}, {seeds} seeds", out_dir / "figures" /
                 f"sensli_conv_{kind}.png", when_names)
        except ImportError as exc:
            print(f"sensli_conv: no plot ({exc})", file=sys.stderr)
    return summary


def markdown_table(results_dir=None):
    """The results table (one row per data set and variant) from the JSON files of full runs."""
    results_dir = REPO_ROOT / "docs" / "results" if results_dir is None else Path(results_dir)
    rows = ["| data | variant | seeds | final training loss mean ± std (median) | test error mean ± std | "
            "wins vs small (loss / test error) | multiply-adds per run | wall time s mean ± std |",
            "|---|---|---|---|---|---|---|---|"]
    for kind in VARIANTS:
        f = results_dir / f"sensli_conv_{kind}.json"
        if not f.exists():
            continue
        r = json.loads(f.read_text())
        for v, d in r["summary"].items():
            w = d.get("wins_vs_small")
            fl, te, s = d["final_train_loss"], d["test_error"], d["seconds"]
            rows.append(f"| {kind} | {v} | {d['n_seeds']} | {fl['mean']:.3f} ± {fl['std']:.3f} ({fl['median']:.3f}) | "
                        f"{te['mean']:.3f} ± {te['std']:.3f} | "
                        f"{'—' if w is None else '{:.0%} / {:.0%}'.format(w['train_loss'], w['test_error'])} | "
                        f"{d['macs']['mean']:.3g} | {s['mean']:.1f} ± {s['std']:.1f} |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m minigrow.experiments.sensli_conv",
                                 description="conv SensLI experiments (VGG-style net, MNIST / Fashion-MNIST)")
    ap.add_argument("--data", choices=["mnist", "fashion", "all"], default="all")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds); needs --out-dir")
    ap.add_argument("--out-dir", default=None, help="folder for results/ and figures/ (default docs/, full runs only)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--table", action="store_true", help="print the markdown table of the stored results and exit")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown_table(args.out_dir and Path(args.out_dir) / "results"))
        return 0
    if args.quick and args.out_dir is None:
        print("minigrow: error: --quick writes only into --out-dir (never docs/); give --out-dir", file=sys.stderr)
        return 2
    if args.seeds is not None and args.seeds < 1:
        print(f"minigrow: error: --seeds: expected at least 1, got {args.seeds}", file=sys.stderr)
        return 2
    kinds = ["mnist", "fashion"] if args.data == "all" else [args.data]
    for kind in kinds:
        s = reproduce(kind, args.seeds, args.quick, args.out_dir, plots=not args.no_plots)
        if s is not None:
            print(json.dumps({k: {"final_train_loss": v["final_train_loss"]["mean"],
                                  "test_error": v["test_error"]["mean"]} for k, v in s["summary"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
