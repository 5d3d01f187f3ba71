"""Sweeps: a process pool and a Dask cluster give exactly the serial results, in the same order."""
import os
from pathlib import Path

import numpy as np
import pytest

import minigrow as mg
from minigrow.data import two_spirals
from minigrow.sweep import run_sweep

HERE = Path(__file__).resolve().parent


def tiny_run(seed, width=8):
    """One real training run: a small MLP on the spirals; returns its final weights and losses."""
    d = two_spirals(rng=seed)
    model = mg.mlp([2, width, width, 2], rng=seed)
    tr = mg.Trainer(model, "ce", mg.Adam(1e-2), batch_size=32, rng=seed, progress=False)
    tr.fit(d.X_train, d.y_train, 3)
    return {"W": [layer.params["W"].copy() for layer in model.layers if "W" in layer.params],
            "loss": list(tr.history.step_loss)}


TASKS = [{"seed": s, "width": w} for s in (0, 1, 2) for w in (8, 16)]


def _same(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra["loss"] == rb["loss"]
        for wa, wb in zip(ra["W"], rb["W"]):
            assert wa.dtype == wb.dtype and wa.tobytes() == wb.tobytes()


@pytest.fixture(scope="module")
def serial():
    return run_sweep(tiny_run, TASKS)


def test_different_tasks_differ(serial):
    assert serial[0]["loss"] != serial[2]["loss"]


def test_process_pool_equals_serial(serial, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    _same(run_sweep(tiny_run, TASKS, jobs=2), serial)


def test_dask_local_cluster_equals_serial(serial, monkeypatch):
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed (pip install "
                                                            "'minigrow[dist]')")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster:
        _same(run_sweep(tiny_run, TASKS, scheduler=cluster.scheduler_address), serial)


def test_bad_arguments():
    with pytest.raises(ValueError, match="jobs"):
        run_sweep(tiny_run, TASKS, jobs=0)
    with pytest.raises(TypeError, match=r"tasks\[0\]"):
        run_sweep(tiny_run, [1])
