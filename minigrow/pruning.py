r"""Variational Bernoulli unit pruning during training (after Guenter & Sideris, arXiv 2205.04650).

**What is from the papers and what is ours.** The papers state the principles: every unit is multiplied by a
binary gate ξ_j ~ Bernoulli(θ_j); the weights have Gaussian (scale-mixture) priors; a "flattening" hyper-prior makes
the optimal prior parameters closed-form and every solution deterministic (θ ∈ {0, 1}); training is projected SGD
with efficient gradient estimators; a unit is removed when θ_j reaches 0. The paper bodies and code were not
available to us. The cost, the gradients, the closed-form precision λ*, the estimators and the update below are
**our derivation** from those principles (``docs/methods/pruning.md`` §2–3, tutorial 03); they have every
property the abstracts claim, but they are not claimed to be the papers' exact equations.

The model (pruning.md §2)
-------------------------
Gated dense layer, the gate *after* the activation (a removed unit contributes exactly 0 whatever its bias)::

    a^l = φ(W^l ã^{l−1} + b^l),      ã^l = ξ^l ⊙ a^l,      ξ^l_j ~ Bernoulli(θ^l_j)   (one draw per sample)

Optionally the input pixels are gated too (:class:`InputGate`, ã^0 = ξ^0 ⊙ x). The cost per sample (N = size of
the training set)::

    C(W, θ) = mean_i E_{ξ~q_θ}[ℓ_i(W, ξ)] + (1/N) Σ_l Σ_j θ_j ( (λ_l/2) ‖w_j‖² + γ n_j )            (eq. C)

w_j = (row j of W^l, b^l_j) are unit j's incoming weights and bias, n_j = fan_in + 1 their number (the current
fan-in: it falls when the layer below is pruned), γ the price in nats per active parameter. The (1/N) makes the
prior a per-sample quantity like the data term; getting it wrong by a factor N prunes everything or nothing.

*Flattening.* With a per-unit prior keep-probability π_j under a flat hyper-prior, the optimal π_j equals θ_j and
the Bernoulli KL(q_θ ‖ p_π) vanishes. That term is the only non-affine (convex) one in θ_j. What is left is affine in
each θ_j separately — the data term too, because ξ_j is binary (E over ξ_j of f(ξ_j) = θ_j f(1) + (1 − θ_j) f(0)).
So C is multilinear in θ and its minimisers over the box [0, 1]^n lie at vertices: deterministic networks.

*Precision in closed form* (``optimal_precision``). Per layer, λ_l is the MAP estimate of the precision of the
active weights under a Gamma(a, b) hyper-prior, i.e. the minimiser of::

    C_λ(λ_l) = (1/N) [ Σ_j θ_j ( (λ_l/2)‖w_j‖² − (n_j/2) ln λ_l ) − (a − 1) ln λ_l + b λ_l ]        (eq. Cλ)

    ⇒  λ_l* = (a − 1 + ½ Σ_j θ_j n_j) / (b + ½ Σ_j θ_j ‖w_j‖²)                                    (eq. λ*)

(a = 1, b → 0: one over the mean square of the active weights; it follows the init scale). Our choice: the
Gaussian normaliser −(n_j/2) ln λ_l is *not* charged to θ_j in eq. C; its role is played by the constant price γ
(from the scale-mixture prior, γ = ln(σ_slab/s) − ½ with the posterior width s tied to the slab width σ_slab).

Gradients (pruning.md §3)
-------------------------
* Weights: backprop of the batch-mean loss with the *sampled* gates (unbiased, ξ does not depend on W), plus
  θ_j λ_l w_j / N (:func:`add_prior_weight_grads`).
* Gates, exact by multilinearity::

      ∂C/∂θ_j = E_{ξ_−j}[ mean_i ℓ_i(ξ_j = 1) − mean_i ℓ_i(ξ_j = 0) ] + p_j / N,
      p_j = (λ_l/2)‖w_j‖² + γ n_j                                                                  (eq. gθ)

  Estimators of the expectation (Δ_j): :func:`flip_gradient` (exact flip, unbiased; vectorised with the rank-one
  update z^{l+1} ± a_j W^{l+1}[:, j]), :func:`pathwise_gradient` (first-order, biased, free from backprop),
  :func:`score_function_gradient` (unbiased, noisy, undefined at θ ∈ {0, 1}: the bad example).
* Projected step θ ← clip(θ − η_θ ĝ, 0, 1) (:func:`theta_step`).
* Pruning: a unit whose θ_j ≤ ε after the warm-up is removed *physically* (row of W^l, b^l, column of W^{l+1},
  θ_j, optimiser state; :func:`remove_units`), at least one unit per layer is kept, so each epoch gets cheaper.
  At the end the units left get gate 1 (θ ≥ ½) and the gates disappear (:func:`to_deterministic`).

Additions of ours beyond that derivation (used for the MNIST defaults, docs/pruning.md)
-------------------------------------------------------------------------------------
* ``price="params"`` (:func:`price_sizes`): γ × the expected number of active parameters (eq. P), so a unit also
  pays for its outgoing column — everything that vanishes with it. Still affine in each θ_j.
* ``precondition=True``: the θ step uses ĝ_j / (γ n_j / N) — a positive diagonal scaling (same signs, same
  vertices) under which a useless unit falls at the same rate η_θ per step in every layer.
* ``estimator="flip_cv"`` (:func:`flip_cv_gradient`): the flip on a few samples of each batch with the pathwise
  estimator on all of them as control variate — unbiased, about the flip's noise on the whole batch, a fraction of
  its cost; ``cv_every`` computes the correction on every M-th batch only (weight M).
* :meth:`PruningTrainer.fit_schedule` "fine-tune" epochs (the MNIST default): :meth:`PruningTrainer.binarize`
  rounds θ to {0, 1} (θ ≥ ½ → 1), removes the zeros and freezes θ; the last epochs train the deterministic net.
* ``theta_every`` / "polish" epochs: one projected step per epoch with the epoch's mean θ-gradient, so θ settles
  on {0, 1}. Not the default any more: such large simultaneous steps removed many individually marginal but
  jointly needed units at once when layer 2 started wide (600-200; docs/pruning.md).
"""
from __future__ import annotations

import itertools

import numpy as np

from .layers import ACTIVATIONS, Activation, Dense, Layer, Sequential, activation_layer, register_layer
from .losses import get_loss
from .train import Trainer, TrainingDiverged
from .validate import check_bool, check_choice, check_int, check_nonneg, check_positive, check_prob, check_rng

__all__ = [
    "GatedDense", "InputGate", "gated_mlp", "gated_layers", "weight_layer_after", "unit_sizes",
    "unit_sq_norms", "price_sizes", "PRICES", "optimal_precision", "precision_cost", "prior_cost", "prior_theta_grad",
    "add_prior_weight_grads", "hyper_prior", "layer_precisions", "sample_gates", "set_gates",
    "forward_with_gates", "per_sample_losses",
    "flip_gradient", "pathwise_gradient", "score_function_gradient", "theta_step", "exact_expectation",
    "remove_units", "prune", "to_deterministic", "widths", "PruningTrainer", "ESTIMATORS", "flip_cv_gradient",
    "layer_gammas", "price_rates",
]

ESTIMATORS = ("flip", "flip_cv", "pathwise", "score")


# ==============================================================================================================
# Layers
# ==============================================================================================================

