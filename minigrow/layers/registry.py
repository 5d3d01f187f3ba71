"""Where each layer type is defined: the table :func:`minigrow.io.load` uses to rebuild a saved network.

Core layer types register themselves when :mod:`minigrow.layers` is imported. Types defined by the methods are
listed here by name with the module that defines them; :func:`layer_type` imports that module only when a file
names such a type. So ``import minigrow.layers`` (or ``minigrow.io``) loads no method module.
"""
from __future__ import annotations

import importlib

from .base import LAYER_TYPES

__all__ = ["METHOD_LAYERS", "layer_type", "import_all_layer_modules"]

METHOD_LAYERS = {
    "GatedDense": "minigrow.pruning",
    "InputGate": "minigrow.pruning",
    "DenseBlock": "minigrow.autotune",
}


def layer_type(name):
    """The class registered under ``name`` (importing its module from :data:`METHOD_LAYERS` if needed), or None."""
    if name not in LAYER_TYPES and name in METHOD_LAYERS:
        importlib.import_module(METHOD_LAYERS[name])
    return LAYER_TYPES.get(name)


def import_all_layer_modules():
    """Import every module of :data:`METHOD_LAYERS` (so that ``LAYER_TYPES`` lists every layer type)."""
    for module in sorted(set(METHOD_LAYERS.values())):
        importlib.import_module(module)
