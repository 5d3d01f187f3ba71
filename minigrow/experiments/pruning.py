"""Reproductions for variational Bernoulli pruning (pruning.md §4): teacher-student toy, MNIST 784-300-100-10,
the robustness grid, and their figures.

Every function returns plain dicts (JSON-able apart from the ``trainer``/``model`` entries) and the plotting
helpers write small PNGs. Command lines: ``python -m minigrow reproduce pruning toy|mnist|grid|tradeoff`` (see docs/pruning.md).
The method is our derivation from the papers' stated principles (see :mod:`minigrow.methods.pruning`).
"""
from __future__ import annotations

import functools
import time

import numpy as np

from ..data import load_mnist
from ..network import mlp
from ..optim import Adam, StepLR
from ..methods.pruning import (PLAIN_SETTINGS, PruningSettings, PruningTrainer, add_gates, flip_cv_gradient, flip_gradient,
                               gate_sites, gated_mlp, gates, pathwise_gradient, sample_gates, score_function_gradient, widths)
from ..sweep import run_sweep
from ..train import Trainer, evaluate

__all__ = ["teacher_student", "mnist_run", "dense_baseline", "robustness_grid", "grid_row", "tradeoff_row", "toy_run",
           "MNIST_SETTINGS", "OLD_SETTINGS", "REFERENCE_POINTS", "plot_theta_trajectories", "plot_widths", "plot_error_vs_params"]

# Reference points on the same net from other structured methods (pruning.md §4): (name, kept widths
# inputs-h1-h2, test error % (range midpoint), kept weights computed for 784-300-100-10 with those widths)
REFERENCE_POINTS = [("L0-sep", (266, 88, 33), 1.7), ("SBP", (245, 160, 55), 1.6), ("VIB", (97, 71, 33), 1.6)]


def ref_params(w):
    """Weights + biases of an MLP with kept inputs-h1-h2 = w and 10 outputs."""
    n_in, h1, h2 = w
    return n_in * h1 + h1 + h1 * h2 + h2 + h2 * 10 + 10


# --------------------------------------------------------------------------------------------------------------
def teacher_student(k=3, width=12, d=6, n_train=2000, n_test=500, noise=0.05, seed=0, epochs=80, price=0.5,
                    eta_theta=2.0, warmup_epochs=5, lr=1e-2, batch_size=100, estimator="flip"):
    """Teacher tanh MLP d-k-1 (He init), noisy targets y = teacher(x) + noise·ε; a gated student d-width-1 trained
    with MSE (the plain rule, :data:`PLAIN_SETTINGS`) should end with k units and θ ∈ {0, 1}. float64, fast
    (about a second)."""
    rng = np.random.default_rng(seed)
    teacher = mlp([d, k, 1], "tanh", init="he", rng=seed + 1, dtype=np.float64)
    X = rng.standard_normal((n_train + n_test, d))
    Y = teacher(X) + noise * rng.standard_normal((n_train + n_test, 1))
    student = gated_mlp([d, width, 1], "tanh", rng=seed + 2, dtype=np.float64)
    tr = PruningTrainer(student, "mse", Adam(lr), batch_size=batch_size, rng=seed + 3, settings=PLAIN_SETTINGS,
                        price=price, eta_theta=eta_theta, estimator=estimator, warmup_epochs=warmup_epochs,
                        eps=1e-3, dtype=np.float64, progress=False)
    t0 = time.perf_counter()
    tr.fit(X[:n_train], Y[:n_train], epochs, X[n_train:], Y[n_train:])
    th = np.concatenate([g.theta for g in gates(student)])
    return {"k": k, "width": width, "seed": seed, "final_width": widths(student)[0],
            "widths": [e["widths"][0] for e in tr.history.epochs],
            "theta_binary_frac": float(np.mean((th == 0) | (th == 1))),
            "test_loss": tr.history.epochs[-1]["test_loss"], "noise_var": noise ** 2,
            "seconds": time.perf_counter() - t0, "trainer": tr}


