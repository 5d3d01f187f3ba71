"""Output folders, committed results, faults (issue 10): the cases users actually hit.

* severe 3 — a new run into a folder with an earlier run's checkpoints; severe 4 — ``--quick`` never touches
  docs/results or docs/figures;
* output paths checked before the work starts (file, read-only folder, file as a parent, FIFO/device/link/folder
  in a target's place, names escaping --out), ``--resume``/``--model`` on a FIFO (used to hang);
* the folder lock: two runs into one folder (a real concurrent pair of processes);
* a full disk (a small tmpfs when root, else RLIMIT_FSIZE in a subprocess): the previous run's files and manifest
  stay intact and consistent;
* divergence saves the model and the history for every command, as strict JSON;
* flags that contradict a checkpoint or have no effect are refused; sizes that cannot fit give one line;
* checkpoints whose digest is right but whose structure is not → CorruptFileError.

``FAULT_CASES`` and ``CLI_ROUND2`` are counted by ``test_fault_case_count`` (the figure in docs/reliability.md).
"""
import contextlib
import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minigrow as mg
from minigrow.checkpoint import load_checkpoint, resume
from minigrow.cli import main
from minigrow.cli.common import LOCK, RunFolder
from minigrow.io import CorruptFileError, _digest

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--no-progress", "--no-plots"]
TRAIN = ["train", "--epochs", "1", "--hidden", "4", *FAST]

from test_cli_e2e import assert_consistent, strict_json   # noqa: E402


def cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code, err, needles, status=2):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == status, err
    assert len(lines) == 1 and lines[0].startswith("minigrow: error: "), err
    for n in needles:
        assert n in lines[0], f"{lines[0]!r} does not mention {n!r}"


def digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file() and p.name != ".minigrow.lock"}


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MINIGROW_DEBUG", None)
    return env


# ------------------------------------------------------------------------------------------------------------------
# severe 3: checkpoints of an earlier run
def test_new_run_into_a_folder_with_checkpoints_is_refused_before_training(tmp_path, capsys):
    assert main(["train", "--epochs", "4", "--checkpoint-every", "1", "--out", str(tmp_path), *FAST]) == 0
    before = digests(tmp_path)
    t0 = time.perf_counter()
    code, _, err = cli(["train", "--epochs", "50", "--hidden", "30", "--checkpoint-every", "1", "--out", tmp_path,
                        *FAST], capsys)
    one_line(code, err, ["holds checkpoints of an earlier run", "epoch-0004.npz", "--resume"])
    assert time.perf_counter() - t0 < 5                    # refused before the 50 epochs, not after
    assert digests(tmp_path) == before                     # nothing touched
    # … and --resume continues THAT run (the old one) explicitly, up to 6 epochs
    assert main(["train", "--epochs", "6", "--resume", str(tmp_path / "checkpoints"), "--checkpoint-every", "1",
                 "--out", str(tmp_path), *FAST]) == 0
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch-0005.npz", "epoch-0006.npz"]


def test_new_run_without_checkpointing_is_refused_too(tmp_path, capsys):
    """Otherwise OUT/model.npz would belong to a new run and OUT/checkpoints to the old one."""
    assert main(["train", "--epochs", "1", "--checkpoint-every", "1", "--out", str(tmp_path), *FAST]) == 0
    code, _, err = cli([*TRAIN, "--out", tmp_path], capsys)
    one_line(code, err, ["earlier run"])


def test_resume_from_another_folder_into_one_with_checkpoints_is_refused(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["train", "--epochs", "2", "--checkpoint-every", "1", "--seed", str(ord(name)),
                     "--out", str(tmp_path / name), *FAST]) == 0
    code, _, err = cli(["train", "--epochs", "3", "--resume", tmp_path / "a" / "checkpoints", "--out",
                        tmp_path / "b", *FAST], capsys)
    one_line(code, err, ["another run", "--resume"])


