"""``python -m minigrow``: the command line.

Each subcommand lives in its own module under ``minigrow.cli`` and exposes ``register(subparsers)``.
Bad input prints one line ``minigrow: error: …`` and exits with status 2 (no traceback).
"""
from __future__ import annotations

import argparse
import importlib
import sys


# Subcommand modules, in the order --help lists them.
COMMANDS = ["train", "demo"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m minigrow",
        description="minigrow: networks that change their architecture while they train (NumPy, from scratch).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"minigrow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minigrow: interrupted", file=sys.stderr)
        return 130