class _Gated:
    """Mixin for layers with Bernoulli gates: ``theta`` (keep probabilities, float64), ``xi`` (the sampled gates of
    the current batch, shape (batch, units), or None), ``unit_ids`` (each unit's index in the original network,
    so θ trajectories can be followed through pruning) and ``gate_grad`` (the pathwise quantity of the last
    backward pass)."""

    def _init_gates(self, n, theta0):
        self.theta = np.full(n, float(theta0), dtype=np.float64)
        self.unit_ids = np.arange(n)
        self.xi = None
        self.gate_grad = None
        self.gate_dout = None

    def gate(self, train):
        """The multiplier used in forward: the sampled ξ in training (when set), else the mean gate θ
        (equal to the deterministic network when θ ∈ {0, 1})."""
        if train and self.xi is not None:
            return self.xi
        return self.theta.astype(self.dtype_for_gate, copy=False)

    def extra_arrays(self):
        return {"theta": self.theta, "unit_ids": self.unit_ids}

    def load_extra(self, extra, arrays):
        if "theta" in arrays:
            th = np.asarray(arrays["theta"], dtype=np.float64)
            if th.shape != (self.n_units,):
                raise ValueError(f"{type(self).__name__}: saved theta has shape {th.shape}, expected "
                                 f"({self.n_units},)")
            self.theta = th.copy()
        if "unit_ids" in arrays:
            self.unit_ids = np.asarray(arrays["unit_ids"], dtype=np.int64).copy()


@register_layer
class GatedDense(Dense, _Gated):
    r"""Dense layer + activation + Bernoulli gate after the activation (pruning.md §2; gate placement ours).

    Forward, batch-first, with gates Ξ (one row per sample):

    .. math::  Z = X Wᵀ + b,\qquad A = φ(Z),\qquad \tilde A = Ξ ⊙ A

    Backward, for upstream G = ∂L/∂Ã:

    .. math::  ∂L/∂A = Ξ ⊙ G,\quad δ = φ'(Z) ⊙ ∂L/∂A,\quad ∂L/∂W = δᵀX,\quad ∂L/∂b = Σ_n δ_n,\quad ∂L/∂X = δW

    and the pathwise gate quantity ``gate_grad[j] = Σ_n G_{nj} A_{nj}`` (∂L/∂ξ_j if one shared gate multiplied
    unit j; used by :func:`pathwise_gradient`).

    ``theta`` is not a parameter of the optimiser: it is updated by the projected step :func:`theta_step`.
    """

    def __init__(self, in_features, out_features, activation="relu", init="torch", rng=None, dtype=np.float32,
                 bias=True, scale=1.0, alpha=0.01, theta0=1.0):
        super().__init__(in_features, out_features, init=init, rng=rng, dtype=dtype, bias=bias, scale=scale)
        self.activation = check_choice("activation", activation, set(ACTIVATIONS))
        self.alpha = float(alpha)
        self._f, self._df = ACTIVATIONS[self.activation]
        self._init_gates(self.out_features, check_prob("theta0", theta0))

    @property
    def n_units(self):
        return self.out_features

    @property
    def dtype_for_gate(self):
        return self.params["W"].dtype

    def config(self):
        return {**super().config(), "activation": self.activation, "alpha": self.alpha}

    def act(self, z):
        return self._f(z, self.alpha)

    def forward(self, x, train=True):
        self.z = z = super().forward(x, train)                              # Z = X Wᵀ + b (Dense)
        self.a = self.act(z)
        self.g = self.gate(train)
        return self.a * self.g

    def backward(self, dout, need_input_grad=True):
        self.gate_dout = dout                                                # G (per sample, for flip_cv_gradient)
        self.gate_grad = (dout * self.a).sum(axis=0)                         # Σ_n G_nj A_nj
        da = dout * self.g                                                   # ∂L/∂A = Ξ ⊙ G
        dz = self._df(self.z, self.a, da, self.alpha)                        # δ = φ'(Z) ⊙ ∂L/∂A
        return super().backward(dz, need_input_grad)

    def remove_outputs(self, keep):
        keep = np.asarray(keep)
        super().remove_outputs(keep)
        self.theta = self.theta[keep].copy()
        self.unit_ids = self.unit_ids[keep].copy()
        self.xi = None


@register_layer
class InputGate(Layer, _Gated):
    r"""Bernoulli gates on the network input: x̃ = ξ ⊙ x (optional input pruning; pruning.md §2).

    No weights. The price of an input unit is γ times the number of weights it feeds (the columns of the next
    layer's W) — our choice, since an input has no incoming weights. Removing input j drops column j of the
    next layer; the caller must then feed only the kept features (``unit_ids`` says which).
    """

    def __init__(self, n_features, theta0=1.0, dtype=np.float32, n_inputs=None):
        super().__init__()
        self.n_features = check_int("n_features", n_features, lo=1)
        # the width of the data the network is fed (unchanged by pruning: forward selects the kept features)
        self.n_inputs = self.n_features if n_inputs is None else check_int("n_inputs", n_inputs, lo=self.n_features)
        self._dtype = np.dtype(dtype)
        self._init_gates(self.n_features, check_prob("theta0", theta0))

    @property
    def input_width(self):
        """Width of the input data this layer accepts (the original number of features)."""
        return self.n_inputs

    @property
    def n_units(self):
        return self.n_features

    @property
    def dtype_for_gate(self):
        return self._dtype

    def astype(self, dtype):
        self._dtype = np.dtype(dtype)
        return self

    def config(self):
        return {"n_features": self.n_features, "dtype": self._dtype.name, "n_inputs": self.n_inputs}

    def forward(self, x, train=True):
        # The network may see the full input while inputs are pruned: select the kept features first.
        if x.shape[1] != self.n_features:
            x = x[:, self.unit_ids]
        self.a = x
        self.g = self.gate(train)
        return x * self.g

    def backward(self, dout, need_input_grad=True):
        self.gate_dout = dout
        self.gate_grad = (dout * self.a).sum(axis=0)
        return dout * self.g if need_input_grad else None

    def remove_outputs(self, keep):
        keep = np.asarray(keep)
        self.theta = self.theta[keep].copy()
        self.unit_ids = self.unit_ids[keep].copy()
        self.n_features = int(keep.size)
        self.xi = None

    def load_extra(self, extra, arrays):
        _Gated.load_extra(self, extra, arrays)


def gated_mlp(sizes, activation="relu", init="torch", rng=0, dtype=np.float32, scale=1.0, theta0=1.0,
              input_gate=False):
    """``[n_in, h_1, …, h_L, n_out]`` → [InputGate?] GatedDense(n_in→h_1) … GatedDense(→h_L) Dense(h_L→n_out).

    Same random draws as :func:`minigrow.network.mlp` for the same ``rng`` (so a gated and a dense net can start
    from the same weights).
    """
    sizes = [check_int(f"sizes[{i}]", s, lo=1) for i, s in enumerate(sizes)]
    if len(sizes) < 3:
        raise ValueError(f"sizes: expected [n_in, at least one hidden width, n_out], got {sizes}")
    rng = check_rng("rng", rng)
    layers = [InputGate(sizes[0], theta0, dtype)] if input_gate else []
    for i in range(len(sizes) - 2):
        layers.append(GatedDense(sizes[i], sizes[i + 1], activation, init=init, rng=rng, dtype=dtype,
                                 scale=scale, theta0=theta0))
    layers.append(Dense(sizes[-2], sizes[-1], init=init, rng=rng, dtype=dtype, scale=scale))
    return Sequential(layers)


def gated_layers(model):
    """Indices of the layers with gates (InputGate, GatedDense), in order."""
    return [i for i, layer in enumerate(model.layers) if isinstance(layer, _Gated)]


def weight_layers(model):
    """Indices of the layers with a weight matrix W (Dense and GatedDense)."""
    return [i for i, layer in enumerate(model.layers) if isinstance(layer, Dense)]


def weight_layer_after(model, i):
    """Index of the first Dense/GatedDense after layer ``i`` (the layer that reads unit j's output)."""
    for k in range(i + 1, len(model.layers)):
        if isinstance(model.layers[k], Dense):
            return k
    raise ValueError(f"layer {i} is gated but no Dense layer follows it; a gated layer must feed a Dense layer")


