r"""Auto-tuning by conflicting layer removal, and the lesion study (Peer et al., arXiv 2103.04331 and 2011.02956).

Block networks. The papers' deep network is a VGG-style chain of conv blocks of four types with block counts
[3, 12, 41, 3]; here dense blocks stand in for conv blocks: block type t has width ``widths[t]``, its first block
maps the previous width to ``widths[t]`` (where a conv net would change resolution) and every block is
ReLU(W h + b) (no skip, :class:`DenseBlock`). A plain deep MLP is the one-type case ``counts = [L]``. Each block is
one layer, so :func:`minigrow.bundles.layer_report` reports one entry per block.

Auto-tune (bundles.md §4). Train; check the bundle entropy H(a^(L)) of the last block output on the first
``n_eval`` training samples (cheap); if H > 0, measure H of every block and shrink the architecture with a
removal rule, then **restart training from scratch** (fresh weights). Repeat until a run has no conflict in the
checked epochs, then train to the end. Two rules, both from the authors' code (read, not copied):

* ``"first_type"`` (the WACV/arXiv-2011 code, checks *after* each of the first 10 epochs): find the first block
  that conflicts, delete it and all later blocks of its type; later types stay untouched. With P4 (conflicts
  only grow with depth in a plain chain) this equals "keep the non-conflicting blocks of the first conflicting
  type", which is what the latest version of their code does.
* ``"all_types"`` (the arXiv-2103.04331-era code, checks *before* each epoch, from initialisation on): every type
  keeps only its non-conflicting blocks, in one pass.

Lesion study: in a trained residual MLP call a block conflicting when its branch output W2 σ(W1 h + b1) has
H > 0 on training samples; drop k blocks at test time (output = shortcut h) chosen among the conflicting, the
non-conflicting or all blocks, and compare test accuracies.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .bundles import layer_report
from .initializers import init_dense
from .layers import Dense, Layer, ResidualBlock, Sequential, register_layer
from .optim import Adam
from .train import Trainer, evaluate
from .validate import check_choice, check_int, check_labels, check_rng

__all__ = ["DenseBlock", "block_net", "block_types", "remove_first_type", "remove_all_types", "RULES", "autotune",
           "AutotuneResult", "forward_lesioned", "lesion_study"]


# ----------------------------------------------------------------------------------------------------------------
# Networks of blocks of several types
# ----------------------------------------------------------------------------------------------------------------

@register_layer
class DenseBlock(Layer):
    r"""One dense block  a = ReLU(W h + b)  — the stand-in for a conv block of the papers' VGG-style network.

    Backward, for g = ∂L/∂a:  d_z = g ⊙ 1[z > 0],  ∂L/∂W = d_zᵀ h,  ∂L/∂b = Σ_n d_z,  ∂L/∂h = d_z W.
    Being one layer, the block is one entry of a bundle report (kind 'block').
    """

    def __init__(self, in_features, out_features, init="he", rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = check_int("in_features", in_features, lo=1)
        self.out_features = check_int("out_features", out_features, lo=1)
        self.init = init
        W, b = init_dense(self.in_features, self.out_features, init, check_rng("rng", 0 if rng is None else rng),
                          dtype)
        self.params.update(W=W, b=b)
        self._init_grads()

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "init": self.init}

    def forward(self, x, train=True):
        self.x = x
        self.z = x @ self.params["W"].T + self.params["b"]
        return np.maximum(self.z, 0)

    def backward(self, dout, need_input_grad=True):
        dz = dout * (self.z > 0)                                  # d_z = g ⊙ ReLU'(z), ReLU'(0) = 0
        np.matmul(dz.T, self.x, out=self.grads["W"])              # ∂L/∂W = d_zᵀ h
        np.sum(dz, axis=0, out=self.grads["b"])                   # ∂L/∂b = Σ_n d_z
        return dz @ self.params["W"] if need_input_grad else None # ∂L/∂h = d_z W

    def macs(self):
        return self.in_features * self.out_features


def block_net(counts, widths, n_in, n_out, init="he", rng=0, dtype=np.float32):
    """Plain (no skip) network of dense blocks: ``counts[t]`` :class:`DenseBlock` (→ widths[t]) of type t, then
    a linear output layer. A type with count 0 is skipped.

    ``block_net([L], [w], 784, 10)`` is the plain MLP 784 → w (×L, ReLU) → 10 with He-uniform init.
    """
    counts = [check_int(f"counts[{t}]", c, lo=0) for t, c in enumerate(counts)]
    widths = [check_int(f"widths[{t}]", w, lo=1) for t, w in enumerate(widths)]
    if len(widths) != len(counts):
        raise ValueError(f"widths: expected one width per block type ({len(counts)}), got {len(widths)}")
    rng = check_rng("rng", rng)
    layers, prev = [], check_int("n_in", n_in, lo=1)
    for c, w in zip(counts, widths):
        for _ in range(c):
            layers.append(DenseBlock(prev, w, init=init, rng=rng, dtype=dtype))
            prev = w
    layers.append(Dense(prev, check_int("n_out", n_out, lo=1), init=init, rng=rng, dtype=dtype))
    return Sequential(layers)


def block_types(counts):
    """Type index of every block in order, e.g. [2, 1] → [0, 0, 1]."""
    return [t for t, c in enumerate(counts) for _ in range(c)]


def _check_flags(counts, conflicting):
    conflicting = [bool(c) for c in conflicting]
    if len(conflicting) != sum(counts):
        raise ValueError(f"conflicting: expected one flag per block ({sum(counts)}), got {len(conflicting)}")
    return conflicting


def remove_first_type(counts, conflicting):
    """Rule "first_type": delete the first conflicting block and all later blocks *of the same type*.

    ``counts`` blocks per type, ``conflicting`` one flag per block (in order). Example: counts [3, 12, 41, 3]
    with the first conflict at the third block of type b (flat index 5) → [3, 2, 41, 3].
    """
    counts = list(counts)
    flags = _check_flags(counts, conflicting)
    start = 0
    for t, c in enumerate(counts):
        for j in range(c):
            if flags[start + j]:
                counts[t] = j
                return counts
        start += c
    return counts


def remove_all_types(counts, conflicting):
    """Rule "all_types": every type keeps only its non-conflicting blocks (one pass over all types)."""
    counts = list(counts)
    flags = _check_flags(counts, conflicting)
    out, start = [], 0
    for c in counts:
        out.append(int(sum(not f for f in flags[start:start + c])))
        start += c
    return out


RULES = {"first_type": remove_first_type, "all_types": remove_all_types}


# ----------------------------------------------------------------------------------------------------------------
# Auto-tune
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class AutotuneResult:
    """Outcome of :func:`autotune`: ``rounds`` (one dict per training run), the final ``counts``, the final
    trained ``model`` and its training ``history``, and whether a run finished without conflict."""
    counts: list
    rounds: list = field(default_factory=list)
    model: Sequential | None = None
    history: object = None
    converged: bool = False

    def as_dict(self):
        return {"counts": self.counts, "converged": self.converged, "rounds": self.rounds}


def autotune(X, y, counts, widths, X_test=None, y_test=None, rule="first_type", epochs=5, check_epochs=10,
             max_rounds=10, n_eval=512, lr=1e-3, batch_size=64, seed=0, n_classes=None, progress=False,
             dtype=np.float32):
    """Shrink a block network until it trains without conflicting bundles (bundles.md §4).

    Parameters
    ----------
    X, y : training data; bundles are measured on the first ``n_eval`` samples (the authors used 64, 512 or 2048
        in different versions; 512 here by default)
    counts, widths : the starting architecture (see :func:`block_net`)
    rule : 'first_type' (check after each of the first ``check_epochs`` epochs) or 'all_types' (check before each
        of them, from initialisation on)
    epochs : epochs of a complete run; max_rounds : bound on the number of (re)starts
    lr, batch_size : Adam η and B — also the η, B of the bundle grid (B1)

    Every round starts from fresh weights drawn from ``Generator([seed, round])``. The result's ``rounds`` holds,
    per run: counts, the epoch and H(a^L) of the detected conflict, each block's entropy, the new counts,
    epochs trained, final test accuracy (if the run finished) and seconds.
    """
    check_choice("rule", rule, set(RULES))
    epochs = check_int("epochs", epochs, lo=1)
    check_epochs = check_int("check_epochs", check_epochs, lo=0)
    max_rounds = check_int("max_rounds", max_rounds, lo=1)
    y = check_labels("y", y, n_classes=n_classes, n=len(X))
    C = int(n_classes) if n_classes is not None else int(y.max()) + 1
    n_eval = min(check_int("n_eval", n_eval, lo=1), len(X))
    Xe, ye = X[:n_eval], y[:n_eval]
    counts = list(counts)
    result = AutotuneResult(counts=counts)
    remove = RULES[rule]

    def conflict_at_last(model):
        if sum(counts) == 0:
            return None
        last = layer_report(model, Xe, ye, lr=lr, batch_size=batch_size, n_classes=C, last_only=True)[0]
        return last

    for rnd in range(max_rounds):
        t0 = time.perf_counter()
        model = block_net(counts, widths, X.shape[1], C, rng=np.random.default_rng([seed, rnd]), dtype=dtype)
        trainer = Trainer(model, "ce", Adam(lr), batch_size=batch_size, rng=np.random.default_rng([seed, rnd, 1]),
                          progress=progress, dtype=dtype)
        rec = {"round": rnd, "counts": list(counts), "n_blocks": sum(counts), "conflict_epoch": None}
        found = None
        for e in range(epochs):
            if rule == "all_types" and e < check_epochs:          # check before training epoch e
                last = conflict_at_last(model)
                if last is not None and last.conflicting:
                    found = (e, last)
                    break
            trainer.fit(X, y, 1)
            if rule == "first_type" and e < check_epochs:         # check after epoch e
                last = conflict_at_last(model)
                if last is not None and last.conflicting:
                    found = (e + 1, last)
                    break
        rec["epochs_trained"] = trainer.epoch
        rec["train_loss"] = [r["train_loss"] for r in trainer.history.epochs]
        if found is not None:
            e, last = found
            full = layer_report(model, Xe, ye, lr=lr, batch_size=batch_size, n_classes=C, kinds={"block"})
            flags = [r.conflicting for r in full]
            new = remove(counts, flags)
            rec.update(conflict_epoch=e, entropy_last=last.entropy, n_bundles_last=last.n_bundles,
                       block_entropy=[r.entropy for r in full], block_n_bundles=[r.n_bundles for r in full],
                       new_counts=new, seconds=time.perf_counter() - t0)
            if X_test is not None:
                rec["test_acc_at_stop"] = evaluate(model, "ce", X_test.astype(dtype, copy=False), y_test)[1]
            result.rounds.append(rec)
            if new == counts:                                      # nothing removable: give up
                result.model, result.history = model, trainer.history
                break
            counts = new
            result.counts = list(counts)
            continue
        if X_test is not None:
            rec["test_loss"], rec["test_acc"] = evaluate(model, "ce", X_test.astype(dtype, copy=False), y_test)
        final = conflict_at_last(model)
        rec["entropy_last"] = None if final is None else final.entropy
        rec["n_bundles_last"] = None if final is None else final.n_bundles
        rec["seconds"] = time.perf_counter() - t0
        result.rounds.append(rec)
        result.model, result.history, result.converged = model, trainer.history, True
        break
    result.counts = list(counts)
    return result


# ----------------------------------------------------------------------------------------------------------------
# Lesion study on a residual MLP
# ----------------------------------------------------------------------------------------------------------------

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


def lesion_study(model, X_eval, y_eval, X_test, y_test, ks=None, repeats=15, rng=0, lr=1e-3, batch_size=64):
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
