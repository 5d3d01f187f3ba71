r"""The pruning trainer: sampled gates, the prior of eq. C, λ* and projected θ steps, physical pruning.

The math of each step is in :mod:`.formulas`; the estimators' engineering in :mod:`.estimators`; the defaults in
:class:`~.settings.PruningSettings`.
"""
from __future__ import annotations

import sys

import numpy as np

from ...layers import Sequential
from ...fisher import mean_fisher
from ...train import Trainer, TrainingDiverged
from ...validate import check_int
from . import formulas as F
from .estimators import flip_cv_gradient, flip_gradient, pathwise_gradient, score_function_gradient
from .gate import _sample_gates, gates, prune, to_deterministic, weight_layers, widths
from .prior import add_prior_weight_grads, combined_prices, hyper_prior, layer_precisions, layer_prices, price_rates, \
    prior_cost, prior_theta_grad
from .settings import METHOD_FIELDS, PruningSettings

__all__ = ["PruningTrainer"]


class PruningTrainer(Trainer):
    r"""Trainer for a gated network (any network with :class:`~.gate.Gate` layers — :func:`~.gate.gated_mlp`, or
    :func:`~.gate.add_gates` on your own): sampled gates, the prior of eq. C, λ* and projected θ steps, and
    physical pruning at epoch ends.

    One step (:meth:`train_step`) on a batch of B samples:

    1. λ_q ← λ_q* (eq. λ*) for every weight layer, from the current W and θ;
    2. ξ ~ Bernoulli(θ) per sample and unit (``self.rng``); forward, batch-mean loss, backward;
    3. add θ_j λ_q w_j / N to the weight gradients;
    4. after the warm-up: Δ̂ by the chosen estimator, ĝ = Δ̂ + p_j / N (eq. gθ), θ ← clip(θ − η_θ ĝ, 0, 1);
    5. optimiser step on W, b.

    At every epoch end after the warm-up, units with θ ≤ ε are removed physically (:func:`~.gate.prune`).

    Parameters
    ----------
    model, loss, optimizer, batch_size, rng : as :class:`minigrow.train.Trainer` (``rng`` also draws the gates)
    settings : :class:`~.settings.PruningSettings` (default: the MNIST settings, the ones that work); its method
        fields are read here, its schedule fields by :meth:`fit_schedule`
    **overrides : any method field of :class:`~.settings.PruningSettings` (``price=0.1``, ``estimator="flip"`` …),
        applied on top of ``settings``
    n_train : N, the training-set size of the (1/N) scaling (default: taken from ``fit``'s X)
    scheduler, callbacks, progress, dtype, checkpoint_dir, checkpoint_every, checkpoint_keep, rollback,
    checkpoint_meta : as :class:`~minigrow.train.Trainer`; the method state (N, the hyper-prior, the settings, the
        θ trace) is in :meth:`state_dict`, θ and unit ids are saved with the gates, so
        :func:`minigrow.checkpoint.resume` continues a pruning run bit-identically.

    With ``batch_size=None`` (full batch, the same sample order every step) and fewer ``flip_samples`` than data,
    the flipped samples are drawn at random from ``rng`` each step (the first ones would always be the same).
    """

    def __init__(self, model, loss="ce", optimizer=None, batch_size=100, rng=0, settings=None, *, n_train=None,
                 scheduler=None, callbacks=(), progress=True, dtype=np.float32, checkpoint_dir=None,
                 checkpoint_every=1, checkpoint_keep=2, rollback=True, checkpoint_meta=None, **overrides):
        if not isinstance(model, Sequential) or not gates(model):
            raise ValueError("model: expected a network with gated units (Gate layers; see add_gates or gated_mlp)")
        if settings is None:
            settings = PruningSettings()
        elif isinstance(settings, dict):
            settings = PruningSettings.from_dict(settings)
        elif not isinstance(settings, PruningSettings):
            raise TypeError(f"settings: expected a PruningSettings (or its dict), got {type(settings).__name__}")
        schedule = sorted(set(overrides) - set(METHOD_FIELDS))
        if schedule:
            hint = (" (the price per active parameter γ is now called price=)" if "gamma" in schedule else
                    "; epochs, lr, batch_size and the schedule are fit_schedule's, the optimiser's and the "
                    "trainer's own arguments")
            raise TypeError(f"PruningTrainer: unknown argument(s) {schedule}{hint}")
        super().__init__(model, loss, optimizer, batch_size, rng, scheduler, callbacks, progress, dtype,
                         checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                         checkpoint_keep=checkpoint_keep, rollback=rollback, checkpoint_meta=checkpoint_meta)
        self._apply_settings(settings.replace(**overrides))
        if self.price_on == "params+flops":
            combined_prices(self.price)                           # (γ_P, γ_F)
        elif np.ndim(self.price):
            layer_prices(model, self.price)                       # one per weight layer: checks the length
        self.n_train = None if n_train is None else check_int("n_train", n_train, lo=1)
        self._gacc, self._gcount = {}, 0
        self._flip_rows = (-1, None)
        self._theta_start = None                                  # step of the first θ step (Robbins–Monro t = 0)
        self.fisher = None          # price_balance='fisher': running mean F_q per weight layer (eq. R)
        self.layer_price = None     # … and the prices γ_q it gives (None: ``price`` as given)
        self._fisher_count = 0
        self.hyper = hyper_prior(model, self.sigma0, self.strength, self.a, self.b)   # fixed at the start
        self.lams = layer_precisions(model, self.hyper)
        self.theta_trace = []       # (step, gate number, unit ids, θ copy)
        self.callbacks.insert(0, PruningTrainer._epoch_end)
        self._record_theta()

    def _apply_settings(self, settings):
        self.settings = settings
        for k, v in settings.method().items():  # the method fields as attributes (binarize changes eta_theta …)
            setattr(self, k, v)

    # --- method state for checkpoints and the divergence rollback (minigrow.checkpoint) -------------------------
    def state_dict(self):
        """``(json, arrays)``: N, the per-layer hyper-prior (fixed at the start, so it cannot be recomputed from a
        pruned net), the settings (as a dict), ``theta_every`` and ``eta_theta`` as they are now (changed by
        :meth:`fit_schedule`) and the θ trace. θ and unit ids live on the gates and are saved with the model."""
        tr = self.theta_trace
        meta = {"n_train": self.n_train, "hyper": {str(q): [float(a), float(b)] for q, (a, b) in self.hyper.items()},
                "theta_every": self.theta_every, "eta_theta": self.eta_theta, "settings": self.settings.as_dict()}
        if self._theta_start is not None:
            meta["theta_start"] = self._theta_start
        if self.fisher is not None:
            meta["fisher"] = [float(f) for f in self.fisher]
            meta["fisher_count"] = self._fisher_count
        arrays = {"trace_step": np.array([t[0] for t in tr], dtype=np.int64),
                  "trace_pos": np.array([t[1] for t in tr], dtype=np.int64),
                  "trace_len": np.array([len(t[3]) for t in tr], dtype=np.int64),
                  "trace_ids": np.concatenate([t[2] for t in tr]).astype(np.int64) if tr else np.zeros(0, np.int64),
                  "trace_theta": np.concatenate([t[3] for t in tr]) if tr else np.zeros(0)}
        return meta, arrays

    def load_state_dict(self, meta, arrays):
        if "settings" in meta:
            self._apply_settings(PruningSettings.from_dict(meta["settings"]))
        self.n_train = None if meta["n_train"] is None else int(meta["n_train"])
        self.hyper = {int(k): (float(v[0]), float(v[1])) for k, v in meta["hyper"].items()}
        self.theta_every = int(meta.get("theta_every", 1))
        if "eta_theta" in meta:
            self.eta_theta = float(meta["eta_theta"])
        self._theta_start = meta.get("theta_start")
        self.fisher = np.array(meta["fisher"]) if "fisher" in meta else None
        self._fisher_count = int(meta.get("fisher_count", 0))
        self._gacc, self._gcount = {}, 0          # checkpoints and rollbacks are taken at epoch ends: nothing pending
        ends = np.cumsum(arrays["trace_len"])
        starts = ends - arrays["trace_len"]
        ids, th = np.asarray(arrays["trace_ids"]), np.asarray(arrays["trace_theta"], dtype=np.float64)
        if ends.size and ends[-1] != ids.size:
            raise ValueError(f"theta trace: lengths sum to {int(ends[-1])}, got {ids.size} entries")
        self.theta_trace = [(int(st), int(p), ids[a:b].copy(), th[a:b].copy()) for st, p, a, b in
                            zip(arrays["trace_step"], arrays["trace_pos"], starts, ends)]
        self.lams = layer_precisions(self.model, self.hyper)
        self.layer_price = None
        if self.fisher is not None:
            self._balance_prices()

    @property
    def theta_active(self):
        return self.epoch >= self.warmup_epochs

    def fit(self, X, y, epochs, X_test=None, y_test=None, eval_train=False):
        if self.n_train is None:
            self.n_train = int(np.asarray(X).shape[0])
        return super().fit(X, y, epochs, X_test, y_test, eval_train)

    def _record_theta(self):
        for p, g in enumerate(gates(self.model)):
            self.theta_trace.append((self.step, p, g.unit_ids.copy(), g.theta.copy()))

    def _flip_samples(self, B):
        """What the flip estimators use of a batch of B: the first ``flip_samples`` of a shuffled batch, or — full
        batch, never shuffled — ``flip_samples`` indices drawn from ``rng`` (once per step, for every gate)."""
        S = self.flip_samples
        if S is None or S >= B or self.batch_size is not None:
            return S
        if self._flip_rows[0] != self.step:
            self._flip_rows = (self.step, np.sort(self.rng.choice(B, S, replace=False)))
        return self._flip_rows[1]

    def theta_gradient(self, p, yb, ell):
        """Δ̂_j by ``self.estimator`` for gate ``p`` (after forward and backward of the batch)."""
        if self.estimator == "flip":
            return flip_gradient(self.model, p, yb, self.loss, self.max_elements, self._flip_samples(len(yb)))
        if self.estimator == "flip_cv":
            M = self.cv_every
            if self.step % M:                                   # between corrections: the pathwise estimate
                return pathwise_gradient(self.model, p)
            S = self._flip_samples(len(yb))
            return flip_cv_gradient(self.model, p, yb, self.loss, len(yb) if S is None else S, self.max_elements,
                                    weight=M)
        if self.estimator == "pathwise":
            return pathwise_gradient(self.model, p)
        return score_function_gradient(self.model, p, ell)

    def train_step(self, xb, yb):
        model, N = self.model, self.n_train
        self.lams = layer_precisions(model, self.hyper)                           # 1. λ*
        if self.price_balance == "fisher" and self.step % self.balance_every == 0:
            self.update_balance(xb, yb)                                           #    (eq. R: γ_q)
        gs = _sample_gates(model, xb.shape[0], self.rng)                          # 2. ξ ~ Bernoulli(θ)
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
            price = self.current_price
            rates = {p: price_rates(model, p, price, self.price_on) for p in range(len(gs))}   # γ n_j
            grads = {p: self.theta_gradient(p, yb, ell) + prior_theta_grad(model, p, self.lams, price, N,
                                                                           self.price_on, r)
                     for p, r in rates.items()}
            if self.precondition:                                                 # ĝ_j / (γ n_j / N), ours
                grads = {p: F.precondition(g, rates[p], N) for p, g in grads.items()}
            if M > 1:                                                             # stands for M steps (ours)
                grads = {p: M * g for p, g in grads.items()}
            if self.theta_every == 1:
                gl = gates(model)
                for p, g in grads.items():
                    self._theta_step(gl[p], g, self.eta_theta)
            else:
                for p, g in grads.items():
                    self._gacc[p] = self._gacc.get(p, 0.0) + g
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

    @property
    def current_price(self):
        """The price in use: ``price`` as given, or with ``price_balance='fisher'`` the per-layer prices γ_q of
        eq. R (once estimated)."""
        return self.price if self.layer_price is None else self.layer_price

    def update_balance(self, xb, yb):
        """eq. R (ours): F_q of every weight layer on this batch (:func:`minigrow.fisher.mean_fisher`, the gates at
        their mean θ), folded into a running mean (of the first 10 estimates, then an exponential one with weight
        1/10: the Fisher falls as the fit improves), r_q = ½ ln(1 + N F_q/λ_q*) and γ_q = γ r_q/r̄ weighted by
        what the price counts in each layer now (:func:`.formulas.balanced_prices`). Runs before the step's own
        forward pass (it overwrites the layers' gradients and per-pass quantities). Measured in docs/pruning.md:
        this in-training use of eq. R does not make the widths start-independent; the prices measured once on a
        dense net (:func:`minigrow.experiments.pruning.fisher_prices`) do better."""
        fq = np.array(mean_fisher(self.model, self.loss, xb, yb))
        if self.fisher is None or self.fisher.shape != fq.shape:
            self.fisher, self._fisher_count = fq, 1
        else:                                    # running mean of the first 10 estimates, then weight 1/10 (the
            self._fisher_count += 1              # Fisher falls as the fit improves: old batches are forgotten)
            self.fisher = self.fisher + (fq - self.fisher) / min(self._fisher_count, 10)
        self._balance_prices()

    def _balance_prices(self):
        layers = weight_layers(self.model)
        lams = np.array([self.lams[q] for q in range(len(layers))])     # λ* of the cost (eq. λ*)
        rates = F.fisher_rate(self.fisher, lams, self.n_train)
        if self.price_on == "flops":
            sizes = [layer.macs() for layer in layers]
            if not all(sizes):                   # a conv that has not seen an input since loading: next update
                return
        else:
            sizes = [sum(a.size for a in layer.params.values()) for layer in layers]
        self.layer_price = F.balanced_prices(self.price, rates, sizes)

    def _theta_step(self, gate, g, eta):
        """θ ← clip(θ − η_t ĝ, 0, 1) (:func:`.formulas.theta_step`), with η_t the Robbins–Monro step of
        ``eta_power``/``eta_tau`` and, for ``theta_margin`` > 0, through the latent ζ
        (:func:`.formulas.lazy_theta_step`)."""
        if self.eta_power:
            if self._theta_start is None:
                self._theta_start = self.step
            spe = 1 if self.batch_size is None else int(np.ceil(self.n_train / self.batch_size))
            eta = F.robbins_monro_eta(eta, self.step - self._theta_start, self.eta_tau * spe, self.eta_power)
        if self.theta_margin > 0:
            if gate.zeta is None:
                gate.zeta = gate.theta.copy()
            gate.theta[:] = F.lazy_theta_step(gate.zeta, g, eta, self.theta_margin)
        else:
            F.theta_step(gate.theta, g, eta)

    def flush_theta(self):
        """Apply the accumulated θ-gradients (``theta_every`` > 1): θ ← clip(θ − c·η_θ · ḡ) over the c steps covered,
        ḡ = (sum of the estimates, each weighted by the ``estimate_every`` steps it stands for) / c."""
        c = self._gcount
        if c:
            gl = gates(self.model)
            for p, gsum in self._gacc.items():
                self._theta_step(gl[p], gsum / c, self.eta_theta * c)
        self._gacc, self._gcount = {}, 0

    def fit_schedule(self, X, y, epochs=None, polish_epochs=None, X_test=None, y_test=None, eval_train=False,
                     finetune_epochs=None):
        """Train up to ``epochs`` epochs in all (continuing from ``self.epoch``, so a resumed trainer finishes the
        same schedule). The last ``finetune_epochs`` of them train the weights of the deterministic net:
        :meth:`binarize` (θ ← 1 if θ ≥ ½ else 0, the zeros removed), then θ frozen. Before them, the last
        ``polish_epochs`` take one θ step per epoch with the epoch's mean θ-gradient (``theta_every`` = steps per
        epoch). Both are ours. None: the value of ``self.settings``."""
        s = self.settings
        epochs = check_int("epochs", s.epochs if epochs is None else epochs, lo=0)
        polish_epochs = check_int("polish_epochs", s.polish_epochs if polish_epochs is None else polish_epochs, lo=0)
        finetune_epochs = check_int("finetune_epochs", s.finetune_epochs if finetune_epochs is None
                                    else finetune_epochs, lo=0)
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
        """Round θ to {0, 1} (θ_j ≥ ``threshold`` → 1; a gate keeps at least its largest θ), remove the zeros
        physically and freeze θ (``eta_theta = 0``): from now on the net is deterministic and trains as a plain
        net. Idempotent (a resumed run calls it again harmlessly). Records the fraction of θ that was already
        exactly in {0, 1} in a ``"binarize"`` history event. Ours: the final fine-tune epochs of
        :meth:`fit_schedule`."""
        model = self.model
        self.flush_theta()
        allth = np.concatenate([g.theta for g in gates(model)])
        before = float(np.mean((allth == 0) | (allth == 1)))
        changed = False
        for g in gates(model):
            th = g.theta
            on = th >= threshold
            if not on.any():
                on[int(np.argmax(th))] = True
            new = on.astype(np.float64)
            changed |= not np.array_equal(new, th)
            th[:] = new
            g.zeta = None
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
        return data + prior_cost(self.model, self.lams, self.current_price, self.n_train, self.price_on)

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
        thetas = [g.theta for g in gates(model)]
        allth = np.concatenate(thetas)
        rec["widths"] = widths(model)                   # after this epoch's pruning
        rec["flops_epoch"] = 6 * rec["macs"] * trainer.n_train   # ≈ forward + backward of this epoch
        rec["n_params_after"] = model.n_params()
        rec["theta_binary_frac"] = float(np.mean((allth == 0) | (allth == 1)))
        rec["theta_near_binary_frac"] = float(np.mean(np.minimum(allth, 1 - allth) <= 0.05))
        rec["theta_hist"] = [np.histogram(t, bins=10, range=(0, 1))[0].tolist() for t in thetas]
        rec["lams"] = [float(trainer.lams[q]) for q in sorted(trainer.lams)]
        if "test_acc" in rec:
            rec["test_err"] = 1 - rec["test_acc"]
        trainer._record_theta()
        if trainer.progress:
            print(f"   widths {rec['widths']}  θ∈{{0,1}}: {rec['theta_binary_frac']:.3f}", file=sys.stderr)
        return False

    def finalize(self, threshold=0.5):
        """The final deterministic network (:func:`~.gate.to_deterministic`)."""
        return to_deterministic(self.model, threshold)
