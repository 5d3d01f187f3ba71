"""The command line as a user meets it (issue 16): parallel sweeps equal to the serial run, one `reproduce` verb with
the old spellings still working (one deprecation line), the same flag names across commands, every command running
without matplotlib (saying so once), outputs under --out and never in the repository's docs/ unless asked."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minigrow.cli import main
from minigrow.experiments import REPO_ROOT

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--no-progress", "--no-plots"]
TIMING = ("seconds", "time", "elapsed", "wall", "duration")


def _strip(o):
    """A JSON document without its timing fields (they differ between any two runs)."""
    if isinstance(o, dict):
        return {k: _strip(v) for k, v in o.items() if not any(t in k.lower() for t in TIMING)}
    if isinstance(o, list):
        return [_strip(v) for v in o]
    return o


def _results(folder):
    """Every JSON file under ``folder`` (manifest excluded), timings dropped."""
    return {p.relative_to(folder).as_posix(): _strip(json.loads(p.read_text()))
            for p in sorted(Path(folder).rglob("*.json")) if p.name != "manifest.json"}


@pytest.fixture
def worker_path(monkeypatch):
    """Worker processes (spawn, Dask) import minigrow from this checkout."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


# ------------------------------------------------------------------------------------------------------------------
# --jobs N and --scheduler: the same results as the serial run, in the same order
SWEEPS = {
    "sensli": ["reproduce", "sensli", "A", "--quick", "--seeds", "2"],
    "bundles grid": ["reproduce", "bundles", "grid", "--quick"],
    "pruning toy": ["reproduce", "pruning", "toy", "--quick"],
    "pruning tradeoff": ["reproduce", "pruning", "tradeoff", "--quick", "--prices", "0.1,0.3", "--hidden", "16,8"],
}


@pytest.mark.parametrize("name", list(SWEEPS))
def test_jobs_2_equals_jobs_1(name, tmp_path, worker_path):
    argv = SWEEPS[name]
    assert main([*argv, "--jobs", "1", "--out", str(tmp_path / "j1"), *FAST]) == 0
    assert main([*argv, "--jobs", "2", "--out", str(tmp_path / "j2"), *FAST]) == 0
    one, two = _results(tmp_path / "j1"), _results(tmp_path / "j2")
    assert one and one == two


def test_pruning_grid_jobs_2_equals_jobs_1(tmp_path, worker_path):
    argv = ["reproduce", "pruning", "grid", "--quick", "--seeds", "0,1", "--scales", "1", "--hiddens", "16-8", *FAST]
    assert main([*argv, "--out", str(tmp_path / "j1")]) == 0
    assert main([*argv, "--jobs", "2", "--out", str(tmp_path / "j2")]) == 0
    one, two = _results(tmp_path / "j1"), _results(tmp_path / "j2")
    rows = one["results/pruning_grid_quick.json"]["rows"]
    assert [r["seed"] for r in rows] == [0, 1] and rows[0]["test_err"] != rows[1]["test_err"]
    assert one == two


def test_dask_local_cluster_equals_serial(tmp_path, worker_path):
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed (pip install "
                                                            "'minigrow[dist]')")
    argv = SWEEPS["pruning toy"]
    assert main([*argv, "--out", str(tmp_path / "serial"), *FAST]) == 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster:
        assert main([*argv, "--scheduler", cluster.scheduler_address, "--out", str(tmp_path / "dask"), *FAST]) == 0
    assert _results(tmp_path / "serial") == _results(tmp_path / "dask")


