"""The three methods, each a small package built on the core (layers, losses, optimisers, training loop, surgery).

Each package's first module, ``formulas``, holds the paper's equations as readable functions (same symbols as the
tutorial); the other modules hold the engineering (candidates and schedules, reports, trainers, settings).

* :mod:`minigrow.methods.sensli`   sensitivity-based layer insertion — Kreis, Herberg, Köhne, Schiela, Herzog,
  arXiv 2311.15995 (2023). Tutorial ``tutorials/01_sensli.py``.
* :mod:`minigrow.methods.bundles`  conflicting bundles, auto-tune by conflicting layer removal, lesion study —
  Peer, Stabinger, Rodriguez-Sanchez, WACV 2021 (arXiv 2011.02956) and arXiv 2103.04331.
  Tutorial ``tutorials/02_conflicting_bundles.py``.
* pruning — variational Bernoulli unit pruning, Guenter & Sideris. Tutorial ``tutorials/03_bernoulli_pruning.py``
  (:mod:`minigrow.pruning`; moves to ``minigrow.methods.pruning``).

Imports go one way: core → methods → experiments → cli. ``import minigrow`` does not import this package;
:func:`minigrow.io.load` imports a method module only when a file names one of its layer types
(:mod:`minigrow.layers.registry`).
"""
