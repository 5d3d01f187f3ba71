# %% [markdown]
# # Tutorial 00 — Backpropagation by hand
#
# Every gradient in minigrow is derived on paper and written as code; nothing is differentiated automatically.
# This tutorial derives the four pieces the rest of the library stands on — the dense layer, ReLU, softmax
# cross-entropy and the residual block — each next to the lines of `minigrow/layers/` (`dense.py`,
# `activations.py`, `residual.py`) and `minigrow/losses.py` that implement it, and *checks* each one numerically with `minigrow.gradcheck`. It ends with a section for
# coursework: write your own layer and check it the same way.
#
# Nothing here comes from the three papers; it is standard calculus (as in CS231n's notes). Conventions:
# batch-first arrays — a batch of $N$ samples is a matrix with one **row** per sample — and a dense weight
# $W \in \mathbb R^{\text{out}\times\text{in}}$, so one sample reads $z = W a + b$ and a batch reads $Z = A W^\top + b$.
#
# Run: `python tutorials/00_backprop_by_hand.py` (a few seconds; it writes no files), or with `MINIGROW_QUICK=1`.

# %%
import os
import sys
from pathlib import Path

import numpy as np

# The checkout this tutorial belongs to, found the same way from a script or a notebook run in any folder (its
# committed results are read from ROOT/docs/results).
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minigrow" / "__init__.py").is_file()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIGROW_QUICK") == "1"

from minigrow.gradcheck import (check_directional, check_layer, check_network,   # noqa: E402
                                numerical_gradient, rel_error)
from minigrow.layers import (ACTIVATIONS, Dense, Layer, ReLU, ResidualBlock,     # noqa: E402
                             register_layer)
from minigrow.losses import SoftmaxCrossEntropy                                  # noqa: E402
from minigrow.network import mlp, residual_mlp                                   # noqa: E402

rng = np.random.default_rng(0)      # every random draw in this tutorial comes from this Generator
N = 4                               # batch size of the checks

# %% [markdown]
# ## 0. The tool: a numerical derivative and a relative error
#
# For a scalar function $f$ of an array $x$, the **centred difference**
#
# $$ \frac{\partial f}{\partial x_i} \approx \frac{f(x + h e_i) - f(x - h e_i)}{2h} \tag{0.1}$$
#
# has error $O(h^2)$ when $f$ is smooth (Taylor: the $h^2 f''$ terms cancel). We compare an analytic gradient
# $a$ (from a backward pass) with the numerical one $n$ by
#
# $$ \operatorname{err}(a, n) = \frac{\max_i |a_i - n_i|}{\max\big(10^{-8},\ \max_i (|a_i| + |n_i|)\big)} . \tag{0.2}$$
#
# In float64 with $h = 10^{-5}$: $\lesssim 10^{-7}$ is right, $> 10^{-2}$ is wrong, in between means "look closer".
# To check a layer with output $\text{out}(x, \theta)$ we pick a fixed random "upstream gradient" $u$ and use the
# scalar $f = \sum \text{out} \odot u$, so $\partial f / \partial \text{out} = u$ — exactly what `backward(u)`
# receives. That is what `check_layer` does.

# %%
x = np.array([0.3, -1.2, 2.0])
f = lambda: float(np.sum(x ** 3))                 # noqa: E731   f(x) = Σ x³,  ∇f = 3x²
print("centred difference vs 3x²:  err =", f"{rel_error(numerical_gradient(f, x), 3 * x ** 2):.1e}")

