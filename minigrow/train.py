"""The training loop.

:class:`Trainer` runs minibatch (or full-batch) training with an explicit ``numpy.random.Generator`` for
shuffling, records per-step losses and per-epoch train/test loss and accuracy in a :class:`History`, calls
epoch-end callbacks (the structural methods use them to insert layers or remove units between epochs) and prints
a progress line on stderr.

A method that needs a different step (e.g. sampled gates and θ updates for pruning) subclasses ``Trainer`` and
overrides :meth:`Trainer.train_step`.

Reliability (see docs/reliability.md)
-------------------------------------
* Input is validated once, at the entry of :meth:`Trainer.__init__` and :meth:`Trainer.fit`, never per step.
* Divergence: a non-finite loss raises :class:`TrainingDiverged`. Guarantee: afterwards every parameter of the
  model is finite and the model, its optimiser state, the RNG and the counters are *exactly* one of

  - the state before the failing step (``exc.restored == "step"``): the usual case — the loss is computed from
    the current parameters before any update, so when it is non-finite while the parameters are still finite
    nothing has been changed yet;
  - the state at the start of the epoch (``exc.restored == "epoch"``): when the parameters themselves had become
    non-finite (an earlier update of the epoch overflowed, or a ``train_step`` override updated before checking
    its loss). The trainer keeps one in-memory copy of the parameters, optimiser state, RNG and method state at
    every epoch start (one copy per epoch, not per step) and the parameters are checked for finiteness only at a
    divergence and once at every epoch end.

  In both cases the model can be saved with :func:`minigrow.io.save` or a checkpoint.
* Checkpoints: ``Trainer(checkpoint_dir=…, checkpoint_every=1)`` writes a checkpoint at the end of every epoch
  (after the callbacks); :func:`minigrow.checkpoint.resume` continues bit-identically.
"""
from __future__ import annotations

import copy
import math
import sys
import time

import numpy as np

from .layers.base import display_path
from .layers.sequential import check_model, eval_batch
from .losses import get_loss
from .optim import Adam
from .trainstate import save_checkpoint, write_epoch_checkpoint
from .validate import (check_array, check_bool, check_callable, check_dtype, check_int, check_labels,
                       check_path, check_rng)

__all__ = ["Trainer", "History", "TrainingDiverged", "evaluate", "iterate_minibatches", "params_finite",
           "check_batch"]


class TrainingDiverged(RuntimeError):
    """Raised when the loss (or a parameter) becomes NaN or inf.

    Attributes
    ----------
    step : int — 0-based index of the failing optimiser step (= steps completed before it)
    epoch : int — 0-based index of the epoch it happened in (= epochs completed before it)
    loss : float — the non-finite loss (or NaN when a parameter was found non-finite at an epoch end)
    batch : int or None — 0-based index of the batch within the epoch
    restored : 'step' | 'epoch' | None — which state the model was left in (module docstring); None when raised by
        a ``train_step`` override before the trainer has handled it
    """

    def __init__(self, step, epoch, loss, batch=None, restored=None):
        self.step, self.epoch, self.loss, self.batch, self.restored = step, epoch, loss, batch, restored
        where = f"at step {step + 1}" + (f" (batch {batch + 1} of epoch {epoch + 1})" if batch is not None
                                         else f" (epoch {epoch + 1})")
        keep = {"step": "the model keeps the parameters from before this step",
                "epoch": f"a parameter had become non-finite, so the model was restored to the state at the start "
                         f"of epoch {epoch + 1}",
                None: "the model keeps the parameters from before this step"}[restored]
        super().__init__(f"training diverged: loss = {loss} {where}; {keep} (all finite, can be saved) — lower "
                         f"the learning rate or check the data")


class History:
    """Per-step losses and per-epoch records (dicts), plus free-form events (insertions, prunings …)."""

    def __init__(self):
        self.step_loss: list[float] = []
        self.epochs: list[dict] = []
        self.events: list[dict] = []

    def column(self, key):
        """Array of one per-epoch field, e.g. ``history.column("test_acc")`` (NaN where missing)."""
        return np.array([e.get(key, np.nan) for e in self.epochs], dtype=float)

    def as_dict(self):
        return {"step_loss": list(self.step_loss), "epochs": list(self.epochs), "events": list(self.events)}

    @classmethod
    def from_dict(cls, d):
        h = cls()
        h.step_loss = list(d.get("step_loss", []))
        h.epochs = list(d.get("epochs", []))
        h.events = list(d.get("events", []))
        return h

    def __repr__(self):
        return f"History({len(self.epochs)} epochs, {len(self.step_loss)} steps, {len(self.events)} events)"