def test_trainer_never_deletes_the_checkpoint_it_just_wrote(tmp_path):
    """Library: a folder holding another run's checkpoints with HIGHER epoch numbers (the old bug deleted the new
    run's files as soon as they were written and kept the old ones)."""
    d = two_spirals()
    old = mg.Trainer(mg.mlp([2, 4, 2], rng=1), progress=False, checkpoint_dir=tmp_path)
    old.fit(d.X_train, d.y_train, 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0004.npz", "epoch-0005.npz"]
    new = mg.Trainer(mg.mlp([2, 4, 2], rng=2), progress=False, checkpoint_dir=tmp_path)
    new.fit(d.X_train, d.y_train, 2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "epoch-0002.npz" in names and "epoch-0001.npz" in names
    ck = load_checkpoint(tmp_path / "epoch-0002.npz")
    assert np.array_equal(ck["model"].layers[0].params["W"], new.model.layers[0].params["W"])


def two_spirals():
    from minigrow.data import two_spirals as ts
    return ts(rng=0)


# ------------------------------------------------------------------------------------------------------------------
# severe 4: --quick never touches the committed results
def _committed():
    return {**digests(ROOT / "docs" / "results"), **{"fig/" + k: v for k, v in digests(ROOT / "docs" / "figures")
                                                     .items()}}


@pytest.mark.parametrize("argv", [
    ["reproduce", "bundles", "lesion", "--quick", "--no-progress"],
    ["reproduce", "pruning", "toy", "--quick", "--no-progress"],
    ["reproduce", "sensli", "A", "--quick", "--seeds", "1", "--no-progress"],
], ids=["bundles lesion", "prune toy", "insert A"])
def test_quick_runs_never_touch_docs(argv, tmp_path, monkeypatch):
    before = _committed()
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 0
    assert _committed() == before
    assert (tmp_path / "runs" / "quick").is_dir()          # where they went instead


@pytest.mark.parametrize("argv", [
    ["reproduce", "bundles", "lesion", "--quick", "--out", "{docs}/results"],
    ["reproduce", "bundles", "grid", "--quick", "--out", "{docs}/figures"],
    ["reproduce", "pruning", "toy", "--quick", "--out", "{docs}"],
    ["reproduce", "sensli", "B", "--quick", "--out", "{docs}"],
], ids=["bundles results", "bundles figures", "prune docs", "insert docs"])
def test_quick_run_with_out_into_docs_is_refused(argv, capsys):
    before = _committed()
    code, _, err = cli([a.replace("{docs}", str(ROOT / "docs")) for a in argv], capsys)
    one_line(code, err, ["--quick", "committed results"])
    assert _committed() == before


def test_library_quick_guard():
    from minigrow.experiments.bundles import lesion_mnist
    with pytest.raises(ValueError, match="committed results"):
        lesion_mnist(quick=True, out_dir=ROOT / "docs" / "results", progress=False)


# ------------------------------------------------------------------------------------------------------------------
# output paths, checked before the work starts
@contextlib.contextmanager
def read_only_folder(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o500)
        try:
            yield d
        finally:
            d.chmod(0o700)
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"root cannot mount a read-only tmpfs here ({r.stderr.decode().strip()})")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], capture_output=True)


def test_read_only_out_fails_before_training(tmp_path, capsys):
    with read_only_folder(tmp_path) as ro:
        t0 = time.perf_counter()
        code, _, err = cli(["train", "--epochs", "200", "--hidden", "64", "--out", ro / "run", *FAST], capsys)
        one_line(code, err, ["--out", "ro"])
        assert time.perf_counter() - t0 < 5


def test_out_parent_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, _, err = cli([*TRAIN, "--out", tmp_path / "f" / "run"], capsys)
    one_line(code, err, ["--out", "is a regular file", "cannot be created"])


def test_out_is_a_dangling_link(tmp_path, capsys):
    (tmp_path / "ln").symlink_to(tmp_path / "nowhere")
    code, _, err = cli([*TRAIN, "--out", tmp_path / "ln"], capsys)
    one_line(code, err, ["dangling"])


def test_out_link_to_a_folder_is_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "ln").symlink_to(tmp_path / "real")
    assert main([*TRAIN, "--out", str(tmp_path / "ln")]) == 0
    assert (tmp_path / "real" / "model.npz").is_file() and (tmp_path / "ln").is_symlink()


def _fifo(p):
    os.mkfifo(p)
    return p


def _device(p):
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 3))         # like /dev/null
    return p


def _link(p):
    target = p.parent / "elsewhere.txt"
    target.write_text("keep me")
    p.symlink_to(target)
    return p


def _folder(p):
    p.mkdir()
    return p


