"""Plot helpers. matplotlib is imported lazily (only when a plot is drawn), so the core library needs NumPy alone.
In a script the helpers use the non-interactive Agg backend (they write files); inside IPython / Jupyter they keep
the notebook's backend, so figures also appear inline."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

__all__ = ["pyplot", "plot_history", "savefig"]


def _in_ipython():
    """True inside an IPython shell or Jupyter kernel (only looked up if IPython is already imported)."""
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None


def pyplot():
    """Return ``matplotlib.pyplot`` (Agg backend outside IPython), or raise a clear error if matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'minigrow[plot]'") from None
    if not _in_ipython():
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def savefig(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    if _in_ipython() and "ipykernel" in sys.modules:      # a notebook shows the figure it just saved
        from IPython.display import display
        display(fig)
    pyplot().close(fig)
    return path


def plot_history(history, path, title=None):
    """Two panels: training loss per step (and per epoch), test accuracy per epoch."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = np.asarray(history.step_loss, dtype=float)
    if steps.size:
        a1.plot(np.arange(1, steps.size + 1), steps, lw=0.6, alpha=0.5, label="per step")
    ep = history.column("epoch")
    if ep.size:
        per_epoch = steps.size / max(len(ep), 1)
        a1.plot(ep * per_epoch, history.column("train_loss"), "o-", ms=3, label="per epoch (mean)")
    a1.set_xlabel("step")
    a1.set_ylabel("training loss")
    a1.set_yscale("log")
    a1.legend()
    acc = history.column("test_acc")
    if np.isfinite(acc).any():
        a2.plot(ep, 100 * (1 - acc), "o-", ms=3)
        a2.set_ylabel("test error (%)")
    a2.set_xlabel("epoch")
    if title:
        fig.suptitle(title)
    return savefig(fig, path)
