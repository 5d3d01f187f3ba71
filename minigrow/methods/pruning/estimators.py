r"""θ-gradient estimators (pruning.md §3) — the data part Δ_j of eq. gθ — and the exact expectation of tiny nets.

The math of each estimator is in :mod:`.formulas`; here is the engineering: which arrays they read (the gate's
public :attr:`~.gate.Gate.last_input` a and :attr:`~.gate.Gate.last_upstream` G, the sampled ξ, the consumer's W),
the vectorisation of all flips of a gate as one batched pass, and its chunking under a memory budget.

Each estimator takes the gate number ``p`` (gates counted in the order they run) and works on any network with
gates; the flip estimators need a Dense consumer (the rank-one update) for 2-d gates, and a Conv2D consumer or a
Flatten → Dense consumer for channel gates on NCHW activations (the single-channel update).
"""
from __future__ import annotations

import itertools

import numpy as np

from ...layers import Conv2D, Dense
from ...losses import get_loss
from ...validate import check_int
from . import formulas as F
from .gate import Gate, _gate_number, _structure, apply_layer, forward_with_gates

__all__ = ["ESTIMATORS", "per_sample_losses", "flip_gradient", "flip_cv_gradient", "pathwise_gradient",
           "score_function_gradient", "exact_expectation"]

ESTIMATORS = ("flip", "flip_cv", "pathwise", "score")


def per_sample_losses(loss, out, y):
    """ℓ_n for outputs of any leading shape (..., K): flattened to rows, labels repeated to match."""
    loss = get_loss(loss)
    lead = out.shape[:-1]
    y = np.asarray(y)
    reps = int(np.prod(lead[1:])) if len(lead) > 1 else 1
    yr = np.repeat(y, reps, axis=0) if reps > 1 else y
    return loss.per_sample(out.reshape(-1, out.shape[-1]), yr).reshape(lead)


def _gate_site(model, p, who):
    chain, sites, _ = _structure(model)
    if not sites:
        raise ValueError("model: expected a network with gated units (Gate layers; see add_gates or gated_mlp)")
    try:
        p = _gate_number(p, len(sites))
    except ValueError as e:
        raise ValueError(f"{who}: {e}") from None
    return chain, sites[p]


def _rows(samples, B):
    """The sample rows an estimator uses: all (None), the first n (an int) or the given indices."""
    if samples is None:
        return None
    if np.ndim(samples) == 0:
        return None if samples >= B else slice(0, int(samples))
    return np.asarray(samples, dtype=np.int64)


