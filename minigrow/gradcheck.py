"""Gradient checking, for tests and for coursework.

Compare an analytic gradient ``a`` (from a backward pass) with a numerical one ``n`` (from finite differences)
by the relative error

.. math::  \\mathrm{err}(a, n) = \\frac{\\max_i |a_i − n_i|}{\\max(10^{-8},\\; \\max_i(|a_i| + |n_i|))}

(CS231n's rule of thumb, in float64: > 1e-2 wrong; 1e-4…1e-2 suspicious; < 1e-4 fine only near kinks;
≲ 1e-7 good). Finite differences, step h:

* centred   ∂f/∂x_i ≈ (f(x + h e_i) − f(x − h e_i)) / 2h      error O(h²) for smooth f
* forward   ∂f/∂x_i ≈ (f(x + h e_i) − f(x)) / h                error O(h)
* backward  ∂f/∂x_i ≈ (f(x) − f(x − h e_i)) / h                error O(h); the one-sided derivative from the left,
  which is the one that matches ReLU'(0) = 0 at a kink approached from above (sensli.md §7).

For a whole network use :func:`check_directional`: it compares ⟨u, J v⟩ from two forward passes with ⟨Jᵀu, v⟩
from one backward pass, whatever the number of parameters.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .losses import get_loss
from .validate import check_array, check_choice, check_nonneg, check_positive, check_rng

__all__ = [
    "rel_error", "numerical_gradient", "GradCheckReport", "check_layer", "check_network", "check_directional",
    "check_function",
]


def rel_error(a, n):
    """max|a − n| / max(1e-8, max(|a| + |n|))."""
    a = np.asarray(a, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} vs {n.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - n)) / max(1e-8, float(np.max(np.abs(a) + np.abs(n)))))


def numerical_gradient(f, x, h=1e-5, method="central", indices=None):
    """Finite-difference gradient of the scalar function ``f()`` with respect to the array ``x`` (perturbed in
    place and restored).

    ``indices``: an iterable of index tuples to evaluate (the rest is left 0); default every entry.
    Returns an array shaped like ``x``.
    """
    check_choice("method", method, {"central", "forward", "backward"})
    h = check_positive("h", h)
    grad = np.zeros(x.shape, dtype=np.float64)
    f0 = float(f()) if method != "central" else None
    it = np.ndindex(x.shape) if indices is None else indices
    for ix in it:
        old = x[ix]
        if method == "central":
            x[ix] = old + h
            fp = float(f())
            x[ix] = old - h
            fm = float(f())
            grad[ix] = (fp - fm) / (2 * h)
        elif method == "forward":
            x[ix] = old + h
            grad[ix] = (float(f()) - f0) / h
        else:
            x[ix] = old - h
            grad[ix] = (f0 - float(f())) / h
        x[ix] = old
    return grad


@dataclass
class GradCheckReport:
    """Result of a check: one entry per checked array (name → relative error, worst index, values)."""

    entries: list = field(default_factory=list)
    tol: float = 1e-7

    def add(self, name, analytic, numeric, mask=None):
        a = np.asarray(analytic, dtype=np.float64)
        n = np.asarray(numeric, dtype=np.float64)
        if mask is not None:
            a, n = np.where(mask, a, 0.0), np.where(mask, n, 0.0)
        diff = np.abs(a - n)
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)) if diff.size else ()
        self.entries.append({
            "name": name, "error": rel_error(a, n), "worst_index": worst,
            "scale": float(np.max(np.abs(a) + np.abs(n))) if diff.size else 0.0,   # the denominator of the error
            "analytic": float(a[worst]) if diff.size else 0.0, "numeric": float(n[worst]) if diff.size else 0.0,
        })

    @property
    def max_error(self):
        return max((e["error"] for e in self.entries), default=0.0)

    @property
    def worst(self):
        return max(self.entries, key=lambda e: e["error"]) if self.entries else None

    @property
    def ok(self):
        return self.max_error <= self.tol

    def __str__(self):
        lines = [f"{'array':<24} {'rel. error':>11}  {'worst index':<16} {'analytic':>13} {'numeric':>13}"]
        for e in self.entries:
            flag = "" if e["error"] <= self.tol else "  <-- above tol"
            lines.append(f"{e['name']:<24} {e['error']:>11.2e}  {str(e['worst_index']):<16} "
                         f"{e['analytic']:>13.6g} {e['numeric']:>13.6g}{flag}")
        lines.append(f"max error {self.max_error:.2e} (tol {self.tol:.0e}): {'OK' if self.ok else 'FAILED'}")
        return "\n".join(lines)

    __repr__ = __str__


def _sample_indices(shape, n_entries, rng):
    size = int(np.prod(shape))
    if n_entries is None or n_entries >= size:
        return None
    flat = rng.choice(size, size=n_entries, replace=False)
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in flat]


def check_layer(layer, x, rng=0, h=1e-5, method="central", tol=1e-7, check_input=True, n_entries=None,
                train=True):
    """Check every parameter gradient of ``layer`` (and the input gradient) at input ``x``.

    Uses the scalar f(x, θ) = Σ out ⊙ u with a fixed random upstream gradient u, so ∂f/∂out = u. Use float64.
    ``n_entries`` checks that many random entries per array instead of all.
    """
    rng = check_rng("rng", rng)
    h = check_positive("h", h)
    tol = check_nonneg("tol", tol)
    x = np.array(check_array("x", x, dtype=np.float64 if layer.dtype is None else layer.dtype), copy=True)
    u = rng.standard_normal(layer.forward(x, train).shape).astype(x.dtype)

    def f():
        return float(np.sum(layer.forward(x, train) * u))

    layer.forward(x, train)
    dx = layer.backward(u.copy())
    analytic = {k: np.array(v, copy=True) for k, v in layer.grads.items()}
    report = GradCheckReport(tol=tol)
    for name, p in layer.params.items():
        idx = _sample_indices(p.shape, n_entries, rng)
        num = numerical_gradient(f, p, h, method, idx)
        report.add(name, analytic[name], num, None if idx is None else _mask(p.shape, idx))
    if check_input:
        idx = _sample_indices(x.shape, n_entries, rng)
        num = numerical_gradient(f, x, h, method, idx)
        report.add("input", dx, num, None if idx is None else _mask(x.shape, idx))
    return report


def _mask(shape, idx):
    m = np.zeros(shape, dtype=bool)
    for ix in idx:
        m[ix] = True
    return m


def check_network(model, loss, X, y, h=1e-5, method="central", tol=1e-7, n_entries=None, rng=0):
    """Check ∂L/∂θ of a whole network for every parameter array (all entries, or ``n_entries`` random ones per
    array for big nets) against finite differences of the mean loss. Use float64."""
    rng = check_rng("rng", rng)
    loss = get_loss(loss)

    def f():
        return loss.forward(model.forward(X, train=True), y)

    f()
    model.backward(loss.backward())
    analytic = {(i, k): np.array(layer.grads[k], copy=True) for i, layer in enumerate(model.layers)
                for k in layer.params}
    report = GradCheckReport(tol=tol)
    for i, layer in enumerate(model.layers):
        for k, p in layer.params.items():
            idx = _sample_indices(p.shape, n_entries, rng)
            num = numerical_gradient(f, p, h, method, idx)
            report.add(f"layers[{i}].{k}", analytic[(i, k)], num, None if idx is None else _mask(p.shape, idx))
    return report


def check_directional(model, loss, X, y, rng=0, h=1e-5, tol=1e-7):
    """Directional check of the whole parameter gradient: for a random unit direction v over all parameters,
    compare the centred difference (L(θ + hv) − L(θ − hv)) / 2h with ⟨∇_θ L, v⟩ from backprop.

    Two forward passes whatever the size of the network (autograd's test_util idea). Returns a report with one
    entry, "directional".
    """
    rng = check_rng("rng", rng)
    loss = get_loss(loss)
    loss.forward(model.forward(X, train=True), y)
    model.backward(loss.backward())
    params = [(layer, k) for layer, k in model.parameters()]
    v = [rng.standard_normal(layer.params[k].shape) for layer, k in params]
    norm = np.sqrt(sum(float(np.sum(d * d)) for d in v))
    v = [d / norm for d in v]
    analytic = sum(float(np.sum(layer.grads[k] * d)) for (layer, k), d in zip(params, v))

    def shifted(t):
        for (layer, k), d in zip(params, v):
            layer.params[k] += t * d
        val = loss.forward(model.forward(X, train=True), y)
        for (layer, k), d in zip(params, v):
            layer.params[k] -= t * d
        return val

    numeric = (shifted(h) - shifted(-h)) / (2 * h)
    report = GradCheckReport(tol=tol)
    report.add("directional", np.array([analytic]), np.array([numeric]))
    return report


def check_function(f, grad, x, u=None, rng=0, h=1e-5, tol=1e-7):
    """Vector–Jacobian check for a plain function: ``f(x) -> y`` and ``grad(x, u) -> Jᵀu``.

    Compares ⟨u, J v⟩ (centred differences along a random v) with ⟨Jᵀu, v⟩; use it to check your own formulas.
    """
    rng = check_rng("rng", rng)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(f(x))
    u = rng.standard_normal(y.shape) if u is None else np.asarray(u, dtype=np.float64)
    v = rng.standard_normal(x.shape)
    jtu = np.asarray(grad(x, u))
    lhs = float(np.sum(u * (np.asarray(f(x + h * v)) - np.asarray(f(x - h * v))) / (2 * h)))
    rhs = float(np.sum(jtu * v))
    report = GradCheckReport(tol=tol)
    report.add("vjp", np.array([rhs]), np.array([lhs]))
    return report
