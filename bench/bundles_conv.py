"""Benchmark: bundles of every recorded point of a conv net on 512 samples, beyond the forward pass.

    OPENBLAS_NUM_THREADS=1 python bench/bundles_conv.py            # resnet/vgg [3, 3, 3], width 8, 28×28, N = 512
    OPENBLAS_NUM_THREADS=1 python bench/bundles_conv.py --quick    # small sizes (seconds)

Target (issue 14): the bundles of every layer of a conv net on 512 samples in < 1 s beyond the forward pass.
Timed, medians of ``--repeat`` runs:

* ``forward``  — the plain eval-mode forward pass of the net (chunks of 128 samples, as the report runs it);
* ``report``   — :func:`minigrow.methods.bundles.conv.conv_layer_report`, every entry (instrumented forward + bundles);
* ``bundles``  — the bundle part alone: quantise (B1) + hash + statistics of every recorded entry, on the
  activations kept from one instrumented pass (``report − forward`` also includes the instrumentation: the
  per-block variances of (C1) and keeping the branch outputs);
* the pairwise reference loop ``bundles_pairwise`` on the largest entry (the oracle), and whether the partitions
  agree on every entry (exactness on feature maps; also tested in tests/test_bundles_conv.py).

Real MNIST images (the first N training images), trained for ``--train`` samples so the maps are not those of
a random net. Timings are noisy on a shared machine: the load average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minigrow.methods.bundles import bundles, bundles_pairwise, quantize, weight_amplitude  # noqa: E402
from minigrow.methods.bundles.conv import as_images, conv_activations, conv_layer_report, forward_lesioned_conv  # noqa: E402
from minigrow.data import load_mnist  # noqa: E402
from minigrow.convnets import conv_net  # noqa: E402
from minigrow.optim import Adam  # noqa: E402
from minigrow.train import Trainer  # noqa: E402


def median_of(fn, repeat):
    ts, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--train", type=int, default=1024, help="training samples seen before measuring (1 epoch)")
    args = p.parse_args(argv)
    N, blocks, width, repeat = (128, [1, 1, 1], 4, 2) if args.quick else (512, [3, 3, 3], 8, args.repeat)
    d = load_mnist(n_train=max(N, args.train), flatten=False)
    X, y = as_images(d.X_train), d.y_train
    Xe, ye = X[:N], y[:N]
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, load average "
          f"{os.getloadavg()[0]:.2f} (2 shared cores); N = {N}, blocks/stage {blocks}, width {width}, 28×28")
    print(f"{'net':<7} {'entries':>7} {'forward':>9} {'report':>9} {'bundles':>9} {'report−fwd':>10} "
          f"{'pairwise(1)':>11} {'hash(1)':>9} {'ratio':>7} {'exact':>6}")
    for skip, name in ((False, "vgg"), (True, "resnet")):
        m = conv_net(blocks, width, skip=skip, rng=0)
        Trainer(m, "ce", Adam(1e-3), batch_size=64, rng=0, progress=False).fit(X[:args.train], y[:args.train], 1)
        t_fwd, _ = median_of(lambda: forward_lesioned_conv(m, Xe), repeat)
        t_rep, rep = median_of(lambda: conv_layer_report(m, Xe, ye, n_classes=10), repeat)
        acts = [a for _, _, _, a in conv_activations(m, Xe)]
        w = weight_amplitude(m)
        t_b, _ = median_of(lambda: [bundles(a, ye, w, n_classes=10) for a in acts], repeat)
        big = max(range(len(acts)), key=lambda i: acts[i][0].size)
        q = quantize(acts[big], w)
        t_h, hb = median_of(lambda: bundles(acts[big], ye, w, n_classes=10), repeat)
        t_p, pb = median_of(lambda: bundles_pairwise(q, ye, 10), 1)
        exact = all(np.array_equal(r.assignment, bundles_pairwise(quantize(a, w), ye, 10).assignment)
                    for r, a in zip(rep, acts))
        print(f"{name:<7} {len(rep):>7d} {t_fwd:>8.3f}s {t_rep:>8.3f}s {t_b:>8.3f}s {t_rep - t_fwd:>9.3f}s "
              f"{t_p:>10.3f}s {t_h:>8.4f}s {t_p / t_h:>6.0f}× {str(exact):>6}")
        print(f"        largest entry: {acts[big].shape[1:]} = {acts[big][0].size} numbers per sample; "
              f"|B| of the entries: {[r.n_bundles for r in rep]}")
    print("target: bundles of every entry < 1 s beyond the forward pass (columns 'bundles' and 'report−fwd')")


if __name__ == "__main__":
    main()