def widths(model):
    """Number of units of every gated layer."""
    return [model.layers[i].n_units for i in gated_layers(model)]


# ==============================================================================================================
# Prior terms: n_j, ‖w_j‖², λ*, the price
# ==============================================================================================================

def unit_sizes(model, i):
    """n_j for the units of layer ``i``: fan_in + 1 (incoming weights and bias) for a dense layer; for an input gate
    the number of weights the input feeds (our choice, see :class:`InputGate`)."""
    layer = model.layers[i]
    if isinstance(layer, InputGate):
        return np.full(layer.n_units, model.layers[weight_layer_after(model, i)].out_features, dtype=np.float64)
    return np.full(layer.out_features, layer.in_features + int(layer.bias), dtype=np.float64)


def unit_sq_norms(layer):
    """‖w_j‖² = Σ_k W_jk² + b_j² for every output unit j of a Dense layer (0 for an input gate)."""
    if isinstance(layer, InputGate):
        return np.zeros(layer.n_units)
    W = layer.params["W"]                      # summed in the layer's dtype (float32: relative error ~1e-6, and
    s = np.einsum("jk,jk->j", W, W).astype(np.float64)   # no float64 copy of W on every step)
    if layer.bias:
        s = s + layer.params["b"].astype(np.float64) ** 2
    return s


def _theta_of(layer):
    return layer.theta if isinstance(layer, _Gated) else np.ones(layer.out_features)


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


def hyper_prior(model, sigma0=None, strength=0.0, a=1.0, b=1e-8):
    r"""Per-layer Gamma(a_l, b_l) hyper-prior parameters {index: (a_l, b_l)}.

    ``strength`` ρ = 0 gives the plain (a, b) of eq. λ* for every layer. With ρ > 0 the hyper-prior counts as
    ρ·P_l pseudo-weights of mean square σ0² (P_l = Σ_j n_j of layer l now):
    a_l = a + ½ρP_l, b_l = b + ½ρP_l σ0², so that λ_l* = (a − 1 + ½ρP_l + ½Σθn)/(b + ½ρP_lσ0² + ½Σθ‖w‖²)
    stays below (a − 1 + ½ρP_l + ½Σn)/(b + ½ρP_lσ0²). Our addition: with a = 1, b → 0 the joint minimum of
    eq. C and eq. Cλ over (W, λ) is degenerate (ln λ* → ∞ as a layer's weights shrink, which a ReLU net can
    do at no loss by moving scale to the next layer) and Adam training indeed collapsed the weights on MNIST."""
    a, b, strength = check_positive("a", a), check_nonneg("b", b), check_nonneg("strength", strength)
    sigma0 = None if sigma0 is None else check_positive("sigma0", sigma0)
    out = {}
    for i in weight_layers(model):
        if strength > 0:
            if sigma0 is None:
                raise ValueError("hyper_prior: strength > 0 needs sigma0 (the prior weight scale)")
            P = float(np.sum(unit_sizes(model, i)))
            out[i] = (a + 0.5 * strength * P, b + 0.5 * strength * P * float(sigma0) ** 2)
        else:
            out[i] = (a, b)
    return out


def layer_precisions(model, a=1.0, b=1e-8):
    """{index: λ_l*} for every weight layer (non-gated layers count with θ = 1); ``a`` may be the dict of
    :func:`hyper_prior` (then ``b`` is ignored). If every θ of a layer is 0 (no
    active weights, λ* undefined for a = 1) the layer's weights all count with θ = 1 (our fallback)."""
    out = {}
    for i in weight_layers(model):
        layer = model.layers[i]
        th = _theta_of(layer)
        if not np.any(th > 0):
            th = np.ones_like(th)
        ai, bi = a[i] if isinstance(a, dict) else (a, b)
        out[i] = optimal_precision(th, unit_sq_norms(layer), unit_sizes(model, i), ai, bi)
    return out


PRICES = ("incoming", "params")


def _theta_in(model, k):
    """θ of the units feeding weight layer ``k`` (the gated layer just below it; ones if ungated)."""
    for m in range(k - 1, -1, -1):
        layer = model.layers[m]
        if isinstance(layer, _Gated):
            return layer.theta
        if isinstance(layer, Dense):
            return np.ones(layer.out_features)
    return np.ones(model.layers[k].in_features)


def price_sizes(model, i, price="incoming"):
    r"""The number of parameters unit j of gated layer ``i`` is charged γ for (∂/∂θ_j of the price term).

    * ``"incoming"`` (pruning.md §2): n_j = fan_in + 1, the unit's incoming weights and bias
      (:func:`unit_sizes`). Price term γ Σ_j θ_j n_j.
    * ``"params"`` (**ours**): γ × the *expected number of active parameters*, a weight being active when both
      units it connects are kept and a bias when its unit is kept:

      .. math::  P(θ) = Σ_l \big( Σ_k θ^{l}_k \big) \big( Σ_j θ^{l-1}_j \big) + Σ_l Σ_k θ^{l}_k      (eq. P)

      (θ = 1 for ungated inputs and outputs). P is again affine in each θ_j, so the vertex property holds, and at
      a vertex γP is γ × the parameter count of the pruned net. Its derivative charges unit j for *everything that
      vanishes with it*: ∂P/∂θ^l_j = Σ_i θ^{l−1}_i + 1 + Σ_k θ^{l+1}_k (incoming weights, bias, outgoing column).
      With "incoming" the outgoing column is charged only to the units above, so once layer l − 1 is small a unit
      of layer l looks almost free although removing it also removes its column in W^{l+1}.
    """
    price = check_choice("price", price, set(PRICES))
    layer = model.layers[i]
    if price == "incoming":
        return unit_sizes(model, i)
    nxt = weight_layer_after(model, i)
    out = float(np.sum(_theta_of(model.layers[nxt])))
    if isinstance(layer, InputGate):
        return np.full(layer.n_units, out)
    return np.full(layer.n_units, float(np.sum(_theta_in(model, i))) + int(layer.bias) + out)


def layer_gammas(model, gamma):
    """{weight-layer index: γ_k}: ``gamma`` is one price per active parameter for every weight layer (a number) or
    one per weight layer in order (a sequence, ours: e.g. (γ_1, γ_2, γ_3) for the three weight matrices of
    784-300-100-10)."""
    idx = weight_layers(model)
    if np.ndim(gamma) == 0:
        g = check_nonneg("gamma", gamma)
        return {k: g for k in idx}
    vals = [check_nonneg("gamma", v) for v in gamma]
    if len(vals) != len(idx):
        raise ValueError(f"gamma: expected one price per weight layer ({len(idx)}), got {len(vals)} values")
    return dict(zip(idx, vals))


def price_rates(model, i, gamma, price="incoming"):
    r"""γ n_j for the units of gated layer ``i``: the price term's derivative ∂(price)/∂θ_j.

    For one γ this is γ × :func:`price_sizes`. With one γ_k per weight layer (ours) each parameter is priced by
    the layer it belongs to: ``"params"``: ∂/∂θ^l_j = γ_l (Σ_i θ^{l−1}_i + 1) + γ_{l+1} Σ_k θ^{l+1}_k (incoming
    weights and bias in W^l, outgoing column in W^{l+1}); ``"incoming"``: γ_l (fan_in + 1). An input gate pays
    γ of the layer it feeds."""
    if np.ndim(gamma) == 0:
        return gamma * price_sizes(model, i, price)
    g = layer_gammas(model, gamma)
    layer = model.layers[i]
    nxt = weight_layer_after(model, i)
    if isinstance(layer, InputGate):
        return g[nxt] * price_sizes(model, i, price)
    if price == "incoming":
        return g[i] * unit_sizes(model, i)
    incoming = float(np.sum(_theta_in(model, i))) + int(layer.bias)
    out = float(np.sum(_theta_of(model.layers[nxt])))
    return np.full(layer.n_units, g[i] * incoming + g[nxt] * out)


