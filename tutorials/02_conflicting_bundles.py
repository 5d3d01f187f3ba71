# %% [markdown]
# # Tutorial 02 — Conflicting bundles
#
# Peer, Stabinger, Rodriguez-Sanchez, *Conflicting Bundles: Adapting Architectures Towards the Improved Training of
# Deep Neural Networks* (WACV 2021, arXiv 2011.02956) and *Auto-tuning of Deep Neural Networks by Conflicting Layer
# Removal* (arXiv 2103.04331). Package: `minigrow/methods/bundles/` — `formulas.py` (equations B1–B3) first,
# then `report.py`, `propositions.py`, `autotune.py`; reproductions: `minigrow/experiments/bundles.py`,
# `python -m minigrow reproduce bundles grid|autotune|lesion`; conv nets (§7): `minigrow/methods/bundles/conv.py`,
# `minigrow/experiments/bundles_conv.py`, `python -m minigrow reproduce bundles conv-grid|conv-autotune|conv-lesion`.
#
# **What comes from where.** The paper bodies were not available to us. The definition of a bundle — including the
# float32 rounding grid, W_max over the whole model and the order of the operations — is taken from the authors'
# code (`conflicting_bundle.py`, read, not copied), the auto-tune rules from their `auto_tune.py`, the lesion
# study from `lesion.py`, the claims from the abstracts. **The propositions P1–P5 below are derived by us** from the
# definitions (they are not statements of the papers) and each is checked numerically.
#
# Run as a script: `python tutorials/02_conflicting_bundles.py` (writes its figures to `runs/tutorials/` in the
# current folder), or
# `MINIGROW_QUICK=1 python tutorials/02_conflicting_bundles.py` (a few seconds, writes nothing).

# %%
import json
import os
import sys
import time
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

from minigrow.methods import bundles as Bn                                   # noqa: E402
from minigrow.methods.bundles import remove_all_types, remove_first_type   # noqa: E402
from minigrow.network import mlp                                     # noqa: E402
from minigrow.optim import Adam                                      # noqa: E402
from minigrow.train import Trainer                                   # noqa: E402

# %% [markdown]
# ## 1. Bundles, bundle entropy and the accuracy bound — by hand
#
# Two samples are in the same **bundle** at layer l when their activations $a^{(l)}$ cannot be told apart by a
# weight update (made precise in §2). The bundles partition the N samples. With $n_{bc}$ samples of class c in
# bundle b and $p_{bc} = n_{bc}/|b|$:
#
# $$ H(B^l) = \frac1N \sum_b |b|\Big(-\sum_c p_{bc}\ln p_{bc}\Big), \qquad
#    \mathrm{acc}_{max}(B^l) = \frac1N\sum_b \max_c n_{bc}. \tag{B2, B3}$$
#
# In code: `minigrow.methods.bundles.formulas.bundle_stats(assignment, y)` (the count matrix $n_{bc}$, H, acc_max).
#
# A bundle with two or more labels is **conflicting**. Six samples, two features, labels below:
#
# | sample | a | label |
# |---|---|---|
# | 0, 1, 2 | (1, 0) | 0, 0, 1 |
# | 3 | (2, 5) | 1 |
# | 4, 5 | (0, 0) | 2, 2 |
#
# Three bundles {0,1,2}, {3}, {4,5}; only the first conflicts, with p = (2/3, 1/3). By hand
# $H = \frac16\cdot 3\,(-\tfrac23\ln\tfrac23 - \tfrac13\ln\tfrac13) = \tfrac12\cdot 0.6365 = 0.3183$ and
# $\mathrm{acc}_{max} = (2 + 1 + 2)/6 = 5/6$: no classifier that reads only this layer can get sample 2 right
# together with samples 0 and 1.

# %%
a = np.array([[1, 0], [1, 0], [1, 0], [2, 5], [0, 0], [0, 0]], dtype=np.float32)
labels = np.array([0, 0, 1, 1, 2, 2])
b = Bn.bundles(a, labels, grid=False)
by_hand = 0.5 * (-(2 / 3) * np.log(2 / 3) - (1 / 3) * np.log(1 / 3))
print("assignment", b.assignment, "| sizes", b.sizes, "| |B| =", b.n_bundles)
print(f"H = {b.entropy:.4f} (by hand {by_hand:.4f}), acc_max = {b.acc_max:.4f} (5/6 = {5 / 6:.4f}), "
      f"conflicting bundles: {b.n_conflicting}")
