"""Variational Bernoulli unit pruning during training (our derivation after Guenter & Sideris, arXiv 2205.04650).

Read in this order:

* :mod:`.formulas`    the formulas (eq. C, λ*, Cλ, gθ, the prior's weight gradient, the θ step, the estimators'
                      math) as plain functions with the symbols of tutorial 03 — and what is ours
* :mod:`.gate`        :class:`Gate`, :func:`add_gates`, :func:`gated_mlp`; finding each gate's producer and
                      consumer in any network; removal of units through :mod:`minigrow.surgery`
* :mod:`.prior`       the prior terms of a whole network (n_j, ‖w_j‖², λ*, the price γ n_j)
* :mod:`.estimators`  flip, flip_cv, pathwise and score estimators (vectorised, chunked), exact expectation
* :mod:`.trainer`     :class:`PruningTrainer`
* :mod:`.settings`    :class:`PruningSettings`, the one source of defaults (the MNIST settings)
"""
from .formulas import optimal_precision, precision_cost, theta_step
from .gate import (Gate, GateSite, add_gates, forward_with_gates, gate_sites, gated_mlp, gates, prune, remove_units,
                   sample_gates, set_gates, to_deterministic, weight_layers, widths)
from .prior import (PRICE_ON, add_prior_weight_grads, hyper_prior, layer_precisions, layer_prices, price_rates,
                    price_sizes, prior_cost, prior_theta_grad, unit_sizes, unit_sq_norms)
from .estimators import (ESTIMATORS, exact_expectation, flip_cv_gradient, flip_gradient, pathwise_gradient,
                         per_sample_losses, score_function_gradient)
from .settings import PLAIN_SETTINGS, PruningSettings
from .trainer import PruningTrainer

__all__ = [
    "Gate", "GateSite", "add_gates", "gated_mlp", "gates", "gate_sites", "weight_layers", "widths", "sample_gates",
    "set_gates", "forward_with_gates", "remove_units", "prune", "to_deterministic",
    "unit_sizes", "unit_sq_norms", "price_sizes", "PRICE_ON", "layer_prices", "price_rates", "hyper_prior",
    "layer_precisions", "prior_cost", "prior_theta_grad", "add_prior_weight_grads",
    "optimal_precision", "precision_cost", "theta_step",
    "ESTIMATORS", "per_sample_losses", "flip_gradient", "flip_cv_gradient", "pathwise_gradient",
    "score_function_gradient", "exact_expectation",
    "PruningSettings", "PLAIN_SETTINGS", "PruningTrainer",
]
