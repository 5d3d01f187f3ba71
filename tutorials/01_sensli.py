# %% [markdown]
# # Tutorial 01 — Sensitivity-based layer insertion (SensLI)
#
# Kreis, Herberg, Köhne, Schiela, Herzog, *Sensitivity-Based Layer Insertion for Residual and Feedforward Neural
# Networks*, arXiv 2311.15995. Package: `minigrow/methods/sensli/`; its first module, `formulas.py`, holds S1–S7 as functions with the
# symbols used here. Reproduction: `minigrow/experiments/sensli.py`, `python -m minigrow reproduce sensli A`.
# Convolutional networks (part C, section 8): `minigrow/methods/sensli/conv.py`, formulas (C1)–(C6) first.
#
# **What comes from where.** The paper body was not available to us. The method (virtual layers, the constrained
# problem, the shadow-price criterion, the candidate forms, the training loop and the experimental settings) is
# taken from the paper's abstract and the authors' code as summarised in the project's method note. The two
# *closed forms* below (S4, S5) and the finite-difference analysis at the ReLU kink are **derived** here and checked
# numerically against the explicit extended network — they are not quoted from the paper.
#
# Run as a script: `python tutorials/01_sensli.py` (writes its figures to `runs/tutorials/` in the current
# folder), or
# `MINIGROW_QUICK=1 python tutorials/01_sensli.py` for a few-second run that writes nothing.

# %%
import copy
import json
import os
import sys
from pathlib import Path

import numpy as np

# The checkout this tutorial belongs to, found the same way from a script or a notebook run in any folder (its
# committed results are read from ROOT/docs/results); the figures drawn here go to runs/tutorials/ in the current
# folder, never into the repository.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minigrow" / "__init__.py").is_file()), HERE)
sys.path.insert(0, str(ROOT))
OUT = Path.cwd() / "runs" / "tutorials"
QUICK = os.environ.get("MINIGROW_QUICK") == "1"

from minigrow.methods import sensli as S                                   # noqa: E402
from minigrow.data import two_spirals                              # noqa: E402
from minigrow.gradcheck import numerical_gradient, rel_error       # noqa: E402
from minigrow.losses import SoftmaxCrossEntropy                    # noqa: E402
from minigrow.network import mlp, residual_mlp                     # noqa: E402
from minigrow.optim import SGD                                     # noqa: E402
from minigrow.train import Trainer                                 # noqa: E402

d = two_spirals(rng=0, dtype=np.float64)          # 450 training / 150 test points, 2 classes
X, y = d.X_train, d.y_train
print(d)

# %% [markdown]
# ## 1. A layer that is there but does nothing: the constrained problem
#
# Take the small network with parameters θ and imagine it already contains extra ("virtual") parameters ϑ,
# placed so that at ϑ = ϑ₀ the network computes exactly the same function. Training the small network is then
#
# $$ \min_{\theta,\vartheta} L(\theta,\vartheta) \quad\text{subject to}\quad \vartheta = \vartheta_0 . \tag{S1}$$
#
# The Lagrangian is $\mathcal L(\theta,\vartheta,\lambda) = L(\theta,\vartheta) + \lambda^\top(\vartheta-\vartheta_0)$.
# At any point we reach while training the small net, stationarity in ϑ fixes the multiplier
#
# $$ 0 = \nabla_\vartheta \mathcal L = \nabla_\vartheta L(\theta,\vartheta_0) + \lambda
#    \;\Longrightarrow\; \lambda = -\nabla_\vartheta L(\theta,\vartheta_0). \tag{S2}$$
#
# λ is the *shadow price* of the constraint: releasing it by a small step $t$ in the best direction changes the loss
# by $-t\,\|\lambda\| + O(t^2)$. SensLI compares the candidates' ‖λ_p‖ and inserts the one whose constraint is
# "most expensive" to keep. Nothing has to be trained or even inserted to compute λ: it is a gradient at ϑ₀.
#
# ## 2. Where the virtual layers go (S3)
#
# *Identity form* (ReLU FNN): after hidden layer $l$, $\tilde a_l = \sigma(V_l a_l + c_l)$ with $V_l = I$,
# $c_l = 0$. Since $a_l = \sigma(z_l) \ge 0$ and $\sigma(\sigma(z)) = \sigma(z)$ for ReLU, the output is unchanged.
#
# *Residual form*: $h \mapsto h + W_2\,\sigma(W_1 h + b_1)$ with $W_1 = 0.8 I$, $b_1 = 0$, $W_2 = 0$ — unchanged
# for any σ because $W_2 = 0$.

