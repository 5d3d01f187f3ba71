"""Every tutorial runs as a script in quick mode (MINIGROW_QUICK=1) and exits 0."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((ROOT / "tutorials").glob("*.py"))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_runs_in_quick_mode(path):
    env = dict(os.environ, MINIGROW_QUICK="1", MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{path.name} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


def test_there_are_tutorials():
    assert any(p.name.startswith("00_") for p in TUTORIALS)


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.name for p in TUTORIALS])
@pytest.mark.parametrize("where", ["tutorials", "repo", "subfolder"])
def test_tutorial_finds_the_checkout_as_a_notebook(path, where, tmp_path, monkeypatch):
    """Run as a notebook (no __file__) from tutorials/, the repository root or a folder below it: the first cell
    finds the checkout (its committed results) and sends figures to runs/tutorials/ of the current folder."""
    src = path.read_text()
    head = src[:src.index("QUICK = ")]                 # the set-up cell: imports, ROOT, OUT
    cwd = {"tutorials": ROOT / "tutorials", "repo": ROOT, "subfolder": ROOT / "docs" / "results"}[where]
    monkeypatch.chdir(cwd)
    ns = {"__name__": "__main__"}
    exec(compile(head, "<notebook cell>", "exec"), ns)
    assert ns["ROOT"] == ROOT
    if "OUT" in ns:
        assert ns["OUT"] == cwd / "runs" / "tutorials"
