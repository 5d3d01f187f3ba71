"""Reproductions for conflicting bundles on convolutional VGG / ResNet nets (bundles.md §7), sized for a 2-core CPU.

* :func:`conv_grid` — plain (vgg) vs residual (resnet) conv nets over blocks-per-stage × width, MNIST and (when
  installed) Fashion-MNIST, several seeds: test accuracy, |B| and H of the last block output and of every block.
  ``docs/results/bundles_conv_grid.json``, ``docs/figures/bundles_conv_grid.png``.
* :func:`conv_autotune` — auto-tune of a deep vgg net by the authors' rule against the starting net and a
  hand-picked shallow net (architecture, parameters, accuracy, training cost). ``bundles_conv_autotune.json/.png``.
* :func:`conv_lesion` — lesion study on trained conv ResNets: conflicting / non-conflicting / random blocks dropped,
  15 repeats, the largest fraction droppable within 0.5 points. ``bundles_conv_lesion.json/.png``.

What is scaled against the authors' settings (all recorded in each JSON's ``config``): 28×28 images average-pooled
2×2 to 14×14 (``pool=2``; conv cost ÷ 4), stem conv 3×3 stride 1 (not 7×7 stride 2), three stages of
width, 2·width, 4·width channels (not four of 64…512), blocks per stage 1…10 (not up to [3, 12, 41, 3]), the first
``n_train`` training / ``n_test`` test images, 2–3 epochs of Adam η = 1e-3, B = 64 (not 120 epochs of
Lookahead(RAdam, weight decay 1e-2)), no augmentation, He-*uniform* init (theirs: He-normal). Bundles on the first
512 training images (the authors' auto-tune used 64), float32 grid with the training η and B.

Command line: ``python -m minigrow reproduce bundles conv-grid|conv-autotune|conv-autotune-122|conv-lesion``, or

    python -m minigrow.experiments.bundles_conv grid|autotune|lesion [--quick] [--out-dir D] [--fig-dir D]

Without ``--out-dir``/``--fig-dir`` the full runs write into docs/results and docs/figures; ``--quick`` (seconds,
for tests) writes nowhere unless directories are given.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..methods.bundles import label_entropy, majority_share
from ..methods.bundles import weight_amplitude
from ..methods.bundles.conv import (accuracy, as_images, autotune_conv, block_conflicts, conflict_margin, conv_activations,
                            conv_layer_report, lesion_conv, training_macs)
from ..data import FASHION_DIR, load_fashion_mnist, load_mnist
from ..convnets import conv_net
from ..optim import Adam
from ..train import Trainer

__all__ = ["REPO_ROOT", "GRID", "QUICK_GRID", "AUTOTUNE", "QUICK_AUTOTUNE", "LESION", "QUICK_LESION", "load_images",
           "conv_grid", "conv_autotune", "conv_lesion", "grid_table", "lesion_table", "main"]

REPO_ROOT = Path(__file__).resolve().parents[2]

GRID = dict(datasets=["mnist", "fashion"], depths=[1, 3, 6], widths=[4, 8], seeds=[0, 1], n_train=3000,
            n_test=1000, epochs=2, n_eval=512, pool=2)
QUICK_GRID = dict(datasets=["mnist"], depths=[1, 2], widths=[2], seeds=[0, 1], n_train=128, n_test=64, epochs=1,
                  n_eval=64, pool=4)
AUTOTUNE = dict(blocks=[10, 10, 10], width=8, shallow=[1, 1, 1], n_train=3000, n_test=1000, epochs=3,
                check_epochs=10, max_rounds=5, n_eval=512, pool=2, seed=0, dataset="mnist")
QUICK_AUTOTUNE = dict(blocks=[2, 2, 2], width=2, shallow=[1, 0, 0], n_train=128, n_test=64, epochs=1,
                      check_epochs=10, max_rounds=3, n_eval=64, pool=4, seed=0, dataset="mnist")
LESION = dict(blocks=[4, 4, 4], width=8, n_train=4000, n_test=2000, epochs=3, n_eval=512, repeats=15, tol=0.005,
              seeds=[0, 1], pool=2, dataset="mnist")
QUICK_LESION = dict(blocks=[2, 1, 1], width=2, n_train=128, n_test=64, epochs=1, n_eval=64, repeats=3, tol=0.005,
                    seeds=[0], pool=4, dataset="mnist")

LR, BATCH = 1e-3, 64


def _log(progress, msg):
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _pool(X, p):
    """Average-pool (N, 1, 28, 28) images by p × p (p = 1: unchanged)."""
    if p == 1:
        return X
    n, c, h, w = X.shape
    return np.ascontiguousarray(X.reshape(n, c, h // p, p, w // p, p).mean(axis=(3, 5)), dtype=np.float32)


def load_images(dataset, n_train, n_test, pool=1):
    """(X_train, y_train, X_test, y_test) as (N, 1, 28/pool, 28/pool) float32 in [0, 1]."""
    if dataset == "mnist":
        d = load_mnist(n_train=n_train, n_test=n_test, flatten=False)
    elif dataset == "fashion":
        d = load_fashion_mnist(n_train=n_train, n_test=n_test, flatten=False)
    else:
        raise ValueError(f"dataset: expected 'mnist' or 'fashion', got {dataset!r}")
    return _pool(as_images(d.X_train), pool), d.y_train, _pool(as_images(d.X_test), pool), d.y_test


def _write(res, out_dir, name):
    if out_dir is None:
        return None
    path = Path(out_dir) / f"bundles_conv_{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=1, default=float))
    os.replace(tmp, path)                       # atomic
    return path


def _cpu():
    return time.process_time()


# ----------------------------------------------------------------------------------------------------------------
# Depth × width grid
# ----------------------------------------------------------------------------------------------------------------

def _train_cell(arch, depth, width, data, epochs, n_eval, seed):
    Xtr, ytr, Xte, yte = data
    t0, c0 = time.perf_counter(), _cpu()
    model = conv_net([depth] * 3, width, skip=(arch == "residual"), rng=seed)
    Xe, ye = Xtr[:n_eval], ytr[:n_eval]
    init = conv_layer_report(model, Xe, ye, LR, BATCH, 10, last_only=True)[0]
    tr = Trainer(model, "ce", Adam(LR), batch_size=BATCH, rng=seed, progress=False)
    diverged = False
    try:
        tr.fit(Xtr, ytr, epochs)
    except Exception as exc:                     # TrainingDiverged: record it, do not abort the grid
        diverged = str(exc)
    rep = conv_layer_report(model, Xe, ye, LR, BATCH, 10)
    blocks = [r for r in rep if r.kind == "block"]
    flags = block_conflicts(rep)
    return {"arch": arch, "depth": depth, "width": width, "seed": seed, "conv_layers": 2 + 6 * depth,      # the authors' count: stem + 2 per block + dense output
            "n_params": model.n_params(), "test_acc": accuracy(model, Xte, yte),
            "train_loss": tr.history.epochs[-1]["train_loss"] if tr.history.epochs else None,
            "n_bundles_init": init.n_bundles, "entropy_init": init.entropy,
            "n_bundles": blocks[-1].n_bundles, "entropy": blocks[-1].entropy, "acc_max": blocks[-1].acc_max,
            "block_n_bundles": [r.n_bundles for r in blocks], "block_entropy": [r.entropy for r in blocks],
            "branch_entropy": [r.entropy for r in rep if r.kind == "branch"],
            "branch_n_bundles": [r.n_bundles for r in rep if r.kind == "branch"],
            "n_conflicting_blocks": int(sum(flags)), "diverged": diverged,
            "seconds": time.perf_counter() - t0, "cpu_seconds": _cpu() - c0}


def conv_grid(quick=False, out_dir=None, fig_dir=None, progress=True, **over):
    """Train every (dataset, arch, depth, width, seed) cell once (see :data:`GRID`); write JSON and figure."""
    cfg = dict(QUICK_GRID if quick else GRID)
    cfg.update({k: v for k, v in over.items() if v is not None})
    datasets = [d for d in cfg["datasets"] if d != "fashion" or FASHION_DIR.exists()]
    skipped = [d for d in cfg["datasets"] if d not in datasets]
    runs, meta = [], {}
    t0, c0 = time.perf_counter(), _cpu()
    for ds in datasets:
        data = load_images(ds, cfg["n_train"], cfg["n_test"], cfg["pool"])
        meta[ds] = {"label_entropy_eval": label_entropy(data[1][:cfg["n_eval"]]),
                    "majority_share_test": majority_share(data[3])}
        for arch in ("plain", "residual"):
            for depth in cfg["depths"]:
                for width in cfg["widths"]:
                    for seed in cfg["seeds"]:
                        r = _train_cell(arch, depth, width, data, cfg["epochs"], cfg["n_eval"], seed)
                        r["dataset"] = ds
                        runs.append(r)
                        _log(progress, f"{ds:>7} {arch:>8} blocks/stage {depth} width {width} seed {seed}: test acc "
                                       f"{r['test_acc']:.4f}, |B^L| {r['n_bundles']}, H {r['entropy']:.4f}, "
                                       f"conflicting blocks {r['n_conflicting_blocks']} ({r['cpu_seconds']:.1f} s CPU)")
    res = {"config": {**cfg, "datasets": datasets, "skipped_datasets": skipped, "lr": LR, "batch_size": BATCH,
                      "optimizer": "Adam", "init": "he (uniform)", "stages": 3, "quick": quick},
           "datasets": meta, "runs": runs, "seconds": time.perf_counter() - t0, "cpu_seconds": _cpu() - c0}
    _write(res, out_dir, "grid")
    if fig_dir is not None:
        plot_grid(res, Path(fig_dir) / "bundles_conv_grid.png")
    return res


def _cells(res, ds, arch, depth, width):
    return [r for r in res["runs"] if (r["dataset"], r["arch"], r["depth"], r["width"]) == (ds, arch, depth, width)]


def plot_grid(res, path):
    """Per dataset: test accuracy (mean over seeds, ± range) and H of the last block vs depth, plain vs residual."""
    from ..plotting import pyplot, savefig
    plt = pyplot()
    cfg = res["config"]
    dss = cfg["datasets"]
    fig, axes = plt.subplots(2, len(dss), figsize=(4.6 * len(dss), 6.2), squeeze=False)
    for j, ds in enumerate(dss):
        for arch, ls in (("plain", "-"), ("residual", "--")):
            for w in cfg["widths"]:
                layers = [2 + 6 * d for d in cfg["depths"]]
                acc = [[c["test_acc"] for c in _cells(res, ds, arch, d, w)] for d in cfg["depths"]]
                H = [[c["entropy"] for c in _cells(res, ds, arch, d, w)] for d in cfg["depths"]]
                m = np.array([np.mean(a) for a in acc])
                lo = m - np.array([np.min(a) for a in acc])
                hi = np.array([np.max(a) for a in acc]) - m
                axes[0, j].errorbar(layers, m, yerr=[lo, hi], ls=ls, marker="o", ms=3, capsize=2,
                                    label=f"{arch} w={w}")
                axes[1, j].plot(layers, [np.mean(h) for h in H], ls, marker="o", ms=3, label=f"{arch} w={w}")
        axes[0, j].set_title(f"{ds}: test accuracy (mean, min–max over seeds)", fontsize=9)
        axes[0, j].set_xlabel("layers (stem + 2 per block + output)")
        axes[0, j].legend(fontsize=7)
        axes[1, j].axhline(res["datasets"][ds]["label_entropy_eval"], color="gray", ls=":", lw=0.8, label="H(Y)")
        axes[1, j].set_title(f"{ds}: H of the last block output (mean over seeds)", fontsize=9)
        axes[1, j].set_xlabel("layers (stem + 2 per block + output)")
        axes[1, j].legend(fontsize=7)
    savefig(fig, path)


# ----------------------------------------------------------------------------------------------------------------
# Auto-tune
# ----------------------------------------------------------------------------------------------------------------

def _profile(model, Xe, ye):
    """Per recorded entry: |B|, H and the conflict margin d*/γ (:func:`~minigrow.methods.bundles.conv.conflict_margin`)."""
    w = weight_amplitude(model)
    rep = conv_layer_report(model, Xe, ye, LR, BATCH, 10)
    out = []
    for r, (name, kind, idx, a) in zip(rep, conv_activations(model, Xe)):
        m = conflict_margin(a, ye, w, LR, BATCH)
        out.append({"name": name, "n_bundles": r.n_bundles, "entropy": r.entropy, "margin_ratio": m["ratio"],
                    "min_linf": m["min_linf"], "gamma": m["gamma"]})
    return out


def _train_fixed(blocks, width, data, epochs, seed, n_eval):
    Xtr, ytr, Xte, yte = data
    t0, c0 = time.perf_counter(), _cpu()
    model = conv_net(blocks, width, skip=False, rng=np.random.default_rng([seed, 0]))
    tr = Trainer(model, "ce", Adam(LR), batch_size=BATCH, rng=np.random.default_rng([seed, 0, 1]), progress=False)
    tr.fit(Xtr, ytr, epochs)
    return {"blocks": list(blocks), "n_params": model.n_params(), "macs": model.macs(), "epochs": epochs,
            "test_acc": accuracy(model, Xte, yte), "train_macs": training_macs(model, Xtr.shape[0], epochs),
            "train_loss": [r["train_loss"] for r in tr.history.epochs],
            "profile": _profile(model, Xtr[:n_eval], ytr[:n_eval]),
            "seconds": time.perf_counter() - t0, "cpu_seconds": _cpu() - c0}


def conv_autotune(quick=False, out_dir=None, fig_dir=None, progress=True, name="autotune", **over):
    """Auto-tune a deep vgg net (:data:`AUTOTUNE`, any key overridable, e.g. ``blocks=[20, 20, 20]``), then train
    the starting net and a hand-picked shallow net for the same epochs (round 0 of auto-tune *is* the starting net
    when it finds no conflict). Writes ``bundles_conv_<name>.json/.png``."""
    cfg = dict(QUICK_AUTOTUNE if quick else AUTOTUNE)
    cfg.update({k: v for k, v in over.items() if v is not None})
    data = load_images(cfg["dataset"], cfg["n_train"], cfg["n_test"], cfg["pool"])
    t0, c0 = time.perf_counter(), _cpu()

    def show(rec):
        _log(progress, f"round {rec['round']}: blocks {rec['blocks']} ({rec['n_params']} params) → conflict at "
                       f"epoch {rec['conflict_epoch']}, H(last) {rec['entropy_last']}, next {rec.get('new_blocks')},"
                       f" test acc {rec.get('test_acc')}, {rec['seconds']:.1f} s")

    at = autotune_conv(data[0], data[1], cfg["blocks"], cfg["width"], data[2], data[3], epochs=cfg["epochs"],
                       check_epochs=cfg["check_epochs"], max_rounds=cfg["max_rounds"], n_eval=cfg["n_eval"], lr=LR,
                       batch_size=BATCH, seed=cfg["seed"], progress=show)
    c_at = _cpu() - c0
    out = {"config": {**cfg, "lr": LR, "batch_size": BATCH, "quick": quick}, "autotune": at.as_dict(),
           "autotune_cpu_seconds": c_at}
    final = at.rounds[-1]
    out["autotuned"] = {"blocks": final["blocks"], "n_params": final["n_params"], "test_acc": final.get("test_acc"),
                        "converged": at.converged, "total_train_macs": at.total_train_macs,
                        "total_seconds": at.total_seconds, "total_epochs": at.total_epochs,
                        "profile": _profile(at.model, data[0][:cfg["n_eval"]], data[1][:cfg["n_eval"]])}
    if at.rounds[0]["conflict_epoch"] is None:           # the starting net trained to the end without a conflict
        r0 = at.rounds[0]
        out["start"] = {"blocks": r0["blocks"], "n_params": r0["n_params"], "test_acc": r0["test_acc"],
                        "train_macs": r0["train_macs"], "seconds": r0["seconds"], "train_loss": r0["train_loss"],
                        "profile": out["autotuned"]["profile"], "same_as_autotune_round_0": True}
    else:
        out["start"] = _train_fixed(cfg["blocks"], cfg["width"], data, cfg["epochs"], cfg["seed"], cfg["n_eval"])
    out["shallow"] = _train_fixed(cfg["shallow"], cfg["width"], data, cfg["epochs"], cfg["seed"], cfg["n_eval"])
    out["seconds"], out["cpu_seconds"] = time.perf_counter() - t0, _cpu() - c0
    for k in ("start", "autotuned", "shallow"):
        _log(progress, f"{k:>9}: blocks {out[k]['blocks']}, {out[k]['n_params']} params, test acc "
                       f"{out[k]['test_acc']}, smallest conflict margin d*/γ over the blocks "
                       f"{min((p['margin_ratio'] for p in out[k]['profile']), default=float('nan')):.3g}")
    _write(out, out_dir, name)
    if fig_dir is not None:
        plot_autotune(out, Path(fig_dir) / f"bundles_conv_{name}.png")
    return out


def plot_autotune(out, path):
    """Left: per-block conflict margin d*/γ of the starting, auto-tuned and shallow nets (conflicts need ≲ 1) with
    H of the last block at each check in the legend; right: test accuracy, parameters, training MACs."""
    from ..plotting import pyplot, savefig
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    checks = "; ".join(f"round {r['round']} {r['blocks']}: H(last) {['%.3g' % h for h in r['entropy_last']]}"
                       for r in out["autotune"]["rounds"])
    for k, c in (("start", "C0"), ("autotuned", "C2"), ("shallow", "C1")):
        prof = out[k].get("profile")
        if prof and not (k == "autotuned" and out["start"].get("same_as_autotune_round_0")):
            a1.plot([p["margin_ratio"] for p in prof], marker=".", ms=3, color=c, label=f"{k} {out[k]['blocks']}")
    a1.axhline(1.0, color="red", ls=":", lw=0.8, label="1 γ (conflicts possible below)")
    a1.set_yscale("log")
    a1.set_xlabel("block")
    a1.set_ylabel("conflict margin d*/γ (after training)")
    a1.set_title(checks, fontsize=7)
    a1.legend(fontsize=7)
    names = ["start", "autotuned", "shallow"]
    acc = [out[k]["test_acc"] for k in names]
    macs = [out[k].get("train_macs", out[k].get("total_train_macs")) for k in names]
    a2.bar(range(3), acc, color=["C0", "C2", "C1"])
    for i, k in enumerate(names):
        a2.text(i, 0.03, f"{out[k]['blocks']}\n{out[k]['n_params']} params\n{macs[i] / 1e9:.1f} GMAC train",
                ha="center", fontsize=7, color="w")
    a2.set_xticks(range(3), names)
    a2.set_ylim(0, 1)
    a2.set_ylabel("test accuracy")
    savefig(fig, path)


# ----------------------------------------------------------------------------------------------------------------
# Lesion
# ----------------------------------------------------------------------------------------------------------------

def conv_lesion(quick=False, out_dir=None, fig_dir=None, progress=True, **over):
    """Train conv ResNets (one per seed, :data:`LESION`) and run :func:`~minigrow.methods.bundles.conv.lesion_conv`."""
    cfg = dict(QUICK_LESION if quick else LESION)
    cfg.update({k: v for k, v in over.items() if v is not None})
    Xtr, ytr, Xte, yte = load_images(cfg["dataset"], cfg["n_train"], cfg["n_test"], cfg["pool"])
    t0, c0 = time.perf_counter(), _cpu()
    nets = []
    for seed in cfg["seeds"]:
        c1 = _cpu()
        model = conv_net(cfg["blocks"], cfg["width"], skip=True, rng=seed)
        tr = Trainer(model, "ce", Adam(LR), batch_size=BATCH, rng=seed, progress=False)
        tr.fit(Xtr, ytr, cfg["epochs"])
        c_train = _cpu() - c1
        r = lesion_conv(model, Xtr[:cfg["n_eval"]], ytr[:cfg["n_eval"]], Xte, yte, repeats=cfg["repeats"], rng=seed,
                        lr=LR, batch_size=BATCH, tol=cfg["tol"])
        r.update(seed=seed, n_params=model.n_params(), train_cpu_seconds=c_train, lesion_cpu_seconds=_cpu() - c1
                 - c_train)
        nets.append(r)
        _log(progress, f"seed {seed}: {len(r['conflicting_blocks'])}/{r['n_blocks']} conflicting blocks "
                       f"{r['conflicting_blocks']}, base test acc {r['base_test_acc']:.4f}, drop all conflicting → "
                       f"{r['drop_all_conflicting_acc']:.4f}")
        for g, c in r["curves"].items():
            _log(progress, f"  {g:>15}: largest k within {cfg['tol'] * 100:.1f} pt: mean {c['largest_k_mean']} "
                           f"({c['largest_fraction_mean']:.0%}), every repeat {c['largest_k_all_repeats']} | "
                           + ", ".join(f"k={k}: {m:.3f}±{s:.3f}" for k, m, s in zip(c["k"], c["mean"], c["std"])))
    res = {"config": {**cfg, "lr": LR, "batch_size": BATCH, "quick": quick}, "nets": nets,
           "seconds": time.perf_counter() - t0, "cpu_seconds": _cpu() - c0}
    _write(res, out_dir, "lesion")
    if fig_dir is not None:
        plot_lesion(res, Path(fig_dir) / "bundles_conv_lesion.png")
    return res


def plot_lesion(res, path):
    from ..plotting import pyplot, savefig
    plt = pyplot()
    nets = res["nets"]
    fig, axes = plt.subplots(1, len(nets), figsize=(4.8 * len(nets), 3.4), squeeze=False)
    for ax, r in zip(axes[0], nets):
        n = r["n_blocks"]
        for g, c in r["curves"].items():
            if c["k"]:
                ax.errorbar(np.array(c["k"]) / n, c["mean"], yerr=c["std"], marker="o", ms=3, capsize=2, label=g)
        ax.axhline(r["base_test_acc"], color="gray", ls=":", lw=0.8, label="no lesion")
        ax.axhline(r["base_test_acc"] - r["tol"], color="red", ls=":", lw=0.8, label="−0.5 pt")
        ax.axvline(0.6, color="k", ls="--", lw=0.6, label="60 %")
        ax.set_xlabel("fraction of blocks dropped at test time")
        ax.set_ylabel("test accuracy (mean ± std, 15 draws)")
        ax.set_title(f"seed {r['seed']}: {len(r['conflicting_blocks'])}/{n} conflicting", fontsize=9)
        ax.legend(fontsize=6)
    savefig(fig, path)


def grid_table(res):
    """Markdown table of a :func:`conv_grid` result: per (dataset, arch, blocks/stage, width) the test accuracy
    (mean and min–max over seeds), |B| and H of the last block output (mean), conflicting blocks (max), CPU s."""
    cfg = res["config"]
    lines = ["| data | net | layers (blocks/stage) | width | params | test acc mean (min–max) | |B^L| of "
             f"{cfg['n_eval']} | H(a^L) | conflicting blocks | branch H > 0 | CPU s / run |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for ds in cfg["datasets"]:
        for arch in ("plain", "residual"):
            for d in cfg["depths"]:
                for w in cfg["widths"]:
                    cs = _cells(res, ds, arch, d, w)
                    if not cs:
                        continue
                    acc = [c["test_acc"] for c in cs]
                    nbr = sum(sum(h > 0 for h in c["branch_entropy"]) for c in cs)
                    lines.append(
                        f"| {ds} | {'vgg' if arch == 'plain' else 'resnet'} | {cs[0]['conv_layers']} ({d}) | {w} | "
                        f"{cs[0]['n_params']} | {np.mean(acc):.3f} ({min(acc):.3f}–{max(acc):.3f}) | "
                        f"{np.mean([c['n_bundles'] for c in cs]):.0f} | {np.mean([c['entropy'] for c in cs]):.3f} | "
                        f"{max(c['n_conflicting_blocks'] for c in cs)} | "
                        f"{'–' if arch == 'plain' else nbr} | {np.mean([c['cpu_seconds'] for c in cs]):.1f} |")
    return "\n".join(lines)


def lesion_table(res):
    """Markdown table of a :func:`conv_lesion` result, one row per (net, group)."""
    lines = ["| seed | blocks | conflicting | base acc | group | largest k (mean ≥ base − tol) | fraction | "
             "largest k (every draw) | acc at that k (mean ± std) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["nets"]:
        for g, c in r["curves"].items():
            k = c["largest_k_mean"]
            at = f"{c['mean'][c['k'].index(k)]:.4f} ± {c['std'][c['k'].index(k)]:.4f}" if k else "–"
            lines.append(f"| {r['seed']} | {r['n_blocks']} | {len(r['conflicting_blocks'])} | "
                         f"{r['base_test_acc']:.4f} | {g} | {k} | {c['largest_fraction_mean']:.0%} | "
                         f"{c['largest_k_all_repeats']} | {at} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------

def main(argv=None):
    """``python -m minigrow.experiments.bundles_conv grid|autotune|lesion [--quick] [--out-dir D] [--fig-dir D]``."""
    p = argparse.ArgumentParser(prog="python -m minigrow.experiments.bundles_conv",
                                description="conflicting bundles on conv VGG / ResNet nets (docs/bundles.md)")
    p.add_argument("what", choices=["grid", "autotune", "lesion", "table"])
    p.add_argument("--quick", action="store_true", help="seconds-long run (tests); writes only to given dirs")
    p.add_argument("--out-dir", default=None, help="JSON folder (default docs/results for full runs)")
    p.add_argument("--fig-dir", default=None, help="figure folder (default docs/figures for full runs)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", default=None, help="table: a bundles_conv_grid/lesion JSON to print as markdown")
    args = p.parse_args(argv)
    if args.what == "table":
        if args.json is None:
            p.error("table needs --json PATH")
        res = json.loads(Path(args.json).read_text())
        print(lesion_table(res) if "nets" in res else grid_table(res))
        return 0
    out_dir, fig_dir = args.out_dir, args.fig_dir
    if not args.quick:
        out_dir = out_dir or REPO_ROOT / "docs" / "results"
        fig_dir = fig_dir or REPO_ROOT / "docs" / "figures"
    fn = {"grid": conv_grid, "autotune": conv_autotune, "lesion": conv_lesion}[args.what]
    fn(quick=args.quick, out_dir=out_dir, fig_dir=fig_dir, progress=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
