"""Reproductions for conflicting bundles (bundles.md §5) on MNIST subsets, sized for a 2-core CPU.

* :func:`depth_width_grid` — plain vs residual ReLU MLPs over a depth × width grid: test accuracy, |B^L| and
  H(a^L) of the last hidden layer on the first ``n_eval`` training images after training, plus the per-layer
  profile of the deepest nets. Writes ``docs/results/bundles_grid.json`` and ``docs/figures/bundles_grid.png``,
  ``bundles_depth.png``, ``bundles_layers.png``.
* :func:`autotune_mnist` — auto-tune from a collapsed deep plain net. ``bundles_autotune.json/.png``.
* :func:`lesion_mnist` — lesion study on a trained residual MLP. ``bundles_lesion.json/.png``.

Settings (ours, chosen for the CPU budget; the paper used conv nets and full data sets): Adam η = 1e-3, B = 64,
MNIST scaled to [0, 1], first ``n_train`` training / ``n_test`` test images, bundles on the first 512 training
images with the float32 grid (η, B of training). Plain nets: He-uniform (as the authors' FNN). Residual nets:
``residual_mlp`` with PyTorch-default init (no normalisation layers here, He init makes deep unnormalised
residual stacks blow up) and the same number of weight layers as the plain net of that depth
(depth L = stem + (L − 1)//2 blocks of two layers).

Command line: ``python -m minigrow reproduce bundles grid|autotune|lesion [--quick]``.
"""
from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

import numpy as np

from ..methods.bundles import autotune, label_entropy, layer_report, lesion_study, majority_share
from ..data import load_mnist
from ..network import mlp, residual_mlp
from ..optim import Adam
from ..output import write_json
from ..sweep import run_sweep
from ..train import Trainer

__all__ = ["REPO_ROOT", "make_net", "depth_width_grid", "grid_run", "autotune_mnist", "lesion_mnist", "GRID",
           "QUICK_GRID", "AUTOTUNE_BLOCKS", "measure", "demo"]

from . import REPO_ROOT, guard_quick  # noqa: E402
GRID = dict(depths=[2, 5, 10, 20, 35, 50, 75, 100], widths=[10, 25, 50], n_train=10000, n_test=2000, epochs=3, n_eval=512)
QUICK_GRID = dict(depths=[2, 12], widths=[10], n_train=600, n_test=300, epochs=1, n_eval=128)
# the papers' four block types with block counts [3, 12, 41, 3] (bundles.md §5, `reproduce bundles autotune-blocks`)
AUTOTUNE_BLOCKS = dict(counts=(3, 12, 41, 3), block_widths=(64, 32, 16, 8), rule="all_types", name="autotune_blocks")


def _log(progress, msg):
    if progress:
        print(msg, file=sys.stderr, flush=True)


