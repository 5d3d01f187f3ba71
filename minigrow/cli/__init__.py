"""``python -m minigrow``: the command line.

Each subcommand lives in its own module under ``minigrow.cli`` and exposes ``register(subparsers)``.

Errors (docs/reliability.md):

* bad input — an argparse error, or a ``ValueError``/``TypeError``/``OSError`` (missing or corrupt file …) raised
  by the library — prints ONE line ``minigrow: error: …`` on stderr and exits with status 2, no traceback;
* a diverging run (:class:`~minigrow.train.TrainingDiverged`) prints one line and exits with status 3 (the
  subcommand saves the last finite model first when it can);
* Ctrl-C exits with status 130. Set ``MINIGROW_DEBUG=1`` to get the traceback instead.

``args.explicit`` (set by :func:`main`) is the set of option names given on the command line, so that a command can
tell ``--lr 0.001`` from the default 0.001 (a flag that contradicts a checkpoint, a flag without effect).
``--threads N`` pins the BLAS thread count with threadpoolctl (optional; refused with one line without it).

Plots need matplotlib (optional, ``pip install 'minigrow[plot]'``): without it every command that plots runs with
``--no-plots`` and says so once on stderr. An old flag spelling still accepted prints one deprecation line.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys


# Subcommand modules, in the order --help lists them.
COMMANDS = ["train", "demo", "insert", "bundles", "prune", "reproduce", "grade", "compare"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``minigrow: error: <command>: <message> (see --help)``, exit status 2."""

    def error(self, message):
        cmd = self.prog.replace("python -m minigrow", "").strip()
        where = f"{cmd}: " if cmd else ""
        hint = f"python -m minigrow {cmd} --help".replace("  ", " ")
        self.exit(2, f"minigrow: error: {where}{message} (see {hint})\n")


def build_parser():
    parser = ArgumentParser(
        prog="python -m minigrow",
        description="minigrow: networks that change their architecture while they train (NumPy, from scratch).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def _one_line(exc):
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__


def explicit_options(argv):
    """The ``dest`` names of the options given in ``argv`` (defaults suppressed in a second parse)."""
    parser = build_parser()
    stack, options = [parser], set()
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            elif action.option_strings and action.dest != "help":
                action.default = argparse.SUPPRESS
                options.add(action.dest)
        p._defaults.clear()
    ns = parser.parse_args(argv)
    return set(vars(ns)) & options


def _thread_limit(args):
    """A context that pins the BLAS threads to ``--threads N`` (threadpoolctl), or does nothing."""
    import contextlib
    n = getattr(args, "threads", None)
    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise ValueError("--threads: needs the optional package threadpoolctl (pip install 'minigrow[threads]'); "
                         "NumPy's BLAS cannot be re-pinned after import without it — or set OPENBLAS_NUM_THREADS/"
                         "OMP_NUM_THREADS/MKL_NUM_THREADS before starting Python") from None
    return threadpool_limits(limits=n, user_api="blas")


def _plots_available(args):
    """``--no-plots`` unless matplotlib can be imported; one note on stderr when plots are skipped for that."""
    if not hasattr(args, "no_plots") or args.no_plots:
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        args.no_plots = True
        print("minigrow: note: matplotlib is not installed, so no plots are drawn (everything else is written); "
              "for the plots: pip install 'minigrow[plot]'", file=sys.stderr)


def main(argv=None):
    """Run the command line; returns the exit status (0 ok, 2 bad input, 3 diverged, 130 interrupted)."""
    from ..train import TrainingDiverged
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:           # --help (0) or an argparse error (2, already printed on one line)
        return exc.code if isinstance(exc.code, int) else 2
    debug = os.environ.get("MINIGROW_DEBUG") == "1"
    args.explicit = explicit_options(sys.argv[1:] if argv is None else argv)
    _plots_available(args)
    try:
        with _thread_limit(args):
            status = args.func(args) or 0
        for old, new in dict.fromkeys(getattr(args, "notes", None) or []):     # after the work: errors stay one line
            print(f"minigrow: note: {old} is deprecated and will be removed in the next release; use {new}",
                  file=sys.stderr)
        return status
    except TrainingDiverged as exc:
        if debug:
            raise
        print(f"minigrow: error: {_one_line(exc)}", file=sys.stderr)
        return 3
    except (ValueError, TypeError, OSError) as exc:      # OSError: missing file, permission, disk full …
        if debug:
            raise
        print(f"minigrow: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        if debug:
            raise
        print(f"minigrow: error: out of memory{': ' + _one_line(exc) if str(exc) else ''} — use smaller sizes "
              f"(--hidden, --n-train, --batch-size …)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minigrow: interrupted", file=sys.stderr)
        return 130