# %%
small = mlp([2, 5, 4, 2], "relu", rng=1, dtype=np.float64)
Trainer(small, "ce", SGD(0.2), batch_size=None, rng=0, progress=False, dtype=np.float64).fit(X, y, 20 if QUICK else 200)
cands = S.candidates(small)
for c in cands:
    print(c.describe())

ext, _, index = S.extended_network(small)      # every candidate inserted at ϑ0 and frozen
print(ext)
print("extended net computes the same outputs bit for bit:",
      np.array_equal(ext.predict_logits(X), small.predict_logits(X)))

# %% [markdown]
# ## 3. The closed form for ReLU networks (S4) — derived
#
# Write the virtual layer as $\tilde z_l = V_l a_l + c_l$, $\tilde a_l = \sigma(\tilde z_l)$, followed by
# $z_{l+1} = W_{l+1}\tilde a_l + b_{l+1}$. With $\delta_{l+1} = \partial L/\partial z_{l+1}$ the chain rule gives,
# per sample,
#
# $$ \tilde\delta_l = \frac{\partial L}{\partial \tilde z_l} = \sigma'(\tilde z_l) \odot W_{l+1}^\top \delta_{l+1},
#    \qquad \frac{\partial L}{\partial V_l} = \operatorname{mean}_n \tilde\delta_{l,n} a_{l,n}^\top .$$
#
# At $V_l = I$, $c_l = 0$ we have $\tilde z_l = a_l = \sigma(z_l)$. For an active unit $z_l > 0$ and
# $\sigma'(\tilde z_l) = 1 = \sigma'(z_l)$. For an inactive unit $z_l \le 0$, so $\tilde z_l = 0$ sits *exactly on the
# kink*, and with the convention $\sigma'(0) = 0$ we get $\sigma'(\tilde z_l) = 0 = \sigma'(z_l)$. Hence
# $\tilde\delta_l = \sigma'(z_l) \odot W_{l+1}^\top\delta_{l+1} = \delta_l$, the ordinary backprop signal at $z_l$ of the
# **small** network, and
#
# $$ \frac{\partial L}{\partial V_l} = \operatorname{mean}_n \delta_{l,n}\, a_{l,n}^\top, \qquad
#    \frac{\partial L}{\partial c_l} = \operatorname{mean}_n \delta_{l,n} = \frac{\partial L}{\partial b_l}. \tag{S4}$$
#
# As a function: `minigrow.methods.sensli.formulas.identity_form_gradients(delta, a)` (one batch's sums; δ already
# carries the 1/N of the mean loss). `closed_form_sensitivities` calls it with `delta` = what the ReLU layer's
# backward returns and `a` = the layer's output $a_l$ (from `forward_all`).
# Only a forward pass and an input-gradient backward of the small net are needed. The oracle
# `extended_sensitivities` instead inserts everything and backpropagates through the bigger network.

# %%
cf = S.closed_form_sensitivities(small, X, y)
ex = S.extended_sensitivities(small, X, y)
for p in range(len(cands)):
    print(f"p={p}: score closed form {cf.scores[p]:.6e}, extended network {ex.scores[p]:.6e}, "
          f"max |ΔG| = {np.abs(cf.grads[p] - ex.grads[p]).max():.1e}")