# --------------------------------------------------------------------------------------------------------------
# MNIST. The settings found by the tuning reported in docs/pruning.md are the library defaults
# (minigrow.methods.pruning.settings): estimator="flip_cv" with flip_samples=10, cv_every=2 — the flip correction on
# 10 samples every other batch, the pathwise estimate on all 100 samples of every batch, about the noise of the flip
# estimator on all 100 samples at a fraction of its cost; finetune_epochs=3: θ rounded to {0, 1} after epoch 17,
# the last 3 epochs train the deterministic net.
MNIST_SETTINGS = PruningSettings()
# The previous defaults (docs/pruning.md, "earlier settings"): what the demo part and the 5 000-image grid use.
OLD_SETTINGS = MNIST_SETTINGS.replace(price=0.2, eta_theta=0.5, flip_samples=32, price_on="incoming", lr_step=None,
                                      polish_epochs=0, precondition=False, estimator="flip", cv_every=1,
                                      finetune_epochs=0)


def mnist_run(hidden=(300, 100), seed=0, scale=1.0, n_train=None, n_test=None, progress=False, data=None,
              input_gate=False, **overrides):
    """Prune a gated 784-h1-h2-10 ReLU MLP on MNIST with :data:`MNIST_SETTINGS` (any field of
    :class:`~minigrow.methods.pruning.PruningSettings` overridable by keyword); returns a record
    with the history, final widths (with ``input_gate=True`` the first entry is the number of kept pixels), test
    error of the final deterministic net, θ binarity, seconds."""
    st = MNIST_SETTINGS.replace(**overrides)
    s = st.as_dict()
    d = data if data is not None else load_mnist(n_train=n_train, n_test=n_test)
    model = gated_mlp([784, *hidden, 10], "relu", rng=seed, scale=scale, input_gate=input_gate)
    opt = Adam(st.lr)
    sched = StepLR(opt, st.lr_step, st.lr_decay) if st.lr_step else None
    tr = PruningTrainer(model, "ce", opt, batch_size=st.batch_size, rng=seed, settings=st, scheduler=sched,
                        progress=progress)
    t0 = time.perf_counter()
    tr.fit_schedule(d.X_train, d.y_train, st.epochs, st.polish_epochs, d.X_test, d.y_test,
                    finetune_epochs=st.finetune_epochs)
    binz = [e for e in tr.history.events if e.get("event") == "binarize"]
    seconds = time.perf_counter() - t0
    th = np.concatenate([g.theta for g in gates(model)])
    final, input_ids = tr.finalize()
    _, acc = evaluate(final, "ce", d.X_test if input_ids is None else d.X_test[:, input_ids], d.y_test)
    hist = [{k: v for k, v in e.items()} for e in tr.history.epochs]
    return {"hidden": list(hidden), "seed": seed, "scale": scale, "settings": s,
            "n_train": int(d.X_train.shape[0]), "widths": widths(model), "test_err": 1 - acc,
            "theta_binary_frac": float(np.mean((th == 0) | (th == 1))),
            "theta_near_binary_frac": float(np.mean(np.minimum(th, 1 - th) <= 0.05)), "n_params": final.n_params(),
            # no "binarize" event although the fine-tune phase ran: the rounding changed nothing (all θ were binary)
            "theta_binary_before_rounding": (binz[0]["theta_binary_before"] if binz else
                                             1.0 if st.finetune_epochs > 0 else None),
            "macs": final.macs(), "seconds": seconds, "history": hist, "input_gate": bool(input_gate),
            "input_ids": None if input_ids is None else input_ids.tolist(),
            "theta_trace": [(int(s_), int(p), ids.tolist(), t.tolist()) for s_, p, ids, t in tr.theta_trace],
            "model": final, "trainer": tr}


def dense_baseline(hidden=(300, 100), seed=0, epochs=20, lr=1e-3, batch_size=100, n_train=None, n_test=None,
                   data=None, progress=False, lr_step=None, lr_decay=0.3):
    """The same net without gates or prior, same optimiser, learning-rate schedule and epochs (the comparison for
    error and wall time)."""
    d = data if data is not None else load_mnist(n_train=n_train, n_test=n_test)
    model = mlp([784, *hidden, 10], "relu", rng=seed)
    opt = Adam(lr)
    tr = Trainer(model, "ce", opt, batch_size=batch_size, rng=seed, progress=progress,
                 scheduler=StepLR(opt, lr_step, lr_decay) if lr_step else None)
    t0 = time.perf_counter()
    tr.fit(d.X_train, d.y_train, epochs, d.X_test, d.y_test)
    return {"hidden": list(hidden), "seed": seed, "test_err": 1 - tr.history.epochs[-1]["test_acc"],
            "n_params": model.n_params(), "seconds": time.perf_counter() - t0,
            "history": tr.history.epochs, "model": model}


