r"""Propositions P1–P5 about conflicting bundles (derived by us from the definitions, bundles.md §2) as readable
checks: each returns a :class:`PropositionCheck` with the bound, the observed quantity and whether it holds.

They hold exactly for exact-equality bundles (``grid=False``) and approximately for the float32 grid (B1).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...layers import Activation
from ...losses import SoftmaxCrossEntropy, log_softmax, softmax
from .formulas import bundles, label_entropy, majority_share, weight_amplitude
from .report import layer_report, logits_distinct

__all__ = ["PropositionCheck", "check_p1_accuracy_bound", "check_p2_loss_bound", "check_p3_gradient_cancellation",
           "check_p4_depth_monotonicity", "check_p5_dead_layer"]


@dataclass
class PropositionCheck:
    """Result of one proposition check: the bound, the observed quantity and whether the inequality holds."""
    name: str
    statement: str
    bound: float
    observed: float
    holds: bool
    details: dict = field(default_factory=dict)

    def __str__(self):
        return (f"{self.name}: {self.statement}\n    bound {self.bound:.6g}, observed {self.observed:.6g} → "
                f"{'holds' if self.holds else 'VIOLATED'}")


def _report(model, X, y, grid, lr, batch_size, n_classes):
    return layer_report(model, X, y, lr=lr, batch_size=batch_size, n_classes=n_classes, grid=grid)


def check_p1_accuracy_bound(model, X, y, grid=False, lr=1e-3, batch_size=64, n_classes=None, report=None):
    r"""P1 (derived): every sample of a bundle gets the same prediction, so the training accuracy on (X, y) is
    at most acc_max(B^l) (B3) at every hidden layer l; the bound is the minimum over layers.

    Proof sketch: in a chain the logits are a function of a^(l); equal a^(l) ⇒ equal logits ⇒ equal argmax;
    the best a bundle can do is predict its majority label, which is right for max_c n_bc of its samples.
    Exact for ``grid=False``; approximate on the float32 grid (members of a grid bundle differ by < γ).
    """
    report = report or _report(model, X, y, grid, lr, batch_size, n_classes)
    z = model.predict_logits(X) if grid else logits_distinct(model, X)
    acc = float((z.argmax(1) == np.asarray(y)).mean())
    per_layer = [r.acc_max for r in report]
    bound = min(per_layer) if per_layer else 1.0
    return PropositionCheck("P1", "training accuracy ≤ acc_max(B^l) for every hidden layer l", bound, acc,
                            acc <= bound + 1e-12, {"acc_max_per_layer": per_layer,
                                                   "layers": [r.name for r in report]})


def check_p2_loss_bound(model, X, y, grid=False, lr=1e-3, batch_size=64, n_classes=None, report=None, tol=1e-9):
    r"""P2 (derived): mean softmax cross-entropy ≥ H(B^l) at every hidden layer, equality iff every bundle outputs
    its own label distribution p̂_b.

    Proof sketch: the logits z_b are shared in a bundle, so Σ_{i∈b} CE_i = −Σ_c n_bc ln softmax(z_b)_c
    = |b|·[H(p̂_b) + KL(p̂_b ‖ softmax(z_b))] ≥ |b| H(p̂_b) (Gibbs); sum over b and divide by N.
    The bound is the maximum over layers (the deepest layer gives the largest H by P4).
    """
    report = report or _report(model, X, y, grid, lr, batch_size, n_classes)
    z = (model.predict_logits(X) if grid else logits_distinct(model, X)).astype(np.float64)
    ce = float(-log_softmax(z)[np.arange(z.shape[0]), np.asarray(y)].mean())
    per_layer = [r.entropy for r in report]
    bound = max(per_layer) if per_layer else 0.0
    return PropositionCheck("P2", "mean cross-entropy ≥ H(B^l) for every hidden layer l", bound, ce,
                            ce >= bound - tol, {"entropy_per_layer": per_layer})


def check_p3_gradient_cancellation(logits, y, assignment, tol=1e-9):
    r"""P3 (derived): within a bundle the logits are shared, so the summed per-sample gradients are

    .. math::  Σ_{i∈b} ∂CE_i/∂z = |b|\,(\mathrm{softmax}(z_b) − p̂_b),

    which vanishes at the bundle's optimum z_b* = ln p̂_b although each ∂CE_i/∂z = softmax(z_b) − e_{y_i} ≠ 0 when
    the bundle is conflicting: the samples of a conflicting bundle pull in opposite directions and cancel.

    ``logits`` (N, C) of the samples, ``assignment`` their bundle ids at some layer (logits are taken as equal to
    the bundle's first sample's up to float noise). Returns the identity's deviation (``observed``, bound
    ``tol``) and, in ``details``, the norm of the summed gradient at z_b* (≈ 0) against the mean per-sample
    gradient norm there (> 0) over the conflicting bundles.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    assignment = np.asarray(assignment, dtype=np.int64)
    N, C = z.shape
    nb = int(assignment.max()) + 1
    g = softmax(z)
    g[np.arange(N), y] -= 1.0                                       # ∂CE_i/∂z_i = softmax(z_i) − e_{y_i}
    S = np.zeros((nb, C))
    np.add.at(S, assignment, g)                                     # Σ_{i∈b} ∂CE_i/∂z
    counts = np.zeros((nb, C))
    np.add.at(counts, (assignment, y), 1.0)
    size = counts.sum(1, keepdims=True)
    p_hat = counts / size
    first = np.full(nb, N)
    np.minimum.at(first, assignment, np.arange(N))
    predicted = size * (softmax(z[first]) - p_hat)                  # |b| (softmax(z_b) − p̂_b)
    dev = float(np.abs(S - predicted).max())
    conflicting = (counts > 0).sum(1) >= 2
    det = {"n_conflicting": int(conflicting.sum()), "summed_norm_at_opt": 0.0, "per_sample_norm_at_opt": 0.0}
    if conflicting.any():
        with np.errstate(divide="ignore"):
            z_opt = np.log(p_hat)                                   # z_b* = ln p̂_b (−inf for absent classes)
        p_opt = np.exp(z_opt)                                       # softmax(ln p̂_b) = p̂_b (Σ p̂ = 1)
        g_opt = p_opt[assignment] - np.eye(C)[y]
        S_opt = np.zeros((nb, C))
        np.add.at(S_opt, assignment, g_opt)
        sel = conflicting[assignment]
        det["summed_norm_at_opt"] = float(np.linalg.norm(S_opt[conflicting], axis=1).max())
        det["per_sample_norm_at_opt"] = float(np.linalg.norm(g_opt[sel], axis=1).mean())
        # cancellation in the actual network: ‖Σ_i g_i‖ / Σ_i ‖g_i‖ over conflicting bundles (1 = no cancellation)
        norms = np.zeros(nb)
        np.add.at(norms, assignment, np.linalg.norm(g, axis=1))
        det["cancellation_ratio"] = float((np.linalg.norm(S, axis=1)[conflicting]
                                           / np.maximum(norms[conflicting], 1e-300)).mean())
    holds = dev <= tol and det["summed_norm_at_opt"] <= 1e-12 and \
        (det["n_conflicting"] == 0 or det["per_sample_norm_at_opt"] > 0)
    return PropositionCheck("P3", "Σ_{i∈b} ∂CE_i/∂z = |b|(softmax(z_b) − p̂_b); = 0 at z_b = ln p̂_b", tol, dev,
                            holds, det)