@pytest.mark.parametrize("make,name,needle", [
    (_fifo, "model.npz", "FIFO"), (_device, "model.npz", "character device"), (_link, "history.json", "link"),
    (_folder, "model.npz", "a folder"), (_fifo, "manifest.json", "FIFO"), (_link, "model.npz", "link"),
], ids=["fifo model", "device model", "link history", "folder model", "fifo manifest", "link model"])
def test_non_regular_target_is_refused_and_left_alone(make, name, needle, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    target = make(out / name)
    kind = os.lstat(target).st_mode
    code, _, err = cli([*TRAIN, "--out", out], capsys)
    one_line(code, err, [name, needle])
    assert os.lstat(target).st_mode == kind                # not replaced
    if needle == "link":
        assert (out / "elsewhere.txt").read_text() == "keep me"


def test_resume_on_a_fifo_does_not_hang(tmp_path, capsys):
    """Opening a FIFO for reading blocks until a writer appears: it used to hang forever. A real process for
    train (killed by the timeout if it hangs), in process under an alarm for the others."""
    fifo = _fifo(tmp_path / "ck.npz")
    p = subprocess.run([sys.executable, "-m", "minigrow", "train", "--resume", str(fifo), "--out",
                        str(tmp_path / "o")], capture_output=True, text=True, env=_env(), timeout=60, cwd=tmp_path)
    assert p.returncode == 2 and "FIFO" in p.stderr and p.stderr.count("\n") == 1, p.stderr

    def hung(*_):
        raise TimeoutError("the command hung on a FIFO")
    old = signal.signal(signal.SIGALRM, hung)
    try:
        for argv in (["insert", "--resume", fifo], ["prune", "--data", "spirals", "--resume", fifo],
                     ["bundles", "measure", "--model", fifo]):
            signal.alarm(20)
            code, _, err = cli([*argv, "--out", tmp_path / "o"], capsys)
            signal.alarm(0)
            one_line(code, err, ["FIFO"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_library_load_checkpoint_refuses_a_fifo(tmp_path):
    fifo = _fifo(tmp_path / "ck.npz")
    with pytest.raises(ValueError, match="not a regular file"):
        load_checkpoint(fifo)


@pytest.mark.parametrize("tag", ["../../escape", "a/b", "/abs", "..", ".hidden", "x y"])
def test_tag_cannot_escape_out(tag, tmp_path, capsys):
    code, _, err = cli(["prune", "grid", "--quick", "--tag", tag, "--out", tmp_path, *FAST], capsys)
    one_line(code, err, ["--tag"])
    assert not any(tmp_path.parent.glob("escape*"))


def test_run_folder_refuses_names_outside(tmp_path):
    with RunFolder(tmp_path, "test") as rf:
        with pytest.raises(ValueError, match="outside"):
            rf.stage("../x.json")


# ------------------------------------------------------------------------------------------------------------------
# the lock: one run per folder
def test_a_folder_in_use_is_refused(tmp_path, capsys):
    with RunFolder(tmp_path, "other run"):
        code, _, err = cli([*TRAIN, "--out", tmp_path], capsys)
        one_line(code, err, ["in use", "other run"])
    assert main([*TRAIN, "--out", str(tmp_path)]) == 0          # released on exit


def test_two_concurrent_processes_into_one_folder(tmp_path):
    """Process A takes the folder (seen through its lock file) and is paused there (SIGSTOP), so the overlap is
    certain; B, started meanwhile, exits 2 at once with one line naming A; A resumes and completes; the folder is
    A's run alone and consistent."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "minigrow", "train", "--epochs", "60", "--hidden", "16", "--batch-size", "16",
           "--out", str(out), *FAST]
    a = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    stopped = False
    try:
        deadline = time.time() + 120
        while time.time() < deadline and a.poll() is None:
            lock = out / LOCK
            if lock.exists() and f"pid {a.pid}" in lock.read_text():
                os.kill(a.pid, signal.SIGSTOP)
                stopped = True
                break
            time.sleep(0.01)
        assert stopped, "process A finished or never took the lock"
        b = subprocess.run([*cmd[:-4], "--epochs", "1", *cmd[-4:]], capture_output=True, text=True, env=_env(),
                           timeout=120, cwd=tmp_path)
        assert b.returncode == 2, b.stderr
        assert b.stderr.count("\n") == 1 and "in use" in b.stderr and f"pid {a.pid}" in b.stderr, b.stderr
    finally:
        if stopped:
            os.kill(a.pid, signal.SIGCONT)
        a_out, a_err = a.communicate(timeout=300)
    assert a.returncode == 0, a_err
    man = assert_consistent(out, expect=["history.json", "model.npz"])
    assert len(strict_json(out / "history.json")["epochs"]) == 60
    assert man["pid"] == a.pid


# ------------------------------------------------------------------------------------------------------------------
# a full disk
FILL_SCRIPT = r"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # a write past the limit fails with EFBIG instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from minigrow.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _first_then_bigger(out, runner):
    """Run a small complete run, then a bigger one that cannot be written; the first must survive intact."""
    assert main(["train", "--epochs", "1", "--hidden", "4", "--out", str(out), *FAST]) == 0
    before = digests(out)
    assert_consistent(out)
    code, err = runner(["train", "--epochs", "1", "--hidden", "400,400", "--out", str(out), *FAST])
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("minigrow: error: ") and "Traceback" not in err, err
    assert digests(out) == before                          # previous run's files and manifest untouched
    assert_consistent(out)
    return lines[0]


def test_full_disk_via_file_size_limit(tmp_path):
    out = tmp_path / "run"

    def runner(argv):
        p = subprocess.run([sys.executable, "-c", FILL_SCRIPT, str(200_000), *argv], capture_output=True, text=True,
                           env=_env(), timeout=120, cwd=tmp_path)
        return p.returncode, p.stderr
    line = _first_then_bigger(out, runner)
    assert "too large" in line.lower() or "space" in line.lower(), line


def test_full_disk_on_a_small_tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the RLIMIT_FSIZE test covers this case)")
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
    try:
        def runner(argv):
            buf = io.StringIO()
            with contextlib.redirect_stderr(buf):
                code = main(argv)
            return code, buf.getvalue()
        line = _first_then_bigger(disk / "run", runner)
        assert "No space left" in line, line
        assert not list((disk / "run").glob(".*tmp*"))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_full_disk_during_checkpoints_keeps_the_folder_consistent(tmp_path):
    """Checkpoints written while the disk fills: the run fails with one line; the previous manifest still
    matches its files."""
    out = tmp_path / "run"

    def runner(argv):
        argv = argv + ["--checkpoint-every", "1"]
        p = subprocess.run([sys.executable, "-c", FILL_SCRIPT, str(200_000), *argv], capture_output=True, text=True,
                           env=_env(), timeout=120, cwd=tmp_path)
        return p.returncode, p.stderr
    _first_then_bigger(out, runner)
    assert not list((out / "checkpoints").glob("*.tmp*")) if (out / "checkpoints").exists() else True


# ------------------------------------------------------------------------------------------------------------------
# divergence: every command saves what it promises, as strict JSON
@pytest.mark.parametrize("argv,files", [
    (["train", "--optimizer", "sgd", "--lr", "1e30", "--epochs", "3", "--hidden", "16,16"],
     ["model.npz", "history.json"]),
    (["insert", "--lr", "1e30", "--epochs", "2,2"], ["model.npz", "history.json"]),
    (["prune", "--data", "spirals", "--hidden", "16,16", "--lr", "1e30", "--epochs", "3", "--warmup", "1"],
     ["gated_model.npz", "history.json"]),
    (["bundles", "measure", "--lr", "1e30", "--depth", "3", "--width", "8", "--n-train", "300", "--n-test", "100",
      "--no-progress"], ["model.npz", "history.json"]),
], ids=["train", "insert", "prune", "bundles measure"])
def test_divergence_saves_model_and_history(argv, files, tmp_path, capsys):
    code, out, err = cli([*argv, "--out", tmp_path, *([] if argv[0] == "bundles" else FAST)], capsys)
    one_line(code, err, ["training diverged"], status=3)
    man = assert_consistent(tmp_path, status="diverged", expect=files)
    assert "training diverged" in man["error"]
    hist = strict_json(tmp_path / "history.json")            # NaN written as null, never a bare NaN
    text = (tmp_path / "history.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert hist
    model = mg.load(tmp_path / files[0])["model"]
    assert all(np.isfinite(v).all() for layer in model.layers for v in layer.params.values())


def test_write_json_is_strict_and_atomic(tmp_path):
    from minigrow.cli.common import write_json
    p = write_json(tmp_path / "x.json", {"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": np.arange(2)})
    assert strict_json(p) == {"a": None, "b": [None, 1.5], "c": [0, 1]}
    assert [q.name for q in tmp_path.iterdir()] == ["x.json"]      # no temporary left


# ------------------------------------------------------------------------------------------------------------------
# flags: contradicting a checkpoint, or without effect
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    assert main(["train", "--epochs", "1", "--lr", "0.01", "--batch-size", "64", "--checkpoint-every", "1",
                 "--out", str(d / "t"), *FAST]) == 0
    assert main(["insert", "--epochs", "1,1", "--lr", "0.1", "--checkpoint-every", "1", "--out", str(d / "i"),
                 *FAST]) == 0
    return d


CLI_ROUND2 = [
    # a flag equal to its default, given explicitly, that contradicts the checkpoint (used to be ignored)
    ("resume lr = default", ["train", "--resume", "{ck}/t/checkpoints", "--lr", "0.001", "--epochs", "2"],
     ["--lr", "0.001", "0.01"]),
    ("resume batch-size = default", ["train", "--resume", "{ck}/t/checkpoints", "--batch-size", "128"],
     ["--batch-size", "128", "64"]),
    ("insert resume lr = default", ["insert", "--resume", "{ck}/i/checkpoints", "--lr", "0.2"], ["--lr", "0.2"]),
    # flags without effect
    ("momentum with adam", ["train", "--momentum", "0.9"], ["--momentum", "adam"]),
    ("gamma without step-size", ["train", "--gamma", "0.3"], ["--gamma", "--step-size"]),
    ("position without fixed", ["insert", "--position", "1"], ["--position", "--mode fixed"]),
    ("tau without threshold", ["insert", "--tau", "2"], ["--tau", "threshold"]),
    ("insert gamma without step-size", ["insert", "--gamma", "0.3"], ["--gamma"]),
    ("insert seeds without reproduce", ["insert", "--seeds", "3"], ["--seeds", "--reproduce"]),
    ("insert quick without reproduce", ["insert", "--quick"], ["--quick", "--reproduce"]),
    ("insert reproduce with hidden", ["insert", "--reproduce", "A", "--hidden", "9"], ["--hidden", "--reproduce"]),
    ("insert reproduce with data", ["insert", "--reproduce", "A", "--data", "mnist"], ["--data", "--reproduce"]),
    ("insert mode with one phase", ["insert", "--epochs", "5", "--mode", "abs_min"], ["--mode", "single phase"]),
    ("autotune check-epochs", ["bundles", "autotune", "--check-epochs", "3"], ["--check-epochs"]),
    ("autotune lr default given", ["bundles", "autotune", "--lr", "0.001"], ["--lr"]),
    ("measure model with depth", ["bundles", "measure", "--model", "{ck}/t/model.npz", "--depth", "3"],
     ["--depth", "--model"]),
    ("prune train seeds", ["prune", "--data", "spirals", "--seeds", "1,2"], ["--seeds", "prune train"]),
    ("prune train gammas", ["prune", "--data", "spirals", "--gammas", "0.1"], ["--gammas"]),
    ("prune toy hidden", ["prune", "toy", "--hidden", "4"], ["--hidden", "prune toy"]),
    ("prune grid hidden", ["prune", "grid", "--hidden", "4"], ["--hidden", "prune grid"]),
    ("prune grid seed", ["prune", "grid", "--seed", "3"], ["--seed", "prune grid"]),
    ("prune tradeoff gamma", ["prune", "tradeoff", "--gamma", "0.3"], ["--gamma", "prune tradeoff"]),
    ("prune mnist data", ["prune", "mnist", "--data", "spirals"], ["--data"]),
    ("prune mnist quick n-train", ["prune", "mnist", "--quick", "--n-train", "100"], ["--n-train", "--quick"]),
    ("prune train quick", ["prune", "--data", "spirals", "--quick"], ["--quick"]),
    ("prune train tag", ["prune", "--data", "spirals", "--tag", "x"], ["--tag"]),
    ("lesion ks beyond blocks", ["bundles", "lesion", "--blocks", "4", "--ks", "1,5"], ["--ks", "4"]),
    # sizes that cannot fit: one line, before allocating
    ("train huge hidden", ["train", "--hidden", "300000,300000"], ["--hidden", "GB", "memory"]),
    ("insert huge hidden", ["insert", "--hidden", "2000000000"], ["--hidden", "memory"]),
    ("prune huge hidden", ["prune", "--data", "spirals", "--hidden", "400000,400000"], ["--hidden", "memory"]),
    ("mnist huge hidden", ["train", "--data", "mnist", "--n-train", "100", "--hidden", "50000000"],
     ["--hidden", "memory"]),
    ("threads zero", ["train", "--threads", "0"], ["--threads"]),
]


@pytest.mark.parametrize("case", CLI_ROUND2, ids=[c[0] for c in CLI_ROUND2])
def test_cli_round2(case, ckpt, tmp_path, capsys):
    name, argv, needles = case
    argv = [a.replace("{ck}", str(ckpt)) for a in argv]
    t0 = time.perf_counter()
    code, _, err = cli([*argv, "--out", tmp_path / "o"], capsys)
    one_line(code, err, needles)
    assert time.perf_counter() - t0 < 10, "refused only after doing the work"


def test_flag_equal_to_the_checkpoint_is_accepted(ckpt, tmp_path):
    assert main(["train", "--resume", str(ckpt / "t" / "checkpoints"), "--lr", "0.01", "--optimizer", "adam",
                 "--epochs", "2", "--out", str(tmp_path), *FAST]) == 0


def test_threads_without_threadpoolctl(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)          # import fails as if not installed
    code, _, err = cli([*TRAIN, "--threads", "2", "--out", tmp_path], capsys)
    one_line(code, err, ["--threads", "threadpoolctl"])


def test_memory_error_is_one_line(monkeypatch, tmp_path, capsys):
    import minigrow.cli.train as tr

    def boom(*a, **k):
        raise MemoryError("Unable to allocate 1.2 TiB")
    monkeypatch.setattr(tr, "build_model", boom)
    code, _, err = cli([*TRAIN, "--out", tmp_path], capsys)
    one_line(code, err, ["out of memory", "1.2 TiB"])


def test_threads_pinning_changes_nothing_for_one_thread(tmp_path):
    pytest.importorskip("threadpoolctl")
    for run in ("a", "b"):
        assert main(["train", "--epochs", "2", "--hidden", "32", "--threads", "1", "--out", str(tmp_path / run),
                     *FAST]) == 0
    a, b = (mg.load(tmp_path / r / "model.npz")["model"] for r in ("a", "b"))
    assert all(np.array_equal(la.params[k], lb.params[k]) for la, lb in zip(a.layers, b.layers) for k in la.params)


# ------------------------------------------------------------------------------------------------------------------
# checkpoints: right digest, wrong structure → CorruptFileError
@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    X = two_spirals()
    tr = mg.Trainer(mg.mlp([2, 4, 2], rng=0), "ce", mg.Adam(1e-2), progress=False,
                    scheduler=None, checkpoint_dir=d)
    tr.fit(X.X_train, X.y_train, 2)
    sgd = mg.Trainer(mg.mlp([2, 4, 2], rng=0), "ce", mg.SGD(0.1, momentum=0.9), progress=False,
                     scheduler=None, checkpoint_dir=d / "sgd")
    from minigrow.optim import StepLR
    sgd.scheduler = StepLR(sgd.optimizer, 1, 0.5)
    sgd.fit(X.X_train, X.y_train, 2)
    return d / "epoch-0002.npz", d / "sgd" / "epoch-0002.npz"


def _redigest(src, dst, edit):
    """Edit the entries (meta as a dict) and store a CORRECT digest, so only the structure checks can tell."""
    with np.load(src, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    doc = json.loads(str(data["__meta__"]))
    edit(data, doc)
    data["__meta__"] = np.array(json.dumps(doc))
    data.pop("__digest__")
    data["__digest__"] = np.array(_digest(data))
    with open(dst, "wb") as fh:
        np.savez(fh, **data)
    return dst


def _ck(doc):
    return doc["meta"]["checkpoint"]


def _drop_state(key):
    def edit(data, doc):
        for k in [k for k in data if k.startswith("layers/0/state/W/" + key)]:
            data.pop(k)
    return edit


def _set_state(key, value):
    def edit(data, doc):
        data[f"layers/0/state/W/{key}"] = np.asarray(value)
    return edit


def _int_params(data, doc):
    for k in [k for k in data if "/params/" in k]:
        data[k] = np.round(data[k]).astype(np.int64)


FAULT_CASES = [
    ("Adam state without t", 0, _drop_state("t"), "['m', 't', 'v']"),
    ("Adam state without m", 0, _drop_state("m"), "adam state"),
    ("Adam t negative", 0, _set_state("t", -5), "Adam step count"),
    ("Adam t huge", 0, _set_state("t", 10 ** 15), "Adam step count"),
    ("Adam m wrong shape", 0, _set_state("m", np.zeros((3, 3), np.float32)), "shape"),
    ("Adam v float64 in a float32 run", 0, _set_state("v", np.zeros((4, 2))), "float32"),
    ("optimiser state of an unknown parameter", 0,
     lambda data, doc: data.__setitem__("layers/0/state/Q/m", np.zeros(2, np.float32)), "unknown parameter"),
    ("SGD state with an unknown key", 1, _set_state("m", np.zeros((4, 2), np.float32)), "sgd state"),
    ("negative step count", 0, lambda data, doc: _ck(doc).__setitem__("step", -3), "'step'"),
    ("negative epoch", 0, lambda data, doc: _ck(doc).__setitem__("epoch", -1), "'epoch'"),
    ("epoch a string", 0, lambda data, doc: _ck(doc).__setitem__("epoch", "2"), "'epoch'"),
    ("epoch a float", 0, lambda data, doc: _ck(doc).__setitem__("epoch", 2.5), "'epoch'"),
    ("batch size 0", 0, lambda data, doc: _ck(doc).__setitem__("batch_size", 0), "batch_size"),
    ("dtype int8", 0, lambda data, doc: _ck(doc).__setitem__("dtype", "int8"), "dtype"),
    ("integer parameters", 0, _int_params, "dtype int64"),
    ("history not a dict", 0, lambda data, doc: _ck(doc).__setitem__("history", [1, 2]), "history"),
    ("history epochs of numbers", 0, lambda data, doc: _ck(doc)["history"].__setitem__("epochs", [1]), "history"),
    ("step losses 2-d", 0, lambda data, doc: data.__setitem__("extra/trainer/step_loss", np.zeros((2, 2))),
     "step losses"),
    ("step losses missing", 0, lambda data, doc: data.pop("extra/trainer/step_loss"), "step losses"),
    ("rng not a dict", 0, lambda data, doc: _ck(doc).__setitem__("rng", "PCG64"), "'rng'"),
    ("loss missing", 0, lambda data, doc: _ck(doc).pop("loss"), "'loss'"),
    ("scheduler unknown type", 1, lambda data, doc: _ck(doc)["scheduler"].__setitem__("type", "Cosine"),
     "scheduler"),
    ("StepLR gamma NaN", 1, lambda data, doc: _ck(doc)["scheduler"].__setitem__("gamma", float("nan")), "StepLR"),
    ("StepLR step_size 0", 1, lambda data, doc: _ck(doc)["scheduler"].__setitem__("step_size", 0), "StepLR"),
    ("StepLR last_epoch negative", 1, lambda data, doc: _ck(doc)["scheduler"].__setitem__("last_epoch", -1),
     "StepLR"),
    ("method record malformed", 0, lambda data, doc: _ck(doc).__setitem__("method", {"x": 3}), "'method'"),
    ("optimiser config missing lr", 0, lambda data, doc: doc["optimizer"].pop("lr"), ""),
    ("optimiser lr negative", 0, lambda data, doc: doc["optimizer"].__setitem__("lr", -1.0), ""),
]


@pytest.mark.parametrize("case", FAULT_CASES, ids=[c[0] for c in FAULT_CASES])
def test_structurally_bad_checkpoint(case, good, tmp_path):
    name, which, edit, needle = case
    bad = _redigest(good[which], tmp_path / "bad.npz", edit)
    with pytest.raises(CorruptFileError) as info:
        resume(bad, progress=False)
    assert needle in str(info.value), str(info.value)
    assert "bad.npz" in str(info.value)


def test_the_good_checkpoints_resume(good):
    for g in good:
        assert resume(g, progress=False).epoch == 2


def test_fault_case_count():
    """Counts reported in docs/reliability.md."""
    print(f"\n{len(FAULT_CASES)} structurally bad checkpoints, {len(CLI_ROUND2)} round-2 command-line cases")
    assert len(FAULT_CASES) >= 25 and len(CLI_ROUND2) >= 30
