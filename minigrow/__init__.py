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
* :mod:`minigrow.io`          .npz save/load (no pickle)
* :mod:`minigrow.checkpoint`  checkpoints and exact resumption

The three methods, one module each (each mirrored by a tutorial):

* :mod:`minigrow.sensli`    layer insertion, Kreis et al. 2023          tutorials/01_sensli.py
* :mod:`minigrow.bundles`   conflicting bundles, Peer et al. 2021       tutorials/02_conflicting_bundles.py
* :mod:`minigrow.autotune`  conflicting-layer removal, lesion study     tutorials/02_conflicting_bundles.py
* :mod:`minigrow.methods.pruning`  Bernoulli unit pruning, Guenter & Sideris   tutorials/03_bernoulli_pruning.py

Tutorial 00 (tutorials/00_backprop_by_hand.py) covers the core.
"""
from .layers import (Dense, LeakyReLU, ReLU, ResidualBlock, Sequential, Sigmoid, Tanh, Layer,
                     register_layer)
from .losses import MSE, SoftmaxCrossEntropy
from .network import mlp, residual_mlp
from .optim import SGD, Adam, StepLR
from .train import History, Trainer, TrainingDiverged, evaluate
from .io import load, load_model, save, save_model
# The method modules are not imported here (the core imports no method module); minigrow.load finds the layer types
# they define (Gate, DenseBlock) through the name table of minigrow.layers.registry.

__version__ = "0.1.0"

__all__ = [
    "Dense", "LeakyReLU", "ReLU", "ResidualBlock", "Sequential", "Sigmoid", "Tanh", "Layer", "register_layer",
    "MSE", "SoftmaxCrossEntropy", "mlp", "residual_mlp", "SGD", "Adam", "StepLR", "History", "Trainer",
    "TrainingDiverged", "evaluate", "load", "load_model", "save", "save_model", "__version__",
]