def make_net(arch, depth, width, seed, n_in=784, n_out=10):
    """'plain': ``depth`` Dense+ReLU layers (He-uniform); 'residual': stem + (depth − 1)//2 ReLU residual blocks."""
    if arch == "plain":
        return mlp([n_in] + [width] * depth + [n_out], "relu", init="he", rng=seed)
    return residual_mlp(n_in, width, max(0, (depth - 1) // 2), n_out, "relu", init="torch", rng=seed)


def _train_one(arch, depth, width, d, epochs, n_eval, seed, lr=1e-3, batch_size=64):
    t0 = time.perf_counter()
    model = make_net(arch, depth, width, seed)
    Xe, ye = d.X_train[:n_eval], d.y_train[:n_eval]
    init = layer_report(model, Xe, ye, lr=lr, batch_size=batch_size, n_classes=10, last_only=True)[0]
    tr = Trainer(model, "ce", Adam(lr), batch_size=batch_size, rng=seed, progress=False)
    diverged = False
    try:
        tr.fit(d.X_train, d.y_train, epochs, d.X_test, d.y_test)
    except Exception as exc:            # TrainingDiverged: record, do not abort the grid
        diverged = str(exc)
    kinds = {"hidden", "block"}
    try:
        rep = layer_report(model, Xe, ye, lr=lr, batch_size=batch_size, n_classes=10, kinds=kinds)
    except ValueError as exc:           # BundleDivergenceError
        rep, diverged = [], str(exc)
    last = tr.history.epochs[-1] if tr.history.epochs else {}
    return {"arch": arch, "depth": depth, "width": width, "seed": seed,
            "test_acc": last.get("test_acc", float("nan")), "train_loss": last.get("train_loss", float("nan")),
            "n_bundles_init": init.n_bundles, "entropy_init": init.entropy,
            "n_bundles": rep[-1].n_bundles if rep else None, "entropy": rep[-1].entropy if rep else None,
            "acc_max": rep[-1].acc_max if rep else None,
            "layer_n_bundles": [r.n_bundles for r in rep], "layer_entropy": [r.entropy for r in rep],
            "diverged": diverged, "seconds": time.perf_counter() - t0}


@functools.lru_cache(maxsize=2)
def _mnist(n_train, n_test):
    """The MNIST subset, loaded once per process (sweep workers run many grid points on it; never mutated)."""
    return load_mnist(n_train=n_train, n_test=n_test)


def grid_run(arch, depth, width, n_train, n_test, epochs, n_eval, seed):
    """One point of :func:`depth_width_grid` (a module-level function of keyword arguments for
    :func:`minigrow.sweep.run_sweep`)."""
    return _train_one(arch, depth, width, _mnist(n_train, n_test), epochs, n_eval, seed)


def depth_width_grid(depths=None, widths=None, n_train=None, n_test=None, epochs=None, n_eval=None, seed=0,
                     archs=("plain", "residual"), out_dir=None, fig_dir=None, quick=False, progress=True, jobs=1,
                     scheduler=None, plots=True):
    """Train every (arch, depth, width) once; returns the JSON-able result and writes it (and the figures, unless
    ``plots=False``). ``jobs``/``scheduler``: the runs go through :func:`minigrow.sweep.run_sweep` (a process pool
    or a Dask cluster), bit-identical to ``jobs=1``."""
    guard_quick(quick, out_dir=out_dir, fig_dir=fig_dir)
    cfg = dict(QUICK_GRID if quick else GRID)
    for k, v in dict(depths=depths, widths=widths, n_train=n_train, n_test=n_test, epochs=epochs,
                     n_eval=n_eval).items():
        if v is not None:
            cfg[k] = v
    d = _mnist(cfg["n_train"], cfg["n_test"])
    ye = d.y_train[:cfg["n_eval"]]
    # one independent training run per (arch, depth, width): serially or in parallel (minigrow.sweep)
    tasks = [dict(arch=arch, depth=depth, width=width, n_train=cfg["n_train"], n_test=cfg["n_test"],
                  epochs=cfg["epochs"], n_eval=cfg["n_eval"], seed=seed)
             for arch in archs for depth in cfg["depths"] for width in cfg["widths"]]
    runs = run_sweep(grid_run, tasks, jobs=jobs, scheduler=scheduler)
    for r in runs:
        _log(progress, f"{r['arch']:>8} depth {r['depth']:>3} width {r['width']:>3}: test acc {r['test_acc']:.4f}, "
                       f"|B^L| {r['n_bundles']}, H {r['entropy'] if r['entropy'] is None else round(r['entropy'], 4)}"
                       f" ({r['seconds']:.1f} s)")
    res = {"config": {**cfg, "seed": seed, "lr": 1e-3, "batch_size": 64, "archs": list(archs)},
           "label_entropy_eval": label_entropy(ye), "majority_share_test": majority_share(d.y_test),
           "runs": runs}
    if out_dir is not None:
        write_json(Path(out_dir) / "bundles_grid.json", res)
    if fig_dir is not None and plots:
        plot_grid(res, Path(fig_dir))
    return res


def plot_grid(res, fig_dir, prefix="bundles_"):
    """Heatmaps of test accuracy with the conflict boundary; |B^L|, H vs depth; per-layer profile."""
    from ..plotting import pyplot, savefig
    plt = pyplot()
    cfg = res["config"]
    depths, widths, archs = cfg["depths"], cfg["widths"], cfg["archs"]
    look = {(r["arch"], r["depth"], r["width"]): r for r in res["runs"]}
    fig, axes = plt.subplots(1, len(archs), figsize=(4.8 * len(archs), 3.8), squeeze=False,
                             layout="constrained")
    for ax, arch in zip(axes[0], archs):
        acc = np.array([[look[(arch, dd, w)]["test_acc"] for dd in depths] for w in widths])
        im = ax.imshow(acc, vmin=0, vmax=1, cmap="viridis", aspect="auto", origin="lower")
        for i, w in enumerate(widths):
            for j, dd in enumerate(depths):
                r = look[(arch, dd, w)]
                conflict = r["entropy"] is None or r["entropy"] > 0
                ax.text(j, i, f"{r['test_acc']:.2f}" + ("*" if conflict else ""), ha="center", va="center",
                        fontsize=7, color="w" if r["test_acc"] < 0.6 else "k")
                if conflict:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=1.5))
        ax.set_xticks(range(len(depths)), depths)
        ax.set_yticks(range(len(widths)), widths)
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel("width")
        ax.set_title(f"{arch}: test accuracy\n(red box, *: H(a^L) > 0)", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="test accuracy")
    fig_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(fig_dir / f"{prefix}grid.png", dpi=100)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for arch, ls in zip(archs, ["-", "--"]):
        for w in widths:
            rs = [look[(arch, dd, w)] for dd in depths]
            a1.plot(depths, [r["n_bundles"] or np.nan for r in rs], ls, marker="o", ms=3, label=f"{arch} w={w}")
            a2.plot(depths, [np.nan if r["entropy"] is None else r["entropy"] for r in rs], ls, marker="o", ms=3)
    a2.axhline(res["label_entropy_eval"], color="gray", lw=0.8, ls=":", label="H(Y)")
    a1.set_yscale("log")
    a1.set_xlabel("depth")
    a1.set_ylabel(f"|B^L| (of {cfg['n_eval']})")
    a2.set_xlabel("depth")
    a2.set_ylabel("H(a^L) (nats)")
    a1.legend(fontsize=6)
    a2.legend(fontsize=7)
    savefig_small(fig, fig_dir / f"{prefix}depth.png")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    dmax = max(depths)
    for arch, ls in zip(archs, ["-", "--"]):
        for w in widths:
            r = look[(arch, dmax, w)]
            a1.plot(r["layer_n_bundles"], ls, label=f"{arch} w={w}")
            a2.plot(r["layer_entropy"], ls)
    a1.set_yscale("log")
    a1.set_xlabel("hidden layer / block l")
    a1.set_ylabel("|B^l|")
    a2.set_xlabel("hidden layer / block l")
    a2.set_ylabel("H(B^l)")
    a1.legend(fontsize=6)
    fig.suptitle(f"per-layer bundles after training, depth {dmax}", fontsize=9)
    savefig_small(fig, fig_dir / f"{prefix}layers.png")