def test_sweep_flags_only_where_there_is_a_sweep(capsys):
    for argv in (["train", "--jobs", "2"], ["insert", "--jobs", "2"], ["reproduce", "bundles", "lesion", "--jobs", "2"],
                 ["prune", "--data", "spirals", "--jobs", "2"], ["reproduce", "pruning", "mnist", "--jobs", "2"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("minigrow: error:") and "--jobs" in err[0], (argv, err)


# ------------------------------------------------------------------------------------------------------------------
# one reproduce verb; the old spellings work for one release with one deprecation line
@pytest.mark.parametrize("old,new", [
    (["insert", "--reproduce", "A", "--seeds", "1"], ["reproduce", "sensli", "A", "--seeds", "1"]),
    (["bundles", "reproduce", "lesion"], ["reproduce", "bundles", "lesion"]),
    (["prune", "toy"], ["reproduce", "pruning", "toy"]),
], ids=["sensli", "bundles", "pruning"])
def test_old_reproduce_spellings_still_work(old, new, tmp_path, capsys):
    assert main([*new, "--quick", "--out", str(tmp_path / "new"), *FAST]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main([*old, "--quick", "--out", str(tmp_path / "old"), *FAST]) == 0
    notes = [ln for ln in capsys.readouterr().err.splitlines() if "deprecated" in ln]
    assert len(notes) == 1 and "python -m minigrow " + " ".join(new[:3]) in notes[0], notes
    assert _results(tmp_path / "old") == _results(tmp_path / "new")


def test_reproduce_pruning_refuses_one_run(capsys):
    assert main(["reproduce", "pruning", "train"]) == 2
    assert "expected one of" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", [["train"], ["insert"]])
def test_lr_schedule_flags_are_the_same_everywhere(cmd, tmp_path, capsys):
    """--lr-step/--lr-decay in train, insert and prune; --step-size/--gamma still work with one note."""
    base = [*cmd, "--data", "spirals", "--epochs", "4", *FAST]
    assert main([*base, "--lr-step", "2", "--lr-decay", "0.3", "--out", str(tmp_path / "new")]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main([*base, "--step-size", "2", "--gamma", "0.3", "--out", str(tmp_path / "old")]) == 0
    notes = [ln for ln in capsys.readouterr().err.splitlines() if "deprecated" in ln]
    assert len(notes) == 2 and "--lr-step" in notes[0] and "--lr-decay" in notes[1], notes
    h_new = json.loads((tmp_path / "new" / "history.json").read_text())
    h_old = json.loads((tmp_path / "old" / "history.json").read_text())
    assert _strip(h_new) == _strip(h_old)
    assert main([*base, "--lr-decay", "0.3", "--out", str(tmp_path / "x")]) == 2
    assert "--lr-decay" in capsys.readouterr().err


def test_every_command_takes_the_common_flags():
    """--threads and --out (or the demo's/grade's own) on every command; --no-plots on every command that plots;
    --jobs/--scheduler on every sweep."""
    from minigrow.cli import build_parser
    import argparse

    def leaves(p, path=()):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path, p
        for a in subs:
            for name, q in a.choices.items():
                if q is not p:
                    yield from leaves(q, path + (name,))
    seen = 0
    for path, p in leaves(build_parser()):
        flags = {s for a in p._actions for s in a.option_strings}
        if path[0] == "grade":
            continue
        seen += 1
        assert "--threads" in flags and "--out" in flags, path
        if path[0] != "bundles" or path[1] in ("autotune", "lesion", "reproduce"):
            assert "--no-plots" in flags, path
        if path[0] == "reproduce" or path == ("insert",) or path == ("prune",):
            assert {"--jobs", "--scheduler", "--into-docs"} <= flags, path
    assert seen >= 10


# ------------------------------------------------------------------------------------------------------------------
# outputs: under --out, default runs/… in the current folder; docs/ only with --into-docs
def test_reproduction_default_folder_is_in_the_current_folder(tmp_path, monkeypatch):
    from minigrow.cli.common import reproduction_folder
    monkeypatch.chdir(tmp_path)
    rf, in_docs = reproduction_folder(None, False, "insert", default="runs/insert", method="sensli", what="A")
    assert rf.out == Path("runs/reproduce/sensli/A") and not in_docs
    rf, in_docs = reproduction_folder(None, False, "bundles", into_docs=True, method="bundles", what="grid")
    assert rf.out == REPO_ROOT / "docs" and in_docs
    with pytest.raises(ValueError, match="--into-docs"):
        reproduction_folder(None, True, "bundles", into_docs=True)
    with pytest.raises(ValueError, match="--into-docs"):
        reproduction_folder(tmp_path / "x", False, "bundles", into_docs=True)


def test_into_docs_refused_with_quick(capsys):
    assert main(["reproduce", "bundles", "lesion", "--quick", "--into-docs"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--into-docs" in err[0]


# ------------------------------------------------------------------------------------------------------------------
# without matplotlib: every command runs, says once that plots were skipped and how to get them
@pytest.fixture(scope="module")
def no_matplotlib(tmp_path_factory):
    """A folder that shadows matplotlib with a package whose import fails, as on an install without it."""
    d = tmp_path_factory.mktemp("nompl")
    (d / "matplotlib").mkdir()
    (d / "matplotlib" / "__init__.py").write_text("raise ImportError('No module named matplotlib (test stub)')\n")
    return d


@pytest.mark.parametrize("argv,pngless", [
    (["train", "--data", "spirals", "--epochs", "2"], "history.json"),
    (["insert", "--data", "spirals", "--epochs", "3,3"], "history.json"),
    (["prune", "--data", "spirals", "--epochs", "2", "--hidden", "8"], "history.json"),
    (["reproduce", "pruning", "toy", "--quick"], "results/pruning_toy.json"),
    (["reproduce", "bundles", "lesion", "--quick"], "bundles_lesion.json"),
    (["reproduce", "sensli", "A", "--quick", "--seeds", "1"], "results/sensli_A.json"),
    (["demo", "--quick"], "summary.json"),
], ids=["train", "insert", "prune", "reproduce pruning", "reproduce bundles", "reproduce sensli", "demo"])
def test_without_matplotlib(argv, pngless, no_matplotlib, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(no_matplotlib), str(ROOT)]), "MPLBACKEND": ""}
    env.pop("MPLBACKEND")
    r = subprocess.run([sys.executable, "-m", "minigrow", *argv, "--no-progress", "--out", str(tmp_path / "o")],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("minigrow: note: matplotlib")]
    assert len(notes) == 1 and "pip install 'minigrow[plot]'" in notes[0], r.stderr
    assert (tmp_path / "o" / pngless).is_file()
    assert not list((tmp_path / "o").rglob("*.png"))
    assert "Traceback" not in r.stderr


def test_no_plots_needs_no_note(no_matplotlib, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(no_matplotlib), str(ROOT)])}
    r = subprocess.run([sys.executable, "-m", "minigrow", "train", "--data", "spirals", "--epochs", "1", "--no-plots",
                        "--no-progress", "--out", str(tmp_path / "o")], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "minigrow: note: matplotlib" not in r.stderr, r.stderr