def prior_cost(model, lams, gamma, n_train, price="incoming"):
    r"""The prior part of eq. C: (1/N) [Σ_l Σ_j θ_j (λ_l/2)‖w_j‖² over every weight layer (θ = 1 if ungated) plus
    the price: γ Σ_j θ_j n_j over the gated units (``price="incoming"``), or γ P(θ) of eq. P
    (``price="params"``, ours; see :func:`price_sizes`)]."""
    price = check_choice("price", price, set(PRICES))
    g = layer_gammas(model, gamma) if np.ndim(gamma) else None
    total = 0.0
    for i in weight_layers(model):
        layer = model.layers[i]
        gi = gamma if g is None else g[i]
        th = _theta_of(layer)
        total += float(np.sum(th * 0.5 * lams[i] * unit_sq_norms(layer)))
        if price == "params":
            total += gi * float(np.sum(th)) * (float(np.sum(_theta_in(model, i))) + int(layer.bias))
        elif isinstance(layer, _Gated):
            total += gi * float(np.sum(th * unit_sizes(model, i)))
    if price == "incoming":
        for i in gated_layers(model):
            if isinstance(model.layers[i], InputGate):
                gi = gamma if g is None else g[weight_layer_after(model, i)]
                total += float(np.sum(model.layers[i].theta * gi * unit_sizes(model, i)))
    return total / n_train


def prior_theta_grad(model, i, lams, gamma, n_train, price="incoming", rates=None):
    r"""p_j / N with p_j = (λ_l/2)‖w_j‖² + γ n_j: the prior part of ∂C/∂θ_j for the units of gated layer ``i``
    (γ n_j from :func:`price_rates`: n_j = fan_in + 1, or with ``price="params"`` everything that vanishes with the
    unit; ``rates``: γ n_j already computed)."""
    layer = model.layers[i]
    lam = lams.get(i, 0.0)
    gn = price_rates(model, i, gamma, price) if rates is None else rates
    return (0.5 * lam * unit_sq_norms(layer) + gn) / n_train


def add_prior_weight_grads(model, lams, n_train):
    r"""Add ∂/∂w_j of the prior, θ_j λ_l w_j / N, to the gradients of every weight layer (weights and bias)."""
    for i in weight_layers(model):
        layer = model.layers[i]
        c = (_theta_of(layer) * (lams[i] / n_train)).astype(layer.params["W"].dtype)
        layer.grads["W"] += c[:, None] * layer.params["W"]
        if layer.bias:
            layer.grads["b"] += c * layer.params["b"]


# ==============================================================================================================
# Gates: sampling, fixed-gate forward
# ==============================================================================================================

def sample_gates(model, batch, rng):
    """Draw ξ^l_{nj} ~ Bernoulli(θ^l_j), one independent draw per sample n, for every gated layer; sets ``xi``.
    ``rng``: a numpy Generator or an int seed."""
    return _sample_gates(model, check_int("batch", batch, lo=1), check_rng("rng", rng))


def _sample_gates(model, batch, rng):
    for i in gated_layers(model):
        layer = model.layers[i]
        if np.all(layer.theta == 1.0):         # ξ = 1 surely: no draw (warm-up, deterministic net)
            layer.xi = np.ones((batch, layer.n_units), dtype=layer.dtype_for_gate)
            continue
        u = rng.random((batch, layer.n_units), dtype=np.float32)    # float32 uniforms: half the cost of float64
        layer.xi = (u < layer.theta).astype(layer.dtype_for_gate)
    return [model.layers[i].xi for i in gated_layers(model)]


def set_gates(model, gates):
    """Set ``xi`` of the gated layers to ``gates`` (one array per gated layer, shape (units,) or (batch, units);
    None clears them, so forward uses θ)."""
    idx = gated_layers(model)
    if gates is None:
        gates = [None] * len(idx)
    if len(gates) != len(idx):
        raise ValueError(f"gates: expected {len(idx)} arrays (one per gated layer), got {len(gates)}")
    for i, g in zip(idx, gates):
        layer = model.layers[i]
        layer.xi = None if g is None else np.asarray(g, dtype=layer.dtype_for_gate)


def _apply(layer, x, gate=None):
    """Pure forward of one layer (no caches), with a given gate for a gated layer. ``x`` may have extra leading
    axes (batch, variants, features)."""
    if isinstance(layer, GatedDense):
        z = x @ layer.params["W"].T
        if layer.bias:
            z += layer.params["b"]
        return layer.act(z) * (layer.theta if gate is None else gate)
    if isinstance(layer, Dense):
        z = x @ layer.params["W"].T
        return z + layer.params["b"] if layer.bias else z
    if isinstance(layer, InputGate):
        return x * (layer.theta if gate is None else gate)
    if isinstance(layer, Activation):
        return layer.apply(x)
    return layer.forward(x, train=False)


def forward_with_gates(model, X, gates):
    """Network outputs with the gates fixed to ``gates`` (one array per gated layer, broadcastable to
    (batch, units)); no caches are touched. The oracle for the tests and the enumeration."""
    gi = {i: g for i, g in zip(gated_layers(model), gates)}
    for i, layer in enumerate(model.layers):
        X = _apply(layer, X, gi.get(i))
    return X


def per_sample_losses(loss, out, y):
    """ℓ_n for outputs of any leading shape (..., K): flattened to rows, labels repeated to match."""
    loss = get_loss(loss)
    lead = out.shape[:-1]
    y = np.asarray(y)
    reps = int(np.prod(lead[1:])) if len(lead) > 1 else 1
    yr = np.repeat(y, reps, axis=0) if reps > 1 else y
    return loss.per_sample(out.reshape(-1, out.shape[-1]), yr).reshape(lead)


# ==============================================================================================================
# θ-gradient estimators (pruning.md §3) — the data part Δ_j of eq. gθ
# ==============================================================================================================

