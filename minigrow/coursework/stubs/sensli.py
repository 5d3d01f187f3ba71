"""Exercise "sensli": the SensLI closed form (Kreis et al. 2023; sensli.md §2, S4 — our derivation from the
authors' code, as tutorial 01 explains).

A virtual layer z' = V a + c inserted after a ReLU layer with output a, at V = I and c = 0, leaves the network
unchanged (ReLU(a) = a for a ≥ 0). Its gradients there are, with δ = ∂L/∂z' of the batch (one row per sample;
δ already carries the 1/N of the mean loss):

    ∂L/∂V = Σ_n δ_n a_nᵀ  = δᵀ A          ∂L/∂c = Σ_n δ_n

— the ordinary weight gradient of a dense layer, computed without building the extended network. (The
sensitivity that SensLI compares across positions is ‖∂L/∂V‖_F², summed over batches first.)
Grade it:  python -m minigrow grade sensli.py
"""
import numpy as np

EXERCISE = "sensli"


def virtual_layer_gradients(delta, a):
    """Return (∂L/∂V, ∂L/∂c) for δ (N, w) and a (N, w)."""
    raise NotImplementedError("TODO: virtual_layer_gradients")
