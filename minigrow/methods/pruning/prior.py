r"""The prior terms of eq. C for a whole gated network: n_j, ‖w_j‖², λ*, the price γ n_j, their gradients.

The formulas are those of :mod:`.formulas`; this module finds, for every gate, its producer and consumer
(:func:`.gate.gate_sites`) and, for every weight layer (every affine layer, numbered q = 0, 1, … in order), the
gates on its outputs and inputs. A weight layer without a gate on its outputs counts with θ = 1.

**Feature gates** (``add_gates(…, feature_gate=True)``, ours): the conv whose channels feed the flatten has no
gate of its own; channel c is *present* iff at least one of its H·W flattened features is kept, so in eq. P
("params" and "flops") its kernels, bias and multiply-adds count with

    E[present_c] = 1 − Π_k (1 − θ_ck)                                                          (eq. Pc)

(:func:`.formulas.channel_presence`) instead of θ_c, and so do the outgoing columns of the units below (conv1's
filters pay m Σ_c E[present_c]). The price of eq. P stays multilinear, and feature (c, k) pays

    ∂P/∂θ_ck = m_fc Σ θ^{fc out} + (m_conv Σ θ^{conv in} + bias) Π_{k'≠k} (1 − θ_ck')

(its outgoing column in the Dense consumer, plus the channel's cost times the probability that it alone decides
whether the channel stays); :func:`price_rates` is exactly ∂(price part of :func:`prior_cost`)/∂θ. Our choice for
the λ/2 ‖w‖² term and λ*: that conv counts every channel with θ = 1 (as an ungated layer), so the weight prior
does not depend on θ there and ‖w_c‖² adds nothing to a feature's θ-gradient. With ``price_on="incoming"`` the
feature gate pays like an input gate (the weights its feature feeds) and the conv is unpriced.

``price`` is γ, the price per active parameter in nats: one number, or one per weight layer in order (ours,
:func:`layer_prices`). ``price_on`` says what a unit pays for: ``"incoming"`` (n_j = fan_in + 1, pruning.md) or
``"params"`` (γ × the expected number of active parameters, eq. P, ours) or ``"flops"`` (γ × the expected number of
forward multiply-adds per sample, eq. P with m_q → the multiply-adds per unit pair, ours) or ``"params+flops"``
(γ_P P(θ) + γ_F F(θ) with ``price`` the pair (γ_P, γ_F), ours; its rates are the sums of the two).
"""
from __future__ import annotations

import numpy as np

from ...validate import check_choice, check_nonneg, check_positive
from . import formulas as F
from .gate import _gate_number, _structure

__all__ = ["combined_prices", "unit_sizes", "unit_sq_norms", "price_sizes", "PRICE_ON", "layer_prices", "price_rates",
           "hyper_prior", "layer_precisions", "prior_cost", "prior_theta_grad", "add_prior_weight_grads"]

PRICE_ON = ("incoming", "params", "flops", "params+flops")


def combined_prices(price):
    """(γ_P, γ_F) of ``price_on="params+flops"``: ``price`` must be that pair of numbers ≥ 0."""
    if np.ndim(price) != 1 or len(price) != 2:
        raise ValueError(f"price: with price_on='params+flops' expected a pair (γ per parameter, γ per multiply-add), "
                         f"got {price!r}")
    return check_nonneg("price[0]", price[0]), check_nonneg("price[1]", price[1])


def _bias(layer):
    return int("b" in layer.params)


