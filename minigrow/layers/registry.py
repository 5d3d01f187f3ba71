"""Layer types defined outside the core, by name → the module that defines them.

:func:`minigrow.io.load` rebuilds layers by their class name from :data:`~minigrow.layers.base.LAYER_TYPES`,
which holds every type whose module has been imported (``@register_layer``). The core never imports a method
package (imports go one way: core → methods → experiments → cli), so a file that names one of the method layers
below would not find it. This explicit table says where each lives; :func:`layer_type` imports that module —
only when a file names such a type — and the module's ``@register_layer`` fills the registry.
"""
from __future__ import annotations

import importlib

from .base import LAYER_TYPES

__all__ = ["EXTERNAL_LAYER_TYPES", "layer_type", "import_all_layer_modules"]

EXTERNAL_LAYER_TYPES = {
    "DenseBlock": "minigrow.methods.bundles.autotune",
    "Gate": "minigrow.methods.pruning.gate",
}


def layer_type(name):
    """The registered layer class called ``name``, importing its module from :data:`EXTERNAL_LAYER_TYPES` if it
    is not registered yet; None for an unknown name."""
    cls = LAYER_TYPES.get(name)
    if cls is None and name in EXTERNAL_LAYER_TYPES:
        importlib.import_module(EXTERNAL_LAYER_TYPES[name])
        cls = LAYER_TYPES.get(name)
    return cls


def import_all_layer_modules():
    """Import every module of :data:`EXTERNAL_LAYER_TYPES`, so that ``LAYER_TYPES`` lists every layer type."""
    for module in sorted(set(EXTERNAL_LAYER_TYPES.values())):
        importlib.import_module(module)