# %% [markdown]
# ## 4. Finite differences at the kink: why central differences fail
#
# Check entry $(i,j)$ of $\partial L/\partial V_l$ by perturbing the extended network. If unit $i$ of the virtual
# layer is inactive for sample $n$ ($\tilde z_{l,i} = 0$), then $V_{ij} \to V_{ij} + \varepsilon$ gives
# $\tilde z_{l,i} = \varepsilon a_{l,j}$: for $\varepsilon > 0$ the unit switches **on** and the loss moves with slope
# $(W_{l+1}^\top\delta_{l+1})_i\,a_{l,j}$; for $\varepsilon < 0$ it stays off and the slope is 0. $L$ has a kink at
# $V = I$: its left and right derivatives differ.
#
# * the backward one-sided difference $(L(V) - L(V - \varepsilon E_{ij}))/\varepsilon$ is the **left** derivative —
#   exactly what $\sigma'(0) = 0$ computes, so it matches (S4) up to $O(\varepsilon)$;
# * the forward difference is the right derivative and disagrees;
# * the central difference is the *average* of left and right derivatives and disagrees too.
#
# (CS231n's warning about "kinks" is usually about samples that happen to sit near 0; here *every* inactive unit
# sits exactly on the kink, by construction.)

# %%
loss = SoftmaxCrossEntropy()
V = ext.layers[index[0]].params["W"]


def L_ext():
    return loss.forward(ext.forward(X, train=False), y)


fd = {m: numerical_gradient(L_ext, V, h=1e-7 if m != "central" else 1e-5, method=m)
      for m in ("backward", "central", "forward")}
for m, g in fd.items():
    print(f"{m:>8} differences vs closed form: rel. error {rel_error(cf.grads[0], g):.1e}")

# %% [markdown]
# ## 5. Residual networks (S5) — derived
#
# For $h \mapsto h + W_2 s$, $s = \sigma(W_1 h + b_1)$, with $g = \partial L/\partial(\text{block output})$:
# $\partial L/\partial W_2 = \operatorname{mean}_n g_n s_n^\top$ and
# $\partial L/\partial W_1 = \operatorname{mean}_n (\sigma'(z_n) \odot W_2^\top g_n) h_n^\top$. At $W_2 = 0$ the
# second vanishes (and so does $\partial L/\partial b_1$): only $W_2$ has a sensitivity. At $W_1 = 0.8I$, $b_1 = 0$,
# $s = \sigma(0.8h)$ and the block output equals $h$, so $g$ is the gradient of the small network's residual stream
# at that point:
#
# $$ \frac{\partial L}{\partial W_2} = \operatorname{mean}_n g_{l,n}\,\sigma(0.8\,h_{l,n})^\top . \tag{S5}$$
#
# As a function: `formulas.residual_form_gradient(g, h, activation)`. Nothing sits on a kink here (tanh is smooth
# and $W_2$ enters linearly), so central differences work.

# %%
res = residual_mlp(2, 3, 2, 2, "tanh", rng=0, dtype=np.float64)
Trainer(res, "ce", SGD(0.1), batch_size=None, rng=0, progress=False, dtype=np.float64).fit(X, y, 20 if QUICK else 200)
rcf = S.closed_form_sensitivities(res, X, y)
rext, rcands, rindex = S.extended_network(res)


def L_rext():
    return loss.forward(rext.forward(X, train=False), y)


for c in rcands:
    W2 = rext.layers[rindex[c.position]].params["W2"]
    num = numerical_gradient(L_rext, W2, h=1e-5, method="central")
    print(f"{c.describe()}: score {rcf.scores[c.position]:.4e}, central differences rel. error "
          f"{rel_error(rcf.grads[c.position], num):.1e}")

