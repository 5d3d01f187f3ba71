"""Reproduction scripts for the papers (one module per method).

Committed results: ``docs/results`` and ``docs/figures`` of the repository hold the published numbers and
figures. A ``quick`` run (tiny sizes, for tests) never writes there: :func:`guard_quick` refuses it.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED = (REPO_ROOT / "docs" / "results", REPO_ROOT / "docs" / "figures")


def touches_committed(path):
    """True when ``path`` is the repository's ``docs/`` or lies in its committed ``docs/results`` / ``docs/figures``
    (symbolic links resolved)."""
    if path is None:
        return False
    p = os.path.realpath(path)
    docs = os.path.realpath(REPO_ROOT / "docs")
    if p == docs:
        return True
    return any(os.path.commonpath([p, os.path.realpath(c)]) == os.path.realpath(c) for c in COMMITTED)


def guard_quick(quick, **dirs):
    """ValueError when a ``quick`` run would write into the committed results (any of ``dirs``)."""
    if not quick:
        return
    for name, d in dirs.items():
        if touches_committed(d):
            raise ValueError(f"{name}: a quick run never writes into the repository's committed results ({d}); "
                             f"give another folder")
