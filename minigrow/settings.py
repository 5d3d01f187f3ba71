"""The base of the methods' settings dataclasses (``SensLISettings``, ``BundleSettings``, ``AutotuneSettings``,
``PruningSettings``): one source of defaults for the library, the command line and the checkpoints."""
from __future__ import annotations

import dataclasses

__all__ = ["Settings"]


class Settings:
    """Mixin for a frozen dataclass of settings: :meth:`fields`, :meth:`replace` (unknown names are a TypeError
    naming them) and :meth:`as_dict` (tuples as lists, so the dict is JSON as it is)."""

    #: extra words for the TypeError of an unknown name, e.g. a renamed setting
    _rename_hints: dict = {}

    @classmethod
    def fields(cls):
        return [f.name for f in dataclasses.fields(cls)]

    def replace(self, **changes):
        """A copy with ``changes``; an unknown name is a TypeError naming it."""
        unknown = sorted(set(changes) - set(self.fields()))
        if unknown:
            hint = "".join(f" ({self._rename_hints[u]})" for u in unknown if u in self._rename_hints)
            raise TypeError(f"{type(self).__name__}: unknown setting(s) {unknown}{hint}; expected one of "
                            f"{self.fields()}")
        return dataclasses.replace(self, **changes)

    def as_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