assert abs(b.entropy - by_hand) < 1e-12 and b.acc_max == 5 / 6

# %% [markdown]
# The entropy is computed from the integer counts as $\frac1N\sum_b\sum_c n_{bc}\ln(|b|/n_{bc})$ over the
# conflicting bundles only, so a layer whose bundles are all pure has $H = 0.0$ exactly (the authors' code adds
# $10^{-5}$ inside the log instead).
#
# ## 2. "Cannot be told apart": the float32 grid
#
# The papers' γ is the activation difference too small to change a float32 weight update $(\eta/B)\,a$. The
# authors' code turns this into **exact float32 equality** of
#
# $$ q_i = \mathrm{fl}_{32}\big(W_{max} - (a_i\cdot\eta)\cdot(1/B)\big), \tag{B1}$$
#
# (`formulas.quantize(a, w_max, lr, batch_size)`; its spacing is `formulas.grid_spacing`)
# with $W_{max}$ the largest $|w|$ over *all* trainable tensors of the model. Subtracting a tiny update from a
# weight-sized number rounds away every difference below about $\gamma \approx \mathrm{ulp}(W_{max})\,B/\eta$: a
# rounding **grid**, not a distance threshold (so it is transitive and bundles are a partition). The dtype and the
# order of the operations are part of the definition (the order changes the update t often, the grid value q only
# when t's rounding crosses a grid boundary — rarely, but it can move a sample between bundles):

# %%
w_max = np.float32(0.55)
print(f"γ ≈ ulp(W_max)·B/η = {Bn.grid_spacing(w_max, 1e-3, 64):.2e} in float32, "
      f"{Bn.grid_spacing(w_max, 1e-3, 64, np.float64):.2e} in float64")
a = (0.3 + 1e-4 * np.arange(40))[:, None] * np.ones((1, 4))          # 40 rows, 1e-4 apart
y40 = np.arange(40) % 2
b32 = Bn.bundles(a, y40, w_max, dtype=np.float32)
b64 = Bn.bundles(a, y40, w_max, dtype=np.float64)
print(f"40 rows 1e-4 apart: {b32.n_bundles} bundles on the float32 grid, {b64.n_bundles} in float64")
# the order of the float32 operations: (a·η)·(1/B) (the authors' order) vs a·(η/B), with B = 48
rng = np.random.default_rng(0)
a = rng.standard_normal((100000, 1)).astype(np.float32)
t1 = (a * np.float32(1e-3)) * np.float32(1 / 48)
t2 = a * np.float32(1e-3 / 48)
for wm in (w_max, np.float32(0.02)):
    q1 = Bn.quantize(a, wm, 1e-3, 48)
    q2 = wm - t2
    print(f"B = 48, W_max = {wm}: t differs in {(t1 != t2).sum()} of 100000 values, the grid value q in "
          f"{(q1 != q2).sum()}")

# %% [markdown]
# On a real network at initialisation — a plain 30-layer ReLU MLP of width 10 on 512 MNIST images:

# %%
from minigrow.data import load_mnist                                  # noqa: E402

n_img = 128 if QUICK else 512
mn = load_mnist(n_train=n_img, n_test=10)
deep = mlp([784] + [10] * 30 + [10], "relu", init="he", rng=0)
rep32 = Bn.layer_report(deep, mn.X_train, mn.y_train)
rep64 = Bn.layer_report(deep, mn.X_train, mn.y_train, dtype=np.float64)
print("W_max =", Bn.weight_amplitude(deep))
print("|B^l| float32 grid:", [r.n_bundles for r in rep32][::5], "… last", rep32[-1].n_bundles,
      f"H(a^L) = {rep32[-1].entropy:.3f}")
print("|B^l| float64 grid:", [r.n_bundles for r in rep64][::5], "… last", rep64[-1].n_bundles,
      f"H(a^L) = {rep64[-1].entropy:.3f}")

# %% [markdown]
# ## 3. Computing bundles: hashing instead of a pairwise loop
#
# The reference code takes the first unassigned sample, compares it with all rows, and repeats: O(|B|·N·D) plus a
# Python loop (`Bn.bundles_pairwise`, our test oracle). Because equality after (B1) is transitive we can view each
# row as one opaque byte string (after turning −0.0 into +0.0) and group with `np.unique(…, return_inverse=True)`:
# O(N D log N), then one `bincount` gives the (bundles × classes) counts. Both give the same partition:

