"""One source of defaults (settings dataclasses shared by library and CLI) and the aligned API."""
from __future__ import annotations

import numpy as np
import pytest

from minigrow.cli import build_parser
from minigrow.data import two_spirals
from minigrow.layers import Dense, ReLU, Sequential
from minigrow.methods import bundles as Bn
from minigrow.methods import sensli as S
from minigrow.network import mlp
from minigrow.optim import SGD, Adam


def test_insert_command_defaults_are_the_library_settings():
    args = build_parser().parse_args(["insert"])
    s = S.SensLISettings()
    for name in ("mode", "position", "tau", "optimizer", "lr", "weight_decay", "step_size", "gamma", "decrease",
                 "form"):
        assert getattr(args, name) == getattr(s, name), name
    assert args.epochs == list(s.epochs)


def test_bundles_command_defaults_are_the_library_settings():
    a = build_parser().parse_args(["bundles", "autotune"])
    t = Bn.AutotuneSettings()
    assert (a.rule, a.epochs, a.max_rounds, a.n_eval, a.lr, a.batch_size) == \
        (t.rule, t.epochs, t.max_rounds, t.n_eval, t.lr, t.batch_size)
    m = build_parser().parse_args(["bundles", "measure"])
    assert (m.lr, m.batch_size, m.n_eval) == (Bn.BundleSettings().lr, Bn.BundleSettings().batch_size,
                                              Bn.BundleSettings().n_eval)


def test_sensli_train_takes_an_optimiser_object_or_factory_like_the_name():
    d = two_spirals(rng=0)

    def run(**kw):
        r = S.sensli_train(mlp([2, 5, 2], rng=0), d.X_train, d.y_train, [3, 3], rng=1, **kw)
        return np.array(r.train_loss), r.trainer.optimizer

    by_name, _ = run(optimizer="adam", lr=0.01, weight_decay=1e-3)
    by_object, opt = run(optimizer=Adam(0.01, weight_decay=1e-3))
    by_factory, _ = run(optimizer=lambda: Adam(0.01, weight_decay=1e-3))
    np.testing.assert_array_equal(by_name, by_object)
    np.testing.assert_array_equal(by_name, by_factory)
    assert isinstance(opt, Adam)
    with pytest.raises(ValueError, match="lr"):
        run(optimizer=SGD(0.1), lr=0.2)
    with pytest.raises(TypeError, match="optimizer"):
        run(optimizer=lambda: "sgd")
    with pytest.raises(TypeError, match="unknown setting"):
        run(learning_rate=0.1)


def test_sensli_settings_object_equals_keywords():
    d = two_spirals(rng=0)
    s = S.SensLISettings(epochs=(3, 3), lr=0.1, mode="abs_min")
    a = S.sensli_train(mlp([2, 5, 2], rng=0), d.X_train, d.y_train, settings=s, rng=2)
    b = S.sensli_train(mlp([2, 5, 2], rng=0), d.X_train, d.y_train, [3, 3], lr=0.1, mode="abs_min", rng=2)
    assert a.train_loss == b.train_loss and a.insertions[0]["chosen"] == b.insertions[0]["chosen"]


def _spiral_like(n=300):
    d = two_spirals(rng=0)
    return d.X_train[:n], d.y_train[:n]


def test_autotune_rng_int_equals_deprecated_seed_and_accepts_a_generator():
    X, y = _spiral_like()
    a = Bn.autotune(X, y, [2], [8], epochs=1, n_eval=64, rng=4)
    with pytest.warns(DeprecationWarning, match="rng"):
        b = Bn.autotune(X, y, [2], [8], epochs=1, n_eval=64, seed=4)
    assert a.as_dict() == {**b.as_dict(), "rounds": [dict(r, seconds=a.rounds[i]["seconds"])
                                                      for i, r in enumerate(b.rounds)]}
    c = Bn.autotune(X, y, [2], [8], epochs=1, n_eval=64, rng=np.random.default_rng(0))
    assert c.model is not None


def test_autotune_with_a_user_model_builder_of_nested_sequential_blocks():
    X, y = _spiral_like()
    built = []

    def build(counts, rng):
        layers, prev = [], 2
        for _ in range(counts[0]):
            layers.append(Sequential([Dense(prev, 8, rng=rng), ReLU()]))
            prev = 8
        built.append(list(counts))
        return Sequential(layers + [Dense(prev, 2, rng=rng)])

    res = Bn.autotune(X, y, [3], build=build, epochs=2, n_eval=64, rng=0)
    assert built[0] == [3] and res.model is not None
    assert len(res.rounds[0].get("block_entropy", [0, 0, 0])) == 3


def test_autotune_refuses_a_builder_whose_blocks_do_not_match_the_counts():
    X, y = _spiral_like()

    def build(counts, rng):          # no reportable block, and a dead hidden layer: conflicting at once
        return Sequential([Dense(2, 4, init="zeros"), ReLU(), Dense(4, 2, rng=rng)])

    with pytest.raises(ValueError, match="reported blocks"):
        Bn.autotune(X, y, [3], build=build, epochs=1, n_eval=64, rule="all_types", rng=0)


def test_autotune_needs_block_widths_or_a_builder():
    X, y = _spiral_like()
    with pytest.raises(ValueError, match="block_widths"):
        Bn.autotune(X, y, [2], epochs=1)


def test_block_widths_flag_and_its_older_spelling():
    p = build_parser()
    assert p.parse_args(["bundles", "autotune", "--block-widths", "8,4"]).widths == [8, 4]
    assert p.parse_args(["bundles", "autotune", "--widths", "8,4"]).widths == [8, 4]