def savefig_small(fig, path):
    from ..plotting import pyplot
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def autotune_mnist(counts=(75,), block_widths=(32,), rule="first_type", n_train=10000, n_test=2000, epochs=10,
                   n_eval=512, max_rounds=8, seed=0, out_dir=None, fig_dir=None, quick=False, progress=True,
                   name="autotune"):
    """Auto-tune a deep plain block network on an MNIST subset (bundles.md §5)."""
    guard_quick(quick, out_dir=out_dir, fig_dir=fig_dir)
    if quick:
        n_train, n_test, epochs, n_eval, max_rounds = 600, 300, 2, 128, 4
    d = load_mnist(n_train=n_train, n_test=n_test)
    t0 = time.perf_counter()
    res = autotune(d.X_train, d.y_train, list(counts), list(block_widths), d.X_test, d.y_test, rule=rule, epochs=epochs,
                   n_eval=n_eval, max_rounds=max_rounds, rng=seed, n_classes=10)
    for r in res.rounds:
        _log(progress, f"round {r['round']}: blocks {r['counts']} → conflict at epoch {r['conflict_epoch']}, "
                       f"H(a^L) {r['entropy_last']}, next {r.get('new_counts')}, test acc "
                       f"{r.get('test_acc', r.get('test_acc_at_stop'))}")
    out = {"config": {"counts": list(counts), "widths": list(block_widths), "rule": rule, "n_train": n_train,
                      "n_test": n_test, "epochs": epochs, "n_eval": n_eval, "max_rounds": max_rounds, "seed": seed,
                      "lr": 1e-3, "batch_size": 64},
           **res.as_dict(), "seconds": time.perf_counter() - t0}
    if out_dir is not None:
        write_json(Path(out_dir) / f"bundles_{name}.json", out)
    if fig_dir is not None:
        plot_autotune(out, Path(fig_dir) / f"bundles_{name}.png")
    return out


