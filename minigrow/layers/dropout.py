r"""Inverted dropout (Srivastava et al. 2014), with a holdable mask and a savable random state."""
from __future__ import annotations

import numpy as np

from ..validate import check_prob, check_rng
from .base import Layer, register_layer

__all__ = ["Dropout"]


@register_layer
class Dropout(Layer):
    r"""Inverted dropout: in training mode each value is kept with probability 1 − p and scaled by 1/(1 − p);
    in eval mode the layer is the identity (so the expected training output equals the eval output).

    .. math::  y = x ⊙ d,\qquad d = \frac{ξ}{1 − p},\quad ξ \sim \mathrm{Bernoulli}(1 − p)\ \text{i.i.d.},
               \qquad ∂L/∂x = d ⊙ ∂L/∂y

    (the mask is element-wise, any rank: (N, F), NCHW …; eval mode: d = 1, ∂L/∂x = ∂L/∂y).

    Parameters
    ----------
    p : float in [0, 1]
        Drop probability, default 0.5 (p = 0: identity; p = 1: all zeros, as in PyTorch).
    rng : int seed or numpy.random.Generator
        Seeds the layer's *own* Generator (default seed 0). A Generator passed here is not used directly: one
        64-bit seed is drawn from it, so the layer's stream is independent of the caller's afterwards.

    Reproducibility
        * ``hold_mask`` (attribute, default False): when True, a training-mode forward reuses the last mask
          (drawing one if there is none yet or the input shape changed). Set it for gradient checking, where the
          same mask must be used by every finite-difference forward pass.
        * :meth:`extra_state` / :meth:`load_extra` save and restore the Generator's state (``bit_generator.state``)
          with the model, so a resumed run draws exactly the masks an uninterrupted one would.

    The mask is drawn as float64 uniforms ``u`` with ξ = [u ≥ p] whatever the dtype of x, so float32 and float64
    runs with one seed use the same masks. Eval mode draws nothing.
    """

    unit_kind = "elementwise"
    stochastic = True

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = check_prob("p", p)
        if isinstance(rng, np.random.Generator):
            rng = int(rng.integers(0, 2**63))               # the layer's own stream, seeded from the caller's
        self.rng = check_rng("rng", 0 if rng is None else rng)
        self.hold_mask = False
        self._mask = None          # the last drawn mask d = ξ/(1 − p) (kept for hold_mask)

    def config(self):
        return {"p": self.p}

    def _draw(self, shape, dtype):
        keep = 1.0 - self.p
        xi = self.rng.random(shape) >= self.p                           # ξ ~ Bernoulli(1 − p)
        scale = 1.0 / keep if keep > 0 else 0.0                         # 1/(1 − p); all dropped when p = 1
        return (xi * scale).astype(dtype, copy=False)                   # d = ξ/(1 − p)

    def forward(self, x, train=True):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"Dropout: expected a NumPy array, got {type(x).__name__}")
        if not train:
            self._cache = None                                          # eval mode: identity, nothing drawn
            return x
        m = self._mask
        if not (self.hold_mask and m is not None and m.shape == x.shape):
            m = self._mask = self._draw(x.shape, x.dtype)
        elif m.dtype != x.dtype:
            m = m.astype(x.dtype)
        self._cache = m
        return x * m                                                    # y = x ⊙ d

    def backward(self, dout, need_input_grad=True):
        if not need_input_grad:
            return None
        m = self._cache
        return dout if m is None else dout * m                          # ∂L/∂x = d ⊙ ∂L/∂y

    # --- saved with the model (minigrow.io calls these) ---------------------------------------------------------
    def extra_state(self):
        """JSON-able state: the Generator's ``bit_generator.state`` (its class name included)."""
        return {"rng": _jsonable(self.rng.bit_generator.state)}

    def extra_arrays(self):
        """No arrays to save; defined so that the trainer's epoch snapshot (divergence rollback) keeps
        :meth:`extra_state`, i.e. the random state, too."""
        return {}

    def load_extra(self, extra, arrays):
        """Restore the Generator saved by :meth:`extra_state` (``arrays`` is unused: nothing array-valued)."""
        state = (extra or {}).get("rng")
        if state is None:
            return
        if not isinstance(state, dict) or "bit_generator" not in state:
            raise ValueError(f"Dropout: saved rng state must be a bit_generator.state dict, got {state!r:.80}")
        name = state["bit_generator"]
        bg_cls = getattr(np.random, name, None)
        if not (isinstance(bg_cls, type) and issubclass(bg_cls, np.random.BitGenerator)):
            raise ValueError(f"Dropout: saved rng state names an unknown bit generator {name!r}")
        bg = self.rng.bit_generator if type(self.rng.bit_generator) is bg_cls else bg_cls()
        bg.state = _from_json(state)
        self.rng = np.random.Generator(bg)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return {"__ndarray__": x.tolist(), "dtype": str(x.dtype)}     # MT19937's key (kept exact)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _from_json(x):
    if isinstance(x, dict):
        if "__ndarray__" in x:
            return np.asarray(x["__ndarray__"], dtype=x["dtype"])
        return {k: _from_json(v) for k, v in x.items()}
    return x
