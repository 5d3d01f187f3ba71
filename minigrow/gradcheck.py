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

import copy
import re
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
    """Result of a check: one entry per checked array (name → relative error, worst index, values), plus
    ``diagnoses``: one-line explanations of mistakes found before or while comparing (an accumulating backward,
    a mutated input, a random forward pass, a wrong gradient shape …). A *fatal* diagnosis fails the check
    whatever the errors; a warning (``fatal=False``) does not."""

    entries: list = field(default_factory=list)
    tol: float = 1e-7
    diagnoses: list = field(default_factory=list)

    def add(self, name, analytic, numeric, mask=None):
        a = np.asarray(analytic, dtype=np.float64)
        n = np.asarray(numeric, dtype=np.float64)
        if mask is not None:
            a, n = np.where(mask, a, 0.0), np.where(mask, n, 0.0)
        diff = np.abs(a - n)
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)) if diff.size else ()
        entry = {
            "name": name, "error": rel_error(a, n), "worst_index": worst,
            "scale": float(np.max(np.abs(a) + np.abs(n))) if diff.size else 0.0,   # the denominator of the error
            "analytic": float(a[worst]) if diff.size else 0.0, "numeric": float(n[worst]) if diff.size else 0.0,
        }
        entry["hint"] = _hint(a, n) if entry["error"] > self.tol else ""
        self.entries.append(entry)

    def diagnose(self, message, fatal=True):
        """Record a one-line diagnosis (fatal ones fail the check)."""
        self.diagnoses.append({"message": message, "fatal": bool(fatal)})

    @property
    def max_error(self):
        return max((e["error"] for e in self.entries), default=0.0)

    @property
    def worst(self):
        return max(self.entries, key=lambda e: e["error"]) if self.entries else None

    @property
    def ok(self):
        return self.max_error <= self.tol and not any(d["fatal"] for d in self.diagnoses)

    def __str__(self):
        lines = [("error: " if d["fatal"] else "warning: ") + d["message"] for d in self.diagnoses]
        lines.append(f"{'array':<24} {'rel. error':>11}  {'worst index':<16} {'analytic':>13} {'numeric':>13}")
        for e in self.entries:
            flag = "" if e["error"] <= self.tol else "  <-- above tol"
            lines.append(f"{e['name']:<24} {e['error']:>11.2e}  {str(e['worst_index']):<16} "
                         f"{e['analytic']:>13.6g} {e['numeric']:>13.6g}{flag}")
            if e.get("hint"):
                lines.append(f"{'':<24} hint: {e['hint']}")
        lines.append(f"max error {self.max_error:.2e} (tol {self.tol:.0e}): {'OK' if self.ok else 'FAILED'}")
        return "\n".join(lines)

    __repr__ = __str__


def _hint(a, n):
    """What a wrong gradient array looks like next to the numerical one (the first thing to look at)."""
    if not np.any(n) and not np.any(a):
        return ""
    if not np.any(a):
        return "the analytic gradient is all zero: does backward write this array at all?"
    if np.allclose(a, -n, rtol=1e-5, atol=1e-9):
        return "analytic = −numeric: a sign slip"
    if a.ndim == 2 and a.shape[0] == a.shape[1] and np.allclose(a.T, n, rtol=1e-5, atol=1e-9):
        return "analytic = numericᵀ: transposed (δᵀA vs Aᵀδ?)"
    nz = np.abs(n) > 1e-6 * np.max(np.abs(n))
    if np.any(nz):
        ratio = a[nz] / n[nz]
        c = float(np.median(ratio))
        if np.allclose(ratio, c, rtol=1e-4) and abs(c - 1) > 1e-4:
            return (f"analytic = {c:.4g} × numeric everywhere: a constant factor (a mean vs a sum, a missing 1/N "
                    f"or 2?)")
    bad = np.abs(a - n) > 1e-5 * np.max(np.abs(a) + np.abs(n))
    if a.ndim >= 2 and bad.any():
        for axis in range(a.ndim):
            other = tuple(i for i in range(a.ndim) if i != axis)
            rows = np.flatnonzero(bad.any(axis=other))
            if 0 < rows.size < a.shape[axis]:
                return f"wrong only at indices {rows.tolist()[:6]} of axis {axis}: an indexing or axis slip?"
    return "compare the formula term by term (a missing term or a wrong axis of a sum?)"


