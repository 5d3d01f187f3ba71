"""The SensLI insertion loop (sensli.md §5): a training schedule that inserts the best candidate between phases.

:class:`InsertionSchedule` is an epoch-end callback of one :class:`~minigrow.train.Trainer`; at each phase
boundary it runs the sensitivity pass (:mod:`.sensitivities`), selects (S7, :func:`~.formulas.select`) and inserts
(:func:`~.candidates.insert_candidate`, through :func:`minigrow.surgery.insert_layers`), and restarts the
optimiser. :func:`sensli_train` builds the trainer and the schedule from a :class:`~.settings.SensLISettings`.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ...checkpoint import resume as resume_checkpoint
from ...layers import Sequential, check_model
from ...losses import get_loss
from ...optim import SGD, Adam, Optimizer, StepLR
from ...train import Trainer, TrainingDiverged, evaluate
from ...validate import check_callable, check_choice, check_int, check_positive, check_rng
from .candidates import candidates, insert_candidate
from .formulas import MODES, select
from .sensitivities import check_data, closed_form_sensitivities
from .settings import SensLISettings

__all__ = ["InsertionRun", "InsertionSchedule", "sensli_train", "train_macs_per_sample"]


def train_macs_per_sample(model):
    """Multiply-adds of one training step per sample, 3F (forward, weight gradients, input gradients)."""
    return 3 * model.macs()


@dataclass
class InsertionRun:
    """Result of :func:`sensli_train`: the final model and its history.

    ``train_loss``/``test_loss``/``test_acc`` per epoch (global numbering), ``insertions`` (one dict per
    sensitivity pass: epoch, scores, positions, chosen, loss before/after the insertion, cost of the pass),
    ``phases`` (epochs, seconds, multiply-adds, learning rates, parameter count of each training phase).
    """

    model: Sequential
    train_loss: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    insertions: list = field(default_factory=list)
    phases: list = field(default_factory=list)
    trainer: Trainer | None = field(default=None, repr=False)

    @property
    def train_macs(self):
        return int(sum(p["macs"] for p in self.phases))

    @property
    def sensitivity_macs(self):
        return int(sum(e["macs"] for e in self.insertions))

    @property
    def seconds(self):
        return float(sum(p["seconds"] for p in self.phases) + sum(e["seconds"] for e in self.insertions))

    def as_dict(self):
        return {"train_loss": self.train_loss, "test_loss": self.test_loss, "test_acc": self.test_acc,
                "insertions": self.insertions, "phases": self.phases, "train_macs": self.train_macs,
                "sensitivity_macs": self.sensitivity_macs, "seconds": self.seconds,
                "final_params": self.model.n_params(), "final_macs_per_sample": self.model.macs()}


def _make_optimizer(optimizer, s, lr_given):
    """``(optimizer object, settings)`` from an Optimizer object, a factory (no arguments → Optimizer) or a name.

    With an object (or factory) the settings' ``optimizer``, ``lr`` and ``weight_decay`` are taken from it (they
    define the run and go into checkpoints)."""
    if optimizer is None or isinstance(optimizer, str):
        name = check_choice("optimizer", s.optimizer if optimizer is None else optimizer, {"sgd", "adam"})
        lr = check_positive("lr", s.lr)
        opt = SGD(lr, weight_decay=s.weight_decay) if name == "sgd" else Adam(lr, weight_decay=s.weight_decay)
        return opt, s.replace(optimizer=name, lr=lr, weight_decay=opt.weight_decay)
    opt = optimizer if isinstance(optimizer, Optimizer) else check_callable("optimizer", optimizer)()
    if not isinstance(opt, Optimizer):
        raise TypeError(f"optimizer: expected a minigrow Optimizer (SGD, Adam), a factory returning one, or 'sgd'/"
                        f"'adam', got {type(opt).__name__}")
    if lr_given is not None and float(lr_given) != opt.lr:
        raise ValueError(f"lr: {lr_given!r} contradicts the optimiser's lr {opt.lr!r}; set the learning rate on "
                         f"the optimiser only")
    return opt, s.replace(optimizer=type(opt).__name__.lower(), lr=check_positive("lr", opt.lr),
                          weight_decay=opt.weight_decay)


class InsertionSchedule:
    """The insertion loop of sensli.md §5 as the epoch-end callback of ONE :class:`~minigrow.train.Trainer`.

    The trainer runs all Σ_k e_k epochs in one ``fit``; this callback counts the epochs of the current phase k and,
    when e_k of them are done (a phase boundary),

    1. records the phase (epochs, seconds, multiply-adds, learning rate at its start and end, size) and calls the
       user's ``callback(run, k)``;
    2. unless k is the last phase: runs the sensitivity pass (:func:`closed_form_sensitivities`, no updates),
       selects (:func:`select`) and inserts (:func:`insert_candidate`), recording the scores, positions, chosen
       position, training loss before/after and the cost of the pass;
    3. starts phase k+1 with a fresh optimiser — every parameter's optimiser state is forgotten
       (``Optimizer.reset_state``; the optimiser object only holds hyper-parameters) — at the learning rate
       η ← ``decrease`` · η_end (η_end = the learning rate at the end of phase k; unchanged when nothing was
       inserted), and restarts the StepLR from it (``base_lr = η``, position 0), as a new ``StepLR`` would.

    Test loss/accuracy are evaluated every ``test_every`` epochs of a phase (0: only at its end).

    Checkpoints (:mod:`minigrow.checkpoint`): :meth:`state_dict` holds the phase index, the epoch within the phase,
    the learning rate at the phase start, the records (test loss/accuracy, insertions, phases) and the settings of
    the schedule; the trainer stores the rest (the grown network, optimiser state and learning rate, StepLR
    position, RNG, counters, and the history, which gives back the per-epoch training loss). The trainer writes its
    checkpoint after the callbacks, so a checkpoint taken at a phase boundary already holds the inserted layer and
    the fresh optimiser.
    """

    state_key = "sensli"

    def __init__(self, epochs, X, y, X_test=None, y_test=None, *, loss, mode="abs_max", position=None, tau=None,
                 batch_size=None, decrease=1.0, form="auto", normalise=False, fresh_optimizer=True, test_every=0,
                 progress=False, callback=None, settings=None):
        self.epochs = list(epochs)
        self.X, self.y, self.X_test, self.y_test = X, y, X_test, y_test
        self.loss, self.mode, self.position, self.tau = loss, mode, position, tau
        self.batch_size, self.decrease, self.form, self.normalise = batch_size, decrease, form, normalise
        self.fresh_optimizer, self.test_every, self.progress, self.callback = (fresh_optimizer, test_every,
                                                                              progress, callback)
        # what must match on resume (JSON-normalised so that it compares equal to what a checkpoint returns)
        self._settings_json = json.dumps(settings or {}, sort_keys=True)
        self.settings = json.loads(self._settings_json)
        self.run = None          # the InsertionRun; its ``trainer`` is the trainer this callback belongs to
        self.phase, self.in_phase, self.lr_start, self.phase_seconds, self.done = 0, 0, None, 0.0, False
        self._records_json = None    # cache of the records for state_dict (None: changed since)

    # --- the loop --------------------------------------------------------------------------------------------
    def start(self, trainer):
        """Begin phase 0 of a new run (before the first ``fit``); phases of 0 epochs are passed at once."""
        self._start_phase(trainer, trainer.optimizer.lr)
        self._boundaries(trainer)

    def __call__(self, trainer):
        rec = trainer.history.epochs[-1]
        self.in_phase += 1
        self.run.train_loss.append(float(rec["train_loss"]))
        self.phase_seconds += rec["seconds"]
        if self.X_test is not None and ((self.test_every > 0 and self.in_phase % self.test_every == 0)
                                        or self.in_phase == self.epochs[self.phase]):
            t0 = time.perf_counter()
            tl, ta = evaluate(trainer.model, self.loss, self.X_test, self.y_test)
            self.run.test_loss.append((trainer.epoch, tl))
            self.run.test_acc.append((trainer.epoch, ta))
            self._records_json = None
            self.phase_seconds += time.perf_counter() - t0
        self._boundaries(trainer)

    def _boundaries(self, trainer):
        while not self.done and self.in_phase >= self.epochs[self.phase]:
            self._end_phase(trainer)
            if self.phase == len(self.epochs) - 1:
                self.done = True
                break
            lr = self._insert(trainer)
            self.phase += 1
            self._start_phase(trainer, lr)

    def _start_phase(self, trainer, lr):
        """Fresh optimiser at learning rate ``lr`` (sensli.md §5) and a restarted StepLR."""
        opt = trainer.optimizer
        if self.fresh_optimizer:
            Optimizer.reset_state(trainer.model)
        opt.lr = float(lr)           # a Python float: an np.float64 lr would change float32 updates (NEP 50)
        if trainer.scheduler is not None:
            trainer.scheduler.base_lr, trainer.scheduler.last_epoch = opt.lr, 0
        self.lr_start, self.in_phase, self.phase_seconds = opt.lr, 0, 0.0

    def _end_phase(self, trainer):
        model, e = trainer.model, self.epochs[self.phase]
        self.run.phases.append({"phase": self.phase, "epochs": e, "seconds": self.phase_seconds,
                                "macs": int(e * self.X.shape[0] * train_macs_per_sample(model)),
                                "lr_start": self.lr_start, "lr_end": trainer.optimizer.lr,
                                "n_params": int(model.n_params()), "macs_per_sample": int(model.macs())})
        self._records_json = None
        if self.callback is not None:
            self.callback(self.run, self.phase)

    def _insert(self, trainer):
        """Sensitivity pass, selection, insertion; returns the learning rate of the next phase."""
        model, lr_end = trainer.model, trainer.optimizer.lr
        sens = closed_form_sensitivities(model, self.X, self.y, self.loss, self.batch_size, self.form,
                                         self.normalise, free_score=(self.mode == "threshold"))
        chosen = select(sens.scores, self.mode, self.position, self.tau, sens.free_score)
        before = evaluate(model, self.loss, self.X, self.y)[0]
        if chosen is not None:
            insert_candidate(model, sens.candidates[chosen])
        after = evaluate(model, self.loss, self.X, self.y)[0]
        rec = sens.as_dict()
        rec.update(epoch=trainer.epoch, chosen=chosen, inserted=chosen is not None, loss_before=before,
                   loss_after=after, lr_before=lr_end)
        self.run.insertions.append(rec)
        self._records_json = None
        trainer.history.events.append({"event": "insert" if chosen is not None else "no insertion",
                                       "epoch": trainer.epoch, "chosen": chosen})
        lr = self.decrease * lr_end if chosen is not None else lr_end
        if self.progress:
            print(f"epoch {rec['epoch']}: scores {np.array2string(sens.scores, precision=3)} -> "
                  f"{'insert at p=' + str(chosen) if chosen is not None else 'no insertion'} "
                  f"(loss {before:.4f} -> {after:.4f}), lr {lr:.4g}", file=sys.stderr)
        return lr

    # --- checkpoint protocol ----------------------------------------------------------------------------------
    def state_dict(self):
        """``(meta, {})``: position in the schedule, plus the settings and the records as JSON text.

        Settings and records travel as JSON strings because the trainer copies the method state at every epoch start
        (for the divergence rollback) and a string costs nothing to copy, nested lists of records do. The per-epoch
        training loss is not stored here: it is the trainer's history (restored before this state)."""
        if self._records_json is None:
            r = self.run
            self._records_json = json.dumps({"test_loss": r.test_loss, "test_acc": r.test_acc,
                                             "insertions": r.insertions, "phases": r.phases})
        return {"settings": self._settings_json, "phase": self.phase, "in_phase": self.in_phase,
                "lr_start": self.lr_start, "phase_seconds": self.phase_seconds, "done": self.done,
                "records": self._records_json}, {}

    def load_state_dict(self, meta, arrays):
        saved = json.loads(meta["settings"])
        for key in sorted(set(saved) | set(self.settings)):
            if saved.get(key) != self.settings.get(key):
                raise ValueError(f"{key}: the checkpoint's insertion run used {saved.get(key)!r}, got "
                                 f"{self.settings.get(key)!r}; resume with the settings of the original run")
        self.phase, self.in_phase, self.done = int(meta["phase"]), int(meta["in_phase"]), bool(meta["done"])
        self.lr_start, self.phase_seconds = meta["lr_start"], float(meta["phase_seconds"])
        rec = json.loads(meta["records"])
        r = self.run
        r.train_loss = [float(e["train_loss"]) for e in r.trainer.history.epochs]
        r.test_loss = [tuple(t) for t in rec["test_loss"]]
        r.test_acc = [tuple(t) for t in rec["test_acc"]]
        r.insertions, r.phases = rec["insertions"], rec["phases"]
        self._records_json = meta["records"]


