# %% [markdown]
# # Tutorial 04 — Convolution by hand
#
# All three papers' headline experiments are on convolutional networks: Bernoulli gates on the *filters* of
# LeNet-5, conflicting layers of conv VGG/ResNets, virtual identity convolutions in VGG-style nets. This tutorial
# derives the layers they are built from — convolution, pooling, batch normalisation — next to the code that
# implements them, and checks every gradient numerically:
#
# | section | code |
# |---|---|
# | 1. the convolution as a matrix product (im2col) | `minigrow/layers/conv.py` (`Conv2D.forward`) |
# | 2. its backward: ∂L/∂W a correlation, ∂L/∂x a full convolution with the flipped kernel | `Conv2D.backward` |
# | 3. max-pooling and its ties | `minigrow/layers/pool.py` |
# | 4. batch normalisation's backward, training and eval mode | `minigrow/layers/norm.py` |
# | 5. check your own conv layer | `minigrow/gradcheck.py` |
# | 6. LeNet-5 on MNIST | `minigrow/convnets.py` (`lenet5`) |
#
# Nothing here comes from the three papers; it is standard calculus (CS231n's notes derive the same). Images are
# **NCHW**, batch first: `x[n, c, i, j]` is channel c of sample n at row i, column j. Like every deep-learning
# library, "convolution" means cross-correlation (the kernel is not flipped in the forward pass).
#
# Run: `python tutorials/04_convolution_by_hand.py` (about a minute; it writes no files), or with `MINIGROW_QUICK=1`
# (seconds).

# %%
import os
import sys
import time
from pathlib import Path

import numpy as np

# The checkout this tutorial belongs to, found the same way from a script or a notebook run in any folder (its
# committed results are read from ROOT/docs/results).
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minigrow" / "__init__.py").is_file()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIGROW_QUICK") == "1"

from minigrow.gradcheck import check_layer, rel_error                          # noqa: E402
from minigrow.layers import BatchNorm2d, Conv2D, Layer, MaxPool2d, register_layer   # noqa: E402

rng = np.random.default_rng(0)      # every random draw in this tutorial comes from this Generator

# %% [markdown]
# ## 1. The convolution as a matrix product
#
# A conv layer with kernel $W \in \mathbb R^{C_\text{out}\times C_\text{in}\times k_h\times k_w}$, bias $b$,
# stride $s$ and zero padding computes, for the padded input $x_\text{pad}$,
#
# $$\text{out}[n,o,i,j] = b_o + \sum_{c,p,q} W[o,c,p,q]\; x_\text{pad}[n,c,\,i s + p,\,j s + q],$$
#
# with output size $H_o = \lfloor (H + 2p_h - k_h)/s \rfloor + 1$. Written as loops it is six nested sums — the
# **oracle** below, obviously right and hopelessly slow:

# %%
def conv_naive(x, W, b, stride=1, pad=0):
    """out[n,o,i,j] = b[o] + Σ_{c,p,q} W[o,c,p,q] x_pad[n,c,i·s+p,j·s+q] — loops, for checking only."""
    N, C, H, Wd = x.shape
    Co, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (Wd + 2 * pad - kw) // stride + 1
    out = np.zeros((N, Co, Ho, Wo))
    for n in range(N):
        for o in range(Co):
            for i in range(Ho):
                for j in range(Wo):
                    patch = xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[n, o, i, j] = b[o] + np.sum(W[o] * patch)
    return out


# %% [markdown]
# **im2col.** Every output position $m = (n, i, j)$ reads one patch of $C_\text{in} k_h k_w$ numbers. Write the
# patches as the rows of a column matrix $\text{cols} \in \mathbb R^{M \times K}$ ($M = N H_o W_o$,
# $K = k_h k_w C_\text{in}$) and the filters as the rows of $W_r \in \mathbb R^{C_\text{out}\times K}$; then the
# whole batch is **one matrix product**
#
# $$\text{out} = \text{cols}\; W_r^\top + b \qquad (M \times C_\text{out}).$$
#
# `cols` need not be built by loops: a *strided view* of the padded input has shape $(N, H_o, W_o, k_h, k_w, C)$
# with entry $[n,i,j,p,q,c] = x_\text{pad}[n, i s+p, j s+q, c]$ — no copy — and one `np.ascontiguousarray` makes it
# the column matrix. minigrow keeps the input channels-last (NHWC) inside the layer because that made the copy
# and the product faster on our machine (the timings are in `conv.py`'s docstring); the user still sees NCHW.

# %%
from numpy.lib.stride_tricks import as_strided   # noqa: E402


