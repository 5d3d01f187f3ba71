r"""The three methods side by side on one benchmark, and combined in one run (issue 18; docs/compare.md).

Same data (MNIST / Fashion-MNIST subsets, flattened), seeds, optimiser (Adam, constant η), batch size and
epoch budget ``E`` for six runs per (data set, seed):

=============  ================================================================================================
``small``      the fixed small MLP 784-h_s-10 trained E epochs
``big``        the fixed big MLP 784-300-100-10 trained E epochs
``sensli``     SensLI growth from the small net (:func:`~minigrow.methods.sensli.sensli_train`, phases
               ``sensli_epochs``, identity candidates, abs_max, fresh Adam per phase as in the paper)
``autotune``   auto-tune from a deep plain block net (:func:`~minigrow.methods.bundles.autotune`, rule
               first_type): E epochs per round, but every removal **restarts** training, so it may train more
``pruning``    Bernoulli pruning from the big net (:class:`~minigrow.methods.pruning.PruningTrainer`,
               ``fit_schedule``: warm-up, θ steps, binarise, fine-tune) → the deterministic net
``combined``   the four edits in ONE run (below)
=============  ================================================================================================

The combined run (:func:`run_combined`)
---------------------------------------
ONE :class:`~minigrow.methods.pruning.PruningTrainer` (so one Adam object, one RNG, one history) trains the gated
small net 784-h_s-10 for E epochs; :class:`CombinedSchedule`, an epoch-end callback, edits the network at fixed
epochs (the ends of epochs, 1-based; E = 12 in the full configuration)::

    epochs 1 … i_1          train the small net, θ ≡ 1 frozen (gates are the identity: Bernoulli(1))
    end of i_k ∈ insert_at  SensLI: closed-form sensitivities of the identity candidates, insert the abs-max one
                            (Dense w→w with V = I + ReLU, function preserving), gate its units (θ = 1)
    end of remove_at        bundles: layer_report of every hidden layer on n_eval training samples; every
                            width-preserving hidden layer (Dense w→w, i.e. an inserted one) that has a
                            conflicting bundle is removed (Dense, ReLU, Gate) — NOT function preserving
    remove_at+1 … binarize_at  θ steps active (warmup_epochs = remove_at), units with θ ≤ ε removed at epoch ends
    end of binarize_at      θ rounded to {0,1}, zeros removed, θ frozen (PruningTrainer.binarize)
    binarize_at+1 … E       fine-tune the (now deterministic) net
    after E                 to_deterministic: the gates disappear

Every edit goes through :mod:`minigrow.surgery` (insert_layers, remove_layer, remove_units) or the methods' own
insertion/removal, so the Adam moments of every untouched parameter survive every edit (new layers start with
t = 0; no reset anywhere — unlike standalone SensLI, which restarts Adam per phase as the paper does). After each
insertion or removal the per-layer hyper-prior of the pruning prior is recomputed for the new list of weight layers
(it is fixed from the start of the pruning phase on). The callback holds no state of its own (what it does depends
on ``trainer.epoch`` alone; its records go to the trainer's history), so a checkpoint written after any epoch
resumes bit-identically (tests/test_compare.py interrupts after every edit).

Cost accounting: training multiply-adds = Σ over trained epochs of 3·F·N (F = the model's ``macs()`` per sample
during that epoch, N training samples; 3F = forward + weight gradients + input gradients, as
:func:`~minigrow.methods.sensli.train_macs_per_sample`). NOT included: SensLI's sensitivity passes, the bundle
measurements, the pruning estimators' extra forward passes — the wall time includes them.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass

import numpy as np

from ..data import load_fashion_mnist, load_mnist
from ..layers import Dense
from ..losses import get_loss
from ..network import mlp
from ..optim import Adam
from ..surgery import remove_layer
from ..sweep import run_sweep
from ..train import Trainer, evaluate
from ..methods.bundles import autotune, block_net, layer_report
from ..methods.pruning import PruningSettings, PruningTrainer, add_gates, gated_mlp, gates, to_deterministic
from ..methods.pruning.prior import hyper_prior, layer_precisions
from ..methods.sensli import closed_form_sensitivities, insert_candidate, select, sensli_train

__all__ = ["CompareConfig", "FULL", "QUICK", "METHODS", "DATASETS", "load_data", "architecture", "run_fixed_small",
           "run_fixed_big", "run_sensli", "run_autotune", "run_pruning", "run_combined", "CombinedSchedule",
           "combined_trainer", "run_one", "run_compare", "summarize", "format_table", "plot_pareto",
           "plot_traces"]

DATASETS = ("mnist", "fashion")


@dataclass(frozen=True)
class CompareConfig:
    """Sizes and schedules of a comparison (``FULL``: the documented run; ``QUICK``: seconds, for tests)."""
    n_train: int = 10000
    n_test: int = 5000
    epochs: int = 12                      # E: the common budget
    batch_size: int = 100
    lr: float = 1e-3                      # Adam, constant
    small: tuple = (64,)
    big: tuple = (300, 100)
    deep_blocks: int = 30                 # auto-tune's start: 30 plain ReLU blocks …
    deep_width: int = 32                  # … of width 32
    autotune_check_epochs: int = 3
    autotune_max_rounds: int = 4
    n_eval: int = 512                     # bundles on the first n_eval training samples
    bundle_lr: float = 1e-3               # η of the bundle grid (B1); = the training η
    sensli_epochs: tuple = (3, 3, 6)      # standalone SensLI: two insertions
    price: float = 0.04                   # pruning γ
    eta_theta: float = 0.01               # η_θ (the MNIST default 0.0017 × 600/100 steps per epoch: N = 10000)
    prune_warmup: int = 2
    finetune_epochs: int = 2
    insert_at: tuple = (3, 6)             # combined: SensLI insertions at these epoch ends
    remove_at: int = 7                    # combined: bundles removal at this epoch end; θ active afterwards
    binarize_at: int = 10                 # combined: binarise here, fine-tune until E

    def as_dict(self):
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    def check(self):
        E = self.epochs
        if sum(self.sensli_epochs) != E:
            raise ValueError(f"sensli_epochs: must sum to the budget epochs={E}, got {self.sensli_epochs}")
        if not (all(0 < i for i in self.insert_at) and list(self.insert_at) == sorted(self.insert_at) and
                max(self.insert_at, default=0) <= self.remove_at < self.binarize_at <= E):
            raise ValueError(f"insert_at, remove_at, binarize_at: need 0 < insert_at ≤ remove_at < binarize_at ≤ "
                             f"epochs ({E}), got {self.insert_at}, {self.remove_at}, {self.binarize_at}")
        if self.prune_warmup + self.finetune_epochs >= E:
            raise ValueError("prune_warmup, finetune_epochs: leave at least one θ epoch in the budget")
        return self


FULL = CompareConfig()
QUICK = CompareConfig(n_train=300, n_test=200, epochs=6, batch_size=50, small=(16,), big=(48, 24), deep_blocks=5,
                      deep_width=24, autotune_check_epochs=2, autotune_max_rounds=3, n_eval=128,
                      sensli_epochs=(1, 1, 4), eta_theta=0.05, price=0.01, prune_warmup=1, finetune_epochs=1,
                      insert_at=(1, 2), remove_at=3, binarize_at=5)


def _cfg(config):
    if isinstance(config, CompareConfig):
        return config.check()
    if isinstance(config, dict):
        return CompareConfig.from_dict(config).check()
    raise TypeError(f"config: expected a CompareConfig or its dict, got {type(config).__name__}")


def load_data(dataset, config):
    """``(X_train, y_train, X_test, y_test)``: the first n_train / n_test images, flattened float32."""
    cfg = _cfg(config)
    if dataset == "mnist":
        d = load_mnist(n_train=cfg.n_train, n_test=cfg.n_test, flatten=True)
    elif dataset == "fashion":
        d = load_fashion_mnist(n_train=cfg.n_train, n_test=cfg.n_test, flatten=True)
    else:
        raise ValueError(f"dataset: expected one of {list(DATASETS)}, got {dataset!r}")
    return d.X_train, d.y_train, d.X_test, d.y_test


def architecture(model):
    """Hidden widths of a chain: the output widths of its unit-producing layers (Dense, DenseBlock) but the last."""
    return [int(layer.out_units) for layer in model.layers if layer.unit_kind == "affine"][:-1]


def _rngs(seed):
    return np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])


def _train_macs(history, n):
    return int(sum(3 * rec["macs"] * n for rec in history.epochs))


def _finish(method, dataset, seed, model, Xte, yte, n, t0, train_macs, steps, epochs, trace, **extra):
    err = 1.0 - evaluate(model, "ce", Xte, yte)[1]
    return {"method": method, "dataset": dataset, "seed": int(seed), "test_err": float(err),
            "params": int(model.n_params()), "macs": int(model.macs()), "train_macs": int(train_macs),
            "steps": int(steps), "epochs_trained": int(epochs), "seconds": time.perf_counter() - t0,
            "arch": architecture(model), "trace": trace, **extra}


def _fixed(method, hidden, dataset, seed, config):
    cfg = _cfg(config)
    X, y, Xte, yte = load_data(dataset, cfg)
    t0 = time.perf_counter()
    r_init, r_train = _rngs(seed)
    model = mlp([X.shape[1], *hidden, 10], "relu", rng=r_init)
    tr = Trainer(model, "ce", Adam(cfg.lr), batch_size=cfg.batch_size, rng=r_train, progress=False)
    tr.fit(X, y, cfg.epochs)
    trace = [architecture(model)] * cfg.epochs
    return _finish(method, dataset, seed, model, Xte, yte, len(X), t0, _train_macs(tr.history, len(X)), tr.step,
                   tr.epoch, trace)


def run_fixed_small(dataset, seed, config):
    """The fixed small MLP (784-h_s-10), E epochs of Adam."""
    return _fixed("small", _cfg(config).small, dataset, seed, config)


def run_fixed_big(dataset, seed, config):
    """The fixed big MLP (784-300-100-10), E epochs of Adam."""
    return _fixed("big", _cfg(config).big, dataset, seed, config)


def run_sensli(dataset, seed, config):
    """SensLI growth from the small net: phases ``sensli_epochs`` (Σ = E), identity candidates, abs_max, Adam
    restarted at every phase (the paper's rule)."""
    cfg = _cfg(config)
    X, y, Xte, yte = load_data(dataset, cfg)
    t0 = time.perf_counter()
    r_init, r_train = _rngs(seed)
    model = mlp([X.shape[1], *cfg.small, 10], "relu", rng=r_init)
    archs = []
    run = sensli_train(model, X, y, list(cfg.sensli_epochs), optimizer=Adam(cfg.lr), batch_size=cfg.batch_size,
                       form="identity", mode="abs_max", rng=r_train,
                       callback=lambda run, k: archs.append(architecture(run.trainer.model)))
    during = [a for a, e in zip(archs, cfg.sensli_epochs) for _ in range(e)]     # the net each epoch trained
    trace = during[1:] + [architecture(model)]          # as for the other runs: after each epoch's edits
    tr = run.trainer
    return _finish("sensli", dataset, seed, model, Xte, yte, len(X), t0, _train_macs(tr.history, len(X)), tr.step,
                   tr.epoch, trace, insertions=[i["chosen"] for i in run.insertions])


def run_autotune(dataset, seed, config):
    """Auto-tune (rule first_type) from the deep block net [deep_blocks × deep_width]; each round E epochs at
    most, a detected conflict (checked after each of the first ``autotune_check_epochs`` epochs) removes blocks and
    restarts from fresh weights; all rounds' epochs count as training cost."""
    cfg = _cfg(config)
    X, y, Xte, yte = load_data(dataset, cfg)
    t0 = time.perf_counter()
    res = autotune(X, y, [cfg.deep_blocks], [cfg.deep_width], rng=int(seed), rule="first_type", epochs=cfg.epochs,
                   check_epochs=cfg.autotune_check_epochs, max_rounds=cfg.autotune_max_rounds, n_eval=cfg.n_eval,
                   lr=cfg.lr, batch_size=cfg.batch_size, n_classes=10)
    macs, steps, trace = 0, 0, []
    spe = -(-len(X) // cfg.batch_size)
    for rnd in res.rounds:
        m = block_net(rnd["counts"], [cfg.deep_width], X.shape[1], 10).macs()
        macs += 3 * m * len(X) * rnd["epochs_trained"]
        steps += spe * rnd["epochs_trained"]
        trace += [[cfg.deep_width] * rnd["n_blocks"]] * rnd["epochs_trained"]
    return _finish("autotune", dataset, seed, res.model, Xte, yte, len(X), t0, macs, steps, len(trace), trace,
                   rounds=[r["counts"] for r in res.rounds], converged=bool(res.converged))


def _pruning_settings(cfg, **changes):
    return PruningSettings(price=cfg.price, eta_theta=cfg.eta_theta, epochs=cfg.epochs, lr=cfg.lr,
                           batch_size=cfg.batch_size, lr_step=None, **changes)


def _width_trace(history, default):
    out, last = [], default
    for rec in history.epochs:
        last = rec.get("arch", rec.get("widths", last))
        out.append(list(last))
    return out


def run_pruning(dataset, seed, config):
    """Bernoulli pruning from the gated big net (PruningTrainer.fit_schedule: warm-up ``prune_warmup`` epochs,
    θ steps, binarise, ``finetune_epochs``), then the deterministic net."""
    cfg = _cfg(config)
    X, y, Xte, yte = load_data(dataset, cfg)
    t0 = time.perf_counter()
    r_init, r_train = _rngs(seed)
    model = gated_mlp([X.shape[1], *cfg.big, 10], "relu", rng=r_init)
    s = _pruning_settings(cfg, warmup_epochs=cfg.prune_warmup, finetune_epochs=cfg.finetune_epochs)
    tr = PruningTrainer(model, "ce", Adam(cfg.lr), cfg.batch_size, r_train, s, progress=False)
    tr.fit_schedule(X, y)
    final, _ = to_deterministic(tr.model)
    return _finish("pruning", dataset, seed, final, Xte, yte, len(X), t0, _train_macs(tr.history, len(X)), tr.step,
                   tr.epoch, _width_trace(tr.history, list(cfg.big)))


# ----------------------------------------------------------------------------------------------------------------
# The combined run
# ----------------------------------------------------------------------------------------------------------------

class CombinedSchedule:
    """Epoch-end callback of the combined run (module docstring): insert at ``insert_at``, remove conflicting
    layers at ``remove_at``, binarise at ``binarize_at``. Stateless: the action depends on ``trainer.epoch``; the
    records go to ``trainer.history`` (events, and ``arch``/``depth`` in every epoch record)."""

    def __init__(self, X, y, config):
        self.cfg = _cfg(config)
        self.X, self.y = X, y
        self.loss = get_loss("ce")

    def __call__(self, trainer):
        e, cfg, model = trainer.epoch, self.cfg, trainer.model
        if e in cfg.insert_at:
            self._insert(trainer)
        if e == cfg.remove_at:
            self._remove(trainer)
        if e == cfg.binarize_at:
            trainer.binarize()
        rec = trainer.history.epochs[-1]
        rec["arch"] = architecture(model)          # after this epoch's edits
        rec["depth"] = len(rec["arch"])
        return False

    def _refresh_prior(self, trainer):
        """The per-weight-layer hyper-prior for the edited list of weight layers (as PruningTrainer.__init__)."""
        trainer.hyper = hyper_prior(trainer.model, trainer.sigma0, trainer.strength, trainer.a, trainer.b)
        trainer.lams = layer_precisions(trainer.model, trainer.hyper)

    def _insert(self, trainer):
        model = trainer.model
        sens = closed_form_sensitivities(model, self.X, self.y, self.loss, self.cfg.batch_size, "identity")
        chosen = select(sens.scores, "abs_max")
        cand = sens.candidates[chosen]
        insert_candidate(model, cand)                  # Dense(w→w, V = I) + ReLU after layer cand.after
        add_gates(model)                               # a θ = 1 gate on the new layer's units
        self._refresh_prior(trainer)
        trainer.history.events.append({"event": "insert", "epoch": trainer.epoch, "chosen": int(chosen),
                                       "scores": [float(s) for s in sens.scores], "arch": architecture(model)})

    def _remove(self, trainer):
        model, cfg = trainer.model, self.cfg
        n = min(cfg.n_eval, len(self.X))
        rep = layer_report(model, self.X[:n], self.y[:n], lr=cfg.bundle_lr, batch_size=cfg.batch_size,
                           n_classes=10, kinds={"hidden"})
        drop = []
        for r in rep:
            start = max(i for i in range(r.index) if model.layers[i].unit_kind == "affine")   # its Dense
            dense = model.layers[start]
            first = start == min(i for i, lay in enumerate(model.layers) if lay.unit_kind == "affine")
            if r.conflicting and isinstance(dense, Dense) and dense.in_units == dense.out_units and not first:
                drop.append((start, r.index))
        for start, end in reversed(drop):
            for i in range(end, start - 1, -1):
                remove_layer(model, i)
        if drop:
            self._refresh_prior(trainer)
        trainer.history.events.append({"event": "remove", "epoch": trainer.epoch, "removed": len(drop),
                                       "entropy": [float(r.entropy) for r in rep],
                                       "conflicting": [bool(r.conflicting) for r in rep],
                                       "arch": architecture(model)})


def combined_trainer(X, y, seed, config, checkpoint_dir=None):
    """The gated small net and the ONE PruningTrainer of the combined run (θ frozen until ``remove_at``)."""
    cfg = _cfg(config)
    r_init, r_train = _rngs(seed)
    model = add_gates(mlp([X.shape[1], *cfg.small, 10], "relu", rng=r_init))
    s = _pruning_settings(cfg, warmup_epochs=cfg.remove_at, finetune_epochs=cfg.epochs - cfg.binarize_at)
    return PruningTrainer(model, "ce", Adam(cfg.lr), cfg.batch_size, r_train, s, progress=False,
                          callbacks=[CombinedSchedule(X, y, cfg)], checkpoint_dir=checkpoint_dir,
                          checkpoint_keep=10 ** 6)


def train_combined(X, y, seed, config, checkpoint_dir=None, resume=None):
    """Train the combined run to the end (or continue it from checkpoint ``resume``); returns the trainer."""
    from ..checkpoint import resume as resume_checkpoint
    cfg = _cfg(config)
    tr = combined_trainer(X, y, seed, cfg, checkpoint_dir)
    if resume is not None:
        resume_checkpoint(resume, tr)
    tr.fit(X, y, cfg.epochs - tr.epoch)
    return tr


def run_combined(dataset, seed, config):
    """The combined run (module docstring) → the deterministic final net's numbers."""
    cfg = _cfg(config)
    X, y, Xte, yte = load_data(dataset, cfg)
    t0 = time.perf_counter()
    tr = train_combined(X, y, seed, cfg)
    final, _ = to_deterministic(tr.model)
    ev = [{k: v for k, v in ev.items() if k in ("event", "epoch", "chosen", "removed", "conflicting", "arch",
                                                 "widths")} for ev in tr.history.events]
    return _finish("combined", dataset, seed, final, Xte, yte, len(X), t0, _train_macs(tr.history, len(X)),
                   tr.step, tr.epoch, _width_trace(tr.history, list(cfg.small)), events=ev)


METHODS = {"small": run_fixed_small, "big": run_fixed_big, "sensli": run_sensli, "autotune": run_autotune,
           "pruning": run_pruning, "combined": run_combined}


def run_one(method, dataset, seed, config):
    """One (method, data set, seed) run — module level, so :func:`minigrow.sweep.run_sweep` can ship it."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
    return METHODS[method](dataset, seed, config)


def run_compare(seeds, datasets=DATASETS, config=FULL, methods=tuple(METHODS), jobs=1, scheduler=None):
    """All runs (one BLAS thread each; ``jobs`` worker processes); returns the list of run records."""
    cfg = _cfg(config).as_dict()
    tasks = [{"method": m, "dataset": d, "seed": int(s), "config": cfg} for d in datasets for s in seeds
             for m in methods]
    return run_sweep(run_one, tasks, jobs=jobs, scheduler=scheduler)


# ----------------------------------------------------------------------------------------------------------------
# Tables and figures
# ----------------------------------------------------------------------------------------------------------------

FIELDS = ("test_err", "params", "macs", "train_macs", "steps", "seconds")


def summarize(runs):
    """One row per (data set, method): mean and std (ddof=1; 0 for one seed) over seeds of every field."""
    rows = []
    keys = []
    for r in runs:
        if (r["dataset"], r["method"]) not in keys:
            keys.append((r["dataset"], r["method"]))
    for d, m in keys:
        rs = [r for r in runs if r["dataset"] == d and r["method"] == m]
        row = {"dataset": d, "method": m, "n_seeds": len(rs)}
        for f in FIELDS:
            v = np.array([r[f] for r in rs], dtype=float)
            row[f] = float(v.mean())
            row[f + "_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        archs = sorted({json.dumps(r["arch"]) for r in rs})
        row["archs"] = [json.loads(a) for a in archs]
        rows.append(row)
    return rows


def _one_arch(a):
    if len(a) > 3 and len(set(a)) == 1:
        return f"{a[0]}×{len(a)}"                 # 30 blocks of width 32 → 32×30
    return "-".join(map(str, a)) or "—"


def _arch_text(archs, limit=3):
    txt = [_one_arch(a) for a in archs[:limit]]
    return ", ".join(txt) + (f" (+{len(archs) - limit})" if len(archs) > limit else "")


def format_table(rows):
    """Markdown table of :func:`summarize` rows."""
    out = ["| data | method | test error % | params | inference MACs | training MACs | wall s | final hidden "
           "widths |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['dataset']} | {r['method']} | {100 * r['test_err']:.2f} ± {100 * r['test_err_std']:.2f} | "
                   f"{r['params']:,.0f} ± {r['params_std']:,.0f} | {r['macs']:,.0f} | "
                   f"{r['train_macs'] / 1e9:.2f} G ± {r['train_macs_std'] / 1e9:.2f} | "
                   f"{r['seconds']:.1f} ± {r['seconds_std']:.1f} | {_arch_text(r['archs'])} |")
    return "\n".join(out)


_COLORS = {"small": "tab:gray", "big": "black", "sensli": "tab:blue", "autotune": "tab:orange",
           "pruning": "tab:green", "combined": "tab:red"}


def plot_pareto(runs, path):
    """Test error against parameters and against training multiply-adds, one panel pair per data set (every
    seed a small dot, the mean a large marker with std bars)."""
    from ..plotting import pyplot, savefig
    plt = pyplot()
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    rows = summarize(runs)
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.6 * len(datasets)), squeeze=False)
    for i, d in enumerate(datasets):
        for j, (f, label) in enumerate((("params", "parameters"), ("train_macs", "training multiply-adds"))):
            ax = axes[i][j]
            for r in rows:
                if r["dataset"] != d:
                    continue
                c = _COLORS.get(r["method"], None)
                pts = [x for x in runs if x["dataset"] == d and x["method"] == r["method"]]
                ax.scatter([p[f] for p in pts], [100 * p["test_err"] for p in pts], s=8, color=c, alpha=0.4)
                ax.errorbar(r[f], 100 * r["test_err"], xerr=r[f + "_std"], yerr=100 * r["test_err_std"], fmt="o",
                            color=c, ms=7, capsize=3, label=r["method"])
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("test error %")
            ax.set_title(f"{d}: error vs {label}")
            ax.grid(alpha=0.3)
            if j == 0:
                ax.legend(fontsize=8)
    return savefig(fig, path)


def plot_traces(runs, path):
    """Per-epoch architecture of every run: total hidden units (left) and depth (right), per method, first data
    set and every seed."""
    from ..plotting import pyplot, savefig
    plt = pyplot()
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.4 * len(datasets)), squeeze=False)
    for i, d in enumerate(datasets):
        seen = set()
        for r in runs:
            if r["dataset"] != d:
                continue
            c = _COLORS.get(r["method"])
            lab = None if r["method"] in seen else r["method"]
            seen.add(r["method"])
            ep = np.arange(1, len(r["trace"]) + 1)
            axes[i][0].step(ep, [sum(a) for a in r["trace"]], where="post", color=c, alpha=0.6, label=lab)
            axes[i][1].step(ep, [len(a) for a in r["trace"]], where="post", color=c, alpha=0.6, label=lab)
        axes[i][0].set_yscale("log")
        axes[i][0].set_ylabel("hidden units (after the epoch's edits)")
        axes[i][1].set_ylabel("hidden layers")
        for ax in axes[i]:
            ax.set_xlabel("epoch (auto-tune: all rounds in a row)")
            ax.set_title(d)
            ax.grid(alpha=0.3)
        axes[i][0].legend(fontsize=8)
    return savefig(fig, path)