def fisher_prices(model, X, y, price=0.04, n_train=None, n_fisher=5000, seed=0):
    r"""Per-layer prices by eq. R measured **once on a trained dense net** ``model`` (ours; docs/pruning.md
    "Robustness"): for every weight layer q the mean empirical Fisher F_q on ``n_fisher`` of the training images
    ``(X, y)`` (:func:`minigrow.fisher.mean_fisher`, in chunks of 500), λ_q = P_q / Σ w² (eq. λ* with a = 1, b → 0
    on the dense net: the precision that describes the layer's weights), r_q = ½ ln(1 + N F_q/λ_q)
    (:func:`~minigrow.methods.pruning.formulas.fisher_rate`, N = ``n_train`` or len(X)) and γ_q = γ r_q / r̄ with the
    dense net's parameter counts (:func:`~minigrow.methods.pruning.formulas.balanced_prices`: the dense net is
    charged γ × its parameters in all, as with the one price γ). Returns ``{"price": (γ_1, …), "fisher", "lam",
    "rate"}``."""
    from ..fisher import affine_layers, mean_fisher
    from ..methods.pruning import formulas as F
    N = int(n_train or len(X))
    idx = np.sort(np.random.default_rng(seed).choice(len(X), min(n_fisher, len(X)), replace=False))
    chunks = [idx[i:i + 500] for i in range(0, idx.size, 500)]
    fq = sum(np.array(mean_fisher(model, "ce", X[c], y[c])) * c.size for c in chunks) / idx.size
    layers = affine_layers(model)
    sizes = np.array([sum(a.size for a in layer.params.values()) for layer in layers], dtype=np.float64)
    lam = sizes / np.array([sum(float(np.sum(a.astype(np.float64) ** 2)) for a in layer.params.values())
                            for layer in layers])
    rate = F.fisher_rate(fq, lam, N)
    return {"price": tuple(float(g) for g in F.balanced_prices(price, rate, sizes)), "fisher": fq.tolist(),
            "lam": lam.tolist(), "rate": rate.tolist(), "n_train": N}


def dense_fisher_prices(hidden=(300, 100), price=0.04, epochs=3, seed=0, n_fisher=5000, n_train=None, data=None,
                        progress=False):
    """:func:`fisher_prices` of the plain 784-h1-h2-10 ReLU net trained ``epochs`` epochs on MNIST (Adam 1e-3,
    batch 100, seed ``seed``); the record also has ``epochs`` and the dense net's ``test_err``."""
    d = data if data is not None else load_mnist(n_train=n_train)
    model = mlp([784, *hidden, 10], "relu", rng=seed)
    Trainer(model, "ce", Adam(1e-3), batch_size=100, rng=seed, progress=progress).fit(d.X_train, d.y_train, epochs)
    out = fisher_prices(model, d.X_train, d.y_train, price, n_fisher=n_fisher, seed=seed)
    _, acc = evaluate(model, "ce", d.X_test, d.y_test)
    return dict(out, epochs=epochs, test_err=1 - acc)


@functools.lru_cache(maxsize=2)
def _mnist(n_train=None, n_test=None, data_dir=None):
    """The MNIST subset, loaded once per process (a sweep worker runs many runs on it; never mutated)."""
    return load_mnist(n_train=n_train, n_test=n_test, data_dir=data_dir)


_ROW_KEYS = ("hidden", "seed", "scale", "widths", "test_err", "theta_binary_frac", "theta_near_binary_frac",
             "theta_binary_before_rounding", "n_params", "seconds")


def grid_row(hidden, seed, scale, n_train=None, n_test=None, data_dir=None, **overrides):
    """One run of :func:`robustness_grid` as a compact record (a module-level function of keyword arguments for
    :func:`minigrow.sweep.run_sweep`; the data are loaded in the process that runs it)."""
    r = mnist_run(tuple(hidden), seed=seed, scale=scale, data=_mnist(n_train, n_test, data_dir), **overrides)
    row = {k: r[k] for k in _ROW_KEYS}
    row["test_err_per_epoch"] = [e.get("test_err") for e in r["history"]]
    row["widths_per_epoch"] = [e["widths"] for e in r["history"]]
    return row


def tradeoff_row(hidden, seed, price, n_train=None, n_test=None, data_dir=None, **overrides):
    """One run of the error-vs-widths trade-off (``reproduce pruning tradeoff``): :func:`mnist_run` at the price ``price``."""
    r = mnist_run(tuple(hidden), seed=seed, data=_mnist(n_train, n_test, data_dir), **{**overrides, "price": price})
    row = {k: r[k] for k in ("widths", "test_err", "theta_binary_frac", "theta_binary_before_rounding", "n_params",
                             "seconds")}
    row["price"] = price
    return row


