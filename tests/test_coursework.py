"""The coursework grader: it passes correct answers (minigrow's own layers and a hand-written one) and fails a
catalogue of typical wrong answers with the right diagnosis; the CLI writes stubs and grades files."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minigrow.coursework import EXERCISES, grade_file, stub_path

ROOT = Path(__file__).resolve().parent.parent

# Correct answers built on minigrow's own layers, with the stubs' constructor signatures.
LIBRARY = {
    "dense": """
        from minigrow.layers import Dense as _D
        class Dense(_D):
            def __init__(self, i, o):
                super().__init__(i, o, dtype=np.float64)
    """,
    "relu": "from minigrow.layers import ReLU",
    "softmax_ce": """
        from minigrow.losses import SoftmaxCrossEntropy
        def softmax_cross_entropy(z, y):
            ce = SoftmaxCrossEntropy()
            return ce.forward(z, y), ce.backward()
    """,
    "residual": """
        from minigrow.layers import ResidualBlock as _R
        class ResidualBlock(_R):
            def __init__(self, width, hidden):
                super().__init__(width, hidden, activation="tanh", dtype=np.float64)
    """,
    "conv2d": """
        from minigrow.layers import Conv2D as _C
        class Conv2D(_C):
            def __init__(self, ci, co, k, stride=1, padding=0):
                super().__init__(ci, co, k, stride=stride, padding=padding, dtype=np.float64)
    """,
    "maxpool": "from minigrow.layers import MaxPool2d",
    "batchnorm": """
        from minigrow.layers import BatchNorm1d as _B
        class BatchNorm1d(_B):
            def __init__(self, n, eps=1e-5, momentum=0.1):
                super().__init__(n, eps=eps, momentum=momentum, dtype=np.float64)
    """,
}

LIBRARY.update({
    "sensli": """
        from minigrow.methods.sensli.formulas import identity_form_gradients as virtual_layer_gradients
    """,
    "bundles": """
        from minigrow.methods.bundles import bundles
        def bundle_entropy(a, y, w_max, lr=1e-3, batch_size=64):
            b = bundles(a, y, w_max, lr, batch_size)
            return b.n_bundles, b.entropy
    """,
    "flip": """
        from minigrow.methods.pruning.formulas import flip_differences
        def flip_estimate(losses, xi):
            cur = losses(xi)
            J = xi.shape[1]
            flipped = np.stack([losses(np.where(np.arange(J) == j, 1 - xi, xi)) for j in range(J)], axis=1)
            return flip_differences(xi, cur, flipped).mean(axis=0)
    """,
})

HAND_DENSE = """
    from minigrow.layers import Layer
    class Dense(Layer):
        def __init__(self, i, o):
            super().__init__()
            self.params["W"] = np.zeros((o, i)); self.params["b"] = np.zeros(o); self._init_grads()
        def forward(self, x, train=True):
            self._cache = x
            return x @ self.params["W"].T + self.params["b"]
        def backward(self, dout, need_input_grad=True):
            self.grads["W"][...] = {gW}
            self.grads["b"][...] = {gb}
            return {dx}