# %% [markdown]
# ## 6. Score, selection and insertion (S6, S7)
#
# Over one pass through the training data in B minibatches (no updates), average the gradients *first*:
# $G_p = \frac1B\sum_b \nabla_{V_p} L_b$, then $s_p = \|G_p\|_F^2$ (weights only; `normalise=True` divides by the
# number of entries so that candidates of different width compare) — `formulas.pass_average`, `formulas.score`.
# `select(scores, "abs_max")` (`formulas.select`, S7) takes the first argmax. Insertion keeps the output bit-identical and leaves the optimiser state of every existing parameter alone
# (it lives on the layers); the new layer starts with empty state.

# %%
mb = S.closed_form_sensitivities(small, X, y, batch_size=45)
print("scores (batch 45, averaged before squaring):", mb.scores, "-> insert at p =", S.select(mb.scores, "abs_max"))
grown = copy.deepcopy(small)
S.insert_candidate(grown, cands[S.select(mb.scores, "abs_max")])
print(grown.summary())
print("outputs bit-identical after insertion:", np.array_equal(grown.predict_logits(X), small.predict_logits(X)))

# %% [markdown]
# Identity insertion after LeakyReLU or tanh is refused: there $\sigma(\sigma(z)) \ne \sigma(z)$ and the output
# would change. The residual form works for any σ.

# %%
leaky = mlp([2, 5, 2], "leaky_relu", rng=0, dtype=np.float64)
forced = copy.deepcopy(leaky)
forced.insert(2, *S.identity_layers(5, "leaky_relu", np.float64))
print("LeakyReLU, identity layer forced in: max output change",
      np.abs(forced.predict_logits(X) - leaky.predict_logits(X)).max())
try:
    S.candidates(leaky, form="identity")
except ValueError as e:
    print("refused:", str(e)[:90], "…")

# %% [markdown]
# ## 7. The insertion loop and the experiments
#
# `sensli_train(model, X, y, epochs=[450, 1400], …)` trains 450 epochs, runs the sensitivity pass, inserts,
# and trains 1400 more epochs with a fresh optimiser (sensli.md §5). It records the loss per epoch, the scores,
# the chosen position, the loss just before and after the insertion, and the cost of each phase and of the pass
# in multiply-adds and seconds. Below: setting A (ReLU FNN [5], full-batch GD lr 0.2) for a few seeds, against the
# same network without insertion (same initialisation) and against [5, 5] trained from the start.

# %%
from minigrow.experiments.sensli import SETTINGS, plot_setting, run_variant, summarise   # noqa: E402

n_seeds = 2 if QUICK else 8
dA = two_spirals(rng=0, dtype=np.float32)
resA = {v: [run_variant(spec, dA, s, quick=QUICK) for s in range(n_seeds)] for v, spec in SETTINGS["A"]["variants"].items()}
T = len(resA["small"][0]["train_loss"])
sumA = summarise(resA, [T])
for v, r in sumA.items():
    w = r.get("wins_vs_small", {}).get(str(T))
    print(f"{v:>7}: loss at epoch {T} {r['loss_at'][str(T)]['mean']:.4f} ± {r['loss_at'][str(T)]['std']:.4f}, "
          f"test error {r['test_error']['mean']:.3f}, {r['train_macs'] + r['sensitivity_macs']:.3g} MACs"
          + ("" if w is None else f", beats no-insertion in {w:.0%} of seeds"))
if not QUICK:
    plot_setting("A", SETTINGS["A"], resA, OUT / "sensli_tutorial_A.png")

# %% [markdown]
# The full reproduction over 30 seeds (settings A–F) is run by `python -m minigrow reproduce sensli A`
# (… `F`); it writes `docs/results/sensli_<X>.json` and `docs/figures/sensli_<X>.png`. The cell below prints the
# headline numbers from those files if they exist — see `docs/sensli.md` for the discussion, including where our
# numbers do not support the paper's claims.
#
# ![setting A](../docs/figures/sensli_A.png)
# ![setting B](../docs/figures/sensli_B.png)
# ![setting E](../docs/figures/sensli_E.png)

