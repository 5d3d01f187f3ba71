"""The command line on bad input: ONE line ``minigrow: error: …`` on stderr, exit status 2, no traceback.

A diverging run exits with status 3 after saving the last finite model. Most cases call ``minigrow.cli.main`` in
process (it returns the exit status); two run ``python -m minigrow`` for real.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrow as mg
from minigrow.cli import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--no-progress", "--no-plots", "--epochs", "1", "--hidden", "4"]


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, needles, status=2):
    assert code == status, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
    assert lines[0].startswith("minigrow: error: "), lines[0]
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], f"{lines[0]!r} does not mention {n!r}"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A checkpoint of a real run, a plain model file, a corrupt file and a regular file used as --out."""
    d = tmp_path_factory.mktemp("cli")
    assert main(["train", "--out", str(d / "run"), "--checkpoint-every", "1", *FAST, "--epochs", "2"]) == 0
    ck = d / "run" / "checkpoints" / "epoch-0002.npz"
    assert ck.exists()
    assert main(["insert", "--epochs", "2,2", "--out", str(d / "ins"), "--checkpoint-every", "1", "--no-progress",
                 "--no-plots"]) == 0
    ick = d / "ins" / "checkpoints" / "epoch-0004.npz"
    assert ick.exists()
    assert main(["prune", "--data", "spirals", "--hidden", "8,8", "--epochs", "2", "--warmup", "1", "--out",
                 str(d / "prn"), "--checkpoint-every", "1", "--no-progress", "--no-plots"]) == 0
    pck = d / "prn" / "checkpoints" / "epoch-0002.npz"
    assert pck.exists()
    bad = d / "corrupt.npz"
    bad.write_bytes(ck.read_bytes()[:500])
    regular = d / "a_file"
    regular.write_text("x")
    return {"ck": ck, "ick": ick, "pck": pck, "model": d / "run" / "model.npz", "bad": bad, "file": regular, "dir": d}


