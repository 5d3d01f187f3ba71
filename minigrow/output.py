"""Writing results: the one JSON helper of the experiments and the command line."""
from __future__ import annotations

import json
from pathlib import Path

from .io import to_jsonable

__all__ = ["write_json"]


def write_json(path, obj):
    """Write ``obj`` (NumPy scalars and arrays allowed, :func:`minigrow.io.to_jsonable`) as indented JSON to
    ``path``, creating its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(obj), indent=1))
    return path