# %%
rng = np.random.default_rng(1)
N = 512 if QUICK else 2048
q = rng.integers(0, 3, (N, 8)).astype(np.float32) * 0.5
yN = rng.integers(0, 10, N)
t0 = time.perf_counter(); fast = Bn.bundle_stats(Bn.group_rows(q), yN); t_fast = time.perf_counter() - t0
t0 = time.perf_counter(); slow = Bn.bundles_pairwise(q, yN); t_slow = time.perf_counter() - t0
print(f"N={N}: same partition {np.array_equal(fast.assignment, slow.assignment)}, |B| = {fast.n_bundles}, "
      f"hashing {t_fast * 1e3:.1f} ms vs pairwise {t_slow * 1e3:.0f} ms (timings: this machine, this run)")

# %% [markdown]
# ## 4. Propositions (derived by us) and their numerical checks
#
# We use a small float64 ReLU network with a width-1 bottleneck on three Gaussian blobs: every sample with a
# negative bottleneck pre-activation is mapped to 0, so these samples form one conflicting bundle. For the theory we
# use **exact-equality** bundles (`grid=False`); there is one numerical subtlety: BLAS does not always produce
# bit-identical output rows for identical input rows (edge rows of the blocked kernel sum in another order):

# %%
rng = np.random.default_rng(0)
Xr = np.repeat(rng.standard_normal((1, 39)), 13, axis=0).astype(np.float32)   # 13 identical rows
Wr = rng.standard_normal((81, 39)).astype(np.float32)
Zr = Xr @ Wr.T
print("identical input rows → distinct output rows after one matmul:", len(np.unique(Zr, axis=0)),
      f"(max difference {np.abs(Zr - Zr[0]).max():.1e})")

# %% [markdown]
# So the exact checks evaluate every layer once per *distinct* row (`distinct_rows=True`, "function semantics":
# the layer is a function of its input). The float32 grid of (B1) absorbs such ulp-level noise except on rounding
# boundaries.

# %%
rng = np.random.default_rng(0)
yb = np.arange(150) % 3
Xb = rng.standard_normal((150, 2)) + np.array([[2, 0], [-1, 1.7], [-1, -1.7]])[yb]
net = mlp([2, 16, 1, 16, 3], "relu", init="he", rng=1, dtype=np.float64)
Trainer(net, "ce", Adam(1e-2), batch_size=None, rng=0, progress=False, dtype=np.float64).fit(Xb, yb, 200)
exact = Bn.layer_report(net, Xb, yb, grid=False)
print(Bn.format_report(exact))

# %% [markdown]
# **P1 (accuracy bound).** In a chain the logits depend on the input only through $a^{(l)}$. Equal $a^{(l)}$ ⇒ equal
# logits ⇒ equal prediction, and the best one prediction per bundle can do is its majority label:
# training accuracy ≤ acc_max(B^l) for every hidden layer l. With |B^l| = 1 this is the majority-class share.

# %%
print(Bn.check_p1_accuracy_bound(net, Xb, yb, report=exact))

# %% [markdown]
# **P2 (loss bound).** With shared logits $z_b$ in bundle b,
# $\sum_{i\in b}\mathrm{CE}_i = -\sum_c n_{bc}\ln\mathrm{softmax}(z_b)_c = |b|\,[H(\hat p_b) +
# \mathrm{KL}(\hat p_b\,\|\,\mathrm{softmax}(z_b))] \ge |b|\,H(\hat p_b)$ (Gibbs' inequality). Summing over b:
# mean cross-entropy ≥ H(B^l), with equality iff every bundle outputs its own label distribution.

# %%
print(Bn.check_p2_loss_bound(net, Xb, yb, report=exact))

# %% [markdown]
# **P3 (gradient cancellation).** $\partial\mathrm{CE}_i/\partial z = \mathrm{softmax}(z_b) - e_{y_i}$ for every
# member of bundle b, so $\sum_{i\in b}\partial\mathrm{CE}_i/\partial z = |b|(\mathrm{softmax}(z_b) - \hat p_b)$. At
# the bundle's optimum $z_b = \ln\hat p_b$ the sum is 0 while each member's gradient is not: the samples of a
# conflicting bundle pull the shared representation in opposite directions and cancel. Reported: the identity's
# deviation, the summed and per-sample gradient norms at the optimum, and ‖Σ g_i‖ / Σ‖g_i‖ in the trained net.

