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