def check_p4_depth_monotonicity(report):
    r"""P4 (derived): in a plain chain, samples bundled at l stay bundled at every k > l, so the partitions are
    nested, |B^k| ≤ |B^l| and H(B^k) ≥ H(B^l).

    Proof sketch: a^(k) = f(a^(l)) for a function f; a_i^(l) = a_j^(l) ⇒ a_i^(k) = a_j^(k). Coarsening a
    partition can only merge bundles (fewer of them) and conditional entropy can only grow when the conditioning
    variable is coarsened. Exact for exact-equality bundles in exact arithmetic, approximate with the float grid
    (and with BLAS, see the module note). ``report``: a :func:`layer_report` of consecutive layers of a chain.

    ``observed`` = number of samples that leave their bundle-mates between consecutive layers (0 if nested);
    ``details`` has the per-layer counts and entropies and the pairwise count/entropy violations.
    """
    counts = [r.n_bundles for r in report]
    ent = [r.entropy for r in report]
    split = 0
    for lo, hi in zip(report[:-1], report[1:]):
        a, b = lo.assignment, hi.assignment
        # a bundle of the lower layer is split above when its members have several ids above
        pairs = np.unique(np.stack([a, b], axis=1), axis=0)
        n_up = np.bincount(pairs[:, 0], minlength=lo.n_bundles)       # ids above per lower bundle
        split += int((np.bincount(a, minlength=lo.n_bundles)[n_up > 1]).sum())
    count_viol = sum(int(c2 > c1) for c1, c2 in zip(counts[:-1], counts[1:]))
    ent_viol = sum(int(h2 < h1 - 1e-12) for h1, h2 in zip(ent[:-1], ent[1:]))
    holds = split == 0 and count_viol == 0 and ent_viol == 0
    return PropositionCheck("P4", "partitions nested with depth: |B^k| ≤ |B^l|, H(B^k) ≥ H(B^l) for k > l", 0.0,
                            float(split), holds, {"n_bundles": counts, "entropy": ent,
                                                  "count_violations": count_viol, "entropy_violations": ent_viol})


