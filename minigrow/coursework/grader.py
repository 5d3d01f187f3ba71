"""The grader behind ``python -m minigrow grade FILE``.

A student's file names its exercise (``EXERCISE = "dense"``) and defines the layer class (or function) the stub
asks for. For a layer the grader

1. runs :func:`minigrow.gradcheck.check_layer` (float64) on hidden random inputs — its diagnoses catch an
   accumulating backward, a mutated input or upstream gradient, a random forward pass, missing or misshapen
   gradients, and its hints name sign slips, transposes, constant factors and wrong indices;
2. checks the layer contract: float64 in → float64 out (no silent float32), ``train=False`` updates nothing;
3. copies the parameters of minigrow's own layer into the student's and compares outputs, parameter gradients and
   input gradients on hidden inputs (relative error ≤ 1e-9);

and prints one verdict per exercise: PASS, or FAIL with the first thing to look at. Nothing of the student's file
is trusted: every exception becomes a failed check with its message.
"""
from __future__ import annotations

import importlib.util
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..gradcheck import check_layer, numerical_gradient, rel_error
from ..layers import BatchNorm1d, Conv2D, Dense, MaxPool2d, ReLU, ResidualBlock
from ..losses import SoftmaxCrossEntropy

__all__ = ["EXERCISES", "GradeResult", "grade_file", "stub_path"]

STUBS = Path(__file__).resolve().parent / "stubs"
_HIDDEN_SEED = 271828          # the hidden inputs: not the seeds a student uses in their own checks
TOL = 1e-9                     # agreement with the reference (both float64, same parameters)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class GradeResult:
    """The outcome of grading one file: the checks run, the verdict and the first thing to look at."""

    exercise: str
    checks: list = field(default_factory=list)

    @property
    def passed(self):
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def first_problem(self):
        return next((c for c in self.checks if not c.ok), None)

    def __str__(self):
        lines = [f"exercise {self.exercise!r}"]
        for c in self.checks:
            lines.append(f"  [{'ok' if c.ok else 'FAIL'}] {c.name}" + (f": {c.detail}" if c.detail and not c.ok
                                                                        else ""))
        bad = self.first_problem
        lines.append("verdict: PASS" if self.passed else
                     f"verdict: FAIL — first thing to look at: {bad.name}: {bad.detail}" if bad else "verdict: FAIL")
        return "\n".join(lines)


@dataclass
class LayerExercise:
    """A layer to write: ``cls_name`` built with ``args``, compared with ``reference(*args)`` on ``inputs``."""

    name: str
    cls_name: str
    args: tuple
    reference: object
    inputs: object            # rng -> list of float64 inputs
    train_modes: tuple = (True,)
    what: str = ""


@dataclass
class FunctionExercise:
    name: str
    fn_name: str
    grade: object             # (student function) -> list[Check]
    what: str = ""