# %%
c3 = Bn.check_p3_gradient_cancellation(Bn.logits_distinct(net, Xb), yb, exact[-1].assignment)
print(c3, "\n   ", {k: round(v, 6) if isinstance(v, float) else v for k, v in c3.details.items()})

# %% [markdown]
# **P4 (depth monotonicity).** $a^{(k)} = f(a^{(l)})$ for k > l, so samples bundled at l stay bundled: the partitions
# are nested, $|B^k| \le |B^l|$ and $H(B^k) \ge H(B^l)$ (coarsening the conditioning variable can only raise a
# conditional entropy). An identity skip $x + f(x)$ keeps distinct inputs distinct even when the branch f collapses,
# which is why residual networks keep their bundles. On the float32 grid the statement is only approximate: members
# of a grid bundle differ by less than γ and may land in different grid cells later.

# %%
print(Bn.check_p4_depth_monotonicity(exact))
grid_rep = Bn.layer_report(net, Xb, yb)                       # float32 grid, ordinary forward pass
c4g = Bn.check_p4_depth_monotonicity(grid_rep)
print("float32 grid:", c4g.details["n_bundles"], f"→ {int(c4g.observed)} samples leave their bundle-mates "
      f"(approximate, as expected)")

# %% [markdown]
# **P5 (the untrainable case).** If every pre-activation of a ReLU layer is ≤ 0 on the data, $a^{(l)} = 0$ for all
# samples: one bundle, H = H(Y), acc_max = majority share, and since ReLU'(z) = 0 for z ≤ 0 the loss sends exactly
# zero gradient to every parameter below l. The layers above see a constant: the network can only learn the prior.

# %%
dead = mlp([2, 8, 8, 3], "relu", init="he", rng=0, dtype=np.float64)
dead.layers[2].params["b"][:] = -100.0
c5 = Bn.check_p5_dead_layer(dead, Xb, yb, layer_index=3)
print(c5, "\n   ", c5.details)

# %% [markdown]
# ## 5. Auto-tune: remove conflicting layers and restart
#
# Train; after each of the first 10 epochs measure H(a^(L)) (cheap); if H > 0, measure every block, delete the first
# conflicting block *and all later blocks of its type*, and restart from scratch. The papers' 120-layer VGG-style
# network has block counts [3, 12, 41, 3]; with the first conflict at the third block of type b:

# %%
counts = [3, 12, 41, 3]
flags = [False] * 59
flags[3 + 2] = True
print("first_type:", remove_first_type(counts, flags), "| all_types (2103.04331-era):",
      remove_all_types(counts, flags))

# %% [markdown]
# ## 6. Experiments on MNIST
#
# The full reproductions are one command each (numbers in `docs/results/bundles_*.json`, quoted in `docs/bundles.md`):
#
# * `python -m minigrow reproduce bundles grid` — plain vs residual, depth × width, 10,000 images, 3 epochs;
# * `python -m minigrow reproduce bundles autotune` — auto-tune a 75-layer plain MLP of width 32;
# * `python -m minigrow reproduce bundles lesion` — lesion study on a 30-block residual MLP.
#
# Here a smaller grid (quick mode: tiny) runs inline.

# %%
from minigrow.experiments import bundles as EX                         # noqa: E402

if QUICK:
    g = EX.depth_width_grid(depths=[2, 12], widths=[10], n_train=500, n_test=200, epochs=1, n_eval=128,
                            progress=False)
else:
    g = EX.depth_width_grid(depths=[5, 20, 50, 75], widths=[10, 25], n_train=5000, n_test=2000, epochs=2,
                            n_eval=512, progress=False)
    EX.plot_grid(g, OUT, prefix="bundles_tutorial_")   # the full run's figures in docs/ stay
print(f"H(Y) of the evaluated images = {g['label_entropy_eval']:.3f}, majority share (test) = "
      f"{g['majority_share_test']:.3f}")
for r in g["runs"]:
    print(f"{r['arch']:>8} depth {r['depth']:>3} width {r['width']:>3}: test acc {r['test_acc']:.3f}, "
          f"|B^L| {r['n_bundles']:>4}, H(a^L) {r['entropy']:.3f}")

# %% [markdown]
# Expected shape (bundles.md §5): shallow nets keep one bundle per sample (H = 0) and train; very deep plain nets
# collapse towards one bundle with H = H(Y) and test accuracy near the majority share; residual nets of the same
# depth keep their bundles. Results of the full runs, if present:

# %%
for name in ("grid", "autotune", "lesion"):
    f = ROOT / "docs" / "results" / f"bundles_{name}.json"
    if not f.exists():
        print(f"{f.name}: not produced yet — run python -m minigrow reproduce bundles {name}")
        continue
    res = json.loads(f.read_text())
    if name == "grid":
        deepest = max(res["config"]["depths"])
        for r in res["runs"]:
            if r["depth"] == deepest:
                print(f"grid, depth {deepest}: {r['arch']} w={r['width']}: test acc {r['test_acc']:.3f}, "
                      f"|B^L| {r['n_bundles']}, H {r['entropy']:.3f}")
    elif name == "autotune":
        for r in res["rounds"]:
            print(f"auto-tune round {r['round']}: {r['counts']} → conflict epoch {r['conflict_epoch']}, test acc "
                  f"{r.get('test_acc', r.get('test_acc_at_stop')):.3f}")
    else:
        print(f"lesion: {len(res['conflicting_blocks'])}/{res['n_blocks']} conflicting blocks, base acc "
              f"{res['base_test_acc']:.3f}")
        for grp, c in res["curves"].items():
            print(f"   drop {grp}: " + ", ".join(f"k={k}: {m:.3f}" for k, m in zip(c["k"], c["mean"])))

# %% [markdown]
# ## 7. Convolutional nets: VGG and ResNet blocks with batch norm
#
# The papers' own experiments use conv nets (bundles.md §7): a stem, stages of blocks
# conv3×3-BN-ReLU-conv3×3-BN, with (ResNet) or without (VGG) a shortcut, global average pooling and a dense output.
# `minigrow.convnets.vgg` / `resnet` build scaled versions (three stages of width, 2·width, 4·width channels);
# `minigrow/methods/bundles/conv.py` measures them. Bundles are measured as before — the float32 grid (B1), W_max
# over *all* trainable tensors, eval mode — on the whole feature map of each sample, flattened. A ResNet block
# contributes two entries, as in the authors' code: its branch output rescaled by the standard deviations of its two
# pre-BN conv outputs,
#
#     b̃ = BN₂(c₂) · 1/√(Var c₂ + 1e-6) · 1/√(Var c₁ + 1e-6)                      (C1)
#
# and its output. A block is *conflicting* when its branch entry has H > 0; those are the blocks the lesion study
# drops, and for a VGG net the first stage holding one is what auto-tune shrinks (`prune_first_stage`).
#
# A ResNet [2, 2, 2] of width 8 on MNIST average-pooled to 14×14 (the CPU budget), trained 2 epochs on 3,000 images
# (quick mode: 1 epoch on 256, 200 test images):

# %%
from minigrow.convnets import resnet                                  # noqa: E402
from minigrow.experiments.bundles_conv import load_images              # noqa: E402
from minigrow.methods.bundles import conv as Bc                        # noqa: E402

Xc, yc, Xct, yct = load_images("mnist", 256 if QUICK else 3000, 200 if QUICK else 500, pool=2)   # (N, 1, 14, 14)
net = resnet([2, 2, 2], width=8, rng=0)
Trainer(net, "ce", Adam(1e-3), batch_size=64, rng=0, progress=False).fit(Xc, yc, 1 if QUICK else 2)
rep = Bc.conv_layer_report(net, Xc[:512], yc[:512], lr=1e-3, batch_size=64)
print(Bc.format_report(rep))
print("test accuracy", Bc.accuracy(net, Xct, yct), " conflicting blocks:", Bc.block_conflicts(rep))

# %% [markdown]
# (Full run, as printed by the cell above: test accuracy 0.792 after 2 epochs on 3,000 images.) Every entry has one
# bundle per sample and H = 0 — here and in every conv net of the reproductions (the 48-net grid of docs/bundles.md,
# up to 38 layers, plain and residual, MNIST and Fashion-MNIST, and 62- and 122-layer plain nets that do not learn
# at all). How far from a conflict is a layer? `conflict_margin` gives the smallest L∞ distance between the maps of
# two *differently labelled* samples in units of the grid's resolution γ ≈ ulp(W_max)·B/η; conflicts need a ratio of
# about 1 or less. (Pairwise, O(N²D): the cell's cost; quick mode uses 128 samples.)