def check_p5_dead_layer(model, X, y, layer_index, lr=1e-3, batch_size=64):
    r"""P5 (derived): if every pre-activation of the ReLU layer ``model.layers[layer_index]`` is ≤ 0 on X, then
    a^(l) = 0 for every sample: |B^l| = 1, H(B^l) = H(Y), acc_max = majority share, and the cross-entropy sends
    exactly zero gradient to every parameter below l (ReLU'(z) = 0 for z ≤ 0): the layers below can never
    learn, the layers above only see a constant — the network can only learn the class prior.

    Returns bound 0 and observed max |∂L/∂w| over the layers below l; details hold |B|, H, H(Y), acc_max.
    """
    layer = model.layers[layer_index]
    if not isinstance(layer, Activation) or layer.name != "relu":
        raise ValueError(f"layer_index: expected the index of a ReLU layer, got {type(layer).__name__} at "
                         f"{layer_index}")
    y = np.asarray(y)
    loss = SoftmaxCrossEntropy()
    outs = model.forward_all(X, train=False)          # eval mode; backward follows
    pre, a = outs[layer_index], outs[layer_index + 1]         # the ReLU layer's input z and output a
    out = outs[-1]
    dead = bool((pre <= 0).all())
    loss.forward(out, y)
    model.backward(loss.backward(), need_input_grad=False)
    below = [g for lay in model.layers[:layer_index] for g in lay.grads.values()]
    above = [g for lay in model.layers[layer_index:] for g in lay.grads.values()]
    g_below = float(max((np.abs(g).max() for g in below if g.size), default=0.0))
    g_above = float(max((np.abs(g).max() for g in above if g.size), default=0.0))
    w_max = weight_amplitude(model)
    b = bundles(a, y, w_max, lr, batch_size)
    H_y, maj = label_entropy(y), majority_share(y)
    holds = dead and g_below == 0.0 and b.n_bundles == 1 and abs(b.entropy - H_y) <= 1e-12 and \
        abs(b.acc_max - maj) <= 1e-12
    return PropositionCheck("P5", "dead ReLU layer ⇒ |B^l| = 1, H = H(Y), zero gradient below l", 0.0, g_below,
                            holds, {"dead": dead, "n_bundles": b.n_bundles, "entropy": b.entropy,
                                    "label_entropy": H_y, "acc_max": b.acc_max, "majority_share": maj,
                                    "max_grad_above": g_above})