def im2col(x, kh, kw, stride=1, pad=0):
    """Rows (n,i,j), columns (p,q,c): the patches of the NCHW input x as one matrix (channels-last inside)."""
    xh = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))).transpose(0, 2, 3, 1)   # NHWC
    N, Hp, Wp, C = xh.shape
    Ho, Wo = (Hp - kh) // stride + 1, (Wp - kw) // stride + 1
    s0, s1, s2, s3 = xh.strides
    view = as_strided(xh, (N, Ho, Wo, kh, kw, C), (s0, s1 * stride, s2 * stride, s1, s2, s3), writeable=False)
    return np.ascontiguousarray(view).reshape(N * Ho * Wo, kh * kw * C), (N, Ho, Wo)


x = rng.standard_normal((2, 3, 7, 6))
layer = Conv2D(3, 4, 3, stride=2, padding=1, rng=rng, dtype=np.float64)
W, b = layer.params["W"], layer.params["b"]
cols, (N, Ho, Wo) = im2col(x, 3, 3, stride=2, pad=1)
Wr = W.transpose(0, 2, 3, 1).reshape(4, -1)                      # W_r[o, (p,q,c)] = W[o,c,p,q]
out_im2col = (cols @ Wr.T + b).reshape(N, Ho, Wo, 4).transpose(0, 3, 1, 2)
ref = conv_naive(x, W, b, stride=2, pad=1)
print("cols:", cols.shape, " out:", ref.shape)
print("im2col vs loops  :", np.abs(out_im2col - ref).max())
print("Conv2D vs loops  :", np.abs(layer.forward(x) - ref).max())

# %% [markdown]
# ## 2. The backward pass
#
# Let $\delta = \partial L/\partial\,\text{out}$. Because the forward pass is $\text{out} = \text{cols}\,W_r^\top + b$,
# the matrix rules of the dense layer (tutorial 00) apply at once:
#
# $$\frac{\partial L}{\partial W_r} = \delta^\top \text{cols},\qquad
#   \frac{\partial L}{\partial b_o} = \sum_{n,i,j}\delta[n,o,i,j],\qquad
#   \frac{\partial L}{\partial\,\text{cols}} = \delta\, W_r .$$
#
# Read back in index form, the weight gradient is a **correlation of δ with the input**:
#
# $$\frac{\partial L}{\partial W[o,c,p,q]} = \sum_{n,i,j} \delta[n,o,i,j]\; x_\text{pad}[n,c,\,is+p,\,js+q].$$
#
# The input gradient collects, for every input pixel, the contributions of every output position whose patch
# covered it: $\partial L/\partial x_\text{pad}[n,c,u,v] = \sum_{o,p,q:\,u = is+p,\,v = js+q} W[o,c,p,q]\,
# \delta[n,o,i,j]$. For stride 1 substitute $i = u - p$: it is $\sum_{o,p,q} W[o,c,p,q]\,\delta[n,o,u-p,v-q]$,
# a **full convolution of δ with the kernel flipped** in both spatial axes (δ zero-padded by $k-1$). Either way
# it is "col2im": scatter each row of $\partial L/\partial\,\text{cols}$ back onto the patch it came from, adding
# where patches overlap. `Conv2D.backward` does that with one vectorised add per kernel offset $(p, q)$ — $k_h k_w$
# adds of strided slices, no per-sample loop and no `np.add.at`.
#
# First the flipped-kernel identity, checked for stride 1 against the layer:

# %%
x1 = rng.standard_normal((2, 3, 6, 5))
conv1 = Conv2D(3, 4, 3, stride=1, padding=0, rng=rng, dtype=np.float64)
out1 = conv1.forward(x1, True)
delta = rng.standard_normal(out1.shape)
dx_layer = conv1.backward(delta)
# full convolution of δ with the flipped kernel: δ padded by k − 1, kernel W[o, c, ::-1, ::-1] with o ↔ c swapped
W_flip = conv1.params["W"][:, :, ::-1, ::-1].transpose(1, 0, 2, 3)          # (C_in, C_out, k, k)
dx_full = conv_naive(delta, W_flip, np.zeros(3), stride=1, pad=2)
print("∂L/∂x = full conv of δ with the flipped kernel:", np.abs(dx_layer - dx_full).max())
dW_corr = np.einsum("noij,ncijpq->ocpq", delta,
                    np.lib.stride_tricks.sliding_window_view(x1, (3, 3), axis=(2, 3)))
print("∂L/∂W = correlation of δ with the input      :", np.abs(conv1.grads["W"] - dW_corr).max())

# %% [markdown]
# And every gradient against centred differences (float64; `check_layer` uses the scalar $f = \sum \text{out}
# \odot u$ with a fixed random $u$, so $\partial f/\partial\,\text{out} = u$) — with a stride and padding that do not
# tile the input, where index bugs hide:

# %%
for stride, pad in [(1, 0), (2, 1), (3, 2)]:
    conv = Conv2D(2, 3, 3, stride=stride, padding=pad, rng=rng, dtype=np.float64)
    rep = check_layer(conv, rng.standard_normal((2, 2, 7, 8)))
    print(f"stride {stride}, padding {pad}: max relative error {rep.max_error:.1e}  {'ok' if rep.ok else 'FAILED'}")

# %% [markdown]
# ## 3. Max-pooling and its ties
#
# A max-pool window passes on its largest value; the gradient flows back to that one position and is zero
# elsewhere in the window — the max is a *selection*, so its derivative is an indicator. When the windows tile the
# input (stride = kernel, sizes divisible) the windows are a reshape, `(N, C, H_o, k, W_o, k)`, and no pixel is in
# two windows.
#
# **Ties.** With several maxima in a window the function is not differentiable there; any convex combination of
# the candidate indicators is a valid subgradient. minigrow follows PyTorch: the whole gradient goes to the
# *first* maximum in row-major window order. Finite differences cannot check a tie (a nudge up selects one
# entry, a nudge down another), so gradient checks draw inputs away from ties; the tie rule is tested exactly:

# %%
pool = MaxPool2d(2)
xt = np.array([[[[1., 3., 0., 0.],
                 [3., 2., 0., 0.],
                 [5., 4., 1., 2.],
                 [4., 5., 2., 1.]]]])
pool.forward(xt, True)
print(pool.backward(np.ones((1, 1, 2, 2)))[0, 0])
print("away from ties:", check_layer(MaxPool2d(2), rng.permutation(64).reshape(1, 1, 8, 8) * 0.1 + 0.0).ok)

# %% [markdown]
# In the first window the 3 at (0, 1) comes first, so it gets the gradient and the 3 at (1, 0) gets none; the
# all-zero window gives its gradient to its first entry.
#
# ## 4. Batch normalisation
#
# Per channel $c$, over the $M = N H W$ values of the batch:
#
# $$\mu = \tfrac1M\textstyle\sum x,\quad \sigma^2 = \tfrac1M\sum (x-\mu)^2,\quad
#   \hat x = (x-\mu)/\sqrt{\sigma^2+\varepsilon},\quad y = \gamma \hat x + \beta .$$
#
# The parameters are easy: $\partial L/\partial\beta = \sum g$, $\partial L/\partial\gamma = \sum g\hat x$ with
# $g = \partial L/\partial y$. The input is harder, because every $x_k$ moves $\mu$ and $\sigma$ and so every
# $\hat x_i$ of its channel. With $\partial\mu/\partial x_k = 1/M$ and $\partial\sigma/\partial x_k =
# \hat x_k/M$, one gets $\partial\hat x_i/\partial x_k = (\delta_{ik} - 1/M)/\sigma - \hat x_i\hat x_k/(M\sigma)$
# and, summing,
#
# $$\frac{\partial L}{\partial x_k} = \frac{\gamma/\sigma}{M}\Big(M g_k - \sum g - \hat x_k \sum g\hat x\Big).$$
#
# The gradient has no component along shifting a channel's batch — which the normalisation removes:
# $\sum_k \partial L/\partial x_k = 0$. Along scaling it has almost none: since $\sum \hat x^2 = M\sigma_B^2/
# (\sigma_B^2+\varepsilon)$, $\sum_k \hat x_k\,\partial L/\partial x_k = \frac{\gamma}{\sigma}\,
# \frac{\varepsilon}{\sigma_B^2+\varepsilon}\sum g\hat x$ — zero but for the ε. In **eval
# mode** μ and σ are the running statistics (constants), the layer is the affine map
# $y = \gamma (x - r_\mu)/\sigma_r + \beta$ and $\partial L/\partial x = (\gamma/\sigma_r)\,g$. The running
# statistics follow PyTorch: $r \leftarrow (1-m)\,r + m\cdot\text{stat}$ with $m = 0.1$ and the *unbiased* batch
# variance. The code is `minigrow/layers/norm.py`, with the same symbols:

# %%
bn = BatchNorm2d(3, dtype=np.float64)
bn.params["gamma"][:] = rng.uniform(0.5, 2.0, 3)
bn.params["beta"][:] = rng.standard_normal(3)
xb = rng.standard_normal((4, 3, 5, 5)) * 2 + 1
for train in (True, False):
    rep = check_layer(bn, xb, train=train)
    print(f"batch norm, {'training' if train else 'eval'} mode: max relative error {rep.max_error:.1e}")