def toy_run(k=3, width=12, seed=0, epochs=80):
    """One teacher-student run without its trainer (JSON-able; a sweep task)."""
    r = teacher_student(k=k, width=width, seed=seed, epochs=epochs)
    r.pop("trainer")
    return r


def robustness_grid(seeds=(0, 1, 2), scales=(0.5, 1.0, 2.0), hiddens=((300, 100), (600, 200), (1000, 300)),
                    progress=False, data=None, log=None, n_train=None, n_test=None, data_dir=None, jobs=1,
                    scheduler=None, **overrides):
    """Run :func:`mnist_run` over seeds × init scales × starting widths; returns a list of compact records.

    ``data`` (arrays in memory) runs serially in this process; without it the runs load MNIST (``n_train``,
    ``n_test``, ``data_dir``) themselves and go through :func:`minigrow.sweep.run_sweep` — ``jobs`` worker processes
    or the Dask cluster at ``scheduler``, bit-identical to ``jobs=1``. ``log(row)`` is called for every row, in
    order."""
    tasks = [dict(hidden=tuple(h), seed=sd, scale=sc, **overrides) for h in hiddens for sc in scales for sd in seeds]
    if data is not None:
        if jobs != 1 or scheduler is not None:
            raise ValueError("data: a parallel grid loads the data in each worker; pass n_train/n_test/data_dir "
                             "instead of data")
        rows = []
        for t in tasks:
            r = mnist_run(t.pop("hidden"), data=data, progress=progress, **t)
            row = {k: r[k] for k in _ROW_KEYS}
            row["test_err_per_epoch"] = [e.get("test_err") for e in r["history"]]
            row["widths_per_epoch"] = [e["widths"] for e in r["history"]]
            rows.append(row)
            if log is not None:
                log(row)
        return rows
    rows = run_sweep(grid_row, [dict(t, n_train=n_train, n_test=n_test, data_dir=data_dir) for t in tasks],
                     jobs=jobs, scheduler=scheduler)
    for row in rows if log is not None else ():
        log(row)
    return rows


# --------------------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------------------

def estimator_draws(net, X, y, loss, draws, rng, n_samples=2):
    """``draws`` estimates of ∂E/∂θ for every gate of ``net`` by each estimator: on every draw the batch is shuffled
    (the subsampled estimators need that to be unbiased), gates are sampled, one forward/backward pass is run and each
    estimator is asked. Returns ``{name: array (draws, total gates)}`` — the data of the bias/spread tables of
    tutorial 03 and bench/pruning_conv_spread.py."""
    S = n_samples
    est = {"flip": [], "pathwise": [], "score": [], f"flip S={S}": [], f"flip_cv S={S}": []}
    idx = range(len(gates(net)))            # gates are numbered 0, 1, … in the order they run
    for _ in range(draws):
        perm = rng.permutation(X.shape[0])
        Xp, yp = X[perm], y[perm]
        sample_gates(net, Xp.shape[0], rng)
        out = net.forward(Xp, True)
        ell = loss.per_sample(out, yp)
        loss.forward(out, yp)
        net.backward(loss.backward())
        est["flip"].append(np.concatenate([flip_gradient(net, i, yp, loss) for i in idx]))
        est["pathwise"].append(np.concatenate([pathwise_gradient(net, i) for i in idx]))
        est["score"].append(np.concatenate([score_function_gradient(net, i, ell) for i in idx]))
        est[f"flip S={S}"].append(np.concatenate([flip_gradient(net, i, yp, loss, n_samples=S) for i in idx]))
        est[f"flip_cv S={S}"].append(np.concatenate([flip_cv_gradient(net, i, yp, loss, S) for i in idx]))
    return {k: np.array(v) for k, v in est.items()}


def bias_and_spread(est, exact):
    """``{name: (max |bias|, max |bias| / standard error, mean std)}`` of :func:`estimator_draws` against the exact
    gradient; the bias/SE ratio skips gates whose estimates never vary (a dead ReLU unit: all of them and the exact
    value are 0)."""
    out = {}
    for name, a in est.items():
        bias = a.mean(0) - exact
        se = a.std(0) / np.sqrt(a.shape[0])
        live = se > 0
        ratio = float(np.abs(bias[live] / se[live]).max()) if live.any() else 0.0
        out[name] = (float(np.abs(bias).max()), ratio, float(a.std(0).mean()))
    return out


