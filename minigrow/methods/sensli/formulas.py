r"""SensLI in formulas — equations S1–S7 as plain functions (same symbols as ``tutorials/01_sensli.py``).

Kreis, Herberg, Köhne, Schiela, Herzog, "Sensitivity-Based Layer Insertion for Residual and Feedforward Neural
Networks", arXiv 2311.15995 (2023; v2 2025 "SensLI"). Method note: ``docs/methods/sensli.md``. Everything below
was written from the method note (which was worked out from the abstract and the authors' code; the paper body was
not available) — the closed forms (S4, S5) are *derived* there and checked numerically against the explicit
extended network (:func:`minigrow.methods.sensli.extended_sensitivities`), not quoted from the paper.

This module holds the mathematics only: arrays in, arrays out, no layers, no training loop. The engineering —
where the candidates go in a network (:mod:`.candidates`), the one-pass sensitivity computation
(:mod:`.sensitivities`), the insertion schedule and its checkpoints (:mod:`.loop`) — is built on these functions.

(S1) Virtual parameters ϑ extend the network so that the function is unchanged at ϑ = ϑ₀. Training the small
     network is the constrained problem

         min_{θ, ϑ} L(θ, ϑ)   subject to   ϑ = ϑ₀ .

(S2) Lagrangian  𝓛(θ, ϑ, λ) = L(θ, ϑ) + λᵀ(ϑ − ϑ₀).  Stationarity in ϑ at the current point gives the multiplier

         λ = −∇_ϑ L(θ, ϑ₀),                                                         :func:`shadow_price`

     the shadow price of the constraint: ‖λ‖ is the first-order rate at which the loss could fall if the
     constraint were released. SensLI inserts the candidate with the largest ‖λ_p‖.

(S3) Candidates ("virtual layers"), at their function-preserving initial values:

     * identity form, after every hidden ReLU layer l of an FNN:  ã_l = σ(V_l a_l + c_l),  V_l = I, c_l = 0
       (:func:`identity_candidate`). Function preserving because σ(σ(z)) = σ(z) for ReLU; *not* for LeakyReLU
       or tanh (refused by :func:`minigrow.methods.sensli.candidates`).
     * residual form, at every residual position: h ↦ h + W2 σ(W1 h + b1) with W1 = 0.8·I, b1 = 0, W2 = 0
       (:func:`residual_candidate`). Function preserving for any σ.

(S4) Closed form for the identity form (ReLU, convention ReLU'(0) = 0):

         ∂L/∂V_l = mean_n δ_{l,n} a_{l,n}ᵀ ,     ∂L/∂c_l = mean_n δ_{l,n} ,         :func:`identity_form_gradients`

     δ_l = ∂L/∂(V_l a_l + c_l) = ∂L/∂a_l ⊙ 1[a_l > 0] (:func:`identity_form_signal`): at V = I the virtual
     pre-activation is a_l itself, and for a ReLU hidden layer this is the ordinary backprop signal ∂L/∂z_l of the
     *small* network (the inactive units sit exactly at the kink 0, and ReLU'(0) = 0).

(S5) Closed form for the residual form (W2 = 0 makes the gradients of W1 and b1 vanish):

         ∂L/∂W2 = mean_n g_{l,n} σ(0.8 h_{l,n})ᵀ ,                                  :func:`residual_form_gradient`

     g_l = ∂L/∂h at that point of the residual stream of the small network.

(S6) Score of position p, with the gradients averaged over the B minibatches of ONE pass first, then squared:

         G_p = (1/B) Σ_b ∇_{V_p} L_b ,     s_p = ‖G_p‖_F²      (optionally s_p / numel(V_p)).
                                                               :func:`pass_average`, :func:`score`

     Only the weights enter (biases ignored). The pass updates nothing.

(S7) Selection (:func:`select`): 'abs_max' (SensLI: first argmax), 'abs_min' (control: first argmin), 'fixed' (a
     given position), 'threshold' (insert argmax only if max_p s_p > τ · s̄_free, where s̄_free is the mean, over
     the free (not frozen) weight matrices W of the current network, of the same score applied to their own
     pass-averaged gradients, ‖Ḡ_W‖_F² (or ‖Ḡ_W‖_F²/numel W when normalising). This definition is ours: the
     authors' FNN version of the threshold mode is buggy, see sensli.md §4.)

A note on the batch sums: the mean loss of a batch already carries its 1/N, so the per-batch gradients of S4/S5
are *sums* over the samples of the batch (δ and g include the 1/N); :func:`pass_average` then divides by B.
"""
from __future__ import annotations