bn.forward(xb, True)
dx = bn.backward(g := rng.standard_normal(xb.shape))
var_b = xb.var(axis=(0, 2, 3))                                   # σ_B², biased, per channel
sigma = np.sqrt(var_b + 1e-5)
xhat = (xb - xb.mean(axis=(0, 2, 3), keepdims=True)) / sigma[None, :, None, None]
print("Σ ∂L/∂x per channel        :", dx.sum(axis=(0, 2, 3)))
print("Σ x̂ ∂L/∂x per channel      :", (xhat * dx).sum(axis=(0, 2, 3)))
print("(γ/σ)·ε/(σ_B²+ε)·Σ g x̂     :", bn.params["gamma"] / sigma * 1e-5 / (var_b + 1e-5) * (g * xhat).sum(axis=(0, 2, 3)))

# %% [markdown]
# ## 5. Check your own conv layer
#
# Coursework often asks for a layer the library does not have. Here is a **depthwise** convolution — one
# $k\times k$ filter per channel, no mixing across channels — written the slow, obvious way with a loop over the
# kernel offsets (fine for a check; the point is the backward). It follows the layer contract
# (`minigrow/layers/base.py`): the cache is private, `backward` *overwrites* `grads`.

# %%
@register_layer
class DepthwiseConv(Layer):
    """out[n,c,i,j] = Σ_{p,q} K[c,p,q] x[n,c,i+p,j+q]  (stride 1, no padding)."""

    def __init__(self, channels, k=3, rng=None, dtype=np.float64):
        super().__init__()
        self.channels, self.k = channels, k
        rng = np.random.default_rng(0 if rng is None else rng)
        self.params["K"] = rng.standard_normal((channels, k, k)).astype(dtype) / k
        self._init_grads()

    def config(self):
        return {"channels": self.channels, "k": self.k}

    def forward(self, x, train=True):
        k, (N, C, H, W) = self.k, x.shape
        out = np.zeros((N, C, H - k + 1, W - k + 1), dtype=x.dtype)
        for p in range(k):
            for q in range(k):
                out += self.params["K"][None, :, p, q, None, None] * x[:, :, p:p + H - k + 1, q:q + W - k + 1]
        self._cache = x
        return out

    def backward(self, dout, need_input_grad=True):
        x, k = self._cache, self.k
        Ho, Wo = dout.shape[2:]
        dx = np.zeros_like(x)
        for p in range(k):
            for q in range(k):
                window = x[:, :, p:p + Ho, q:q + Wo]
                self.grads["K"][:, p, q] = np.sum(dout * window, axis=(0, 2, 3))    # ∂L/∂K[c,p,q]
                dx[:, :, p:p + Ho, q:q + Wo] += self.params["K"][None, :, p, q, None, None] * dout
        return dx


print(check_layer(DepthwiseConv(3, rng=1), rng.standard_normal((2, 3, 6, 6))))

# %% [markdown]
# Try it: break the backward (drop the `+=` for `=`, or swap `p` and `q` in one line) and run the check again —
# the report names the array that is wrong and how wrong.
#
# ## 6. LeNet-5 on MNIST
#
# The pruning papers' conv net, "LeNet-5-Caffe": conv 5×5 (20) → max-pool → conv 5×5 (50) → max-pool → dense 500
# → dense 10. Trained here with Adam for one epoch (quick mode: a few hundred images; the benchmark
# `bench/conv_epoch.py` times full epochs against PyTorch):

# %%
import minigrow as mg                              # noqa: E402
from minigrow.data import load_mnist               # noqa: E402
from minigrow.convnets import lenet5               # noqa: E402

d = load_mnist(layout="nchw")
n_train, n_test = (1000, 500) if QUICK else (20000, 10000)
net = lenet5("caffe", rng=0)
tr = mg.Trainer(net, "ce", mg.Adam(1e-3), batch_size=128, rng=0, progress=False)
t0 = time.perf_counter()
tr.fit(d.X_train[:n_train], d.y_train[:n_train], 1, d.X_test[:n_test], d.y_test[:n_test])
print(f"{n_train} images, 1 epoch, {time.perf_counter() - t0:.1f} s: test accuracy "
      f"{tr.history.epochs[-1]['test_acc']:.4f}")
print(net.summary())          # multiply-adds per image (a conv layer counts them for the last input size it saw)

# %%
try:
    import matplotlib.pyplot as plt
except ImportError:                                 # plots are optional: pip install matplotlib
    plt = None
if plt is not None:
    K = net.layers[0].params["W"][:, 0]
    fig, axes = plt.subplots(2, 10, figsize=(10, 2.2))
    for ax, k in zip(axes.ravel(), K):
        ax.imshow(k, cmap="gray")
        ax.axis("off")
    fig.suptitle("the 20 first-layer filters after one epoch")
    plt.show()
