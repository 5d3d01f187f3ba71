r"""Conflicting bundles of convolutional VGG / ResNet nets: layer reports, auto-tune and the lesion study
(Peer, Stabinger, Rodriguez-Sanchez, arXiv 2011.02956 and 2103.04331; bundles.md §7).

The bundle definition is the one of :mod:`minigrow.bundles` (the float32 grid (B1), entropy (B2), acc_max (B3)),
applied to **whole feature maps**: the activation of a sample at a conv layer is its (C, H, W) map flattened to
C·H·W numbers, W_max = max |w| over every trainable tensor of the whole model (conv kernels, BN γ and β, the dense
output layer), and the network runs in **eval mode** (batch norm with its running statistics), as the authors'
``bundle_entropy`` calls ``model(x, training=False)``.

Recorded points (the authors' ``model.cb`` lists, ``models/vgg_block.py`` and ``models/residual_block.py``, read,
not copied). The stem is not recorded; per :class:`~minigrow.layers.ConvBlock` k:

* "vgg" block (no skip): one entry ``block k`` (kind 'block') — the block output ReLU(BN₂(conv₂ …)).
* "resnet" block: two entries —

  - ``block k branch`` (kind 'branch'): the branch output before the add, rescaled by the standard deviations of
    the two pre-BN conv outputs of the block,

    .. math::  \tilde b = \mathrm{BN}_2(c_2)\cdot \frac{1}{\sqrt{\mathrm{Var}(c_2) + 10^{-6}}}
               \cdot \frac{1}{\sqrt{\mathrm{Var}(c_1) + 10^{-6}}}                                    \tag{C1}

    with c₁ = conv₁(x), c₂ = conv₂(ReLU(BN₁ c₁)) and Var the (biased) variance over *every* element of the
    evaluated batch (all samples, channels and positions — ``tf.math.reduce_variance(x)``). The authors evaluate in
    batches of the training batch size B, so their scale changes from batch to batch; here Var is taken over the
    whole evaluation set by default (one scale per block: equal branch outputs stay equal), and
    ``scale_chunk=B`` gives the authors' per-batch scaling.
  - ``block k`` (kind 'block'): the block output ReLU(b + s(x)).

  A block is **conflicting** when its branch entry has H > 0 (resnet) or its output has H > 0 (vgg).

Auto-tune (:func:`autotune_conv`, the authors' ``auto_tune.py``): train the plain (vgg) net; after each of the
first ``check_epochs`` epochs compute H of the last recorded point only; if H > 0, compute every block, take the
first stage holding a conflicting block, set that stage's block count to its number of **non-conflicting** blocks
(:func:`prune_first_stage`) and restart training from scratch (fresh weights).

Lesion (:func:`lesion_conv`, the authors' ``lesion.py``): in a trained ResNet drop random k-subsets of the
conflicting / non-conflicting / all blocks at test time — a dropped block outputs ReLU(s(x)), which is s(x) = x for
an identity shortcut (its input is already ≥ 0) — 15 repeats each, and read off the largest fraction of blocks
whose removal costs at most ``tol`` (0.5 points) of test accuracy.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ...convnets import conv_net
from ...layers import ConvBlock, check_model
from ...optim import Adam
from ...train import Trainer
from ...validate import check_array, check_int, check_labels, check_prob, check_rng
from .formulas import BundleDivergenceError, bundles, grid_spacing, weight_amplitude
from .report import LayerBundles, format_report

__all__ = ["SCALE_EPS", "as_images", "conv_blocks", "conv_activations", "conv_layer_report", "format_report",
           "block_conflicts", "conflict_margin", "prune_first_stage", "ConvAutotuneResult", "autotune_conv", "forward_lesioned_conv",
           "accuracy", "lesion_conv", "training_macs"]

#: ε inside the square roots of (C1), as in the authors' ``residual_block.py``.
SCALE_EPS = 1e-6


# ----------------------------------------------------------------------------------------------------------------
# Input handling and chunked eval-mode passes
# ----------------------------------------------------------------------------------------------------------------

def as_images(X, side=28, dtype=np.float32):
    """``(N, side²)`` or ``(N, side, side)`` grey images → ``(N, 1, side, side)``; ``(N, C, H, W)`` is kept."""
    X = np.asarray(X)
    if X.ndim == 2 and X.shape[1] == side * side:
        X = X.reshape(-1, 1, side, side)
    elif X.ndim == 3:
        X = X[:, None]
    if X.ndim != 4:
        raise ValueError(f"X: expected images of shape (N, C, H, W), (N, H, W) or (N, {side * side}), got {X.shape}")
    return np.ascontiguousarray(X, dtype=dtype)


def conv_blocks(model):
    """Indices (in ``model.layers``) of the :class:`~minigrow.layers.ConvBlock` layers, in order."""
    check_model("model", model)
    return [i for i, lay in enumerate(model.layers) if isinstance(lay, ConvBlock)]


def _apply(fn, x, chunk):
    """``fn`` on chunks of ``chunk`` samples, concatenated (eval-mode passes; keeps the im2col matrices small —
    one 512-sample pass is several times slower than four 128-sample passes here)."""
    if x.shape[0] <= chunk:
        return fn(x)
    return np.concatenate([fn(x[s:s + chunk]) for s in range(0, x.shape[0], chunk)], axis=0)


def _block_entries(block, x, chunk, scale_chunk):
    """Eval-mode (branch scaled by (C1), out) of one ConvBlock on ``x``; ``branch`` is None for a vgg block."""
    n = x.shape[0]
    step = chunk if scale_chunk is None else scale_chunk
    branch, out, stats = [], [], []
    for s in range(0, n, step):
        xc = x[s:s + step]
        outs = block.branch.forward_all(xc, train=False)     # [x, c1, BN1, ReLU, c2, BN2]
        b = outs[-1]
        if block.skip:
            sc = xc if block.shortcut is None else block.shortcut.forward(xc, train=False)
            out.append(np.maximum(b + sc, 0))
            c1, c2 = outs[1].astype(np.float64), outs[4].astype(np.float64)
            # Σ, Σ², count of c₁ and c₂ over every element of the chunk, for Var of (C1)
            stats.append((c1.sum(), (c1 * c1).sum(), c1.size, c2.sum(), (c2 * c2).sum(), c2.size))
            branch.append(b)
        else:
            out.append(np.maximum(b, 0))
    out = np.concatenate(out, axis=0)
    if not block.skip:
        return None, out
    st = np.array(stats)

    def inv_std(s1, s2, m):
        var = np.maximum(s2 / m - (s1 / m) ** 2, 0.0)               # biased variance over all elements
        return 1.0 / np.sqrt(var + SCALE_EPS)                        # 1/√(Var + ε)

    if scale_chunk is None:                                          # one scale for the whole evaluation set
        tot = st.sum(axis=0)
        scales = [(inv_std(tot[3], tot[4], tot[5]), inv_std(tot[0], tot[1], tot[2]))] * len(branch)
    else:                                                            # the authors' per-batch scale
        scales = [(inv_std(r[3], r[4], r[5]), inv_std(r[0], r[1], r[2])) for r in st]
    dt = out.dtype.type
    # (C1): b̃ = (BN₂(c₂) · 1/σ(c₂)) · 1/σ(c₁), in the model's dtype, in this order (as x*scale_bn2*scale_bn1)
    branch = np.concatenate([(b * dt(s2)) * dt(s1) for b, (s2, s1) in zip(branch, scales)], axis=0)
    return branch, out


def conv_activations(model, X, chunk=128, scale_chunk=None, last_only=False):
    """Yield ``(name, kind, index, activations)`` of every recorded point of a conv net (module docstring):
    ``block k branch`` / 'branch' (scaled by (C1)) and ``block k`` / 'block' for every ConvBlock, in order.

    Eval mode throughout; one layer's activations for all N samples are alive at a time. ``last_only`` runs the
    blocks without instrumentation and yields only the last block's output (the cheap check of auto-tune).
    """
    check_model("model", model)
    x = as_images(X, dtype=model.dtype or np.float32)
    idx = conv_blocks(model)
    last = idx[-1] if idx else -1
    k = 0
    for i, layer in enumerate(model.layers):
        if i > last:
            break
        if not isinstance(layer, ConvBlock):
            x = _apply(lambda v: layer.forward(v, train=False), x, chunk)
            continue
        if last_only and i != last:
            x = _apply(lambda v: layer.forward(v, train=False), x, chunk)
        else:
            branch, x = _block_entries(layer, x, chunk, scale_chunk)
            if branch is not None and not last_only:
                yield f"block {k} branch", "branch", i, branch
            yield f"block {k}", "block", i, x
        k += 1


def conv_layer_report(model, X, y, lr=1e-3, batch_size=64, n_classes=None, kinds=None, last_only=False,
                      scale_chunk=None, chunk=128, dtype=np.float32):
    """Bundles of every recorded point of a VGG / ResNet conv net on ``(X, y)`` (list of
    :class:`~minigrow.bundles.LayerBundles`; print with :func:`format_report`).

    Parameters
    ----------
    model : a :func:`~minigrow.network.conv_net` (or any Sequential with ConvBlocks)
    X : images (N, C, H, W) (or (N, 784) / (N, 28, 28) MNIST-like grey images); the first N_eval *training* samples
    lr, batch_size : the training η and B of the grid (B1)
    kinds : e.g. ``{'branch'}``; ``last_only`` : only the last block's output
    scale_chunk : None (Var of (C1) over all N samples) or B (the authors' per-batch scaling)
    """
    check_model("model", model)
    X = check_array("X", X, finite=False)
    y = check_labels("y", y, n_classes=n_classes, n=X.shape[0])
    C = int(n_classes) if n_classes is not None else int(y.max()) + 1
    chunk = check_int("chunk", chunk, lo=1)
    if scale_chunk is not None:
        scale_chunk = check_int("scale_chunk", scale_chunk, lo=1)
    w_max = weight_amplitude(model)
    out = []
    for name, kind, idx, a in conv_activations(model, X, chunk, scale_chunk, last_only):
        if kinds is not None and kind not in kinds:
            continue
        try:
            b = bundles(a, y, w_max, lr, batch_size, C, True, dtype)
        except BundleDivergenceError as exc:
            raise BundleDivergenceError(f"{name}: {exc}") from None
        out.append(LayerBundles(name, kind, idx, b))
    return out


def block_conflicts(report):
    """One flag per ConvBlock: its branch entry has H > 0 (resnet) or, without a branch entry, its output (vgg)."""
    flags = {}
    for r in report:
        blk = int(r.name.split()[1])
        if r.kind == "branch" or blk not in flags:
            flags[blk] = r.conflicting
    return [flags[k] for k in sorted(flags)]


def conflict_margin(a, y, w_max, lr=1e-3, batch_size=64, max_bytes=2 ** 26):
    r"""How far a layer is from a conflict: the smallest L∞ distance between the activations of two samples with
    **different** labels, d* = min_{y_i ≠ y_j} max_k |a_ik − a_jk|, in units of the grid's resolution
    γ ≈ ulp(W_max)·B/η (:func:`minigrow.bundles.grid_spacing`).

    A ratio d*/γ ≫ 1 means no two differently-labelled samples are anywhere near one bundle; conflicts need
    d*/γ ≲ 1 (then they are possible, not certain: the grid rounds, it is not a threshold). Pairwise, O(N²D), in
    chunks of rows of at most ``max_bytes``; a diagnostic, not part of the definition.
    Returns ``{'min_linf': d*, 'gamma': γ, 'ratio': d*/γ}``.
    """
    a = np.asarray(a, dtype=np.float64)
    a = a.reshape(a.shape[0], -1)
    y = check_labels("y", y, n=a.shape[0])
    n, D = a.shape
    step = max(1, int(max_bytes) // max(1, n * D * 8))
    best = np.inf
    for s in range(0, n, step):
        d = np.abs(a[s:s + step, None, :] - a[None, :, :]).max(axis=2)      # (rows, N) L∞ distances
        d[y[s:s + step, None] == y[None, :]] = np.inf                       # only differently-labelled pairs
        best = min(best, float(d.min()))
    g = grid_spacing(w_max, lr, batch_size)
    return {"min_linf": best, "gamma": g, "ratio": best / g if g > 0 else float("inf")}


# ----------------------------------------------------------------------------------------------------------------
# Auto-tune by the authors' rule
# ----------------------------------------------------------------------------------------------------------------

def prune_first_stage(blocks, conflicting):
    """The authors' ``prune_model``: walk the stages in order; the first stage holding a conflicting block keeps
    only its **non-conflicting** blocks; every other stage is untouched. ``conflicting``: one flag per block.

    >>> prune_first_stage([3, 12, 41, 3], [False] * 5 + [True] + [False] * 53)
    [3, 11, 41, 3]

    (With conflicts that only grow with depth, P4, this equals "delete the first conflicting block and the later
    blocks of its stage": blocks [3, 12, 41, 3] with conflicts from the 3rd block of stage b on → [3, 2, 41, 3].)
    """
    blocks = [check_int(f"blocks[{t}]", b, lo=0) for t, b in enumerate(blocks)]
    flags = [bool(f) for f in conflicting]
    if len(flags) != sum(blocks):
        raise ValueError(f"conflicting: expected one flag per block ({sum(blocks)}), got {len(flags)}")
    out, start = list(blocks), 0
    for t, c in enumerate(blocks):
        stage = flags[start:start + c]
        if any(stage):
            out[t] = int(sum(not f for f in stage))
            return out
        start += c
    return out


def training_macs(model, n_samples, epochs):
    """Multiply-adds of training: 3 × (forward MACs per sample) × samples × epochs (backward ≈ 2 × forward)."""
    return int(3 * model.macs() * n_samples * epochs)


@dataclass
class ConvAutotuneResult:
    """Outcome of :func:`autotune_conv`: final ``blocks``, per-run ``rounds``, the trained ``model``, and totals."""
    blocks: list
    rounds: list = field(default_factory=list)
    model: object = None
    converged: bool = False

    @property
    def total_seconds(self):
        return float(sum(r["seconds"] for r in self.rounds))

    @property
    def total_train_macs(self):
        return int(sum(r["train_macs"] for r in self.rounds))

    @property
    def total_epochs(self):
        return int(sum(r["epochs_trained"] for r in self.rounds))

    def as_dict(self):
        return {"blocks": self.blocks, "converged": self.converged, "rounds": self.rounds,
                "total_seconds": self.total_seconds, "total_train_macs": self.total_train_macs,
                "total_epochs": self.total_epochs}


def accuracy(model, X, y, chunk=128, drop=()):
    """Eval-mode accuracy of a conv net on (X, y), in chunks; ``drop`` lesions ResNet blocks (see
    :func:`forward_lesioned_conv`)."""
    z = forward_lesioned_conv(model, X, drop, chunk)
    return float((z.argmax(1) == np.asarray(y)).mean())


def autotune_conv(X, y, blocks, width=8, X_test=None, y_test=None, epochs=3, check_epochs=10, max_rounds=6,
                  n_eval=512, lr=1e-3, batch_size=64, seed=0, n_classes=10, scale_chunk=None, progress=None):
    """Auto-tune a plain conv (vgg) net of :func:`~minigrow.network.conv_net` by the authors' rule (bundles.md §7).

    Every round builds ``vgg(blocks, width)`` with fresh weights (``Generator([seed, round])``), trains with Adam(η)
    and batch B; after each of the first ``check_epochs`` epochs it computes H of the last block output on the first
    ``n_eval`` training images; if H > 0 it reports every block, prunes with :func:`prune_first_stage` and restarts.
    A run without a conflict in the checked epochs trains to ``epochs`` and ends the search; so does a prune that
    changes nothing. Per round: blocks, parameters, conflict epoch, H of the last block, per-block H, new blocks,
    epochs trained, seconds, training MACs (:func:`training_macs`) and the test accuracy (at the stop or the end).
    """
    epochs = check_int("epochs", epochs, lo=1)
    check_epochs = check_int("check_epochs", check_epochs, lo=0)
    max_rounds = check_int("max_rounds", max_rounds, lo=1)
    X = as_images(X)
    y = check_labels("y", y, n_classes=n_classes, n=X.shape[0])
    n_eval = min(check_int("n_eval", n_eval, lo=1), X.shape[0])
    Xe, ye = X[:n_eval], y[:n_eval]
    Xt = None if X_test is None else as_images(X_test)
    blocks = [check_int(f"blocks[{t}]", b, lo=0) for t, b in enumerate(blocks)]
    res = ConvAutotuneResult(blocks=list(blocks))
    for rnd in range(max_rounds):
        t0 = time.perf_counter()
        model = conv_net(blocks, width, skip=False, n_classes=n_classes, rng=np.random.default_rng([seed, rnd]))
        tr = Trainer(model, "ce", Adam(lr), batch_size=batch_size, rng=np.random.default_rng([seed, rnd, 1]),
                     progress=False)
        rec = {"round": rnd, "blocks": list(blocks), "n_blocks": sum(blocks), "n_params": model.n_params(),
               "macs": model.macs(), "conflict_epoch": None, "entropy_last": []}
        found = None
        for e in range(epochs):
            tr.fit(X, y, 1)
            if e < check_epochs and sum(blocks) > 0:
                last = conv_layer_report(model, Xe, ye, lr, batch_size, n_classes, last_only=True,
                                         scale_chunk=scale_chunk)[0]
                rec["entropy_last"].append(last.entropy)
                if last.conflicting:
                    found = e + 1
                    break
        rec["epochs_trained"] = tr.epoch
        rec["train_loss"] = [r["train_loss"] for r in tr.history.epochs]
        rec["train_macs"] = training_macs(model, X.shape[0], tr.epoch)
        if Xt is not None:
            rec["test_acc"] = accuracy(model, Xt, y_test)
        if found is not None:
            full = conv_layer_report(model, Xe, ye, lr, batch_size, n_classes, scale_chunk=scale_chunk)
            flags = block_conflicts(full)
            new = prune_first_stage(blocks, flags)
            rec.update(conflict_epoch=found, block_entropy=[r.entropy for r in full],
                       block_n_bundles=[r.n_bundles for r in full], new_blocks=new)
        rec["seconds"] = time.perf_counter() - t0
        res.rounds.append(rec)
        if progress:
            progress(rec)
        res.model = model
        if found is None:
            res.converged = True
            break
        if rec["new_blocks"] == blocks:            # nothing removable: keep this run
            break
        blocks = rec["new_blocks"]
        res.blocks = list(blocks)
    res.blocks = list(blocks)
    return res


# ----------------------------------------------------------------------------------------------------------------
# Lesion study on a trained conv ResNet
# ----------------------------------------------------------------------------------------------------------------

def forward_lesioned_conv(model, X, drop=(), chunk=128):
    """Eval-mode outputs of a conv net with the ResNet blocks numbered ``drop`` (0 = the first ConvBlock) removed:
    a dropped block outputs ReLU(s(x)) (= x for an identity shortcut), as the authors' ``use_residual=False``."""
    check_model("model", model)
    x = as_images(X, dtype=model.dtype or np.float32)
    drop = {int(d) for d in drop}
    blocks = conv_blocks(model)
    if drop and (min(drop) < 0 or max(drop) >= len(blocks)):
        raise ValueError(f"drop: block numbers must lie in [0, {len(blocks)}), got {sorted(drop)}")
    for d in drop:
        if not model.layers[blocks[d]].skip:
            raise ValueError(f"drop: block {d} has no shortcut (a vgg block); only ResNet blocks can be dropped")
    where = {i: k for k, i in enumerate(blocks)}

    def fwd(v):
        for i, layer in enumerate(model.layers):
            if i in where and where[i] in drop:
                v = np.maximum(v if layer.shortcut is None else layer.shortcut.forward(v, train=False), 0)
            else:
                v = layer.forward(v, train=False)
        return v

    return _apply(fwd, x, chunk)


def _largest_ok(ks, accs, floor):
    """Largest k such that the accuracy is ≥ ``floor`` for k and for every smaller k tried (0 if k = 1 fails)."""
    best = 0
    for k, a in zip(ks, accs):
        if a < floor - 1e-12:
            break
        best = k
    return best


def lesion_conv(model, X_eval, y_eval, X_test, y_test, ks=None, repeats=15, rng=0, lr=1e-3, batch_size=64,
                tol=0.005, n_classes=10, scale_chunk=None):
    """Lesion study on a trained conv ResNet (bundles.md §7; after the authors' ``lesion.py``).

    Blocks are conflicting when their branch entry (C1) has H > 0 on ``(X_eval, y_eval)``. For each group
    (conflicting, non-conflicting, all = 'random') and each k in ``ks`` (default 1 … group size) draw ``repeats``
    random k-subsets of the group and record the test accuracies (mean, std, min, max; identical subsets are
    evaluated once). Also: every single-block lesion, dropping *all* conflicting blocks, and per group the largest
    k such that the **mean** accuracy is ≥ base − ``tol`` for every k' ≤ k (and the same with **every** repeat
    instead of the mean), as a fraction of all blocks — the test of the "~60 % of the layers can be removed" claim.
    """
    rng = check_rng("rng", rng)
    repeats = check_int("repeats", repeats, lo=1)
    tol = check_prob("tol", tol)
    y_test = np.asarray(y_test)
    X_test = as_images(X_test, dtype=model.dtype or np.float32)
    rep = conv_layer_report(model, X_eval, y_eval, lr, batch_size, n_classes, scale_chunk=scale_chunk)
    branch = [r for r in rep if r.kind == "branch"]
    if not branch:
        raise ValueError("model: the lesion study needs ResNet blocks (ConvBlock with skip=True); got none")
    flags = [r.conflicting for r in branch]
    n_blocks = len(flags)
    conf = [i for i, f in enumerate(flags) if f]
    nonconf = [i for i, f in enumerate(flags) if not f]
    cache = {}

    def acc(drop):
        key = frozenset(int(d) for d in drop)
        if key not in cache:
            cache[key] = accuracy(model, X_test, y_test, drop=key)
        return cache[key]

    base = acc(())
    single = [acc([b]) for b in range(n_blocks)]
    groups = {"conflicting": conf, "non_conflicting": nonconf, "random": list(range(n_blocks))}
    curves = {}
    for g, members in groups.items():
        kk = range(1, len(members) + 1) if ks is None else [k for k in ks if k <= len(members)]
        c = {"k": [], "mean": [], "std": [], "min": [], "max": [], "accs": []}
        for k in kk:
            accs = [acc(rng.choice(members, size=k, replace=False)) for _ in range(repeats)]
            c["k"].append(int(k))
            c["accs"].append(accs)
            c["mean"].append(float(np.mean(accs)))
            c["std"].append(float(np.std(accs)))
            c["min"].append(float(np.min(accs)))
            c["max"].append(float(np.max(accs)))
        c["largest_k_mean"] = _largest_ok(c["k"], c["mean"], base - tol)
        c["largest_k_all_repeats"] = _largest_ok(c["k"], c["min"], base - tol)
        c["largest_fraction_mean"] = c["largest_k_mean"] / n_blocks
        c["largest_fraction_all_repeats"] = c["largest_k_all_repeats"] / n_blocks
        curves[g] = c
    return {"n_blocks": n_blocks, "conflicting_blocks": conf, "fraction_conflicting": len(conf) / n_blocks,
            "branch_entropy": [r.entropy for r in branch], "branch_n_bundles": [r.n_bundles for r in branch],
            "block_entropy": [r.entropy for r in rep if r.kind == "block"],
            "block_n_bundles": [r.n_bundles for r in rep if r.kind == "block"],
            "base_test_acc": base, "single_block_test_acc": single,
            "drop_all_conflicting_acc": acc(conf) if conf else base, "tol": tol, "repeats": repeats,
            "curves": curves, "n_evaluations": len(cache)}