# %% [markdown]
# ## 1. The dense layer
#
# One sample: $z_j = \sum_i W_{ji} a_i + b_j$. A batch: $Z = A W^\top + b$ (row $n$ of $Z$ is sample $n$).
# Let $\delta = \partial L / \partial Z$ (shape $N \times \text{out}$) arrive from above. By the chain rule, since
# $\partial Z_{nj} / \partial W_{ji} = A_{ni}$ and $W_{ji}$ appears in every row $n$,
#
# $$ \frac{\partial L}{\partial W_{ji}} = \sum_n \delta_{nj} A_{ni}
#    \;\Longrightarrow\; \frac{\partial L}{\partial W} = \delta^\top A, \tag{1.1}$$
#
# $$ \frac{\partial L}{\partial b_j} = \sum_n \delta_{nj}
#    \;\Longrightarrow\; \frac{\partial L}{\partial b} = \textstyle\sum_n \delta_n , \tag{1.2}$$
#
# $$ \frac{\partial L}{\partial A_{ni}} = \sum_j \delta_{nj} W_{ji}
#    \;\Longrightarrow\; \frac{\partial L}{\partial A} = \delta\, W . \tag{1.3}$$
#
# Shapes check themselves: $\delta^\top A$ is $(\text{out}\times N)(N\times\text{in})$, like $W$. The code
# (`Dense.forward` / `Dense.backward`):
#
# ```python
# z = x @ self.params["W"].T            # Z = A Wᵀ + b
# z += self.params["b"]
# ...
# np.matmul(dout.T, self.x, out=self.grads["W"])     # ∂L/∂W = δᵀ A     (1.1)
# np.sum(dout, axis=0, out=self.grads["b"])          # ∂L/∂b = Σ_n δ_n  (1.2)
# return dout @ self.params["W"]                     # ∂L/∂A = δ W      (1.3)
# ```

# %%
dense = Dense(3, 2, rng=rng, dtype=np.float64)      # float64 for every gradient check
report = check_layer(dense, rng.standard_normal((N, 3)))
print(report)

# %% [markdown]
# ## 2. ReLU
#
# $\sigma(z) = \max(z, 0)$ element-wise, so $\partial L/\partial z = \sigma'(z) \odot \partial L/\partial a$ with
#
# $$ \sigma'(z) = \mathbb 1[z > 0] \qquad (\text{and we choose } \sigma'(0) = 0). \tag{2.1}$$
#
# At $z = 0$ the derivative does not exist; $0$ is the usual choice (PyTorch's too), and it matters for the SensLI
# criterion (see tutorial 01). The code (`_relu_grad` in `minigrow/layers/activations.py`): `return da * (z > 0)`.
# Away from 0 the check passes like any smooth function:

# %%
z = rng.standard_normal((N, 5))
z[np.abs(z) < 1e-2] = 0.5                             # keep away from the kink (see section 5)
print(check_layer(ReLU(), z))

# %% [markdown]
# ## 3. Softmax cross-entropy (fused)
#
# For logits $z_n \in \mathbb R^K$ and label $y_n$, with $p_n = \operatorname{softmax}(z_n)$,
#
# $$ L = \frac1N \sum_n \ell_n, \qquad \ell_n = -\log p_{n,y_n} = \log\sum_k e^{z_{nk}} - z_{n,y_n}. \tag{3.1}$$
#
# Differentiate $\ell_n$ by $z_{nk}$: the log-sum-exp gives $e^{z_{nk}} / \sum_j e^{z_{nj}} = p_{nk}$, the second
# term gives $\mathbb 1[k = y_n]$. Hence
#
# $$ \frac{\partial L}{\partial z_n} = \frac1N\big(p_n - e_{y_n}\big). \tag{3.2}$$
#
# Doing softmax and the loss together ("fused") avoids the $K \times K$ softmax Jacobian, and subtracting the row
# maximum $m$ first, $\log\sum_k e^{z_k} = m + \log\sum_k e^{z_k - m}$, keeps `exp` from overflowing. The code
# (`SoftmaxCrossEntropy.backward`):
#
# ```python
# d = self.p                            # softmax(z)
# d[np.arange(n), self.y] -= 1          # p − e_y
# d *= 1.0 / n                          # (3.2)
# ```

# %%
loss = SoftmaxCrossEntropy()
zl = rng.standard_normal((N, 3))
yl = rng.integers(0, 3, N)
loss.forward(zl, yl)
analytic = loss.backward()
numeric = numerical_gradient(lambda: SoftmaxCrossEntropy().forward(zl, yl), zl)
print(f"softmax cross-entropy: err = {rel_error(analytic, numeric):.1e}")
print("stable for huge logits:", SoftmaxCrossEntropy().forward(np.array([[1000.0, 0.0]]), np.array([1])))

