r"""Variational Bernoulli unit pruning — the formulas, as plain functions of arrays (symbols as in tutorial 03).

**What is from the papers and what is ours.** The papers (Guenter & Sideris, arXiv 2205.04650) state the
principles: every unit is multiplied by a binary gate ξ_j ~ Bernoulli(θ_j); the weights have Gaussian
(scale-mixture) priors; a "flattening" hyper-prior makes the optimal prior parameters closed-form and every solution
deterministic (θ ∈ {0, 1}); training is projected SGD with efficient gradient estimators; a unit is removed when
θ_j reaches 0. The paper bodies and code were not available to us. The cost, the gradients, the closed-form
precision λ*, the estimators and the update below are **our derivation** from those principles
(``docs/methods/pruning.md`` §2–3, tutorial 03); they have every property the abstracts claim, but they are not
claimed to be the papers' exact equations.

This module holds only the math; the rest of the package is engineering:
:mod:`.gate` (the gate layer, adding gates to a network, finding a gate's producer and consumer, removal),
:mod:`.prior` (the prior terms of a whole network), :mod:`.estimators` (vectorised and chunked estimators),
:mod:`.trainer` (:class:`~.trainer.PruningTrainer`), :mod:`.settings` (:class:`~.settings.PruningSettings`).

The model (pruning.md §2)
-------------------------
A gate after the activation (a removed unit contributes exactly 0 whatever its bias)::

    a^l = φ(W^l ã^{l−1} + b^l),      ã^l = ξ^l ⊙ a^l,      ξ^l_j ~ Bernoulli(θ^l_j)   (one draw per sample)

Optionally the input pixels are gated too (ã^0 = ξ^0 ⊙ x). The cost per sample (N = size of the training set)::

    C(W, θ) = mean_i E_{ξ~q_θ}[ℓ_i(W, ξ)] + (1/N) Σ_l Σ_j θ_j ( (λ_l/2) ‖w_j‖² + γ n_j )            (eq. C)

w_j = (row j of W^l, b^l_j) are unit j's incoming weights and bias, n_j = fan_in + 1 their number (the current
fan-in: it falls when the layer below is pruned), γ the *price* in nats per active parameter (``price`` in the
code). The (1/N) makes the prior a per-sample quantity like the data term; getting it wrong by a factor N prunes
everything or nothing.

*Flattening.* With a per-unit prior keep-probability π_j under a flat hyper-prior, the optimal π_j equals θ_j and
the Bernoulli KL(q_θ ‖ p_π) vanishes. That term is the only non-affine (convex) one in θ_j. What is left is affine in
each θ_j separately — the data term too, because ξ_j is binary (E over ξ_j of f(ξ_j) = θ_j f(1) + (1 − θ_j) f(0)).
So C is multilinear in θ and its minimisers over the box [0, 1]^n lie at vertices: deterministic networks.

*Precision in closed form.* Per layer, λ_l is the MAP estimate of the precision of the active weights under a
Gamma(a, b) hyper-prior, i.e. the minimiser of::

    C_λ(λ_l) = (1/N) [ Σ_j θ_j ( (λ_l/2)‖w_j‖² − (n_j/2) ln λ_l ) − (a − 1) ln λ_l + b λ_l ]        (eq. Cλ)

    ⇒  λ_l* = (a − 1 + ½ Σ_j θ_j n_j) / (b + ½ Σ_j θ_j ‖w_j‖²)                                    (eq. λ*)

(a = 1, b → 0: one over the mean square of the active weights; it follows the init scale). Our choice: the
Gaussian normaliser −(n_j/2) ln λ_l is *not* charged to θ_j in eq. C; its role is played by the constant price γ
(from the scale-mixture prior, γ = ln(σ_slab/s) − ½ with the posterior width s tied to the slab width σ_slab).

Gradients (pruning.md §3)
-------------------------
* Weights: backprop of the batch-mean loss with the *sampled* gates (unbiased, ξ does not depend on W), plus
  θ_j λ_l w_j / N (:func:`prior_weight_gradient`).
* Gates, exact by multilinearity::

      ∂C/∂θ_j = Δ_j + p_j / N,   Δ_j = E_{ξ_−j}[ mean_i ℓ_i(ξ_j = 1) − mean_i ℓ_i(ξ_j = 0) ],
      p_j = (λ_l/2)‖w_j‖² + γ n_j                                                                  (eq. gθ)

  Estimators of Δ_j: the exact flip (:func:`flip_differences`, unbiased; vectorised with the rank-one update
  :func:`flipped_preactivations`), the pathwise one (:func:`pathwise_estimate`, first-order, biased, free from
  backprop), the score function (:func:`score_function_estimate`, unbiased, noisy, undefined at θ ∈ {0, 1}) and,
  ours, the flip with the pathwise estimate as control variate (:func:`control_variate_estimate`).
* Projected step θ ← clip(θ − η_θ ĝ, 0, 1) (:func:`theta_step`).
* Pruning: a unit whose θ_j ≤ ε after the warm-up is removed *physically*; at the end the units left get gate 1
  (θ ≥ ½) and the gates disappear.

Additions of ours (used for the MNIST defaults, docs/pruning.md)
----------------------------------------------------------------
* ``price_on="params"`` (:func:`params_price_size`): γ × the expected number of active parameters (eq. P), so a
  unit also pays for its outgoing column — everything that vanishes with it. Still affine in each θ_j.
* ``precondition``: the θ step uses ĝ_j / (γ n_j / N) (:func:`precondition`) — a positive diagonal scaling (same
  signs, same vertices) under which a useless unit falls at the same rate η_θ per step in every layer.
* The pseudo-count hyper-prior (:func:`pseudo_count_hyper_prior`).
* ``price_on="flops"``: γ × the expected forward multiply-adds (eq. P with the multiply-adds per unit pair);
  ``price_on="params+flops"``: γ_P P(θ) + γ_F F(θ) (``price`` = (γ_P, γ_F)), still multilinear.
* θ binary by the dynamics: the lazy θ step within a margin of the box (:func:`lazy_theta_step`) with
  Robbins–Monro step sizes (:func:`robbins_monro_eta`).
* ``price_balance="fisher"``: one price γ spread over the weight layers by what a parameter of each layer costs
  to describe, r_q = ½ ln(1 + N F_q/λ_q) with F_q the layer's mean empirical Fisher (eq. R, :func:`fisher_rate`,
  :func:`balanced_prices`), so that a layer whose weights the data pin down (the output layer) is dear and one
  whose weights they hardly constrain is cheap.

* Feature gates behind a flatten (:func:`channel_presence`): the flattened features of a conv are gated one by
  one and the conv's channel c is present iff one of its features is kept, E[present_c] = 1 − Π_k (1 − θ_ck)
  (eq. Pc); its kernels, bias and multiply-adds count with that expectation in eq. P, so feature (c, k) pays
  its outgoing column plus (cost of channel c) × Π_{k'≠k} (1 − θ_ck') — still multilinear.

Conv filters (pruning.md §6): the flip of channel c changes the consumer's pre-activation by ± the contribution of
that single channel (:func:`channel_contributions_conv`, :func:`channel_contributions_dense`).
"""
from __future__ import annotations

