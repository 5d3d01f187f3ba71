"""PyTorch's side of the benchmarks (bench/mlp_epoch.py, bench/conv_epoch.py): the same epochs as minigrow's Trainer —
Adam, cross-entropy, one ``Generator.permutation`` of the samples per epoch from the same seed — so that the two
libraries see the same batches in the same order. Imported only by the process that runs PyTorch."""
import time

import numpy as np


def torch_train(net, X, y, epochs, batch_size, seed, lr=1e-3):
    """Train ``net`` (a torch module) on the tensors ``X``, ``y``; returns ``[(wall s, CPU s)]`` per epoch."""
    import torch
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    lossf = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    times = []
    for _ in range(epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.from_numpy(rng.permutation(n))
        for s in range(0, n, batch_size):
            idx = perm[s:s + batch_size]
            xb, yb = X.index_select(0, idx), y.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            loss = lossf(net(xb), yb)
            loss.backward()
            opt.step()
            loss.item()                  # the minigrow trainer also reads every step's loss
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times
