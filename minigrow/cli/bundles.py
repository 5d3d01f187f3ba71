"""``python -m minigrow bundles``: conflicting bundles — measure, auto-tune, lesion, reproduce.

Examples::

    python -m minigrow bundles measure --arch plain --depth 50 --width 10 --epochs 1
    python -m minigrow bundles measure --model runs/train/model.npz
    python -m minigrow bundles autotune --counts 75 --block-widths 32 --epochs 10
    python -m minigrow bundles autotune --counts 3,12,41,3 --block-widths 64,32,16,8 --rule all_types
    python -m minigrow bundles lesion --blocks 30 --width 32 --hidden 4
    python -m minigrow reproduce bundles grid --jobs 2  # runs/reproduce/bundles/grid/ (old: bundles reproduce grid)
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..experiments.bundles import demo  # noqa: F401  (the bundles part of `python -m minigrow demo`)
from ..methods.bundles import AutotuneSettings, BundleSettings
from .common import (RunFolder, add_into_docs_arg, add_sweep_args, add_threads_arg, check_input_file, deprecated,
                     given, int_list, nonneg_int, positive_float, positive_int, refuse_unused, reproduction_folder,
                     sweep_kwargs, write_json)

A_DEFAULT = AutotuneSettings()


def register(sub):
    B, A = BundleSettings(), AutotuneSettings()      # the library's defaults are the command's
    p = sub.add_parser("bundles", help="conflicting bundles: measure, auto-tune, lesion, reproduce",
                       description="Conflicting bundles (Peer et al. 2021) on MNIST subsets.")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True

    def common(q, n_train=10000):
        q.add_argument("--n-train", type=positive_int, default=n_train, help="first N MNIST training images")
        q.add_argument("--n-test", type=positive_int, default=2000)
        q.add_argument("--n-eval", type=positive_int, default=B.n_eval, help="bundles on the first N training images")
        q.add_argument("--lr", type=positive_float, default=B.lr, help="Adam η (also the η of the bundle grid)")
        q.add_argument("--batch-size", type=positive_int, default=B.batch_size, help="B (also the B of the bundle grid)")
        q.add_argument("--seed", type=nonneg_int, default=0)
        q.add_argument("--out", type=Path, default=Path("runs/bundles"))
        q.add_argument("--no-progress", action="store_true")
        add_threads_arg(q)

    def plots(q):
        q.add_argument("--no-plots", action="store_true", help="skip the plots (no matplotlib needed)")

    m = s.add_parser("measure", help="bundles of every hidden layer of a network (trained here or loaded)")
    m.add_argument("--model", type=Path, default=None, help="a model saved by minigrow (.npz); else build one")
    m.add_argument("--arch", choices=["plain", "residual"], default="plain")
    m.add_argument("--depth", type=positive_int, default=20)
    m.add_argument("--width", type=positive_int, default=25)
    m.add_argument("--epochs", type=nonneg_int, default=1, help="0 = measure at initialisation")
    m.add_argument("--exact", action="store_true", help="exact equality instead of the float32 grid")
    common(m)
    m.set_defaults(func=run_measure)

    a = s.add_parser("autotune", help="remove conflicting blocks and restart until training has no conflict")
    a.add_argument("--counts", type=int_list, default=[75], help="blocks per type, e.g. 3,12,41,3")
    a.add_argument("--block-widths", "--widths", dest="widths", type=int_list, default=[32],
                   help="width of each block type (--widths: the older spelling)")
    a.add_argument("--rule", choices=["first_type", "all_types"], default=A.rule)
    a.add_argument("--epochs", type=positive_int, default=A.epochs)
    a.add_argument("--max-rounds", type=positive_int, default=A.max_rounds)
    common(a)
    plots(a)
    a.set_defaults(func=run_autotune)

    le = s.add_parser("lesion", help="drop conflicting / non-conflicting / random blocks of a trained ResNet")
    le.add_argument("--blocks", type=positive_int, default=30)
    le.add_argument("--width", type=positive_int, default=32)
    le.add_argument("--hidden", type=positive_int, default=4, help="hidden width of each residual branch")
    le.add_argument("--epochs", type=positive_int, default=3)
    le.add_argument("--repeats", type=positive_int, default=10)
    le.add_argument("--ks", type=int_list, default=[1, 2, 4, 8, 12, 16])
    common(le)
    plots(le)
    le.set_defaults(func=run_lesion)

    r = s.add_parser("reproduce", help="deprecated: use 'python -m minigrow reproduce bundles …'")
    add_reproduce_args(r)


WHAT = ["grid", "autotune", "autotune-blocks", "lesion",
        "conv-grid", "conv-autotune", "conv-autotune-122", "conv-lesion"]   # conv-*: docs/bundles.md, conv section


def add_reproduce_args(r):
    """The flags of ``python -m minigrow reproduce bundles WHAT`` (and of the old ``bundles reproduce WHAT``)."""
    r.add_argument("what", choices=WHAT)
    r.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    r.add_argument("--seed", type=nonneg_int, default=0)
    r.add_argument("--out", type=Path, default=None,
                   help="output folder (default runs/reproduce/bundles/WHAT; with --quick runs/quick/bundles)")
    add_into_docs_arg(r)
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--no-plots", action="store_true", help="skip the plots (no matplotlib needed)")
    add_sweep_args(r)
    add_threads_arg(r)
    r.set_defaults(func=run_reproduce)


def _data(args):
    from ..data import load_mnist
    return load_mnist(n_train=args.n_train, n_test=args.n_test)


def run_measure(args):
    from ..methods.bundles import format_report, label_entropy, layer_report
    from ..experiments.bundles import make_net
    from ..io import load, save
    from ..optim import Adam
    from ..train import Trainer, TrainingDiverged
    if args.model is not None:
        refuse_unused(args, ["arch", "depth", "width", "epochs"], "with --model (the saved network is measured)")
        check_input_file("--model", args.model)
    with RunFolder(args.out, "bundles measure", ["bundles.json", "history.json", "model.npz"]) as rf:
        d = _data(args)
        if args.model is not None:
            model = load(args.model)["model"]
            what = str(args.model)
        else:
            model = make_net(args.arch, args.depth, args.width, args.seed)
            what = f"{args.arch} depth {args.depth} width {args.width}"
            if args.epochs:
                tr = Trainer(model, "ce", Adam(args.lr), batch_size=args.batch_size, rng=args.seed,
                             progress=not args.no_progress)
                try:
                    tr.fit(d.X_train, d.y_train, args.epochs, d.X_test, d.y_test)
                except TrainingDiverged as exc:
                    write_json(rf.stage("history.json"), tr.history.as_dict())
                    save(rf.stage("model.npz"), model)                   # the last finite state
                    rf.commit(status="diverged", info={"error": str(exc)})
                    print(f"wrote the last finite model to {args.out}/model.npz and history.json", flush=True)
                    raise
        n = min(args.n_eval, d.X_train.shape[0])
        Xe, ye = d.X_train[:n], d.y_train[:n]
        rep = layer_report(model, Xe, ye, lr=args.lr, batch_size=args.batch_size, n_classes=10,
                           grid=not args.exact)
        acc = float((model.predict(d.X_test) == d.y_test).mean())
        print(f"{what}: bundles on the first {n} training images ({'exact' if args.exact else 'float32 grid'}, "
              f"η={args.lr}, B={args.batch_size}); H(Y) = {label_entropy(ye):.4f}; test accuracy {acc:.4f}")
        print(format_report(rep))
        write_json(rf.stage("bundles.json"), {"model": what, "test_acc": acc, "n_eval": n,
                                              "layers": [r.as_dict() for r in rep]})
        rf.commit()
    print(f"wrote {args.out}/bundles.json")
    return 0


def run_autotune(args):
    from ..experiments.bundles import autotune_mnist
    if len(args.counts) != len(args.widths):
        raise ValueError(f"--block-widths: expected one width per block type ({len(args.counts)}), got {args.widths}")
    if given(args, "lr") or given(args, "batch_size") or \
            (args.lr, args.batch_size) != (A_DEFAULT.lr, A_DEFAULT.batch_size):
        raise ValueError(f"--lr/--batch-size: the auto-tune command uses the reference η = {A_DEFAULT.lr}, "
                         f"B = {A_DEFAULT.batch_size}; drop the flag")
    with RunFolder(args.out, "bundles autotune",
                   ["bundles_autotune.json"] + ([] if args.no_plots else ["bundles_autotune.png"])) as rf:
        out = autotune_mnist(args.counts, args.widths, args.rule, args.n_train, args.n_test, args.epochs,
                             args.n_eval, args.max_rounds, args.seed, out_dir=rf.stage(),
                             fig_dir=None if args.no_plots else rf.stage(),
                             progress=not args.no_progress)
        rf.commit()
    last = out["rounds"][-1]
    print(f"auto-tune {args.counts} → {out['counts']} in {len(out['rounds'])} round(s), "
          f"{'converged' if out['converged'] else 'NOT converged'}; final test accuracy "
          f"{last.get('test_acc', float('nan')):.4f}; wrote {args.out}/bundles_autotune.json"
          + ("" if args.no_plots else ", .png"))
    return 0


def run_lesion(args):
    from ..experiments.bundles import lesion_mnist
    if max(args.ks) > args.blocks:
        raise ValueError(f"--ks: expected numbers of blocks to drop <= --blocks {args.blocks}, got {args.ks}")
    with RunFolder(args.out, "bundles lesion",
                   ["bundles_lesion.json"] + ([] if args.no_plots else ["bundles_lesion.png"])) as rf:
        res = lesion_mnist(args.width, args.blocks, args.hidden, args.n_train, args.n_test, args.epochs,
                           args.n_eval, args.repeats, args.ks, args.seed, out_dir=rf.stage(),
                           fig_dir=None if args.no_plots else rf.stage(),
                           progress=not args.no_progress)
        rf.commit()
    print(f"{len(res['conflicting_blocks'])}/{res['n_blocks']} conflicting blocks; base test accuracy "
          f"{res['base_test_acc']:.4f}; wrote {args.out}/bundles_lesion.json" + ("" if args.no_plots else ", .png"))
    return 0


def run_reproduce(args):
    """docs/results/bundles_*.json and docs/figures/bundles_*.png with ``--into-docs``; otherwise one flat folder:
    ``--out``, default runs/reproduce/bundles/WHAT (``--quick``: runs/quick/bundles; never the committed results)."""
    from ..experiments import bundles as ex
    if getattr(args, "command", None) == "bundles":
        deprecated(args, f"'bundles reproduce {args.what}'", f"'python -m minigrow reproduce bundles {args.what}'")
    if args.what != "grid":
        refuse_unused(args, ["jobs", "scheduler"], f"for 'reproduce bundles {args.what}' (one run; only the grid "
                                                   f"is a sweep)")
    in_docs = args.into_docs                                 # docs/results + docs/figures; else one flat folder
    name = "bundles_" + args.what.replace("-", "_")
    figs = [] if args.no_plots else [name] + (["bundles_depth", "bundles_layers"] if args.what == "grid" else [])
    if args.what.startswith("conv-"):
        from ..experiments import bundles_conv as cx
        refuse_unused(args, ["seed"], f"for 'reproduce bundles {args.what}' (its seeds are in its settings, "
                                      f"minigrow/experiments/bundles_conv.py)")
        name = "bundles_conv_" + args.what[len("conv-"):].replace("-", "_")
        figs = [] if args.no_plots else [name]
    files = [("results/" if in_docs else "") + f"{name}.json"] + \
        [("figures/" if in_docs else "") + f"{f}.png" for f in figs]         # checked before the work starts
    rf, _ = reproduction_folder(args.out, args.quick, "bundles", files, into_docs=args.into_docs, method="bundles",
                                what=args.what)
    prog = not args.no_progress
    with rf:
        res_dir = rf.stage_dir("results") if in_docs else rf.stage()
        fig_dir = None if args.no_plots else rf.stage_dir("figures") if in_docs else rf.stage()
        if args.what in ("conv-grid", "conv-lesion"):
            (cx.conv_grid if args.what == "conv-grid" else cx.conv_lesion)(
                quick=args.quick, out_dir=res_dir, fig_dir=fig_dir, progress=prog)
        elif args.what.startswith("conv-autotune"):
            deep = {"blocks": [20, 20, 20], "name": "autotune_122"} if args.what == "conv-autotune-122" else {}
            cx.conv_autotune(quick=args.quick, out_dir=res_dir, fig_dir=fig_dir, progress=prog, **deep)
        elif args.what == "grid":
            ex.depth_width_grid(seed=args.seed, out_dir=res_dir, fig_dir=fig_dir, quick=args.quick, progress=prog,
                                **sweep_kwargs(args))
        elif args.what == "autotune":
            ex.autotune_mnist(seed=args.seed, out_dir=res_dir, fig_dir=fig_dir, quick=args.quick, progress=prog)
        elif args.what == "autotune-blocks":
            ex.autotune_mnist(**ex.AUTOTUNE_BLOCKS, seed=args.seed, out_dir=res_dir, fig_dir=fig_dir,
                              quick=args.quick, progress=prog)
        else:
            ex.lesion_mnist(seed=args.seed, out_dir=res_dir, fig_dir=fig_dir, quick=args.quick, progress=prog)
        rf.commit()
    where = (f"{rf.out}/results/{name}.json" + ("" if args.no_plots else f" and {rf.out}/figures/bundles_*.png")
             if in_docs else f"{rf.out}/{name}.json" + ("" if args.no_plots else ", .png"))
    print(f"wrote {where}", file=sys.stderr)
    return 0