import numpy as np

from ...validate import check_nonneg

__all__ = ["prior_term", "optimal_precision", "precision_cost", "pseudo_count_hyper_prior", "params_price_size",
           "prior_theta_gradient", "prior_weight_gradient", "signed_flip_change", "flipped_preactivations",
           "channel_contributions_conv", "channel_contributions_dense", "channel_presence", "flip_differences",
           "pathwise_estimate",
           "pathwise_per_sample", "score_function_estimate", "control_variate_estimate", "precondition", "theta_step",
           "lazy_theta_step", "robbins_monro_eta", "fisher_rate", "balanced_prices", "pattern_probabilities"]


# --- eq. C: the prior part of the cost, one layer -------------------------------------------------------------
def prior_term(theta, lam, sq_norms, rates, n_train):
    r"""(1/N) Σ_j θ_j ((λ/2)‖w_j‖² + γ n_j) for one layer's units (``rates`` = γ n_j; eq. C)."""
    theta = np.asarray(theta, dtype=np.float64)
    return float(np.sum(theta * (0.5 * lam * sq_norms + rates))) / n_train


# --- eq. λ* and eq. Cλ ----------------------------------------------------------------------------------------
def optimal_precision(theta, sq_norms, n, a=1.0, b=1e-8):
    r"""Closed-form per-layer precision (eq. λ*, ours):

    .. math::  λ^* = \frac{a − 1 + ½ Σ_j θ_j n_j}{b + ½ Σ_j θ_j ‖w_j‖²}

    the stationary point of :func:`precision_cost` (MAP precision of the active weights, Gamma(a, b) hyper-prior).
    """
    theta = np.asarray(theta, dtype=np.float64)
    num = a - 1 + 0.5 * float(np.sum(theta * n))
    den = b + 0.5 * float(np.sum(theta * sq_norms))
    if num <= 0 or den <= 0:
        raise ValueError(f"optimal_precision: need a − 1 + ½Σθn > 0 and b + ½Σθ‖w‖² > 0, got {num} and {den} "
                         f"(a={a}, b={b})")
    return num / den


