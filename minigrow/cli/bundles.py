"""``python -m minigrow bundles``: conflicting bundles — measure, auto-tune, lesion, reproduce.

Examples::

    python -m minigrow bundles measure --arch plain --depth 50 --width 10 --epochs 1
    python -m minigrow bundles measure --model runs/train/model.npz
    python -m minigrow bundles autotune --counts 75 --block-widths 32 --epochs 10
    python -m minigrow bundles autotune --counts 3,12,41,3 --block-widths 64,32,16,8 --rule all_types
    python -m minigrow bundles lesion --blocks 30 --width 32 --hidden 4
    python -m minigrow bundles reproduce grid          # docs/results/bundles_grid.json + figures
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..experiments.bundles import demo  # noqa: F401  (the bundles part of `python -m minigrow demo`)
from ..methods.bundles import AutotuneSettings, BundleSettings
from .common import int_list, nonneg_int, positive_float, positive_int

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
    a.add_argument("--check-epochs", type=nonneg_int, default=A.check_epochs)
    a.add_argument("--max-rounds", type=positive_int, default=A.max_rounds)
    common(a)
    a.set_defaults(func=run_autotune)

    le = s.add_parser("lesion", help="drop conflicting / non-conflicting / random blocks of a trained ResNet")
    le.add_argument("--blocks", type=positive_int, default=30)
    le.add_argument("--width", type=positive_int, default=32)
    le.add_argument("--hidden", type=positive_int, default=4, help="hidden width of each residual branch")
    le.add_argument("--epochs", type=positive_int, default=3)
    le.add_argument("--repeats", type=positive_int, default=10)
    le.add_argument("--ks", type=int_list, default=[1, 2, 4, 8, 12, 16])
    common(le)
    le.set_defaults(func=run_lesion)

    r = s.add_parser("reproduce", help="the reproductions of docs/bundles.md (writes docs/results, docs/figures)")
    r.add_argument("what", choices=["grid", "autotune", "autotune-blocks", "lesion"])
    r.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    r.add_argument("--seed", type=nonneg_int, default=0)
    r.add_argument("--out", type=Path, default=None, help="folder for JSON and PNG (default docs/results, "
                                                          "docs/figures of the repository)")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=run_reproduce)


def _data(args):
    from ..data import load_mnist
    return load_mnist(n_train=args.n_train, n_test=args.n_test)


def run_measure(args):
    from ..experiments.bundles import measure
    from ..methods.bundles import format_report
    out = measure(model_path=args.model, arch=args.arch, depth=args.depth, width=args.width, epochs=args.epochs,
                  n_train=args.n_train, n_test=args.n_test, n_eval=args.n_eval, lr=args.lr,
                  batch_size=args.batch_size, seed=args.seed, exact=args.exact, out_dir=args.out,
                  progress=not args.no_progress)
    print(f"{out['model']}: bundles on the first {out['n_eval']} training images "
          f"({'exact' if args.exact else 'float32 grid'}, η={args.lr}, B={args.batch_size}); "
          f"H(Y) = {out['label_entropy']:.4f}; test accuracy {out['test_acc']:.4f}")
    print(format_report(out["report"]))
    print(f"wrote {args.out}/bundles.json")
    return 0


def run_autotune(args):
    from ..experiments.bundles import autotune_mnist
    if len(args.counts) != len(args.widths):
        raise ValueError(f"--block-widths: expected one width per block type ({len(args.counts)}), got {args.widths}")
    if args.lr != A_DEFAULT.lr or args.batch_size != A_DEFAULT.batch_size:
        raise ValueError(f"--lr/--batch-size: the auto-tune command uses the reference η = {A_DEFAULT.lr}, "
                         f"B = {A_DEFAULT.batch_size}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = autotune_mnist(args.counts, args.widths, args.rule, args.n_train, args.n_test, args.epochs, args.n_eval,
                         args.max_rounds, args.seed, out_dir=args.out, fig_dir=args.out,
                         progress=not args.no_progress)
    last = out["rounds"][-1]
    print(f"auto-tune {args.counts} → {out['counts']} in {len(out['rounds'])} round(s), "
          f"{'converged' if out['converged'] else 'NOT converged'}; final test accuracy "
          f"{last.get('test_acc', float('nan')):.4f}; wrote {args.out}/bundles_autotune.json, .png")
    return 0


def run_lesion(args):
    from ..experiments.bundles import lesion_mnist
    args.out.mkdir(parents=True, exist_ok=True)
    res = lesion_mnist(args.width, args.blocks, args.hidden, args.n_train, args.n_test, args.epochs, args.n_eval,
                       args.repeats, args.ks, args.seed, out_dir=args.out, fig_dir=args.out,
                       progress=not args.no_progress)
    print(f"{len(res['conflicting_blocks'])}/{res['n_blocks']} conflicting blocks; base test accuracy "
          f"{res['base_test_acc']:.4f}; wrote {args.out}/bundles_lesion.json, .png")
    return 0


def run_reproduce(args):
    from ..experiments import bundles as ex
    res_dir = args.out or ex.REPO_ROOT / "docs" / "results"
    fig_dir = args.out or ex.REPO_ROOT / "docs" / "figures"
    prog = not args.no_progress
    if args.what == "grid":
        ex.depth_width_grid(seed=args.seed, out_dir=res_dir, fig_dir=fig_dir, quick=args.quick, progress=prog)
    elif args.what == "autotune":
        ex.autotune_mnist(seed=args.seed, out_dir=res_dir, fig_dir=fig_dir, quick=args.quick, progress=prog)
    elif args.what == "autotune-blocks":
        ex.autotune_mnist(**ex.AUTOTUNE_BLOCKS, seed=args.seed, out_dir=res_dir, fig_dir=fig_dir, quick=args.quick,
                          progress=prog)
    else:
        ex.lesion_mnist(seed=args.seed, out_dir=res_dir, fig_dir=fig_dir, quick=args.quick, progress=prog)
    print(f"wrote {res_dir}/bundles_*.json and {fig_dir}/bundles_*.png", file=sys.stderr)
    return 0
