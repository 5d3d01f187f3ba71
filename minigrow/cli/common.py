"""Arguments and helpers shared by the subcommands."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data import load_fashion_mnist, load_mnist, two_spirals
from ..output import write_json  # noqa: F401  (re-used by the subcommands)


def int_list(text):
    """'300,100' → [300, 100] (argparse type)."""
    import argparse
    try:
        vals = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 300,100, got {text!r}")
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers like 300,100, got {text!r}")
    return vals


def _number_type(convert, ok, want, doc):
    """An argparse type: ``convert`` the text, then require ``ok(value)`` (else "expected {want}")."""
    import argparse
    kind = "an integer" if convert is int else "a number"

    def parse(text):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
        return v

    parse.__doc__ = doc
    return parse


positive_float = _number_type(float, lambda v: np.isfinite(v) and v > 0, "a number > 0", "a finite number > 0")
nonneg_float = _number_type(float, lambda v: np.isfinite(v) and v >= 0, "a finite number >= 0",
                            "a finite number >= 0, e.g. --weight-decay")
unit_float = _number_type(float, lambda v: 0 <= v < 1, "a number in [0, 1)", "a number in [0, 1), e.g. --momentum")
positive_int = _number_type(int, lambda v: v >= 1, "an integer >= 1", "an integer >= 1")
nonneg_int = _number_type(int, lambda v: v >= 0, "an integer >= 0", "an integer >= 0")


def add_data_args(p, default="spirals"):
    p.add_argument("--data", choices=["spirals", "mnist", "fashion"], default=default,
                   help=f"data set (default {default}); mnist is the bundled data/mnist.npz")
    p.add_argument("--n-train", type=positive_int, default=None, help="use the first N training samples")
    p.add_argument("--n-test", type=positive_int, default=None, help="use the first N test samples")


def add_run_args(p, out_default):
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--out", type=Path, default=Path(out_default), help=f"output folder (default {out_default})")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--no-plots", action="store_true", help="skip the plots (no matplotlib needed)")


def add_checkpoint_args(p):
    """``--checkpoint-every N`` and ``--resume PATH`` (docs/reliability.md)."""
    p.add_argument("--checkpoint-every", type=nonneg_int, default=0, metavar="N",
                   help="write OUT/checkpoints/epoch-NNNN.npz every N epochs (0 = never, the default)")
    p.add_argument("--resume", type=Path, default=None, metavar="PATH",
                   help="continue the run saved in a checkpoint file (or the newest one in a folder) up to "
                        "--epochs in all; the run's settings come from the checkpoint")


def load_data(args, dtype=np.float32):
    """Dataset for ``--data`` with ``--n-train``/``--n-test`` subsets."""
    if args.data == "spirals":
        d = two_spirals(rng=args.seed, dtype=dtype)
        for flag, n, key in (("--n-train", args.n_train, "X_train"), ("--n-test", args.n_test, "X_test")):
            if n and n > d[key].shape[0]:
                raise ValueError(f"{flag}: expected at most {d[key].shape[0]} (the size of the spirals "
                                 f"{key[2:]} split), got {n}")
        if args.n_train:
            d["X_train"], d["y_train"] = d["X_train"][:args.n_train], d["y_train"][:args.n_train]
        if args.n_test:
            d["X_test"], d["y_test"] = d["X_test"][:args.n_test], d["y_test"][:args.n_test]
        return d
    loader = load_mnist if args.data == "mnist" else load_fashion_mnist
    return loader(n_train=args.n_train, n_test=args.n_test, dtype=dtype)






class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def settings_from_checkpoint(args, command, run_args):
    """On ``--resume``: load the checkpoint and take the run's settings (``run_args``) from it.

    A flag given explicitly with a value other than the checkpoint's is an error: resuming keeps the original
    settings. Returns the loaded checkpoint (``minigrow.checkpoint.load_checkpoint``).
    """
    from ..checkpoint import load_checkpoint
    from . import build_parser
    ck = load_checkpoint(args.resume)
    saved = ck["user"].get("args")
    if not isinstance(saved, dict) or ck["user"].get("command") != command:
        raise ValueError(f"--resume: {ck['path']} was not written by 'python -m minigrow {command}'")
    defaults = build_parser().parse_args([command])
    for key in run_args:
        given, default = getattr(args, key), getattr(defaults, key)
        if given != default and given != saved.get(key):
            raise ValueError(f"--{key.replace('_', '-')}: the checkpoint's run used {saved.get(key)!r}, got "
                             f"{given!r}; resuming keeps the original settings (drop the flag)")
    for key in run_args:
        setattr(args, key, saved.get(key, getattr(defaults, key)))   # keys added later: their defaults
    return ck