def _away_from_zero(rng, shape, lo=0.1):
    return rng.uniform(lo, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def _distinct(rng, shape):
    """Values without ties (a permutation, scaled): max-pool gradients are only defined there."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) - np.prod(shape) / 2) * 0.05


def _grade_softmax_ce(fn):
    checks = []
    rng = np.random.default_rng(_HIDDEN_SEED)
    ref = SoftmaxCrossEntropy()
    for trial in range(3):
        z = rng.standard_normal((5, 4)) * (1 + 10 * trial)       # large logits in the last trial: stability
        y = rng.integers(0, 4, 5)
        z_in = z.copy()
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):   # an overflow shows as a non-finite loss
                warnings.simplefilter("ignore", RuntimeWarning)
                loss, dz = fn(z_in, y)
        except Exception as exc:                                 # noqa: BLE001 — the student's code
            return [Check("runs", False, _exc(exc))]
        if not np.array_equal(z_in, z):
            checks.append(Check("does not modify z", False, "softmax_cross_entropy modified its input z in place"))
            break
        want = ref.forward(z, y)
        want_dz = ref.backward()
        if not np.isfinite(loss) or not np.all(np.isfinite(dz)):
            checks.append(Check(f"loss finite (trial {trial})", False, "the loss or its gradient overflowed for large "
                                "logits: subtract each row's max before exp (log-sum-exp)"))
            break
        checks.append(Check(f"loss = reference (trial {trial})", abs(float(loss) - want) <= TOL * max(1, abs(want)),
                            f"got {float(loss):.6g}, expected {want:.6g}" +
                            (" — a sum instead of a mean over the batch?" if abs(float(loss) - 5 * want) < 1e-6 * abs(want)
                             else "")))
        dz = np.asarray(dz, dtype=np.float64)
        if dz.shape != z.shape:
            checks.append(Check(f"∂L/∂z shape (trial {trial})", False, f"got {dz.shape}, expected {z.shape}"))
            break
        num = numerical_gradient(lambda: fn(z_in, y)[0], z_in)
        e = rel_error(dz, num)
        hint = ""
        if np.allclose(dz, -want_dz, atol=1e-9):
            hint = " — a sign slip (softmax − onehot, not onehot − softmax)"
        elif np.allclose(dz, 5 * want_dz, atol=1e-9):
            hint = " — missing the 1/N of the mean"
        checks.append(Check(f"∂L/∂z vs finite differences (trial {trial})", e <= 1e-7,
                            f"relative error {e:.2e}{hint}"))
    return checks


EXERCISES = {
    "dense": LayerExercise("dense", "Dense", (4, 3), lambda a, b: Dense(a, b, rng=1, dtype=np.float64),
                           lambda rng: [rng.standard_normal((5, 4)), rng.standard_normal((1, 4))],
                           what="z = W a + b: ∂L/∂W = δᵀA, ∂L/∂b = Σ δ, ∂L/∂A = δW"),
    "relu": LayerExercise("relu", "ReLU", (), lambda: ReLU(),
                          lambda rng: [_away_from_zero(rng, (4, 5)), _away_from_zero(rng, (2, 3, 2, 2))],
                          train_modes=(True, False), what="a = max(z, 0), σ'(0) = 0"),
    "softmax_ce": FunctionExercise("softmax_ce", "softmax_cross_entropy", _grade_softmax_ce,
                                   what="L = mean_n(log Σ_k e^{z_nk} − z_{n,y_n}), ∂L/∂z = (softmax − onehot)/N"),
    "residual": LayerExercise("residual", "ResidualBlock", (3, 4),
                              lambda w, h: ResidualBlock(w, h, activation="tanh", rng=2, dtype=np.float64),
                              lambda rng: [rng.standard_normal((5, 3))],
                              what="h + W2 tanh(W1 h + b1): ∂L/∂h = g + d_z W1"),
    "conv2d": LayerExercise("conv2d", "Conv2D", (2, 3, 3, 2, 1),
                            lambda ci, co, k, s, p: Conv2D(ci, co, k, stride=s, padding=p, rng=3, dtype=np.float64),
                            lambda rng: [rng.standard_normal((2, 2, 7, 6)), rng.standard_normal((1, 2, 5, 5))],
                            what="out = b + W ⋆ x (stride 2, padding 1): ∂L/∂W a correlation, ∂L/∂x col2im"),
    "maxpool": LayerExercise("maxpool", "MaxPool2d", (2,), lambda k: MaxPool2d(k),
                             lambda rng: [_distinct(rng, (2, 3, 4, 6)), _distinct(rng, (1, 1, 6, 4))],
                             what="max over 2×2 windows; the gradient goes to the max"),
    "batchnorm": LayerExercise("batchnorm", "BatchNorm1d", (3,), lambda n: BatchNorm1d(n, dtype=np.float64),
                               lambda rng: [rng.standard_normal((6, 3)) * [1.0, 3.0, 0.5] + [0.0, 2.0, -1.0]],
                               train_modes=(True, False),
                               what="x̂ = (x − μ)/σ, y = γx̂ + β; running statistics in eval mode"),
}


def _method(grade):
    """A method exercise's grade function, given the Check type (the method graders live in method_checks.py)."""
    def run(fn):
        from . import method_checks
        return getattr(method_checks, grade)(fn, Check)
    return run


EXERCISES.update({
    "sensli": FunctionExercise("sensli", "virtual_layer_gradients", _method("grade_sensli"),
                               what="SensLI closed form (S4): ∂L/∂V = Σ δ aᵀ, ∂L/∂c = Σ δ at V = I, c = 0"),
    "bundles": FunctionExercise("bundles", "bundle_entropy", _method("grade_bundles"),
                                what="bundles on the float32 grid (B1) and their entropy H(B) (B2)"),
    "flip": FunctionExercise("flip", "flip_estimate", _method("grade_flip"),
                             what="flip estimator: Δ_j = mean_n [ℓ_n(ξ_nj = 1) − ℓ_n(ξ_nj = 0)]"),
})


def stub_path(name):
    """Path of the stub file of exercise ``name``."""
    if name not in EXERCISES:
        raise ValueError(f"exercise: expected one of {sorted(EXERCISES)}, got {name!r}")
    return STUBS / f"{name}.py"


def _exc(exc):
    if isinstance(exc, NotImplementedError):
        return f"not implemented yet ({' '.join(str(exc).split()) or 'NotImplementedError'})"
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (line {tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}{where}"


def _load(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(f"student_answer_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def grade_file(path, exercise=None):
    """Grade the student's file at ``path``; returns a :class:`GradeResult`. ``exercise`` overrides the file's
    ``EXERCISE`` name."""
    try:
        module = _load(path)
    except FileNotFoundError:
        raise
    except Exception as exc:                                     # noqa: BLE001 — a syntax error, a bad import …
        return GradeResult(exercise or "?", [Check("the file imports", False, _exc(exc))])
    name = exercise or getattr(module, "EXERCISE", None)
    if name not in EXERCISES:
        raise ValueError(f"{path}: set EXERCISE to one of {sorted(EXERCISES)} (got {name!r})")
    ex = EXERCISES[name]
    result = GradeResult(name)
    target = getattr(module, ex.cls_name if isinstance(ex, LayerExercise) else ex.fn_name, None)
    if target is None:
        result.checks.append(Check("defines what the stub asks for", False,
                                   f"no {ex.cls_name if isinstance(ex, LayerExercise) else ex.fn_name!r} in the file"))
        return result
    if isinstance(ex, FunctionExercise):
        result.checks.extend(ex.grade(target))
    else:
        result.checks.extend(_grade_layer(ex, target))
    return result


def _grade_layer(ex, cls):
    checks = []
    rng = np.random.default_rng(_HIDDEN_SEED)
    try:
        ref = ex.reference(*ex.args)
        student = cls(*ex.args)
    except Exception as exc:                                     # noqa: BLE001
        return [Check(f"{ex.cls_name}{ex.args} can be built", False, _exc(exc))]
    want, have = set(ref.params), set(getattr(student, "params", {}))
    if want != have:
        return [Check("parameter names", False, f"your layer has params {sorted(have)}, the stub asks for "
                                                f"{sorted(want)}")]
    for k, v in ref.params.items():
        if np.shape(student.params[k]) != v.shape:
            return [Check(f"shape of params[{k!r}]", False, f"got {np.shape(student.params[k])}, the stub asks for "
                                                           f"{v.shape}")]
        student.params[k] = v.copy()
        student.grads[k] = np.zeros_like(v)
    for i, x in enumerate(ex.inputs(rng)):
        for train in ex.train_modes:
            tag = f"input {i + 1}{'' if train else ', eval mode'}"
            try:
                rep = check_layer(student, x, rng=_HIDDEN_SEED + i, train=train)
            except Exception as exc:                             # noqa: BLE001
                checks.append(Check(f"gradient check ({tag})", False, _exc(exc)))
                return checks
            bad = [d["message"] for d in rep.diagnoses if d["fatal"]]
            worst = rep.worst
            if bad:
                checks.append(Check(f"gradient check ({tag})", False, bad[0]))
                return checks
            detail = "" if rep.ok else (f"{worst['name']}: relative error {worst['error']:.1e}" +
                                        (f" — {worst['hint']}" if worst.get("hint") else ""))
            checks.append(Check(f"gradient check ({tag})", rep.ok, detail))
            checks.extend(_compare(ex, student, ref, x, train, tag))
            if not all(c.ok for c in checks):
                return checks
    return checks


def _compare(ex, student, ref, x, train, tag):
    """Outputs, gradients, dtype and eval-mode contract against minigrow's own layer."""
    checks = []
    try:
        bufs = {k: v.copy() for k, v in student.buffers.items()}
        out = student.forward(x.copy(), train)
        out_ref = ref.forward(x.copy(), train)
        if np.asarray(out).dtype != np.float64:
            return [Check(f"float64 in, float64 out ({tag})", False, f"the output is {np.asarray(out).dtype}: "
                                                                     f"somewhere the layer casts to a lower precision")]
        if not train and any(not np.array_equal(bufs[k], v) for k, v in student.buffers.items()):
            return [Check(f"eval mode updates nothing ({tag})", False, "forward(x, train=False) changed a buffer "
                                                                       "(running statistics must stay fixed)")]
        e = rel_error(out, out_ref) if np.shape(out) == out_ref.shape else np.inf
        checks.append(Check(f"forward = minigrow's ({tag})", e <= TOL,
                            f"output shape {np.shape(out)} vs {out_ref.shape}" if e == np.inf else
                            f"relative error {e:.1e}"))
        u = np.random.default_rng(7).standard_normal(out_ref.shape)
        dx, dx_ref = student.backward(u.copy()), ref.backward(u.copy())
        for k in ref.params:
            g = rel_error(student.grads[k], ref.grads[k])
            checks.append(Check(f"∂L/∂{k} = minigrow's ({tag})", g <= TOL, f"relative error {g:.1e}"))
        g = rel_error(dx, dx_ref)
        checks.append(Check(f"∂L/∂x = minigrow's ({tag})", g <= TOL, f"relative error {g:.1e}"))
        if ref.buffers:
            for k, v in ((k, ref.buffers[k]) for k in ("running_mean", "running_var") if k in ref.buffers):
                s = np.asarray(student.buffers.get(k, np.nan))
                ok = s.shape == np.shape(v) and np.allclose(s, v, rtol=1e-12, atol=1e-12)
                checks.append(Check(f"buffer {k} = minigrow's ({tag})", ok,
                                    f"got {np.round(s, 6)}, expected {np.round(v, 6)} (momentum and the unbiased "
                                    f"variance as in PyTorch?)"))
    except Exception as exc:                                     # noqa: BLE001
        checks.append(Check(f"comparison with minigrow ({tag})", False, _exc(exc)))
    return checks