def _sample_indices(shape, n_entries, rng):
    size = int(np.prod(shape))
    if n_entries is None or n_entries >= size:
        return None
    flat = rng.choice(size, size=n_entries, replace=False)
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in flat]


def check_layer(layer, x, rng=0, h=1e-5, method="central", tol=1e-7, check_input=True, n_entries=None,
                train=True):
    """Check every parameter gradient of ``layer`` — those of its sub-layers too — and the input gradient at
    input ``x``, and diagnose the common mistakes on the way.

    Uses the scalar f(x, θ) = Σ out ⊙ u with a fixed random upstream gradient u, so ∂f/∂out = u; u is drawn from
    a stream derived from ``rng`` (so it never equals an input drawn with the same seed). ``n_entries`` checks
    that many random entries per array instead of all.

    Before the finite differences the report diagnoses, each in one line:

    * a float32 (or float16) layer: finite differences need float64 — a float64 *copy* is checked (warning);
    * a forward pass that is random (a stochastic layer whose randomness is not held: layers with ``stochastic``
      and ``hold_mask`` are held automatically) or that modifies its input, a backward pass that modifies its
      upstream gradient;
    * missing or misshapen ``grads`` entries, an input gradient of the wrong shape;
    * a backward pass that *accumulates* into ``grads`` instead of overwriting them (run twice: doubled).

    Wrong arrays get a hint (sign slip, transposed, constant factor, wrong indices). The many training-mode
    forward passes would move running statistics (batch norm); every buffer is restored afterwards.
    """
    rng = check_rng("rng", rng)
    h = check_positive("h", h)
    tol = check_nonneg("tol", tol)
    x = check_array("x", x, min_rows=1)
    report = GradCheckReport(tol=tol)
    work = layer
    dt = layer.dtype
    if (dt is not None and np.dtype(dt) != np.float64) or x.dtype != np.float64:
        report.diagnose(f"the layer (or x) is {np.dtype(dt or x.dtype).name}: finite differences need float64, "
                        f"whose round-off is ~5·10⁸ times smaller, so a float64 copy was checked", fatal=False)
        work = copy.deepcopy(layer).astype(np.float64)
    x = np.array(x, dtype=np.float64, copy=True)
    held, saved = [], []
    for _, sub in work.named_layers():
        saved.append((sub, {k: np.array(v, copy=True) for k, v in sub.buffers.items()}))
        if getattr(sub, "stochastic", False) and hasattr(sub, "hold_mask"):
            held.append((sub, sub.hold_mask))
            sub.hold_mask = True
    try:
        _check_layer(work, x, rng, h, method, check_input, n_entries, train, report)
    finally:
        for sub, flag in held:
            sub.hold_mask = flag
        for sub, bufs in saved:
            sub.buffers.update(bufs)
    return report


def _shape_hint(exc):
    """A broadcast error from writing a gradient of the wrong shape, said as such."""
    m = re.search(r"from shape \(([\d, ]*)\) into shape \(([\d, ]*)\)", str(exc))
    if not m:
        return ""
    a, b = (tuple(int(v) for v in g.split(",") if v.strip()) for g in m.groups())
    return f": a gradient of shape {a} written into an array of shape {b}" + (" (transposed?)" if a == b[::-1]
                                                                              else "")


def _check_layer(layer, x, rng, h, method, check_input, n_entries, train, report):
    try:
        _check_layer_steps(layer, x, rng, h, method, check_input, n_entries, train, report)
    except NotImplementedError as exc:
        report.diagnose(f"not implemented yet ({' '.join(str(exc).split()) or 'NotImplementedError'})")
    except Exception as exc:                                      # noqa: BLE001 — the checked layer's own error
        report.diagnose(f"the layer raised {type(exc).__name__}: {' '.join(str(exc).split())}{_shape_hint(exc)}")


