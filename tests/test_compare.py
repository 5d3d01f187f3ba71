"""The comparison harness (minigrow/experiments/compare.py, ``python -m minigrow compare``): the combined run keeps
one optimiser through every edit and resumes bit-identically after each of them; the CLI's quick mode end to end."""
import dataclasses
import json

import numpy as np
import pytest

from minigrow.cli import main
from minigrow.experiments import compare as C
from minigrow.layers import Dense
from minigrow.methods.pruning import gates

# QUICK, with a bundle grid so coarse (η of the grid 1e-7: spacing ulp·B/η) that every hidden layer conflicts, so
# that the removal edit happens in the test (with the training η it finds no conflict in so small a run).
EDITS = dataclasses.replace(C.QUICK, bundle_lr=1e-7, eta_theta=0.2, price=0.1)


@pytest.fixture(scope="module")
def data():
    return C.load_data("mnist", EDITS)


def _state(trainer):
    """Every array of the trained state: parameters, Adam moments and counts, θ and unit ids of the gates."""
    out = []
    for i, layer in enumerate(trainer.model.layers):
        out.append((i, type(layer).__name__))
        for k, p in sorted(layer.params.items()):
            out.append((k, p.tobytes(), p.shape))
            out.append(tuple((s, v.tobytes() if isinstance(v, np.ndarray) else v)
                             for s, v in sorted(layer.state.get(k, {}).items())))
        if hasattr(layer, "theta"):
            out.append((layer.theta.tobytes(), layer.unit_ids.tobytes()))
    return out


def test_combined_run_makes_every_edit_and_keeps_one_optimiser(data):
    X, y, _, _ = data
    tr = C.train_combined(X, y, 0, EDITS)
    kinds = [e["event"] for e in tr.history.events]
    assert kinds.count("insert") == len(EDITS.insert_at)
    rem = next(e for e in tr.history.events if e["event"] == "remove")
    assert rem["removed"] >= 1 and len(rem["arch"]) < 1 + len(EDITS.insert_at)
    assert "prune" in kinds and "binarize" in kinds
    assert tr.epoch == EDITS.epochs and len(tr.history.epochs) == EDITS.epochs
    # one optimiser whose state survived every edit: the first layer was never reset, so its Adam count is the
    # number of steps of the whole run
    first = tr.model.layers[0]
    assert isinstance(first, Dense) and first.state["W"]["t"] == tr.step
    # one history with the architecture after every epoch's edits
    assert [len(r["arch"]) for r in tr.history.epochs][:EDITS.remove_at] == [2, 3, 3 - rem["removed"]]
    assert all(g.theta.min() == 1.0 for g in gates(tr.model))          # binarised, zeros removed


def test_combined_run_resumes_bit_identically_after_every_edit(data, tmp_path):
    X, y, _, _ = data
    full = C.train_combined(X, y, 3, EDITS, checkpoint_dir=tmp_path)
    ref = _state(full)
    edits = sorted({e["epoch"] for e in full.history.events})
    assert set(edits) >= set(EDITS.insert_at) | {EDITS.remove_at, EDITS.binarize_at}
    for e in range(1, EDITS.epochs):                    # every epoch, so also the one right after each edit
        resumed = C.train_combined(X, y, 3, EDITS, resume=tmp_path / f"epoch-{e:04d}.npz")
        assert resumed.step == full.step
        assert _state(resumed) == ref, f"resume after epoch {e} differs"
        assert resumed.history.events == full.history.events
    # and the run is not trivially the same for another seed
    other = C.train_combined(X, y, 4, EDITS)
    assert _state(other) != ref


def test_cli_quick_end_to_end(tmp_path):
    out = tmp_path / "cmp"
    rc = main(["compare", "--quick", "--seeds", "0,1", "--datasets", "mnist", "--out", str(out), "--no-plots"])
    assert rc == 0
    doc = json.loads((out / "compare.json").read_text())
    assert len(doc["runs"]) == 2 * len(C.METHODS)
    assert {r["method"] for r in doc["runs"]} == set(C.METHODS)
    for r in doc["runs"]:
        assert 0 <= r["test_err"] <= 1 and r["params"] > 0 and r["train_macs"] > 0 and r["steps"] > 0
        assert len(r["trace"]) == r["epochs_trained"]
    by = {(r["method"], r["seed"]): r for r in doc["runs"]}
    assert by[("big", 0)]["params"] > by[("small", 0)]["params"]
    assert by[("sensli", 0)]["arch"] == [16] * 3                       # two insertions into 784-16-10
    assert by[("pruning", 0)]["params"] < by[("big", 0)]["params"]
    assert len(doc["summary"]) == len(C.METHODS)
    assert "| mnist | combined |" in (out / "compare_table.md").read_text()


def test_cli_refuses_writing_committed_results_in_quick_mode(tmp_path, capsys):
    assert main(["compare", "--quick", "--into-docs", "--out", str(tmp_path)]) == 2
    assert "--into-docs" in capsys.readouterr().err
    assert main(["compare", "--quick", "--out", str(C.__file__).rsplit("minigrow", 1)[0] + "docs/results"]) == 2
    assert main(["compare", "--quick", "--seeds", "0,0"]) == 2
    assert main(["compare", "--quick", "--datasets", "cifar", "--out", str(tmp_path)]) == 2


def test_config_schedule_is_checked():
    with pytest.raises(ValueError, match="insert_at"):
        C.run_one("combined", "mnist", 0, dataclasses.replace(C.QUICK, remove_at=9))
    with pytest.raises(ValueError, match="method"):
        C.run_one("nope", "mnist", 0, C.QUICK)


def test_jobs_give_the_serial_results():
    """--jobs ships the module-level run functions to worker processes (run_sweep); results are the serial ones."""
    kw = dict(seeds=[0], datasets=["mnist"], config=C.QUICK, methods=("small", "combined"))
    serial = C.run_compare(jobs=1, **kw)
    pooled = C.run_compare(jobs=2, **kw)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in serial]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in pooled]
