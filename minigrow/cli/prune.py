"""``python -m minigrow prune``: variational Bernoulli unit pruning during training (our derivation after
Guenter & Sideris, see :mod:`minigrow.methods.pruning`).

Forms::

    python -m minigrow prune [train] --data mnist --hidden 300,100 --price 0.5 …   # one pruning run
    python -m minigrow prune toy                                                   # teacher-student toy
    python -m minigrow prune mnist                                                 # the MNIST reproduction
    python -m minigrow prune grid [--seeds 0,1,2 --scales … --hiddens …]           # the robustness grid
    python -m minigrow prune tradeoff [--prices 0.03,0.05,0.1,0.2]                 # error vs widths across γ
    python -m minigrow prune lenet5 [--starts 20-50-500,40-100-1000 --seeds …]      # LeNet-5-Caffe filters

Defaults: :class:`minigrow.methods.pruning.PruningSettings` (the MNIST settings), the one source of them.

The reproductions are spelled ``python -m minigrow reproduce pruning toy|mnist|grid|tradeoff|lenet5`` (the forms
above still work for one release, with a deprecation note); they write results/pruning_<name>.json and
figures/pruning_<name>*.png under ``--out`` (default runs/reproduce/pruning/<name>; ``--into-docs``: the
repository's docs/). ``toy``, ``grid`` and ``tradeoff`` take ``--jobs N`` / ``--scheduler ADDRESS``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .common import (RunFolder, add_checkpoint_args, add_data_args, add_into_docs_arg, add_run_args, add_sweep_args,
                     check_memory, deprecated, given, int_list, load_data, nonneg_int, positive_float, positive_int,
                     refuse_unused, reproduction_folder, safe_name, settings_from_checkpoint, sweep_kwargs, write_json)

WHAT = ["train", "toy", "mnist", "grid", "tradeoff", "lenet5"]

# The settings that define a `prune train` run: stored in every checkpoint and taken from it on --resume.
RUN_ARGS = ["data", "n_train", "n_test", "hidden", "activation", "init_scale", "input_gate", "price", "eta_theta",
            "estimator", "flip_samples", "warmup", "eps", "sigma0", "strength", "lr", "batch_size", "seed", "dtype",
            "price_on", "lr_step", "lr_decay", "polish", "precondition", "estimate_every", "cv_every", "finetune",
            "theta_margin", "eta_power", "eta_tau", "price_balance"]


def _numbers(text, allow_zero, example):
    """Comma-separated finite numbers > 0 (≥ 0 with ``allow_zero``), for argparse types."""
    import argparse
    try:
        vals = [float(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like {example}, got {text!r}")
    if not vals or any(not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero) for v in vals):
        raise argparse.ArgumentTypeError(f"expected numbers {'>= 0' if allow_zero else '> 0'} like {example}, "
                                         f"got {text!r}")
    return vals


def float_list(text):
    """'0.5,1,2' → [0.5, 1.0, 2.0], all > 0 (argparse type)."""
    return _numbers(text, False, "0.5,1,2")


def price_arg(text):
    """'0.04' → 0.04; '0.04,0.4,0.04' → [0.04, 0.4, 0.04] (one price per weight layer; argparse type). The names
    'incoming' and 'params' (the earlier meaning of --price, now --price-on) are passed through."""
    if str(text) in ("incoming", "params"):
        return str(text)
    vals = _numbers(text, True, "0.04 or 0.04,0.4,0.04")
    return vals[0] if len(vals) == 1 else vals


def _nonneg_float(text):
    """One finite number ≥ 0 (argparse type)."""
    import argparse
    vals = _numbers(text, True, "0.5")
    if len(vals) != 1:
        raise argparse.ArgumentTypeError(f"expected one number >= 0 like 0.5, got {text!r}")
    return vals[0]


def seed_list(text):
    """'0,1,2' → [0, 1, 2] (argparse type)."""
    import argparse
    try:
        vals = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 0,1,2, got {text!r}")
    if not vals or min(vals) < 0:
        raise argparse.ArgumentTypeError(f"expected integers >= 0 like 0,1,2, got {text!r}")
    return vals


def hidden_list(text):
    """'300-100,600-200' → [(300, 100), (600, 200)]."""
    import argparse
    try:
        out = [tuple(int(v) for v in part.split("-")) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 300-100,600-200, got {text!r}")
    if not out or any(len(h) < 1 or min(h) < 1 for h in out):
        raise argparse.ArgumentTypeError(f"expected widths like 300-100,600-200, got {text!r}")
    return out


def register(sub):
    from ..experiments.pruning import MNIST_SETTINGS as S
    p = sub.add_parser("prune", help="variational Bernoulli unit pruning during training",
                       description="Train a gated MLP whose units are pruned when their keep-probability θ reaches "
                                   "0 (derivation ours, after Guenter & Sideris). WHAT: train (one run, default), "
                                   "toy, mnist or grid (the reproductions).")
    p.add_argument("what", nargs="?", choices=WHAT, default="train")
    add_data_args(p, default="mnist")
    p.add_argument("--hidden", type=int_list, default=[300, 100], help="starting hidden widths (default 300,100)")
    p.add_argument("--activation", choices=["relu", "tanh", "leaky_relu", "sigmoid"], default="relu")
    p.add_argument("--init-scale", type=positive_float, default=1.0, help="multiplies the initial weights")
    p.add_argument("--input-gate", action="store_true", help="gate (and prune) the input features too")
    p.add_argument("--price", type=price_arg, default=S.price,
                   help="price per active parameter γ (nats); or one per weight layer, e.g. 0.04,0.4,0.04 (ours)")
    p.add_argument("--gamma", type=price_arg, default=None, help="deprecated name of --price")
    p.add_argument("--eta-theta", type=positive_float, default=S.eta_theta, help="θ step size η_θ")
    p.add_argument("--estimator", choices=["flip", "flip_cv", "pathwise", "score"], default=S.estimator,
                   help="θ-gradient estimator; flip_cv = flip on --flip-samples samples with the pathwise estimator "
                        "as control variate (ours)")
    p.add_argument("--flip-samples", type=positive_int, default=S.flip_samples,
                   help="samples per batch used by the flip estimator")
    p.add_argument("--warmup", type=nonneg_int, default=S.warmup_epochs, help="epochs with θ frozen")
    p.add_argument("--eps", type=float, default=S.eps, help="pruning threshold ε")
    p.add_argument("--sigma0", type=positive_float, default=S.sigma0, help="hyper-prior weight scale σ0")
    p.add_argument("--strength", type=float, default=S.strength, help="hyper-prior strength ρ (0 = a=1,b→0)")
    p.add_argument("--price-on", choices=["incoming", "params", "flops", "params+flops"], default=S.price_on,
                   help="what a unit pays γ for: 'incoming' weights + bias (pruning.md) or 'params' = everything "
                        "that vanishes with it, incl. its outgoing column (ours), or 'flops' = the expected "
                        "multiply-adds per sample that vanish with it (ours), or 'params+flops' = both, with "
                        "--price γ_P,γ_F (ours)")
    p.add_argument("--precondition", action=argparse.BooleanOptionalAction, default=S.precondition,
                   help="divide each θ-gradient by the unit's price rate γ n_j/N, so η_θ is a per-step fall rate "
                        "of a useless unit in every layer (ours)")
    p.add_argument("--estimate-every", type=positive_int, default=S.estimate_every,
                   help="estimate the θ-gradient on every M-th batch only, each estimate standing for M steps "
                        "(ours; 1/M of the estimator's cost)")
    p.add_argument("--cv-every", type=positive_int, default=S.cv_every,
                   help="flip_cv: compute the flip correction on every M-th batch only, weighted by M, the pathwise "
                        "estimate in between (ours)")
    p.add_argument("--polish", type=nonneg_int, default=S.polish_epochs,
                   help="last N epochs take one θ step per epoch with the epoch's mean θ-gradient (ours)")
    p.add_argument("--finetune", type=nonneg_int, default=S.finetune_epochs,
                   help="last N epochs: θ rounded to {0,1} (≥ ½ → 1), zeros removed, θ frozen, weights fine-tuned "
                        "(ours)")
    p.add_argument("--theta-margin", type=_nonneg_float, default=S.theta_margin,
                   help="θ binary by the dynamics (ours): θ = clip(ζ, 0, 1), the latent ζ kept within this margin of "
                        "[0, 1] (0 = the plain projected step; lenet5 default 0.5)")
    p.add_argument("--eta-power", type=_nonneg_float, default=S.eta_power,
                   help="Robbins–Monro θ steps η_t = η_θ (1 + t/τ)^-κ with κ this (½ < κ ≤ 1; 0 = constant; lenet5 "
                        "default 0.6)")
    p.add_argument("--eta-tau", type=positive_float, default=S.eta_tau, help="τ of the Robbins–Monro steps, epochs")
    p.add_argument("--price-balance", choices=["uniform", "fisher"], default=S.price_balance,
                   help="fisher (ours): spread the one --price over the weight layers by ½ ln(1 + N F_q/λ_q), F_q the "
                        "layer's mean empirical Fisher (docs/pruning.md); uniform = the same price everywhere")
    p.add_argument("--starts", type=hidden_list, default=[(20, 50, 500)],
                   help="lenet5: starting conv1-conv2-fc widths, e.g. 20-50-500,40-100-1000 (more than one run, or "
                        "more --seeds/--scales, is a robustness grid)")
    p.add_argument("--feature-gates", action="store_true",
                   help="lenet5: gate the 800 flattened features one by one instead of conv2's channels (a conv2 "
                        "channel goes when all its features are gone; ours)")
    p.add_argument("--dense", action=argparse.BooleanOptionalAction, default=True,
                   help="lenet5, one run: also train the dense net with the same epochs (error and wall-time "
                        "reference; default on)")
    p.add_argument("--lr", type=positive_float, default=S.lr)
    p.add_argument("--lr-step", type=nonneg_int, default=S.lr_step or 0, help="StepLR on the weights: epochs between "
                   "decays (0 = constant lr)")
    p.add_argument("--lr-decay", type=positive_float, default=S.lr_decay, help="StepLR factor")
    p.add_argument("--epochs", type=nonneg_int, default=None, help=f"default {S.epochs}")
    p.add_argument("--batch-size", type=positive_int, default=S.batch_size)
    p.add_argument("--seeds", type=seed_list, default=[0, 1, 2], help="grid: seeds")
    p.add_argument("--scales", type=float_list, default=[0.5, 1.0, 2.0], help="grid: init scales")
    p.add_argument("--hiddens", type=hidden_list, default=[(300, 100), (600, 200), (1000, 300)],
                   help="grid: starting widths, e.g. 300-100,600-200")
    p.add_argument("--prices", type=float_list, default=[0.03, 0.05, 0.1, 0.2], help="tradeoff: the prices γ")
    p.add_argument("--gammas", type=float_list, default=None, help="deprecated name of --prices")
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    p.add_argument("--tag", default="", help="mnist, grid, tradeoff, lenet5: suffix of the result and figure names "
                                             "(pruning_grid<TAG>.json)")
    add_run_args(p, "runs/prune")
    add_sweep_args(p)
    add_into_docs_arg(p)
    add_checkpoint_args(p)
    p.set_defaults(func=run)


def _settings(args):
    """The run's :class:`~minigrow.methods.pruning.PruningSettings` fields from the flags (a dict)."""
    s = dict(price=args.price, eta_theta=args.eta_theta, estimator=args.estimator, flip_samples=args.flip_samples,
             warmup_epochs=args.warmup, eps=args.eps, sigma0=args.sigma0, strength=args.strength, lr=args.lr,
             batch_size=args.batch_size, price_on=args.price_on, lr_step=args.lr_step or None, lr_decay=args.lr_decay,
             polish_epochs=args.polish, precondition=args.precondition, estimate_every=args.estimate_every,
             cv_every=args.cv_every, finetune_epochs=args.finetune, theta_margin=args.theta_margin,
             eta_power=args.eta_power, eta_tau=args.eta_tau, price_balance=args.price_balance)
    if args.epochs is not None:
        s["epochs"] = args.epochs
    return s


