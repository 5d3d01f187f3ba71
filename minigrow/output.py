"""Writing results: the one JSON helper of the experiments and the command line.

Every file is written atomically (a temporary file in the same folder, fsync, rename), as strict JSON (NaN and inf
become null: no bare NaN that other JSON readers reject), and only over a regular file or nothing — a symbolic
link, a device, a FIFO or a folder in its place is refused, never replaced.
"""
from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

from .io import to_jsonable

__all__ = ["write_json", "write_text_atomic", "strict_json", "check_output_target", "file_kind"]


def write_json(path, obj):
    """Write ``obj`` (NumPy scalars and arrays allowed, :func:`minigrow.io.to_jsonable`) as indented strict JSON to
    ``path``, atomically, creating its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, strict_json(obj))


def file_kind(st):
    m = st.st_mode
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file")):
        if test(m):
            return name
    return "not a regular file"


def check_output_target(path):
    """An output file: absent or a regular file; never replace a link, a device, a FIFO or a folder."""
    path = Path(path)
    if path.is_symlink():
        raise ValueError(f"--out: {path} is a symbolic link; refusing to replace it with the run's file (remove the "
                         f"link or choose another --out)")
    try:
        st = path.stat()
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"--out: {path} is {file_kind(st)}, expected a regular file or nothing there (remove it or "
                         f"choose another --out)")
    return path


def _strict(x):
    """JSON-able with non-finite floats as null (strict JSON: no bare NaN/Infinity)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_strict(v) for v in x]
    return x


def strict_json(obj):
    """``obj`` as indented JSON text with NaN/inf as null."""
    return json.dumps(_strict(to_jsonable(obj)), indent=1, allow_nan=False)


def write_text_atomic(path, text):
    path = Path(path)
    check_output_target(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