# %% [markdown]
# ## 4. The residual block
#
# The SensLI ResNets use $h \mapsto h + W_2\,\sigma(W_1 h + b_1)$ with no bias on $W_2$. Name the intermediate
# values as the forward pass computes them:
#
# $$ z = W_1 h + b_1, \qquad s = \sigma(z), \qquad \text{out} = h + W_2 s . \tag{4.1}$$
#
# With $g = \partial L/\partial\,\text{out}$, walk backwards through (4.1). The last line is a dense layer without
# bias (input $s$) plus the identity, so by (1.1) and (1.3)
#
# $$ \frac{\partial L}{\partial W_2} = g^\top s, \qquad \frac{\partial L}{\partial s} = g\,W_2 . \tag{4.2}$$
#
# Through the activation, (2.1): $d_z = \sigma'(z) \odot (g W_2)$. The first line is a dense layer with input $h$:
#
# $$ \frac{\partial L}{\partial W_1} = d_z^\top h, \qquad \frac{\partial L}{\partial b_1} = \textstyle\sum_n d_{z,n}. \tag{4.3}$$
#
# $h$ reaches the output on two paths — the skip connection and through $W_1$ — and the gradients of the paths add:
#
# $$ \frac{\partial L}{\partial h} = g + d_z W_1 . \tag{4.4}$$
#
# The code (`ResidualBlock.backward`) is those four lines:
#
# ```python
# np.matmul(dout.T, self.s, out=g["W2"])                        # ∂L/∂W2 = gᵀ s          (4.2)
# dz = self._df(self.z, self.s, dout @ p["W2"], self.alpha)     # d_z = σ'(z) ⊙ (g W2)
# np.matmul(dz.T, self.h, out=g["W1"])                          # ∂L/∂W1 = d_zᵀ h        (4.3)
# np.sum(dz, axis=0, out=g["b1"])                               # ∂L/∂b1 = Σ_n d_z
# return dout + dz @ p["W1"]                                    # ∂L/∂h = g + d_z W1     (4.4)
# ```

# %%
for act in ("tanh", "relu"):
    block = ResidualBlock(3, hidden=4, activation=act, rng=rng, dtype=np.float64)
    print(f"ResidualBlock({act}):")
    print(check_layer(block, rng.standard_normal((N, 3))))

# %% [markdown]
# ## The whole network
#
# A network is a chain, so its backward pass is the layers' backward passes in reverse order
# (`Sequential.backward`). For a small net we can check every parameter entry (`check_network`); for a big one
# a **directional check** costs two forward passes whatever the size: for a random unit direction $v$ over all
# parameters, the centred difference $\big(L(\theta + hv) - L(\theta - hv)\big)/2h$ must equal $\langle \nabla_\theta L, v\rangle$.

# %%
Xs = rng.standard_normal((8, 2))
ys = rng.integers(0, 2, 8)
small = residual_mlp(2, 3, 2, 2, "tanh", rng=rng, dtype=np.float64)
print("check_network, residual MLP 2-3-[res]x2-2:  max err", f"{check_network(small, 'ce', Xs, ys).max_error:.1e}")
big = mlp([2, 64, 64, 2], "tanh", rng=rng, dtype=np.float64)
print("check_directional, MLP 2-64-64-2:            err", f"{check_directional(big, 'ce', Xs, ys, rng=1).max_error:.1e}")

# %% [markdown]
# ## 5. Why centred differences fail at a ReLU kink
#
# At $z = 0$ the centred difference (0.1) straddles the kink:
# $\big(\max(h, 0) - \max(-h, 0)\big)/2h = \tfrac12$ — the average of the left derivative 0 and the right
# derivative 1. Our backward uses $\sigma'(0) = 0$, so the check reports an error of order 1 although nothing is
# wrong. The **one-sided** differences give the two one-sided derivatives:
#
# $$ \text{backward: } \frac{f(x) - f(x - h)}{h} = 0 = \sigma'(0^-), \qquad
#    \text{forward: } \frac{f(x + h) - f(x)}{h} = 1 = \sigma'(0^+). $$
#
# So at an exact kink compare with the one-sided difference that matches the convention (here the left one), and
# everywhere else keep the inputs at least $h$ away from kinks — which is why minigrow's test strategies draw
# $|z| \ge$ a margin. Near (not at) a kink, within $h$, the centred difference is simply inaccurate: the error is
# the fraction of $[z-h, z+h]$ on the "wrong" side.