SETTINGS = ["price", "gamma", "eta_theta", "estimator", "flip_samples", "warmup", "eps", "sigma0", "strength",
            "price_on", "precondition", "estimate_every", "cv_every", "polish", "finetune", "lr", "lr_step",
            "lr_decay", "epochs", "batch_size", "theta_margin", "eta_power", "eta_tau", "price_balance"]
# the flags each form uses; any other flag given explicitly has no effect there and is refused
USED = {
    "train": SETTINGS + ["data", "data_dir", "n_train", "n_test", "hidden", "activation", "init_scale", "input_gate",
                         "seed", "dtype", "checkpoint_every", "resume"],
    "toy": ["seed", "quick"],
    "mnist": SETTINGS + ["n_train", "n_test", "hidden", "init_scale", "input_gate", "seed", "quick", "tag"],
    "grid": SETTINGS + ["data_dir", "n_train", "n_test", "seeds", "scales", "hiddens", "quick", "tag"],
    "tradeoff": [k for k in SETTINGS if k not in ("price", "gamma")] + ["data_dir", "n_train", "n_test", "hidden",
                                                                        "seed", "quick", "tag", "prices", "gammas"],
    "lenet5": SETTINGS + ["data_dir", "n_train", "n_test", "starts", "seeds", "scales", "seed", "quick", "tag",
                          "dense", "feature_gates"],
}
GENERIC = {"out", "no_progress", "no_plots", "threads"}
SWEEPS = {"toy", "grid", "tradeoff"}                 # forms made of independent runs: --jobs, --scheduler
REPRODUCTIONS = {"toy", "mnist", "grid", "tradeoff", "lenet5"}  # `reproduce pruning WHAT`; --into-docs