def plot_autotune(out, path):
    from ..plotting import pyplot
    plt = pyplot()
    rounds = out["rounds"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    for r in rounds:
        if r.get("block_entropy"):
            a1.plot(r["block_entropy"], marker=".", ms=3, label=f"round {r['round']}: {r['counts']}")
    a1.set_xlabel("block")
    a1.set_ylabel("H(B^l) at the check")
    a1.legend(fontsize=6)
    xs = np.arange(len(rounds))
    acc = [r.get("test_acc", r.get("test_acc_at_stop", np.nan)) for r in rounds]
    a2.bar(xs, acc, color=["C2" if r["conflict_epoch"] is None else "C3" for r in rounds])
    for x, r in zip(xs, rounds):
        a2.text(x, 0.02, f"{sum(r['counts'])}\nblocks", ha="center", fontsize=7, color="w")
    a2.set_xticks(xs, [f"round {r['round']}" for r in rounds], fontsize=7)
    a2.set_ylim(0, 1)
    a2.set_ylabel("test accuracy (red: stopped by a conflict)")
    savefig_small(fig, path)


def lesion_mnist(width=32, n_blocks=30, hidden=4, n_train=10000, n_test=2000, epochs=3, n_eval=512, repeats=10,
                 ks=(1, 2, 4, 8, 12, 16), seed=0, out_dir=None, fig_dir=None, quick=False, progress=True):
    """Train a residual ReLU MLP, then drop conflicting / non-conflicting / random blocks at test time."""
    guard_quick(quick, out_dir=out_dir, fig_dir=fig_dir)
    if quick:
        n_blocks, n_train, n_test, epochs, n_eval, repeats, ks = 6, 600, 300, 1, 128, 2, (1, 2)
    d = load_mnist(n_train=n_train, n_test=n_test)
    t0 = time.perf_counter()
    model = residual_mlp(784, width, n_blocks, 10, "relu", init="torch", rng=seed, hidden=hidden)
    tr = Trainer(model, "ce", Adam(1e-3), batch_size=64, rng=seed, progress=False)
    tr.fit(d.X_train, d.y_train, epochs, d.X_test, d.y_test)
    res = lesion_study(model, d.X_train[:n_eval], d.y_train[:n_eval], d.X_test, d.y_test, ks=list(ks),
                       repeats=repeats, rng=seed)
    res["config"] = {"width": width, "n_blocks": n_blocks, "hidden": hidden, "n_train": n_train, "n_test": n_test,
                     "epochs": epochs, "n_eval": n_eval, "repeats": repeats, "seed": seed, "lr": 1e-3,
                     "batch_size": 64, "init": "torch", "activation": "relu"}
    res["seconds"] = time.perf_counter() - t0
    _log(progress, f"lesion: {len(res['conflicting_blocks'])}/{n_blocks} conflicting blocks, base test acc "
                   f"{res['base_test_acc']:.4f}")
    for g, c in res["curves"].items():
        _log(progress, f"  drop {g:>15}: " + ", ".join(f"k={k}: {m:.3f}±{s:.3f}"
                                                        for k, m, s in zip(c["k"], c["mean"], c["std"])))
    if out_dir is not None:
        write_json(Path(out_dir) / "bundles_lesion.json", res)
    if fig_dir is not None:
        plot_lesion(res, Path(fig_dir) / "bundles_lesion.png")
    return res


def plot_lesion(res, path):
    from ..plotting import pyplot
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    for g, c in res["curves"].items():
        if c["k"]:
            a1.errorbar(c["k"], c["mean"], yerr=c["std"], marker="o", ms=3, capsize=2, label=g)
    a1.axhline(res["base_test_acc"], color="gray", ls=":", lw=0.8, label="no lesion")
    a1.set_xlabel("blocks dropped at test time (k)")
    a1.set_ylabel("test accuracy")
    a1.legend(fontsize=7)
    n = res["n_blocks"]
    colors = ["C3" if i in res["conflicting_blocks"] else "C0" for i in range(n)]
    a2.bar(range(n), res["single_block_test_acc"], color=colors)
    a2.axhline(res["base_test_acc"], color="gray", ls=":", lw=0.8)
    lo = min(res["single_block_test_acc"] + [res["base_test_acc"]])
    a2.set_ylim(max(0, lo - 0.05), min(1, res["base_test_acc"] + 0.02))
    a2.set_xlabel("block dropped alone (red: conflicting branch)")
    a2.set_ylabel("test accuracy")
    savefig_small(fig, path)


# ------------------------------------------------------------------------------------------------------------------
# `python -m minigrow bundles measure`, and the bundles part of `python -m minigrow demo`
# ------------------------------------------------------------------------------------------------------------------

def measure(model_path=None, arch="plain", depth=20, width=25, epochs=1, n_train=10000, n_test=2000, n_eval=512,
            lr=1e-3, batch_size=64, seed=0, exact=False, out_dir=None, progress=True):
    """Bundles of every hidden layer of a network — loaded from ``model_path`` (a minigrow .npz), or built with
    :func:`make_net` and trained ``epochs`` epochs with Adam(lr), batch ``batch_size`` — on the first ``n_eval``
    MNIST training images. Writes ``out_dir/bundles.json``; returns it with the report (``"report"``)."""
    from ..io import load
    d = load_mnist(n_train=n_train, n_test=n_test)
    if model_path is not None:
        model = load(model_path)["model"]
        what = str(model_path)
    else:
        model = make_net(arch, depth, width, seed)
        what = f"{arch} depth {depth} width {width}"
        if epochs:
            Trainer(model, "ce", Adam(lr), batch_size=batch_size, rng=seed,
                    progress=progress).fit(d.X_train, d.y_train, epochs, d.X_test, d.y_test)
    n = min(n_eval, d.X_train.shape[0])
    Xe, ye = d.X_train[:n], d.y_train[:n]
    rep = layer_report(model, Xe, ye, lr=lr, batch_size=batch_size, n_classes=10, grid=not exact)
    acc = float((model.predict(d.X_test) == d.y_test).mean())
    out = {"model": what, "test_acc": acc, "n_eval": n, "layers": [r.as_dict() for r in rep]}
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(out_dir) / "bundles.json", out)
    return {**out, "label_entropy": label_entropy(ye), "report": rep}