# %%
zk = np.zeros((1, 3))
print("ReLU at z = 0, centred: ", check_layer(ReLU(), zk).max_error)
print("ReLU at z = 0, backward:", check_layer(ReLU(), zk, method="backward").max_error)
zn = np.full((1, 3), 3e-6)                   # inside [−h, h], h = 1e-5
rep = check_layer(ReLU(), zn)
w = rep.worst
print(f"ReLU at z = 3e-6, centred: numeric/analytic = {w['numeric'] / w['analytic']:.2f} (the share of "
      f"[z−h, z+h] above 0 is {(3e-6 + 1e-5) / 2e-5:.2f}), err = {rep.max_error:.2f}")

# %% [markdown]
# ## 6. Check your own layer (coursework)
#
# Write a layer as a subclass of `Layer`, following the layer contract of `minigrow/layers/base.py`: put parameters
# in `self.params` (and call `self._init_grads()`), keep in `self._cache` what `backward` needs, *overwrite*
# `self.grads` in `backward` (never add to them) and return $\partial L/\partial x$. Decorate it
# with `@register_layer` so `minigrow.io.load` can rebuild it, and give it `config()` if its constructor takes
# arguments. Here: a **Swish** activation with a learnable slope $\beta$ per unit,
#
# $$ a = x\,\sigma(\beta x), \qquad \sigma(t) = \frac{1}{1 + e^{-t}} . $$
#
# With $s = \sigma(\beta x)$ and $\sigma' = \sigma(1-\sigma)$, and upstream $g = \partial L / \partial a$:
#
# $$ \frac{\partial a}{\partial x} = s + \beta x\, s(1 - s), \qquad
#    \frac{\partial a}{\partial \beta} = x^2 s (1 - s), \qquad
#    \frac{\partial L}{\partial \beta_j} = \sum_n g_{nj}\, x_{nj}^2\, s_{nj}(1 - s_{nj}) . $$

# %%
@register_layer
class Swish(Layer):
    """a = x σ(βx) with a learnable β per unit (a coursework example)."""

    def __init__(self, width, beta=1.0, dtype=np.float64):
        super().__init__()
        self.width = width
        self.params["beta"] = np.full(width, beta, dtype=dtype)
        self._init_grads()

    def config(self):
        return {"width": self.width}

    def forward(self, x, train=True):
        s = ACTIVATIONS["sigmoid"][0](self.params["beta"] * x, None)          # s = σ(βx)
        self._cache = (x, s)                                               # what backward needs (private)
        return x * s

    def backward(self, dout, need_input_grad=True):
        (x, s), beta = self._cache, self.params["beta"]
        ds = s * (1 - s)                                                   # σ'(βx)
        self.grads["beta"][:] = np.sum(dout * x * x * ds, axis=0)           # ∂L/∂β = Σ_n g x² s(1−s)
        return dout * (s + beta * x * ds) if need_input_grad else None      # ∂L/∂x = g (s + βx s(1−s))


swish = Swish(3, beta=0.7)
print(check_layer(swish, rng.standard_normal((N, 3))))

# %% [markdown]
# A typical mistake — forgetting the $\beta x\,s(1-s)$ term of $\partial a/\partial x$ — and what the report shows:
# the input gradient is wrong, the parameter gradient is not, and the worst entry is named.

# %%
class BuggySwish(Swish):
    def backward(self, dout, need_input_grad=True):
        super().backward(dout, need_input_grad)
        x, s = self._cache
        return dout * s                               # forgot βx s(1−s)


print(check_layer(BuggySwish(3, beta=0.7), rng.standard_normal((N, 3))))

# %% [markdown]
# ### The five mistakes the checker catches (and says so)
#
# A wrong formula shows up as a large relative error, as above. Five other mistakes are just as common in
# coursework and much harder to see from a table of numbers, so `check_layer` looks for each before it compares, and
# names it in one line:
#
# 1. **backward adds to `grads`** (`+=`) instead of overwriting them — the trainer never zeroes gradients, so
#    training would silently use their running sum (the checker runs backward twice and sees them double);
# 2. **a float32 layer** — finite differences need float64: the checker warns and checks a float64 *copy*;
# 3. **forward modifies its input** in place (`x *= …`, `np.maximum(x, 0, out=x)`): the layer below still needs it;
# 4. **a random forward pass** (a dropout mask drawn anew at every call): finite differences are then meaningless —
#    hold the randomness fixed (minigrow's `Dropout` has `hold_mask`, which the checker sets itself);
# 5. **a gradient of the wrong shape** — most often transposed: the broadcast error is said as such.