def _check_layer_steps(layer, x, rng, h, method, check_input, n_entries, train, report):
    x0 = x.copy()
    bufs = {(id(sub), k): v.copy() for _, sub in layer.named_layers() for k, v in sub.buffers.items()}
    out = layer.forward(x, train)
    if not train:
        for _, sub in layer.named_layers():
            for k, v in sub.buffers.items():
                if not np.array_equal(v, bufs[(id(sub), k)]):
                    report.diagnose(f"a forward pass in eval mode (train=False) changed buffer {k!r}: eval mode must "
                                    f"update nothing (running statistics are updated in training mode only)")
                    return
    if np.asarray(out).dtype != np.float64:
        report.diagnose(f"the output is {np.asarray(out).dtype} for a float64 input: the layer computes in a lower "
                        f"precision somewhere (an astype, a float32 array), which finite differences cannot check")
        return
    if not np.array_equal(x, x0, equal_nan=True):
        report.diagnose("forward modified its input x in place (e.g. x *= …, or np.maximum(x, 0, out=x)); work on "
                        "a copy — the layer below still needs x")
        x[...] = x0
        return
    out2 = layer.forward(x, train)
    if out2.shape != out.shape or not np.array_equal(out, out2, equal_nan=True):
        report.diagnose("two forward passes on the same input gave different outputs: the layer is random (hold "
                        "its randomness fixed for the check, e.g. a dropout mask: hold_mask = True) or keeps state "
                        "between calls; finite differences are meaningless until it is deterministic")
        return
    u = np.random.default_rng(rng.integers(2 ** 63)).standard_normal(out.shape)   # independent of the inputs

    def f():
        return float(np.sum(layer.forward(x, train) * u))

    paths = {id(sub): path for path, sub in layer.named_layers()}
    named = [(f"{paths[id(sub)]}.{k}" if paths[id(sub)] else k, sub, k) for sub, k in layer.parameters()]
    layer.forward(x, train)
    dout = u.copy()
    dx = layer.backward(dout)
    if not np.array_equal(dout, u):
        report.diagnose("backward modified its upstream gradient dout in place; the layer below may still need it "
                        "(compute into a new array)")
    for _, sub in layer.named_layers():
        for k in set(sub.params) - set(sub.grads):
            report.diagnose(f"grads has no entry {k!r}: backward must write grads[name] for every parameter "
                            f"{sorted(sub.params)}")
        for k in set(sub.grads) - set(sub.params):
            report.diagnose(f"grads has an entry {k!r} that is not a parameter {sorted(sub.params)}", fatal=False)
    bad_shape = False
    for name, sub, k in named:
        g, p = sub.grads.get(k), sub.params[k]
        if g is not None and np.shape(g) != p.shape:
            bad_shape = True
            t = " (transposed?)" if np.shape(g) == p.shape[::-1] else ""
            report.diagnose(f"grads[{name!r}] has shape {np.shape(g)}, the parameter has {p.shape}{t}")
    if check_input and (dx is None or np.shape(dx) != x.shape):
        bad_shape = True
        report.diagnose(f"backward returned {'None' if dx is None else f'shape {np.shape(dx)}'} as the input "
                        f"gradient, expected shape {x.shape}")
    if report.diagnoses and any(d["fatal"] for d in report.diagnoses) and bad_shape:
        return
    named = [(name, sub, k) for name, sub, k in named if k in sub.grads]
    analytic = {name: np.array(sub.grads[k], dtype=np.float64, copy=True) for name, sub, k in named}
    layer.forward(x, train)
    dx2 = layer.backward(u.copy())
    for name, sub, k in named:
        g1, g2 = analytic[name], np.asarray(sub.grads[k], dtype=np.float64)
        if np.any(g1) and np.allclose(g2, 2 * g1, rtol=1e-9, atol=0):
            report.diagnose(f"backward adds to grads[{name!r}] instead of overwriting it (a second backward doubled "
                            f"it): use = or out=, not += — the trainer never zeroes gradients, so training would "
                            f"use their running sum")
            break
        if not np.array_equal(g1, g2):
            report.diagnose(f"a second forward/backward on the same input changed grads[{name!r}]: the layer keeps "
                            f"state between calls")
            break
    if check_input and dx is not None and dx2 is not None and np.shape(dx2) == np.shape(dx) and \
            not np.array_equal(dx, dx2):
        report.diagnose("a second backward gave a different input gradient: the layer keeps state between calls")
    for name, sub, k in named:
        p = sub.params[k]
        idx = _sample_indices(p.shape, n_entries, rng)
        num = numerical_gradient(f, p, h, method, idx)
        report.add(name, analytic[name], num, None if idx is None else _mask(p.shape, idx))
    if check_input and dx is not None and np.shape(dx) == x.shape:
        idx = _sample_indices(x.shape, n_entries, rng)
        num = numerical_gradient(f, x, h, method, idx)
        report.add("input", dx, num, None if idx is None else _mask(x.shape, idx))


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
