"""Determinism: the same seed gives bit-identical results, for the library and for every command.

Each command is run twice in process into two folders; every ``.npz`` must hold the same arrays (same bytes) and
every ``.json`` the same values once wall-clock fields (seconds, …) are dropped. A different seed must change the
result (so the comparison can fail).
"""
import json
from pathlib import Path

import numpy as np
import pytest

import minigrow as mg
from minigrow.cli import main
from minigrow.data import two_spirals

TIMING = ("seconds", "time", "elapsed", "wall", "duration")


def _strip(obj):
    if isinstance(obj, str) and obj.startswith("{"):      # JSON text inside the meta (SensLI's checkpointed records)
        try:
            return _strip(json.loads(obj))
        except ValueError:
            return obj
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not any(t in k.lower() for t in TIMING)}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def snapshot(folder):
    """Every result file of a run folder: arrays as bytes, JSON without timing fields."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        rel = str(p.relative_to(folder))
        if p.name == "manifest.json":      # SHA-256 of files that hold wall-clock fields; checked in test_run_folder
            continue
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as f:
                out[rel] = {k: (f[k].dtype.str, f[k].shape, f[k].tobytes()) for k in f.files
                            if k != "__meta__" and k != "__digest__"}
                meta = json.loads(str(f["__meta__"])) if "__meta__" in f.files else None
                out[rel + ":meta"] = _strip(meta)
        elif p.suffix == ".json":
            out[rel] = _strip(json.loads(p.read_text()))
    return out


def twice(argv, tmp_path, seed_flag="--seed"):
    snaps = []
    for run in ("a", "b"):
        code = main([*argv, "--out", str(tmp_path / run)])
        assert code == 0
        snaps.append(snapshot(tmp_path / run))
    assert snaps[0], "the command wrote no result files"
    return snaps


COMMANDS = {
    "train_mlp_adam": ["train", "--epochs", "3", "--hidden", "8,8", "--no-progress", "--no-plots"],
    "train_resnet_sgd_steplr": ["train", "--arch", "resnet", "--hidden", "3,2", "--optimizer", "sgd", "--lr", "0.1",
                                "--momentum", "0.9", "--step-size", "1", "--gamma", "0.7", "--batch-size", "0",
                                "--epochs", "5", "--no-progress", "--no-plots"],
    "train_checkpoints": ["train", "--epochs", "3", "--hidden", "6", "--checkpoint-every", "1", "--no-progress",
                          "--no-plots"],
    "insert": ["insert", "--epochs", "15,15", "--no-progress", "--no-plots"],
    "insert_resnet": ["insert", "--arch", "resnet", "--hidden", "3,1", "--epochs", "10,10,10", "--no-progress",
                      "--no-plots"],
    "insert_checkpoints": ["insert", "--epochs", "4,4", "--checkpoint-every", "2", "--optimizer", "adam", "--lr",
                           "0.01", "--batch-size", "64", "--step-size", "2", "--no-progress", "--no-plots"],
    "bundles_measure": ["bundles", "measure", "--depth", "2", "--width", "8", "--epochs", "1", "--n-train", "300",
                        "--n-test", "100", "--n-eval", "100", "--no-progress"],
    "bundles_autotune": ["bundles", "autotune", "--counts", "6", "--widths", "8", "--epochs", "2",
                         "--max-rounds", "3", "--n-train", "300", "--n-test", "100", "--n-eval", "100",
                         "--no-progress"],
    "bundles_lesion": ["bundles", "lesion", "--blocks", "4", "--width", "8", "--hidden", "2", "--epochs", "1",
                       "--repeats", "2", "--ks", "1,2", "--n-train", "300", "--n-test", "100", "--n-eval", "100",
                       "--no-progress"],
}


def _available(argv):
    from minigrow.cli import COMMANDS as REGISTERED
    return argv[0] in REGISTERED


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_is_deterministic(name, tmp_path):
    argv = COMMANDS[name]
    if not _available(argv):
        pytest.skip(f"command {argv[0]!r} not registered yet")
    a, b = twice([*argv, "--seed", "3"], tmp_path)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k], f"{name}: {k} differs between two runs with the same seed"
    c = twice([*argv, "--seed", "4"], tmp_path / "other")[0]
    assert any(a[k] != c.get(k) for k in a), f"{name}: the seed has no effect, the test could not fail"


def test_prune_command_is_deterministic(tmp_path):
    from minigrow.cli import COMMANDS as REGISTERED
    if "prune" not in REGISTERED:
        pytest.skip("the prune command is not registered yet")
    argv = ["prune", "--data", "spirals", "--hidden", "16,16", "--epochs", "3", "--gamma", "20", "--no-progress",
            "--no-plots"]
    a, b = twice([*argv, "--seed", "1"], tmp_path)
    assert a.keys() == b.keys() and {"model.npz", "history.json"} <= set(a)
    for k in a:
        assert a[k] == b[k], f"prune: {k} differs between two runs with the same seed"
    c = twice([*argv, "--seed", "2"], tmp_path / "other")[0]
    assert any(a[k] != c.get(k) for k in a)


# ---------------------------------------------------------------------------------------------------------------
# the library, in process
D = two_spirals(rng=0)


def _train(seed, dtype):
    model = mg.mlp([2, 16, 16, 2], rng=seed, dtype=dtype)
    tr = mg.Trainer(model, "ce", mg.Adam(1e-2), batch_size=32, rng=seed, progress=False, dtype=dtype)
    tr.fit(D.X_train, D.y_train, 3, D.X_test, D.y_test)
    return [p.tobytes() for layer in model.layers for p in layer.params.values()], tr.history.step_loss


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trainer_is_deterministic(dtype):
    assert _train(5, dtype) == _train(5, dtype)
    assert _train(5, dtype) != _train(6, dtype)


def test_pruning_trainer_is_deterministic():
    pruning = pytest.importorskip("minigrow.methods.pruning")

    def run(seed):
        model = pruning.gated_mlp([2, 12, 12, 2], rng=seed)
        tr = pruning.PruningTrainer(model, "ce", mg.Adam(1e-2), batch_size=50, rng=seed,
                                    settings=pruning.PLAIN_SETTINGS, price=1.0, eta_theta=0.05, warmup_epochs=1,
                                    progress=False)
        tr.fit(D.X_train, D.y_train, 3)
        return ([p.tobytes() for layer in model.layers for p in layer.params.values()]
                + [layer.theta.tobytes() for layer in model.layers if hasattr(layer, "theta")])
    assert run(1) == run(1)
    assert run(1) != run(2)


def test_sensli_train_is_deterministic():
    sensli = pytest.importorskip("minigrow.methods.sensli")

    def run(seed):
        model = mg.mlp([2, 5, 2], rng=seed)
        res = sensli.sensli_train(model, D.X_train, D.y_train, [10, 10], rng=seed, lr=0.2)
        return [p.tobytes() for layer in model.layers for p in layer.params.values()], repr(res.as_dict()
                                                                                             .get("positions"))
    assert run(0) == run(0)
    assert run(0) != run(1)