# %%
class AccumulatingSwish(Swish):                                   # mistake 1
    def backward(self, dout, need_input_grad=True):
        (x, s), beta = self._cache, self.params["beta"]
        self.grads["beta"] += np.sum(dout * x * x * s * (1 - s), axis=0)
        return dout * (s + beta * x * s * (1 - s))


class InPlaceSwish(Swish):                                       # mistake 3
    def forward(self, x, train=True):
        s = ACTIVATIONS["sigmoid"][0](self.params["beta"] * x, None)
        self._cache = (x.copy(), s)
        x *= s
        return x


class RandomSwish(Swish):                                        # mistake 4: a fresh mask at every call
    def forward(self, x, train=True):
        return super().forward(x, train) * (np.random.default_rng().random(x.shape) > 0.2)


class TransposedDense(Dense):                                    # mistake 5
    def backward(self, dout, need_input_grad=True):
        x = self._cache
        self.grads["W"][...] = x.T @ dout                       # (in, out): should be δᵀA, (out, in)
        return dout @ self.params["W"]


x5 = rng.standard_normal((N, 3))
for name, layer, x in [("accumulates", AccumulatingSwish(3), x5),
                       ("float32", Dense(3, 2, rng=0), x5.astype(np.float32)),        # mistake 2 (the default dtype)
                       ("mutates its input", InPlaceSwish(3), x5),
                       ("random", RandomSwish(3), x5),
                       ("transposed", TransposedDense(3, 2, rng=0, dtype=np.float64), x5)]:
    rep = check_layer(layer, x)
    print(f"{name:<18} {'OK    ' if rep.ok else 'FAILED'}  {rep.diagnoses[0]['message'][:100] if rep.diagnoses else ''}")

# %% [markdown]
# The float32 layer *passes* (it is correct) with a warning; the other four fail, each with its diagnosis. The same
# checks back the coursework grader: `python -m minigrow grade --list` lists the exercises (dense, ReLU, softmax
# cross-entropy, residual block, Conv2D, max-pool, batch norm, and the three methods' formulas),
# `python -m minigrow grade --new dense` writes a stub with the formula and TODOs, and
# `python -m minigrow grade dense.py` grades it: gradient checks, the contract checks above, a comparison with
# minigrow's own layer on hidden inputs, and a verdict with the first thing to look at.

# %% [markdown]
# ### Property-testing it with hypothesis
#
# One input proves little. `minigrow.strategies` has hypothesis strategies that draw small float64 arrays with
# bounded elements (away from kinks when asked) and `assert_layer_gradients`, which raises with the report when the
# check fails. In a test file (run with `python -m pytest`):
#
# ```python
# from hypothesis import given
# from minigrow import strategies as mst
#
# @given(x=mst.batches(n_features=3, bound=3.0), beta=mst.arrays((3,), bound=2.0))
# def test_swish_gradients(x, beta):
#     layer = Swish(3)
#     layer.params["beta"][:] = beta
#     mst.assert_layer_gradients(layer, x)
# ```
#
# The same test, run here by hand on a few drawn examples (if hypothesis is installed):

# %%
try:
    from hypothesis import given, settings
    from minigrow import strategies as mst
except ImportError:
    print("hypothesis is not installed: pip install 'minigrow[test]'")
else:
    n_checked = []

    @settings(max_examples=10 if QUICK else 50, deadline=None, derandomize=True)
    @given(x=mst.batches(n_features=3, bound=3.0), beta=mst.arrays((3,), bound=2.0))
    def test_swish_gradients(x, beta):
        layer = Swish(3)
        layer.params["beta"][:] = beta
        mst.assert_layer_gradients(layer, x)
        n_checked.append(1)

    test_swish_gradients()
    print(f"Swish: gradient check passed on {len(n_checked)} drawn examples")