def check_flags(args):
    """Flags without effect in the chosen form are refused, not ignored; user names stay file names."""
    used = set(USED[args.what]) | GENERIC | ({"jobs", "scheduler"} if args.what in SWEEPS else set()) \
        | ({"into_docs"} if args.what in REPRODUCTIONS else set())
    explicit = getattr(args, "explicit", None) or set()
    for name in sorted(explicit - used):
        if name in ("checkpoint_every", "resume"):
            raise ValueError(f"--{name.replace('_', '-')}: only for one run ('prune train'), not for "
                             f"'prune {args.what}'")
        refuse_unused(args, [name], f"for 'prune {args.what}'")
    if args.what != "train" and (args.checkpoint_every or args.resume is not None):
        raise ValueError(f"--checkpoint-every/--resume: only for one run ('prune train'), not for 'prune {args.what}'")
    if args.quick and args.what in ("mnist", "grid", "tradeoff", "lenet5"):
        refuse_unused(args, ["n_train", "n_test"], "with --quick (it uses "
                      + ("1000 / 500" if args.what == "lenet5" else "2000 / 1000") + " images)")
    safe_name("--tag", args.tag)


def _deprecated_flags(args):
    """--gamma → --price, --gammas → --prices, --price incoming|params → --price-on (one-line notes)."""
    import sys
    if isinstance(args.price, str):
        print(f"minigrow: note: --price {args.price} is now --price-on {args.price}", file=sys.stderr)
        args.price_on, args.price = args.price, _default_price()
    if args.gamma is not None:
        print("minigrow: note: --gamma is deprecated; use --price (the price per active parameter)", file=sys.stderr)
        args.price, args.gamma = args.gamma, None
    if getattr(args, "gammas", None) is not None:
        print("minigrow: note: --gammas is deprecated; use --prices", file=sys.stderr)
        args.prices, args.gammas = args.gammas, None


def _default_price():
    from ..methods.pruning import PruningSettings
    return PruningSettings().price