# %%
for X_ in "ABCDEF":
    f = ROOT / "docs" / "results" / f"sensli_{X_}.json"
    if not f.exists():
        continue
    r = json.loads(f.read_text())
    e = str(max(int(k) for k in next(iter(r["summary"].values()))["loss_at"]))
    line = ", ".join(f"{v} {s['loss_at'][e]['mean']:.4f}" for v, s in r["summary"].items())
    print(f"{X_} ({r['seeds']} seeds): training loss at epoch {e}: {line}")

# %% [markdown]
# ## 8. Part C: convolutional networks (issue 15) — derived
#
# The authors' second code release inserts virtual identity *convolutions* into VGG-style nets (sensli.md §8).
# Module: `minigrow/methods/sensli/conv.py` (imported as `SC`); its docstring holds the formulas (C1)–(C6) with the
# symbols used here. Experiments: `python -m minigrow.experiments.sensli_conv` (see `docs/sensli.md`).
#
# **(C1) The blocks.** Block $l$ of the net is $z_l = \mathrm{Conv}_l(x_l)$, $a_l = \mathrm{ReLU}(z_l)$,
# $x_{l+1} = \mathrm{MaxPool}(a_l)$, with $a_l \in \mathbb R^{N\times m\times H\times W}$ (batch first, NCHW).
# $p = (i, j)$ is a pixel, $(u, v)$ a kernel tap at offset $(u-r, v-r)$, $r = k/\!/2$ ($r = 1$ for 3×3).
#
# **(C2) The virtual layer** sits between the ReLU and the pooling:
# $\hat z_l = K_l \star a_l + c_l$, $\tilde a_l = \mathrm{ReLU}(\hat z_l)$, a $k\times k$ "same" convolution with
# the *identity kernel* $K_l[o,c,u,v] = 1[o=c]\,1[(u,v)=(r,r)]$ (zero except the centre tap, which is $I_m$) and
# $c_l = 0$. It preserves the function bit for bit: the centre tap copies $a_l$ ($1\cdot a + \sum 0\cdot a' + 0 = a$
# is exact in floating point), and $\mathrm{ReLU}(a_l) = a_l$ because $a_l \ge 0$.
#
# **(C3) The closed form.** In the extended net the weight gradient of this conv is the ordinary conv weight
# gradient
#
# $$ \frac{\partial L}{\partial K_l[o,c,u,v]} = \sum_n \sum_p \hat\delta_l[n,o,p]\; a_{l,\mathrm{pad}}[n,c,p+(u-r,v-r)],
#    \qquad \hat\delta_l = \frac{\partial L}{\partial \hat z_l} = \frac{\partial L}{\partial \tilde a_l} \odot 1[\hat z_l > 0].$$
#
# At $K_l = I$, $c_l = 0$ two things hold. Everything after $\tilde a_l$ sees the values the small net sees after
# $a_l$, so $\partial L/\partial \tilde a_l = \partial L/\partial a_l$. And $\hat z_l = a_l = \mathrm{ReLU}(z_l)$, so
# $1[\hat z_l > 0] = 1[z_l > 0]$ — with the convention $\mathrm{ReLU}'(0) = 0$, which matters because every inactive
# unit sits exactly on the kink $\hat z = 0$ (as in section 4). Together, $\hat\delta_l = \partial L/\partial a_l
# \odot 1[z_l>0] = \delta_l$, the ordinary backprop signal at the pre-activation of conv $l$ in the **small** net:
#
# $$ G_l[o,c,u,v] = \operatorname{mean}_n \sum_p \delta_l[n,o,p]\; a_{l,\mathrm{pad}}[n,c,p+(u-r,v-r)],
#    \qquad \frac{\partial L}{\partial c_l[o]} = \operatorname{mean}_n \sum_p \delta_l[n,o,p]. \tag{C3}$$
#
# It is the conv weight gradient of $\delta_l$ against the layer's *own* post-ReLU output, zero-padded by $r$ (the
# mean over $n$ is carried by δ, since the loss is a mean). As a function: `SC.kernel_sensitivity(delta, a)` (one
# batch's sum). **(C4)** `SC.sensitivity_pass` forms it for every position in one pass over the data — forward,
# then backward down to the first position, taking δ_l from the ReLU's backward and $a_l$ from the forward — and
# averages over the batches of the pass *before* any norm: $\bar G_l = \frac1B \sum_b G_l^{(b)}$. No extended
# network is built; `SC.extended_sensitivities` is the oracle that builds it and backpropagates through it.