def iterate_minibatches(n, batch_size, rng, shuffle=True):
    """Yield index arrays covering ``range(n)`` in batches; a fresh permutation from ``rng`` when shuffling."""
    idx = rng.permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield idx[start:start + batch_size]


def evaluate(model, loss, X, y, batch_size=None):
    """Mean loss and accuracy (for integer labels) of ``model`` in inference mode, in chunks of ``batch_size``
    samples (default 4096 rows, or 256 images for N-D input)."""
    check_model("model", model)
    loss = get_loss(loss)
    batch_size = None if batch_size is None else check_int("batch_size", batch_size, lo=1)
    X = check_batch("X", X, model, dtype=model.dtype)
    if isinstance(y, (str, bytes, dict)) or y is None:
        raise TypeError(f"y: expected integer labels or a target array, got {type(y).__name__}")
    y = np.asarray(y)
    if y.ndim == 1:
        y = check_labels("y", y, n=X.shape[0], n_classes=_n_out(model))
    else:
        y = check_array("y", y, ndim=2, dtype=X.dtype)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"y: expected {X.shape[0]} targets (one per sample), got {y.shape[0]}")
    return _evaluate(model, loss, X, y, batch_size)


def _evaluate(model, loss, X, y, batch_size=None):
    """:func:`evaluate` without the input checks (the trainer has checked its data once at entry)."""
    batch_size = eval_batch(X, batch_size)
    total, correct, n = 0.0, 0, X.shape[0]
    for s in range(0, n, batch_size):
        out = model.forward(X[s:s + batch_size], train=False)
        yb = y[s:s + batch_size]
        total += float(loss.per_sample(out, yb).sum())
        if yb.ndim == 1:
            correct += int((out.argmax(1) == yb).sum())
    return total / n, (correct / n if y.ndim == 1 else float("nan"))


def _input_layer(model):
    """The first layer that fixes the model's input (its ``input_width`` or ``in_units``), or None when
    unknown (e.g. a flatten comes first)."""
    for layer in model.layers:
        if isinstance(getattr(layer, "input_width", None), int) or \
                isinstance(getattr(layer, "in_units", None), int):
            return layer
        if layer.params or layer.unit_kind != "elementwise":
            return None
    return None


def _input_width(model):
    """Units (axis 1 of the input: features or channels) the model expects — a layer's ``input_width`` (e.g. an
    input gate, which accepts the original features after pruning) or ``in_units`` — or None if unknown."""
    layer = _input_layer(model)
    if layer is None:
        return None
    n = getattr(layer, "input_width", None)
    return n if isinstance(n, int) else layer.in_units


def _n_out(model):
    """Output width of the model (``out_units`` of its last layer that fixes it), or None if unknown."""
    for layer in reversed(model.layers):
        n = getattr(layer, "out_units", None)
        if isinstance(n, int):
            return n
        if layer.params or layer.unit_kind != "elementwise":
            return None
    return None


def _all_layers(model):
    """Every layer inside ``model`` (nested ones too), depth first, ``model`` itself excluded."""
    it = model.named_layers()
    next(it)
    for _, layer in it:
        yield layer


def check_batch(name, X, model, dtype=None):
    """X as a batch-first array of rank ≥ 2 whose axis 1 matches the model's input units (when known)."""
    X = check_array(name, X, dtype=dtype)
    layer = _input_layer(model)
    ndim = getattr(layer, "input_ndim", None)
    if ndim is not None and X.ndim != ndim:
        want = "2-d array (samples, features)" if ndim == 2 else f"{ndim}-d array (samples, channels, height, width)"
        raise ValueError(f"{name}: expected a {want}, got shape {X.shape}")
    if X.ndim < 2:
        raise ValueError(f"{name}: expected a batch-first array of rank ≥ 2 (samples, features) or (samples, "
                         f"channels, height, width), got shape {X.shape}")
    n_in = _input_width(model)
    if n_in is not None and n_in != X.shape[1]:
        what = "features" if X.ndim == 2 else "channels (axis 1)"
        raise ValueError(f"{name}: expected {n_in} {what} per sample (the input width of the model), "
                         f"got {X.shape[1]} (shape {X.shape})")
    return X