def _incoming_sizes(layer):
    """fan_in + 1 (incoming weights and bias) for every output unit of a weight layer."""
    W = layer.params["W"]
    return np.full(W.shape[0], W.size // W.shape[0] + _bias(layer), dtype=np.float64)


def unit_sq_norms(layer):
    """‖w_j‖² = Σ_k W_jk² + b_j² for every output unit j of a weight layer (Dense or Conv2D)."""
    W = layer.params["W"]                      # summed in the layer's dtype (float32: relative error ~1e-6, and
    W = W.reshape(W.shape[0], -1)              # no float64 copy of W on every step)
    s = np.einsum("jk,jk->j", W, W).astype(np.float64)
    if "b" in layer.params:
        s = s + layer.params["b"].astype(np.float64) ** 2
    return s


class _Net:
    """The gates and weight layers of a network and how they connect (computed once per call)."""

    def __init__(self, model):
        _, self.sites, self.weights = _structure(model)
        if not self.sites:
            raise ValueError("model: expected a network with gated units (Gate layers; see add_gates or gated_mlp)")
        self.out_gate = {s.q_prod: s.gate for s in self.sites if s.q_prod is not None}
        self.in_gate = {s.q_cons: s.gate for s in self.sites if s.q_cons is not None}
        self.feed = {s.q_feed: s for s in self.sites if s.q_feed is not None}     # convs behind feature gates
        for q, s in self.feed.items():
            if q in self.out_gate:
                raise ValueError(f"weight layer {q} ({type(s.feeder).__name__}) has a gate on its channels and a "
                                 f"feature gate behind its flatten; use one of the two (add_gates(feature_gate=…))")
        self._presence = {}

    def site(self, p):
        s = self.sites[_gate_number(p, len(self.sites))]
        if s.consumer is None:
            raise ValueError(f"gate {p}: {s.blocked}; a gate must feed a Dense or Conv2D layer")
        return s

    def theta_out(self, q):
        """θ of the units of weight layer q (ones if ungated)."""
        g = self.out_gate.get(q)
        return g.theta if g is not None else np.ones(self.weights[q].params["W"].shape[0])

    def presence(self, s):
        """``(E[present_c] per channel, ∂E[present_c]/∂θ_j per feature j)`` of the feeder of feature gate site
        ``s`` (:func:`.formulas.channel_presence`, eq. Pc)."""
        if s.q_feed not in self._presence:
            g, C = s.gate, s.feeder.out_units
            hw = g.n_inputs // C
            self._presence[s.q_feed] = F.channel_presence(g.theta, g.index // hw, g.index % hw, C, hw)
        return self._presence[s.q_feed]

    def present_out(self, q):
        """The expected presence of the output units of weight layer q in the price: θ if gated, E[present_c] for
        a conv behind a feature gate (eq. Pc), ones otherwise."""
        s = self.feed.get(q)
        return self.theta_out(q) if s is None else self.presence(s)[0]

    def channel_cost(self, q, price_on):
        """What one present output unit of weight layer q costs in eq. P: m_q Σ θ^in + bias (f_q Σ θ^in for
        flops)."""
        return self.pair(q, price_on) * float(np.sum(self.theta_in(q))) + self.bias(q, price_on)

    def theta_in(self, q):
        """θ of the units feeding weight layer q (ones if ungated)."""
        g = self.in_gate.get(q)
        return g.theta if g is not None else np.ones(self.weights[q].params["W"].shape[1])

    def pair_size(self, q):
        r"""m_q: the parameters of weight layer q that connect one input unit to one output unit — 1 for a Dense
        layer, kh·kw for a Conv2D (W[o, c] is a kh×kw kernel), H·W for a Dense layer behind a flatten of gated
        channels (channel c feeds the H·W columns c·HW … c·HW + HW − 1). Equals (W.size / W.shape[0]) / (number of
        input units), so the expected count of eq. P is m_q (Σ θ^out)(Σ θ^in) + (bias) Σ θ^out."""
        W = self.weights[q].params["W"]
        return float((W.size // W.shape[0]) // len(self.theta_in(q)))

    def pair_flops(self, q):
        r"""f_q: the forward multiply-adds per sample that connect one input unit to one output unit of weight
        layer q — m_q for a Dense layer, kh·kw·Ho·Wo for a Conv2D (from its last forward pass); so the expected
        multiply-adds are Σ_q f_q (Σ θ^out)(Σ θ^in) (eq. P with f for m, no bias terms)."""
        layer = self.weights[q]
        macs = layer.macs()
        if not macs:
            raise ValueError(f"price_on='flops': weight layer {q} ({type(layer).__name__}) has not seen an input yet; "
                             f"run one forward pass first")
        return float(macs) / (layer.params["W"].shape[0] * len(self.theta_in(q)))

    def pair(self, q, price_on):
        """m_q ('params') or f_q ('flops')."""
        return self.pair_flops(q) if price_on == "flops" else self.pair_size(q)

    def bias(self, q, price_on):
        return 0 if price_on == "flops" else _bias(self.weights[q])


def unit_sizes(model, p):
    """n_j for the units of gate ``p``: fan_in + 1 (incoming weights and bias) of its producer; for an input gate
    the number of weights an input feeds (our choice: an input has no incoming weights)."""
    s = _Net(model).site(p)
    if s.producer is None:
        W = s.consumer.params["W"]
        return np.full(s.gate.n_units, W.size // W.shape[1], dtype=np.float64)
    return _incoming_sizes(s.producer)


def price_sizes(model, p, price_on="incoming"):
    r"""The number of parameters unit j of gate ``p`` is charged γ for (∂/∂θ_j of the price term).

    * ``"incoming"`` (pruning.md §2): n_j = fan_in + 1, the unit's incoming weights and bias (:func:`unit_sizes`).
    * ``"params"`` (**ours**): γ × the *expected number of active parameters*, a weight being active when both
      units it connects are kept and a bias when its unit is kept (eq. P, :func:`.formulas.params_price_size`);
      the derivative charges unit j for *everything that vanishes with it*: incoming weights, bias, outgoing
      column. With "incoming" the outgoing column is charged only to the units above, so once layer l − 1 is small
      a unit of layer l looks almost free although removing it also removes its column in W^{l+1}.
    """
    price_on = check_choice("price_on", price_on, set(PRICE_ON))
    if price_on == "params+flops":
        raise ValueError("price_sizes: price_on='params+flops' has two prices; use price_rates(model, p, (γ_P, γ_F), "
                         "'params+flops')")
    if price_on == "incoming":
        return unit_sizes(model, p)
    net = _Net(model)
    s = net.site(p)
    out = net.pair(s.q_cons, price_on) * float(np.sum(net.present_out(s.q_cons)))
    if s.producer is None:
        if s.feeder is not None:                         # feature (c, k): + cost of channel c × Π_{k'≠k}(1 − θ_ck')
            return out + net.channel_cost(s.q_feed, price_on) * net.presence(s)[1]
        return np.full(s.gate.n_units, out)
    incoming = net.pair(s.q_prod, price_on) * float(np.sum(net.theta_in(s.q_prod)))
    return np.full(s.gate.n_units, F.params_price_size(incoming, net.bias(s.q_prod, price_on), out))


def layer_prices(model, price):
    """{weight-layer number q: γ_q}: ``price`` is one price per active parameter for every weight layer (a number)
    or one per weight layer in order (a sequence, ours: e.g. (γ_1, γ_2, γ_3) for the three weight matrices of
    784-300-100-10)."""
    n = len(_structure(model)[2])
    if np.ndim(price) == 0:
        g = check_nonneg("price", price)
        return {q: g for q in range(n)}
    vals = [check_nonneg("price", v) for v in price]
    if len(vals) != n:
        raise ValueError(f"price: expected one price per weight layer ({n}), got {len(vals)} values")
    return dict(enumerate(vals))


def price_rates(model, p, price, price_on="incoming"):
    r"""γ n_j for the units of gate ``p``: the price term's derivative ∂(price)/∂θ_j.

    For one γ this is γ × :func:`price_sizes`. With one γ_q per weight layer (ours) each parameter is priced by
    the layer it belongs to: ``"params"``: ∂/∂θ^l_j = γ_l (Σ_i θ^{l−1}_i + 1) + γ_{l+1} Σ_k θ^{l+1}_k (incoming
    weights and bias in W^l, outgoing column in W^{l+1}); ``"incoming"``: γ_l (fan_in + 1). An input gate pays
    γ of the layer it feeds. ``"params+flops"``: γ_P × the "params" sizes + γ_F × the "flops" sizes."""
    if check_choice("price_on", price_on, set(PRICE_ON)) == "params+flops":
        gp, gf = combined_prices(price)
        return price_rates(model, p, gp, "params") + price_rates(model, p, gf, "flops")
    if np.ndim(price) == 0:
        return price * price_sizes(model, p, price_on)
    g = layer_prices(model, price)
    net = _Net(model)
    s = net.site(p)
    if s.producer is None:
        if s.feeder is not None and price_on != "incoming":
            out = net.pair(s.q_cons, price_on) * float(np.sum(net.present_out(s.q_cons)))
            return g[s.q_cons] * out + g[s.q_feed] * net.channel_cost(s.q_feed, price_on) * net.presence(s)[1]
        return g[s.q_cons] * price_sizes(model, p, price_on)
    if price_on == "incoming":
        return g[s.q_prod] * unit_sizes(model, p)
    incoming = net.pair(s.q_prod, price_on) * float(np.sum(net.theta_in(s.q_prod))) + net.bias(s.q_prod, price_on)
    out = net.pair(s.q_cons, price_on) * float(np.sum(net.present_out(s.q_cons)))
    return np.full(s.gate.n_units, g[s.q_prod] * incoming + g[s.q_cons] * out)


def hyper_prior(model, sigma0=None, strength=0.0, a=1.0, b=1e-8):
    r"""Per-weight-layer Gamma(a_q, b_q) hyper-prior parameters {q: (a_q, b_q)}.

    ``strength`` ρ = 0 gives the plain (a, b) of eq. λ* for every layer; ρ > 0 the pseudo-count hyper-prior of
    :func:`.formulas.pseudo_count_hyper_prior` with P_q = Σ_j n_j of the layer now (ours)."""
    a, b, strength = check_positive("a", a), check_nonneg("b", b), check_nonneg("strength", strength)
    sigma0 = None if sigma0 is None else check_positive("sigma0", sigma0)
    out = {}
    for q, layer in enumerate(_structure(model)[2]):
        if strength > 0:
            if sigma0 is None:
                raise ValueError("hyper_prior: strength > 0 needs sigma0 (the prior weight scale)")
            P = float(np.sum(_incoming_sizes(layer)))
            out[q] = F.pseudo_count_hyper_prior(a, b, strength, P, sigma0)
        else:
            out[q] = (a, b)
    return out


def layer_precisions(model, a=1.0, b=1e-8):
    """{q: λ_q*} for every weight layer (ungated layers count with θ = 1); ``a`` may be the dict of
    :func:`hyper_prior` (then ``b`` is ignored). If every θ of a layer is 0 (no active weights, λ* undefined for
    a = 1) the layer's weights all count with θ = 1 (our fallback)."""
    net = _Net(model)
    out = {}
    for q, layer in enumerate(net.weights):
        th = net.theta_out(q)
        if not np.any(th > 0):
            th = np.ones_like(th)
        aq, bq = a[q] if isinstance(a, dict) else (a, b)
        out[q] = F.optimal_precision(th, unit_sq_norms(layer), _incoming_sizes(layer), aq, bq)
    return out


def prior_cost(model, lams, price, n_train, price_on="incoming"):
    r"""The prior part of eq. C: (1/N) [Σ_l Σ_j θ_j (λ_l/2)‖w_j‖² over every weight layer (θ = 1 if ungated) plus
    the price: γ Σ_j θ_j n_j over the gated units (``price_on="incoming"``), or γ P(θ) of eq. P
    (``price_on="params"``, ours; see :func:`price_sizes`)]. A conv behind a feature gate counts its channels
    with E[present_c] in the price (eq. Pc) and with θ = 1 in the λ/2 ‖w‖² term (see the module docstring)."""
    price_on = check_choice("price_on", price_on, set(PRICE_ON))
    both = combined_prices(price) if price_on == "params+flops" else None
    g = layer_prices(model, price) if np.ndim(price) and both is None else None
    net = _Net(model)
    total = 0.0
    for q, layer in enumerate(net.weights):
        gq = price if g is None else g[q]
        th = net.theta_out(q)
        total += float(np.sum(th * 0.5 * lams[q] * unit_sq_norms(layer)))
        if price_on in ("params", "flops"):
            total += gq * float(np.sum(net.present_out(q))) * (net.pair(q, price_on) * float(np.sum(net.theta_in(q)))
                                                               + net.bias(q, price_on))
        elif both is not None:                          # γ_P P(θ) + γ_F F(θ)
            for on, gamma in zip(("params", "flops"), both):
                total += gamma * float(np.sum(net.present_out(q))) * (
                    net.pair(q, on) * float(np.sum(net.theta_in(q))) + net.bias(q, on))
        elif q in net.out_gate:
            total += gq * float(np.sum(th * _incoming_sizes(layer)))
    if price_on == "incoming":
        for p, s in enumerate(net.sites):
            if s.producer is None and s.consumer is not None:
                gq = price if g is None else g[s.q_cons]
                total += float(np.sum(s.gate.theta * gq * unit_sizes(model, p)))
    return total / n_train


def prior_theta_grad(model, p, lams, price, n_train, price_on="incoming", rates=None):
    r"""p_j / N with p_j = (λ_l/2)‖w_j‖² + γ n_j: the prior part of ∂C/∂θ_j for the units of gate ``p``
    (:func:`.formulas.prior_theta_gradient`; γ n_j from :func:`price_rates`, or ``rates`` already computed).
    An input gate has no incoming weights (‖w_j‖² = 0)."""
    s = _Net(model).site(p)
    gn = price_rates(model, p, price, price_on) if rates is None else rates
    if s.producer is None:
        return F.prior_theta_gradient(0.0, np.zeros(s.gate.n_units), gn, n_train)
    return F.prior_theta_gradient(lams.get(s.q_prod, 0.0), unit_sq_norms(s.producer), gn, n_train)


def add_prior_weight_grads(model, lams, n_train):
    r"""Add ∂/∂w_j of the prior, θ_j λ_l w_j / N (:func:`.formulas.prior_weight_gradient`), to the gradients of every
    weight layer (weights and bias)."""
    net = _Net(model)
    for q, layer in enumerate(net.weights):
        th = net.theta_out(q)
        layer.grads["W"] += F.prior_weight_gradient(th, lams[q], layer.params["W"], n_train)
        if "b" in layer.params:
            layer.grads["b"] += F.prior_weight_gradient(th, lams[q], layer.params["b"], n_train)