def precision_cost(lam, theta, sq_norms, n, n_train, a=1.0, b=1e-8):
    r"""The λ-dependent part of the cost, eq. Cλ:
    (1/N)[Σ_j θ_j((λ/2)‖w_j‖² − (n_j/2) ln λ) − (a − 1) ln λ + b λ]. Minimised by :func:`optimal_precision`."""
    theta = np.asarray(theta, dtype=np.float64)
    return (float(np.sum(theta * (0.5 * lam * sq_norms - 0.5 * n * np.log(lam))))
            - (a - 1) * np.log(lam) + b * lam) / n_train


def pseudo_count_hyper_prior(a, b, strength, n_params, sigma0):
    r"""Gamma(a_l, b_l) of a layer with P_l = ``n_params`` parameters under ρ = ``strength`` pseudo-weights of mean
    square σ0² each (ours): a_l = a + ½ρP_l, b_l = b + ½ρP_l σ0², so that
    λ_l* = (a − 1 + ½ρP_l + ½Σθn)/(b + ½ρP_lσ0² + ½Σθ‖w‖²). With a = 1, b → 0 the joint minimum of eq. C and
    eq. Cλ over (W, λ) is degenerate (ln λ* → ∞ as a layer's weights shrink, which a ReLU net can do at no loss by
    moving scale to the next layer) and Adam training indeed collapsed the weights on MNIST."""
    return a + 0.5 * strength * n_params, b + 0.5 * strength * n_params * float(sigma0) ** 2


# --- eq. P (ours) ---------------------------------------------------------------------------------------------
def params_price_size(theta_in_sum, bias, theta_out_sum):
    r"""∂P/∂θ^l_j of the expected number of active parameters (eq. P, ours)

    .. math::  P(θ) = Σ_l \big( Σ_k θ^{l}_k \big) \big( Σ_j θ^{l-1}_j \big) + Σ_l Σ_k θ^{l}_k

    ∂P/∂θ^l_j = Σ_i θ^{l−1}_i + 1 + Σ_k θ^{l+1}_k: incoming weights, bias and outgoing column of unit j."""
    return theta_in_sum + bias + theta_out_sum


def channel_presence(theta, channel, position, n_channels, hw):
    r"""Feature gates behind a flatten (ours): the probability that a channel of the (ungated) conv in front is
    still *present* — at least one of its H·W flattened features kept — and its derivatives:

    .. math::  E[\mathrm{present}_c] = 1 − Π_k (1 − θ_{ck}), \qquad
               ∂E[\mathrm{present}_c]/∂θ_{ck} = Π_{k' ≠ k} (1 − θ_{ck'})                                 (eq. Pc)

    multilinear in θ (each θ_ck appears once in the product). Feature j is (``channel[j]``, ``position[j]``) with
    position < ``hw``; features not listed (removed) count with θ = 0. The products without one factor are
    prefix × suffix products along each channel (no division: exact when some θ = 1). Returns
    ``(present (n_channels,), d_present (n_features,))``."""
    Q = np.ones((n_channels, hw))
    Q[channel, position] = 1.0 - np.asarray(theta, dtype=np.float64)          # Q[c, k] = 1 − θ_ck
    ones = np.ones((n_channels, 1))
    before = np.cumprod(np.hstack([ones, Q[:, :-1]]), axis=1)                  # Π_{k' < k}
    after = np.hstack([np.cumprod(Q[:, :0:-1], axis=1)[:, ::-1], ones])        # Π_{k' > k}
    return 1.0 - np.prod(Q, axis=1), (before * after)[channel, position]