def run(args):
    check_flags(args)
    if args.what in REPRODUCTIONS and getattr(args, "command", None) == "prune":
        deprecated(args, f"'prune {args.what}'", f"'python -m minigrow reproduce pruning {args.what}'")
    _deprecated_flags(args)
    if min(np.atleast_1d(args.price)) < 0 or args.strength < 0 or not 0 <= args.eps <= 1:
        raise ValueError(f"--price and --strength must be >= 0 and --eps in [0, 1], got {args.price}, "
                         f"{args.strength}, {args.eps}")
    return {"train": run_train, "toy": run_toy, "mnist": run_mnist, "grid": run_grid,
            "tradeoff": run_tradeoff, "lenet5": run_lenet5}[args.what](args)


def _settings_from_checkpoint(args):
    """On --resume: the run's settings come from the checkpoint; an explicitly different flag is an error."""
    ck = settings_from_checkpoint(args, "prune", RUN_ARGS)
    saved = ck["user"]["args"]
    if args.epochs is None:
        args.epochs = saved.get("epochs")
    if args.epochs is not None and args.epochs < ck["checkpoint"]["epoch"]:
        raise ValueError(f"--epochs: the checkpoint has already trained {ck['checkpoint']['epoch']} epochs, got "
                         f"--epochs {args.epochs} (the total to reach)")
    return ck["path"]


# ----------------------------------------------------------------------------------------------------------------
def run_train(args):
    from ..io import save
    from ..optim import Adam, StepLR
    from ..methods.pruning import PruningSettings, PruningTrainer, gated_mlp, widths
    from ..train import evaluate
    from ..checkpoint import resume
    from ..train import TrainingDiverged
    resume_path = _settings_from_checkpoint(args) if args.resume is not None else None
    dtype = np.dtype(args.dtype).type
    files = ["history.json", "gated_model.npz", "model.npz"] + ([] if args.no_plots else ["theta.png", "widths.png"])
    with RunFolder(args.out, "prune", files, checkpoints=resume_path or "new") as rf:
        d = load_data(args, dtype)
        n_out = int(max(d.y_train.max(), d.y_test.max())) + 1
        check_memory(args, [d.X_train.shape[1], *args.hidden, n_out], d, dtype)
        model = gated_mlp([d.X_train.shape[1], *args.hidden, n_out], args.activation, rng=args.seed, dtype=dtype,
                          scale=args.init_scale, input_gate=args.input_gate)
        st = PruningSettings().replace(**_settings(args))
        epochs, lr, bs = st.epochs, st.lr, st.batch_size
        lr_step, lr_decay, polish, finetune = st.lr_step, st.lr_decay, st.polish_epochs, st.finetune_epochs
        ckdir = args.out / "checkpoints" if args.checkpoint_every else None
        meta = {"command": "prune", "args": {**{k: getattr(args, k) for k in RUN_ARGS}, "epochs": epochs}}
        # built as for the original run (same hyper-prior); on --resume the saved (pruned) state replaces it
        opt = Adam(lr)
        tr = PruningTrainer(model, "ce", opt, batch_size=bs, rng=np.random.default_rng(args.seed), settings=st,
                            scheduler=StepLR(opt, lr_step, lr_decay) if lr_step else None,
                            progress=not args.no_progress, dtype=dtype, checkpoint_dir=ckdir,
                            checkpoint_every=max(args.checkpoint_every, 1), checkpoint_meta=meta)
        if resume_path is not None:
            resume(resume_path, tr)
            tr.checkpoint_dir, tr.checkpoint_every, tr.checkpoint_meta = ckdir, max(args.checkpoint_every, 1), meta
            print(f"resumed {resume_path} at epoch {tr.epoch}")
        out = args.out
        try:
            tr.fit_schedule(d.X_train, d.y_train, epochs, polish, d.X_test, d.y_test, finetune_epochs=finetune)
        except TrainingDiverged as exc:
            write_json(rf.stage("history.json"), tr.history.as_dict())
            save(rf.stage("gated_model.npz"), model, optimizer=tr.optimizer, meta={"settings": st.as_dict()})   # last finite
            rf.commit(status="diverged", info={"error": str(exc)})
            print(f"wrote the last finite gated model to {out}/gated_model.npz and history.json", flush=True)
            raise
        final, ids = tr.finalize()
        Xte = d.X_test if ids is None else d.X_test[:, ids]
        _, acc = evaluate(final, "ce", Xte, d.y_test)
        write_json(rf.stage("history.json"), tr.history.as_dict())
        save(rf.stage("gated_model.npz"), model, optimizer=tr.optimizer, meta={"settings": st.as_dict()})
        save(rf.stage("model.npz"), final, meta={"input_ids": None if ids is None else ids.tolist()})
        print(final.summary())
        print(f"final widths {widths(model)}, test error {100 * (1 - acc):.2f} %, parameters {final.n_params():,}")
        if not args.no_plots:
            from ..experiments.pruning import plot_theta_trajectories, plot_widths
            spe = int(np.ceil(d.X_train.shape[0] / bs))
            plot_theta_trajectories(tr.theta_trace, rf.stage("theta.png"), steps_per_epoch=spe)
            plot_widths([("run", [e["widths"] for e in tr.history.epochs])], rf.stage("widths.png"))
        rf.commit()
    print(f"wrote {out}/history.json, gated_model.npz, model.npz" +
          ("" if args.no_plots else ", theta.png, widths.png") + ", manifest.json")
    return 0