def plot_theta_trajectories(theta_trace, path, steps_per_epoch=None, title=None, max_units=60, seed=0):
    """θ_j over training for a random subset of the units of each gated layer (lines end when a unit is pruned)."""
    from ..plotting import pyplot, savefig
    plt = pyplot()
    layers = sorted({p for _, p, _, _ in theta_trace})
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.2), squeeze=False)
    rng = np.random.default_rng(seed)
    for ax, p in zip(axes[0], layers):
        recs = [(s, dict(zip(ids, th))) for s, q, ids, th in theta_trace if q == p]
        all_ids = sorted(recs[0][1])
        pick = rng.choice(all_ids, size=min(max_units, len(all_ids)), replace=False)
        for u in pick:
            xs = [s for s, d in recs if u in d]
            ys = [d[u] for s, d in recs if u in d]
            if steps_per_epoch:
                xs = [x / steps_per_epoch for x in xs]
            ax.plot(xs, ys, lw=0.7, alpha=0.7)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("epoch" if steps_per_epoch else "step")
        ax.set_ylabel(r"$\theta_j$")
        ax.set_title(f"gated layer {p + 1}: {len(pick)} of {len(all_ids)} units")
    if title:
        fig.suptitle(title)
    return savefig(fig, path)


def plot_widths(runs, path, title=None):
    """Hidden widths over epochs; ``runs`` = list of (label, widths_per_epoch)."""
    from ..plotting import pyplot, savefig
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for n, (label, wpe) in enumerate(runs):
        w = np.array(wpe)
        for layer in range(w.shape[1]):
            ax.plot(np.arange(1, len(w) + 1), w[:, layer], ["-", "--", ":"][layer % 3], color=f"C{n % 10}",
                    lw=1, label=label if layer == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("width (gated layers 1, 2, 3: solid, dashed, dotted)")
    if len(runs) <= 10:
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    return savefig(fig, path)


def plot_error_vs_params(points, dense, path, title=None):
    """Test error (%) against kept parameters: our pruned nets, the dense net(s), the reference points."""
    from ..plotting import pyplot, savefig
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, p, e in points:
        ax.scatter(p, 100 * e, marker="o", s=22, label=label)
    for label, p, e in dense:
        ax.scatter(p, 100 * e, marker="s", s=40, color="k", label=label)
    for name, w, e in REFERENCE_POINTS:
        ax.scatter(ref_params(w), e, marker="^", s=40, label=f"{name} {'-'.join(map(str, w))} (ref.)")
    ax.set_xscale("log")
    ax.set_xlabel("kept parameters")
    ax.set_ylabel("test error (%)")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    return savefig(fig, path)


# --------------------------------------------------------------------------------------------------------------
# LeNet-5-Caffe (pruning.md §6): gates on the filters of both convolutions and the units of the first dense layer
# --------------------------------------------------------------------------------------------------------------
# Structured-pruning results on LeNet-5-Caffe from the literature (pruning.md §6): kept conv1-conv2-fc1-fc2
# widths (fc1 = kept flattened features of the 800, fc2 = kept units of the 500), test error %, forward FLOPs.
LENET5_REFERENCE = [("BC-GHS", (5, 10, 76, 16), 1.0, 158_000), ("BC-GNJ", (8, 13, 88, 13), 1.0, 290_000),
                    ("L0-sep", (9, 18, 65, 25), 1.0, 403_000), ("SBP", (3, 18, 284, 283), 0.9, 217_000),
                    ("L0", (20, 25, 45, 462), 0.9, 1_300_000), ("gen. dropout", (7, 13, 208, 16), 1.1, 254_000)]

# Our LeNet-5 settings: the MNIST defaults with θ binary by the dynamics (the lazy θ step with margin ½ and
# Robbins–Monro steps, κ = 0.6, τ = 2 epochs) instead of the final rounding, and no fine-tune phase.
LENET5_SETTINGS = MNIST_SETTINGS.replace(epochs=8, warmup_epochs=1, lr_step=4, finetune_epochs=0, theta_margin=0.5,
                                         eta_power=0.6, eta_tau=2.0)


def mnist_images(n_train=None, n_test=None, data=None, dtype=np.float32):
    """MNIST as (N, 1, 28, 28) images (:func:`minigrow.data.load_mnist`, reshaped)."""
    d = data if data is not None else load_mnist(n_train=n_train, n_test=n_test, dtype=dtype)
    return (d.X_train.reshape(-1, 1, 28, 28), d.y_train, d.X_test.reshape(-1, 1, 28, 28), d.y_test)


def lenet5_widths(model):
    """Kept conv1-conv2-fc1-fc2 widths as in the literature: filters of conv1 and conv2, flattened features read
    by the first dense layer (16 per kept conv2 filter with channel gates; the kept features with a feature gate,
    conv2 then counting the channels still present) and its units."""
    w = widths(model)
    feat = gate_sites(model)[1]
    if feat.feeder is not None:                               # a feature gate behind the flatten
        return [w[0], feat.feeder.out_units, w[1], w[2]]
    return [w[0], w[1], 16 * w[1], w[2]]


def _record_lenet5_widths(trainer):
    """Epoch-end callback (after the pruning of the epoch): the conv1-conv2-fc1-fc2 widths into the record."""
    trainer.history.epochs[-1]["lenet5_widths"] = lenet5_widths(trainer.model)


def lenet5_run(start=(20, 50, 500), seed=0, scale=1.0, n_train=None, n_test=None, data=None, progress=False,
               dense=False, feature_gates=False, **overrides):
    """Train a gated LeNet-5-Caffe (:func:`minigrow.convnets.lenet5` + :func:`~minigrow.methods.pruning.add_gates`,
    gates behind both pools and after the first dense layer) with :data:`LENET5_SETTINGS` (any field overridable),
    or with ``dense=True`` the same net without gates or prior, same optimiser, schedule and epochs (the wall-time
    and error reference). ``feature_gates=True``: a feature gate on the 800 flattened features replaces conv2's
    channel gate (``add_gates(…, feature_gate=True)``). Returns a record with per-epoch widths, θ binarity, test
    error, seconds."""
    from ..convnets import lenet5
    st = LENET5_SETTINGS.replace(**overrides)
    Xtr, ytr, Xte, yte = mnist_images(n_train, n_test, data)
    model = lenet5("caffe", rng=seed, widths=None if tuple(start) == (20, 50, 500) else tuple(start))
    if scale != 1.0:
        for _, layer in model.named_layers():
            for v in layer.params.values():
                v *= scale
    opt = Adam(st.lr)
    sched = StepLR(opt, st.lr_step, st.lr_decay) if st.lr_step else None
    if dense:
        tr = Trainer(model, "ce", opt, batch_size=st.batch_size, rng=seed, progress=progress, scheduler=sched)
    else:
        cbs = [_record_lenet5_widths] if feature_gates else []
        tr = PruningTrainer(add_gates(model, feature_gate=feature_gates), "ce", opt, batch_size=st.batch_size,
                            rng=seed, settings=st, scheduler=sched, progress=progress, callbacks=cbs)
    t0 = time.perf_counter()
    if dense:
        tr.fit(Xtr, ytr, st.epochs, Xte, yte)
    else:
        tr.fit_schedule(Xtr, ytr, st.epochs, st.polish_epochs, Xte, yte, finetune_epochs=st.finetune_epochs)
    seconds = time.perf_counter() - t0
    hist = [{k: v for k, v in e.items()} for e in tr.history.epochs]
    rec = {"start": list(start), "seed": seed, "scale": scale, "settings": st.as_dict(), "n_train": int(len(ytr)),
           "seconds": seconds, "epoch_seconds": [e.get("seconds") for e in hist], "history": hist, "trainer": tr}
    if dense:
        final = model
        rec["widths"] = list(start)
    else:
        th = np.concatenate([g.theta for g in gates(model)])
        rec["widths"] = lenet5_widths(model)
        rec["theta_binary_frac"] = float(np.mean((th == 0) | (th == 1)))
        rec["theta_near_binary_frac"] = float(np.mean(np.minimum(th, 1 - th) <= 0.05))
        rec["theta_binary_per_epoch"] = [e["theta_binary_frac"] for e in hist]
        rec["widths_per_epoch"] = ([e["lenet5_widths"] for e in hist] if feature_gates else
                                   [[w[0], w[1], 16 * w[1], w[2]] for w in (e["widths"] for e in hist)])
        rec["feature_gates"] = bool(feature_gates)
        final, _ = tr.finalize()
    _, acc = evaluate(final, "ce", Xte, yte)
    final(Xte[:1])                                            # records the spatial sizes for macs()
    rec.update(test_err=1 - acc, n_params=final.n_params(), macs=final.macs(), model=final)
    return rec
