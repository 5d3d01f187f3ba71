"""Checkpoints: save the whole training state and resume it bit-identically.

A checkpoint is an ordinary :func:`minigrow.io.save` file (plain ``.npz``, SHA-256 digest, atomic write, no
pickle) whose ``meta`` and ``arrays`` hold, besides the model and its optimiser state:

==============================  ====================================================================
architecture, parameters        the model layer by layer (grown or pruned networks included)
optimiser                       its config (current learning rate) and every parameter's state (m, v, t …)
scheduler                       ``StepLR`` position (``last_epoch``, ``base_lr``) or its ``state_dict()``
RNG                             ``rng.bit_generator.state`` (JSON: the PCG64 integers)
counters, history               ``epoch``, ``step``, per-epoch records, events; step losses as a float64 array
method state                    ``state_dict()`` of the trainer subclass / callbacks (θ, insertion history …)
==============================  ====================================================================

Resuming, :func:`resume`, restores all of it, so that ``fit`` continues exactly as the uninterrupted run would:
the final parameters are bit-identical (tests/test_checkpoint.py trains 4 epochs straight and 2 + 2 epochs with
a reload in between and compares the bytes).

The method-state protocol: any object among the trainer itself (a subclass), its scheduler and its callbacks that
has ``state_dict() -> (json_dict, arrays_dict)`` and ``load_state_dict(json_dict, arrays_dict)`` is saved under a
key (``"trainer"``, ``"scheduler"``, the callback's ``state_key`` or ``"callbacks[i]"``) and restored into the
object with the same key. Callbacks are code and are never stored: pass the same callbacks (or build the same
trainer subclass) when resuming.

Example::

    tr = Trainer(model, "ce", Adam(1e-3), rng=0, checkpoint_dir="runs/ckpt")   # one checkpoint per epoch
    tr.fit(X, y, 2)
    ...                                                                        # new process
    tr = resume("runs/ckpt")                     # the newest checkpoint in the folder (or a file)
    tr.fit(X, y, 4 - tr.epoch)                   # == 4 epochs straight, bit for bit
"""
from __future__ import annotations

import copy

import numpy as np

from .io import CorruptFileError, load
from .optim import StepLR
from .train import History, Trainer
from .trainstate import (_BIT_GENERATORS, CHECKPOINT_FORMAT, checkpoint_path, latest_checkpoint,  # noqa: F401
                         save_checkpoint, write_epoch_checkpoint)         # (the writing half, re-exported here)
from .validate import check_path

__all__ = ["save_checkpoint", "load_checkpoint", "resume", "latest_checkpoint", "checkpoint_path",
           "write_epoch_checkpoint", "CHECKPOINT_FORMAT"]

def load_checkpoint(path):
    """Read a checkpoint (a file, or a folder: its newest ``epoch-NNNN.npz``).

    Returns the :func:`minigrow.io.load` dict plus ``"checkpoint"`` (the trainer meta), ``"user"`` and ``"path"``.
    Raises ``FileNotFoundError`` / :class:`~minigrow.io.CorruptFileError` (a ``ValueError``) for a missing, damaged
    or non-checkpoint file.
    """
    path = check_path("path", path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"{path}: no checkpoint (epoch-NNNN.npz) in this folder")
        path = found
    d = load(path)
    ck = d["meta"].get("checkpoint") if isinstance(d["meta"], dict) else None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise CorruptFileError(f"{path}: a minigrow model file but not a checkpoint (no training state); load it "
                               f"with minigrow.io.load")
    if d["optimizer"] is None:
        raise CorruptFileError(f"{path}: checkpoint without optimiser state")
    d["checkpoint"], d["user"], d["path"] = ck, ck.get("user", {}), path
    return d


def _set_rng(rng, state, path):
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise CorruptFileError(f"{path}: unknown bit generator {name!r} in the RNG state")
    if type(rng.bit_generator).__name__ == name:
        rng.bit_generator.state = state             # in place: whoever shares this Generator sees the restored one
        return rng
    bg = getattr(np.random, name)()
    bg.state = state
    return np.random.Generator(bg)


