"""End to end: every subcommand, on every bundled data set, with tiny settings — what users actually run.

Each run must exit 0 and leave a consistent output folder: a ``manifest.json`` (status ``complete``) whose files
exist with the recorded size and SHA-256, every JSON file strict (no bare NaN/Infinity), every ``.npz`` loadable,
no staging folder left behind. The MNIST path of ``train`` and ``insert`` had no such test and was broken (issue 10,
severe 1). Fashion-MNIST runs skip with a reason when the IDX files are not installed.
"""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import minigrow as mg
from minigrow.cli import main
from minigrow.data import FASHION_DIR

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--no-progress", "--no-plots"]


def fashion_available():
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    return all((FASHION_DIR / (n + ".gz")).exists() or (FASHION_DIR / n).exists() for n in names)


def data_param(name, *more):
    marks = [pytest.mark.skipif(not fashion_available(), reason=f"Fashion-MNIST not installed ({FASHION_DIR}; "
                                                                 f"Debian package dataset-fashion-mnist)")] \
        if name == "fashion" else []
    return pytest.param(name, *more, marks=marks, id="-".join([name, *more]))


DATA = [data_param(d) for d in ("spirals", "mnist", "fashion")]
SIZES = {"spirals": [], "mnist": ["--n-train", "300", "--n-test", "100"],
         "fashion": ["--n-train", "300", "--n-test", "100"]}


def strict_json(path):
    def refuse(token):
        raise AssertionError(f"{path}: non-strict JSON token {token}")
    return json.loads(Path(path).read_text(), parse_constant=refuse)


def assert_consistent(folder, status="complete", expect=()):
    """The folder's manifest matches its files; JSON strict; npz loadable; no staging left."""
    folder = Path(folder)
    man = strict_json(folder / "manifest.json")
    assert man["status"] == status, man
    for rel, entry in man["files"].items():
        p = folder / rel
        assert p.is_file(), f"{rel} listed in the manifest but missing"
        assert p.stat().st_size == entry["bytes"]
        assert hashlib.sha256(p.read_bytes()).hexdigest() == entry["sha256"], rel
        if p.suffix == ".json":
            strict_json(p)
        if p.suffix == ".npz":
            mg.load(p)
    for name in expect:
        assert name in man["files"], f"{name} not written"
    assert not list(folder.glob(".staging-*")), "a staging folder was left behind"
    return man


def run(argv):
    code = main([str(a) for a in argv])
    assert code == 0, f"exit {code} for {argv}"


def test_the_issue_command_train_mnist(tmp_path):
    """Verbatim from the issue: `python -m minigrow train --data mnist --n-train 500 --epochs 1`."""
    run(["train", "--data", "mnist", "--n-train", "500", "--epochs", "1", "--out", tmp_path, *FAST])
    assert_consistent(tmp_path, expect=["history.json", "model.npz"])
    assert mg.load(tmp_path / "model.npz")["model"].layers[0].params["W"].dtype == np.float32


@pytest.mark.parametrize("data,dtype", [data_param(d, "float32") for d in ("spirals", "mnist", "fashion")]
                         + [data_param("mnist", "float64")])
def test_train(data, dtype, tmp_path):
    run(["train", "--data", data, *SIZES[data], "--epochs", "1", "--hidden", "8", "--dtype", dtype,
         "--out", tmp_path, *FAST])
    assert_consistent(tmp_path, expect=["history.json", "model.npz"])
    assert mg.load(tmp_path / "model.npz")["model"].dtype == np.dtype(dtype)


@pytest.mark.parametrize("data", ["mnist"])
def test_train_resnet_sgd_checkpoints(data, tmp_path):
    run(["train", "--data", data, *SIZES[data], "--epochs", "2", "--arch", "resnet", "--hidden", "4,2",
         "--optimizer", "sgd", "--momentum", "0.5", "--step-size", "1", "--checkpoint-every", "1", "--out", tmp_path,
         *FAST])
    man = assert_consistent(tmp_path)
    assert man["checkpoints"] == ["epoch-0001.npz", "epoch-0002.npz"]
    run(["train", "--epochs", "3", "--resume", tmp_path / "checkpoints", "--checkpoint-every", "1", "--out",
         tmp_path, *FAST])
    assert_consistent(tmp_path)
    assert len(strict_json(tmp_path / "history.json")["epochs"]) == 3


