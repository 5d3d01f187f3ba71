"""The lesion study (Peer et al., arXiv 2011.02956; bundles.md §4): drop residual blocks at test time.

In a trained residual MLP call a block conflicting when its branch output W2 σ(W1 h + b1) has H > 0 on training
samples; drop k blocks at test time (output = shortcut h) chosen among the conflicting, the non-conflicting or all
blocks, and compare test accuracies.
"""
from __future__ import annotations

import numpy as np

from ...layers import ResidualBlock
from ...validate import check_int, check_rng
from .report import layer_report
from .settings import BundleSettings

__all__ = ["forward_lesioned", "lesion_study"]

def _residual_blocks(model):
    return [i for i, lay in enumerate(model.layers) if isinstance(lay, ResidualBlock)]


def forward_lesioned(model, X, drop=(), batch_size=4096):
    """Inference-mode logits of a residual MLP with the residual blocks numbered in ``drop`` removed
    (block output = its shortcut h, i.e. the branch is skipped)."""
    drop = set(int(d) for d in drop)
    X = np.asarray(X, dtype=model.dtype)
    outs = []
    for s in range(0, X.shape[0], batch_size):
        x, k = X[s:s + batch_size], 0
        for layer in model.layers:
            if isinstance(layer, ResidualBlock):
                if k not in drop:
                    x = layer.forward(x, train=False)
                k += 1
            else:
                x = layer.forward(x, train=False)
        outs.append(x)
    return np.concatenate(outs)


def lesion_study(model, X_eval, y_eval, X_test, y_test, ks=None, repeats=15, rng=0, lr=BundleSettings.lr,
                 batch_size=BundleSettings.batch_size):
    """Drop blocks of a trained residual MLP at test time (bundles.md §4, after the authors' ``lesion.py``).

    A block is conflicting when its branch output has H > 0 on (X_eval, y_eval) (the float32 grid with the
    training η, B). For each k in ``ks`` and each group (conflicting, non-conflicting, all blocks) draw
    ``repeats`` random k-subsets of the group (when it has ≥ k blocks) and record mean and std of the test
    accuracy; also every single-block lesion. Returns a JSON-able dict.
    """
    rng = check_rng("rng", rng)
    repeats = check_int("repeats", repeats, lo=1)
    y_test = np.asarray(y_test)
    rep = layer_report(model, X_eval, y_eval, lr=lr, batch_size=batch_size, kinds={"branch"})
    flags = [r.conflicting for r in rep]
    conf = [i for i, f in enumerate(flags) if f]
    nonconf = [i for i, f in enumerate(flags) if not f]
    n_blocks = len(flags)

    def acc(drop):
        return float((forward_lesioned(model, X_test, drop).argmax(1) == y_test).mean())

    base = acc(())
    single = [acc([b]) for b in range(n_blocks)]
    if ks is None:
        ks = list(range(1, n_blocks + 1))
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
        raise TypeError(f"ks: expected a list of block counts, got {type(ks).__name__}")
    ks = [check_int(f"ks[{i}]", k, lo=1, hi=n_blocks) for i, k in enumerate(ks)]
    if not ks:
        raise ValueError("ks: expected at least one number of blocks to drop, got an empty list")
    groups = {"conflicting": conf, "non_conflicting": nonconf, "random": list(range(n_blocks))}
    curves = {g: {"k": [], "mean": [], "std": []} for g in groups}
    for k in ks:
        for g, members in groups.items():
            if len(members) < k:
                continue
            accs = [acc(rng.choice(members, size=k, replace=False)) for _ in range(repeats)]
            curves[g]["k"].append(int(k))
            curves[g]["mean"].append(float(np.mean(accs)))
            curves[g]["std"].append(float(np.std(accs)))
    return {"n_blocks": n_blocks, "conflicting_blocks": conf, "branch_entropy": [r.entropy for r in rep],
            "branch_n_bundles": [r.n_bundles for r in rep], "base_test_acc": base, "single_block_test_acc": single,
            "curves": curves, "repeats": repeats}