def _folder(args):
    """The RunFolder of a reproduction (--out, default runs/reproduce/pruning/WHAT; runs/quick/prune with --quick;
    the repository's docs/ with --into-docs); it stages results/ and figures/."""
    rf, _ = reproduction_folder(args.out, args.quick, "prune", default="runs/prune", into_docs=args.into_docs,
                                method="pruning", what=args.what)
    return rf


def run_toy(args):
    with _folder(args) as rf:
        res, fig = rf.stage_dir("results"), rf.stage_dir("figures")
        out = toy_reproduction(fig, seed=args.seed, quick=args.quick, plots=not args.no_plots, **sweep_kwargs(args))
        write_json(res / "pruning_toy.json", out)
        for r in out["runs"]:
            print(f"teacher k={r['k']}, student width {r['width']} (seed {r['seed']}): final width {r['final_width']}, "
                  f"θ binary {r['theta_binary_frac']:.2f}, test MSE {r['test_loss']:.4f}, {r['seconds']:.1f} s")
        rf.commit()
        print(f"wrote {rf.out / 'results'}/pruning_toy.json")
    return 0


def toy_reproduction(fig_dir, seed=0, quick=False, plots=True, k=3, jobs=1, scheduler=None):
    from ..experiments.pruning import plot_widths, toy_run
    from ..sweep import run_sweep
    mults = (2, 4) if quick else (2, 4, 8)
    seeds = (seed,) if quick else (seed, seed + 1, seed + 2)
    runs = run_sweep(toy_run, [dict(k=k, width=m * k, seed=sd, epochs=40 if quick else 80) for m in mults
                               for sd in seeds], jobs=jobs, scheduler=scheduler)
    if plots:
        plot_widths([(f"width {r['width']} seed {r['seed']}", [[w] for w in r["widths"]]) for r in runs],
                    Path(fig_dir) / "pruning_toy_widths.png", title=f"teacher-student, teacher k = {k}")
    return {"command": "python -m minigrow reproduce pruning toy", "k": k, "runs": runs}


def run_mnist(args):
    from ..experiments.pruning import dense_baseline, mnist_run, plot_error_vs_params, plot_theta_trajectories, \
        plot_widths
    with _folder(args) as rf:
        res, fig = rf.stage_dir("results"), rf.stage_dir("figures")
        n_train, n_test = (2000, 1000) if args.quick else (args.n_train, args.n_test)
        s = _settings(args)
        if args.quick:
            s["epochs"], s["warmup_epochs"], s["finetune_epochs"] = 3, 1, min(s["finetune_epochs"], 1)
        r = mnist_run(tuple(args.hidden), seed=args.seed, scale=args.init_scale, n_train=n_train, n_test=n_test,
                      progress=not args.no_progress, input_gate=args.input_gate, **s)
        dense = dense_baseline(tuple(args.hidden), seed=args.seed, epochs=r["settings"]["epochs"],
                               lr=r["settings"]["lr"], batch_size=r["settings"]["batch_size"], n_train=n_train,
                               n_test=n_test, progress=not args.no_progress, lr_step=r["settings"]["lr_step"],
                               lr_decay=r["settings"]["lr_decay"])
        keep = {k: r[k] for k in ("hidden", "seed", "scale", "settings", "n_train", "widths", "test_err",
                                  "theta_binary_frac", "theta_near_binary_frac", "theta_binary_before_rounding",
                                  "n_params", "macs", "seconds", "input_gate", "input_ids")}
        keep["events"] = r["trainer"].history.events
        keep["history"] = r["history"]
        keep["dense"] = {k: dense[k] for k in ("test_err", "n_params", "seconds")}
        keep["command"] = ("python -m minigrow reproduce pruning mnist" + (" --input-gate" if args.input_gate else "")
                           + "".join(f" --{k.replace('_', '-')} {getattr(args, k)}"
                                     for k in ("theta_margin", "eta_power", "eta_tau", "finetune", "price_balance")
                                     if given(args, k))
                           + (" --quick" if args.quick else "") + (f" --tag {args.tag}" if args.tag else ""))
        tag = ("_quick" if args.quick else "") + ("_input" if args.input_gate else "") + args.tag
        if not args.no_plots:
            spe = int(np.ceil(r["n_train"] / r["settings"]["batch_size"]))
            plot_theta_trajectories(r["trainer"].theta_trace, fig / f"pruning_mnist_theta{tag}.png",
                                    steps_per_epoch=spe, title="θ trajectories, MNIST 784-300-100-10")
            plot_widths([("pruned", [e["widths"] for e in r["history"]])], fig / f"pruning_mnist_widths{tag}.png",
                        title="hidden widths over epochs (MNIST)")
            plot_error_vs_params([(f"ours {'-'.join(map(str, r['widths']))}", r["n_params"], r["test_err"])],
                                 [(f"dense {'-'.join(map(str, args.hidden))}", dense["n_params"], dense["test_err"])],
                                 fig / f"pruning_mnist_error_vs_params{tag}.png", title="MNIST 784-300-100-10")
        write_json(res / f"pruning_mnist{tag}.json", keep)
        before = r["theta_binary_before_rounding"]
        print(f"pruned: widths {r['widths']}, test error {100 * r['test_err']:.2f} %, θ binary "
              f"{r['theta_binary_frac']:.3f}" + ("" if before is None else f" ({before:.3f} before the rounding)")
              + f", {r['n_params']:,} parameters, {r['seconds']:.0f} s")
        print(f"dense : test error {100 * dense['test_err']:.2f} %, {dense['n_params']:,} parameters, "
              f"{dense['seconds']:.0f} s")
        rf.commit()
    return 0


