"""``python -m minigrow insert``: train with sensitivity-based layer insertion (SensLI).

Examples::

    python -m minigrow insert                                  # spirals, ReLU FNN [5], insert at epoch 450/1850
    python -m minigrow insert --arch resnet --hidden 3,1 --lr 0.1 --activation tanh
    python -m minigrow insert --data mnist --n-train 10000 --hidden 50 --epochs 5,5,5 --optimizer adam \\
        --lr 0.01 --weight-decay 5e-3 --batch-size 100 --lr-step 5
    python -m minigrow reproduce sensli A --seeds 30 --jobs 2   # setting A of sensli.md §6 (old: insert --reproduce A)
    python -m minigrow insert --checkpoint-every 50 --out runs/a  # runs/a/checkpoints/epoch-NNNN.npz
    python -m minigrow insert --resume runs/a/checkpoints --out runs/a   # continue it, bit-identically

``--checkpoint-every N`` writes ``OUT/checkpoints/epoch-NNNN.npz`` (the newest two are kept; a checkpoint at a
phase boundary already holds the inserted layer); ``--resume PATH`` continues such a run to the end of its
schedule, bit-identically to an uninterrupted run. The settings of the run come from the checkpoint; a flag that
contradicts it is an error. A diverging run saves the last finite model to ``OUT/model.npz`` and exits with
status 3.
"""
from __future__ import annotations

import numpy as np

from ..experiments.sensli import build_model, demo, plot_run  # noqa: F401  (demo: part of `minigrow demo`)
from ..io import save
from ..methods.sensli import MODES, SensLISettings, sensli_train
from ..train import TrainingDiverged
from .common import (RunFolder, add_checkpoint_args, add_data_args, add_into_docs_arg, add_lr_schedule_args,
                     add_run_args, add_sweep_args, check_memory, deprecated, given, int_list, load_data, nonneg_float,
                     nonneg_int, positive_float, positive_int, refuse_unused, reproduction_folder,
                     settings_from_checkpoint, sweep_kwargs, write_json)

# The settings that define a run: stored in every checkpoint and taken from it on --resume.
RUN_ARGS = ["data", "n_train", "n_test", "arch", "hidden", "activation", "epochs", "optimizer", "lr", "weight_decay",
            "batch_size", "step_size", "gamma", "decrease", "mode", "position", "tau", "normalise", "form", "seed",
            "dtype"]


def register(sub):
    S = SensLISettings()                  # the defaults of the library are the defaults of the command
    p = sub.add_parser("insert", help="train with sensitivity-based layer insertion (SensLI)",
                       description="Train a small net, score every virtual layer by its shadow price, insert the "
                                   "best one, continue (Kreis et al. 2023). Or reproduce setting A-F.")
    add_data_args(p)
    p.add_argument("--arch", choices=["mlp", "resnet"], default="mlp")
    p.add_argument("--hidden", type=int_list, default=[5],
                   help="hidden widths of the mlp (default 5); for resnet WIDTH,BLOCKS (e.g. 3,1)")
    p.add_argument("--activation", choices=["relu", "leaky_relu", "tanh", "sigmoid"], default=None,
                   help="default relu (mlp) / tanh (resnet)")
    p.add_argument("--epochs", type=int_list, default=list(S.epochs),
                   help="epochs per phase: e0,e1,...; one insertion between phases (default %(default)s)")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default=S.optimizer)
    p.add_argument("--lr", type=positive_float, default=S.lr)
    p.add_argument("--weight-decay", type=nonneg_float, default=S.weight_decay)
    p.add_argument("--batch-size", type=nonneg_int, default=0, help="0 = full batch (default)")
    add_lr_schedule_args(p, S.step_size, S.gamma, dest_step="step_size", dest_decay="gamma")   # StepLR per phase
    p.add_argument("--decrease", type=positive_float, default=S.decrease, help="lr factor after an insertion")
    p.add_argument("--mode", choices=list(MODES), default=S.mode,
                   help="abs_max (SensLI), abs_min (control), fixed (--position), threshold (--tau)")
    p.add_argument("--position", type=nonneg_int, default=S.position)
    p.add_argument("--tau", type=float, default=S.tau,
                   help="threshold mode: insert only if max score > tau * mean score of the free weights")
    p.add_argument("--normalise", action="store_true", help="divide each score by the number of entries")
    p.add_argument("--form", choices=["auto", "identity", "residual"], default=S.form)
    p.add_argument("--reproduce", choices=list("ABCDEF"), default=None,
                   help="deprecated: use 'python -m minigrow reproduce sensli A-F'")
    p.add_argument("--seeds", type=positive_int, default=None, help="--reproduce: number of seeds")
    p.add_argument("--quick", action="store_true", help="--reproduce: tiny epochs (seconds), for tests")
    add_sweep_args(p)
    add_into_docs_arg(p)
    add_run_args(p, "runs/insert")
    add_checkpoint_args(p)
    p.set_defaults(func=run)