# --- eq. gθ and the weight gradient of the prior --------------------------------------------------------------
def prior_theta_gradient(lam, sq_norms, rates, n_train):
    r"""p_j / N = ((λ_l/2)‖w_j‖² + γ n_j) / N: the prior part of ∂C/∂θ_j (eq. gθ; ``rates`` = γ n_j)."""
    return (0.5 * lam * sq_norms + rates) / n_train


def prior_weight_gradient(theta, lam, w, n_train):
    r"""θ_j λ_l w_j / N for an array ``w`` whose axis 0 is the unit j (a weight matrix or a bias), in w's dtype."""
    c = (theta * (lam / n_train)).astype(w.dtype)
    return (c[:, None] if w.ndim == 2 else c.reshape((-1,) + (1,) * (w.ndim - 1))) * w


def precondition(grad, rates, n_train):
    r"""ĝ_j / (γ n_j / N) (ours): a positive diagonal scaling, same signs, same vertices; left as is when some
    γ n_j = 0."""
    return grad * (n_train / rates) if np.all(rates > 0) else grad


def theta_step(theta, grad, eta):
    """Projected gradient step θ ← clip(θ − η ĝ, 0, 1) (in place; returns θ). ``eta`` ≥ 0."""
    eta = check_nonneg("eta", eta)
    theta -= eta * grad
    np.clip(theta, 0.0, 1.0, out=theta)
    return theta


def lazy_theta_step(zeta, grad, eta, margin):
    r"""θ binary by the dynamics (ours): the projected step on a latent ζ with a margin m > 0 around the box,

    .. math::  ζ ← \mathrm{clip}(ζ − η\,ĝ,\; −m,\; 1 + m), \qquad θ = \mathrm{clip}(ζ, 0, 1)

    (``zeta`` updated in place; returns the new θ). m = 0 is the plain projected step :func:`theta_step`.

    Why. With the plain step θ is a random walk reflected at the vertex: at a vertex where the mean gradient μ
    points outwards, one step of noise ĝ − μ against it moves θ inside, and θ is *exactly* 0 or 1 only while the
    partial sums of the noise have not overcome the drift. That fraction of time depends on μ/σ of one step alone
    (a reflected walk scaled by η is the same walk), so neither a smaller η nor Robbins–Monro steps make θ
    exactly binary; they only bring it close. With a latent, θ leaves the vertex only when the walk travels the
    whole margin m back: the walk against a wall with drift μ has an exponential stationary law of scale
    η σ² / (2μ), so P(θ not at the vertex) ≈ exp(−2 μ m / (η σ²)) — and with Robbins–Monro steps η_t → 0
    (:func:`robbins_monro_eta`) this goes to 0 for every unit whose mean gradient at its vertex is not 0. The
    latent is the "lazy projection" of dual averaging (the step accumulates the evidence, θ is its projection),
    kept within m of the box so that a unit that turns useless late still falls after m/η steps. A unit on which
    the cost is flat (μ = 0: it does not matter whether it is kept) is the one case that stays undecided; the
    vertices of eq. C are unchanged (θ = clip(ζ) ranges over the same box)."""
    eta = check_nonneg("eta", eta)
    margin = check_nonneg("margin", margin)
    zeta -= eta * grad
    np.clip(zeta, -margin, 1.0 + margin, out=zeta)
    return np.clip(zeta, 0.0, 1.0)


def robbins_monro_eta(eta0, t, tau, power):
    r"""η_t = η_0 (1 + t/τ)^{−κ} (κ = ``power``): Σ_t η_t = ∞ and Σ_t η_t² < ∞ for ½ < κ ≤ 1 (Robbins–Monro, as the
    convergence analysis of the papers assumes); κ = 0 is the constant step η_0. ``t`` steps since θ started to
    move, ``tau`` in steps."""
    if power == 0:
        return eta0
    return eta0 * (1.0 + t / tau) ** (-power)


# --- estimators of Δ_j ----------------------------------------------------------------------------------------
def signed_flip_change(a, xi):
    r"""(1 − 2ξ_nj) a_nj: the change of the gated value ã_nj = ξ_nj a_nj when ξ_nj is flipped."""
    return (1 - 2 * xi) * a


def flipped_preactivations(z_next, s, WT):
    r"""The rank-one update of the consumer's pre-activation when gate j of sample n is flipped:

    .. math::  z^{l+1}_{n}(\text{flip } j) = z^{l+1}_n + (1 − 2ξ_{nj})\, a_{nj}\, W^{l+1}[:, j]

    ``z_next`` (B, h_{l+1}), ``s`` = :func:`signed_flip_change` for a block of c units (B, c), ``WT`` the matching
    rows of (W^{l+1})ᵀ (c, h_{l+1}); returns (B, c, h_{l+1})."""
    return z_next[:, None, :] + s[:, :, None] * WT[None, :, :]