def params_finite(model):
    """True when every parameter and every optimiser-state array of ``model`` is finite."""
    for layer in _all_layers(model):
        for p in layer.params.values():
            if not np.isfinite(p).all():
                return False
        for st in layer.state.values():
            for v in st.values():
                if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all():
                    return False
    return True


def _check_finite_model(model):
    """ValueError naming the first non-finite parameter (so that training never starts from a broken state)."""
    for path, layer in model.named_layers():
        for k, p in layer.params.items():
            if not np.isfinite(p).all():
                raise ValueError(f"model: expected finite parameters, got a non-finite value in "
                                 f"{display_path(path)}.params[{k!r}] ({type(layer).__name__})")


class Trainer:
    """Train a :class:`~minigrow.layers.Sequential` model.

    Parameters
    ----------
    model : Sequential
    loss : 'ce' | 'mse' | loss object
    optimizer : SGD | Adam (default Adam(1e-3))
    batch_size : int or None — None means full-batch gradient descent
    rng : Generator or int seed — shuffles the minibatches (and anything a subclass samples)
    scheduler : optional StepLR, stepped at every epoch end
    callbacks : callables ``cb(trainer)`` run at every epoch end (after the record is written); one that
        returns True stops training
    progress : print a progress line on stderr
    dtype : float32 (default) or float64; the model and data are cast to it
    checkpoint_dir : folder for checkpoints (None = no checkpoints); with it a checkpoint
        ``epoch-NNNN.npz`` is written every ``checkpoint_every`` epochs, after the callbacks, and only the newest
        ``checkpoint_keep`` files are kept (:mod:`minigrow.checkpoint`); ``checkpoint_meta`` is a JSON-able dict
        stored in each of them (e.g. the command-line arguments)
    rollback : keep a copy of the state at every epoch start so that a divergence can restore it when a parameter
        has become non-finite (one copy per epoch; turn off only for the last bit of speed)

    Method state
    ------------
    A subclass (or a callback, or the scheduler) that carries state of its own — θ, a schedule position, an
    insertion history — provides ``state_dict() -> (json_dict, arrays_dict)`` and
    ``load_state_dict(json_dict, arrays_dict)``; checkpoints and the divergence rollback then include it. A callback
    may set ``state_key`` (str) to name its entry (default ``callbacks[i]``).
    """

    def __init__(self, model, loss="ce", optimizer=None, batch_size=128, rng=0, scheduler=None, callbacks=(),
                 progress=True, dtype=np.float32, checkpoint_dir=None, checkpoint_every=1, checkpoint_keep=2,
                 rollback=True, checkpoint_meta=None):
        self.model = check_model("model", model)
        self.loss = get_loss(loss)
        if optimizer is not None and not callable(getattr(optimizer, "step", None)):
            raise TypeError(f"optimizer: expected a minigrow optimizer (SGD, Adam) with a step(model) method, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer if optimizer is not None else Adam(1e-3)
        self.batch_size = None if batch_size is None else check_int("batch_size", batch_size, lo=1)
        self.rng = check_rng("rng", rng)
        if scheduler is not None and not callable(getattr(scheduler, "step", None)):
            raise TypeError(f"scheduler: expected a schedule with a step() method (e.g. StepLR), got "
                            f"{type(scheduler).__name__}")
        if scheduler is not None and getattr(scheduler, "optimizer", self.optimizer) is not self.optimizer:
            raise ValueError("scheduler: it was built for a different optimizer object than the trainer's "
                             "optimizer; build it with StepLR(trainer_optimizer, …)")
        self.scheduler = scheduler
        if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
            raise TypeError(f"callbacks: expected a list of callables cb(trainer), got {type(callbacks).__name__}")
        self.callbacks = [check_callable(f"callbacks[{i}]", cb) for i, cb in enumerate(callbacks)]
        self.progress = check_bool("progress", progress)
        self.dtype = check_dtype("dtype", dtype)
        self.checkpoint_dir = None if checkpoint_dir is None else check_path("checkpoint_dir", checkpoint_dir)
        self.checkpoint_every = check_int("checkpoint_every", checkpoint_every, lo=1)
        self.checkpoint_keep = check_int("checkpoint_keep", checkpoint_keep, lo=1)
        self.rollback = check_bool("rollback", rollback)
        if checkpoint_meta is not None and not isinstance(checkpoint_meta, dict):
            raise TypeError(f"checkpoint_meta: expected a JSON-able dict, got {type(checkpoint_meta).__name__}")
        self.checkpoint_meta = checkpoint_meta
        self.history = History()
        self.epoch = 0          # epochs completed
        self.step = 0           # optimiser steps taken
        self.stop = False
        self._snapshot = None
        if model.dtype is not None and model.dtype != self.dtype:
            model.astype(self.dtype)

    # ------------------------------------------------------------------------------------------------------
    def _prepare(self, X, y, name):
        """Check and convert one data set once, at the entry of :meth:`fit` (never per step)."""
        xname, yname = ("X", "y") if name == "train" else (f"X_{name}", f"y_{name}")
        X = check_batch(xname, X, self.model, dtype=self.dtype)
        if getattr(self.loss, "name", None) == "ce":
            y = check_labels(yname, y, n=X.shape[0], n_classes=_n_out(self.model))
        else:
            y = check_array(yname, y, dtype=self.dtype)
            if y.shape[0] != X.shape[0]:
                raise ValueError(f"{yname}: expected {X.shape[0]} targets (one per sample), got {y.shape[0]}")
            n_out = _n_out(self.model)
            cols = 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
            if n_out is not None and (y.ndim > 2 or cols != n_out):
                raise ValueError(f"{yname}: expected targets of shape ({X.shape[0]}, {n_out}) (one row of "
                                 f"{n_out} outputs per sample), got {y.shape}")
        return np.ascontiguousarray(X), y

    def _n_out(self):
        return _n_out(self.model)

    def check_loss(self, loss):
        """Raise :class:`TrainingDiverged` when ``loss`` is not finite. A ``train_step`` override calls it *before*
        updating anything; then the trainer can keep the state from before the step (else it restores the epoch
        start)."""
        if not math.isfinite(loss):
            raise TrainingDiverged(self.step, self.epoch, loss)

    def train_step(self, xb, yb):
        """One optimiser step on a batch: forward, loss, backward, update. Returns the batch loss."""
        out = self.model.forward(xb, train=True)
        loss = self.loss.forward(out, yb)
        if not math.isfinite(loss):        # before any update: the parameters are still those before the step
            raise TrainingDiverged(self.step, self.epoch, loss)
        self.model.backward(self.loss.backward(), need_input_grad=False)
        self.optimizer.step(self.model)
        return loss

    def evaluate(self, X, y):
        """Mean loss and accuracy on ``(X, y)`` in inference mode (input checked)."""
        return evaluate(self.model, self.loss, X, y)

    def _eval_checked(self, X, y):
        """Evaluate data that :meth:`fit` has already checked (a subclass's own ``evaluate`` is honoured)."""
        if type(self).evaluate is Trainer.evaluate:
            return _evaluate(self.model, self.loss, X, y)
        return self.evaluate(X, y)

    # --- method state (override in a subclass that carries state; see the class docstring) ---------------------
    def state_dict(self):
        """Method state of a Trainer subclass as ``(json_dict, arrays_dict)``; the base trainer has none (its own
        counters, RNG and history are saved by :mod:`minigrow.checkpoint`)."""
        return {}, {}

    def load_state_dict(self, meta, arrays):
        """Restore what :meth:`state_dict` returned."""

    def stateful_objects(self):
        """``[(key, obj)]`` for every object whose state checkpoints and rollbacks include: the trainer itself when
        a subclass overrides :meth:`state_dict`, the scheduler and the callbacks that provide ``state_dict`` and
        ``load_state_dict``."""
        out = []
        if type(self).state_dict is not Trainer.state_dict:
            out.append(("trainer", self))
        if self.scheduler is not None and hasattr(self.scheduler, "state_dict") and \
                hasattr(self.scheduler, "load_state_dict"):
            out.append(("scheduler", self.scheduler))
        for i, cb in enumerate(self.callbacks):
            if hasattr(cb, "state_dict") and hasattr(cb, "load_state_dict"):
                out.append((str(getattr(cb, "state_key", None) or f"callbacks[{i}]"), cb))
        return out

    def save_checkpoint(self, path, meta=None):
        """Write a checkpoint of the whole training state to ``path`` (see :mod:`minigrow.checkpoint`)."""
        return save_checkpoint(path, self, meta=meta)

    # --- divergence rollback ----------------------------------------------------------------------------------
    def _take_snapshot(self):
        """In-memory copy of everything an epoch changes (one copy per epoch): the layer list, every layer's
        attributes (shallow), parameters, buffers, optimiser state, frozen set, ``extra_state()`` and
        ``extra_arrays()`` (deep; e.g. a Dropout's random state), the counters, RNG, optimiser and scheduler
        attributes, history lengths and the method state (``state_dict``)."""
        layers = []
        for layer in _all_layers(self.model):
            d = dict(layer.__dict__)
            d["params"] = {k: v.copy() for k, v in layer.params.items()}
            d["buffers"] = {k: v.copy() for k, v in layer.buffers.items()}      # running statistics (batch norm)
            d["state"] = {k: {s: (v.copy() if isinstance(v, np.ndarray) else v) for s, v in st.items()}
                          for k, st in layer.state.items()}
            d["frozen"] = set(layer.frozen)
            if hasattr(layer, "layers"):
                d["layers"] = list(layer.layers)
            extra = None
            if hasattr(layer, "load_extra"):          # e.g. gate probabilities θ, a dropout layer's RNG state
                es = layer.extra_state() if hasattr(layer, "extra_state") else {}
                arrs = layer.extra_arrays() if hasattr(layer, "extra_arrays") else {}
                extra = (copy.deepcopy(es), {k: np.array(v, copy=True) for k, v in arrs.items()})
            layers.append((layer, d, extra))
        method = []
        for key, obj in self.stateful_objects():
            meta, arrays = obj.state_dict()
            method.append((obj, copy.deepcopy(meta), {k: np.array(v, copy=True) for k, v in arrays.items()}))
        self._snapshot = {
            "model_layers": list(self.model.layers), "layers": layers, "step": self.step, "epoch": self.epoch,
            "rng": copy.deepcopy(self.rng.bit_generator.state), "n_steps": len(self.history.step_loss),
            "n_events": len(self.history.events), "n_epochs": len(self.history.epochs),
            "optimizer": dict(self.optimizer.__dict__),
            "scheduler": None if self.scheduler is None else dict(self.scheduler.__dict__), "method": method}

    def _restore_snapshot(self):
        snap = self._snapshot
        self.model.layers = list(snap["model_layers"])
        for layer, d, extra in snap["layers"]:
            layer.__dict__.clear()
            layer.__dict__.update(d)
            layer._init_grads()
            if extra is not None:
                layer.load_extra(*extra)
        self.step, self.epoch = snap["step"], snap["epoch"]
        self.rng.bit_generator.state = snap["rng"]
        del self.history.step_loss[snap["n_steps"]:]
        del self.history.events[snap["n_events"]:]
        del self.history.epochs[snap["n_epochs"]:]
        self.optimizer.__dict__.update(snap["optimizer"])
        if snap["scheduler"] is not None:
            self.scheduler.__dict__.update(snap["scheduler"])
        for obj, meta, arrays in snap["method"]:
            obj.load_state_dict(meta, arrays)

    def _diverged(self, loss, batch, losses, updated):
        """Leave the last finite state and raise.

        ``batch``: index of the failing batch in the epoch; ``losses``: losses of the epoch's completed steps;
        ``updated``: the failing step may already have changed the state.
        """
        step, epoch = self.step, self.epoch            # the failing step's index, the current epoch's index
        if not updated and params_finite(self.model):
            restored = "step"
            self.history.step_loss.extend(losses)
        elif self.rollback and self._snapshot is not None:
            restored = "epoch"
            self._restore_snapshot()
        else:
            restored = None
        exc = TrainingDiverged(step, epoch, loss, batch=batch, restored=restored)
        if restored is None:
            exc.args = (exc.args[0].split(";")[0] + "; a parameter is NOT finite and rollback=False: do not use "
                        "this model",)
        self.history.events.append({"event": "diverged", "step": step, "epoch": epoch, "loss": float(loss),
                                    "restored": restored})
        raise exc

    # ------------------------------------------------------------------------------------------------------
    def fit(self, X, y, epochs, X_test=None, y_test=None, eval_train=False):
        """Train for ``epochs`` more epochs (call again to continue); returns the :class:`History`.

        The epoch record has ``train_loss`` (mean of the step losses of the epoch; with ``eval_train=True`` the
        loss of the whole training set after the epoch, in inference mode), ``train_acc`` (likewise),
        ``test_loss``/``test_acc`` when test data are given, ``lr``, ``n_params``, ``seconds``.
        """
        epochs = check_int("epochs", epochs, lo=0)
        eval_train = check_bool("eval_train", eval_train)
        if (X_test is None) != (y_test is None):
            raise ValueError(f"X_test, y_test: give both or neither, got X_test={'None' if X_test is None else '…'}"
                             f" and y_test={'None' if y_test is None else '…'}")
        X, y = self._prepare(X, y, "train")
        if X_test is not None:
            X_test, y_test = self._prepare(X_test, y_test, "test")
        _check_finite_model(self.model)
        n = X.shape[0]
        self.stop = False
        # Overflow inside a diverging step is detected from the loss below; NumPy's warnings would only repeat it.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self._fit_epochs(X, y, X_test, y_test, n, epochs, eval_train)
        return self.history

    def _fit_epochs(self, X, y, X_test, y_test, n, epochs, eval_train):
        for _ in range(epochs):
            if self.rollback:
                self._take_snapshot()
            t0 = time.perf_counter()
            bs = n if self.batch_size is None else self.batch_size
            losses = []
            for bi, idx in enumerate(iterate_minibatches(n, bs, self.rng, shuffle=self.batch_size is not None)):
                xb, yb = (X, y) if bs >= n and self.batch_size is None else (X[idx], y[idx])
                try:
                    loss = self.train_step(xb, yb)
                except TrainingDiverged as exc:            # raised before the update
                    self._diverged(exc.loss, bi, losses, updated=False)
                if not math.isfinite(loss):                # returned after an update (a train_step override)
                    self._diverged(loss, bi, losses, updated=True)
                losses.append(loss)
                self.step += 1
                if self.progress and bi % 50 == 0 and sys.stderr.isatty():
                    print(f"\repoch {self.epoch + 1} step {bi} loss {loss:.4f}", end="", file=sys.stderr)
            if not params_finite(self.model):              # an update overflowed: checked once per epoch
                self.step -= 1                             # blame the last step of the epoch
                self._diverged(float("nan"), len(losses) - 1, losses[:-1], updated=True)
            self.history.step_loss.extend(losses)
            self.epoch += 1
            rec = {"epoch": self.epoch, "lr": self.optimizer.lr, "n_params": self.model.n_params(),
                   "macs": self.model.macs()}
            if eval_train:
                rec["train_loss"], rec["train_acc"] = self._eval_checked(X, y)
            else:
                rec["train_loss"] = float(np.mean(losses)) if losses else float("nan")
            if X_test is not None:
                rec["test_loss"], rec["test_acc"] = self._eval_checked(X_test, y_test)
            rec["seconds"] = time.perf_counter() - t0
            self.history.epochs.append(rec)
            if self.scheduler is not None:
                self.scheduler.step()
            if self.progress:
                self._print_progress(rec)
            for cb in self.callbacks:
                if cb(self):
                    self.stop = True
            if self.checkpoint_dir is not None and self.epoch % self.checkpoint_every == 0:
                write_epoch_checkpoint(self)
            if self.stop:
                break

    def _print_progress(self, rec):
        parts = [f"epoch {rec['epoch']}", f"train loss {rec['train_loss']:.4f}"]
        if "train_acc" in rec:
            parts.append(f"train acc {rec['train_acc']:.4f}")
        if "test_acc" in rec:
            parts.append(f"test loss {rec['test_loss']:.4f} acc {rec['test_acc']:.4f}")
        parts.append(f"params {rec['n_params']:,}")
        parts.append(f"{rec['seconds']:.2f}s")
        end = "\n"
        print(("\r" if sys.stderr.isatty() else "") + " | ".join(parts), end=end, file=sys.stderr)
