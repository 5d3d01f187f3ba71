"""SensLI — sensitivity-based layer insertion (Kreis et al., arXiv 2311.15995). Tutorial: ``tutorials/01_sensli.py``.

* :mod:`.formulas`       S1–S7 as plain functions (shadow price, candidate values, closed forms, score, selection)
* :mod:`.candidates`     where the virtual layers go in a network, and inserting the chosen one
* :mod:`.sensitivities`  the one-pass sensitivity computation (closed form) and its oracle (extended network)
* :mod:`.loop`           the insertion schedule (a Trainer callback, checkpointable) and :func:`sensli_train`
* :mod:`.settings`       :class:`SensLISettings`, the defaults used by the library, the CLI and checkpoints
* :mod:`.conv`           conv nets (sensli.md §8): virtual identity convolutions, their closed form (formulas at the
                         top), spatial-FFT operator norms, rules and the training loop (import it as a submodule)
"""
from .formulas import (MODES, RESIDUAL_W1_SCALE, identity_candidate, identity_form_gradients, identity_form_signal,
                       pass_average, residual_candidate, residual_form_gradient, score, scores_from_grads, select,
                       shadow_price)
from .candidates import (FORMS, Candidate, candidate_layers, candidates, hidden_points, identity_layers,
                         insert_candidate, residual_candidate_block)
from .sensitivities import Sensitivities, closed_form_sensitivities, extended_network, extended_sensitivities
from .loop import InsertionRun, InsertionSchedule, sensli_train, train_macs_per_sample
from .settings import SensLISettings

__all__ = [
    "MODES", "RESIDUAL_W1_SCALE", "identity_candidate", "identity_form_gradients", "identity_form_signal",
    "pass_average", "residual_candidate", "residual_form_gradient", "score", "scores_from_grads", "select",
    "shadow_price", "FORMS", "Candidate", "candidate_layers", "candidates", "hidden_points", "identity_layers",
    "insert_candidate", "residual_candidate_block", "Sensitivities", "closed_form_sensitivities",
    "extended_network", "extended_sensitivities", "InsertionRun", "InsertionSchedule", "sensli_train",
    "train_macs_per_sample", "SensLISettings",
]
