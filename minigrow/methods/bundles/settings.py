"""The settings of the bundle measurements and of auto-tune — one source of defaults for the library, the CLI and
the experiments."""
from __future__ import annotations

from dataclasses import dataclass

from ...settings import Settings

__all__ = ["BundleSettings", "AutotuneSettings"]


@dataclass(frozen=True)
class BundleSettings(Settings):
    """How bundles are measured (bundles.md §1): the rounding grid (B1) uses the *training* η and B.

    lr, batch_size : η and B of the grid (and of training, in auto-tune and the reproductions)
    n_eval : bundles on the first ``n_eval`` training samples
    grid : True = the float32 grid of (B1); False = exact equality of the activations
    """

    lr: float = 1e-3
    batch_size: int = 64
    n_eval: int = 512
    grid: bool = True


@dataclass(frozen=True)
class AutotuneSettings(Settings):
    """Auto-tune by conflicting-layer removal (bundles.md §4).

    rule : 'first_type' (check after each of the first ``check_epochs`` epochs) or 'all_types' (check before each
        of them, from initialisation on)
    epochs : epochs of a complete run; max_rounds : bound on the number of (re)starts
    n_eval : bundles measured on the first ``n_eval`` training samples
    lr, batch_size : Adam η and B — also the η, B of the bundle grid (B1)
    """

    rule: str = "first_type"
    epochs: int = 10
    check_epochs: int = 10
    max_rounds: int = 8
    n_eval: int = BundleSettings.n_eval
    lr: float = BundleSettings.lr
    batch_size: int = BundleSettings.batch_size
