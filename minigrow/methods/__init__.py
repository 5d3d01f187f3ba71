"""The three methods, one package each; each package's first module (``formulas``) holds the paper's (or our
derivation's) formulas as readable plain functions, the other modules the engineering.

* :mod:`minigrow.methods.pruning`   variational Bernoulli unit pruning (after Guenter & Sideris)

The core (layers, losses, optimisers, training loop, io, checkpoints) imports nothing from here.
"""
