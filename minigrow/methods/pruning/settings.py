"""One source of defaults for pruning: :class:`PruningSettings`, used by :class:`~.trainer.PruningTrainer`, the
experiments, the ``prune`` command and the checkpoints (saved and loaded as a plain dict).

The defaults are the MNIST settings found by the tuning reported in docs/pruning.md: they are the ones that work
(784-300-100-10 from 300-100 to about 100-50 at ≈ 2 % test error in 20 epochs). ``price_on="params"``,
``precondition``, ``estimator="flip_cv"``, ``cv_every``, the pseudo-count hyper-prior (``sigma0``, ``strength``) and
the fine-tune epochs are ours (see :mod:`.formulas`); η_θ = 0.0017 ≈ 1/600 with preconditioning: a useless unit
falls from 1 to 0 in about one epoch (600 steps of 100 images).

Two groups of fields: the method (read by :class:`~.trainer.PruningTrainer`) and the schedule (``epochs``,
``lr``, ``batch_size``, ``lr_step``, ``lr_decay``, ``polish_epochs``, ``finetune_epochs``: read by
:meth:`~.trainer.PruningTrainer.fit_schedule`, the experiments and the command line; the trainer itself takes its
optimiser and batch size as arguments).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ...settings import Settings
from ...validate import check_bool, check_choice, check_int, check_nonneg, check_positive, check_prob
from .prior import combined_prices

__all__ = ["PruningSettings", "METHOD_FIELDS", "SCHEDULE_FIELDS", "PLAIN_SETTINGS"]

ESTIMATORS = ("flip", "flip_cv", "pathwise", "score")
PRICE_ON = ("incoming", "params", "flops", "params+flops")
PRICE_BALANCE = ("uniform", "fisher")


@dataclass(frozen=True)
class PruningSettings(Settings):
    """Settings of a pruning run (defaults: the MNIST settings; see the module docstring).

    Method
    ------
    price : γ, price per active parameter in nats; or one γ_q per weight layer, in order (ours)
    price_on : 'incoming' (n_j = fan_in + 1, pruning.md) | 'params' (γ × expected number of active parameters,
        eq. P, ours: a unit also pays for its outgoing column) | 'flops' (γ × expected forward multiply-adds per
        sample, ours: a conv filter pays for its kernels times the output positions) | 'params+flops' (γ_P × expected
        parameters + γ_F × expected multiply-adds, ``price`` = (γ_P, γ_F), ours)
    eta_theta : η_θ, step size of the projected θ step
    estimator : 'flip' | 'flip_cv' (ours) | 'pathwise' | 'score'
    flip_samples : the flip estimators use this many samples of each batch (None = all)
    cv_every : flip_cv: the flip correction on every M-th batch only (weight M), the pathwise estimate between
    estimate_every : estimate θ-gradients on every M-th batch only, each standing for M steps (ours)
    precondition : divide each θ-gradient by the unit's price rate γ n_j / N (ours)
    warmup_epochs : epochs with θ frozen (no θ steps, no pruning)
    eps : pruning threshold ε
    sigma0, strength : pseudo-count hyper-prior (ours); strength 0 = the plain Gamma(a, b)
    a, b : Gamma(a, b) hyper-prior of the precisions
    min_units : units every gate keeps at least
    prune_every : also prune every this many steps inside an epoch (None = epoch ends only)
    theta_every : average the θ-gradients of K steps and take one step of K·η_θ (ours; 1 = every step)
    record_every : record every θ every this many steps (trajectories)
    max_elements : block-size budget of the vectorised flip estimator
    theta_margin : m of the lazy θ step (ours, :func:`.formulas.lazy_theta_step`): θ = clip(ζ, 0, 1) with the
        latent ζ kept in [−m, 1 + m]; 0 = the plain projected step
    price_balance : 'uniform' (one γ for every parameter) | 'fisher' (ours: γ spread over the weight layers by
        eq. R, γ_q = γ r_q/r̄ with r_q = ½ ln(1 + N F_q/λ_q), F_q the layer's mean empirical Fisher,
        :func:`.formulas.balanced_prices`); needs a single ``price``
    balance_every : 'fisher': re-estimate F_q (running mean) on the batch every this many steps
    eta_power, eta_tau : Robbins–Monro steps η_t = η_θ (1 + t/τ)^(−κ), κ = eta_power (½ < κ ≤ 1: Σ η = ∞, Σ η² < ∞;
        0 = constant η_θ), τ = eta_tau epochs, t = steps since θ started to move

    Schedule
    --------
    epochs, lr, batch_size, lr_step (StepLR epochs between decays; None = constant), lr_decay, polish_epochs,
    finetune_epochs (see :meth:`~.trainer.PruningTrainer.fit_schedule`)
    """

    _rename_hints = {"gamma": "the price per active parameter γ is now called price="}

    price: float | tuple = 0.04
    price_on: str = "params"
    eta_theta: float = 0.0017
    estimator: str = "flip_cv"
    flip_samples: int | None = 10
    cv_every: int = 2
    estimate_every: int = 1
    precondition: bool = True
    warmup_epochs: int = 2
    eps: float = 1e-3
    sigma0: float | None = 0.5
    strength: float = 1.0
    a: float = 1.0
    b: float = 1e-8
    min_units: int = 1
    prune_every: int | None = None
    theta_every: int = 1
    record_every: int = 50
    max_elements: int = 1 << 23
    theta_margin: float = 0.0
    eta_power: float = 0.0
    eta_tau: float = 1.0
    price_balance: str = "uniform"
    balance_every: int = 50
    # schedule
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 100
    lr_step: int | None = 6
    lr_decay: float = 0.3
    polish_epochs: int = 0
    finetune_epochs: int = 3

    def __post_init__(self):
        price = self.price
        if np.ndim(price):
            price = tuple(check_nonneg("price", v) for v in price)
        else:
            price = check_nonneg("price", price)
        set_ = object.__setattr__
        set_(self, "price", price)
        set_(self, "price_on", check_choice("price_on", self.price_on, set(PRICE_ON)))
        if self.price_on == "params+flops":
            combined_prices(price)                       # the pair (γ_P, γ_F)
        set_(self, "eta_theta", check_nonneg("eta_theta", self.eta_theta))
        set_(self, "estimator", check_choice("estimator", self.estimator, set(ESTIMATORS)))
        set_(self, "flip_samples", None if self.flip_samples is None else check_int("flip_samples",
                                                                                    self.flip_samples, lo=1))
        for name in ("cv_every", "estimate_every", "theta_every", "record_every", "max_elements", "min_units",
                     "epochs", "batch_size"):
            set_(self, name, check_int(name, getattr(self, name), lo=0 if name == "epochs" else 1))
        for name in ("warmup_epochs", "polish_epochs", "finetune_epochs"):
            set_(self, name, check_int(name, getattr(self, name), lo=0))
        for name in ("prune_every", "lr_step"):
            v = getattr(self, name)
            set_(self, name, None if v is None or (name == "lr_step" and v == 0) else check_int(name, v, lo=1))
        set_(self, "precondition", check_bool("precondition", self.precondition))
        set_(self, "eps", check_prob("eps", self.eps))
        set_(self, "strength", check_nonneg("strength", self.strength))
        set_(self, "theta_margin", check_nonneg("theta_margin", self.theta_margin))
        set_(self, "eta_power", check_nonneg("eta_power", self.eta_power))
        if self.eta_power > 1:
            raise ValueError(f"eta_power: expected 0 (constant steps) or ½ < κ ≤ 1 (Robbins–Monro), got "
                             f"{self.eta_power}")
        set_(self, "eta_tau", check_positive("eta_tau", self.eta_tau))
        set_(self, "price_balance", check_choice("price_balance", self.price_balance, set(PRICE_BALANCE)))
        set_(self, "balance_every", check_int("balance_every", self.balance_every, lo=1))
        if self.price_balance == "fisher" and np.ndim(self.price):
            raise ValueError("price_balance='fisher' spreads one price over the layers: give a single price, not "
                             f"one per layer ({self.price})")
        if self.price_balance == "fisher" and self.price_on == "incoming":
            raise ValueError("price_balance='fisher' needs price_on='params' or 'flops' (the per-layer prices "
                             "price every parameter by its layer)")
        set_(self, "b", check_nonneg("b", self.b))
        set_(self, "a", check_positive("a", self.a))
        if self.sigma0 is not None:
            set_(self, "sigma0", check_positive("sigma0", self.sigma0))
        if self.strength > 0 and self.sigma0 is None:
            raise ValueError("sigma0: strength > 0 needs sigma0 (the prior weight scale)")
        set_(self, "lr", check_nonneg("lr", self.lr))
        set_(self, "lr_decay", check_nonneg("lr_decay", self.lr_decay))

    def as_dict(self):
        """Plain JSON-able dict (a per-layer price as a list). The fields added for θ binary by the dynamics are
        left out while they have the values that give the earlier behaviour (:data:`LATER_FIELDS`), so runs that do
        not use them write the same files as before; :meth:`from_dict` fills them in."""
        d = Settings.as_dict(self)
        for k, v in LATER_FIELDS.items():
            if d[k] == v:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d):
        """Rebuild from :meth:`as_dict` (also reads the earlier names: ``gamma`` for the price and ``price``
        'incoming'/'params' for ``price_on``)."""
        d = dict(d)
        if "gamma" in d:
            if isinstance(d.get("price"), str):
                d["price_on"] = d.pop("price")
            d["price"] = d.pop("gamma")
        if isinstance(d.get("price"), list):
            d["price"] = tuple(d["price"])
        return cls().replace(**d)

    def method(self):
        """``{name: value}`` of the method fields (what :class:`~.trainer.PruningTrainer` reads)."""
        return {k: getattr(self, k) for k in METHOD_FIELDS}


# Fields added after results were published, with the values that reproduce the earlier behaviour.
LATER_FIELDS = {"theta_margin": 0.0, "eta_power": 0.0, "eta_tau": 1.0, "price_balance": "uniform",
                "balance_every": 50}

SCHEDULE_FIELDS = ("epochs", "lr", "batch_size", "lr_step", "lr_decay", "polish_epochs", "finetune_epochs")
METHOD_FIELDS = tuple(f.name for f in fields(PruningSettings) if f.name not in SCHEDULE_FIELDS)

# The plain rule of the derivation (pruning.md §2–3): price on incoming weights, flip estimator on every sample,
# no hyper-prior pseudo-counts, no preconditioning, no fine-tune — what the teacher-student toy uses.
PLAIN_SETTINGS = PruningSettings(price=1.0, price_on="incoming", eta_theta=0.1, estimator="flip", flip_samples=None,
                                 cv_every=1, precondition=False, warmup_epochs=1, sigma0=None, strength=0.0,
                                 lr_step=None, finetune_epochs=0)
