r"""SensLI for convolutional networks: virtual identity conv layers, their closed-form sensitivity, operator norms.

Method note: ``/work/shared/methods/sensli.md`` §8 (the authors' second code release, mathemml/SensLI, folder
sensitivity-based-LI-for-cnns, read to understand the method; nothing here is copied from it). The dense and
residual SensLI lives in the other modules of :mod:`minigrow.methods.sensli`; this module is self-contained (it imports core modules only).

Symbols (NCHW, batch first; p = (i, j) a pixel; (u, v) a kernel tap, offsets u − r, v − r with r = k // 2)
-------------------------------------------------------------------------------------------------------------
(C1) VGG-style block l:   z_l = Conv_l(x_l),   a_l = ReLU(z_l),   x_{l+1} = MaxPool(a_l)      a_l ∈ R^{N×m×H×W}

(C2) Virtual layer at position l (after the ReLU, before the pooling): a frozen k×k "same" convolution and a ReLU,

         ẑ_l = K_l ⋆ a_l + c_l ,   ã_l = ReLU(ẑ_l) ,     K_l[o, c, u, v] = 1[o = c]·1[(u, v) = (r, r)],  c_l = 0

     (the *virtual identity kernel*: zero except the centre tap, which is I_m). At K_l = I, c_l = 0 it computes
     ẑ_l = a_l exactly (products with 0 and 1 are exact in floating point) and ReLU(a_l) = a_l since a_l ≥ 0, so
     the network output is bit-identical.

(C3) Closed form. The loss of the extended network as a function of K_l, at K_l = I:

         G_l[o, c, u, v] := ∂L/∂K_l[o, c, u, v] = mean_n Σ_p δ_l[n, o, p] · a_l,pad[n, c, p + (u − r, v − r)]

     with δ_l = ∂L/∂z_l the ordinary backprop signal at the pre-activation of conv l in the *small* network and
     a_l,pad the post-ReLU output zero-padded by r — the ordinary conv weight gradient of δ_l against the layer's own
     activation (as the conv layer's ∂L/∂W, with x := a_l). Derivation: by the conv weight gradient in the
     extended net ∂L/∂K_l = Σ_n Σ_p δ̃[n,o,p] a_l,pad[n,c,p + …] with δ̃ = ∂L/∂ẑ_l = ∂L/∂ã_l ⊙ 1[ẑ_l > 0]. At
     K_l = I: the layers after ã_l see the same values as the small net sees after a_l, so ∂L/∂ã_l = ∂L/∂a_l;
     and ẑ_l = a_l = ReLU(z_l), so 1[ẑ_l > 0] = 1[z_l > 0]. Hence δ̃ = ∂L/∂a_l ⊙ 1[z_l > 0] = δ_l with the
     convention ReLU′(0) = 0 (units with z_l ≤ 0 sit exactly at the kink ẑ = 0). The mean over n is carried by
     δ (the loss is a mean). Likewise ∂L/∂c_l[o] = mean_n Σ_p δ_l[n, o, p] (recorded, not scored).

(C4) Pass average before the norm: over the B minibatches of ONE pass over the training data (no updates),

         Ḡ_l = (1/B) Σ_b G_l^{(b)} ,     s_l = ‖Ḡ_l‖   for one of the norms below.

(C5) Norms of a kernel K ∈ R^{C_out×C_in×k×k} acting on an H×W grid:

         fro2 = ‖K‖_F² ,   fro2_per_entry = ‖K‖_F² / (C_out·C_in·k²) ,
         op22 = ‖T_K‖₂²  — the squared spectral norm of the convolution operator T_K: R^{C_in×H×W} → R^{C_out×H×W}.

     For *circular* padding T_K is block-circulant and (Sedghi, Gupta, Long, "The singular values of convolutional
     layers", ICLR 2019) its singular values are those of the C_out×C_in matrices

         K̂[:, :, f, g] = Σ_{u,v} K[:, :, u, v] · exp(−2πi (f·u/H + g·v/W))     (2-D DFT over the SPATIAL axes)

     over all H·W frequencies (f, g):  op22 = max_{f,g} σ_max(K̂[:, :, f, g])².  Flip and conjugation (correlation
     vs convolution, the tap origin) do not change singular values.
         op22_1 = (Σ_o ‖T_{K[o]}‖₂)² ,   op22_2 = Σ_o ‖T_{K[o]}‖₂² ,   ‖T_{K[o]}‖₂ = max_{f,g} ‖K̂[o, :, f, g]‖₂
     (per output channel; op22 ≤ op22_2 ≤ op22_1).

     Zero padding (what the layers compute): the zero-padded "same" operator on H×W equals the circular operator
     on a grid of (H + r)×(W + r) or more, restricted to the interior (embed the image with zeros around it,
     convolve circularly — no wrap-around reaches the interior — and crop): T_zero = P C_{H+r} E, so
     ‖T_zero‖ ≤ ‖C_{H+r}‖ ≤ sup over continuous frequencies, and all of them converge to that sup as H grows.
     We report op22 of the circular operator on the layer's own feature-map grid H×W (Sedghi's formula as the
     authors intend); ``grid=`` takes any other grid, e.g. (H + r, W + r) for the upper bound of the zero-padded
     one. The tests check the FFT value against the explicit operator matrices.

     The authors' helper (``utils.SingularValues``) calls ``np.fft.fft2(kernel, input_shape, axes=[0, 1])`` on the
     PyTorch (out, in, kh, kw) kernel with input_shape = (3, 3) derived from the kernel size: it transforms (and
     crops / pads to 3) the two *channel* axes and takes singular values of 3×3 spatial slices — not the operator
     norm. We implement the operator norm over the spatial axes and say so.

(C6) Rules (which position, if any): 'abs_max' (first argmax), 'abs_min' (first argmin, a control), 'fixed'
     (a given position), 'threshold_abs' (argmax only if max_l s_l > τ_abs = 1e-4), 'threshold_rel' (argmax only if
     max_l s_l / s̄ > τ_rel = 1, s̄ the mean of the same norm over ALL conv layers of the extended net — the free
     ones, whose pass-averaged gradients equal the small net's, and the virtual ones — as the authors' code does).

Engineering
-----------
* :func:`conv_candidates` — one position after every Conv2D (+ optional BatchNorm2d) + ReLU of a top-level
  Sequential, before the pooling; an inserted virtual layer is itself conv + ReLU and becomes a position too.
* :func:`sensitivity_pass` — (C3)/(C4) for all positions in one pass over the data without building the extended
  net: forward (eval mode), backward down to the earliest position only; the pass restores every layer's ``grads``
  so it changes nothing. :func:`extended_network` builds the extended net (the test oracle).
* :func:`insert_virtual_conv` — through :func:`minigrow.surgery.insert_layers`: output bit-identical, every other
  layer keeps its parameters and optimiser state, the new conv starts with fresh state.
* :func:`sensli_conv_train` — the loop of sensli.md §5 with the authors' CNN settings (fresh SGD with momentum
  after every insertion, learning rate × ``decrease``).
* :func:`vgg_small` — the authors' VGG-style net (3 × [conv 3×3 pad 1 → ReLU → max-pool 2], small dense head).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np

from ...layers import BatchNorm2d, Conv2D, Dense, Flatten, MaxPool2d, ReLU, Sequential
from ...losses import SoftmaxCrossEntropy
from ...optim import SGD, Adam, Optimizer
from ...surgery import insert_layers
from ...train import Trainer, evaluate
from ...validate import (check_array, check_choice, check_dtype, check_int, check_labels, check_nonneg,
                       check_positive, check_rng)
from .loop import InsertionRun

__all__ = [
    "NORMS", "RULES", "TAU_ABS", "TAU_REL",
    "identity_kernel", "kernel_sensitivity", "conv_transfer", "conv_singular_values", "fro2", "fro2_per_entry",
    "op22", "op22_1", "op22_2", "kernel_norms", "select",
    "ConvCandidate", "conv_candidates", "virtual_conv_layers", "insert_virtual_conv", "extended_network",
    "ConvSensitivities", "sensitivity_pass", "extended_sensitivities", "vgg_small", "ConvInsertionRun",
    "sensli_conv_train", "train_macs_per_sample", "sensitivity_macs_per_sample",
]

NORMS = ("fro2", "fro2_per_entry", "op22", "op22_1", "op22_2")
RULES = ("abs_max", "abs_min", "fixed", "threshold_abs", "threshold_rel")
TAU_ABS = 1e-4          # threshold_abs: insert only if the largest sensitivity exceeds this (the authors' value)
TAU_REL = 1.0           # threshold_rel: … exceeds this multiple of the mean over the extended net's conv layers

#: rows of the padded feature map handled per block of the tap products in :func:`kernel_sensitivity`
#: (a block of D and of a stays in the L2 cache across the k² products)
_ROW_BLOCK = 8192


# ================================================================================================================
# Formulas (C2)–(C6)
# ================================================================================================================

def identity_kernel(channels, kernel_size=3, dtype=np.float32):
    """(C2) the virtual identity kernel: (m, m, k, k) zeros except K[c, c, r, r] = 1, r = k // 2 (k odd)."""
    m = check_int("channels", channels, lo=1)
    k = check_int("kernel_size", kernel_size, lo=1)
    if k % 2 == 0:
        raise ValueError(f"kernel_size: expected an odd size (the identity needs a centre tap), got {k}")
    K = np.zeros((m, m, k, k), dtype=dtype)
    K[np.arange(m), np.arange(m), k // 2, k // 2] = 1
    return K


def kernel_sensitivity(delta, a, kernel_size=3):
    r"""(C3) summed over the batch:  G[o, c, u, v] = Σ_n Σ_p δ[n, o, p] · a_pad[n, c, p + (u − r, v − r)]  (float64).

    ``delta`` (N, C_out, H, W) and ``a`` (N, C_in, H, W): the same spatial size (a "same" convolution, stride 1,
    zero padding r = k // 2). This is the conv weight gradient ∂L/∂W of a k×k conv with input ``a`` and output
    gradient ``delta``; divide by the number of batches for the pass average (C4).

    How: both are copied once into zero-padded channels-last arrays and flattened to rows q = (n, i, j) of the
    padded grid; a tap shift (u − r, v − r) is then a shift of the row index by s = (u − r)·(W + 2r) + (v − r), and

        G[:, :, u, v] = D_padᵀ[:, q] · A_pad[q + s, :]      (one (C_out × rows)·(rows × C_in) product per tap)

    reads contiguous row ranges of A_pad (no im2col copy). D_pad is zero on the border rows, so only interior q
    contribute, and an interior q shifted by at most r stays inside its own padded image (no mixing of samples).
    """
    delta = np.asarray(delta)
    a = np.asarray(a)
    if delta.ndim != 4 or a.ndim != 4:
        raise ValueError(f"delta, a: expected (N, C, H, W) arrays, got shapes {delta.shape} and {a.shape}")
    if delta.shape[0] != a.shape[0] or delta.shape[2:] != a.shape[2:]:
        raise ValueError(f"delta, a: expected the same batch size and spatial size, got {delta.shape} and "
                         f"{a.shape}")
    k = check_int("kernel_size", kernel_size, lo=1)
    if k % 2 == 0:
        raise ValueError(f"kernel_size: expected an odd size, got {k}")
    r = k // 2
    N, Co, H, W = delta.shape
    Ci = a.shape[1]
    Hp, Wp = H + 2 * r, W + 2 * r
    dt = np.result_type(delta.dtype, a.dtype)
    Ap = np.zeros((N, Hp, Wp, Ci), dtype=dt)
    Ap[:, r:r + H, r:r + W, :] = a.transpose(0, 2, 3, 1)
    Dp = np.zeros((N, Hp, Wp, Co), dtype=dt)
    Dp[:, r:r + H, r:r + W, :] = delta.transpose(0, 2, 3, 1)
    Af, Df = Ap.reshape(-1, Ci), Dp.reshape(-1, Co)
    lo, hi = r * Wp + r, Af.shape[0] - r * Wp - r      # rows that may be interior; q + s stays in [0, rows)
    G = np.zeros((Co, Ci, k, k), dtype=np.float64)
    shifts = [(u, v, (u - r) * Wp + (v - r)) for u in range(k) for v in range(k)]
    for s0 in range(lo, hi, _ROW_BLOCK):
        s1 = min(hi, s0 + _ROW_BLOCK)
        Dt = Df[s0:s1].T                                # (C_out × rows) view, BLAS reads it transposed
        for u, v, s in shifts:
            G[:, :, u, v] += Dt @ Af[s0 + s:s1 + s]    # Σ_q δ[q, o] a[q + s, c]
    return G


def _check_kernel(K):
    K = np.asarray(K)
    if K.ndim != 4:
        raise ValueError(f"K: expected a kernel of shape (C_out, C_in, kh, kw), got shape {K.shape}")
    return K


def _grid(K, grid):
    if grid is None:
        raise ValueError("grid: give the spatial size (H, W) the convolution acts on")
    if not isinstance(grid, (tuple, list)) or len(grid) != 2:
        raise ValueError(f"grid: expected (H, W), got {grid!r}")
    H, W = (check_int(f"grid[{i}]", g, lo=1) for i, g in enumerate(grid))
    return H, W


def conv_transfer(K, grid):
    """(C5) K̂ = 2-D DFT of the kernel over its SPATIAL axes on the grid (H, W); returned as (H, W, C_out, C_in) —
    one C_out×C_in matrix per frequency (f, g).

    The kernel is zero-padded to the grid; a kernel larger than the grid (a 3×3 kernel on a 2×2 or 1×1 feature map)
    is folded onto it first (tap u lands on u mod H: on a circular grid that small the taps alias), which is what
    the circular operator does. ``np.fft.fft2(K, s=…)`` alone would crop such a kernel instead."""
    K = np.asarray(_check_kernel(K), dtype=np.float64)
    H, W = _grid(K, grid)
    kh, kw = K.shape[2:]
    if kh > H or kw > W:
        folded = np.zeros(K.shape[:2] + (H, W))
        for u in range(kh):
            for v in range(kw):
                folded[:, :, u % H, v % W] += K[:, :, u, v]
        K = folded
    return np.fft.fft2(K, s=(H, W), axes=(2, 3)).transpose(2, 3, 0, 1)


def conv_singular_values(K, grid):
    """(C5) all singular values of the circular convolution operator of ``K`` on an H×W grid (Sedghi et al.):
    the singular values of K̂[f, g] over the H·W frequencies, shape (H, W, min(C_out, C_in))."""
    return np.linalg.svd(conv_transfer(K, grid), compute_uv=False)


def fro2(K):
    """(C5) ‖K‖_F²."""
    return float(np.sum(np.square(_check_kernel(K), dtype=np.float64)))


def fro2_per_entry(K):
    """(C5) ‖K‖_F² / number of entries."""
    K = _check_kernel(K)
    return fro2(K) / K.size


def op22(K, grid):
    """(C5) ‖T_K‖₂², the squared spectral norm of the circular convolution operator on an H×W grid."""
    return float(conv_singular_values(K, grid).max() ** 2)


def _per_channel_norms(K, grid):
    """‖T_{K[o]}‖₂ for every output channel o: max over frequencies of the 2-norm of the row K̂[f, g, o, :]."""
    Kh = conv_transfer(K, grid)                                        # (H, W, C_out, C_in)
    return np.sqrt((np.abs(Kh) ** 2).sum(axis=3).max(axis=(0, 1)))     # (C_out,)


def op22_1(K, grid):
    """(C5) (Σ_o ‖T_{K[o]}‖₂)²."""
    return float(_per_channel_norms(K, grid).sum() ** 2)


def op22_2(K, grid):
    """(C5) Σ_o ‖T_{K[o]}‖₂²."""
    return float(np.sum(_per_channel_norms(K, grid) ** 2))


def kernel_norms(K, grid):
    """All five norms of (C5) as a dict {name: value}."""
    K = _check_kernel(K)
    Kh = conv_transfer(K, grid)
    per = np.sqrt((np.abs(Kh) ** 2).sum(axis=3).max(axis=(0, 1)))
    return {"fro2": fro2(K), "fro2_per_entry": fro2_per_entry(K),
            "op22": float(np.linalg.svd(Kh, compute_uv=False).max() ** 2),
            "op22_1": float(per.sum() ** 2), "op22_2": float(np.sum(per ** 2))}


def select(scores, rule="abs_max", position=None, tau_abs=TAU_ABS, denominator=None, tau_rel=TAU_REL):
    """(C6) the chosen position, or None when a threshold rule does not fire.

    'abs_max' first argmax · 'abs_min' first argmin · 'fixed' ``position`` · 'threshold_abs' argmax if
    max > ``tau_abs`` · 'threshold_rel' argmax if max / ``denominator`` > ``tau_rel`` (``denominator`` = s̄, the mean
    norm over all conv layers of the extended net, :attr:`ConvSensitivities.denominator`).
    """
    rule = check_choice("rule", rule, set(RULES))
    scores = check_array("scores", scores, ndim=1, dtype=np.float64, min_rows=0)
    if scores.size == 0:
        raise ValueError(f"scores: expected a non-empty 1-d array, got shape {scores.shape}")
    if rule == "abs_max":
        return int(np.argmax(scores))
    if rule == "abs_min":
        return int(np.argmin(scores))
    if rule == "fixed":
        if position is None:
            raise ValueError("position: rule='fixed' needs a position")
        return check_int("position", position, lo=0, hi=scores.size - 1)
    if rule == "threshold_abs":
        tau_abs = check_nonneg("tau_abs", tau_abs)
        return int(np.argmax(scores)) if scores.max() > tau_abs else None
    if denominator is None:
        raise ValueError("denominator: rule='threshold_rel' needs the mean norm over the extended net's conv "
                         "layers (sensitivity_pass(..., free=True).denominator)")
    denominator = check_positive("denominator", denominator)
    tau_rel = check_nonneg("tau_rel", tau_rel)
    return int(np.argmax(scores)) if scores.max() / denominator > tau_rel else None


# ================================================================================================================
# Candidates and insertion
# ================================================================================================================

@dataclass(frozen=True)
class ConvCandidate:
    """One virtual conv position: after ``model.layers[after]`` (a ReLU fed by the Conv2D ``model.layers[conv]``),
    acting on ``channels`` channels; the virtual conv is inserted at ``after + 1``."""

    position: int
    after: int
    conv: int
    channels: int
    kernel_size: int = 3

    @property
    def weight_shape(self):
        return (self.channels, self.channels, self.kernel_size, self.kernel_size)

    def describe(self):
        k = self.kernel_size
        return (f"p={self.position}: identity conv {self.channels}→{self.channels} {k}×{k} + ReLU after layer "
                f"{self.after} (ReLU of the conv at layer {self.conv})")


def conv_candidates(model, kernel_size=3):
    """Every position of (C2) in the Sequential ``model``, in network order: after each ReLU whose input comes from a
    Conv2D (directly or through a BatchNorm2d). Positions after other activations are not offered: the identity
    insertion preserves the function only after a ReLU (σ(σ(z)) = σ(z))."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a minigrow Sequential, got {type(model).__name__}")
    out = []
    layers = model.layers
    for i, layer in enumerate(layers):
        if type(layer) is not ReLU:
            continue
        j = i - 1
        if j >= 0 and isinstance(layers[j], BatchNorm2d):
            j -= 1
        if j >= 0 and isinstance(layers[j], Conv2D):
            out.append(ConvCandidate(len(out), i, j, int(layers[j].out_channels), int(kernel_size)))
    if not out:
        raise ValueError("model: no Conv2D followed by a ReLU, so there is no position for a virtual conv layer")
    return out


def _output_hw(model, c):
    conv = model.layers[c.conv]
    return None if conv.input_hw is None else tuple(int(s) for s in conv.output_hw(*conv.input_hw))


def virtual_conv_layers(channels, kernel_size=3, input_hw=None, dtype=np.float32):
    """(C2) the virtual layer: Conv2D(m → m, k×k, padding k//2) with the identity kernel and zero bias, and a ReLU.
    ``input_hw`` (H, W) lets ``macs()`` count it before its first forward pass."""
    k = check_int("kernel_size", kernel_size, lo=1)
    conv = Conv2D(channels, channels, k, padding=k // 2, init="zeros", dtype=dtype)
    conv.params["W"][...] = identity_kernel(channels, k, dtype)
    conv.input_hw = None if input_hw is None else tuple(int(s) for s in input_hw)
    return conv, ReLU()


def insert_virtual_conv(model, candidate):
    """Insert ``candidate``'s virtual layer (identity kernel, bias 0) into ``model`` in place through
    :func:`minigrow.surgery.insert_layers`; returns the index of the new Conv2D.

    Bit-identical output: the conv computes Σ 1·a + Σ 0·a' + 0 = a exactly (a ≥ 0 finite), ReLU(a) = a. Every other
    layer keeps its parameters, gradients and optimiser state; the new conv starts with empty (fresh) state."""
    if not isinstance(candidate, ConvCandidate):
        raise TypeError(f"candidate: expected a ConvCandidate from conv_candidates(model), got "
                        f"{type(candidate).__name__}")
    check_int("candidate.after", candidate.after, lo=0, hi=len(model.layers) - 1)
    if type(model.layers[candidate.after]) is not ReLU:
        raise ValueError(f"candidate: layer {candidate.after} is a {type(model.layers[candidate.after]).__name__}, "
                         f"not the ReLU the candidate was made for; recompute conv_candidates(model)")
    conv, relu = virtual_conv_layers(candidate.channels, candidate.kernel_size, _output_hw(model, candidate),
                                     model.dtype or np.float32)
    return insert_layers(model, candidate.after + 1, conv, relu)


def extended_network(model, kernel_size=3):
    """A deep copy of ``model`` with every candidate's virtual layer inserted and frozen (the oracle of (C3)).
    Returns ``(extended, candidates, index)``; ``index[p]`` = position of candidate p's virtual Conv2D."""
    cands = conv_candidates(model, kernel_size)
    ext = copy.deepcopy(model)
    for c in sorted(cands, key=lambda c: c.after, reverse=True):      # back to front keeps the indices valid
        insert_virtual_conv(ext, c)
    index = {c.position: c.after + 1 + 2 * c.position for c in cands}
    for i in index.values():
        ext.layers[i].frozen = set(ext.layers[i].params)
    return ext, cands, index


# ================================================================================================================
# The sensitivity pass (C3)–(C5)
# ================================================================================================================

@dataclass
class ConvSensitivities:
    """Result of one pass. ``grads[p]`` = Ḡ_p (pass-averaged (C3), float64), ``bias_grads[p]``, ``grids[p]`` (H, W)
    of position p's feature map, ``norms[p]`` = {norm: value} for all five norms, ``scores`` = the chosen ``norm``
    per position; with ``free=True`` also ``free_norms`` (one dict per existing conv layer: layer index, grid,
    norms of its pass-averaged weight gradient) and ``denominator`` s̄ of 'threshold_rel'. ``macs`` and ``seconds``:
    the cost of the pass."""

    candidates: list
    grads: list
    bias_grads: list
    grids: list
    norms: list
    norm: str
    scores: np.ndarray
    free_norms: list | None = None
    denominator: float | None = None
    n_batches: int = 0
    macs: int = 0
    seconds: float = 0.0

    def as_dict(self):
        return {"positions": [c.describe() for c in self.candidates], "norm": self.norm,
                "scores": [float(s) for s in self.scores], "norms": self.norms, "grids": self.grids,
                "free_norms": self.free_norms, "denominator": self.denominator, "n_batches": self.n_batches,
                "macs": int(self.macs), "seconds": self.seconds}


def _check_images(model, X, y, dtype, xname="X", yname="y"):
    X = check_array(xname, X, ndim=4, dtype=dtype)
    n_in = model.in_units
    if n_in is not None and X.shape[1] != n_in:
        raise ValueError(f"{xname}: expected {n_in} channels (axis 1), got shape {X.shape}")
    n_out = model.out_units
    y = check_labels(yname, y, n=X.shape[0], n_classes=n_out)
    return X, y


def _batches(n, batch_size):
    bs = n if batch_size is None else check_int("batch_size", batch_size, lo=1)
    return [slice(s, min(s + bs, n)) for s in range(0, n, bs)]


def sensitivity_pass(model, X, y, batch_size=128, norm="op22", free=False, kernel_size=3):
    """(C3)–(C5) for every candidate of ``model`` in one pass over ``(X, y)``; nothing is changed.

    Per batch: forward in eval mode, keeping the post-ReLU output a_l at every position; backward from the mean
    cross-entropy down to the earliest position (all the way with ``free=True``); at a position the ReLU's
    backward gives δ_l = ∂L/∂z_l and Ḡ_l += Σ_p δ_l a_l,pad (:func:`kernel_sensitivity`). No extended network is
    built. With ``free=True`` the existing conv layers' weight gradients are averaged too (their norms enter the
    denominator of 'threshold_rel'). Every layer's ``grads`` are restored afterwards.
    """
    t0 = time.perf_counter()
    norm = check_choice("norm", norm, set(NORMS))
    cands = conv_candidates(model, kernel_size)
    X, y = _check_images(model, X, y, model.dtype or np.float32)
    loss = SoftmaxCrossEntropy()
    layers = model.layers
    at = {c.after: c for c in cands}
    stop = 0 if free else min(at)
    saved = [(layer, {k: g.copy() for k, g in layer.grads.items()}) for _, layer in model.named_layers()]
    G = [np.zeros(c.weight_shape) for c in cands]
    Gb = [np.zeros(c.channels) for c in cands]
    grids = [None] * len(cands)
    conv_idx = [i for i, layer in enumerate(layers) if isinstance(layer, Conv2D)]
    Gfree = {i: np.zeros(layers[i].params["W"].shape) for i in conv_idx} if free else {}
    sl = _batches(X.shape[0], batch_size)
    k2 = kernel_size * kernel_size
    macs = 0
    try:
        for s in sl:
            h = X[s]
            nb = h.shape[0]
            stream = {}
            for i, layer in enumerate(layers):
                h = layer.forward(h, train=False)
                if i in at:
                    stream[i] = h
            macs += nb * model.macs()
            loss.forward(h, y[s])
            dout = loss.backward()
            for i in range(len(layers) - 1, stop - 1, -1):
                layer = layers[i]
                c = at.get(i)
                if c is not None:
                    delta = layer.backward(dout)                    # δ_l = ∂L/∂a_l ⊙ 1[z_l > 0]
                    a = stream[i]
                    G[c.position] += kernel_sensitivity(delta, a, kernel_size)   # (C3), Σ over the batch
                    Gb[c.position] += delta.sum(axis=(0, 2, 3))
                    grids[c.position] = (int(a.shape[2]), int(a.shape[3]))
                    macs += nb * c.channels ** 2 * k2 * a.shape[2] * a.shape[3]
                    dout = delta
                    continue
                dout = layer.backward(dout, need_input_grad=i > stop)
                macs += nb * layer.macs() * (2 if i > stop else 1)
                if i in Gfree:
                    Gfree[i] += layer.grads["W"]
    finally:
        for layer, grads in saved:
            for k, g in grads.items():
                layer.grads[k][...] = g
    B = len(sl)
    G = [g / B for g in G]
    Gb = [g / B for g in Gb]
    norms = [kernel_norms(g, grid) for g, grid in zip(G, grids)]
    scores = np.array([nm[norm] for nm in norms])
    free_norms = denominator = None
    if free:
        free_norms = []
        for i, g in Gfree.items():
            grid = layers[i].input_hw
            free_norms.append({"layer": i, "grid": list(grid),
                               "norms": kernel_norms(g / B, (int(grid[0]), int(grid[1])))})
        allv = [f["norms"][norm] for f in free_norms] + [nm[norm] for nm in norms]
        denominator = float(np.mean(allv))
    return ConvSensitivities(cands, G, Gb, grids, norms, norm, scores, free_norms, denominator, B, int(macs),
                             time.perf_counter() - t0)


def extended_sensitivities(model, X, y, batch_size=128, norm="op22", kernel_size=3):
    """The same Ḡ_p by ordinary backprop through :func:`extended_network` (every gradient formed, virtual layers
    frozen, nothing updated). Slower; the oracle of the tests and the bench."""
    t0 = time.perf_counter()
    norm = check_choice("norm", norm, set(NORMS))
    ext, cands, index = extended_network(model, kernel_size)
    X, y = _check_images(model, X, y, model.dtype or np.float32)
    loss = SoftmaxCrossEntropy()
    G = [np.zeros(c.weight_shape) for c in cands]
    Gb = [np.zeros(c.channels) for c in cands]
    sl = _batches(X.shape[0], batch_size)
    for s in sl:
        loss.forward(ext.forward(X[s], train=False), y[s])
        ext.backward(loss.backward(), need_input_grad=False)
        for c in cands:
            G[c.position] += ext.layers[index[c.position]].grads["W"]
            Gb[c.position] += ext.layers[index[c.position]].grads["b"]
    B = len(sl)
    G = [g / B for g in G]
    Gb = [g / B for g in Gb]
    grids = [tuple(int(v) for v in ext.layers[index[c.position]].input_hw) for c in cands]
    norms = [kernel_norms(g, grid) for g, grid in zip(G, grids)]
    return ConvSensitivities(cands, G, Gb, grids, norms, norm, np.array([nm[norm] for nm in norms]), None, None,
                             B, int(3 * ext.macs() * X.shape[0]), time.perf_counter() - t0)


def sensitivity_macs_per_sample(model, kernel_size=3):
    """Multiply-adds per sample of :func:`sensitivity_pass` without ``free``: forward F, input gradients of the
    layers after the earliest position, and the kernel gradients m_l²·k²·H_l·W_l of (C3)."""
    cands = conv_candidates(model, kernel_size)
    first = min(c.after for c in cands)
    total = model.macs() + sum(layer.macs() for layer in model.layers[first + 1:])
    for c in cands:
        hw = _output_hw(model, c)
        if hw is None:
            raise ValueError("model: run one forward pass first (the convs' input sizes are not known yet)")
        total += c.channels ** 2 * kernel_size ** 2 * hw[0] * hw[1]
    return int(total)


def train_macs_per_sample(model):
    """Multiply-adds of one training step per sample: 3F (forward, weight gradients, input gradients)."""
    return 3 * model.macs()


# ================================================================================================================
# The network and the insertion loop
# ================================================================================================================

def vgg_small(m=(8, 16, 32), head=(10,), in_channels=1, in_hw=(28, 28), n_classes=10, extra=(), init="torch",
              rng=0, dtype=np.float32):
    """The authors' VGG-style net (their MNIST "VGG_small"), sized for the CPU:

        [Conv2D(c → m_t, 3×3, pad 1) → ReLU → (extra: Conv2D(m_t → m_t) → ReLU) → MaxPool2d(2)] for t = 0, 1, 2
        → Flatten → Dense(m_2·h·w → head_0) → ReLU → … → Dense(head_-1 → n_classes, no bias)

    28×28 inputs give h = w = 3 (28 → 14 → 7 → 3). ``extra``: stages t that get an additional conv + ReLU from the
    start (randomly initialised; the "bigger net" baseline). ``init`` 'torch' = PyTorch's default U(±1/√fan_in).
    The convs know their input size from the start, so ``macs()`` is right before any forward pass.
    """
    if isinstance(m, (str, bytes)) or not hasattr(m, "__len__") or len(m) < 1:
        raise ValueError(f"m: expected a list of channel widths, one per stage, got {m!r}")
    m = [check_int(f"m[{t}]", v, lo=1) for t, v in enumerate(m)]
    head = [check_int(f"head[{t}]", v, lo=1) for t, v in enumerate(head)]
    extra = sorted({check_int("extra[…]", t, lo=0, hi=len(m) - 1) for t in extra})
    in_channels = check_int("in_channels", in_channels, lo=1)
    n_classes = check_int("n_classes", n_classes, lo=1)
    rng = check_rng("rng", rng)
    dtype = check_dtype("dtype", dtype)
    H, W = (check_int(f"in_hw[{i}]", v, lo=1) for i, v in enumerate(in_hw))
    layers, c = [], in_channels
    for t, w in enumerate(m):
        for _ in range(2 if t in extra else 1):
            conv = Conv2D(c, w, 3, padding=1, init=init, rng=rng, dtype=dtype)
            conv.input_hw = (H, W)
            layers += [conv, ReLU()]
            c = w
        layers.append(MaxPool2d(2))
        H, W = H // 2, W // 2
        if H < 1 or W < 1:
            raise ValueError(f"in_hw: {in_hw} is too small for {len(m)} pooling stages")
    layers.append(Flatten((c, H, W)))
    n = c * H * W
    for hdim in head:
        layers += [Dense(n, hdim, init=init, rng=rng, dtype=dtype), ReLU()]
        n = hdim
    layers.append(Dense(n, n_classes, init=init, rng=rng, dtype=dtype, bias=False))
    return Sequential(layers)


# The result of sensli_conv_train is the dense loop's record (per-epoch losses, one record per sensitivity pass,
# per-phase cost): one class for both.
ConvInsertionRun = InsertionRun


def sensli_conv_train(model, X, y, epochs, X_test=None, y_test=None, *, rule="abs_max", norm="op22",
                      position=None, tau_abs=TAU_ABS, tau_rel=TAU_REL, optimizer="sgd", lr=0.01, momentum=0.9,
                      weight_decay=5e-4, batch_size=64, sens_batch_size=None, decrease=1.0, fresh_optimizer=True,
                      rng=0):
    """Train with virtual-conv insertions (sensli.md §5, the authors' CNN settings); ``model`` changes in place.

    ``epochs = [e_0, …, e_K]``: train e_0 epochs, sensitivity pass + rule (maybe insert), train e_1, … — at most K
    insertions ([e] = no insertion, the same code path). Every phase starts a fresh optimiser ('sgd' with
    ``momentum`` and ``weight_decay`` as the authors, or 'adam'); after an insertion its learning rate is
    ``decrease`` × the rate at the end of the phase. One Generator (``rng``) shuffles all phases.
    """
    if isinstance(epochs, (str, bytes)) or not isinstance(epochs, (list, tuple)) or not epochs:
        raise TypeError(f"epochs: expected a non-empty list [e_0, …, e_K] of epoch counts, got {epochs!r}")
    epochs = [check_int(f"epochs[{i}]", e, lo=0) for i, e in enumerate(epochs)]
    rule = check_choice("rule", rule, set(RULES))
    norm = check_choice("norm", norm, set(NORMS))
    optimizer = check_choice("optimizer", optimizer, {"sgd", "adam"})
    lr = check_positive("lr", lr)
    decrease = check_positive("decrease", decrease)
    rng = check_rng("rng", rng)
    dtype = model.dtype or np.float32
    X, y = _check_images(model, X, y, dtype)
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test, y_test: give both or neither")
    if X_test is not None:
        X_test, y_test = _check_images(model, X_test, y_test, dtype, "X_test", "y_test")
    if len(epochs) > 1:
        conv_candidates(model)
    sens_bs = batch_size if sens_batch_size is None else sens_batch_size
    run = ConvInsertionRun(model)
    loss = SoftmaxCrossEntropy()
    for k, e in enumerate(epochs):
        if fresh_optimizer:
            Optimizer.reset_state(model)
        opt = SGD(lr, momentum=momentum, weight_decay=weight_decay) if optimizer == "sgd" else \
            Adam(lr, weight_decay=weight_decay)
        trainer = Trainer(model, loss, opt, batch_size=batch_size, rng=rng, progress=False, dtype=dtype,
                          rollback=False)
        trainer.fit(X, y, e)
        recs = trainer.history.epochs
        run.train_loss += [float(r["train_loss"]) for r in recs]
        seconds = float(sum(r["seconds"] for r in recs))
        if X_test is not None:
            t0 = time.perf_counter()
            tl, ta = evaluate(model, loss, X_test, y_test)
            seconds += time.perf_counter() - t0
            run.test_loss.append((len(run.train_loss), tl))
            run.test_acc.append((len(run.train_loss), ta))
        run.phases.append({"phase": k, "epochs": e, "seconds": seconds, "lr": lr,
                           "macs": int(e * X.shape[0] * train_macs_per_sample(model)),
                           "n_params": model.n_params(), "macs_per_sample": model.macs()})
        if k == len(epochs) - 1:
            break
        sens = sensitivity_pass(model, X, y, sens_bs, norm, free=(rule == "threshold_rel"))
        chosen = select(sens.scores, rule, position, tau_abs, sens.denominator, tau_rel)
        rec = sens.as_dict()
        rec.update(epoch=len(run.train_loss), chosen=chosen, inserted=chosen is not None)
        if chosen is not None:
            before = model.predict_logits(X[:256])
            insert_virtual_conv(model, sens.candidates[chosen])
            rec["output_unchanged"] = bool(np.array_equal(model.predict_logits(X[:256]), before))
            lr = decrease * opt.lr
        run.insertions.append(rec)
    return run
