"""``python -m minigrow compare``: the three methods side by side and combined (docs/compare.md).

Runs :func:`minigrow.experiments.compare.run_compare` (small, big, sensli, autotune, pruning, combined × data sets ×
seeds) and writes under ``--out`` (default runs/compare): ``compare.json`` (config, every run, the summary),
``compare_table.md`` and, with matplotlib, ``compare_pareto.png`` and ``compare_traces.png``. ``--into-docs``
also writes the committed copies docs/results/compare.json and docs/figures/compare_{pareto,traces}.png (refused
with ``--quick``). Fashion-MNIST is skipped, with a note, when its files are absent.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .common import add_threads_arg, positive_int


def seed_list(text):
    """'0,1,2' or '0-4' → [0, 1, 2] / [0, 1, 2, 3, 4] (argparse type)."""
    try:
        out = []
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                a, b = (int(t) for t in part.split("-", 1))
                out += list(range(a, b + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2 or 0-4, got {text!r}") from None
    if not out or any(s < 0 for s in out) or len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"expected distinct non-negative seeds like 0,1,2 or 0-4, got {text!r}")
    return out


def register(sub):
    p = sub.add_parser("compare", help="SensLI, auto-tune, pruning and their combination on one benchmark",
                       description="Fixed small/big MLPs, SensLI growth, auto-tune, Bernoulli pruning and the "
                                   "combined run on MNIST/Fashion-MNIST subsets: same seeds, Adam, epochs "
                                   "(docs/compare.md).")
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds; for tests)")
    p.add_argument("--seeds", type=seed_list, default=None, help="seeds, e.g. 0-4 or 0,1 (default 0-4; --quick 0,1)")
    p.add_argument("--datasets", default="mnist,fashion", help="comma-separated: mnist, fashion (default both)")
    p.add_argument("--methods", default=None, help="comma-separated subset of small,big,sensli,autotune,pruning,"
                                                   "combined (default all)")
    p.add_argument("--jobs", type=positive_int, default=1, help="worker processes (one BLAS thread each)")
    p.add_argument("--scheduler", default=None, help="a Dask scheduler address tcp://host:port (optional)")
    p.add_argument("--out", type=Path, default=Path("runs/compare"), help="output folder (default runs/compare)")
    p.add_argument("--into-docs", action="store_true",
                   help="also write docs/results/compare.json and docs/figures/compare_*.png (the committed results)")
    p.add_argument("--no-plots", action="store_true", help="skip the figures (no matplotlib needed)")
    add_threads_arg(p)
    p.set_defaults(func=run)


def _split(flag, text, allowed):
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if not items or bad or len(set(items)) != len(items):
        raise ValueError(f"{flag}: expected distinct names from {list(allowed)}, got {text!r}")
    return items


def run(args):
    from ..experiments import REPO_ROOT, touches_committed
    from ..experiments import compare as C
    from ..output import write_json, write_text_atomic
    if args.quick and args.into_docs:
        raise ValueError("--into-docs: a --quick run never writes into the repository's committed results")
    if touches_committed(args.out):
        raise ValueError(f"--out: {args.out} lies in the committed results; use --into-docs for those")
    cfg = C.QUICK if args.quick else C.FULL
    seeds = args.seeds if args.seeds is not None else ([0, 1] if args.quick else [0, 1, 2, 3, 4])
    datasets = _split("--datasets", args.datasets, C.DATASETS)
    methods = _split("--methods", args.methods, tuple(C.METHODS)) if args.methods else list(C.METHODS)
    notes = []
    if "fashion" in datasets:
        try:
            C.load_data("fashion", cfg)
        except (FileNotFoundError, OSError) as exc:
            datasets.remove("fashion")
            notes.append(f"fashion skipped: {' '.join(str(exc).split())}")
            print(f"minigrow: note: Fashion-MNIST skipped ({' '.join(str(exc).split())})", file=sys.stderr)
        if not datasets:
            raise ValueError("--datasets: no data set left to run (Fashion-MNIST files absent)")
    t0 = time.perf_counter()
    runs = C.run_compare(seeds, datasets, cfg, methods, jobs=args.jobs, scheduler=args.scheduler)
    wall = time.perf_counter() - t0
    rows = C.summarize(runs)
    table = C.format_table(rows)
    command = "python -m minigrow compare" + (" --quick" if args.quick else "") + \
              f" --seeds {','.join(map(str, seeds))} --datasets {','.join(datasets)}" + \
              (f" --methods {','.join(methods)}" if args.methods else "")
    doc = {"command": command, "config": cfg.as_dict(), "seeds": seeds, "datasets": datasets, "methods": methods,
           "jobs": args.jobs, "wall_seconds": wall, "cpu_seconds": sum(r["seconds"] for r in runs), "notes": notes,
           "summary": rows, "runs": runs}
    out = Path(args.out)
    targets = [out] + ([REPO_ROOT / "docs"] if args.into_docs else [])
    for root in targets:
        in_docs = root == REPO_ROOT / "docs"
        write_json((root / "results" / "compare.json") if in_docs else (root / "compare.json"), doc)
        if not in_docs:
            write_text_atomic(root / "compare_table.md", f"<!-- {command} -->\n{table}\n")
        if not args.no_plots:
            fig_dir = root / "figures" if in_docs else root
            C.plot_pareto(runs, fig_dir / "compare_pareto.png")
            C.plot_traces(runs, fig_dir / "compare_traces.png")
    print(table)
    print(f"{len(runs)} runs in {wall:.1f} s wall ({doc['cpu_seconds']:.1f} s summed run time); written to {out}"
          + (" and docs/" if args.into_docs else ""))
    return 0