def _mnist_and_settings(args):
    """The MNIST subset for a multi-run command (2 000 / 1 000 images with --quick) and the run settings."""
    from ..data import load_mnist
    d = load_mnist(n_train=2000 if args.quick else args.n_train, n_test=1000 if args.quick else args.n_test,
                   data_dir=args.data_dir)
    return d, _settings(args)


def run_grid(args):
    from ..experiments.pruning import plot_error_vs_params, plot_widths, robustness_grid
    with _folder(args) as rf:
        res, fig = rf.stage_dir("results"), rf.stage_dir("figures")
        d, s = _mnist_and_settings(args)
        if args.quick:
            s["epochs"], s["warmup_epochs"], s["finetune_epochs"] = 2, 1, 0
        t0 = time.perf_counter()

        def log(row):
            print(f"{row['hidden']} scale {row['scale']} seed {row['seed']}: widths {row['widths']}, test error "
                  f"{100 * row['test_err']:.2f} %, θ binary {row['theta_binary_frac']:.3f}, {row['seconds']:.0f} s",
                  flush=True)
        rows = robustness_grid(tuple(args.seeds), tuple(args.scales), tuple(args.hiddens), log=log,
                               n_train=2000 if args.quick else args.n_train, n_test=1000 if args.quick else args.n_test,
                               data_dir=args.data_dir, **sweep_kwargs(args), **s)
        tag = ("_quick" if args.quick else "") + args.tag
        out = {"command": "python -m minigrow reproduce pruning grid " + " ".join(
            [f"--seeds {','.join(map(str, args.seeds))}", f"--scales {','.join(map(str, args.scales))}",
             "--hiddens " + ",".join("-".join(map(str, h)) for h in args.hiddens)]
            + [f"--n-train {args.n_train}" if args.n_train else "",
               "--price " + ",".join(map(str, np.atleast_1d(args.price))), f"--eta-theta {args.eta_theta}",
               f"--flip-samples {args.flip_samples}", f"--warmup {args.warmup}", f"--price-on {args.price_on}",
               "--precondition" if args.precondition else "--no-precondition", f"--polish {args.polish}",
               f"--lr-step {args.lr_step or 0}", f"--estimate-every {args.estimate_every}",
               f"--estimator {args.estimator}", f"--cv-every {args.cv_every}", f"--finetune {args.finetune}"]
            + [f"--{k.replace('_', '-')} {getattr(args, k)}" for k in ("theta_margin", "eta_power", "eta_tau",
                                                                       "price_balance") if given(args, k)]
            + ([f"--epochs {args.epochs}"] if args.epochs else []) + (["--quick"] if args.quick else [])
            + ([f"--tag {args.tag}"] if args.tag else [])),
            "settings": s, "n_train": int(d.X_train.shape[0]), "rows": rows, "seconds": time.perf_counter() - t0}
        write_json(res / f"pruning_grid{tag}.json", out)
        if not args.no_plots:
            plot_widths([(f"{'-'.join(map(str, r['hidden']))} ×{r['scale']} s{r['seed']}", r["widths_per_epoch"])
                         for r in rows], fig / f"pruning_grid_widths{tag}.png", title="robustness grid: widths")
            plot_error_vs_params([(f"{'-'.join(map(str, r['hidden']))} ×{r['scale']}", r["n_params"], r["test_err"])
                                  for r in rows], [], fig / f"pruning_grid_error_vs_params{tag}.png",
                                 title="robustness grid: final nets")
        rf.commit()
        print(f"wrote {rf.out / 'results'}/pruning_grid{tag}.json")
    return 0


def run_tradeoff(args):
    """One MNIST pruning run per γ (other settings as given, default MNIST_SETTINGS): error vs kept widths."""
    from ..experiments.pruning import plot_error_vs_params, tradeoff_row
    from ..sweep import run_sweep
    with _folder(args) as rf:
        res, fig = rf.stage_dir("results"), rf.stage_dir("figures")
        d, s = _mnist_and_settings(args)
        if args.quick:
            s["epochs"], s["warmup_epochs"], s["polish_epochs"] = 3, 1, 0
            s["finetune_epochs"] = min(s["finetune_epochs"], 1)
        rows = run_sweep(tradeoff_row, [dict(hidden=tuple(args.hidden), seed=args.seed, price=g,
                                             n_train=2000 if args.quick else args.n_train,
                                             n_test=1000 if args.quick else args.n_test, data_dir=args.data_dir,
                                             **{k: v for k, v in s.items() if k != "price"}) for g in args.prices],
                         **sweep_kwargs(args))
        for row in rows:
            g = row["price"]
            print(f"γ {g}: widths {row['widths']}, test error {100 * row['test_err']:.2f} %, θ binary "
                  f"{row['theta_binary_frac']:.3f}, {row['n_params']:,} parameters, {row['seconds']:.0f} s", flush=True)
        tag = ("_quick" if args.quick else "") + args.tag
        out = {"command": "python -m minigrow reproduce pruning tradeoff --prices " + ",".join(map(str, args.prices))
               + (" --quick" if args.quick else "") + (f" --tag {args.tag}" if args.tag else ""),
               "settings": {k: v for k, v in s.items() if k != "price"}, "seed": args.seed,
               "n_train": int(d.X_train.shape[0]), "rows": rows}
        write_json(res / f"pruning_mnist_tradeoff{tag}.json", out)
        if not args.no_plots:
            plot_error_vs_params([(f"ours γ={r['price']}: {'-'.join(map(str, r['widths']))}", r["n_params"],
                                   r["test_err"]) for r in rows], [], fig / f"pruning_mnist_tradeoff{tag}.png",
                                 title="MNIST 784-300-100-10: error vs kept parameters across γ")
        rf.commit()
        print(f"wrote {rf.out / 'results'}/pruning_mnist_tradeoff{tag}.json")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# flag → PruningSettings field, for the forms whose defaults are not the MNIST ones (lenet5: only flags given)
