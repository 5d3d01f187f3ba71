"""Graders of the three methods' exercises: the SensLI closed form, bundle entropy on the float32 grid, and the
flip estimator. Each compares the student's function with minigrow's own formula (minigrow.methods.*.formulas)
on hidden random inputs and says what differs."""
from __future__ import annotations

import warnings

import numpy as np

from ..methods.bundles.formulas import bundles
from ..methods.sensli.formulas import identity_form_gradients

__all__ = ["grade_sensli", "grade_bundles", "grade_flip"]

_SEED = 314159


def _call(Check, fn, *args):
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args), None
    except NotImplementedError as exc:
        return None, Check("runs", False, f"not implemented yet ({' '.join(str(exc).split()) or 'TODO'})")
    except Exception as exc:                                          # noqa: BLE001 — the student's code
        return None, Check("runs", False, f"{type(exc).__name__}: {' '.join(str(exc).split())}")


def grade_sensli(fn, Check):
    """``virtual_layer_gradients(delta, a) -> (dV, dc)`` at V = I, c = 0 (sensli.md §2, S4)."""
    rng = np.random.default_rng(_SEED)
    checks = []
    for trial, (n, w) in enumerate([(5, 3), (8, 6), (1, 4)]):
        delta, a = rng.standard_normal((n, w)) / n, np.maximum(rng.standard_normal((n, w)), 0)
        got, bad = _call(Check, fn, delta.copy(), a.copy())
        if bad:
            return checks + [bad]
        dV, dc = (np.asarray(g, dtype=np.float64) for g in got)
        wV, wc = identity_form_gradients(delta, a)
        if dV.shape != wV.shape:
            hint = " (transposed: ∂L/∂V = δᵀa, one row per output unit)" if dV.shape == wV.shape[::-1] else ""
            return checks + [Check(f"∂L/∂V shape (trial {trial})", False, f"got {dV.shape}, expected {wV.shape}{hint}")]
        ok = np.allclose(dV, wV, rtol=1e-12, atol=1e-15)
        hint = ""
        if not ok and np.allclose(dV, wV.T, rtol=1e-12, atol=1e-15):
            hint = " — transposed (aᵀδ instead of δᵀa)"
        elif not ok and n > 1 and np.allclose(dV, wV / n, rtol=1e-12, atol=1e-15):
            hint = " — divided by N once more (δ already carries the 1/N of the mean loss)"
        checks.append(Check(f"∂L/∂V = Σ_n δ_n a_nᵀ (trial {trial})", ok, f"max difference "
                                                                           f"{np.abs(dV - wV).max():.2e}{hint}"))
        checks.append(Check(f"∂L/∂c = Σ_n δ_n (trial {trial})", dc.shape == wc.shape and np.allclose(dc, wc, rtol=1e-12),
                            f"got shape {dc.shape}, expected {wc.shape}" if dc.shape != wc.shape else
                            f"max difference {np.abs(dc - wc).max():.2e}"))
    return checks


def grade_bundles(fn, Check):
    """``bundle_entropy(a, y, w_max, lr, batch_size) -> (n_bundles, H)`` on the float32 grid (bundles.md §1)."""
    rng = np.random.default_rng(_SEED)
    checks = []
    for trial in range(3):
        n, d = 40, 5
        base = rng.standard_normal((8, d)).astype(np.float32)
        a = base[rng.integers(0, 8, n)] + rng.uniform(-1, 1, (n, d)).astype(np.float32) * [1e-9, 1e-3, 0, 0, 0][trial]
        y = rng.integers(0, 3, n)
        w_max, lr, bs = np.float32(1.5 + trial), 1e-3, 64
        got, bad = _call(Check, fn, a.copy(), y.copy(), w_max, lr, bs)
        if bad:
            return checks + [bad]
        nb, H = int(got[0]), float(got[1])
        ref = bundles(a, y, w_max, lr, bs)
        exact = bundles(a, y, grid=False)
        hint = ""
        if nb != ref.n_bundles and nb == exact.n_bundles:
            hint = " — you grouped the raw activations; quantise them on the float32 grid first (B1)"
        checks.append(Check(f"|B| (trial {trial})", nb == ref.n_bundles, f"got {nb}, expected {ref.n_bundles}{hint}"))
        hint = ""
        if abs(H - ref.entropy / np.log(2)) < 1e-9 and ref.entropy:
            hint = " — log base 2; the definition uses the natural log"
        checks.append(Check(f"H(B) (trial {trial})", abs(H - ref.entropy) <= 1e-12, f"got {H:.6g}, expected "
                                                                                     f"{ref.entropy:.6g}{hint}"))
    return checks


def grade_flip(fn, Check):
    """``flip_estimate(losses, xi) -> Δ`` with Δ_j = mean_n [ℓ_n(ξ_nj = 1) − ℓ_n(ξ_nj = 0)] (pruning.md §3)."""
    rng = np.random.default_rng(_SEED)
    checks = []
    for trial in range(3):
        n, j = 6, 4
        W = rng.standard_normal((j, 3))
        h = rng.standard_normal((n, j))
        t = rng.standard_normal((n, 3))

        def losses(gates, h=h, W=W, t=t):
            gates = np.asarray(gates, dtype=np.float64)
            return 0.5 * np.sum(((h * gates) @ W - t) ** 2, axis=1)      # ℓ_n of a gated linear layer

        xi = (rng.random((n, j)) < 0.6).astype(np.float64)
        got, bad = _call(Check, fn, losses, xi.copy())
        if bad:
            return checks + [bad]
        got = np.asarray(got, dtype=np.float64)
        want = np.zeros(j)
        for k in range(j):                                               # the definition, unit by unit
            on, off = xi.copy(), xi.copy()
            on[:, k], off[:, k] = 1.0, 0.0
            want[k] = np.mean(losses(on) - losses(off))
        if got.shape != want.shape:
            return checks + [Check(f"Δ shape (trial {trial})", False, f"got {got.shape}, expected {want.shape}")]
        hint = ""
        if np.allclose(got, -want):
            hint = " — a sign slip: Δ_j = ℓ(ξ_j = 1) − ℓ(ξ_j = 0)"
        else:
            cur = losses(xi)
            flipped = np.stack([losses(np.where(np.arange(j) == k, 1 - xi, xi)) for k in range(j)], axis=1)
            if np.allclose(got, np.mean(flipped - cur[:, None], axis=0)):
                hint = " — you took ℓ(flipped) − ℓ(current); the sign must follow ξ: (1 − 2ξ)(ℓ^flip − ℓ)"
        checks.append(Check(f"Δ = flip estimate (trial {trial})", np.allclose(got, want, rtol=1e-12, atol=1e-12),
                            f"max difference {np.abs(got - want).max():.2e}{hint}"))
    return checks