"""


def dense_variant(gW="dout.T @ self._cache", gb="dout.sum(0)", dx="dout @ self.params['W']"):
    return HAND_DENSE.format(gW=gW, gb=gb, dx=dx)


def write(tmp_path, name, body, exercise):
    p = tmp_path / f"{name}.py"
    p.write_text(f"import numpy as np\nEXERCISE = {exercise!r}\n" + textwrap.dedent(body))
    return p


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_library_implementations_pass(exercise, tmp_path):
    res = grade_file(write(tmp_path, exercise, LIBRARY[exercise], exercise))
    assert res.passed, str(res)


def test_a_hand_written_dense_passes(tmp_path):
    res = grade_file(write(tmp_path, "d", dense_variant(), "dense"))
    assert res.passed, str(res)


WRONG = [
    ("dense", "sign slip", dense_variant(gW="-(dout.T @ self._cache)"), "sign slip"),
    ("dense", "missing bias gradient", dense_variant(gb="0"), "all zero"),
    ("dense", "transposed weight gradient", dense_variant(gW="(self._cache.T @ dout).T.T"), "transposed"),
    ("dense", "mean instead of sum", dense_variant(gb="dout.mean(0)"), "constant factor"),
    ("dense", "accumulates", HAND_DENSE.replace('self.grads["W"][...] = {gW}', 'self.grads["W"] += dout.T @ '
                                               'self._cache').format(gW="", gb="dout.sum(0)",
                                                                     dx="dout @ self.params['W']"),
     "adds to grads"),
    ("dense", "float32", """
        from minigrow.layers import Layer
        class Dense(Layer):
            def __init__(self, i, o):
                super().__init__()
                self.params["W"] = np.zeros((o, i)); self.params["b"] = np.zeros(o); self._init_grads()
            def forward(self, x, train=True):
                x = x.astype(np.float32)
                self._cache = x
                return x @ self.params["W"].T.astype(np.float32) + self.params["b"].astype(np.float32)
            def backward(self, dout, need_input_grad=True):
                self.grads["W"][...] = dout.T @ self._cache
                self.grads["b"][...] = dout.sum(0)
                return dout @ self.params["W"]
    """, "float"),
    ("dense", "mutated input", """
        from minigrow.layers import Layer
        class Dense(Layer):
            def __init__(self, i, o):
                super().__init__()
                self.params["W"] = np.zeros((o, i)); self.params["b"] = np.zeros(o); self._init_grads()
            def forward(self, x, train=True):
                self._cache = x.copy()
                np.multiply(x, 1.0 + 1e-3, out=x)
                return self._cache @ self.params["W"].T + self.params["b"]
            def backward(self, dout, need_input_grad=True):
                self.grads["W"][...] = dout.T @ self._cache
                self.grads["b"][...] = dout.sum(0)
                return dout @ self.params["W"]
    """, "modified its input"),
    ("dense", "wrong gradient shape", """
        from minigrow.layers import Layer
        class Dense(Layer):
            def __init__(self, i, o):
                super().__init__()
                self.params["W"] = np.zeros((o, i)); self.params["b"] = np.zeros(o); self._init_grads()
            def forward(self, x, train=True):
                self._cache = x
                return x @ self.params["W"].T + self.params["b"]
            def backward(self, dout, need_input_grad=True):
                self.grads["W"] = self._cache.T @ dout
                self.grads["b"] = dout.sum(0)
                return dout @ self.params["W"]
    """, "transposed?"),
    ("dense", "wrong parameter names", """
        from minigrow.layers import Layer
        class Dense(Layer):
            def __init__(self, i, o):
                super().__init__()
                self.params["weight"] = np.zeros((o, i)); self.params["b"] = np.zeros(o); self._init_grads()
    """, "stub asks for"),
    ("softmax_ce", "sign slip", """
        from minigrow.losses import SoftmaxCrossEntropy
        def softmax_cross_entropy(z, y):
            ce = SoftmaxCrossEntropy()
            return ce.forward(z, y), -ce.backward()
    """, "sign slip"),
    ("softmax_ce", "missing 1/N", """
        from minigrow.losses import SoftmaxCrossEntropy
        def softmax_cross_entropy(z, y):
            ce = SoftmaxCrossEntropy()
            return ce.forward(z, y), ce.backward() * len(y)
    """, "1/N"),
    ("softmax_ce", "no max shift", """
        def softmax_cross_entropy(z, y):
            e = np.exp(z * 60.0) ** (1 / 60.0)
            p = e / e.sum(1, keepdims=True)
            n = len(y)
            loss = -np.mean(np.log(p[np.arange(n), y]))
            d = p.copy(); d[np.arange(n), y] -= 1
            return loss, d / n
    """, "overflowed"),
    ("batchnorm", "biased running variance", """
        from minigrow.layers import BatchNorm1d as _B
        class BatchNorm1d(_B):
            def __init__(self, n, eps=1e-5, momentum=0.1):
                super().__init__(n, eps=eps, momentum=momentum, dtype=np.float64)
            def forward(self, x, train=True):
                out = super().forward(x, train)
                if train:
                    m = x.shape[0]
                    self.buffers["running_var"] -= 0.1 * x.var(0) * (m / (m - 1) - 1)
                return out
    """, "unbiased"),
    ("batchnorm", "eval mode updates the running mean", """
        from minigrow.layers import BatchNorm1d as _B
        class BatchNorm1d(_B):
            def __init__(self, n, eps=1e-5, momentum=0.1):
                super().__init__(n, eps=eps, momentum=momentum, dtype=np.float64)
            def forward(self, x, train=True):
                if not train:
                    self.buffers["running_mean"] += 0.0 + 1e-3
                return super().forward(x, train)
    """, "changed"),
    ("sensli", "transposed", """
        def virtual_layer_gradients(delta, a):
            return a.T @ delta, delta.sum(0)
    """, "transposed"),
    ("sensli", "extra 1/N", """
        def virtual_layer_gradients(delta, a):
            return delta.T @ a / len(a), delta.sum(0)
    """, "1/N"),
    ("bundles", "no grid", """
        def bundle_entropy(a, y, w_max, lr=1e-3, batch_size=64):
            _, inv = np.unique(a.reshape(len(a), -1), axis=0, return_inverse=True)
            inv = inv.reshape(-1)
            H = 0.0
            for b in np.unique(inv):
                lab = y[inv == b]
                p = np.bincount(lab) / len(lab)
                p = p[p > 0]
                H += len(lab) / len(y) * float(-(p * np.log(p)).sum())
            return len(np.unique(inv)), H
    """, "quantise"),
    ("flip", "sign from the flip", """
        def flip_estimate(losses, xi):
            cur = losses(xi)
            J = xi.shape[1]
            flipped = np.stack([losses(np.where(np.arange(J) == j, 1 - xi, xi)) for j in range(J)], axis=1)
            return (flipped - cur[:, None]).mean(axis=0)
    """, "sign must follow"),
    ("relu", "derivative at the wrong side", """
        from minigrow.layers import Layer
        class ReLU(Layer):
            def forward(self, x, train=True):
                self._cache = x
                return np.maximum(x, 0)
            def backward(self, dout, need_input_grad=True):
                return dout * (self._cache < 0)
    """, "input"),
]


@pytest.mark.parametrize("exercise,what,body,needle", WRONG, ids=[f"{e}-{w}" for e, w, _, _ in WRONG])
def test_wrong_answers_fail_with_the_right_diagnosis(exercise, what, body, needle, tmp_path):
    res = grade_file(write(tmp_path, "answer", body, exercise))
    text = str(res)
    assert not res.passed, f"{what} passed:\n{text}"
    verdict = text.splitlines()[-1]
    assert needle in verdict, f"{what}: {needle!r} not in the verdict\n{text}"


def test_stubs_are_graded_as_not_implemented(tmp_path):
    for name in EXERCISES:
        res = grade_file(stub_path(name))
        assert not res.passed and "not implemented" in str(res), str(res)


def test_a_broken_file_is_reported_not_raised(tmp_path):
    p = tmp_path / "broken.py"
    p.write_text("EXERCISE = 'dense'\ndef oops(:\n")
    res = grade_file(p)
    assert not res.passed and "SyntaxError" in str(res)


def test_cli_new_list_and_grade(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "minigrow", "grade", *args], cwd=tmp_path, capture_output=True,
                              text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    r = run("--list")
    assert r.returncode == 0 and "conv2d" in r.stdout
    r = run("--new", "relu")
    assert r.returncode == 0 and (tmp_path / "relu.py").exists()
    r = run("--new", "relu")
    assert r.returncode == 2 and "exists" in r.stderr
    r = run("relu.py")
    assert r.returncode == 1 and "not implemented" in r.stdout
    write(tmp_path, "ok", LIBRARY["relu"], "relu")
    r = run("ok.py")
    assert r.returncode == 0 and "verdict: PASS" in r.stdout, r.stdout + r.stderr
    r = run("missing.py")
    assert r.returncode == 2 and "no such file" in r.stderr
