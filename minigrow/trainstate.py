"""What a checkpoint holds and how it is written — the writing half of :mod:`minigrow.checkpoint`.

:class:`~minigrow.train.Trainer` writes its periodic checkpoints through this module (``checkpoint_dir=``);
:mod:`minigrow.checkpoint` reads them back and resumes (it builds on the trainer, so the two halves live apart and
the imports go one way: ``train → trainstate``, ``checkpoint → train, trainstate``). The format is described in
:mod:`minigrow.checkpoint`.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .io import save
from .optim import StepLR
from .validate import check_path

__all__ = ["CHECKPOINT_FORMAT", "checkpoint_path", "latest_checkpoint", "trainer_state", "save_checkpoint",
           "write_epoch_checkpoint"]

CHECKPOINT_FORMAT = "minigrow-checkpoint-1"
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")   # never getattr on a name from a file
_NAME = re.compile(r"^epoch-(\d+)\.npz$")


def checkpoint_path(directory, epoch):
    """``directory/epoch-NNNN.npz``."""
    return Path(directory) / f"epoch-{int(epoch):04d}.npz"


def latest_checkpoint(directory):
    """The newest ``epoch-NNNN.npz`` in ``directory`` (highest epoch), or None."""
    directory = check_path("directory", directory)
    if not directory.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return max(found)[1] if found else None


# ---------------------------------------------------------------------------------------------------------------
def _scheduler_state(sched):
    if sched is None:
        return None
    if hasattr(sched, "state_dict") and hasattr(sched, "load_state_dict"):
        return {"type": "protocol"}                       # saved with the method state under "scheduler"
    if isinstance(sched, StepLR):
        return {"type": "StepLR", "step_size": sched.step_size, "gamma": sched.gamma, "base_lr": sched.base_lr,
                "last_epoch": sched.last_epoch}
    raise TypeError(f"scheduler: {type(sched).__name__} cannot be checkpointed; give it state_dict() and "
                    f"load_state_dict(meta, arrays)")


def trainer_state(trainer):
    """``(meta, arrays)`` of everything but the model and optimiser (which :func:`minigrow.io.save` stores)."""
    if not callable(getattr(trainer, "stateful_objects", None)):
        raise TypeError(f"trainer: expected a minigrow Trainer, got {type(trainer).__name__}")
    bg = trainer.rng.bit_generator
    if type(bg).__name__ not in _BIT_GENERATORS:
        raise TypeError(f"trainer.rng: bit generator {type(bg).__name__} cannot be checkpointed; expected one of "
                        f"{list(_BIT_GENERATORS)}")
    hist = trainer.history
    meta = {
        "format": CHECKPOINT_FORMAT,
        "trainer_class": type(trainer).__name__,
        "epoch": trainer.epoch, "step": trainer.step, "batch_size": trainer.batch_size,
        "dtype": str(trainer.dtype), "loss": getattr(trainer.loss, "name", type(trainer.loss).__name__),
        "rng": bg.state,
        "history": {"epochs": hist.epochs, "events": hist.events},
        "scheduler": _scheduler_state(trainer.scheduler),
        "method": {},
    }
    arrays = {"trainer/step_loss": np.asarray(hist.step_loss, dtype=np.float64)}
    for key, obj in trainer.stateful_objects():
        m, a = obj.state_dict()
        if not isinstance(m, dict) or not isinstance(a, dict):
            raise TypeError(f"{key}.state_dict(): expected a (json_dict, arrays_dict) pair, got "
                            f"({type(m).__name__}, {type(a).__name__})")
        meta["method"][key] = {"class": type(obj).__name__, "meta": m, "arrays": sorted(a)}
        for name, v in a.items():
            arrays[f"method/{key}/{name}"] = np.asarray(v)
    return meta, arrays


def save_checkpoint(path, trainer, meta=None):
    """Write the whole training state of ``trainer`` to ``path`` (atomic). ``meta``: extra JSON-able user data
    (e.g. the command-line arguments), returned by :func:`load_checkpoint` as ``"user"``."""
    path = check_path("path", path)
    tmeta, arrays = trainer_state(trainer)
    if meta is not None and not isinstance(meta, dict):
        raise TypeError(f"meta: expected a JSON-able dict, got {type(meta).__name__}")
    tmeta["user"] = meta or {}
    return save(path, trainer.model, optimizer=trainer.optimizer, meta={"checkpoint": tmeta}, arrays=arrays)


def write_epoch_checkpoint(trainer):
    """``Trainer(checkpoint_dir=…)``: write ``epoch-NNNN.npz`` and delete all but the newest ``checkpoint_keep``."""
    d = trainer.checkpoint_dir
    path = save_checkpoint(checkpoint_path(d, trainer.epoch), trainer, meta=getattr(trainer, "checkpoint_meta", None))
    # Only OLDER checkpoints are pruned: the file just written is always kept, and so are higher epoch numbers (a
    # folder holding another run's later checkpoints must never make this run delete its own files).
    older = sorted((e, p) for p in d.iterdir() if (m := _NAME.match(p.name)) and (e := int(m.group(1))) <
                   trainer.epoch)
    for _, p in older[:max(len(older) - (trainer.checkpoint_keep - 1), 0)]:
        p.unlink(missing_ok=True)
    return path