FLAG_FIELD = {"price": "price", "eta_theta": "eta_theta", "estimator": "estimator", "flip_samples": "flip_samples",
              "warmup": "warmup_epochs", "eps": "eps", "sigma0": "sigma0", "strength": "strength", "lr": "lr",
              "batch_size": "batch_size", "price_on": "price_on", "lr_step": "lr_step", "lr_decay": "lr_decay",
              "polish": "polish_epochs", "precondition": "precondition", "estimate_every": "estimate_every",
              "cv_every": "cv_every", "finetune": "finetune_epochs", "theta_margin": "theta_margin",
              "eta_power": "eta_power", "eta_tau": "eta_tau", "epochs": "epochs", "price_balance": "price_balance"}


def run_lenet5(args):
    """LeNet-5-Caffe on MNIST with gates on the filters (pruning.md §6): :data:`LENET5_SETTINGS` with the flags
    given on top. One start × seed × scale: the headline run and the dense net with the same epochs
    (pruning_lenet5.json, θ and width plots); more: the robustness grid (pruning_lenet5_grid<TAG>.json)."""
    from ..experiments.pruning import LENET5_REFERENCE, LENET5_SETTINGS, lenet5_run, mnist_images, \
        plot_theta_trajectories, plot_widths
    from ..data import load_mnist
    s_all = _settings(args)
    s = {FLAG_FIELD[k]: s_all[FLAG_FIELD[k]] for k in FLAG_FIELD if given(args, k) or (
        k == "price" and given(args, "gamma"))}
    seeds = args.seeds if given(args, "seeds") else [args.seed]
    scales = args.scales if given(args, "scales") else [1.0]
    starts = args.starts
    if args.quick:
        s.setdefault("epochs", 2)
        s.setdefault("warmup_epochs", 1)
    grid = len(seeds) * len(scales) * len(starts) > 1
    if grid:
        refuse_unused(args, ["dense"], "for a grid (more than one start, seed or scale): no dense reference is run")
    st = LENET5_SETTINGS.replace(**s)
    with _folder(args) as rf:
        res, fig = rf.stage_dir("results"), rf.stage_dir("figures")
        d = load_mnist(n_train=1000 if args.quick else args.n_train, n_test=500 if args.quick else args.n_test,
                       data_dir=args.data_dir)
        data = mnist_images(data=d)
        fg = bool(args.feature_gates)
        tag = ("_quick" if args.quick else "") + ("_features" if fg else "") + args.tag
        cmd = "python -m minigrow reproduce pruning lenet5" + (f" --n-train {args.n_train}" if args.n_train else "")
        cmd += " --feature-gates" if fg else ""
        cmd += "".join(
            f" --{k.replace('_', '-')} {s_all[FLAG_FIELD[k]]}" for k in FLAG_FIELD
            if given(args, k) and k not in ("price", "precondition"))
        if given(args, "precondition"):
            cmd += " --precondition" if args.precondition else " --no-precondition"
        if given(args, "price"):
            cmd += " --price " + ",".join(map(str, np.atleast_1d(args.price)))
        if grid:
            cmd += (" --starts " + ",".join("-".join(map(str, h)) for h in starts)
                    + f" --seeds {','.join(map(str, seeds))} --scales {','.join(map(str, scales))}")
        cmd += (" --quick" if args.quick else "") + (f" --tag {args.tag}" if args.tag else "") + (
            "" if args.dense or grid else " --no-dense")
        rows = []
        t0 = time.perf_counter()
        for h in starts:
            for sc in scales:
                for sd in seeds:
                    r = lenet5_run(h, seed=sd, scale=sc, data=_as_data(data), progress=not args.no_progress,
                                   feature_gates=fg, **st.as_dict())
                    rows.append(r)
                    print(f"start {'-'.join(map(str, h))} scale {sc} seed {sd}: widths {r['widths']}, test error "
                          f"{100 * r['test_err']:.2f} %, θ binary {r['theta_binary_frac']:.3f} (before any rounding), "
                          f"{r['n_params']:,} parameters, {r['macs']:,} MACs/image, {r['seconds']:.0f} s", flush=True)
        keys = ("start", "seed", "scale", "widths", "test_err", "theta_binary_frac", "theta_near_binary_frac",
                "theta_binary_per_epoch", "widths_per_epoch", "n_params", "macs", "seconds", "epoch_seconds")
        out = {"command": cmd, "settings": st.as_dict(), "n_train": int(len(data[1])), "n_test": int(len(data[3])),
               **({"feature_gates": True} if fg else {}),
               "reference": [{"name": n, "widths": list(w), "test_err_pct": e, "flops": f}
                             for n, w, e, f in LENET5_REFERENCE],
               "rows": [{k: r[k] for k in keys} for r in rows], "seconds": time.perf_counter() - t0}
        if not grid:
            r = rows[0]
            out["history"] = r["history"]
            out["events"] = r["trainer"].history.events
        if not grid and args.dense:
            dense = lenet5_run(starts[0], seed=seeds[0], scale=scales[0], data=_as_data(data), dense=True,
                               progress=not args.no_progress, **st.as_dict())
            out["dense"] = {k: dense[k] for k in ("test_err", "n_params", "macs", "seconds", "epoch_seconds")}
            out["wall_time_ratio"] = r["seconds"] / dense["seconds"]
            print(f"dense : test error {100 * dense['test_err']:.2f} %, {dense['n_params']:,} parameters, "
                  f"{dense['macs']:,} MACs/image, {dense['seconds']:.0f} s; pruned/dense wall time "
                  f"{out['wall_time_ratio']:.2f}", flush=True)
        name = f"pruning_lenet5{'_grid' if grid else ''}{tag}"
        write_json(res / f"{name}.json", out)
        if not args.no_plots:
            if not grid:
                spe = int(np.ceil(len(data[1]) / st.batch_size))
                plot_theta_trajectories(rows[0]["trainer"].theta_trace, fig / f"{name}_theta.png",
                                        steps_per_epoch=spe, title="θ trajectories, LeNet-5-Caffe (conv1 filters, "
                                                                   + ("flattened features" if fg else "conv2 filters")
                                                                   + ", units of the 500-wide dense layer)")
            # the tables' conv1, conv2 (filters present) and fc2 (units of the 500-wide dense layer) per epoch
            plot_widths([(f"{'-'.join(map(str, r['start']))} ×{r['scale']} s{r['seed']}",
                          [[w[0], w[1], w[3]] for w in r["widths_per_epoch"]]) for r in rows],
                        fig / f"{name}_widths.png", title="LeNet-5-Caffe: conv1 filters, conv2 filters, fc2 units")
        rf.commit()
        print(f"wrote {rf.out / 'results'}/{name}.json")
    return 0


