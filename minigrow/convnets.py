"""Convolutional network builders (NCHW input, batch first): LeNet-5 in two variants, and the VGG / ResNet
families of the conflicting-bundles papers sized for 28×28 inputs.

``vgg([1, 1, 1], width=8)`` / ``resnet(...)``::

    Conv2D(1→8, 3×3) BN ReLU  ConvBlock(8→8)  ConvBlock(8→16, /2)  ConvBlock(16→32, /2)  GlobalAvgPool  Dense(32→10)

All take MNIST as ``(N, 1, 28, 28)`` (``load_mnist(layout="nchw")``) and end with a linear layer of 10 outputs
(logits for the softmax cross-entropy).
"""
from __future__ import annotations

import numpy as np

from .layers import (BatchNorm2d, Conv2D, ConvBlock, Dense, Flatten, GlobalAvgPool2d, MaxPool2d, ReLU,
                     Sequential)
from .validate import check_choice, check_dtype, check_int, check_rng

__all__ = ["lenet5", "conv_net", "vgg", "resnet"]


def lenet5(variant="caffe", rng=0, dtype=np.float32, init="torch", widths=None):
    """LeNet-5 for 1×28×28 images, 10 classes.

    ``variant="caffe"`` — LeNet-5-Caffe, the net of the structured-pruning literature
    (/work/shared/methods/pruning.md §6: conv 5×5 20 → max-pool 2 → conv 5×5 50 → max-pool 2 → dense 800 → 500 → 10,
    ReLU)::

        Conv2D(1→20, 5×5)  ReLU  MaxPool 2   28×28 → 24×24 → 12×12
        Conv2D(20→50, 5×5) ReLU  MaxPool 2   12×12 →  8×8  →  4×4
        Flatten (50·4·4 = 800)  Dense(800→500)  ReLU  Dense(500→10)

    The ReLU sits after each convolution (before its pool) and after the first dense layer; the pruning method
    gates a conv channel after its activation (pruning.md §6). (Caffe's original ``lenet_train_test.prototxt``
    has a single ReLU, after ip1; with ReLU before max-pool the two orders give the same output, since max and ReLU
    commute.) 431 080 parameters, 2 293 000 multiply-adds per image.

    ``variant="classic"`` — LeCun et al.'s 6-16-120-84 layout with ReLU and max pooling::

        Conv2D(1→6, 5×5, padding 2) ReLU MaxPool 2   28×28 → 28×28 → 14×14
        Conv2D(6→16, 5×5)           ReLU MaxPool 2   14×14 → 10×10 →  5×5
        Flatten (400)  Dense(400→120) ReLU  Dense(120→84) ReLU  Dense(84→10)

    ``widths`` — ``(conv1 filters, conv2 filters, dense units)`` of the caffe variant instead of (20, 50, 500), e.g.
    twice as wide for the pruning robustness grid (the flatten then has conv2·16 features). ``rng`` (Generator or
    int seed) draws every layer in order; ``init`` as for :class:`~minigrow.layers.Conv2D`
    and :class:`~minigrow.layers.Dense` (default PyTorch's).
    """
    check_choice("variant", variant, {"caffe", "classic"})
    rng = check_rng("rng", rng)
    dtype = check_dtype("dtype", dtype)
    kw = {"init": init, "rng": rng, "dtype": dtype}
    if widths is not None and variant != "caffe":
        raise ValueError("widths: only for variant='caffe'")
    if variant == "caffe":
        c1, c2, h = (20, 50, 500) if widths is None else (check_int(f"widths[{i}]", w, lo=1)
                                                          for i, w in enumerate(widths))
        layers = [Conv2D(1, c1, 5, **kw), ReLU(), MaxPool2d(2),
                  Conv2D(c1, c2, 5, **kw), ReLU(), MaxPool2d(2),
                  Flatten(), Dense(16 * c2, h, **kw), ReLU(), Dense(h, 10, **kw)]
    else:
        layers = [Conv2D(1, 6, 5, padding=2, **kw), ReLU(), MaxPool2d(2),
                  Conv2D(6, 16, 5, **kw), ReLU(), MaxPool2d(2),
                  Flatten(), Dense(400, 120, **kw), ReLU(), Dense(120, 84, **kw), ReLU(), Dense(84, 10, **kw)]
    return Sequential(layers)


def conv_net(blocks=(1, 1, 1), width=8, skip=True, n_classes=10, in_channels=1, init="he", rng=0,
             dtype=np.float32):
    """The conflicting-bundles papers' VGG (``skip=False``) / ResNet (``skip=True``) family, sized for 28×28 inputs
    and a CPU (bundles.md §7; what is scaled is listed below).

    stem: conv 3×3 (``width`` filters, stride 1) → BN → ReLU; stages t = 0, 1, …: ``blocks[t]``
    :class:`~minigrow.layers.ConvBlock` of ``width·2^t`` channels, the first block of every stage after the first
    with stride 2 (28 → 14 → 7); global average pooling; dense output.

    Scaled against the authors' nets: a 3×3 stride-1 stem instead of 7×7 stride 2 (the inputs are 28×28, not
    32×32 colour images); three stages of ``width``, 2·width, 4·width channels (default 8, 16, 32) instead of four
    of 64, 128, 256, 512. A stage with 0 blocks is skipped (its width is still doubled for the next stage).
    """
    if isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__len__") or len(blocks) < 1:
        raise ValueError(f"blocks: expected a list of block counts per stage, got {blocks!r}")
    blocks = [check_int(f"blocks[{t}]", b, lo=0) for t, b in enumerate(blocks)]
    width = check_int("width", width, lo=1)
    n_classes = check_int("n_classes", n_classes, lo=1)
    in_channels = check_int("in_channels", in_channels, lo=1)
    rng = check_rng("rng", rng)
    dtype = check_dtype("dtype", dtype)
    layers = [Conv2D(in_channels, width, 3, padding=1, bias=False, init=init, rng=rng, dtype=dtype),
              BatchNorm2d(width, dtype=dtype), ReLU()]
    c = width
    for t, n in enumerate(blocks):
        w = width * 2 ** t
        for i in range(n):
            stride = 2 if (i == 0 and t > 0) else 1
            layers.append(ConvBlock(c, w, stride=stride, skip=skip, init=init, rng=rng, dtype=dtype))
            c = w
    layers += [GlobalAvgPool2d(), Dense(c, n_classes, init="torch", rng=rng, dtype=dtype)]
    return Sequential(layers)


def vgg(blocks=(1, 1, 1), width=8, **kw):
    """Plain conv net of :func:`conv_net` (no skips): the "vgg" net of the conflicting-bundles papers."""
    return conv_net(blocks, width, skip=False, **kw)


def resnet(blocks=(1, 1, 1), width=8, **kw):
    """Residual conv net of :func:`conv_net`: the "resnet" net of the conflicting-bundles papers."""
    return conv_net(blocks, width, skip=True, **kw)