# %%
from minigrow.data import load_mnist                                # noqa: E402
from minigrow.methods.sensli import conv as SC                      # noqa: E402

n_img, n_ep = (128, 1) if QUICK else (512, 2)
dm = load_mnist(n_train=n_img, n_test=10, layout="nchw", dtype=np.float64)
Xc, yc = dm.X_train, dm.y_train                                    # (n_img, 1, 28, 28)
vgg = SC.vgg_small(m=(8, 16, 32), rng=0, dtype=np.float64)  # 3 × [conv 3×3 → ReLU → max-pool 2], Linear(288→10)-ReLU-Linear(10→10)
Trainer(vgg, "ce", SGD(0.05, momentum=0.9), batch_size=32, rng=0, progress=False, dtype=np.float64).fit(Xc, yc, n_ep)
print(f"vgg_small trained {n_ep} epoch(s) on {n_img} MNIST images")

# (C1)/(C2) the positions: after every conv + ReLU, before the pooling
ccands = SC.conv_candidates(vgg)
for c in ccands:
    print(c.describe())

# (C2) inserting the identity kernel changes nothing, bit for bit
before = vgg.predict_logits(Xc)
for c in ccands:
    grown_c = copy.deepcopy(vgg)
    SC.insert_virtual_conv(grown_c, c)
    print(f"p={c.position}: output bit-identical after insertion: {np.array_equal(grown_c.predict_logits(Xc), before)}")

# (C3)/(C4) the closed form in one pass, against the gradient of the explicitly extended network
sens = SC.sensitivity_pass(vgg, Xc, yc, batch_size=64, norm="op22", free=True)
ext_c = SC.extended_sensitivities(vgg, Xc, yc, batch_size=64)
for p, (a_, b_) in enumerate(zip(sens.grads, ext_c.grads)):
    print(f"p={p}: max |closed − extended| / max |extended| = {np.abs(a_ - b_).max() / np.abs(b_).max():.1e}")

# %% [markdown]
# **(C5) The norms.** A kernel $K \in \mathbb R^{C_\text{out}\times C_\text{in}\times k\times k}$ gets
# `fro2` $=\|K\|_F^2$, `fro2_per_entry` $=\|K\|_F^2/(C_\text{out}C_\text{in}k^2)$, and
# `op22` $=\|T_K\|_2^2$, the squared spectral norm of the convolution operator
# $T_K: \mathbb R^{C_\text{in}\times H\times W} \to \mathbb R^{C_\text{out}\times H\times W}$ on the feature map.
# With circular padding $T_K$ is block-circulant, and its singular values are those of the
# $C_\text{out}\times C_\text{in}$ matrices
#
# $$ \hat K[:,:,f,g] = \sum_{u,v} K[:,:,u,v]\, e^{-2\pi i (fu/H + gv/W)} \qquad\text{(2-D DFT over the **spatial** axes)}$$
#
# over all $H\cdot W$ frequencies (Sedghi, Gupta, Long, ICLR 2019), so
# $\mathrm{op22} = \max_{f,g} \sigma_\max(\hat K[:,:,f,g])^2$. Per output channel,
# $\|T_{K[o]}\|_2 = \max_{f,g}\|\hat K[o,:,f,g]\|_2$, `op22_1` $=(\sum_o \|T_{K[o]}\|_2)^2$ and
# `op22_2` $=\sum_o \|T_{K[o]}\|_2^2$ (op22 ≤ op22_2 ≤ op22_1). We report the circular operator on the layer's own
# grid (28×28, 14×14, 7×7 here). The layers pad with zeros; that operator is the circular one on an
# $(H+1)\times(W+1)$ grid restricted to the image, so its norm is at most `op22(K, (H+1, W+1))`. (The authors'
# helper transforms the two *channel* axes instead — see `docs/sensli.md`.)
#
# The cell checks the FFT formula against the explicit operator matrix on a small 4×4 grid, built as
# $T_K = \sum_{u,v} K[:,:,u,v] \otimes S_{u-r} \otimes S_{v-r}$ with $S_s$ the cyclic shift by $s$.

