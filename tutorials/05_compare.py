# %% [markdown]
# # Tutorial 05 — The three methods side by side, and combined in one run
#
# Tutorials 01–03 each showed one method against fixed architectures. Here they meet on the same data, seeds,
# optimiser (Adam, constant η) and epoch budget:
#
# | run | what it is | code |
# |---|---|---|
# | small / big | fixed MLPs 784-64-10 and 784-300-100-10 | `minigrow/network.py` (`mlp`) |
# | sensli | SensLI growth from the small net (two insertions) | `minigrow/methods/sensli/loop.py` |
# | autotune | auto-tune from a deep plain block net | `minigrow/methods/bundles/autotune.py` |
# | pruning | Bernoulli pruning from the big net | `minigrow/methods/pruning/trainer.py` |
# | combined | grow → remove conflicting layers → prune → deterministic net, ONE run | `minigrow/experiments/compare.py` |
#
# The full comparison (5 seeds, MNIST and Fashion-MNIST) is `python -m minigrow compare` and its write-up
# docs/compare.md. This tutorial shows the combined run from the inside.
#
# Run: `python tutorials/05_compare.py` (about a minute: one seed, 10,000 MNIST images), or with
# `MINIGROW_QUICK=1` (seconds). It writes no files (the checkpoints go to a temporary folder that is deleted).

# %%
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

# The checkout this tutorial belongs to, found the same way from a script or a notebook run in any folder.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minigrow" / "__init__.py").is_file()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIGROW_QUICK") == "1"

from minigrow.experiments import compare as C                      # noqa: E402
from minigrow.methods.pruning import to_deterministic             # noqa: E402
from minigrow.train import evaluate                                # noqa: E402

cfg = C.QUICK if QUICK else C.FULL
X, y, Xt, yt = C.load_data("mnist", cfg)
print(f"{len(X)} training, {len(Xt)} test images; budget {cfg.epochs} epochs of Adam(η={cfg.lr}), batch {cfg.batch_size}")

# %% [markdown]
# ## 1. The schedule of the combined run
#
# One `PruningTrainer` trains the gated small net for all E epochs. Its gates start at θ = 1 and stay frozen
# (Bernoulli(1) = 1: the net is the plain small net) until the pruning phase. An epoch-end callback,
# `CombinedSchedule`, edits the network at fixed epochs:
#
# * end of the epochs in `insert_at`: SensLI's closed-form sensitivities of the identity candidates; the candidate
#   with the largest |score| is inserted (Dense w→w with V = I, then ReLU: the function does not change) and its
#   units get a gate;
# * end of `remove_at`: bundles of every hidden layer on the first `n_eval` training images; every inserted
#   (width-preserving) hidden layer with a conflicting bundle is removed. This edit changes the function;
# * epochs `remove_at`+1 … `binarize_at`: θ steps; units with θ ≤ ε are removed at epoch ends;
# * end of `binarize_at`: θ rounded to {0, 1}, zeros removed; fine-tune to E; then the gates disappear.
#
# Every edit goes through `minigrow.surgery`, so the Adam moments of the untouched parameters survive (the new layer
# starts at Adam step t = 0).

# %%
print(f"insert_at={cfg.insert_at}  remove_at={cfg.remove_at}  binarize_at={cfg.binarize_at}  E={cfg.epochs}")
tr = C.train_combined(X, y, seed=0, config=cfg)
for rec in tr.history.epochs:
    print(f"epoch {rec['epoch']:2d}  train loss {rec['train_loss']:.4f}  hidden widths after the epoch's edits "
          f"{rec['arch']}")
for ev in tr.history.events:
    print("  event:", {k: v for k, v in ev.items() if k in ("event", "epoch", "chosen", "removed", "conflicting")})

# %% [markdown]
# One optimiser, never reset: the first layer's Adam step count is the number of steps of the whole run.

# %%
first = tr.model.layers[0]
print(f"steps {tr.step}, Adam t of the first layer {first.state['W']['t']}")
assert first.state["W"]["t"] == tr.step
final, _ = to_deterministic(tr.model)
err = 1 - evaluate(final, "ce", Xt, yt)[1]
print(f"final deterministic net: hidden {C.architecture(final)}, {final.n_params():,} parameters, test error "
      f"{100 * err:.2f} %")

# %% [markdown]
# ## 2. Interrupt after an edit, resume, compare byte for byte
#
# The callback has no state of its own (what it does depends on the epoch count alone), and the trainer's checkpoint
# holds the edited network, the optimiser state, the RNG, θ and the history. Resume after the first insertion:

# %%
with tempfile.TemporaryDirectory() as tmp:
    a = C.train_combined(X, y, seed=1, config=cfg, checkpoint_dir=tmp)
    e = cfg.insert_at[0]
    b = C.train_combined(X, y, seed=1, config=cfg, resume=Path(tmp) / f"epoch-{e:04d}.npz")
same = all(np.array_equal(p, q) for la, lb in zip(a.model.layers, b.model.layers)
           for p, q in zip(la.params.values(), lb.params.values())) and len(a.model.layers) == len(b.model.layers)
print(f"resumed after epoch {e}: final parameters identical: {same}")
assert same

# %% [markdown]
# ## 3. The six runs for one seed
#
# (`python -m minigrow compare` runs them for 5 seeds and two data sets, with spreads and the Pareto plots.)

# %%
runs = [C.run_one(m, "mnist", 0, cfg) for m in C.METHODS]
print(C.format_table(C.summarize(runs)))

# %% [markdown]
# What to look for (the numbers of the 5-seed run are in docs/compare.md): the big net is the most accurate of the
# fixed nets and the most expensive to train; pruning from it keeps most of that accuracy at a fraction of the
# parameters but pays the big net's training cost; SensLI adds depth to the small net cheaply; the combined run
# trains at the small net's cost and ends smaller than the small net, but less accurate than pruning from the big
# net; and with the training η the bundle check finds no conflicting layer to remove, so that step is a no-op in
# this setting. In section 1 the training loss jumps when the θ steps start (sampled gates, units being removed)
# and recovers after the binarisation.
