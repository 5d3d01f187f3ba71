"""Where layer types defined outside :mod:`minigrow.layers` live: {class name: module}. :func:`minigrow.io.load`
imports the module named here when a file holds a type not registered yet, so loading a gated or block network
needs no import by hand and the core imports no method module up front."""
from __future__ import annotations

import importlib

from .base import LAYER_TYPES

__all__ = ["LAYER_MODULES", "layer_type"]

LAYER_MODULES = {
    "Gate": "minigrow.methods.pruning.gate",
    "DenseBlock": "minigrow.autotune",
}


def layer_type(name):
    """The registered class of layer type ``name``, importing its defining module if needed (None if unknown)."""
    if name not in LAYER_TYPES and name in LAYER_MODULES:
        importlib.import_module(LAYER_MODULES[name])
    return LAYER_TYPES.get(name)