import numpy as np

from ...layers.activations import ACTIVATIONS
from ...validate import check_array, check_choice, check_int, check_nonneg

__all__ = ["RESIDUAL_W1_SCALE", "MODES", "shadow_price", "identity_candidate", "residual_candidate",
           "identity_form_signal", "identity_form_gradients", "residual_form_gradient", "pass_average", "score",
           "scores_from_grads", "select"]

RESIDUAL_W1_SCALE = 0.8     # W1 = 0.8·I of the virtual residual block (S3, sensli.md §3)
MODES = ("abs_max", "abs_min", "fixed", "threshold")


def shadow_price(grad_virtual):
    """(S2) λ = −∇_ϑ L(θ, ϑ₀): the Lagrange multiplier of the constraint ϑ = ϑ₀."""
    return -np.asarray(grad_virtual)


def identity_candidate(width, dtype=np.float32):
    """(S3) ϑ₀ of the identity form: ``(V, c) = (I, 0)`` of shape (h_l, h_l) and (h_l,)."""
    return np.eye(width, dtype=dtype), np.zeros(width, dtype=dtype)


def residual_candidate(width, dtype=np.float32):
    """(S3) ϑ₀ of the residual form: ``(W1, b1, W2) = (0.8·I, 0, 0)``."""
    return (RESIDUAL_W1_SCALE * np.eye(width, dtype=dtype), np.zeros(width, dtype=dtype),
            np.zeros((width, width), dtype=dtype))


def identity_form_signal(dout, a):
    """(S4) δ = ∂L/∂a ⊙ 1[a > 0]: the signal at the virtual pre-activation V a + c = a (ReLU'(0) = 0).

    For a ReLU hidden layer this equals the ReLU layer's own backward, ∂L/∂z = ∂L/∂a ⊙ 1[z > 0]."""
    return dout * (a > 0)


def identity_form_gradients(delta, a):
    """(S4) of one batch: ``(Σ_n δ_n a_nᵀ, Σ_n δ_n)`` = (∂L/∂V, ∂L/∂c) at V = I, c = 0 (δ carries the 1/N)."""
    return delta.T @ a, delta.sum(axis=0)


def residual_form_gradient(g, h, activation, alpha=0.01):
    """(S5) of one batch: Σ_n g_n σ(0.8 h_n)ᵀ = ∂L/∂W2 at W1 = 0.8·I, b1 = 0, W2 = 0 (g carries the 1/N)."""
    f = ACTIVATIONS[activation][0]
    return g.T @ f(RESIDUAL_W1_SCALE * h, alpha)


def pass_average(batch_sums, n_batches):
    """(S6) G_p = (1/B) Σ_b ∇_{V_p} L_b, from the sum over the B batches of one pass."""
    return batch_sums / n_batches


def score(G, normalise=False):
    """(S6) s_p = ‖G_p‖_F² (in float64), divided by numel(G_p) when ``normalise``."""
    return float(np.sum(np.square(G, dtype=np.float64))) / (G.size if normalise else 1)


def scores_from_grads(grads, normalise=False):
    """(S6) the scores of several positions: ``[s_p for G_p in grads]`` as a float64 array."""
    return np.array([score(G, normalise) for G in grads])


def select(scores, mode="abs_max", position=None, tau=None, free_score=None):
    """(S7) the chosen position, or None (threshold not reached).

    'abs_max': first index of the maximum (np.argmax); 'abs_min': first index of the minimum; 'fixed':
    ``position``; 'threshold': argmax if max s_p > τ · s̄_free else None.
    """
    mode = check_choice("mode", mode, set(MODES))
    scores = check_array("scores", scores, ndim=1, dtype=np.float64, min_rows=0)   # finite: NaN is an error
    if scores.size == 0:
        raise ValueError(f"scores: expected a non-empty 1-d array, got shape {scores.shape}")
    if mode == "abs_max":
        return int(np.argmax(scores))
    if mode == "abs_min":
        return int(np.argmin(scores))
    if mode == "fixed":
        if position is None:
            raise ValueError("position: mode='fixed' needs a position")
        return check_int("position", position, lo=0, hi=scores.size - 1)
    if tau is None or free_score is None:
        raise ValueError("mode='threshold' needs tau and free_score (the mean score of the free weights)")
    tau = check_nonneg("tau", tau)
    return int(np.argmax(scores)) if scores.max() > tau * free_score else None