def flip_gradient(model, i, y, loss, max_elements=1 << 23, n_samples=None, per_sample=False):
    r"""Exact flip estimator of Δ_j = ∂/∂θ_j E_ξ[mean_n ℓ_n] for the units of gated layer ``i`` (unbiased).

    Uses the gates ξ and activations cached by the last ``model.forward(X, train=True)``. For sample n and unit j it
    evaluates the loss with ξ_nj flipped, the other gates kept, and forms

    .. math::  \hat Δ_j = \frac1B Σ_n (ℓ_n(ξ_{nj}=1) − ℓ_n(ξ_{nj}=0))
                        = \frac1B Σ_n (1 − 2ξ_{nj}) (ℓ_n^{\rm flip} − ℓ_n)

    Flipping unit j changes only the next pre-activation, by a rank-one term:

    .. math::  z^{l+1}_{n}(\text{flip } j) = z^{l+1}_n + (1 − 2ξ_{nj})\, a_{nj}\, W^{l+1}[:, j]

    so all flips of a layer are one (B, h_l, h_{l+1}) tensor, pushed through the layers above as B·h_l extra
    samples — no Python loop over units. When B·h_l·(widest layer above) exceeds ``max_elements`` the units are
    processed in blocks of c units (c = max_elements // (B · widest)), still vectorised within each block.

    ``n_samples``: use only the first that many samples of the batch (the batch is a random draw, so the estimate
    stays unbiased; cost falls proportionally, variance rises). ``per_sample=True`` returns the (S, h_l) array of
    per-sample differences ℓ_n(ξ_nj=1) − ℓ_n(ξ_nj=0) instead of their mean.
    """
    loss = get_loss(loss)
    layers = model.layers
    g = layers[i]
    if g.xi is None:
        raise ValueError("flip_gradient: no sampled gates cached; run sample_gates and model.forward(X, True)")
    k = weight_layer_after(model, i)
    nxt = layers[k]
    a = g.a                                     # (B, h_l) ungated values of layer i
    xi = g.xi
    if n_samples is not None and n_samples < a.shape[0]:
        a, xi, y = a[:n_samples], xi[:n_samples], np.asarray(y)[:n_samples]
    B, h = a.shape
    s = (1 - 2 * xi) * a                        # signed change of ã_nj under the flip
    # Current state: z^{l+1} from the cached gated output (any layers between i and k are parameter-free)
    x = a * xi
    for m in range(i + 1, k):
        x = _apply(layers[m], x)
    z_next = x @ nxt.params["W"].T
    if nxt.bias:
        z_next += nxt.params["b"]
    gates_above = {m: layers[m].xi[:B] for m in range(k, len(layers)) if isinstance(layers[m], _Gated)}
    out_cur = _forward_from(layers, k, z_next, gates_above, pre=True)
    l_cur = per_sample_losses(loss, out_cur, y)                      # (B,)
    widest = max([nxt.out_features] + [layers[m].out_features for m in range(k, len(layers))
                                       if isinstance(layers[m], Dense)])
    c = max(1, min(h, int(max_elements // max(1, B * widest))))
    WT = nxt.params["W"].T                                           # (h_l, h_{l+1}); column j of W is row j here
    delta = np.empty((B, h) if per_sample else h, dtype=np.float64)
    for j0 in range(0, h, c):
        j1 = min(h, j0 + c)
        zf = z_next[:, None, :] + s[:, j0:j1, None] * WT[None, j0:j1, :]   # (B, c, h_{l+1}) rank-one updates
        out = _forward_from(layers, k, zf, {m: (None if v is None else v[:, None, :])
                                            for m, v in gates_above.items()}, pre=True)
        l_flip = per_sample_losses(loss, out, y)                     # (B, c)
        d = (1 - 2 * xi[:, j0:j1]) * (l_flip - l_cur[:, None])      # ℓ(ξ=1) − ℓ(ξ=0) per sample and unit
        if per_sample:
            delta[:, j0:j1] = d
        else:
            delta[j0:j1] = d.astype(np.float64).mean(axis=0)
    return delta


def flip_cv_gradient(model, i, y, loss, n_samples, max_elements=1 << 23, weight=1.0):
    r"""Flip estimator with the pathwise estimator as a control variate (ours): unbiased like the flip estimator,
    at the cost of flipping only S = ``n_samples`` samples of the batch.

    Per sample, the pathwise quantity d^{path}_{nj} = (∂ℓ_n/∂ã_nj) a_nj is the first-order (linearised) version of
    the flip difference d^{flip}_{nj} = ℓ_n(ξ_nj=1) − ℓ_n(ξ_nj=0), and it comes free with backprop for all B
    samples. Estimate its mean on the whole batch and correct its bias with the flip on S samples:

    .. math::  \hat Δ^{cv}_j = \frac1B Σ_{n ≤ B} d^{path}_{nj} + \frac1S Σ_{n ≤ S} (d^{flip}_{nj} − d^{path}_{nj})

    E[Δ̂^cv] = E[d^path] + E[d^flip] − E[d^path] = Δ_j (the first S samples of a random batch are a random
    sample). Its variance is Var(d^path)/B + Var(d^flip − d^path)/S (+ covariance): small when the linearisation
    is good, which is the point. S = B gives the flip estimator exactly (up to rounding).

    ``weight`` multiplies the correction term. :class:`PruningTrainer` with ``cv_every = M`` computes the correction
    on every M-th batch only, with weight M, and uses the plain pathwise estimate on the others: each estimate
    alone is then biased, but the sum over any M consecutive steps is unbiased (the correction's expectation is
    counted once per M steps), so the mean drift of θ is the exact one. Cheap because the correction's variance
    is small.

    Needs the cached activations and gates of the last ``model.forward(X, train=True)`` and the upstream gradients
    of the last backward pass (``gate_dout``), both for the same batch.
    """
    n_samples = check_int("n_samples", n_samples, lo=1)
    g = model.layers[i]
    if not isinstance(g, _Gated):
        raise ValueError(f"flip_cv_gradient: layer {i} is a {type(g).__name__}, not a gated layer")
    if g.gate_dout is None or g.gate_grad is None or g.gate_dout.shape != g.a.shape:
        raise ValueError("flip_cv_gradient: run model.forward(X, True) and a backward pass on the same batch first")
    B = g.a.shape[0]
    S = min(n_samples, B)
    d_flip = flip_gradient(model, i, y, loss, max_elements, S, per_sample=True)           # (S, h)
    d_path = B * (g.gate_dout[:S] * g.a[:S]).astype(np.float64)                          # ∂ℓ_n/∂ã_nj · a_nj
    return pathwise_gradient(model, i) + weight * (d_flip - d_path).mean(axis=0)


def _forward_from(layers, k, z, gates, pre):
    """Run layers k… on the pre-activation z of layer k (``pre=True``: layer k's affine part already done)."""
    layer = layers[k]
    if isinstance(layer, GatedDense):
        g = gates.get(k)
        x = layer.act(z) * (layer.theta if g is None else g)
    else:
        x = z
    for m in range(k + 1, len(layers)):
        x = _apply(layers[m], x, gates.get(m))
    return x


def pathwise_gradient(model, i):
    r"""Pathwise (first-order) estimate of Δ_j: ĝ_j = Σ_n (∂L/∂ã_nj) a_nj from the last backward pass
    (L = batch-mean loss, so the 1/B is inside ∂L/∂ã). It is the linearisation of the flip difference around the
    sampled gate, hence cheap but biased (pruning.md §3b)."""
    g = model.layers[i]
    if g.gate_grad is None:
        raise ValueError("pathwise_gradient: run a backward pass first")
    return g.gate_grad.astype(np.float64)


def score_function_gradient(model, i, per_sample_loss):
    r"""Score-function (REINFORCE) estimate of Δ_j:

    .. math::  \hat Δ_j = \frac1B Σ_n ℓ_n \frac{ξ_{nj} − θ_j}{θ_j (1 − θ_j)}

    unbiased but noisy, and undefined at θ_j ∈ {0, 1} (returned as 0 there: such a gate never moves). Shown in the
    tutorial as the bad example (pruning.md §3c)."""
    g = model.layers[i]
    th = g.theta
    ok = (th > 0) & (th < 1)
    w = np.zeros_like(th)
    w[ok] = 1.0 / (th[ok] * (1 - th[ok]))
    ell = np.asarray(per_sample_loss, dtype=np.float64)
    return (ell @ (g.xi.astype(np.float64) - th)) / ell.shape[0] * w


def theta_step(theta, grad, eta):
    """Projected gradient step θ ← clip(θ − η ĝ, 0, 1) (in place; returns θ). ``eta`` ≥ 0."""
    eta = check_nonneg("eta", eta)
    theta -= eta * grad
    np.clip(theta, 0.0, 1.0, out=theta)
    return theta


# ==============================================================================================================
# Exact expectation by enumeration (tiny nets; tests and tutorial)
# ==============================================================================================================

def exact_expectation(model, X, y, loss):
    r"""E_ξ[mean_n ℓ_n] and its exact θ-gradient by enumerating all 2^n gate patterns of a tiny net.

    With independent per-sample gates, E_ξ mean_n ℓ_n = Σ_ξ P(ξ) mean_n ℓ_n(ξ), P(ξ) = Π_j θ_j^{ξ_j}(1−θ_j)^{1−ξ_j},
    and ∂P/∂θ_j = (2ξ_j − 1) Π_{k≠j} P_k(ξ_k). Returns ``(E, [grad per gated layer])``. Only for n ≤ 16 units.
    """
    loss = get_loss(loss)
    idx = gated_layers(model)
    sizes = [model.layers[i].n_units for i in idx]
    n = sum(sizes)
    if n > 16:
        raise ValueError(f"exact_expectation: {n} gated units means 2^{n} patterns; use at most 16")
    theta = np.concatenate([model.layers[i].theta for i in idx])
    pats = np.array(list(itertools.product([0.0, 1.0], repeat=n)))           # (2^n, n)
    q = np.where(pats == 1, theta, 1 - theta)                               # P_k(ξ_k)
    P = q.prod(axis=1)
    L = np.empty(len(pats))
    for r, pat in enumerate(pats):
        gates = np.split(pat, np.cumsum(sizes)[:-1])
        L[r] = float(np.mean(per_sample_losses(loss, forward_with_gates(model, X, gates), y)))
    dP = np.empty_like(q)
    for j in range(n):
        dP[:, j] = (2 * pats[:, j] - 1) * np.prod(np.delete(q, j, axis=1), axis=1)
    grad = L @ dP
    return float(P @ L), np.split(grad, np.cumsum(sizes)[:-1])


# ==============================================================================================================
# Physical pruning
# ==============================================================================================================

def remove_units(model, i, keep):
    """Keep only units ``keep`` of gated layer ``i``: rows of W^l and b^l (with their optimiser state), θ, unit
    ids, and column j of the next Dense layer's W (and its state)."""
    layer = model.layers[i]
    if not isinstance(layer, _Gated):
        raise ValueError(f"i: layer {i} ({type(layer).__name__}) is not a gated layer; gated layers are "
                         f"{gated_layers(model)}")
    raw = np.asarray(keep)
    if raw.ndim != 1 or (raw.size and not np.issubdtype(raw.dtype, np.integer)):
        raise ValueError(f"keep: expected a 1-d list of integer unit indices, got {keep!r}")
    keep = np.sort(raw.astype(np.int64))
    if keep.size < 1:
        raise ValueError(f"keep: layer {i} must keep at least one unit, got an empty list")
    if keep[0] < 0 or keep[-1] >= layer.n_units:
        raise ValueError(f"keep: expected unit indices in [0, {layer.n_units}) for layer {i}, got "
                         f"{keep[(keep < 0) | (keep >= layer.n_units)].tolist()}")
    if np.any(np.diff(keep) == 0):
        raise ValueError(f"keep: expected distinct unit indices, got duplicates "
                         f"{np.unique(keep[1:][np.diff(keep) == 0]).tolist()}")
    nxt = model.layers[weight_layer_after(model, i)]
    layer.remove_outputs(keep)
    nxt.remove_inputs(keep)
    return keep


def prune(model, eps=1e-3, min_units=1):
    """Remove every unit with θ_j ≤ ε in every gated layer, keeping at least ``min_units`` (the largest θ).
    Returns ``{layer index: number removed}``."""
    check_nonneg("eps", eps)
    removed = {}
    for i in gated_layers(model):
        layer = model.layers[i]
        th = layer.theta
        keep = np.flatnonzero(th > eps)
        if keep.size < min_units:
            keep = np.sort(np.argsort(-th, kind="stable")[:min(min_units, th.size)])
        if keep.size < th.size:
            removed[i] = int(th.size - keep.size)
            remove_units(model, i, keep)
    return removed


def to_deterministic(model, threshold=0.5):
    """The final network without gates: units with θ_j < ``threshold`` are removed, the others get gate 1; each
    GatedDense becomes Dense + activation, an InputGate disappears (its ``unit_ids`` are returned so the caller
    feeds only the kept inputs). Returns ``(Sequential, input_ids or None)``. For θ ∈ {0, 1} the outputs equal
    those of the gated network with ξ = θ."""
    import copy
    threshold = check_prob("threshold", threshold)
    m = copy.deepcopy(model)
    for i in gated_layers(m):
        layer = m.layers[i]
        keep = np.flatnonzero(layer.theta >= threshold)
        if keep.size == 0:
            keep = np.array([int(np.argmax(layer.theta))])
        if keep.size < layer.n_units:
            remove_units(m, i, keep)
        layer.theta[:] = 1.0
    out, input_ids = [], None
    for layer in m.layers:
        if isinstance(layer, InputGate):
            input_ids = layer.unit_ids.copy()
        elif isinstance(layer, GatedDense):
            d = Dense(layer.in_features, layer.out_features, init="zeros", dtype=layer.params["W"].dtype,
                      bias=layer.bias)
            d.params["W"] = layer.params["W"].copy()
            if layer.bias:
                d.params["b"] = layer.params["b"].copy()
            d._init_grads()
            d.init = layer.init
            out += [d, activation_layer(layer.activation, layer.alpha)]
        else:
            out.append(layer)
    for layer in out:
        layer.state = {}
    return Sequential(out), input_ids


# ==============================================================================================================
# Training
# ==============================================================================================================

class PruningTrainer(Trainer):
    r"""Trainer for a gated network: sampled gates, the prior of eq. C, λ* and projected θ steps, and physical
    pruning at epoch ends.

    One step (:meth:`train_step`) on a batch of B samples:

    1. λ_l ← λ_l* (eq. λ*) for every weight layer, from the current W and θ;
    2. ξ ~ Bernoulli(θ) per sample and unit (``self.rng``); forward, batch-mean loss, backward;
    3. add θ_j λ_l w_j / N to the weight gradients;
    4. after the warm-up: Δ̂ by the chosen estimator, ĝ = Δ̂ + p_j / N (eq. gθ), θ ← clip(θ − η_θ ĝ, 0, 1);
    5. optimiser step on W, b.

    At every epoch end after the warm-up, units with θ ≤ ε are removed physically (:func:`prune`).

    Parameters
    ----------
    n_train : N, the training-set size of the (1/N) scaling (default: taken from ``fit``'s X)
    gamma : γ, price per active parameter (nats); or one γ_k per weight layer, in order (ours,
        :func:`layer_gammas`, :func:`price_rates`)
    price : 'incoming' (n_j = fan_in + 1, pruning.md) | 'params' (γ × expected number of active parameters,
        eq. P, ours: a unit also pays for its outgoing column); see :func:`price_sizes`
    eta_theta : η_θ, step size of the projected θ step
    estimator : 'flip' (default) | 'flip_cv' (flip on ``flip_samples`` samples + pathwise control variate on the
        whole batch, :func:`flip_cv_gradient`; ours) | 'pathwise' | 'score'
    warmup_epochs : epochs with θ frozen (no θ steps, no pruning)
    eps : pruning threshold ε
    a, b : Gamma(a, b) hyper-prior of the precisions (a = 1, b → 0: λ* = 1 / mean square of the active weights)
    sigma0, strength : per-layer pseudo-count hyper-prior (:func:`hyper_prior`); strength 0 = plain (a, b)
    record_every : record every θ (with unit ids) every this many steps, for trajectories
    max_elements : block size budget of :func:`flip_gradient`
    flip_samples : the flip estimator uses only this many samples of each batch (None = all)
    prune_every : also prune every this many steps inside an epoch (after the warm-up); None = epoch ends only
    theta_every : K — average the θ-gradient estimates of K steps and take one projected step of size K·η_θ with
        the mean (same mean drift per epoch, √K less noise; the last group of an epoch is flushed at its end).
        K = 1 (default) is the plain step-by-step rule. Ours, to let θ settle exactly on {0, 1}
        (:meth:`fit_schedule` uses K = steps per epoch in its final "polish" epochs)
    estimate_every : M — compute the θ-gradient estimate only on every M-th batch (global step ≡ 0 mod M) and let
        it stand for the M steps it covers: a step of size M·η_θ (or weight M in a ``theta_every`` average). Same
        mean drift per epoch, 1/M of the estimator's cost, √M more noise per epoch. Ours, for speed: the flip
        estimator costs several ordinary steps (bench/pruning_speed.py). M = 1 (default): every batch.
    cv_every : with ``estimator="flip_cv"``: compute the flip correction of :func:`flip_cv_gradient` on every
        cv_every-th batch only (weighted by cv_every) and use the pathwise estimate on the batches between
        (ours; unbiased over every cv_every consecutive steps, see :func:`flip_cv_gradient`).
    checkpoint_dir, checkpoint_every, checkpoint_keep, rollback, checkpoint_meta : as :class:`~minigrow.train.Trainer`;
        the method state (N, the hyper-prior, the θ trace) is in :meth:`state_dict`, θ and unit ids are saved
        with the gated layers, so :func:`minigrow.checkpoint.resume` continues a pruning run bit-identically
    precondition : divide each unit's θ-gradient by its price rate γ n_j / N before the step (ours). A positive
        diagonal scaling: the sign of every component, hence the fixed points (vertices) of the projected dynamics,
        is unchanged, but a useless unit (Δ_j = 0) now falls by η_θ per step in *every* layer. Without it a unit's
        fall rate is η_θ γ n_j / N, which is ~30× slower in a layer whose units have few parameters (layer 2 of
        784-300-100-10 once layer 1 is pruned) than in layer 1. With it, η_θ is a per-step rate (≈ 1/steps per
        epoch for "1 → 0 in about one epoch").
    Other arguments as :class:`minigrow.train.Trainer`.
    """

    def __init__(self, model, loss="ce", optimizer=None, batch_size=100, rng=0, gamma=1.0, eta_theta=0.1,
                 estimator="flip", warmup_epochs=1, eps=1e-3, price="incoming", a=1.0, b=1e-8, sigma0=None, strength=0.0, n_train=None, record_every=50,
                 max_elements=1 << 23, flip_samples=None, min_units=1, prune_every=None, scheduler=None, callbacks=(), progress=True,
                 dtype=np.float32, checkpoint_dir=None, checkpoint_every=1, checkpoint_keep=2, rollback=True,
                 checkpoint_meta=None, theta_every=1, precondition=False, estimate_every=1, cv_every=1):
        if not isinstance(model, Sequential) or not gated_layers(model):
            raise ValueError("model: expected a network with gated layers (see gated_mlp)")
        super().__init__(model, loss, optimizer, batch_size, rng, scheduler, callbacks, progress, dtype,
                         checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                         checkpoint_keep=checkpoint_keep, rollback=rollback, checkpoint_meta=checkpoint_meta)
        if np.ndim(gamma):                                       # one price per weight layer (ours)
            layer_gammas(model, gamma)                          # checks length and signs
            self.gamma = tuple(float(v) for v in gamma)
        else:
            self.gamma = check_nonneg("gamma", gamma)
        self.eta_theta = check_nonneg("eta_theta", eta_theta)
        self.estimator = check_choice("estimator", estimator, set(ESTIMATORS))
        self.price = check_choice("price", price, set(PRICES))
        self.warmup_epochs = check_int("warmup_epochs", warmup_epochs, lo=0)
        self.eps = check_prob("eps", eps)
        self.a, self.b = check_positive("a", a), check_nonneg("b", b)
        self.n_train = None if n_train is None else check_int("n_train", n_train, lo=1)
        self.record_every = check_int("record_every", record_every, lo=1)
        self.max_elements = check_int("max_elements", max_elements, lo=1)
        self.min_units = check_int("min_units", min_units, lo=1)
        self.flip_samples = None if flip_samples is None else check_int("flip_samples", flip_samples, lo=1)
        self.prune_every = None if prune_every is None else check_int("prune_every", prune_every, lo=1)
        self.theta_every = check_int("theta_every", theta_every, lo=1)
        self.estimate_every = check_int("estimate_every", estimate_every, lo=1)
        self.cv_every = check_int("cv_every", cv_every, lo=1)
        self.precondition = check_bool("precondition", precondition)
        self._gacc, self._gcount = {}, 0
        self.sigma0 = None if sigma0 is None else check_positive("sigma0", sigma0)
        self.strength = check_nonneg("strength", strength)
        self.hyper = hyper_prior(model, sigma0, self.strength, self.a, self.b)   # fixed at the start
        self.lams = layer_precisions(model, self.hyper)
        self.theta_trace = []       # (step, gated-layer position, unit ids, θ copy)
        self.callbacks.insert(0, PruningTrainer._epoch_end)
        self._record_theta()

    # --- method state for checkpoints and the divergence rollback (minigrow.checkpoint) -------------------------
    def state_dict(self):
        """``(json, arrays)``: N, the per-layer hyper-prior (fixed at the start, so it cannot be recomputed from a
        pruned net), ``theta_every`` (changed by :meth:`fit_schedule`) and the θ trace. θ and unit ids live on the gated layers and are saved with the model."""
        tr = self.theta_trace
        meta = {"n_train": self.n_train, "hyper": {str(i): [float(a), float(b)] for i, (a, b) in self.hyper.items()},
                "theta_every": self.theta_every}
        arrays = {"trace_step": np.array([t[0] for t in tr], dtype=np.int64),
                  "trace_pos": np.array([t[1] for t in tr], dtype=np.int64),
                  "trace_len": np.array([len(t[3]) for t in tr], dtype=np.int64),
                  "trace_ids": np.concatenate([t[2] for t in tr]).astype(np.int64) if tr else np.zeros(0, np.int64),
                  "trace_theta": np.concatenate([t[3] for t in tr]) if tr else np.zeros(0)}
        return meta, arrays

    def load_state_dict(self, meta, arrays):
        self.n_train = None if meta["n_train"] is None else int(meta["n_train"])
        self.hyper = {int(k): (float(v[0]), float(v[1])) for k, v in meta["hyper"].items()}
        self.theta_every = int(meta.get("theta_every", 1))
        self._gacc, self._gcount = {}, 0          # checkpoints and rollbacks are taken at epoch ends: nothing pending
        ends = np.cumsum(arrays["trace_len"])
        starts = ends - arrays["trace_len"]
        ids, th = np.asarray(arrays["trace_ids"]), np.asarray(arrays["trace_theta"], dtype=np.float64)
        if ends.size and ends[-1] != ids.size:
            raise ValueError(f"theta trace: lengths sum to {int(ends[-1])}, got {ids.size} entries")
        self.theta_trace = [(int(st), int(p), ids[a:b].copy(), th[a:b].copy()) for st, p, a, b in
                            zip(arrays["trace_step"], arrays["trace_pos"], starts, ends)]
        self.lams = layer_precisions(self.model, self.hyper)

    @property
    def theta_active(self):
        return self.epoch >= self.warmup_epochs

    def fit(self, X, y, epochs, X_test=None, y_test=None, eval_train=False):
        if self.n_train is None:
            self.n_train = int(np.asarray(X).shape[0])
        return super().fit(X, y, epochs, X_test, y_test, eval_train)

    def _record_theta(self):
        for p, i in enumerate(gated_layers(self.model)):
            layer = self.model.layers[i]
            self.theta_trace.append((self.step, p, layer.unit_ids.copy(), layer.theta.copy()))

    def theta_gradient(self, i, yb, ell):
        """Δ̂_j by ``self.estimator`` for gated layer ``i`` (after forward and backward of the batch)."""
        if self.estimator == "flip":
            return flip_gradient(self.model, i, yb, self.loss, self.max_elements, self.flip_samples)
        if self.estimator == "flip_cv":
            M = self.cv_every
            if self.step % M:                                   # between corrections: the pathwise estimate
                return pathwise_gradient(self.model, i)
            return flip_cv_gradient(self.model, i, yb, self.loss, self.flip_samples or len(yb), self.max_elements,
                                    weight=M)
        if self.estimator == "pathwise":
            return pathwise_gradient(self.model, i)
        return score_function_gradient(self.model, i, ell)

    def train_step(self, xb, yb):
        model, N = self.model, self.n_train
        self.lams = layer_precisions(model, self.hyper)                           # 1. λ*
        _sample_gates(model, xb.shape[0], self.rng)                               # 2. ξ ~ Bernoulli(θ)
        out = model.forward(xb, train=True)
        M = self.estimate_every
        estimate = self.theta_active and self.eta_theta > 0 and self.step % M == 0
        ell = self.loss.per_sample(out, yb) if self.estimator == "score" and estimate else None
        loss = self.loss.forward(out, yb)
        if not np.isfinite(loss):
            raise TrainingDiverged(self.step, self.epoch, loss)
        model.backward(self.loss.backward(), need_input_grad=False)
        add_prior_weight_grads(model, self.lams, N)                               # 3. prior on W
        if estimate:                                                              # 4. θ step
            rates = {i: price_rates(model, i, self.gamma, self.price) for i in gated_layers(model)}   # γ n_j
            grads = {i: self.theta_gradient(i, yb, ell) + prior_theta_grad(model, i, self.lams, self.gamma, N,
                                                                           self.price, r)
                     for i, r in rates.items()}
            if self.precondition:                                                 # ĝ_j / (γ n_j / N), ours
                grads = {i: g * (N / rates[i]) if np.all(rates[i] > 0) else g for i, g in grads.items()}
            if M > 1:                                                             # stands for M steps (ours)
                grads = {i: M * g for i, g in grads.items()}
            if self.theta_every == 1:
                for i, g in grads.items():
                    theta_step(model.layers[i].theta, g, self.eta_theta)
            else:
                for i, g in grads.items():
                    self._gacc[i] = self._gacc.get(i, 0.0) + g
        if self.theta_active and self.eta_theta > 0 and self.theta_every > 1:
            self._gcount += 1                                                     # steps covered so far
            if self._gcount >= self.theta_every:
                self.flush_theta()
        self.optimizer.step(model)                                                # 5. W step
        if self.prune_every and self.theta_active and (self.step + 1) % self.prune_every == 0:
            self.flush_theta()
            removed = prune(model, self.eps, self.min_units)                      # (optional) prune now
            if removed:
                self.history.events.append({"epoch": self.epoch, "step": self.step, "event": "prune",
                                            "removed": {str(k): v for k, v in removed.items()},
                                            "widths": widths(model)})
        if (self.step + 1) % self.record_every == 0:
            self._record_theta()
        return loss

    def flush_theta(self):
        """Apply the accumulated θ-gradients (``theta_every`` > 1): θ ← clip(θ − c·η_θ · ḡ) over the c steps covered,
        ḡ = (sum of the estimates, each weighted by the ``estimate_every`` steps it stands for) / c."""
        c = self._gcount
        if c:
            for i, gsum in self._gacc.items():
                theta_step(self.model.layers[i].theta, gsum / c, self.eta_theta * c)
        self._gacc, self._gcount = {}, 0

    def fit_schedule(self, X, y, epochs, polish_epochs=0, X_test=None, y_test=None, eval_train=False,
                     finetune_epochs=0):
        """Train up to ``epochs`` epochs in all (continuing from ``self.epoch``, so a resumed trainer finishes the
        same schedule). The last ``finetune_epochs`` of them train the weights of the deterministic net:
        :meth:`binarize` (θ ← 1 if θ ≥ ½ else 0, the zeros removed), then θ frozen. Before them, the last
        ``polish_epochs`` take one θ step per epoch with the epoch's mean θ-gradient (``theta_every`` = steps per
        epoch). Both are ours (see the class docstring and docs/pruning.md)."""
        epochs = check_int("epochs", epochs, lo=0)
        polish_epochs = check_int("polish_epochs", polish_epochs, lo=0)
        finetune_epochs = check_int("finetune_epochs", finetune_epochs, lo=0)
        stop_theta = max(0, epochs - finetune_epochs)
        main = max(0, stop_theta - polish_epochs)
        if self.epoch < main:
            self.fit(X, y, main - self.epoch, X_test, y_test, eval_train)
        if self.epoch < stop_theta:
            n = int(np.asarray(X).shape[0])
            self.theta_every = 1 if self.batch_size is None else int(np.ceil(n / self.batch_size))
            self.fit(X, y, stop_theta - self.epoch, X_test, y_test, eval_train)
        if self.epoch < epochs:
            self.binarize()
            self.fit(X, y, epochs - self.epoch, X_test, y_test, eval_train)
        return self.history

    def binarize(self, threshold=0.5):
        """Round θ to {0, 1} (θ_j ≥ ``threshold`` → 1; a layer keeps at least its largest θ), remove the zeros
        physically and freeze θ (``eta_theta = 0``): from now on the net is deterministic and trains as a plain
        net. Idempotent (a resumed run calls it again harmlessly). Records the fraction of θ that was already
        exactly in {0, 1} in a ``"binarize"`` history event. Ours: the final fine-tune epochs of
        :meth:`fit_schedule`."""
        model = self.model
        self.flush_theta()
        allth = np.concatenate([model.layers[i].theta for i in gated_layers(model)])
        before = float(np.mean((allth == 0) | (allth == 1)))
        changed = False
        for i in gated_layers(model):
            th = model.layers[i].theta
            on = th >= threshold
            if not on.any():
                on[int(np.argmax(th))] = True
            new = on.astype(np.float64)
            changed |= not np.array_equal(new, th)
            th[:] = new
        removed = prune(model, 0.0, self.min_units)
        self.eta_theta = 0.0
        self.theta_every = 1
        if changed or removed:
            self.history.events.append({"epoch": self.epoch, "step": self.step, "event": "binarize",
                                        "theta_binary_before": before,
                                        "removed": {str(k): v for k, v in removed.items()},
                                        "widths": widths(model)})
        return removed

    def cost(self, X, y):
        """C(W, θ) of eq. C with the expectation replaced by the mean gate (cheap monitor, exact for θ ∈ {0,1})."""
        out = self.model.predict_logits(X)
        data = float(np.mean(self.loss.per_sample(out, y)))
        return data + prior_cost(self.model, self.lams, self.gamma, self.n_train, self.price)

    @staticmethod
    def _epoch_end(trainer):
        model = trainer.model
        rec = trainer.history.epochs[-1]
        removed = {}
        trainer.flush_theta()
        if trainer.epoch > trainer.warmup_epochs:                 # θ has moved for at least one epoch
            removed = prune(model, trainer.eps, trainer.min_units)
            if removed:
                trainer.history.events.append({"epoch": trainer.epoch, "step": trainer.step, "event": "prune",
                                               "removed": {str(k): v for k, v in removed.items()},
                                               "widths": widths(model)})
        thetas = [model.layers[i].theta for i in gated_layers(model)]
        allth = np.concatenate(thetas)
        rec["widths"] = widths(model)                   # after this epoch's pruning
        rec["flops_epoch"] = 6 * rec["macs"] * trainer.n_train   # ≈ forward + backward of this epoch
        rec["n_params_after"] = model.n_params()
        rec["theta_binary_frac"] = float(np.mean((allth == 0) | (allth == 1)))
        rec["theta_near_binary_frac"] = float(np.mean(np.minimum(allth, 1 - allth) <= 0.05))
        rec["theta_hist"] = [np.histogram(t, bins=10, range=(0, 1))[0].tolist() for t in thetas]
        rec["lams"] = [float(trainer.lams[i]) for i in sorted(trainer.lams)]
        if "test_acc" in rec:
            rec["test_err"] = 1 - rec["test_acc"]
        trainer._record_theta()
        if trainer.progress:
            import sys
            print(f"   widths {rec['widths']}  θ∈{{0,1}}: {rec['theta_binary_frac']:.3f}", file=sys.stderr)
        return False

    def finalize(self, threshold=0.5):
        """The final deterministic network (:func:`to_deterministic`)."""
        return to_deterministic(self.model, threshold)
