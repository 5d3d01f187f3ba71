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
import json

import numpy as np

from .io import CorruptFileError, load
from .optim import StepLR
from .train import History, Trainer, _all_layers
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
    if path.exists() and not path.is_file():      # a FIFO would block the read forever, a device never ends
        raise ValueError(f"path: {path} is not a regular file (a FIFO, device or socket); expected a checkpoint "
                         f"file or a folder of them")
    d = load(path)
    ck = d["meta"].get("checkpoint") if isinstance(d["meta"], dict) else None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise CorruptFileError(f"{path}: a minigrow model file but not a checkpoint (no training state); load it "
                               f"with minigrow.io.load")
    if d["optimizer"] is None:
        raise CorruptFileError(f"{path}: checkpoint without optimiser state")
    _validate(d, ck, path)
    d["checkpoint"], d["user"], d["path"] = ck, ck.get("user", {}), path
    return d


def _is_int(v, lo=0):
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _is_pos_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v > 0


def _validate(d, ck, path):
    """Structure of a checkpoint whose digest is right: every field the resume reads has the right type and range,
    so that a hand-edited (re-digested) or foreign file raises CorruptFileError here — never a KeyError, an
    OverflowError or a silently wrong run later."""
    def bad(what):
        raise CorruptFileError(f"{path}: invalid checkpoint: {what}")

    for key, lo in (("epoch", 0), ("step", 0)):
        if not _is_int(ck.get(key), lo):
            bad(f"{key!r} must be an integer >= {lo}, got {ck.get(key)!r}")
    bs = ck.get("batch_size")
    if bs is not None and not _is_int(bs, 1):
        bad(f"'batch_size' must be None or an integer >= 1, got {bs!r}")
    if ck.get("dtype") not in ("float32", "float64"):
        bad(f"'dtype' must be 'float32' or 'float64', got {ck.get('dtype')!r}")
    for key in ("loss", "trainer_class"):
        if not isinstance(ck.get(key), str):
            bad(f"{key!r} must be a string, got {ck.get(key)!r}")
    if not isinstance(ck.get("rng"), dict):
        bad("'rng' must be the generator state (a dict)")
    hist = ck.get("history")
    if not isinstance(hist, dict) or not isinstance(hist.get("epochs"), list) or \
            not isinstance(hist.get("events"), list) or not all(isinstance(e, dict) for e in hist["epochs"]):
        bad("'history' must hold lists 'epochs' (of dicts) and 'events'")
    sl = d["arrays"].get("trainer/step_loss")
    if sl is None or sl.ndim != 1 or sl.dtype.kind != "f":
        bad("the step losses ('trainer/step_loss') must be a 1-d float array")
    sched = ck.get("scheduler")
    if sched is not None:
        if not isinstance(sched, dict) or sched.get("type") not in ("StepLR", "protocol"):
            bad(f"'scheduler' must be None or a StepLR/protocol record, got {sched!r}"[:200])
        if sched["type"] == "StepLR" and not (_is_int(sched.get("step_size"), 1) and
                                              _is_pos_number(sched.get("gamma")) and
                                              _is_pos_number(sched.get("base_lr")) and
                                              _is_int(sched.get("last_epoch"), 0)):
            bad(f"StepLR record needs step_size >= 1, gamma > 0, base_lr > 0, last_epoch >= 0, got {sched}")
    method = ck.get("method")
    if not isinstance(method, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("class"), str) and isinstance(v.get("meta"), dict) and
            isinstance(v.get("arrays"), list) and all(isinstance(a, str) for a in v["arrays"])
            for v in method.values()):
        bad("'method' must map keys to {class, meta, arrays} records")
    # the optimiser's stored config must be complete (a missing field would silently become the default)
    with np.load(path, allow_pickle=False) as f:
        cfg = json.loads(str(f["__meta__"])).get("optimizer")
    need = {"sgd": {"name", "lr", "momentum", "weight_decay"},
            "adam": {"name", "lr", "beta1", "beta2", "eps", "weight_decay"}}.get(getattr(d["optimizer"], "name", None))
    if not isinstance(cfg, dict) or (need is not None and set(cfg) != need):
        bad(f"optimiser config must hold exactly {sorted(need or [])}, got "
            f"{sorted(cfg) if isinstance(cfg, dict) else cfg!r}")
    dtype = np.dtype(ck["dtype"])
    opt = d["optimizer"]
    kind = getattr(opt, "name", None)
    for i, layer in enumerate(_all_layers(d["model"])):
        for name, w in layer.params.items():
            if w.dtype != dtype:
                bad(f"layer {i} ({type(layer).__name__}) parameter {name!r} has dtype {w.dtype}, the checkpoint's "
                    f"dtype is {dtype}")
        for name, st in layer.state.items():
            if name not in layer.params or not isinstance(st, dict):
                bad(f"layer {i}: optimiser state for an unknown parameter {name!r}")
            w = layer.params[name]
            want = {"adam": {"m", "v", "t"}, "sgd": {"v"}}.get(kind)
            if want is None:
                continue
            if (kind == "adam" and st and set(st) != want) or (kind == "sgd" and not set(st) <= want):
                bad(f"layer {i} parameter {name!r}: {kind} state must hold {sorted(want)}, got {sorted(st)}")
            for key, v in st.items():
                if key == "t":
                    if not _is_int(v, 1) or v > max(ck["step"], 1):
                        bad(f"layer {i} parameter {name!r}: Adam step count t must be an integer in [1, "
                            f"{max(ck['step'], 1)}], got {v!r}")
                elif not isinstance(v, np.ndarray) or v.shape != w.shape or v.dtype != w.dtype:
                    bad(f"layer {i} parameter {name!r}: optimiser state {key!r} must be a {w.dtype} array of shape "
                        f"{w.shape}, got {getattr(v, 'dtype', type(v).__name__)} {getattr(v, 'shape', '')}")


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
