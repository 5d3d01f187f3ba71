"""Input checks shared by every public entry point.

Each helper raises ``ValueError`` (or ``TypeError`` for a wrong kind of object) with a message that names the
argument, the value it got and what was expected, e.g.::

    ValueError: y: expected integer labels in [0, 10), got 11 at index 42

They return the (possibly converted) value so that a call reads ``X = check_array("X", X, ndim=2)``.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "check_array", "check_labels", "check_positive", "check_nonneg", "check_int", "check_prob",
    "check_choice", "check_rng", "check_dtype", "check_Xy", "check_bool", "check_callable", "check_path",
    "check_finite_number",
]


def _describe(x) -> str:
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"[:120]


def check_array(name, x, ndim=None, shape=None, finite=True, dtype=None, min_rows=1):
    """Return ``x`` as a float ndarray after checking its rank, shape and values.

    ``shape`` may contain ``None`` for "any size" along an axis. Integer and boolean input is converted to
    ``dtype`` (default float64); float input keeps its dtype unless ``dtype`` is given.
    """
    if isinstance(x, (str, bytes, dict)) or x is None:
        raise TypeError(f"{name}: expected a numeric array, got {_describe(x)}")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name}: could not be converted to an array ({exc})") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    if shape is not None:
        if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")
    if min_rows and arr.ndim >= 1 and arr.shape[0] < min_rows:
        raise ValueError(f"{name}: expected at least {min_rows} sample(s), got an empty array of shape {arr.shape}")
    if finite and arr.size and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name}: expected finite values, got {arr[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    return arr


def check_labels(name, y, n_classes=None, n=None):
    """Return integer class labels as an int64 array, checking range ``[0, n_classes)`` and length ``n``."""
    if isinstance(y, (str, bytes, dict)) or y is None:
        raise TypeError(f"{name}: expected integer labels, got {_describe(y)}")
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array of integer labels, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if arr.size and not (np.isfinite(arr).all() and np.all(arr == np.round(arr))):
            idx = int(np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))[0])
            raise ValueError(f"{name}: expected integer labels, got {arr[idx]} at index {idx}")
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"{name}: expected integer labels, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} labels (one per sample), got {arr.shape[0]}")
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one label, got an empty array")
    if n_classes is not None:
        bad = np.flatnonzero((arr < 0) | (arr >= n_classes))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name}: expected integer labels in [0, {n_classes}), got {arr[i]} at index {i}")
    return arr


def _check_number(name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {_describe(v)}")
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    return float(v)


def check_positive(name, v):
    """A finite real number > 0."""
    v = _check_number(name, v)
    if v <= 0:
        raise ValueError(f"{name}: expected a number > 0, got {v}")
    return v


def check_nonneg(name, v):
    """A finite real number >= 0."""
    v = _check_number(name, v)
    if v < 0:
        raise ValueError(f"{name}: expected a number >= 0, got {v}")
    return v


def check_prob(name, v, open_left=False, open_right=False):
    """A number in [0, 1] (ends optionally open)."""
    v = _check_number(name, v)
    lo_ok = v > 0 if open_left else v >= 0
    hi_ok = v < 1 if open_right else v <= 1
    if not (lo_ok and hi_ok):
        want = ("(" if open_left else "[") + "0, 1" + (")" if open_right else "]")
        raise ValueError(f"{name}: expected a number in {want}, got {v}")
    return v


def check_int(name, v, lo=None, hi=None):
    """An integer in [lo, hi] (either end optional)."""
    if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {_describe(v)}")
    v = int(v)
    if lo is not None and v < lo:
        raise ValueError(f"{name}: expected an integer >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name}: expected an integer <= {hi}, got {v}")
    return v


def check_choice(name, v, choices):
    if v not in choices:
        raise ValueError(f"{name}: expected one of {sorted(choices)}, got {v!r}")
    return v


def check_rng(name, rng):
    """Accept a ``numpy.random.Generator`` or an int seed; anything else (including None) is refused."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (numbers.Integral, np.integer)) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{name}: expected a seed >= 0, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(f"{name}: expected a numpy.random.Generator or an int seed, got {_describe(rng)}")


def check_dtype(name, dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name}: expected float32 or float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"{name}: expected float32 or float64, got {dt}")
    return dt


def check_Xy(X, y, n_features=None, n_classes=None, dtype=None, xname="X", yname="y"):
    """Check a design matrix and its labels together (2-d finite X, one label per row)."""
    X = check_array(xname, X, ndim=2, dtype=dtype)
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{xname}: expected {n_features} features per sample, got {X.shape[1]}")
    y = check_labels(yname, y, n_classes=n_classes, n=X.shape[0])
    return X, y


def check_finite_number(name, v):
    """A finite real number (any sign)."""
    return _check_number(name, v)


def check_bool(name, v):
    """``True``/``False`` (NumPy booleans too); 0/1 and strings are refused so that typos do not pass."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise TypeError(f"{name}: expected True or False, got {_describe(v)}")


def check_callable(name, v):
    if not callable(v):
        raise TypeError(f"{name}: expected a callable, got {_describe(v)}")
    return v


def check_path(name, v):
    """A ``str`` or ``os.PathLike`` (returned as a ``pathlib.Path``)."""
    import os
    from pathlib import Path
    if isinstance(v, bytes) or not isinstance(v, (str, os.PathLike)) or (isinstance(v, str) and not v):
        raise TypeError(f"{name}: expected a file path (str or pathlib.Path), got {_describe(v)}")
    return Path(v)