def channel_contributions_conv(a, W, stride=(1, 1), padding=(0, 0)):
    r"""What each input channel of each sample contributes to a Conv2D consumer's pre-activation (pruning.md §6):

    .. math::  U[n, c, o, i, j] = Σ_{p,q} W[o, c, p, q]\; a_{pad}[n, c, i·s_h + p, j·s_w + q]

    the correlation of the single channel a[n, c] with the kernels W[:, c] (z = b + Σ_c U[:, c]). Flipping the
    gate ξ_nc changes the consumer's pre-activation by (1 − 2ξ_nc) U[n, c] — the conv analogue of the rank-one
    term a_nj W[:, j] of a dense consumer. Vectorised as one batched matrix product over the channels c:
    (C, B·Ho·Wo, kh·kw) @ (C, kh·kw, C_out); its cost B·C·C_out·Ho·Wo·kh·kw is exactly one forward pass of the
    consumer on B samples. ``a`` (B, C, H, W), ``W`` (C_out, C, kh, kw); returns (B, C, C_out, Ho, Wo)."""
    B, C, H, Wd = a.shape
    Co, _, kh, kw = W.shape
    (sh, sw), (ph, pw) = stride, padding
    if ph or pw:
        ap = np.zeros((B, C, H + 2 * ph, Wd + 2 * pw), dtype=a.dtype)
        ap[:, :, ph:ph + H, pw:pw + Wd] = a
        a = ap
    Ho, Wo = (a.shape[2] - kh) // sh + 1, (a.shape[3] - kw) // sw + 1
    s0, s1, s2, s3 = a.strides
    win = np.lib.stride_tricks.as_strided(a, (C, B, Ho, Wo, kh, kw), (s1, s0, s2 * sh, s3 * sw, s2, s3),
                                          writeable=False).reshape(C, B * Ho * Wo, kh * kw)   # (c, (n,i,j), (p,q))
    Wc = W.transpose(1, 2, 3, 0).reshape(C, kh * kw, Co)                                      # (c, (p,q), o)
    U = np.matmul(win, Wc)                                                                    # (c, (n,i,j), o)
    return U.reshape(C, B, Ho, Wo, Co).transpose(1, 0, 4, 2, 3)


def channel_contributions_dense(a, W):
    r"""What each channel of each sample contributes to a Dense consumer behind a flatten of (C, H, W):

    .. math::  U[n, c, o] = Σ_{k < HW} W[o, c·HW + k]\; a[n, c, k]

    (channel c feeds the H·W column block c·HW … c·HW + HW − 1). Flipping ξ_nc changes the consumer's
    pre-activation by (1 − 2ξ_nc) U[n, c]. One batched product over c: (C, B, HW) @ (C, HW, C_out).
    ``a`` (B, C, H, W) or (B, C, HW), ``W`` (C_out, C·HW); returns (B, C, C_out)."""
    B, C = a.shape[:2]
    a = a.reshape(B, C, -1)
    hw = a.shape[2]
    Wc = W.reshape(W.shape[0], C, hw).transpose(1, 2, 0)                                      # (c, k, o)
    return np.matmul(a.transpose(1, 0, 2), Wc).transpose(1, 0, 2)


def flip_differences(xi, l_cur, l_flip):
    r"""ℓ_n(ξ_nj = 1) − ℓ_n(ξ_nj = 0) = (1 − 2ξ_nj)(ℓ_n^{flip j} − ℓ_n) per sample and unit; their batch mean is the
    flip estimate Δ̂_j (unbiased)."""
    return (1 - 2 * xi) * (l_flip - l_cur[:, None])


def pathwise_per_sample(upstream, a):
    r"""d^{path}_{nj} = (∂L/∂ã_nj) a_nj (summed over the spatial axes of an NCHW gate): the linearisation of the flip
    difference around the sampled gate (times 1/B, since L is the batch mean)."""
    d = upstream * a
    return d if d.ndim == 2 else d.sum(axis=tuple(range(2, d.ndim)))


