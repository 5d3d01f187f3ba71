"""The training loop.

:class:`Trainer` runs minibatch (or full-batch) training with an explicit ``numpy.random.Generator`` for
shuffling, records per-step losses and per-epoch train/test loss and accuracy in a :class:`History`, calls
epoch-end callbacks (the structural methods use them to insert layers or remove units between epochs) and prints
a progress line on stderr.

A method that needs a different step (e.g. sampled gates and θ updates for pruning) subclasses ``Trainer`` and
overrides :meth:`Trainer.train_step`.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from .losses import get_loss
from .optim import Adam
from .validate import check_array, check_dtype, check_int, check_labels, check_rng

__all__ = ["Trainer", "History", "TrainingDiverged", "evaluate", "iterate_minibatches"]


class TrainingDiverged(RuntimeError):
    """Raised when the loss becomes NaN or inf. The model keeps the parameters of the last finite step."""

    def __init__(self, step, epoch, loss):
        self.step, self.epoch, self.loss = step, epoch, loss
        super().__init__(f"training diverged: loss = {loss} at step {step} (epoch {epoch}); the model keeps "
                         f"the parameters from before this step — lower the learning rate or check the data")


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


def evaluate(model, loss, X, y, batch_size=4096):
    """Mean loss and accuracy (for integer labels) of ``model`` in inference mode."""
    loss = get_loss(loss)
    total, correct, n = 0.0, 0, X.shape[0]
    for s in range(0, n, batch_size):
        out = model.forward(X[s:s + batch_size], train=False)
        yb = y[s:s + batch_size]
        total += float(loss.per_sample(out, yb).sum())
        if yb.ndim == 1:
            correct += int((out.argmax(1) == yb).sum())
    return total / n, (correct / n if y.ndim == 1 else float("nan"))


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
    """

    def __init__(self, model, loss="ce", optimizer=None, batch_size=128, rng=0, scheduler=None, callbacks=(),
                 progress=True, dtype=np.float32):
        self.model = model
        self.loss = get_loss(loss)
        self.optimizer = optimizer if optimizer is not None else Adam(1e-3)
        self.batch_size = None if batch_size is None else check_int("batch_size", batch_size, lo=1)
        self.rng = check_rng("rng", rng)
        self.scheduler = scheduler
        self.callbacks = list(callbacks)
        self.progress = bool(progress)
        self.dtype = check_dtype("dtype", dtype)
        self.history = History()
        self.epoch = 0          # epochs completed
        self.step = 0           # optimiser steps taken
        self.stop = False
        if model.dtype is not None and model.dtype != self.dtype:
            model.astype(self.dtype)

    # ------------------------------------------------------------------------------------------------------
    def _prepare(self, X, y, name):
        X = check_array(f"X_{name}", X, ndim=2, dtype=self.dtype)
        first = next((layer for layer in self.model.layers if "W" in layer.params), None)
        if first is not None and first.params["W"].shape[1] != X.shape[1]:
            raise ValueError(f"X_{name}: expected {first.params['W'].shape[1]} features per sample (the input "
                             f"width of the model), got {X.shape[1]}")
        if self.loss.name == "ce":
            y = check_labels(f"y_{name}", y, n=X.shape[0], n_classes=self._n_out())
        else:
            y = check_array(f"y_{name}", y, dtype=self.dtype)
            if y.shape[0] != X.shape[0]:
                raise ValueError(f"y_{name}: expected {X.shape[0]} targets (one per sample), got {y.shape[0]}")
        return np.ascontiguousarray(X), y

    def _n_out(self):
        for layer in reversed(self.model.layers):
            if "W" in layer.params:
                return layer.params["W"].shape[0]
        return None

    def train_step(self, xb, yb):
        """One optimiser step on a batch: forward, loss, backward, update. Returns the batch loss."""
        out = self.model.forward(xb, train=True)
        loss = self.loss.forward(out, yb)
        if not np.isfinite(loss):
            raise TrainingDiverged(self.step, self.epoch, loss)
        self.model.backward(self.loss.backward(), need_input_grad=False)
        self.optimizer.step(self.model)
        return loss

    def evaluate(self, X, y):
        return evaluate(self.model, self.loss, X, y)

    # ------------------------------------------------------------------------------------------------------
    def fit(self, X, y, epochs, X_test=None, y_test=None, eval_train=False):
        """Train for ``epochs`` more epochs (call again to continue); returns the :class:`History`.

        The epoch record has ``train_loss`` (mean of the step losses of the epoch; with ``eval_train=True`` the
        loss of the whole training set after the epoch, in inference mode), ``train_acc`` (likewise),
        ``test_loss``/``test_acc`` when test data are given, ``lr``, ``n_params``, ``seconds``.
        """
        epochs = check_int("epochs", epochs, lo=0)
        X, y = self._prepare(X, y, "train")
        if X_test is not None:
            X_test, y_test = self._prepare(X_test, y_test, "test")
        n = X.shape[0]
        self.stop = False
        for _ in range(epochs):
            t0 = time.perf_counter()
            bs = n if self.batch_size is None else self.batch_size
            losses = []
            for bi, idx in enumerate(iterate_minibatches(n, bs, self.rng, shuffle=self.batch_size is not None)):
                xb, yb = (X, y) if bs >= n and self.batch_size is None else (X[idx], y[idx])
                loss = self.train_step(xb, yb)
                losses.append(loss)
                self.step += 1
                if self.progress and bi % 50 == 0 and sys.stderr.isatty():
                    print(f"\repoch {self.epoch + 1} step {bi} loss {loss:.4f}", end="", file=sys.stderr)
            self.history.step_loss.extend(losses)
            self.epoch += 1
            rec = {"epoch": self.epoch, "lr": self.optimizer.lr, "n_params": self.model.n_params(),
                   "macs": self.model.macs()}
            if eval_train:
                rec["train_loss"], rec["train_acc"] = self.evaluate(X, y)
            else:
                rec["train_loss"] = float(np.mean(losses)) if losses else float("nan")
            if X_test is not None:
                rec["test_loss"], rec["test_acc"] = self.evaluate(X_test, y_test)
            rec["seconds"] = time.perf_counter() - t0
            self.history.epochs.append(rec)
            if self.scheduler is not None:
                self.scheduler.step()
            if self.progress:
                self._print_progress(rec)
            for cb in self.callbacks:
                if cb(self):
                    self.stop = True
            if self.stop:
                break
        return self.history

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