def _settings_from_checkpoint(args):
    """On --resume: the run's settings come from the checkpoint; an explicitly different flag is an error."""
    ck = settings_from_checkpoint(args, "insert", RUN_ARGS)
    return ck["path"]


# flags of one run, without effect with --reproduce (the setting fixes them)
ONE_RUN = ["data", "n_train", "n_test", "arch", "hidden", "activation", "epochs", "optimizer", "lr", "weight_decay",
           "batch_size", "step_size", "gamma", "decrease", "mode", "position", "tau", "normalise", "form", "seed",
           "dtype"]


def check_flags(args):
    """Flags that have no effect in the chosen mode are refused (not silently ignored)."""
    if args.reproduce:
        if args.checkpoint_every or args.resume is not None:
            raise ValueError("--checkpoint-every/--resume: not available with --reproduce (they apply to one run)")
        refuse_unused(args, ONE_RUN, "with --reproduce (the setting fixes it)")
        return
    refuse_unused(args, ["seeds", "quick", "jobs", "scheduler", "into_docs"], "without --reproduce")
    if args.mode != "fixed":
        refuse_unused(args, ["position"], f"with --mode {args.mode} (only --mode fixed uses it)")
    if args.mode != "threshold":
        refuse_unused(args, ["tau"], f"with --mode {args.mode} (only --mode threshold uses it)")
    if not args.step_size and given(args, "gamma"):
        raise ValueError("--lr-decay (old name --gamma): has no effect without --lr-step (old name --step-size); "
                         "it is the StepLR factor; drop it")
    if len(args.epochs) < 2:
        refuse_unused(args, ["mode", "position", "tau", "normalise", "form", "decrease"],
                      "with a single phase (--epochs E inserts nothing)")
    if args.mode == "fixed" and args.position is None:
        raise ValueError("--position: --mode fixed needs --position P")
    if args.mode == "threshold" and args.tau is None:
        raise ValueError("--tau: --mode threshold needs --tau T")
    if args.tau is not None and not np.isfinite(args.tau):
        raise ValueError(f"--tau: expected a finite number, got {args.tau}")


