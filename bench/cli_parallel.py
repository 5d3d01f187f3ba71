"""Benchmark: wall time of real command lines — ``--jobs 2`` vs ``--jobs 1`` on a sweep, ``--threads 1`` vs the
default BLAS thread count on a single training run, and the demo.

    python bench/cli_parallel.py                      # sweep: reproduce sensli A --seeds 4 (12 runs); 3 repeats
    python bench/cli_parallel.py --part threads       # train --data mnist --n-train 10000 --epochs 2, both ways
    python bench/cli_parallel.py --part demo --repeats 1
    python bench/cli_parallel.py --quick              # tiny sizes (seconds), to check the script

Each command runs in a fresh interpreter (``python -m minigrow …``, outputs in a temporary folder), alternating the
two variants so that a change in the machine's load hits both; the medians and their ratio are printed with the
load average before and after (the numbers are only comparable on the same machine under the same load).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PARTS = {
    # name: (command A, command B) — B is the variant whose speed-up over A is reported
    "sweep": (["reproduce", "sensli", "A", "--seeds", "4", "--jobs", "1"],
              ["reproduce", "sensli", "A", "--seeds", "4", "--jobs", "2"]),
    "threads": (["train", "--data", "mnist", "--n-train", "10000", "--epochs", "2"],
                ["train", "--data", "mnist", "--n-train", "10000", "--epochs", "2", "--threads", "1"]),
    "demo": (["demo"], None),
}
QUICK = {
    "sweep": (["reproduce", "sensli", "A", "--seeds", "2", "--quick", "--jobs", "1"],
              ["reproduce", "sensli", "A", "--seeds", "2", "--quick", "--jobs", "2"]),
    "threads": (["train", "--data", "mnist", "--n-train", "1000", "--epochs", "1"],
                ["train", "--data", "mnist", "--n-train", "1000", "--epochs", "1", "--threads", "1"]),
    "demo": (["demo", "--quick"], None),
}


def run(argv, out):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "minigrow", *argv, "--no-progress", "--no-plots", "--out", str(out)],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=list(PARTS), default="sweep")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    first, second = (QUICK if a.quick else PARTS)[a.part]
    load0 = os.getloadavg()
    times = {0: [], 1: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):
            for k, cmd in enumerate((first, second)):
                if cmd is not None:
                    times[k].append(run(cmd, Path(tmp) / f"{k}-{i}"))
                    print(f"  {' '.join(cmd)}: {times[k][-1]:.1f} s", flush=True)
    load1 = os.getloadavg()
    print(f"load average (1 min) before {load0[0]:.1f}, after {load1[0]:.1f}; {os.cpu_count()} cores")
    m0 = statistics.median(times[0])
    print(f"A  python -m minigrow {' '.join(first)}: median {m0:.1f} s of {a.repeats} "
          f"({', '.join(f'{t:.1f}' for t in times[0])})")
    if second is not None:
        m1 = statistics.median(times[1])
        print(f"B  python -m minigrow {' '.join(second)}: median {m1:.1f} s of {a.repeats} "
              f"({', '.join(f'{t:.1f}' for t in times[1])})")
        print(f"A / B = {m0 / m1:.2f}")


if __name__ == "__main__":
    main()