def flip_gradient(model, p, y, loss, max_elements=1 << 23, n_samples=None, per_sample=False):
    r"""Exact flip estimator of Δ_j = ∂/∂θ_j E_ξ[mean_n ℓ_n] for the units of gate ``p`` (unbiased).

    Uses the gates ξ and the gate input a of the last ``model.forward(X, train=True)``. For sample n and unit j it
    evaluates the loss with ξ_nj flipped, the other gates kept, and averages :func:`.formulas.flip_differences`.
    Flipping unit j changes only the consumer's pre-activation, by the rank-one term of
    :func:`.formulas.flipped_preactivations`, so all flips of a gate are one (B, h_l, h_{l+1}) tensor, pushed
    through the layers above as B·h_l extra samples — no Python loop over units. When B·h_l·(widest layer above)
    exceeds ``max_elements`` the units are processed in blocks of c units (c = max_elements // (B · widest)),
    still vectorised within each block.

    ``n_samples``: use only the first that many samples of the batch (the batch is a random draw, so the estimate
    stays unbiased; cost falls proportionally, variance rises), or an array of sample indices (a random subset,
    e.g. for full-batch training where the batch order never changes). ``per_sample=True`` returns the (S, h_l)
    array of per-sample differences ℓ_n(ξ_nj=1) − ℓ_n(ξ_nj=0) instead of their mean.

    Element-wise layers between the gate and its consumer (e.g. a gate placed before its activation f) are
    allowed: the flip then changes the consumer's input by (1 − 2ξ)(f(a) − f(0)). A gate on the channels of an
    NCHW activation (conv filters) feeding a Conv2D, or a Dense layer through a Flatten, uses the single-channel
    update of :func:`_channel_flip_gradient` (pruning.md §6); other consumers of NCHW gates: ValueError.
    """
    loss = get_loss(loss)
    chain, site = _gate_site(model, p, "flip_gradient")
    g = site.gate
    if g.xi is None or g.last_input is None:
        raise ValueError("flip_gradient: no sampled gates cached; run sample_gates and model.forward(X, True)")
    if site.consumer is None:
        raise ValueError(f"flip estimator: gate {p} has no consumer ({site.blocked})")
    if g.last_input.ndim == 4:
        return _channel_flip_gradient(chain, site, y, loss, max_elements, n_samples, per_sample)
    if not isinstance(site.consumer, Dense) or g.last_input.ndim != 2:
        raise ValueError(f"flip estimator: consumer {type(site.consumer).__name__} not supported yet (the rank-one "
                         f"update is written for a Dense consumer of a 2-d gate); use estimator='pathwise'")
    k = site.cons_pos
    nxt = site.consumer
    a = g.last_input                            # (B, h_l) ungated values at gate p
    xi = g.xi
    rows = _rows(n_samples, a.shape[0])
    if rows is not None:
        a, xi, y = a[rows], xi[rows], np.asarray(y)[rows]
    B, h = a.shape
    between = chain[site.pos + 1:k]             # element-wise layers between the gate and its consumer
    if between:                                 # ξ = 1 gives f(a), ξ = 0 gives f(0): s = (1 − 2ξ)(f(a) − f(0))
        fa, f0 = a, np.zeros_like(a)
        for layer in between:
            fa, f0 = apply_layer(layer, fa), apply_layer(layer, f0)
        s = F.signed_flip_change(fa - f0, xi)
    else:
        s = F.signed_flip_change(a, xi)         # signed change of ã_nj under the flip
    # Current state: z^{l+1} from the gated values
    x = a * xi
    for layer in between:
        x = apply_layer(layer, x)
    z_next = x @ nxt.params["W"].T
    if "b" in nxt.params:
        z_next += nxt.params["b"]
    gates_above = {m: (chain[m].xi if rows is None else chain[m].xi[rows])
                   for m in range(k + 1, len(chain)) if isinstance(chain[m], Gate)}
    out_cur = _forward_from(chain, k, z_next, gates_above)
    l_cur = per_sample_losses(loss, out_cur, y)                      # (B,)
    widest = max([nxt.out_units] + [chain[m].out_units for m in range(k, len(chain))
                                    if chain[m].unit_kind == "affine"])
    c = max(1, min(h, int(max_elements // max(1, B * widest))))
    WT = nxt.params["W"].T                                           # (h_l, h_{l+1}); column j of W is row j here
    delta = np.empty((B, h) if per_sample else h, dtype=np.float64)
    above = {m: (None if v is None else v[:, None, :]) for m, v in gates_above.items()}
    for j0 in range(0, h, c):
        j1 = min(h, j0 + c)
        zf = F.flipped_preactivations(z_next, s[:, j0:j1], WT[j0:j1])  # (B, c, h_{l+1}) rank-one updates
        l_flip = per_sample_losses(loss, _forward_from(chain, k, zf, above), y)     # (B, c)
        d = F.flip_differences(xi[:, j0:j1], l_cur, l_flip)         # ℓ(ξ=1) − ℓ(ξ=0) per sample and unit
        if per_sample:
            delta[:, j0:j1] = d
        else:
            delta[j0:j1] = d.astype(np.float64).mean(axis=0)
    return delta


def _channel_flip_gradient(chain, site, y, loss, max_elements, n_samples, per_sample):
    r"""The flip estimator for a gate on the channels of an NCHW activation (conv filters, pruning.md §6).

    Flipping ξ_nc changes the consumer's pre-activation by (1 − 2ξ_nc) U[n, c] with U the contribution of the
    single channel a[n, c] (:func:`.formulas.channel_contributions_conv` for a Conv2D consumer: a correlation of
    a[n, c] with W[:, c]; :func:`.formulas.channel_contributions_dense` for a Dense consumer behind a flatten: the
    H·W column block of channel c). All flips of a block of c channels are then B·c variants of the consumer's
    output, pushed through the layers above as one batch (a Dense-only remainder keeps the (B, c, h) layout; a
    remainder with convolutions or pools runs them as B·c samples), blocks sized so that B·c·(largest activation
    above) ≤ ``max_elements``. No loop over samples; one over channel blocks."""
    g, k, nxt = site.gate, site.cons_pos, site.consumer
    between = chain[site.pos + 1:k]
    flat = [layer for layer in between if layer.unit_kind == "flatten"]
    if len(flat) != len(between) or (isinstance(nxt, Dense) and len(flat) != 1) or (
            not isinstance(nxt, Dense) and (flat or not isinstance(nxt, Conv2D))):
        raise ValueError(f"flip estimator: a channel gate must feed a Conv2D directly or a Dense layer through one "
                         f"Flatten (found {[type(x).__name__ for x in between]} then {type(nxt).__name__}); put the "
                         f"gate after the pooling (add_gates does) or use estimator='pathwise'")
    a, xi = g.last_input, g.xi
    rows = _rows(n_samples, a.shape[0])
    y = np.asarray(y)
    if rows is not None:
        a, xi, y = a[rows], xi[rows], y[rows]
    B, C = a.shape[:2]
    s = F.signed_flip_change(np.ones_like(xi), xi)              # (1 − 2ξ_nc): the sign of the change
    x = a * xi[:, :, None, None]                                # the gated input of the sampled state
    for layer in between:
        x = apply_layer(layer, x)
    z_next = apply_layer(nxt, x)
    gates_above = {m: (chain[m].xi if rows is None else chain[m].xi[rows])
                   for m in range(k + 1, len(chain)) if isinstance(chain[m], Gate)}
    l_cur = per_sample_losses(loss, _forward_from(chain, k, z_next, gates_above), y)          # (B,)
    dense_above = all(chain[m].unit_kind != "affine" or isinstance(chain[m], Dense) for m in range(k, len(chain))) \
        and z_next.ndim == 2 and not any(chain[m].unit_kind == "flatten" for m in range(k + 1, len(chain)))
    per_variant = int(np.prod(z_next.shape[1:]))
    for m in range(k + 1, len(chain)):                          # the largest activation a variant carries above
        if chain[m].unit_kind == "affine" and getattr(chain[m], "out_units", None):
            per_variant = max(per_variant, chain[m].out_units)
    c = max(1, min(C, int(max_elements // max(1, B * per_variant))))
    W = nxt.params["W"]
    delta = np.empty((B, C) if per_sample else C, dtype=np.float64)
    for j0 in range(0, C, c):
        j1 = min(C, j0 + c)
        if isinstance(nxt, Dense):
            U = F.channel_contributions_dense(a[:, j0:j1], W.reshape(W.shape[0], C, -1)[:, j0:j1].reshape(
                W.shape[0], -1))                                                              # (B, c, h)
        else:
            U = F.channel_contributions_conv(a[:, j0:j1], W[:, j0:j1], nxt.stride, nxt.padding)   # (B, c, O, Ho, Wo)
        zf = z_next[:, None] + s[:, j0:j1].reshape(B, j1 - j0, *([1] * (U.ndim - 2))) * U
        if dense_above:                                                 # (B, c, h) through Dense layers
            above = {m: (None if v is None else v[:, None, :]) for m, v in gates_above.items()}
            l_flip = per_sample_losses(loss, _forward_from(chain, k, zf, above), y)          # (B, c)
        else:                                                           # B·c samples through convs and pools
            above = {m: (None if v is None else np.repeat(v, j1 - j0, axis=0)) for m, v in gates_above.items()}
            out = _forward_from(chain, k, zf.reshape(B * (j1 - j0), *zf.shape[2:]), above)
            l_flip = per_sample_losses(loss, out, np.repeat(y, j1 - j0, axis=0)).reshape(B, j1 - j0)
        d = F.flip_differences(xi[:, j0:j1], l_cur, l_flip)
        if per_sample:
            delta[:, j0:j1] = d
        else:
            delta[j0:j1] = d.astype(np.float64).mean(axis=0)
    return delta


def _forward_from(chain, k, z, gates):
    """Run the layers after chain position k on z, the output of layer k (the consumer)."""
    x = z
    for m in range(k + 1, len(chain)):
        x = apply_layer(chain[m], x, gates.get(m))
    return x


def flip_cv_gradient(model, p, y, loss, n_samples, max_elements=1 << 23, weight=1.0):
    r"""Flip estimator with the pathwise estimator as a control variate (ours): unbiased like the flip estimator,
    at the cost of flipping only S = ``n_samples`` samples of the batch (:func:`.formulas.control_variate_estimate`).

    Per sample, the pathwise quantity d^{path}_{nj} = (∂ℓ_n/∂ã_nj) a_nj is the first-order (linearised) version of
    the flip difference d^{flip}_{nj} = ℓ_n(ξ_nj=1) − ℓ_n(ξ_nj=0), and it comes free with backprop for all B
    samples. Estimate its mean on the whole batch and correct its bias with the flip on S samples:

    .. math::  \hat Δ^{cv}_j = \frac1B Σ_{n ≤ B} d^{path}_{nj} + \frac1S Σ_{n ∈ S} (d^{flip}_{nj} − d^{path}_{nj})

    E[Δ̂^cv] = E[d^path] + E[d^flip] − E[d^path] = Δ_j when the S samples are a random sample of the batch (its
    first S samples for a shuffled batch, or the given indices: ``n_samples`` may be an index array). Its
    variance is Var(d^path)/B + Var(d^flip − d^path)/S (+ covariance): small when the linearisation is good, which
    is the point. S = B gives the flip estimator exactly (up to rounding).

    ``weight`` multiplies the correction term. :class:`~.trainer.PruningTrainer` with ``cv_every = M`` computes
    the correction on every M-th batch only, with weight M, and uses the plain pathwise estimate on the others:
    each estimate alone is then biased, but the sum over any M consecutive steps is unbiased.

    Needs the gate's ``last_input`` and ξ of the last ``model.forward(X, train=True)`` and ``last_upstream`` of the
    backward pass on the same batch.
    """
    if np.ndim(n_samples) == 0:
        n_samples = check_int("n_samples", n_samples, lo=1)
    _, site = _gate_site(model, p, "flip_cv_gradient")
    g = site.gate
    a, G = g.backward_pair()
    if G is None or g.last_input is None or a is not g.last_input:
        raise ValueError("flip_cv_gradient: run model.forward(X, True) and a backward pass on the same batch first")
    B = a.shape[0]
    rows = _rows(n_samples, B)
    if rows is None:
        rows = slice(0, B)
    d_flip = flip_gradient(model, p, y, loss, max_elements, n_samples if np.ndim(n_samples) else
                           min(n_samples, B), per_sample=True)                                   # (S, h)
    d_path = B * F.pathwise_per_sample(G[rows], a[rows]).astype(np.float64)
    return F.control_variate_estimate(pathwise_gradient(model, p), d_flip, d_path, weight)


def pathwise_gradient(model, p):
    r"""Pathwise (first-order) estimate of Δ_j: ĝ_j = Σ_n (∂L/∂ã_nj) a_nj from the last backward pass
    (L = batch-mean loss, so the 1/B is inside ∂L/∂ã). Cheap but biased (pruning.md §3b). Works for any gate."""
    _, site = _gate_site(model, p, "pathwise_gradient")
    a, G = site.gate.backward_pair()
    if G is None:
        raise ValueError("pathwise_gradient: run a backward pass first")
    return F.pathwise_estimate(G, a).astype(np.float64)


def score_function_gradient(model, p, per_sample_loss):
    r"""Score-function (REINFORCE) estimate of Δ_j (:func:`.formulas.score_function_estimate`): unbiased, noisy,
    0 at θ_j ∈ {0, 1}. Shown in the tutorial as the bad example (pruning.md §3c)."""
    _, site = _gate_site(model, p, "score_function_gradient")
    g = site.gate
    return F.score_function_estimate(per_sample_loss, g.xi, g.theta)


def exact_expectation(model, X, y, loss):
    r"""E_ξ[mean_n ℓ_n] and its exact θ-gradient by enumerating all 2^n gate patterns of a tiny net.

    With independent per-sample gates, E_ξ mean_n ℓ_n = Σ_ξ P(ξ) mean_n ℓ_n(ξ), P(ξ) = Π_j θ_j^{ξ_j}(1−θ_j)^{1−ξ_j},
    and ∂P/∂θ_j = (2ξ_j − 1) Π_{k≠j} P_k(ξ_k). Returns ``(E, [grad per gate])``. Only for n ≤ 16 units.
    """
    loss = get_loss(loss)
    gs = [s.gate for s in _structure(model)[1]]
    sizes = [g.n_units for g in gs]
    n = sum(sizes)
    if n > 16:
        raise ValueError(f"exact_expectation: {n} gated units means 2^{n} patterns; use at most 16")
    theta = np.concatenate([g.theta for g in gs])
    pats = np.array(list(itertools.product([0.0, 1.0], repeat=n)))           # (2^n, n)
    P, q = F.pattern_probabilities(pats, theta)                             # P(ξ), P_k(ξ_k)
    L = np.empty(len(pats))
    for r, pat in enumerate(pats):
        values = np.split(pat, np.cumsum(sizes)[:-1])
        L[r] = float(np.mean(per_sample_losses(loss, forward_with_gates(model, X, values), y)))
    dP = np.empty_like(q)
    for j in range(n):
        dP[:, j] = (2 * pats[:, j] - 1) * np.prod(np.delete(q, j, axis=1), axis=1)
    grad = L @ dP
    return float(P @ L), np.split(grad, np.cumsum(sizes)[:-1])