def demo(out_dir, seed, quick, progress, plots=True):
    """Part of ``python -m minigrow demo``: bundles of a deep plain vs residual MLP, then auto-tune."""
    n_train, n_test, depth, width, epochs, n_eval = (600, 300, 12, 10, 1, 128) if quick else \
        (20000, 5000, 40, 16, 2, 512)
    d = load_mnist(n_train=n_train, n_test=n_test)
    Xe, ye = d.X_train[:n_eval], d.y_train[:n_eval]
    prof, accs = {}, {}
    for arch in ("plain", "residual"):
        model = make_net(arch, depth, width, seed)
        Trainer(model, "ce", Adam(1e-3), batch_size=64, rng=seed, progress=False).fit(d.X_train, d.y_train, epochs)
        rep = layer_report(model, Xe, ye, n_classes=10, kinds={"hidden", "block"})
        prof[arch] = rep
        accs[arch] = float((model.predict(d.X_test) == d.y_test).mean())
    if plots:
        plot_profiles(prof, accs, Path(out_dir) / "bundles_profile.png")
    res = autotune(d.X_train, d.y_train, [depth], [width], d.X_test, d.y_test, epochs=1 if quick else 5,
                   n_eval=n_eval, max_rounds=4, rng=seed, n_classes=10)
    last = res.rounds[-1]
    final = f"test acc {last['test_acc']:.3f}" if res.converged else "not converged within 4 rounds"
    pl, rs = prof["plain"][-1], prof["residual"][-1]
    summary = (f"depth {depth} width {width}, {epochs} epoch on {n_train} images: plain |B^L|={pl.n_bundles}, "
               f"H={pl.entropy:.3f}, acc {accs['plain']:.3f}; residual |B^L|={rs.n_bundles}, H={rs.entropy:.3f}, "
               f"acc {accs['residual']:.3f}; auto-tune [{depth}] → {res.counts} in {len(res.rounds)} round(s), "
               f"{final}")
    return {"summary": summary, "plots": ["bundles_profile.png"] if plots else [], "autotune": res.as_dict(),
            "plain_last": pl.as_dict(), "residual_last": rs.as_dict()}


def plot_profiles(prof, accs, path):
    """|B^l| and H(B^l) per layer of the demo's plain and residual nets."""
    from ..plotting import pyplot
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    for arch, rep in prof.items():
        a1.plot([r.n_bundles for r in rep], label=f"{arch} (test acc {accs[arch]:.2f})")
        a2.plot([r.entropy for r in rep], label=arch)
    a1.set_yscale("log")
    a1.set_xlabel("layer / block")
    a1.set_ylabel("|B^l|")
    a2.set_xlabel("layer / block")
    a2.set_ylabel("H(B^l)")
    a1.legend(fontsize=7)
    savefig_small(fig, path)
