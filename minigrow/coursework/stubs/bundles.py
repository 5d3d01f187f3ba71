"""Exercise "bundles": conflicting bundles on the float32 grid (Peer et al. 2021; bundles.md §1, B1–B2).

(B1) Round every activation a_i of a sample (flattened) onto the training grid, in float32, op by op:
        q_i = fl( W_max − fl( fl(a_i·η) · (1/B) ) )
     (η the learning rate, B the batch size, W_max the largest |weight| of the model). Samples whose rows q are
     equal (all entries) form one bundle.
(B2) The entropy of the labels within the bundles, weighted by bundle size (natural log):
        H(B) = Σ_b (|b|/N) · H(labels in b),   H(labels in b) = − Σ_c p_bc ln p_bc,   p_bc = n_bc/|b|
     — zero when every bundle holds one label (no conflicting bundle).
Return the number of bundles and H(B).
Grade it:  python -m minigrow grade bundles.py
"""
import numpy as np

EXERCISE = "bundles"


def bundle_entropy(a, y, w_max, lr=1e-3, batch_size=64):
    """Return (n_bundles, H) for activations a (N, D) and labels y (N,)."""
    raise NotImplementedError("TODO: bundle_entropy")
