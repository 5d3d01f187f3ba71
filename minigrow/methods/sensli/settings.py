"""The settings of a SensLI run — one source of defaults for the library, the CLI and checkpoints."""
from __future__ import annotations

from dataclasses import dataclass

from ...settings import Settings

__all__ = ["SensLISettings"]


@dataclass(frozen=True)
class SensLISettings(Settings):
    """Everything that defines a SensLI run besides the model, the data and the RNG (sensli.md §4–5).

    The defaults are setting A of sensli.md §6 (ReLU FNN on the two spirals, full-batch gradient descent at
    lr 0.2, one insertion after 450 of 1850 epochs): :func:`~minigrow.methods.sensli.sensli_train` and
    ``python -m minigrow insert`` both take them from here, and a checkpoint stores them (``as_dict``).

    epochs : epochs per phase ``(e_0, …, e_K)``, one insertion between phases
    mode, position, tau : selection (S7): 'abs_max' | 'abs_min' | 'fixed' (position) | 'threshold' (tau)
    optimizer, lr, weight_decay : the optimiser of each phase when no optimiser object is given ('sgd' without
        momentum, or 'adam')
    batch_size : None = full batch
    step_size, gamma : a StepLR(step_size, gamma) per phase (``gamma`` is the StepLR factor); None = no decay
    decrease : learning-rate factor after an insertion
    form : 'auto' | 'identity' | 'residual' (S3); normalise : score per entry (S6)
    fresh_optimizer : forget the optimiser state at every phase start; test_every : test evaluation every k epochs
        of a phase (0: only at its end)
    """

    epochs: tuple = (450, 1400)
    mode: str = "abs_max"
    position: int | None = None
    tau: float | None = None
    optimizer: str = "sgd"
    lr: float = 0.2
    weight_decay: float = 0.0
    batch_size: int | None = None
    step_size: int | None = None
    gamma: float = 0.5
    decrease: float = 1.0
    form: str = "auto"
    normalise: bool = False
    fresh_optimizer: bool = True
    test_every: int = 0

