r"""Auto-tuning by conflicting layer removal (Peer et al., arXiv 2103.04331 and 2011.02956).

Block networks. The papers' deep network is a VGG-style chain of conv blocks of four types with block counts
[3, 12, 41, 3]; here dense blocks stand in for conv blocks: block type t has width ``block_widths[t]``, its first
block maps the previous width to ``block_widths[t]`` (where a conv net would change resolution) and every block is
ReLU(W h + b) (no skip, :class:`DenseBlock`). A plain deep MLP is the one-type case ``counts = [L]``. Each block is
one layer, so :func:`minigrow.methods.bundles.layer_report` reports one entry per block.

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

The lesion study is :mod:`.lesion`.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ...initializers import init_dense
from ...layers import Dense, Layer, Sequential, check_model, register_layer
from ...optim import Adam
from ...train import Trainer, evaluate
from ...validate import check_callable, check_choice, check_int, check_labels, check_rng
from .report import layer_report
from .settings import AutotuneSettings

__all__ = ["DenseBlock", "block_net", "block_types", "remove_first_type", "remove_all_types", "RULES", "autotune",
           "AutotuneResult"]


# ----------------------------------------------------------------------------------------------------------------
# Networks of blocks of several types
# ----------------------------------------------------------------------------------------------------------------

@register_layer
class DenseBlock(Layer):
    r"""One dense block  a = ReLU(W h + b)  — the stand-in for a conv block of the papers' VGG-style network.

    Backward, for g = ∂L/∂a:  d_z = g ⊙ 1[z > 0],  ∂L/∂W = d_zᵀ h,  ∂L/∂b = Σ_n d_z,  ∂L/∂h = d_z W.
    Being one layer, the block is one entry of a bundle report (kind 'block'). It produces its units like a
    ``Dense`` (``unit_kind = "affine"``: unit j owns row j of W and b[j]), so :mod:`minigrow.surgery` can remove
    units of a block; ``activation`` names the σ its output has already been through (SensLI places a candidate
    right after the block).
    """

    unit_kind = "affine"
    activation = "relu"

    def __init__(self, in_features, out_features, init="he", rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = check_int("in_features", in_features, lo=1)
        self.out_features = check_int("out_features", out_features, lo=1)
        self.init = init
        W, b = init_dense(self.in_features, self.out_features, init, check_rng("rng", 0 if rng is None else rng),
                          dtype)
        self.params.update(W=W, b=b)
        self._init_grads()

    input_ndim = 2          # (batch, features)

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "init": self.init}

    @property
    def in_units(self):
        return self.in_features

    @property
    def out_units(self):
        return self.out_features

    def out_axes(self):
        return {"W": 0, "b": 0}

    def in_axes(self):
        return {"W": 1}

    def _resized(self):
        self.out_features, self.in_features = (int(n) for n in self.params["W"].shape)

    def forward(self, x, train=True):
        z = x @ self.params["W"].T + self.params["b"]             # z = W h + b
        self._cache = (x, z)
        return np.maximum(z, 0)                                   # a = ReLU(z)

    def backward(self, dout, need_input_grad=True):
        x, z = self._cache
        dz = dout * (z > 0)                                       # d_z = g ⊙ ReLU'(z), ReLU'(0) = 0
        np.matmul(dz.T, x, out=self.grads["W"])                   # ∂L/∂W = d_zᵀ h
        np.sum(dz, axis=0, out=self.grads["b"])                   # ∂L/∂b = Σ_n d_z
        return dz @ self.params["W"] if need_input_grad else None # ∂L/∂h = d_z W

    def macs(self):
        return self.in_features * self.out_features


def block_net(counts, block_widths, n_in, n_out, init="he", rng=0, dtype=np.float32):
    """Plain (no skip) network of dense blocks: ``counts[t]`` :class:`DenseBlock` (→ block_widths[t]) of type t,
    then a linear output layer. A type with count 0 is skipped.

    ``block_net([L], [w], 784, 10)`` is the plain MLP 784 → w (×L, ReLU) → 10 with He-uniform init.
    """
    counts = [check_int(f"counts[{t}]", c, lo=0) for t, c in enumerate(counts)]
    widths = [check_int(f"block_widths[{t}]", w, lo=1) for t, w in enumerate(block_widths)]
    if len(widths) != len(counts):
        raise ValueError(f"block_widths: expected one width per block type ({len(counts)}), got {len(widths)}")
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


def _round_seed(rng):
    """The integer behind the per-round generators: ``rng`` itself when it is an int (so ``rng=0`` reproduces the
    published runs), else one draw from the Generator."""
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return check_int("rng", rng, lo=0)
    return int(check_rng("rng", rng).integers(2 ** 63))


def autotune(X, y, counts, block_widths=None, X_test=None, y_test=None, *, settings=None, rng=0, build=None,
             n_classes=None, progress=False, dtype=np.float32, seed=None, **changes):
    """Shrink a block network until it trains without conflicting bundles (bundles.md §4).

    Parameters
    ----------
    X, y : training data; bundles are measured on the first ``settings.n_eval`` samples (the authors used 64, 512
        or 2048 in different versions; 512 here by default)
    counts : blocks per type of the starting architecture
    block_widths : the width of each block type (for the default builder :func:`block_net`)
    settings : :class:`~minigrow.methods.bundles.AutotuneSettings` (rule, epochs, check_epochs, max_rounds, n_eval,
        lr, batch_size); any of its fields may also be given as a keyword and overrides it
    rng : int or numpy Generator. Every round starts from fresh weights drawn from ``Generator([s, round])`` and
        shuffles with ``Generator([s, round, 1])``, where s is ``rng`` itself for an int, else one draw from it
    build : optional ``build(counts, rng) -> Sequential``, the user's model builder (instead of :func:`block_net`
        with ``block_widths``): block t of the counts must be one reported block of
        :func:`~minigrow.methods.bundles.layer_report` (a ``DenseBlock``, a nested ``Sequential``, …), in order
    seed : deprecated spelling of ``rng`` (an int)

    The result's ``rounds`` holds, per run: counts, the epoch and H(a^L) of the detected conflict, each block's
    entropy, the new counts, epochs trained, final test accuracy (if the run finished) and seconds.
    """
    if seed is not None:
        warnings.warn("autotune(seed=…) is deprecated; use rng=…", DeprecationWarning, stacklevel=2)
        rng = seed
    if settings is None:
        settings = AutotuneSettings()
    elif not isinstance(settings, AutotuneSettings):
        raise TypeError(f"settings: expected an AutotuneSettings, got {type(settings).__name__}")
    s = settings.replace(**changes)
    rule, lr, batch_size = s.rule, s.lr, s.batch_size
    check_choice("rule", rule, set(RULES))
    epochs = check_int("epochs", s.epochs, lo=1)
    check_epochs = check_int("check_epochs", s.check_epochs, lo=0)
    max_rounds = check_int("max_rounds", s.max_rounds, lo=1)
    seed = _round_seed(rng)
    y = check_labels("y", y, n_classes=n_classes, n=len(X))
    C = int(n_classes) if n_classes is not None else int(y.max()) + 1
    n_eval = min(check_int("n_eval", s.n_eval, lo=1), len(X))
    Xe, ye = X[:n_eval], y[:n_eval]
    counts = list(counts)
    if build is None:
        if block_widths is None:
            raise ValueError("block_widths: give the width of each block type, or a model builder build=")
        block_widths = list(block_widths)

        def build(cnt, r):
            return block_net(cnt, block_widths, X.shape[1], C, rng=r, dtype=dtype)
    else:
        check_callable("build", build)
    result = AutotuneResult(counts=counts)
    remove = RULES[rule]

    def conflict_at_last(model):
        if sum(counts) == 0:
            return None
        last = layer_report(model, Xe, ye, lr=lr, batch_size=batch_size, n_classes=C, last_only=True)[0]
        return last

    for rnd in range(max_rounds):
        t0 = time.perf_counter()
        model = check_model("build(counts, rng)", build(list(counts), np.random.default_rng([seed, rnd])))
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
            if len(flags) != sum(counts):
                raise ValueError(f"build: the model of counts {counts} has {len(flags)} reported blocks, expected "
                                 f"{sum(counts)} (one per block; see layer_report)")
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
