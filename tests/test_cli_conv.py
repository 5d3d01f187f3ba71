"""`python -m minigrow train --arch lenet5|lenet5-classic|vgg|conv-resnet` on the image data sets, end to end: the
run succeeds, its folder is consistent, the saved conv net (with batch-norm buffers) reloads to the same
predictions, and a checkpointed run resumes bit-identically to an uninterrupted one."""
import numpy as np
import pytest

import minigrow as mg
from minigrow.cli import main
from minigrow.data import load_mnist

from test_cli_e2e import DATA, FAST, SIZES, assert_consistent

CONV = ["lenet5", "lenet5-classic", "vgg", "conv-resnet"]
IMAGES = [d for d in DATA if getattr(d, "values", (d,))[0] != "spirals"]


@pytest.mark.parametrize("arch", CONV)
@pytest.mark.parametrize("data", IMAGES)
def test_train_conv_arch(arch, data, tmp_path):
    extra = ["--blocks", "1,1", "--width", "4"] if arch in ("vgg", "conv-resnet") else []
    rc = main(["train", "--data", data, *SIZES[data], "--epochs", "1", "--arch", arch, *extra, "--out",
               str(tmp_path / "o"), *FAST])
    assert rc == 0
    assert_consistent(tmp_path / "o")
    model = mg.load(tmp_path / "o" / "model.npz")["model"]
    assert type(model.layers[0]).__name__ == "Conv2D"


def test_saved_conv_resnet_predicts_the_same(tmp_path):
    main(["train", "--data", "mnist", "--n-train", "200", "--n-test", "50", "--epochs", "1", "--arch", "conv-resnet",
          "--blocks", "1,1", "--width", "4", "--out", str(tmp_path / "o"), *FAST])
    model = mg.load(tmp_path / "o" / "model.npz")["model"]
    bn = [lay for _, lay in model.named_layers() if type(lay).__name__ == "BatchNorm2d"]
    assert bn and not np.all(bn[0].buffers["running_mean"] == 0)          # trained statistics came back
    X = load_mnist(n_train=10, n_test=10, layout="nchw").X_test
    a = model.predict_logits(X)
    b = mg.load(tmp_path / "o" / "model.npz")["model"].predict_logits(X)
    np.testing.assert_array_equal(a, b)


def test_conv_resume_is_bit_identical(tmp_path):
    args = ["--data", "mnist", "--n-train", "256", "--n-test", "64", "--arch", "conv-resnet", "--blocks", "1,1",
            "--width", "4", "--batch-size", "64", *FAST]
    assert main(["train", *args, "--epochs", "3", "--out", str(tmp_path / "full")]) == 0
    assert main(["train", *args, "--epochs", "2", "--checkpoint-every", "1", "--out", str(tmp_path / "part")]) == 0
    assert main(["train", "--resume", str(tmp_path / "part" / "checkpoints"), "--epochs", "3", "--out",
                 str(tmp_path / "resumed"), *FAST]) == 0
    full = mg.load(tmp_path / "full" / "model.npz")
    res = mg.load(tmp_path / "resumed" / "model.npz")
    for (la, ka), (lb, kb) in zip(full["model"].parameters(), res["model"].parameters()):
        assert la.params[ka].tobytes() == lb.params[kb].tobytes()
    for (_, la), (_, lb) in zip(full["model"].named_layers(), res["model"].named_layers()):
        for k in la.buffers:
            assert la.buffers[k].tobytes() == lb.buffers[k].tobytes(), k


def test_conv_arch_refuses_spirals_and_dense_flags(tmp_path, capsys):
    assert main(["train", "--arch", "vgg", "--out", str(tmp_path / "a"), *FAST]) == 2
    assert "image data" in capsys.readouterr().err
    assert main(["train", "--data", "mnist", "--arch", "lenet5", "--hidden", "30", "--out", str(tmp_path / "b"),
                 *FAST]) == 2
    assert "--hidden" in capsys.readouterr().err
    assert main(["train", "--data", "mnist", "--arch", "mlp", "--blocks", "2", "--out", str(tmp_path / "c"),
                 *FAST]) == 2
    assert "--blocks" in capsys.readouterr().err
