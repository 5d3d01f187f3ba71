"""Wall time of a pruned LeNet-5-Caffe run against the dense run of the same net, same epochs, side by side
(prints figures; not a test). Issue 13's target: pruned ≤ 0.5 × dense.

The two runs go at the same time, each in its own process with one BLAS thread (the machine has 2 cores), so both
see the same machine load from start to end; the script prints the per-epoch seconds of both, the ratio of the
totals and the load average before and after. With ``--rounds R`` it repeats that R times and gives the median
ratio.

    python bench/pruning_lenet5_speed.py                                  # all of MNIST, 8 epochs, FLOP price
    python bench/pruning_lenet5_speed.py --epochs 2 --n-train 3000        # a quick look
    python bench/pruning_lenet5_speed.py --feature-gates --price-on params+flops --price 0.04,0.0075
    python bench/pruning_lenet5_speed.py --feature-gates --price-on params+flops --price 0.04,0.0075 --set prune_every=100

The pruned run uses ``LENET5_SETTINGS`` (minigrow/experiments/pruning.py) with the given price, so it is the run
of ``python -m minigrow reproduce pruning lenet5`` with the same flags; the dense run is ``lenet5_run(dense=True)``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys
sys.path.insert(0, {root!r})
from minigrow.experiments.pruning import lenet5_run
kw = json.loads(sys.argv[1])
r = lenet5_run(**kw)
keep = {{k: r[k] for k in ("seconds", "epoch_seconds", "widths", "test_err", "n_params", "macs")}}
keep["theta_binary_frac"] = r.get("theta_binary_frac")
print("RESULT " + json.dumps(keep))
"""


def run_pair(dense_kw, pruned_kw):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = CHILD.format(root=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", code, json.dumps(kw)], stdout=subprocess.PIPE, text=True,
                              env=env) for kw in (dense_kw, pruned_kw)]
    out = []
    for p in procs:
        text, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"a benchmark run failed (exit {p.returncode})")
        out.append(json.loads(next(line for line in text.splitlines() if line.startswith("RESULT "))[7:]))
    return out


def parse_price(s):
    vals = [float(v) for v in s.split(",")]
    return vals[0] if len(vals) == 1 else vals


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--n-train", type=int, default=None, help="training images (default: all 60 000)")
    ap.add_argument("--price-on", default="flops")
    ap.add_argument("--price", type=parse_price, default=0.0075)
    ap.add_argument("--feature-gates", action="store_true", help="gates on the flattened features (if available)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="any other PruningSettings field for the pruned run, e.g. --set prune_every=100 (JSON value)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    common = {"seed": a.seed, "n_train": a.n_train, "epochs": a.epochs}
    scale = {"price": a.price}
    if a.n_train:                        # the same price per sample and θ movement per epoch as at N = 60 000
        f = a.n_train / 60000
        scale = {"price": [p * f for p in a.price] if isinstance(a.price, list) else a.price * f,
                 "eta_theta": 0.0017 / f}
    pruned = dict(common, price_on=a.price_on, **scale)
    if a.feature_gates:
        pruned["feature_gates"] = True
    for kv in a.set:
        k, _, v = kv.partition("=")
        pruned[k] = json.loads(v)
    dense = dict(common, dense=True)
    print(f"LeNet-5-Caffe, {a.n_train or 60000} MNIST images, {a.epochs} epochs, seed {a.seed}; pruned: "
          f"{json.dumps({k: v for k, v in pruned.items() if k not in common})}; both at once, one BLAS thread each")
    ratios = []
    for r in range(a.rounds):
        print("load average before %.2f %.2f %.2f" % os.getloadavg())
        d, p = run_pair(dense, pruned)
        print("load average after  %.2f %.2f %.2f" % os.getloadavg())
        print(f"round {r + 1}: epoch seconds dense  " + " ".join(f"{s:.1f}" for s in d["epoch_seconds"]))
        print(f"round {r + 1}: epoch seconds pruned " + " ".join(f"{s:.1f}" for s in p["epoch_seconds"]))
        ratio = p["seconds"] / d["seconds"]
        ratios.append(ratio)
        print(f"round {r + 1}: dense {d['seconds']:.1f} s ({100 * d['test_err']:.2f} %, {d['macs']:,} MACs); pruned "
              f"{p['seconds']:.1f} s ({100 * p['test_err']:.2f} %, widths {'-'.join(map(str, p['widths']))}, "
              f"{p['macs']:,} MACs, θ binary {p['theta_binary_frac']:.3f}); ratio {ratio:.2f}")
    ratios.sort()
    print(f"pruned / dense wall time: median {ratios[len(ratios) // 2]:.2f} over {len(ratios)} round(s) "
          f"(target ≤ 0.5)")


if __name__ == "__main__":
    main()
