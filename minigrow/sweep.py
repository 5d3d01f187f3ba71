"""Independent runs of a sweep (seeds, grids, trade-offs, lesion repeats) — serially, in a process pool, or on a
Dask cluster — with results **bit-identical** to the serial run and in the same order.

Why the results are the same: each run is a pure function of its arguments (every random draw comes from a
Generator seeded by the run's own arguments), and every run — serial or parallel — computes with **one BLAS
thread** (the BLAS thread count changes the rounding of matrix products; results differ at ~1e-8 between 1 and 2
threads). A pool of ``jobs`` workers therefore gives the serial results in ``jobs``-fold less wall time on an idle
machine with ``jobs`` cores.

* ``run_sweep(fn, tasks)``                       serial, in this process, one BLAS thread (threadpoolctl)
* ``run_sweep(fn, tasks, jobs=2)``               a pool of 2 worker processes (``spawn``), one BLAS thread each
* ``run_sweep(fn, tasks, scheduler="tcp://…")``  a Dask distributed cluster through its ``concurrent.futures``
  executor (``pip install 'minigrow[dist]'``); each task pins its worker's BLAS to one thread

``fn`` must be importable by name (a module-level function) and ``tasks`` a list of keyword-argument dicts;
results come back in the order of ``tasks``.
"""
from __future__ import annotations

import contextlib
import os
from concurrent.futures import ProcessPoolExecutor
import multiprocessing

from .validate import check_callable, check_int

__all__ = ["run_sweep", "blas_threads", "BLAS_ENV"]

#: Environment variables that fix the BLAS thread count of a process *before* NumPy is imported.
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


@contextlib.contextmanager
def blas_threads(n):
    """Limit this process's BLAS to ``n`` threads inside the block (threadpoolctl, if installed; without it the
    count cannot be changed after NumPy has started — a no-op that says so in :func:`run_sweep`'s result)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                     # optional: the core depends on NumPy alone
        yield False
        return
    with threadpool_limits(limits=int(n), user_api="blas"):
        yield True


@contextlib.contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _call(fn, kwargs):
    """Run one task with one BLAS thread (in whatever process executes it)."""
    with blas_threads(1):
        return fn(**kwargs)


def run_sweep(fn, tasks, jobs=1, scheduler=None):
    """``[fn(**t) for t in tasks]``, serially (``jobs=1``), in ``jobs`` worker processes, or on the Dask cluster at
    ``scheduler``; every run with one BLAS thread, results in the order of ``tasks`` and bit-identical across the
    three modes."""
    check_callable("fn", fn)
    tasks = list(tasks)
    for i, t in enumerate(tasks):
        if not isinstance(t, dict):
            raise TypeError(f"tasks[{i}]: expected a dict of keyword arguments, got {type(t).__name__}")
    jobs = check_int("jobs", jobs, lo=1)
    if scheduler is not None:
        return _run_dask(fn, tasks, scheduler)
    if jobs == 1 or len(tasks) <= 1:
        return [_call(fn, t) for t in tasks]
    # Workers are new interpreters (spawn: no forked BLAS thread pools) that inherit these variables, so their
    # BLAS starts with one thread even without threadpoolctl.
    with _env(**{k: "1" for k in BLAS_ENV}):
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx) as pool:
            futures = [pool.submit(_call, fn, t) for t in tasks]
            return [f.result() for f in futures]


def _run_dask(fn, tasks, scheduler):
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("scheduler: running on a Dask cluster needs the optional dependency dask.distributed "
                         "(pip install 'minigrow[dist]')") from None
    if not isinstance(scheduler, str) or not scheduler:
        raise TypeError(f"scheduler: expected the scheduler address as a string (tcp://host:port), got {scheduler!r}")
    with Client(scheduler, timeout="30s") as client:
        executor = client.get_executor(pure=False)
        futures = [executor.submit(_call, fn, t) for t in tasks]
        return [f.result() for f in futures]