def pathwise_estimate(upstream, a):
    r"""ĝ_j = Σ_n (∂L/∂ã_nj) a_nj (pathwise, first-order, biased; pruning.md §3b): ∂L/∂ξ_j if one gate shared by the
    batch multiplied unit j."""
    d = upstream * a
    return d.sum(axis=0) if d.ndim == 2 else d.sum(axis=(0,) + tuple(range(2, d.ndim)))


def score_function_estimate(ell, xi, theta):
    r"""Score-function (REINFORCE) estimate  Δ̂_j = (1/B) Σ_n ℓ_n (ξ_nj − θ_j) / (θ_j (1 − θ_j)); unbiased but noisy,
    and undefined at θ_j ∈ {0, 1} (returned as 0 there: such a gate never moves; pruning.md §3c)."""
    ok = (theta > 0) & (theta < 1)
    w = np.zeros_like(theta)
    w[ok] = 1.0 / (theta[ok] * (1 - theta[ok]))
    ell = np.asarray(ell, dtype=np.float64)
    return (ell @ (xi.astype(np.float64) - theta)) / ell.shape[0] * w


def control_variate_estimate(path_mean, d_flip, d_path, weight=1.0):
    r"""Flip with the pathwise estimate as control variate (ours):

    .. math::  \hat Δ^{cv}_j = \frac1B Σ_{n ≤ B} d^{path}_{nj} + w \frac1S Σ_{n ∈ S} (d^{flip}_{nj} − d^{path}_{nj})

    unbiased for w = 1 when the S samples are a random subset of the batch (the weight w = M stands for M steps
    when the correction is computed on every M-th batch only)."""
    return path_mean + weight * (d_flip - d_path).mean(axis=0)


# --- eq. R (ours): the Fisher-balanced price per layer --------------------------------------------------------
def fisher_rate(fisher, lam, n_train):
    r"""r_q = ½ ln(1 + N F_q / λ_q): the nats it takes to describe one parameter of weight layer q (eq. R, ours).

    Derivation (the Laplace / minimum-description-length argument, per weight). Give a weight w a Gaussian
    posterior N(μ, s²) against its prior N(0, 1/λ). Its KL is ½[λs² + λμ² − 1 − ln(λs²)], and the weight noise
    raises the expected data term by ½ N F s² to second order (F = the weight's Fisher information per sample, the
    diagonal of the empirical Fisher here). Minimising the sum over s gives s² = 1/(N F + λ) and

    .. math::  \min_s \big[\mathrm{KL} + ½ N F s^2\big] = ½ \ln(1 + N F/λ) + ½ λ μ^2.

    The ½λμ² is eq. C's (λ/2)‖w‖² already; the rest, ½ ln(1 + NF/λ), is what the weight costs because the data
    determine it: ≈ 0 for a weight they hardly constrain, ≈ ½ ln N for one every sample pins down. With one mean
    F_q per layer (:func:`minigrow.fisher.mean_fisher`) it is the same for every weight of the layer."""
    fisher = np.asarray(fisher, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    if np.any(fisher < 0) or np.any(lam <= 0):
        raise ValueError(f"fisher_rate: need F ≥ 0 and λ > 0, got F={fisher}, λ={lam}")
    return 0.5 * np.log1p(n_train * fisher / lam)


def balanced_prices(price, rates, sizes):
    r"""γ_q = γ r_q / r̄ with r̄ = Σ_q S_q r_q / Σ_q S_q (eq. R, ours): one price γ spread over the weight layers in
    proportion to :func:`fisher_rate`, normalised so that the network is charged γ Σ_q S_q in all, as with the
    uniform price (``sizes`` S_q: what the price counts in layer q now — its parameters, or its multiply-adds).
    Only the ratios r_q/r̄ are used: the absolute ½ ln(1 + NF/λ) is far below what prunes (docs/pruning.md)."""
    rates = np.asarray(rates, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    rbar = float(np.sum(sizes * rates) / np.sum(sizes))
    if not rbar > 0:
        return tuple(float(price) for _ in rates)
    return tuple(float(price) * rates / rbar)


def pattern_probabilities(patterns, theta):
    r"""P(ξ) = Π_j θ_j^{ξ_j}(1−θ_j)^{1−ξ_j} for each row of ``patterns``, and the factors P_j(ξ_j) (for the exact
    expectation by enumeration)."""
    q = np.where(patterns == 1, theta, 1 - theta)
    return q.prod(axis=1), q