def _as_data(images):
    """(X_train, y_train, X_test, y_test) images → the record :func:`lenet5_run` reads as ``data``."""
    from types import SimpleNamespace
    Xtr, ytr, Xte, yte = images
    return SimpleNamespace(X_train=Xtr, y_train=ytr, X_test=Xte, y_test=yte)


# ----------------------------------------------------------------------------------------------------------------
def demo(out_dir, seed, quick, progress, plots=True):
    """``python -m minigrow demo`` part: the teacher-student toy and a short MNIST pruning run."""
    from ..experiments.pruning import MNIST_SETTINGS, OLD_SETTINGS, mnist_run, plot_theta_trajectories, plot_widths
    from ..experiments.pruning import teacher_student
    out_dir = Path(out_dir)
    toy = [teacher_student(k=3, width=w, seed=seed) for w in ((12,) if quick else (6, 12, 24))]
    if plots:
        plot_widths([(f"width {r['width']}", [[w] for w in r["widths"]]) for r in toy],
                    out_dir / "pruning_toy_widths.png", title="teacher-student, teacher k = 3")
    drawn = ["pruning_toy_widths.png"] if plots else []
    finals = [r["final_width"] for r in toy]
    if quick:
        # A few seconds for the tests: the earlier step-by-step settings (OLD_SETTINGS) on 500 images, with the same
        # price per unit and sample and the same θ movement per epoch as at N = 60000.
        n_train, epochs = 500, 2
        settings = OLD_SETTINGS.replace(epochs=epochs, warmup_epochs=1, price=0.2 * n_train / 60000,
                                        eta_theta=0.5 * 60000 / n_train, prune_every=20).as_dict()
    else:
        # The headline run of docs/pruning.md (``python -m minigrow reproduce pruning mnist``), ~27 s on 2 cores.
        n_train, epochs = 60000, MNIST_SETTINGS.epochs
        settings = MNIST_SETTINGS.as_dict()
    r = mnist_run((300, 100), seed=seed, n_train=n_train, n_test=10000, progress=progress, **settings)
    spe = int(np.ceil(n_train / 100))
    if plots:
        plot_theta_trajectories(r["trainer"].theta_trace, out_dir / "pruning_theta.png", steps_per_epoch=spe,
                                title=f"θ, MNIST {n_train} images")
        plot_widths([("784-300-100-10", [e["widths"] for e in r["history"]])], out_dir / "pruning_widths.png")
        drawn += ["pruning_theta.png", "pruning_widths.png"]
    return {"summary": f"toy (teacher k=3): students {'/'.join(str(r['width']) for r in toy)} end at widths "
                       f"{finals}; MNIST ({n_train} images, "
                       f"{epochs} epochs) 300-100 → {'-'.join(map(str, r['widths']))}, test error "
                       f"{100 * r['test_err']:.2f} %, θ binary {r['theta_binary_frac']:.2f}"
                       + ("" if r["theta_binary_before_rounding"] is None else
                          f" ({r['theta_binary_before_rounding']:.2f} before the final rounding)"),
            "plots": drawn, "widths": r["widths"], "test_err": r["test_err"]}