# %%
w_max = Bn.weight_amplitude(net)
n_m = 128 if QUICK else 512
for name, kind, idx, a in Bc.conv_activations(net, Xc[:n_m]):
    m = Bc.conflict_margin(a, yc[:n_m], w_max)
    print(f"{name:<16} nearest differently-labelled maps: {m['min_linf']:.3g}  = {m['ratio']:.3g} γ")
print(f"γ = {m['gamma']:.2g}")

# %% [markdown]
# Full run (printed above): the scaled branch entries are 83–322 γ, the block outputs 288–469 γ from the nearest
# differently labelled sample (γ = 7.6e-3): batch norm keeps the maps of different samples far apart on the grid.
#
# Dropping blocks at test time (`forward_lesioned_conv`: a dropped block outputs ReLU of its shortcut) is the lesion
# study behind the claim that ~60 % of the layers of a trained ResNet can be removed. Try single blocks:

# %%
base = Bc.accuracy(net, Xct, yct)
for blk in range(len(Bc.conv_blocks(net))):
    print(f"drop block {blk}: test accuracy {Bc.accuracy(net, Xct, yct, drop=[blk]):.3f} (base {base:.3f})")

# %% [markdown]
# Full run (printed above): dropping one block gives 0.274 … 0.698 against 0.792 without a lesion (the first
# blocks cost most). The full-run numbers quoted in this section come from one run on this machine; multi-threaded
# BLAS may move the last digit.
#
# The full conv reproductions are one command each (`--quick` for a tiny run; without `--out` and `--quick` they
# write `docs/results/bundles_conv_*.json` and `docs/figures/bundles_conv_*.png`):
#
# * `python -m minigrow reproduce bundles conv-grid` — VGG vs ResNet, 8/20/38 layers, widths 4/8, MNIST and
#   Fashion-MNIST, 2 seeds;
# * `python -m minigrow reproduce bundles conv-autotune` (and `conv-autotune-122`) — auto-tune of a 62-layer
#   (122-layer) VGG against a hand-picked 8-layer one;
# * `python -m minigrow reproduce bundles conv-lesion` — lesion study on two 12-block ResNets.
#
# Their headline numbers, read from the committed results:

# %%
for name in ("grid", "autotune", "autotune_122", "lesion"):
    f = ROOT / "docs" / "results" / f"bundles_conv_{name}.json"
    if not f.exists():
        print(f"{f.name}: not produced yet — run python -m minigrow reproduce bundles conv-{name.replace('_', '-')}")
        continue
    res = json.loads(f.read_text())
    if name == "grid":
        runs = res["runs"]
        print(f"conv grid: {len(runs)} nets, nets with H(a^L) > 0 or a conflicting block: "
              f"{sum(r['entropy'] > 0 or r['n_conflicting_blocks'] > 0 for r in runs)}, "
              f"test acc {min(r['test_acc'] for r in runs):.3f} … {max(r['test_acc'] for r in runs):.3f}")
    elif name.startswith("autotune"):
        s, t, sh = res["start"], res["autotuned"], res["shallow"]
        print(f"conv auto-tune from {s['blocks']}: kept {t['blocks']}, test acc {t['test_acc']:.3f}, last block "
              f"{s['profile'][-1]['margin_ratio']:.1f} γ from a conflict; shallow {sh['blocks']}: "
              f"{sh['test_acc']:.3f}")
    else:
        for n in res["nets"]:
            c = n["curves"]["random"]
            print(f"conv lesion, seed {n['seed']}: base {n['base_test_acc']:.3f}, "
                  f"{len(n['conflicting_blocks'])}/{n['n_blocks']} conflicting, drop k random blocks: "
                  + ", ".join(f"k={k}: {m:.3f}" for k, m in zip(c["k"][:4], c["mean"][:4]))
                  + f"; largest droppable fraction (≤ 0.5 pt) {c['largest_fraction_mean']:.0%}")

# %% [markdown]
# In these short-trained, small conv nets there were no conflicting bundles at all, and single ResNet blocks
# already cost many points (docs/bundles.md: 22–31 points on average for one random block of a 12-block ResNet,
# 0 % droppable within 0.5 points, against the ~60 % claimed). Deep plain conv nets fail to learn long before any
# conflict appears: the conv part of the claims does not reproduce at this scale — see docs/bundles.md,
# "Convolutional networks (issue 14)", for the numbers and our reading of why.