def run(args):
    if args.reproduce:
        check_flags(args)
        return run_reproduce(args)
    resume_path = _settings_from_checkpoint(args) if args.resume is not None else None
    check_flags(args)
    dtype = np.dtype(args.dtype)
    files = ["history.json", "model.npz"] + ([] if args.no_plots else ["loss.png"])
    with RunFolder(args.out, "insert", files, checkpoints=resume_path or "new") as rf:
        d = load_data(args, dtype)
        n_out = int(max(d.y_train.max(), d.y_test.max())) + 1
        if args.arch == "mlp":
            check_memory(args, [d.X_train.shape[1], *args.hidden, n_out], d, dtype)
        # (on --resume: replaced by the saved layers)
        model = build_model(args.arch, args.hidden, args.activation, d.X_train.shape[1], n_out, args.seed, dtype)
        print(model.summary() if resume_path is None else f"resuming {resume_path}")
        out = args.out
        try:
            settings = SensLISettings(epochs=tuple(args.epochs), mode=args.mode, position=args.position,
                                      tau=args.tau, optimizer=args.optimizer, lr=args.lr,
                                      weight_decay=args.weight_decay, batch_size=args.batch_size or None,
                                      step_size=args.step_size, gamma=args.gamma, decrease=args.decrease,
                                      form=args.form, normalise=args.normalise)
            r = sensli_train(model, d.X_train, d.y_train, None, d.X_test, d.y_test, settings=settings,
                             rng=np.random.default_rng(args.seed), progress=not args.no_progress,
                             checkpoint_dir=out / "checkpoints" if args.checkpoint_every else None,
                             checkpoint_every=max(args.checkpoint_every, 1), resume=resume_path,
                             checkpoint_meta={"command": "insert",
                                              "args": {k: getattr(args, k) for k in RUN_ARGS}})
        except TrainingDiverged as exc:
            run_so_far = getattr(exc, "run", None)
            if run_so_far is not None:
                write_json(rf.stage("history.json"), {**run_so_far.as_dict(),
                                                      "trainer": run_so_far.trainer.history.as_dict()})
            save(rf.stage("model.npz"), model)                          # the last finite state
            rf.commit(status="diverged", info={"error": str(exc)})
            print(f"wrote the last finite model to {out}/model.npz and history.json", flush=True)
            raise
        write_json(rf.stage("history.json"), r.as_dict())
        save(rf.stage("model.npz"), model, meta={"sensli": {"epochs": args.epochs, "mode": args.mode}})
        print(model.summary())
        for e in r.insertions:
            print(f"epoch {e['epoch']}: scores {np.round(e['scores'], 6).tolist()} -> "
                  f"{'inserted at p=' + str(e['chosen']) if e['inserted'] else 'no insertion'}; "
                  f"loss {e['loss_before']:.5f} -> {e['loss_after']:.5f}; pass {e['macs']:,} MACs, "
                  f"{e['seconds']:.3f} s")
        for p in r.phases:
            print(f"phase {p['phase']}: {p['epochs']} epochs, {p['n_params']} params, {p['macs']:,} MACs, "
                  f"{p['seconds']:.2f} s, lr {p['lr_start']:.4g} -> {p['lr_end']:.4g}")
        print(f"final: train loss {r.train_loss[-1]:.4f}, test error {1 - r.test_acc[-1][1]:.4f}; training "
              f"{r.train_macs:,} MACs + sensitivity passes {r.sensitivity_macs:,} MACs")
        if not args.no_plots:
            plot_run(r, rf.stage("loss.png"), f"SensLI on {args.data}, {args.arch} {args.hidden}")
        rf.commit()
    print(f"wrote {out}/history.json, model.npz" + ("" if args.no_plots else ", loss.png") + ", manifest.json")
    return 0


def run_reproduce(args):
    """Setting ``args.reproduce`` (A–F) of sensli.md §6 into ``--out`` (default runs/reproduce/sensli; with
    ``--quick`` runs/quick/insert) or, with ``--into-docs``, the repository's docs/results and docs/figures."""
    from ..experiments.sensli import reproduce
    if getattr(args, "command", None) == "insert":
        deprecated(args, f"'insert --reproduce {args.reproduce}'",
                   f"'python -m minigrow reproduce sensli {args.reproduce}'")
    rf, _ = reproduction_folder(args.out, args.quick, "insert", default="runs/insert", into_docs=args.into_docs,
                                method="sensli", what=args.reproduce)
    with rf:
        s = reproduce(args.reproduce, seeds=args.seeds, quick=args.quick, out_dir=rf.stage(),
                      progress=not args.no_progress, plots=not args.no_plots, **sweep_kwargs(args))
        rf.commit()
    print_summary(s)
    print(f"wrote {rf.out}/results/sensli_{args.reproduce}.json" +
          ("" if args.no_plots else f", {rf.out}/figures/sensli_{args.reproduce}.png"))
    return 0


def print_summary(s):
    print(f"{s['title']} — {s['seeds']} seeds, {s['seconds']:.0f} s")
    for name, v in s["summary"].items():
        at = ", ".join(f"e{e}: {x['mean']:.4f}±{x['std']:.4f}" for e, x in v["loss_at"].items())
        wins = v.get("wins_vs_small")
        w = "" if wins is None else " | beats no-insertion in " + ", ".join(f"e{e}: {f:.0%}" for e, f in wins.items())
        print(f"  {name:<8} loss {at} | test error {v['test_error']['mean']:.3f} | "
              f"{v['train_macs'] + v['sensitivity_macs']:.3g} MACs{w}")