# %%
for p, (nm, grid) in enumerate(zip(sens.norms, sens.grids)):
    print(f"p={p} on {grid[0]}×{grid[1]}: " + ", ".join(f"{k} {v:.3g}" for k, v in nm.items()))
print("position picked by abs_max under each norm:",
      {k: SC.select(np.array([nm[k] for nm in sens.norms]), "abs_max") for k in SC.NORMS})

Kc, hc = sens.grads[2], 4                                   # p = 2's Ḡ (32×32×3×3) on a 4×4 circular grid
shift = lambda s: np.roll(np.eye(hc), s, axis=1)           # noqa: E731  row i picks pixel (i + s) mod hc
T = sum(np.kron(Kc[:, :, u, v], np.kron(shift(u - 1), shift(v - 1))) for u in range(3) for v in range(3))
print(f"explicit operator {T.shape}: largest σ² {np.linalg.svd(T, compute_uv=False).max() ** 2:.6e}, "
      f"op22 from the FFT {SC.op22(Kc, (hc, hc)):.6e}")

# %% [markdown]
# **(C6) The rules.** `abs_max` (first argmax), `abs_min` (a control), `fixed`, `threshold_abs` (insert only if the
# largest score exceeds τ_abs = 1e-4) and `threshold_rel` (only if the largest score exceeds τ_rel = 1 times s̄, the
# mean of the same norm over *all* conv layers of the extended net, the existing ones included — as the authors'
# code does; `free=True` makes the pass form the existing convs' gradients too).

# %%
print("abs_max ->", SC.select(sens.scores, "abs_max"), "| abs_min ->", SC.select(sens.scores, "abs_min"),
      "| threshold_abs ->", SC.select(sens.scores, "threshold_abs"),
      f"| threshold_rel (max s / s̄ = {sens.scores.max() / sens.denominator:.3g}) ->",
      SC.select(sens.scores, "threshold_rel", denominator=sens.denominator))

# %% [markdown]
# What the run above prints, and what to read from it:
#
# * The closed form and the extended network agree to rounding (relative differences of order 1e-16 in float64).
#   `tests/test_sensli_conv.py` checks the same with uneven batches and after a growth.
# * The FFT value of op22 and the largest σ² of the explicit operator matrix agree to the printed digits.
# * The norms need not pick the same position (the line "position picked by abs_max under each norm"):
#   `fro2_per_entry` divides by $m^2k^2$, which favours the narrow early positions, while `op22_1` adds up one norm
#   per output channel, which favours the wide late ones. Say which norm a rule uses; the experiments use op22.
# * `threshold_rel` compares the best virtual kernel with s̄, in which the existing convs' own gradients weigh too;
#   the printed ratio max s / s̄ (below 1 in this run, quick or full) says whether it fires.
#
# The experiments (insert once after 3 of 8 epochs vs no insertion vs the bigger net from the start, 10 seeds, MNIST
# and Fashion-MNIST) are in `docs/sensli.md`, with what they do and do not support.
