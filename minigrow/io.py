"""Save and load models as plain ``.npz`` files — never pickle — with an exact round trip.

File layout (all entries are plain arrays; strings are stored as NumPy unicode arrays):

==============================  ====================================================================
``__format__``                  ``"minigrow-1"``
``__meta__``                    JSON: layer types and configs, frozen names, optimiser config, user meta
``layers/{i}/params/{name}``    parameter arrays (dtype kept)
``layers/{i}/state/{name}/{k}`` optimiser state (Adam m, v, t …), only with ``optimizer=…``
``extra/{key}``                 any further arrays (method state such as θ)
``__digest__``                  SHA-256 over every other entry's name, dtype, shape and bytes
==============================  ====================================================================

Because the architecture is stored layer by layer, grown (inserted layers) and pruned (narrower) networks
round-trip like any other. Loading verifies the digest, so a truncated or altered file gives a clear
``ValueError`` instead of a silently wrong model.

What loading guarantees (tested in tests/test_checkpoint.py):

* never executes code: ``np.load(…, allow_pickle=False)``, layer types only from the registry, optimiser from a
  fixed table; an ``.npz`` holding an object array is refused;
* a missing file raises ``FileNotFoundError``; anything that is not a zip archive (``.npy``, pickle, text) — or a
  truncated one, one with a flipped byte (zip CRC-32 or the SHA-256 digest), an edited ``__meta__`` (digest) —
  raises :class:`CorruptFileError` (a ``ValueError``) whose message names the file;
* writing is atomic (temporary file + rename), so an interrupted save leaves the previous file intact.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .layers import LAYER_TYPES, Sequential
from .optim import get_optimizer
from .validate import check_path

__all__ = ["save", "load", "save_model", "load_model", "CorruptFileError"]

FORMAT = "minigrow-1"


class CorruptFileError(ValueError):
    """The file is not a complete, unaltered minigrow .npz file."""


def _digest(arrays: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def to_jsonable(x):
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def save(path, model, optimizer=None, meta=None, arrays=None):
    """Write ``model`` (a Sequential) to ``path`` (.npz).

    optimizer : also store its config and every parameter's optimiser state (to resume training exactly)
    meta : JSON-able dict stored as is (history, RNG state, method settings …)
    arrays : dict of extra arrays (stored under ``extra/``)
    """
    path = check_path("path", path)
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a minigrow Sequential, got {type(model).__name__}")
    if optimizer is not None and not callable(getattr(optimizer, "config", None)):
        raise TypeError(f"optimizer: expected a minigrow optimizer (SGD, Adam), got {type(optimizer).__name__}")
    if meta is not None and not isinstance(meta, dict):
        raise TypeError(f"meta: expected a JSON-able dict, got {type(meta).__name__}")
    if arrays is not None and not isinstance(arrays, dict):
        raise TypeError(f"arrays: expected a dict of name → array, got {type(arrays).__name__}")
    out: dict[str, np.ndarray] = {}
    layers_meta = []
    for i, layer in enumerate(model.layers):
        name = type(layer).__name__
        if LAYER_TYPES.get(name) is not type(layer):
            raise TypeError(f"layers[{i}]: {name} is not a registered layer type (use @register_layer)")
        layers_meta.append({"type": name, "config": to_jsonable(layer.config()),
                            "frozen": sorted(layer.frozen), "extra": to_jsonable(_layer_extra(layer))})
        for k, v in layer.params.items():
            out[f"layers/{i}/params/{k}"] = v
        if optimizer is not None:
            for k, st in layer.state.items():
                for s, v in st.items():
                    out[f"layers/{i}/state/{k}/{s}"] = np.asarray(v)
        for k, v in _layer_arrays(layer).items():
            out[f"layers/{i}/arrays/{k}"] = v
    for k, v in (arrays or {}).items():
        if not isinstance(k, str) or not k:
            raise TypeError(f"arrays: expected non-empty str keys, got {k!r}")
        out[f"extra/{k}"] = np.asarray(v)
    for k, v in out.items():
        if np.asarray(v).dtype.kind not in "biufU":
            raise TypeError(f"{k}: expected a numeric or string array, got dtype {np.asarray(v).dtype} "
                            f"(object arrays cannot be saved without pickle)")
    doc = {"layers": layers_meta, "optimizer": None if optimizer is None else to_jsonable(optimizer.config()),
           "meta": to_jsonable(meta or {})}
    try:
        text = json.dumps(doc)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"meta: expected JSON-able values (dict, list, str, int, float, bool, None), {exc}") from None
    out["__format__"] = np.array(FORMAT)
    out["__meta__"] = np.array(text)
    out["__digest__"] = np.array(_digest(out))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **out)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)      # atomic: a crash mid-write never leaves a half-written file under `path`
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _layer_extra(layer):
    """JSON-able non-parameter state a layer wants saved (``layer.extra_state()``, optional)."""
    return layer.extra_state() if hasattr(layer, "extra_state") else {}


def _layer_arrays(layer):
    """Non-parameter arrays a layer wants saved (``layer.extra_arrays()``, optional; e.g. gate probabilities)."""
    return layer.extra_arrays() if hasattr(layer, "extra_arrays") else {}


def _read_npz(path):
    """All entries of a minigrow .npz as a dict of arrays (digest verified); :class:`CorruptFileError` otherwise."""
    path = check_path("path", path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise CorruptFileError(f"{path}: is a directory, expected a minigrow .npz file")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head != b"PK\x03\x04":           # every .npz is a zip archive; refuse .npy, pickle, text … before parsing
        raise CorruptFileError(f"{path}: not a minigrow .npz file (it does not start like a zip archive: "
                               f"{head!r}); truncated or wrong file type")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise CorruptFileError(f"{path}: holds an object (pickled) array; refused, loading never unpickles"
                                   ) from None
        raise CorruptFileError(f"{path}: not a readable .npz file (truncated or corrupt?): {exc}") from None
    except Exception as exc:        # zipfile.BadZipFile (bad CRC-32), EOFError, zlib.error, OSError …
        raise CorruptFileError(f"{path}: not a readable .npz file (truncated or corrupt?): "
                               f"{type(exc).__name__}: {exc}") from None
    for key in ("__format__", "__meta__", "__digest__"):
        if key not in data:
            raise CorruptFileError(f"{path}: missing {key!r}; not a minigrow file")
    for key in ("__format__", "__meta__", "__digest__"):
        if data[key].dtype.kind != "U" or data[key].ndim != 0:
            raise CorruptFileError(f"{path}: {key!r} is not a string; not a minigrow file")
    if str(data["__format__"]) != FORMAT:
        raise CorruptFileError(f"{path}: format {str(data['__format__'])!r}, expected {FORMAT!r}")
    digest = str(data.pop("__digest__"))
    if _digest(data) != digest:
        raise CorruptFileError(f"{path}: content digest mismatch; the file was altered or damaged")
    return data


def load(path):
    """Read a file written by :func:`save`.

    Returns a dict with ``model``, ``optimizer`` (None unless saved), ``meta`` (dict) and ``arrays`` (dict).
    Raises ``FileNotFoundError`` for a missing file and :class:`CorruptFileError` for a truncated, altered or
    foreign one. Never unpickles, never executes code from the file.
    """
    data = _read_npz(path)
    try:
        return _rebuild(data)
    except CorruptFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CorruptFileError(f"{path}: inconsistent minigrow file ({type(exc).__name__}: {exc})") from None


def _rebuild(data):
    doc = json.loads(str(data["__meta__"]))
    layers = []
    for i, lm in enumerate(doc["layers"]):
        cls = LAYER_TYPES.get(lm["type"])
        if cls is None:
            raise CorruptFileError(f"layers[{i}] has unknown type {lm['type']!r} "
                                   f"(import the module that defines it before loading)")
        prefix = f"layers/{i}/params/"
        params = {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}
        layer = cls.from_config(lm["config"], params)
        if set(params) != set(layer.params):
            raise CorruptFileError(f"layers[{i}] ({lm['type']}): stored parameters {sorted(params)}, expected "
                                   f"{sorted(layer.params)}")
        layer.frozen = set(lm.get("frozen", []))
        sprefix = f"layers/{i}/state/"
        for k, v in data.items():
            if k.startswith(sprefix):
                pname, sname = k[len(sprefix):].rsplit("/", 1)
                val = np.array(v, copy=True)
                layer.state.setdefault(pname, {})[sname] = int(val) if val.ndim == 0 and val.dtype.kind in "iu" \
                    else val
        aprefix = f"layers/{i}/arrays/"
        arrs = {k[len(aprefix):]: np.array(v, copy=True) for k, v in data.items() if k.startswith(aprefix)}
        if hasattr(layer, "load_extra"):
            layer.load_extra(lm.get("extra", {}), arrs)
        layers.append(layer)
    optimizer = get_optimizer(doc["optimizer"]) if doc.get("optimizer") else None
    extra = {k[len("extra/"):]: np.array(v, copy=True) for k, v in data.items() if k.startswith("extra/")}
    return {"model": Sequential(layers), "optimizer": optimizer, "meta": doc.get("meta", {}), "arrays": extra}


def save_model(path, model):
    """Save just the architecture and parameters."""
    return save(path, model)


def load_model(path):
    """Load just the model (architecture and parameters)."""
    return load(path)["model"]
