"""minigrow: networks that change their own architecture while they train — from scratch in NumPy.

Modules, one idea each:

* :mod:`minigrow.layers`      Dense, activations, ResidualBlock, Sequential (hand-written forward/backward)
* :mod:`minigrow.losses`      softmax cross-entropy, MSE
* :mod:`minigrow.optim`       SGD, Adam, StepLR (state survives structural edits)
* :mod:`minigrow.network`     MLP and residual-MLP builders
* :mod:`minigrow.train`       the training loop
* :mod:`minigrow.gradcheck`   numerical gradient checks (for tests and coursework)
* :mod:`minigrow.strategies`  hypothesis strategies for property-testing your own layers
* :mod:`minigrow.data`        two spirals, MNIST, IDX files
* :mod:`minigrow.io`          .npz save/load (no pickle); :mod:`minigrow.output` JSON results
* :mod:`minigrow.checkpoint`  checkpoints and exact resumption (:mod:`minigrow.trainstate` writes them)
* :mod:`minigrow.surgery`     structural edits: insert/remove layers, remove units

The three methods, one package each (each mirrored by a tutorial; the first module, ``formulas``, holds the
paper's equations):

* :mod:`minigrow.methods.sensli`   layer insertion, Kreis et al. 2023            tutorials/01_sensli.py
* :mod:`minigrow.methods.bundles`  conflicting bundles, auto-tune, lesion study  tutorials/02_conflicting_bundles.py
* :mod:`minigrow.methods.pruning`  Bernoulli unit and filter pruning, Guenter & Sideris  tutorials/03_bernoulli_pruning.py

Reproductions: :mod:`minigrow.experiments`; command line: :mod:`minigrow.cli`. Imports go one way —
core → methods → experiments → cli — and ``import minigrow`` loads the core only: :func:`minigrow.load` imports
a method module when a file names one of its layer types (:mod:`minigrow.layers.registry`).

Tutorial 00 (tutorials/00_backprop_by_hand.py) covers the core.
"""
from .layers import (Dense, LeakyReLU, ReLU, ResidualBlock, Sequential, Sigmoid, Tanh, Layer,
                     register_layer)
from .losses import MSE, SoftmaxCrossEntropy
from .network import mlp, residual_mlp
from .optim import SGD, Adam, StepLR
from .train import History, Trainer, TrainingDiverged, evaluate
from .io import load, load_model, save, save_model

__version__ = "0.1.0"

__all__ = [
    "Dense", "LeakyReLU", "ReLU", "ResidualBlock", "Sequential", "Sigmoid", "Tanh", "Layer", "register_layer",
    "MSE", "SoftmaxCrossEntropy", "mlp", "residual_mlp", "SGD", "Adam", "StepLR", "History", "Trainer",
    "TrainingDiverged", "evaluate", "load", "load_model", "save", "save_model", "__version__",
]
