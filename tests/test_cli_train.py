"""``python -m minigrow train``: writes history.json and model.npz that reload; --help; bad arguments exit 2."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minigrow.cli import main
from minigrow.data import two_spirals
from minigrow.io import load

ROOT = Path(__file__).resolve().parent.parent


def test_train_spirals_writes_history_and_model(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", "spirals", "--epochs", "3", "--no-progress", "--no-plots", "--out", str(out)])
    assert code == 0
    hist = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in hist["epochs"]] == [1, 2, 3]
    assert len(hist["step_loss"]) == 3 * int(np.ceil(450 / 128))
    assert all(0.0 <= e["test_acc"] <= 1.0 for e in hist["epochs"])
    saved = load(out / "model.npz")
    model = saved["model"]
    assert [layer.params["W"].shape for layer in model.layers if "W" in layer.params] == [(20, 2), (20, 20), (2, 20)]
    assert saved["optimizer"] is not None and saved["optimizer"].name == "adam"
    d = two_spirals(rng=0)
    acc = float((model.predict(d.X_test) == d.y_test).mean())
    assert acc == pytest.approx(hist["epochs"][-1]["test_acc"], abs=1e-6)   # the reloaded model is the trained one
    assert "final:" in capsys.readouterr().out


def test_train_resnet_float64(tmp_path):
    out = tmp_path / "res"
    assert main(["train", "--arch", "resnet", "--hidden", "3,2", "--epochs", "1", "--batch-size", "0",
                 "--dtype", "float64", "--no-progress", "--no-plots", "--out", str(out)]) == 0
    model = load(out / "model.npz")["model"]
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Tanh", "ResidualBlock", "ResidualBlock",
                                                               "Dense"]
    assert model.dtype == np.float64


def test_help_in_a_subprocess():
    r = subprocess.run([sys.executable, "-m", "minigrow", "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "train" in r.stdout and "demo" in r.stdout
    r = subprocess.run([sys.executable, "-m", "minigrow", "train", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "--epochs" in r.stdout
    r = subprocess.run([sys.executable, "-m", "minigrow", "train", "--epochs", "x"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "--epochs" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("argv", [
    ["train", "--epochs", "-1"],
    ["train", "--data", "cifar"],
    ["train", "--lr", "0"],
    ["train", "--hidden", "3,x"],
    ["nonsense"],
])
def test_bad_arguments_exit_2(argv, capsys):
    assert main(argv) == 2                     # main() returns argparse's exit status instead of raising
    err = capsys.readouterr().err
    assert err.startswith("minigrow: error:") and len(err.strip().splitlines()) == 1


def test_bad_values_exit_2_with_one_line(tmp_path, capsys):
    code = main(["train", "--arch", "resnet", "--hidden", "3", "--no-progress", "--no-plots",
                 "--out", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--hidden" in err[0] and "WIDTH,BLOCKS" in err[0]