def resume(path, trainer=None, *, callbacks=(), progress=True):
    """Restore a checkpoint and return the trainer, ready for ``trainer.fit(X, y, total_epochs - trainer.epoch)``.

    Parameters
    ----------
    path : a checkpoint file, or a folder (its newest ``epoch-NNNN.npz``)
    trainer : None — build a plain :class:`~minigrow.train.Trainer` from the checkpoint (``callbacks`` and
        ``progress`` are passed to it); or an existing trainer (e.g. a method's subclass, built as for the original
        run) into which everything is restored: ``trainer.model.layers`` are replaced by the saved (grown or pruned)
        layers, the optimiser's settings and per-parameter state, the scheduler position, the RNG state (in place),
        counters, history, batch size and the method state of every stateful object.
    """
    if trainer is not None and not isinstance(trainer, Trainer):
        raise TypeError(f"trainer: expected a minigrow Trainer (or None), got {type(trainer).__name__}")
    ck = load_checkpoint(path)
    meta, arrays, path = ck["checkpoint"], ck["arrays"], ck["path"]
    try:
        if trainer is None:
            if meta["method"].get("trainer") is not None:
                raise ValueError(f"trainer: the checkpoint was written by {meta['trainer_class']} with method "
                                 f"state; build that trainer as for the original run and call resume(path, trainer)")
            trainer = Trainer(ck["model"], meta["loss"], ck["optimizer"], batch_size=meta["batch_size"], rng=0,
                              callbacks=callbacks, progress=progress, dtype=np.dtype(meta["dtype"]))
            sched = meta["scheduler"]
            if sched is not None:
                if sched["type"] != "StepLR":
                    raise ValueError("trainer: the checkpoint has a custom scheduler; build the trainer with it and "
                                     "call resume(path, trainer)")
                trainer.scheduler = StepLR(trainer.optimizer, sched["step_size"], sched["gamma"])
        else:
            _restore_into(trainer, ck, meta, path)
        _restore_common(trainer, meta, arrays, path)
    except (KeyError, TypeError, AttributeError) as exc:
        raise CorruptFileError(f"{path}: inconsistent checkpoint ({type(exc).__name__}: {exc})") from None
    return trainer


def _restore_into(trainer, ck, meta, path):
    if not isinstance(trainer, Trainer):
        raise TypeError(f"trainer: expected a minigrow Trainer, got {type(trainer).__name__}")
    if type(trainer).__name__ != meta["trainer_class"]:
        raise ValueError(f"trainer: the checkpoint was written by a {meta['trainer_class']}, got a "
                         f"{type(trainer).__name__}")
    lname = getattr(trainer.loss, "name", type(trainer.loss).__name__)
    if lname != meta["loss"]:
        raise ValueError(f"trainer.loss: the checkpoint was written with loss {meta['loss']!r}, got {lname!r}")
    opt = ck["optimizer"]
    if type(trainer.optimizer) is not type(opt):
        raise ValueError(f"trainer.optimizer: the checkpoint holds a {type(opt).__name__}, got a "
                         f"{type(trainer.optimizer).__name__}")
    trainer.optimizer.__dict__.update(opt.__dict__)      # same object: the scheduler keeps pointing at it
    trainer.model.layers = ck["model"].layers            # same Sequential object, saved (grown/pruned) layers
    trainer.batch_size = meta["batch_size"]
    trainer.dtype = np.dtype(meta["dtype"])
    sched = meta["scheduler"]
    if (sched is None) != (trainer.scheduler is None):
        raise ValueError(f"trainer.scheduler: the checkpoint was written {'without' if sched is None else 'with'} "
                         f"a scheduler, the trainer has {'none' if trainer.scheduler is None else 'one'}")
    if sched is not None and sched["type"] == "StepLR":
        if not isinstance(trainer.scheduler, StepLR):
            raise ValueError(f"trainer.scheduler: the checkpoint holds a StepLR, got "
                             f"{type(trainer.scheduler).__name__}")
        trainer.scheduler.step_size, trainer.scheduler.gamma = sched["step_size"], sched["gamma"]


def _restore_common(trainer, meta, arrays, path):
    if trainer.scheduler is not None and meta["scheduler"] and meta["scheduler"]["type"] == "StepLR":
        trainer.scheduler.base_lr = meta["scheduler"]["base_lr"]
        trainer.scheduler.last_epoch = meta["scheduler"]["last_epoch"]
    trainer.rng = _set_rng(trainer.rng, meta["rng"], path)
    trainer.epoch, trainer.step = int(meta["epoch"]), int(meta["step"])
    hist = History.from_dict({"epochs": copy.deepcopy(meta["history"]["epochs"]),
                              "events": copy.deepcopy(meta["history"]["events"]),
                              "step_loss": arrays["trainer/step_loss"].tolist()})
    trainer.history = hist
    saved = dict(meta["method"])
    for key, obj in trainer.stateful_objects():
        entry = saved.pop(key, None)
        if entry is None:
            raise ValueError(f"{key}: {type(obj).__name__} has state (state_dict) but the checkpoint {path} holds "
                             f"none for it; was it written by a different setup?")
        if entry["class"] != type(obj).__name__:
            raise ValueError(f"{key}: the checkpoint holds state of a {entry['class']}, got a {type(obj).__name__}")
        prefix = f"method/{key}/"
        missing = [n for n in entry["arrays"] if prefix + n not in arrays]
        if missing:
            raise CorruptFileError(f"{path}: method state {key!r} lacks arrays {missing}")
        obj.load_state_dict(copy.deepcopy(entry["meta"]), {n: arrays[prefix + n] for n in entry["arrays"]})
    if saved:
        extra = ", ".join(f"{k!r} ({v['class']})" for k, v in saved.items())
        raise ValueError(f"callbacks: the checkpoint {path} holds method state for {extra}, which the trainer does "
                         f"not have; pass the same callbacks (or trainer subclass) as for the original run")
    trainer._snapshot = None
