"""Exercise "flip": the flip estimator of the Bernoulli-gate gradient (pruning.md §3; our derivation).

With gates ξ_nj ∈ {0, 1} (one row per sample) and per-sample losses ℓ_n(ξ), the expected loss is multilinear in θ,
so its exact derivative is E[ℓ(ξ_j = 1) − ℓ(ξ_j = 0)]. The flip estimate from one batch of sampled gates is

    Δ_j = mean_n [ ℓ_n(ξ with ξ_nj = 1) − ℓ_n(ξ with ξ_nj = 0) ]

— unbiased: each sample's gate j is set to 1 and to 0 with everything else as sampled. (One of the two is the
sampled gate; only the flipped one needs a new evaluation: (1 − 2ξ_nj)(ℓ_n^{flip j} − ℓ_n).)
``losses(gates)`` returns the vector ℓ_n for a gate matrix of shape (N, J).
Grade it:  python -m minigrow grade flip.py
"""
import numpy as np

EXERCISE = "flip"


def flip_estimate(losses, xi):
    """Return Δ (J,) for the per-sample loss function ``losses`` and sampled gates ``xi`` (N, J)."""
    raise NotImplementedError("TODO: flip_estimate")
