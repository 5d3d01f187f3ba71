"""Exercise "conv2d": the 2-d convolution (cross-correlation) of NCHW images, with stride and zero padding.

W has shape (C_out, C_in, k, k), b shape (C_out,). With x_pad the input padded by p zeros on each side:

    out[n,o,i,j] = b_o + Σ_{c,p,q} W[o,c,p,q] · x_pad[n, c, i·s + p, j·s + q]      Ho = ⌊(H + 2p − k)/s⌋ + 1

Backward for δ = ∂L/∂out:
    ∂L/∂W[o,c,p,q] = Σ_{n,i,j} δ[n,o,i,j] · x_pad[n,c,i·s+p,j·s+q]      (a correlation of δ with the input)
    ∂L/∂b_o        = Σ_{n,i,j} δ[n,o,i,j]
    ∂L/∂x_pad[n,c,i·s+p,j·s+q] += W[o,c,p,q] · δ[n,o,i,j]   for every o, p, q, i, j   (then crop the padding)

Start with loops if you like (correct first), then vectorise with im2col (tutorial 04).
Grade it:  python -m minigrow grade conv2d.py      (the grader uses kernel 3, stride 2, padding 1)
"""
import numpy as np

from minigrow.layers import Layer

EXERCISE = "conv2d"


class Conv2D(Layer):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.k, self.stride, self.padding = kernel_size, stride, padding
        rng = np.random.default_rng(0)
        self.params["W"] = rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) * 0.3
        self.params["b"] = np.zeros(out_channels)
        self._init_grads()

    def forward(self, x, train=True):
        raise NotImplementedError("TODO: Conv2D.forward")

    def backward(self, dout, need_input_grad=True):
        raise NotImplementedError("TODO: Conv2D.backward")
