"""Save and load models as plain ``.npz`` files — never pickle — with an exact round trip.

File layout (all entries are plain arrays; strings are stored as NumPy unicode arrays):

==============================  ====================================================================
``__format__``                  ``"minigrow-1"``
``__meta__``                    JSON: layer types and configs, frozen names, optimiser config, user meta
``layers/{i}/params/{name}``    parameter arrays (dtype kept)
``layers/{i}/buffers/{name}``   buffers (running statistics …)
``layers/{i}/state/{name}/{k}`` optimiser state (Adam m, v, t …), only with ``optimizer=…``
``layers/{i}/children/{c}/…``   the same entries for sub-layer ``c`` of a composite layer (recursively)
``extra/{key}``                 any further arrays (method state such as θ)
``__digest__``                  SHA-256 over every other entry's name, dtype, shape and bytes
==============================  ====================================================================

Because the architecture is stored layer by layer (sub-layers of composite layers and nested Sequentials
recursively), grown (inserted layers) and pruned (narrower) networks
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

import numpy as np

from .layers import LAYER_TYPES, Sequential
from .layers.registry import layer_type
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
    model.check_unique_layers()
    out: dict[str, np.ndarray] = {}
    layers_meta = [_save_layer(layer, f"layers/{i}", f"layers[{i}]", out, optimizer is not None)
                   for i, layer in enumerate(model.layers)]
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


def _save_layer(layer, prefix, where, out, with_state):
    """Meta of one layer (and, recursively, of its sub-layers); its arrays go into ``out`` under ``prefix``."""
    name = type(layer).__name__
    if LAYER_TYPES.get(name) is not type(layer):
        raise TypeError(f"{where}: {name} is not a registered layer type (use @register_layer)")
    meta = {"type": name, "config": to_jsonable(layer.config()), "frozen": sorted(layer.frozen),
            "extra": to_jsonable(_layer_extra(layer))}
    for k, v in layer.params.items():
        out[f"{prefix}/params/{k}"] = v
    for k, v in layer.buffers.items():
        out[f"{prefix}/buffers/{k}"] = v
    if with_state:
        for k, st in layer.state.items():
            for s, v in st.items():
                out[f"{prefix}/state/{k}/{s}"] = np.asarray(v)
    for k, v in _layer_arrays(layer).items():
        out[f"{prefix}/arrays/{k}"] = v
    kids = layer.children()
    if kids:
        meta["children"] = [dict(name=cname, **_save_layer(child, f"{prefix}/children/{cname}",
                                                           f"{where}.{cname}", out, with_state))
                            for cname, child in kids]
    return meta


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
    except CorruptFileError as exc:
        if str(path) in str(exc):
            raise
        raise CorruptFileError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CorruptFileError(f"{path}: inconsistent minigrow file ({type(exc).__name__}: {exc})") from None


def _entries(data, prefix, kind):
    """``{name: array}`` of one layer's entries of one kind (params, buffers, arrays) — not its sub-layers'."""
    head = f"{prefix}/{kind}/"
    return {k[len(head):]: v for k, v in data.items() if k.startswith(head) and "/" not in k[len(head):]}


def _build_layer(meta, data, prefix, where):
    """Rebuild one layer (and its sub-layers) from its meta and arrays."""
    cls = layer_type(meta["type"])           # method layer types: imported from the registry's name table
    if cls is None:
        raise CorruptFileError(f"{where} has unknown type {meta['type']!r} "
                               f"(import the module that defines it before loading)")
    kids_meta = meta.get("children", [])
    if cls is Sequential:                # a container: its children are the saved ones
        layer = Sequential([_build_layer(cm, data, f"{prefix}/children/{cm['name']}", f"{where}.{cm['name']}")
                            for cm in kids_meta])
        _restore_state(layer, meta, data, prefix, where)
        return layer
    params, buffers = _entries(data, prefix, "params"), _entries(data, prefix, "buffers")
    layer = cls.from_config(meta["config"], params, buffers)
    if set(params) != set(layer.params) or set(buffers) != set(layer.buffers):
        raise CorruptFileError(f"{where} ({meta['type']}): stored parameters {sorted(params)} and buffers "
                               f"{sorted(buffers)}, expected {sorted(layer.params)} and {sorted(layer.buffers)}")
    _restore_children(layer, kids_meta, data, prefix, where)
    _restore_state(layer, meta, data, prefix, where)
    return layer


def _restore_children(layer, kids_meta, data, prefix, where):
    """Fill the sub-layers a composite layer built from its config with their saved arrays."""
    kids = dict(layer.children())
    by_name = {cm["name"]: cm for cm in kids_meta}
    if set(kids) != set(by_name):
        raise CorruptFileError(f"{where} ({type(layer).__name__}): stored sub-layers {sorted(by_name)}, expected "
                               f"{sorted(kids)}")
    for cname, child in kids.items():
        cm, cprefix, cwhere = by_name[cname], f"{prefix}/children/{cname}", f"{where}.{cname}"
        if cm["type"] != type(child).__name__:
            raise CorruptFileError(f"{cwhere}: stored type {cm['type']!r}, expected {type(child).__name__!r}")
        for kind, own in (("params", child.params), ("buffers", child.buffers)):
            stored = _entries(data, cprefix, kind)
            if set(stored) != set(own):
                raise CorruptFileError(f"{cwhere}: stored {kind} {sorted(stored)}, expected {sorted(own)}")
            for k, v in stored.items():
                if v.shape != own[k].shape:
                    raise CorruptFileError(f"{cwhere}.{k}: stored shape {v.shape}, expected {own[k].shape}")
                own[k] = np.array(v, copy=True)
        child._init_grads()
        _restore_children(child, cm.get("children", []), data, cprefix, cwhere)
        _restore_state(child, cm, data, cprefix, cwhere)


def _restore_state(layer, meta, data, prefix, where):
    """Frozen names, optimiser state and ``load_extra`` data of one layer."""
    layer.frozen = set(meta.get("frozen", []))
    head = f"{prefix}/state/"
    for k, v in data.items():
        if k.startswith(head):
            if "/" not in k[len(head):]:
                raise CorruptFileError(f"{where}: malformed optimiser-state entry {k!r}")
            pname, sname = k[len(head):].rsplit("/", 1)
            if pname not in layer.params:
                raise CorruptFileError(f"{where}: optimiser state for unknown parameter {pname!r}")
            val = np.array(v, copy=True)
            layer.state.setdefault(pname, {})[sname] = int(val) if val.ndim == 0 and val.dtype.kind in "iu" \
                else val
    arrs = _entries(data, prefix, "arrays")
    if hasattr(layer, "load_extra"):
        layer.load_extra(meta.get("extra", {}), arrs)


def _rebuild(data):
    doc = json.loads(str(data["__meta__"]))
    layers = [_build_layer(lm, data, f"layers/{i}", f"layers[{i}]") for i, lm in enumerate(doc["layers"])]
    optimizer = get_optimizer(doc["optimizer"]) if doc.get("optimizer") else None
    extra = {k[len("extra/"):]: np.array(v, copy=True) for k, v in data.items() if k.startswith("extra/")}
    return {"model": Sequential(layers), "optimizer": optimizer, "meta": doc.get("meta", {}), "arrays": extra}


def save_model(path, model):
    """Save just the architecture and parameters."""
    return save(path, model)


def load_model(path):
    """Load just the model (architecture and parameters)."""
    return load(path)["model"]