@pytest.mark.parametrize("data", DATA)
def test_insert(data, tmp_path):
    run(["insert", "--data", data, *SIZES[data], "--epochs", "1,1", "--hidden", "6", "--batch-size", "64",
         "--out", tmp_path, *FAST])
    assert_consistent(tmp_path, expect=["history.json", "model.npz"])
    assert len(mg.load(tmp_path / "model.npz")["model"].layers) == 5            # one layer inserted


@pytest.mark.parametrize("data", DATA)
def test_prune_train(data, tmp_path):
    run(["prune", "--data", data, *SIZES[data], "--hidden", "8,8", "--epochs", "2", "--warmup", "1",
         "--out", tmp_path, *FAST])
    assert_consistent(tmp_path, expect=["history.json", "gated_model.npz", "model.npz"])


def test_train_with_plots_then_without(tmp_path):
    """A second run into the same folder replaces the first one's files; a plot the new run does not draw is
    removed (the folder holds one run, never a mix)."""
    run(["train", "--epochs", "1", "--out", tmp_path, "--no-progress"])
    assert "history.png" in assert_consistent(tmp_path)["files"]
    run(["train", "--epochs", "1", "--out", tmp_path, *FAST])
    assert "history.png" not in assert_consistent(tmp_path)["files"]
    assert not (tmp_path / "history.png").exists()


def test_bundles_measure_autotune_lesion(tmp_path):
    small = ["--n-train", "200", "--n-test", "100", "--n-eval", "64", "--no-progress"]
    run(["bundles", "measure", "--depth", "3", "--width", "8", "--epochs", "1", *small, "--out", tmp_path / "m"])
    assert_consistent(tmp_path / "m", expect=["bundles.json"])
    run(["train", "--data", "mnist", "--n-train", "200", "--n-test", "100", "--epochs", "1", "--hidden", "8",
         "--out", tmp_path / "t", *FAST])
    run(["bundles", "measure", "--model", tmp_path / "t" / "model.npz", *small, "--out", tmp_path / "m2"])
    assert_consistent(tmp_path / "m2", expect=["bundles.json"])
    run(["bundles", "autotune", "--counts", "4", "--widths", "6", "--epochs", "1", "--max-rounds", "2", *small,
         "--out", tmp_path / "a"])
    assert_consistent(tmp_path / "a", expect=["bundles_autotune.json"])
    run(["bundles", "lesion", "--blocks", "3", "--width", "6", "--hidden", "2", "--epochs", "1", "--repeats", "1",
         "--ks", "1,2", *small, "--out", tmp_path / "l"])
    assert_consistent(tmp_path / "l", expect=["bundles_lesion.json"])


@pytest.mark.parametrize("what", ["grid", "autotune", "autotune-blocks", "lesion"])
def test_bundles_reproduce_quick(what, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                          # the default quick folder is relative: runs/quick/bundles
    run(["reproduce", "bundles", what, "--quick", "--no-progress"])
    man = assert_consistent(tmp_path / "runs" / "quick" / "bundles")
    assert any(name.endswith(".json") for name in man["files"])


def test_insert_reproduce_quick(tmp_path):
    run(["reproduce", "sensli", "A", "--quick", "--seeds", "1", "--out", tmp_path, *FAST])
    assert_consistent(tmp_path, expect=["results/sensli_A.json"])


@pytest.mark.parametrize("what", ["toy", "mnist", "tradeoff", "grid"])
def test_prune_reproductions_quick(what, tmp_path):
    extra = {"toy": [], "mnist": ["--hidden", "16,8"], "tradeoff": ["--prices", "0.1", "--hidden", "16,8"],
             "grid": ["--seeds", "0", "--scales", "1", "--hiddens", "16-8", "--tag", "_t"]}[what]
    run(["reproduce", "pruning", what, "--quick", *extra, "--out", tmp_path, *FAST])
    man = assert_consistent(tmp_path)
    assert any(name.startswith("results/pruning_") for name in man["files"]), man["files"]


def test_demo_quick_core(tmp_path):
    run(["demo", "--quick", "--only", "core", "--no-progress", "--out", tmp_path])
    assert_consistent(tmp_path, expect=["summary.json", "core_history.png"])


def test_threads_flag_pins_blas(tmp_path):
    pytest.importorskip("threadpoolctl")
    run(["train", "--epochs", "1", "--threads", "1", "--out", tmp_path, *FAST])
    assert_consistent(tmp_path)