# (id, argv (with {ck}, {ick} (an insert checkpoint), {pck} (a prune checkpoint), {model}, {bad}, {file}, {tmp} placeholders), needles)
CLI_CASES = [
    ("no command", [], ["COMMAND"]),
    ("unknown command", ["fly"], ["invalid choice", "fly"]),
    ("unknown flag", ["train", "--speed", "3"], ["unrecognized", "--speed"]),
    ("lr negative", ["train", "--lr", "-1"], ["--lr", "> 0", "-1"]),
    ("lr zero", ["train", "--lr", "0"], ["--lr"]),
    ("lr nan", ["train", "--lr", "nan"], ["--lr", "nan"]),
    ("lr inf", ["train", "--lr", "inf"], ["--lr"]),
    ("lr text", ["train", "--lr", "fast"], ["--lr", "fast"]),
    ("momentum 1", ["train", "--momentum", "1"], ["--momentum", "[0, 1)"]),
    ("momentum negative", ["train", "--momentum", "-0.5"], ["--momentum"]),
    ("momentum nan", ["train", "--momentum", "nan"], ["--momentum"]),
    ("weight decay negative", ["train", "--weight-decay", "-1"], ["--weight-decay"]),
    ("epochs negative", ["train", "--epochs", "-3"], ["--epochs", ">= 0"]),
    ("epochs float", ["train", "--epochs", "2.5"], ["--epochs", "integer"]),
    ("batch size negative", ["train", "--batch-size", "-1"], ["--batch-size"]),
    ("hidden zero", ["train", "--hidden", "0,5"], ["--hidden", "positive"]),
    ("hidden text", ["train", "--hidden", "wide"], ["--hidden"]),
    ("seed negative", ["train", "--seed", "-1"], ["--seed"]),
    ("step size zero", ["train", "--step-size", "0"], ["--step-size"]),
    ("gamma zero", ["train", "--gamma", "0"], ["--gamma"]),
    ("data unknown", ["train", "--data", "cifar"], ["--data", "cifar"]),
    ("dtype unknown", ["train", "--dtype", "float16"], ["--dtype"]),
    ("n-train zero", ["train", "--n-train", "0"], ["--n-train"]),
    ("checkpoint-every negative", ["train", "--checkpoint-every", "-1"], ["--checkpoint-every"]),
    # errors found inside run()
    ("resnet hidden needs two", ["train", "--arch", "resnet", "--hidden", "3", "--out", "{tmp}/o",
                                 "--no-progress", "--no-plots"], ["--hidden", "WIDTH,BLOCKS"]),
    ("n-train beyond spirals", ["train", "--n-train", "5000", "--out", "{tmp}/o", *FAST], ["--n-train", "450"]),
    ("resume missing file", ["train", "--resume", "{tmp}/nope.npz", "--out", "{tmp}/o"], ["nope.npz"]),
    ("resume corrupt file", ["train", "--resume", "{bad}", "--out", "{tmp}/o"], ["corrupt.npz"]),
    ("resume a model file", ["train", "--resume", "{model}", "--out", "{tmp}/o"], ["not a checkpoint"]),
    ("resume folder without checkpoints", ["train", "--resume", "{tmp}", "--out", "{tmp}/o"], ["no checkpoint"]),
    ("resume with a different lr", ["train", "--resume", "{ck}", "--lr", "0.5", "--out", "{tmp}/o"],
     ["--lr", "0.5", "drop the flag"]),
    ("resume with a different arch", ["train", "--resume", "{ck}", "--arch", "resnet", "--out", "{tmp}/o"],
     ["--arch"]),
    ("resume fewer epochs than done", ["train", "--resume", "{ck}", "--epochs", "1", "--out", "{tmp}/o"],
     ["--epochs", "already trained 2"]),
    ("out is a regular file", ["train", "--out", "{file}", *FAST], ["a_file"]),
    # method commands (the same machinery)
    ("insert epochs negative", ["insert", "--epochs", "-1"], ["--epochs"]),
    ("insert lr text", ["insert", "--lr", "x"], ["--lr"]),
    ("insert mode unknown", ["insert", "--mode", "best"], ["--mode", "best"]),
    ("insert weight decay negative", ["insert", "--weight-decay", "-1"], ["--weight-decay", ">= 0"]),
    ("insert checkpoint-every negative", ["insert", "--checkpoint-every", "-2"], ["--checkpoint-every"]),
    ("insert checkpoint-every text", ["insert", "--checkpoint-every", "often"], ["--checkpoint-every", "often"]),
    ("insert checkpoints with reproduce", ["insert", "--reproduce", "A", "--checkpoint-every", "1"],
     ["--checkpoint-every", "--reproduce"]),
    ("insert resume with reproduce", ["insert", "--reproduce", "A", "--resume", "{ick}"], ["--resume", "--reproduce"]),
    ("insert resume missing file", ["insert", "--resume", "{tmp}/nope.npz", "--out", "{tmp}/o"], ["nope.npz"]),
    ("insert resume corrupt file", ["insert", "--resume", "{bad}", "--out", "{tmp}/o"], ["corrupt.npz"]),
    ("insert resume a model file", ["insert", "--resume", "{model}", "--out", "{tmp}/o"], ["not a checkpoint"]),
    ("insert resume folder without checkpoints", ["insert", "--resume", "{tmp}", "--out", "{tmp}/o"],
     ["no checkpoint"]),
    ("insert resume a train checkpoint", ["insert", "--resume", "{ck}", "--out", "{tmp}/o"],
     ["epoch-0002.npz", "not written by", "insert"]),
    ("train resume an insert checkpoint", ["train", "--resume", "{ick}", "--out", "{tmp}/o"],
     ["not written by", "train"]),
    ("insert resume with a different lr", ["insert", "--resume", "{ick}", "--lr", "0.5", "--out", "{tmp}/o"],
     ["--lr", "0.5", "drop the flag"]),
    ("insert resume with other epochs", ["insert", "--resume", "{ick}", "--epochs", "2,3", "--out", "{tmp}/o"],
     ["--epochs", "[2, 3]"]),
    ("insert resume with another mode", ["insert", "--resume", "{ick}", "--mode", "abs_min", "--out", "{tmp}/o"],
     ["--mode", "abs_min"]),
    ("prune gamma negative", ["prune", "--data", "spirals", "--gamma", "-1", "--out", "{tmp}/o", "--no-plots"],
     ["--gamma"]),
    ("prune eps above 1", ["prune", "--data", "spirals", "--eps", "2", "--out", "{tmp}/o", "--no-plots"], ["--eps"]),
    ("prune eta-theta negative", ["prune", "--eta-theta", "-1"], ["--eta-theta"]),
    ("prune estimator unknown", ["prune", "--estimator", "x"], ["--estimator"]),
    ("prune hidden zero", ["prune", "--hidden", "0"], ["--hidden"]),
    ("prune epochs negative", ["prune", "--epochs", "-2"], ["--epochs"]),
    ("prune price unknown", ["prune", "--price", "flops"], ["--price"]),
    ("prune polish negative", ["prune", "--polish", "-1"], ["--polish"]),
    ("prune lr-decay zero", ["prune", "--lr-decay", "0"], ["--lr-decay"]),
    ("prune tradeoff gammas text", ["prune", "tradeoff", "--gammas", "a,b"], ["--gammas"]),
    ("prune tradeoff with checkpoint-every", ["prune", "tradeoff", "--checkpoint-every", "1"],
     ["--checkpoint-every"]),
    ("prune checkpoint-every negative", ["prune", "--checkpoint-every", "-1"], ["--checkpoint-every"]),
    ("prune checkpoint-every text", ["prune", "--checkpoint-every", "often"], ["--checkpoint-every"]),
    ("prune mnist with checkpoint-every", ["prune", "mnist", "--checkpoint-every", "1"], ["--checkpoint-every"]),
    ("prune toy with resume", ["prune", "toy", "--resume", "{pck}"], ["--resume"]),
    ("prune resume missing file", ["prune", "--resume", "{tmp}/nope.npz", "--out", "{tmp}/o"], ["nope.npz"]),
    ("prune resume corrupt file", ["prune", "--resume", "{bad}", "--out", "{tmp}/o"], ["corrupt.npz"]),
    ("prune resume a model file", ["prune", "--resume", "{model}", "--out", "{tmp}/o"], ["not a checkpoint"]),
    ("prune resume folder without checkpoints", ["prune", "--resume", "{tmp}", "--out", "{tmp}/o"],
     ["no checkpoint"]),
    ("prune resume a train checkpoint", ["prune", "--resume", "{ck}", "--out", "{tmp}/o"], ["--resume", "prune"]),
    ("train resume a prune checkpoint", ["train", "--resume", "{pck}", "--out", "{tmp}/o"], ["--resume", "train"]),
    ("prune resume with a different price", ["prune", "--resume", "{pck}", "--price", "0.7", "--out", "{tmp}/o"],
     ["--price", "0.7"]),
    ("prune resume with other widths", ["prune", "--resume", "{pck}", "--hidden", "4,4", "--out", "{tmp}/o"],
     ["--hidden"]),
    ("prune resume fewer epochs than done", ["prune", "--resume", "{pck}", "--epochs", "1", "--out", "{tmp}/o"],
     ["--epochs", "2"]),
    ("bundles no action", ["bundles"], ["ACTION"]),
    ("bundles measure depth text", ["bundles", "measure", "--depth", "deep"], ["--depth"]),
    ("bundles measure missing model", ["bundles", "measure", "--model", "{tmp}/none.npz", "--out", "{tmp}/o"],
     ["none.npz"]),
    ("bundles measure corrupt model", ["bundles", "measure", "--model", "{bad}", "--out", "{tmp}/o"],
     ["corrupt.npz"]),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(case, files, tmp_path, capsys):
    name, argv, needles = case
    sub = {"{ck}": files["ck"], "{ick}": files["ick"], "{pck}": files["pck"], "{model}": files["model"], "{bad}": files["bad"], "{file}": files["file"],
           "{tmp}": tmp_path}
    args = []
    for a in argv:
        for k, v in sub.items():
            a = a.replace(k, str(v))
        args.append(a)
    code, out, err = run_cli(args, capsys)
    assert_one_line_error(code, err, needles)


def test_cli_case_count():
    print(f"\n{len(CLI_CASES)} command-line bad-input cases")
    assert len(CLI_CASES) >= 40


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert main(["train", "--help"]) == 0
    assert "--checkpoint-every" in capsys.readouterr().out


def test_divergence_exits_3_and_saves_the_last_finite_model(tmp_path, capsys):
    code, out, err = run_cli(["train", "--optimizer", "sgd", "--lr", "1e30", "--out", tmp_path, *FAST,
                              "--epochs", "3", "--hidden", "16,16"], capsys)
    assert_one_line_error(code, err, ["training diverged", "step"], status=3)
    saved = mg.load(tmp_path / "model.npz")["model"]
    assert all(np.isfinite(layer.params[k]).all() for layer in saved.layers for k in layer.params)
    assert (tmp_path / "history.json").exists()


def _real(argv, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MINIGROW_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "minigrow", *argv], capture_output=True, text=True, env=env,
                          cwd=tmp_path)


def test_real_process_bad_input(tmp_path):
    p = _real(["train", "--lr", "-1"], tmp_path)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("minigrow: error: ") and "Traceback" not in p.stderr


def test_real_process_library_error(tmp_path):
    """An error raised inside the library (not by argparse) also becomes one line and status 2."""
    (tmp_path / "junk.npz").write_text("not a model")
    p = _real(["train", "--resume", "junk.npz"], tmp_path)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "junk.npz" in p.stderr and "Traceback" not in p.stderr
