"""Convolutional blocks of the conflicting-bundles papers' VGG and ResNet nets (bundles.md §7), built from layers.

* :class:`ConvBlock`  — conv 3×3 → BN → ReLU → conv 3×3 → BN, then

  - ``skip=True`` (the "resnet" block): plus the shortcut — the identity, or a 1×1 conv + BN when the shape
    changes (stride 2 or a new number of channels) — and ReLU after the add;
  - ``skip=False`` (the "vgg" block): ReLU, no shortcut.

Forward, with branch(x) = BN₂(conv₂(ReLU(BN₁(conv₁ x)))) and s(x) the shortcut::

    out = ReLU(branch(x) + s(x))          (resnet)          out = ReLU(branch(x))          (vgg)

Backward, for g = ∂L/∂out and d = g ⊙ 1[pre > 0] (pre = the argument of the last ReLU)::

    ∂L/∂x = branchᵀ(d) + sᵀ(d)            (sᵀ(d) = d for the identity)

Each part is an ordinary layer (:class:`~minigrow.layers.Sequential` children ``branch`` and ``shortcut``), so its
parameters, buffers and optimiser state are found, saved and checkpointed like any other (layers/base.py).
"""
from __future__ import annotations

import numpy as np

from ..validate import check_bool, check_int, check_rng
from .activations import ReLU
from .base import Layer, register_layer
from .conv import Conv2D
from .norm import BatchNorm2d
from .sequential import Sequential

__all__ = ["ConvBlock"]


@register_layer
class ConvBlock(Layer):
    """conv3×3-BN-ReLU-conv3×3-BN (+ shortcut when ``skip``), then ReLU. See the module docstring."""

    input_ndim = 4

    def __init__(self, in_channels, out_channels, stride=1, skip=True, init="he", rng=None, dtype=np.float32):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, lo=1)
        self.out_channels = check_int("out_channels", out_channels, lo=1)
        self.stride = check_int("stride", stride, lo=1)
        self.skip = check_bool("skip", skip)
        self.init = init
        rng = check_rng("rng", 0 if rng is None else rng)
        conv = dict(init=init, rng=rng, dtype=dtype, bias=False)
        self.branch = Sequential([
            Conv2D(self.in_channels, self.out_channels, 3, stride=self.stride, padding=1, **conv),
            BatchNorm2d(self.out_channels, dtype=dtype), ReLU(),
            Conv2D(self.out_channels, self.out_channels, 3, stride=1, padding=1, **conv),
            BatchNorm2d(self.out_channels, dtype=dtype)])
        self.projection = self.skip and (self.stride != 1 or self.in_channels != self.out_channels)
        self.shortcut = Sequential([Conv2D(self.in_channels, self.out_channels, 1, stride=self.stride, **conv),
                                    BatchNorm2d(self.out_channels, dtype=dtype)]) if self.projection else None
        self.act = ReLU()

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels, "stride": self.stride,
                "skip": self.skip, "init": self.init}

    @property
    def in_units(self):
        return self.in_channels

    @property
    def out_units(self):
        return self.out_channels

    def _shortcut(self, x, train):
        if not self.skip:
            return None
        return x if self.shortcut is None else self.shortcut.forward(x, train)

    def forward(self, x, train=True):
        b = self.branch.forward(x, train)
        s = self._shortcut(x, train)
        return self.act.forward(b if s is None else b + s, train)

    def backward(self, dout, need_input_grad=True):
        d = self.act.backward(dout)
        dx = self.branch.backward(d, need_input_grad)
        if not self.skip:
            return dx
        ds = d if self.shortcut is None else self.shortcut.backward(d, need_input_grad)
        return dx + ds if need_input_grad else None

    def parts(self, x):
        """Eval-mode intermediate values: ``conv`` — the last conv's output before its batch norm, ``branch`` — the
        branch output before the add, ``out`` — the block output (the instrumentation of the conflicting-bundles
        code, bundles.md §7). Runs the sub-layers, so their caches are overwritten: run a new forward pass before
        the next ``backward``."""
        outs = self.branch.forward_all(x, train=False)
        s = self._shortcut(x, False)
        b = outs[-1]
        return {"conv": outs[-2], "branch": b, "out": np.maximum(b if s is None else b + s, 0)}
