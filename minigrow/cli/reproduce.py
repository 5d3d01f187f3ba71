"""``python -m minigrow reproduce METHOD WHAT``: the reproductions of the three write-ups, one verb.

Forms::

    python -m minigrow reproduce sensli A [--seeds 30] [--jobs 2]     # setting A-F of docs/sensli.md
    python -m minigrow reproduce bundles grid [--jobs 2]              # grid | autotune | autotune-blocks | lesion
    python -m minigrow reproduce pruning mnist                        # toy | mnist | grid | tradeoff | lenet5
    python -m minigrow reproduce pruning grid --seeds 0,1,2 --jobs 2 --scheduler tcp://host:8786

Every form writes under ``--out`` (default ``runs/reproduce/METHOD/WHAT`` in the current folder; ``--quick``:
``runs/quick/<command>``); ``--into-docs`` writes the repository's ``docs/results`` and ``docs/figures`` instead
(the maintainers' committed results). ``--jobs N`` runs the independent runs of a sweep (seeds, grid points,
prices) in N worker processes and ``--scheduler ADDRESS`` on a Dask cluster — bit-identical to ``--jobs 1``.

The old spellings (``insert --reproduce A``, ``bundles reproduce grid``, ``prune toy|mnist|grid|tradeoff``) still
work for this release and print a one-line deprecation note.
"""
from __future__ import annotations

from pathlib import Path

from .common import (add_into_docs_arg, add_sweep_args, add_threads_arg, positive_int)


class _Into:
    """Hands a subcommand module's ``register`` the ``reproduce`` sub-parser to fill, under another name."""

    def __init__(self, sub, name, **kw):
        self.sub, self.name, self.kw = sub, name, kw

    def add_parser(self, _name, **_kw):
        return self.sub.add_parser(self.name, **self.kw)


def register(sub):
    from . import bundles, insert, prune
    p = sub.add_parser("reproduce", help="the reproductions of the write-ups: sensli A-F, bundles grid|…, "
                                         "pruning toy|mnist|grid|tradeoff",
                       description="Reproduce the results of docs/sensli.md, docs/bundles.md and docs/pruning.md. "
                                   "Outputs go under --out (default runs/reproduce/METHOD/WHAT); --into-docs "
                                   "writes the repository's docs/ instead.")
    s = p.add_subparsers(dest="method", metavar="METHOD")
    s.required = True

    q = s.add_parser("sensli", help="setting A-F of sensli.md §6 (layer insertion)",
                     description="Run setting A-F of sensli.md §6 over several seeds (sensitivity-based layer "
                                 "insertion vs no insertion vs the bigger net).")
    q.add_argument("reproduce", metavar="SETTING", choices=list("ABCDEF"), help="A, B, C, D, E or F")
    q.add_argument("--seeds", type=positive_int, default=None, help="number of seeds (default: as in the table)")
    q.add_argument("--quick", action="store_true", help="tiny epochs (seconds), for tests")
    q.add_argument("--out", type=Path, default=None,
                   help="output folder (default runs/reproduce/sensli/SETTING; with --quick runs/quick/insert)")
    add_into_docs_arg(q)
    q.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    q.add_argument("--no-plots", action="store_true", help="skip the plots (no matplotlib needed)")
    add_sweep_args(q)
    add_threads_arg(q)
    q.set_defaults(func=insert.run_reproduce)

    b = s.add_parser("bundles", help="grid | autotune | autotune-blocks | lesion of bundles.md §5",
                     description="The conflicting-bundles reproductions of bundles.md §5 on MNIST subsets.")
    bundles.add_reproduce_args(b)

    # the pruning forms take every flag of `prune` (the run settings): prune's own parser, registered here
    prune.register(_Into(s, "pruning", help="toy | mnist | grid | tradeoff of pruning.md §4",
                         description="The variational Bernoulli pruning reproductions of pruning.md §4: toy "
                                     "(teacher-student), mnist, grid (robustness), tradeoff (error vs widths "
                                     "across prices)."))
    s.choices["pruning"].set_defaults(func=run_pruning)


def run_pruning(args):
    from . import prune
    if args.what not in prune.REPRODUCTIONS:
        raise ValueError(f"reproduce pruning: expected one of {', '.join(sorted(prune.REPRODUCTIONS))}, got "
                         f"{args.what!r} (one pruning run is 'python -m minigrow prune --data …')")
    return prune.run(args)