def sensli_train(model, X, y, epochs=None, X_test=None, y_test=None, *, settings=None, optimizer=None, rng=0,
                 progress=False, callback=None, checkpoint_dir=None, checkpoint_every=1, resume=None,
                 checkpoint_meta=None, **changes):
    """Train with layer insertions (sensli.md §5); ``model`` is changed in place.

    ``epochs = [e_0, e_1, …, e_K]``: train e_0 epochs, insert, train e_1, …, insert, train e_K — K insertions.
    ``epochs = [e]`` trains without insertion (the baseline, same code path). None: ``settings.epochs``.

    ``settings`` (:class:`~minigrow.methods.sensli.SensLISettings`, default ``SensLISettings()``) holds the rest;
    any of its fields may also be given as a keyword (``lr=0.1, mode="abs_min"``) and overrides it. Every phase
    starts a fresh optimiser: ``optimizer`` is an :class:`~minigrow.optim.Optimizer` object (its lr and weight
    decay are used; its state is reset at each phase start), a factory returning one, or a name 'sgd' (without
    momentum) / 'adam' built with ``settings.lr``, ``settings.weight_decay``. If ``step_size`` is set, each phase
    has a fresh StepLR(step_size, gamma). After an insertion the learning rate becomes ``decrease`` × (the learning
    rate at the end of the phase). ``mode``/``position``/``tau``: selection (:func:`~.formulas.select`);
    ``mode='none'`` would be spelled ``epochs=[total]``.

    One :class:`~minigrow.train.Trainer` runs all Σ e_k epochs; the loop of §5 is its epoch-end callback
    :class:`InsertionSchedule` (``run.trainer`` is the trainer, ``run.trainer.history`` its per-epoch records).

    The training loss per epoch is the mean of its step losses (full batch: the loss at the start of the epoch's
    step). ``test_every=0``: test loss/accuracy only at the end of each phase; k > 0: every k epochs.
    ``callback(run, phase)`` is called after every phase (used by the CLI for progress).

    Checkpoints: ``checkpoint_dir`` writes ``epoch-NNNN.npz`` there every ``checkpoint_every`` epochs (the newest
    two are kept; ``checkpoint_meta`` is a JSON-able dict stored in each). ``resume`` (a checkpoint file, or a
    folder: its newest checkpoint) continues such a run: call ``sensli_train`` with the same model builder, data and
    settings plus ``resume=path``; the network (grown), optimiser state, learning rate, StepLR position, RNG,
    phase position and all records come from the file, and the result is bit-identical to the uninterrupted run
    (tests/methods/test_sensli.py). Different settings are refused with a ValueError.
    """
    if settings is None:
        settings = SensLISettings()
    elif not isinstance(settings, SensLISettings):
        raise TypeError(f"settings: expected a SensLISettings, got {type(settings).__name__}")
    if epochs is not None:
        changes["epochs"] = epochs
    s = settings.replace(**changes)
    epochs = s.epochs
    if isinstance(epochs, (str, bytes)) or not isinstance(epochs, (list, tuple, np.ndarray)) or \
            np.ndim(epochs) != 1:
        raise TypeError(f"epochs: expected a list [e_0, …, e_K] of epoch counts (one per phase), got "
                        f"{type(epochs).__name__} {epochs!r}"[:160])
    epochs = [check_int(f"epochs[{i}]", e, lo=0) for i, e in enumerate(epochs)]
    if not epochs:
        raise ValueError("epochs: expected a list [e_0, …, e_K] of at least one epoch count")
    check_model("model", model)
    check_choice("mode", s.mode, set(MODES))
    opt, s = _make_optimizer(optimizer, s.replace(epochs=tuple(epochs)), changes.get("lr"))
    decrease = check_positive("decrease", s.decrease)
    test_every = check_int("test_every", s.test_every, lo=0)
    if callback is not None:
        check_callable("callback", callback)
    rng = check_rng("rng", rng)
    loss = get_loss("ce")
    dtype = model.dtype or np.float32
    X, y = check_data(model, X, y, loss, dtype)
    if (X_test is None) != (y_test is None):
        raise ValueError(f"X_test, y_test: give both or neither, got X_test={'None' if X_test is None else '…'} "
                         f"and y_test={'None' if y_test is None else '…'}")
    if X_test is not None:
        X_test, y_test = check_data(model, X_test, y_test, loss, dtype, "X_test", "y_test")
    if len(epochs) > 1:
        candidates(model, s.form)          # refuse an impossible insertion before training, not after
    sched = StepLR(opt, s.step_size, s.gamma) if s.step_size else None
    s = s.replace(decrease=decrease, test_every=test_every, step_size=s.step_size or None, gamma=float(s.gamma),
                  normalise=bool(s.normalise), fresh_optimizer=bool(s.fresh_optimizer))
    record = dict(s.as_dict(), n_train=int(X.shape[0]), dtype=str(np.dtype(dtype)))
    schedule = InsertionSchedule(epochs, X, y, X_test, y_test, loss=loss, mode=s.mode, position=s.position,
                                 tau=s.tau, batch_size=s.batch_size, decrease=decrease, form=s.form,
                                 normalise=s.normalise, fresh_optimizer=s.fresh_optimizer, test_every=test_every,
                                 progress=progress, callback=callback, settings=record)
    trainer = Trainer(model, loss, opt, batch_size=s.batch_size, rng=rng, scheduler=sched, callbacks=[schedule],
                      progress=False, dtype=dtype, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                      checkpoint_meta=checkpoint_meta)
    schedule.run = InsertionRun(model, trainer=trainer)
    if resume is None:
        schedule.start(trainer)
    else:
        resume_checkpoint(resume, trainer)
    try:
        trainer.fit(X, y, sum(epochs) - trainer.epoch)
    except TrainingDiverged as exc:
        exc.run = schedule.run          # the records so far (the CLI saves them with the last finite model)
        raise
    return schedule.run
