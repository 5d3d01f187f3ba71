"""``python -m minigrow``: the command line.

Each subcommand lives in its own module under ``minigrow.cli`` and exposes ``register(subparsers)``.

Errors (docs/reliability.md):

* bad input — an argparse error, or a ``ValueError``/``TypeError``/``OSError`` (missing or corrupt file …) raised
  by the library — prints ONE line ``minigrow: error: …`` on stderr and exits with status 2, no traceback;
* a diverging run (:class:`~minigrow.train.TrainingDiverged`) prints one line and exits with status 3 (the
  subcommand saves the last finite model first when it can);
* Ctrl-C exits with status 130. Set ``MINIGROW_DEBUG=1`` to get the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys


# Subcommand modules, in the order --help lists them.
COMMANDS = ["train", "demo", "insert", "bundles", "prune", "grade"]


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


def main(argv=None):
    """Run the command line; returns the exit status (0 ok, 2 bad input, 3 diverged, 130 interrupted)."""
    from ..train import TrainingDiverged
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:           # --help (0) or an argparse error (2, already printed on one line)
        return exc.code if isinstance(exc.code, int) else 2
    debug = os.environ.get("MINIGROW_DEBUG") == "1"
    try:
        return args.func(args) or 0
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
    except KeyboardInterrupt:
        print("minigrow: interrupted", file=sys.stderr)
        return 130
