"""Checkpoints, resumption and divergence: what must hold (docs/reliability.md).

* interrupt-and-resume is bit-identical to an uninterrupted run (plain, grown, pruned, method state, subclass);
* a missing, truncated, altered or foreign checkpoint file gives a clear error, never a model; no pickle;
* a diverging run stops with TrainingDiverged and keeps the last finite state, which can be saved.
"""
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minigrow as mg
from minigrow.checkpoint import latest_checkpoint, load_checkpoint, resume, save_checkpoint
from minigrow.data import two_spirals
from minigrow.io import CorruptFileError
from minigrow.layers import Dense, ReLU
from minigrow.train import params_finite

ROOT = Path(__file__).resolve().parents[1]
D = two_spirals(rng=0)


# --------------------------------------------------------------------------------------------------------------
# helpers
def model_bytes(model):
    """Architecture + parameters + optimiser state as comparable bytes."""
    out = []
    for i, layer in enumerate(model.layers):
        out.append((i, type(layer).__name__, json.dumps(layer.config(), sort_keys=True)))
        for k, v in sorted(layer.params.items()):
            out.append((i, k, v.dtype.str, v.shape, v.tobytes()))
        for k, st in sorted(layer.state.items()):
            for s, v in sorted(st.items()):
                out.append((i, k, s, np.asarray(v).tobytes()))
    return out


def history_wo_time(h):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in h.epochs], list(h.step_loss), h.events


def assert_same_run(a, b):
    assert model_bytes(a.model) == model_bytes(b.model)
    assert history_wo_time(a.history) == history_wo_time(b.history)
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    assert (a.epoch, a.step) == (b.epoch, b.step)
    assert a.optimizer.config() == b.optimizer.config()


class GrowAt:
    """Callback: insert Dense(w, w, identity) + ReLU after the first hidden layer at a given epoch (grown net)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def __call__(self, tr):
        if tr.epoch == self.epoch:
            w = tr.model.layers[0].out_features
            tr.model.insert(2, Dense(w, w, init="identity", dtype=tr.dtype), ReLU())
            tr.history.events.append({"event": "insert", "epoch": tr.epoch})


class PruneAt:
    """Callback: drop every other unit of the first hidden layer at a given epoch (pruned net)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def __call__(self, tr):
        if tr.epoch == self.epoch:
            keep = np.arange(0, tr.model.layers[0].out_features, 2)
            tr.model.layers[0].remove_outputs(keep)
            tr.model.layers[2].remove_inputs(keep)


class Noisy:
    """A stateful callback (the method-state protocol): a counter, an array θ it updates from the trainer's RNG,
    and a schedule position; without restoring all three the resumed run would differ."""

    state_key = "noisy"

    def __init__(self):
        self.count, self.theta = 0, np.zeros(3)

    def __call__(self, tr):
        self.count += 1
        self.theta += tr.rng.normal(size=3)
        # method state feeds back into training. (A Python float: an np.float64 lr would make NumPy 2 (NEP 50)
        # compute the float32 update in float64 — a different run than after a reload, where lr is a float.)
        tr.optimizer.lr *= 1.0 + 0.01 * float(np.tanh(self.theta[0]))

    def state_dict(self):
        return {"count": self.count}, {"theta": self.theta}

    def load_state_dict(self, meta, arrays):
        self.count, self.theta = meta["count"], np.array(arrays["theta"], copy=True)


class NoisyTrainer(mg.Trainer):
    """A Trainer subclass with its own state (like the pruning trainer's θ): gradient noise scaled by ``sigma``,
    which decays every step."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.sigma = 0.01

    def train_step(self, xb, yb):
        loss = super().train_step(xb, yb)
        for layer, name in self.model.parameters():
            layer.params[name] += self.sigma * self.rng.standard_normal(layer.params[name].shape).astype(self.dtype)
        self.sigma *= 0.99
        return loss

    def state_dict(self):
        return {"sigma": self.sigma}, {}

    def load_state_dict(self, meta, arrays):
        self.sigma = meta["sigma"]


def build(kind, ckdir=None):
    """A trainer for each scenario, built exactly the same way each time (as a script would)."""
    cbs, cls = [], mg.Trainer
    if kind == "resnet_adam_fullbatch":
        model = mg.residual_mlp(2, 4, 2, 2, activation="tanh", rng=1)
        opt = mg.Adam(0.01)
        sched, bs = None, None
    else:
        model = mg.mlp([2, 12, 10, 2], "relu", rng=1)
        opt = mg.SGD(0.05, momentum=0.9, weight_decay=1e-4)
        sched, bs = mg.StepLR(opt, 1, 0.8), 64
    if kind == "grown":
        cbs = [GrowAt(2)]
    elif kind == "pruned":
        cbs = [PruneAt(1)]
    elif kind == "method_state":
        cbs = [Noisy()]
    elif kind == "subclass":
        cls = NoisyTrainer
    return cls(model, "ce", opt, batch_size=bs, rng=7, scheduler=sched, callbacks=cbs, progress=False,
               checkpoint_dir=ckdir, checkpoint_every=1)


KINDS = ["mlp_sgd_momentum_steplr", "resnet_adam_fullbatch", "grown", "pruned", "method_state", "subclass"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("split", [1, 2, 3])
def test_resume_is_bit_identical(kind, split, tmp_path):
    straight = build(kind)
    straight.fit(D.X_train, D.y_train, 4, D.X_test, D.y_test)

    first = build(kind, tmp_path)
    first.fit(D.X_train, D.y_train, split, D.X_test, D.y_test)
    del first                                                       # "the process ends"
    fresh = build(kind)                                             # a new script builds the same setup …
    if kind in ("mlp_sgd_momentum_steplr", "resnet_adam_fullbatch"):
        fresh = resume(tmp_path / f"epoch-{split:04d}.npz", progress=False)   # … or just loads the file
    else:
        resume(tmp_path, fresh)                                     # newest checkpoint in the folder
    assert fresh.epoch == split
    fresh.fit(D.X_train, D.y_train, 4 - fresh.epoch, D.X_test, D.y_test)
    assert_same_run(straight, fresh)
    if kind == "grown":
        assert len(fresh.model.layers) == 7
    if kind == "pruned":
        assert fresh.model.layers[0].out_features == 6


def test_resume_in_a_fresh_process(tmp_path):
    """The truly separate process: train 2 epochs here, resume and finish in a subprocess, compare bytes."""
    straight = build("mlp_sgd_momentum_steplr")
    straight.fit(D.X_train, D.y_train, 4)
    build("mlp_sgd_momentum_steplr", tmp_path).fit(D.X_train, D.y_train, 2)
    code = (
        "import sys; from minigrow.checkpoint import resume; from minigrow.data import two_spirals; "
        "import minigrow as mg; d = two_spirals(rng=0); "
        f"t = resume(r'{tmp_path}', progress=False); t.fit(d.X_train, d.y_train, 4 - t.epoch); "
        f"mg.save(r'{tmp_path / 'final.npz'}', t.model, optimizer=t.optimizer)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)
    final = mg.load(tmp_path / "final.npz")["model"]
    assert model_bytes(final) == model_bytes(straight.model)


def test_checkpoint_every_and_keep(tmp_path):
    tr = build("mlp_sgd_momentum_steplr")
    tr.checkpoint_dir, tr.checkpoint_every, tr.checkpoint_keep = tmp_path, 2, 2
    tr.fit(D.X_train, D.y_train, 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0004.npz", "epoch-0006.npz"]
    assert latest_checkpoint(tmp_path).name == "epoch-0006.npz"
    assert load_checkpoint(tmp_path)["checkpoint"]["epoch"] == 6


def test_resume_refuses_a_mismatched_setup(tmp_path):
    tr = build("method_state", tmp_path)
    tr.fit(D.X_train, D.y_train, 1)
    with pytest.raises(ValueError, match="noisy"):                  # the method state has no owner
        resume(tmp_path, build("mlp_sgd_momentum_steplr"))
    with pytest.raises(ValueError, match="optimizer"):
        other = mg.Trainer(mg.mlp([2, 12, 10, 2], rng=1), "ce", mg.Adam(), callbacks=[Noisy()], progress=False)
        resume(tmp_path, other)
    sub = build("subclass", tmp_path / "sub")
    sub.fit(D.X_train, D.y_train, 1)
    with pytest.raises(ValueError, match="NoisyTrainer"):            # written by a subclass: build it
        resume(tmp_path / "sub")


def test_plain_model_file_is_not_a_checkpoint(tmp_path):
    tr = build("mlp_sgd_momentum_steplr")
    mg.save(tmp_path / "model.npz", tr.model, optimizer=tr.optimizer)
    with pytest.raises(CorruptFileError, match="not a checkpoint"):
        resume(tmp_path / "model.npz")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        resume(tmp_path)                                            # a folder without epoch-NNNN.npz


# --------------------------------------------------------------------------------------------------------------
# damaged files: each must raise a clear error that names the file, never return a model
@pytest.fixture(scope="module")
def good_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    tr = build("method_state")
    tr.fit(D.X_train, D.y_train, 1)
    path = save_checkpoint(d / "good.npz", tr)
    return path, path.read_bytes()


def _find(raw, needle):
    """Byte offset of ``needle`` inside the (uncompressed) npz bytes; it must be there exactly once."""
    off = raw.find(needle)
    assert off > 0 and raw.find(needle, off + 1) == -1
    return off


def _array_offset(raw, arr):
    return _find(raw, arr.tobytes())


CORRUPTIONS = {
    "truncated_to_0": lambda raw, ck: b"",
    "truncated_to_3_bytes": lambda raw, ck: raw[:3],
    "truncated_header": lambda raw, ck: raw[:100],
    "truncated_half": lambda raw, ck: raw[:len(raw) // 2],
    "truncated_last_byte": lambda raw, ck: raw[:-1],
    "truncated_last_22_bytes": lambda raw, ck: raw[:-22],       # the zip end-of-central-directory record
    "flip_byte_in_weights": lambda raw, ck: _flip(raw, _array_offset(raw, ck["model"].layers[0].params["W"]) + 5),
    "flip_byte_in_adam_or_momentum_state": lambda raw, ck: _flip(
        raw, _array_offset(raw, ck["model"].layers[0].state["W"]["v"]) + 3),
    "flip_byte_in_method_state": lambda raw, ck: _flip(raw, _array_offset(raw, ck["arrays"]["method/noisy/theta"])),
    "flip_byte_in_json_meta": lambda raw, ck: _flip(raw, _find(raw, '"trainer_class"'.encode("utf-32-le"))),
    "appended_garbage_inside": lambda raw, ck: raw[:200] + b"\0" * 50 + raw[200:],
}


def _flip(raw, i):
    b = bytearray(raw)
    b[i] ^= 0x10
    return bytes(b)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_damaged_checkpoint_is_refused(name, good_ckpt, tmp_path):
    path, raw = good_ckpt
    ck = load_checkpoint(path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(CORRUPTIONS[name](raw, ck))
    with pytest.raises(CorruptFileError) as info:
        resume(bad, build("method_state"))
    assert "bad.npz" in str(info.value)
    with pytest.raises(CorruptFileError):
        mg.load(bad)


def _rewrite(path, out, edit):
    """Re-pack a checkpoint's entries with ``edit(dict)`` applied — a valid zip, so only the digest can tell."""
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    edit(data)
    with open(out, "wb") as fh:
        np.savez(fh, **data)
    return out


def test_edited_json_meta_fails_the_digest(good_ckpt, tmp_path):
    path, _ = good_ckpt

    def edit(d):
        doc = json.loads(str(d["__meta__"]))
        doc["meta"]["checkpoint"]["epoch"] = 99
        d["__meta__"] = np.array(json.dumps(doc))
    bad = _rewrite(path, tmp_path / "edited.npz", edit)
    with pytest.raises(CorruptFileError, match="digest"):
        resume(bad, build("method_state"))


def test_edited_weights_fail_the_digest(good_ckpt, tmp_path):
    path, _ = good_ckpt

    def edit(d):
        d["layers/0/params/W"] = d["layers/0/params/W"] * 1.0001
    with pytest.raises(CorruptFileError, match="digest"):
        mg.load(_rewrite(path, tmp_path / "w.npz", edit))


def test_removed_entry_fails(good_ckpt, tmp_path):
    path, _ = good_ckpt
    with pytest.raises(CorruptFileError, match="digest"):
        mg.load(_rewrite(path, tmp_path / "r.npz", lambda d: d.pop("layers/0/params/b")))
    with pytest.raises(CorruptFileError, match="__digest__"):
        mg.load(_rewrite(path, tmp_path / "r2.npz", lambda d: d.pop("__digest__")))


class Boom:
    def __reduce__(self):                       # would run code if it were ever unpickled
        return (os.system, ("touch PWNED",))


WRONG_TYPES = {
    "npy_file": lambda p: np.save(p, np.arange(3)) if False else p.write_bytes(_npy_bytes()),
    "pickle_file": lambda p: p.write_bytes(pickle.dumps({"model": Boom()})),
    "text_file": lambda p: p.write_text("epoch,loss\n1,0.5\n"),
    "json_file": lambda p: p.write_text(json.dumps({"layers": []})),
    "empty_zip": lambda p: zipfile.ZipFile(p, "w").close(),
    "foreign_npz": lambda p: np.savez(p, x=np.arange(3)),
    "npz_with_object_array": lambda p: np.savez(p, __format__=np.array("minigrow-1"),
                                                __meta__=np.array("{}"), evil=np.array([Boom()], dtype=object),
                                                __digest__=np.array("0")),
    "wrong_format_tag": lambda p: np.savez(p, __format__=np.array("minigrow-999"), __meta__=np.array("{}"),
                                           __digest__=np.array("0")),
    "non_string_meta": lambda p: np.savez(p, __format__=np.array("minigrow-1"), __meta__=np.arange(3),
                                          __digest__=np.array("0")),
}


def _npy_bytes():
    import io
    buf = io.BytesIO()
    np.save(buf, np.arange(3))
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(WRONG_TYPES))
def test_wrong_file_type_is_refused(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "file.npz"
    WRONG_TYPES[name](p)
    with pytest.raises(CorruptFileError) as info:
        mg.load(p)
    assert "file.npz" in str(info.value)
    with pytest.raises(CorruptFileError):
        resume(p)
    assert not (tmp_path / "PWNED").exists()
    if name == "npz_with_object_array":
        assert "object" in str(info.value) or "pickle" in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        mg.load(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        resume(tmp_path / "nope.npz")
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(CorruptFileError, match="directory"):
        mg.load(tmp_path / "dir.npz")


def test_object_arrays_cannot_be_saved(tmp_path):
    with pytest.raises(TypeError, match="object"):
        mg.save(tmp_path / "x.npz", mg.mlp([2, 2]), arrays={"evil": np.array([Boom()], dtype=object)})


def test_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
    """Atomic save: a failure while writing leaves the old file intact (and no temporary file behind)."""
    tr = build("mlp_sgd_momentum_steplr")
    path = save_checkpoint(tmp_path / "c.npz", tr)
    before = path.read_bytes()
    tr.fit(D.X_train, D.y_train, 1)

    def broken_savez(fh, **kw):
        fh.write(b"PK\x03\x04half")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, tr)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]
    assert load_checkpoint(path)["checkpoint"]["epoch"] == 0


# --------------------------------------------------------------------------------------------------------------
# divergence: stop with a clear error, keep the last finite state, which can be saved
def _diverging_trainer(lr, **kw):
    model = mg.mlp([2, 16, 2], rng=0, dtype=np.float32)
    return mg.Trainer(model, "ce", mg.SGD(lr), batch_size=32, rng=0, progress=False, **kw)


def test_divergence_keeps_parameters_from_before_the_failing_step(tmp_path):
    tr = _diverging_trainer(1e30)
    seen = []
    orig = tr.train_step

    def spy(xb, yb):
        seen.append(model_bytes(tr.model))
        return orig(xb, yb)
    tr.train_step = spy
    with pytest.raises(mg.TrainingDiverged) as info:
        tr.fit(D.X_train * 1e3, D.y_train, 3)
    exc = info.value
    assert exc.restored == "step" and exc.step == tr.step and not np.isfinite(exc.loss)
    assert f"step {exc.step + 1}" in str(exc) and f"epoch {exc.epoch + 1}" in str(exc)
    assert model_bytes(tr.model) == seen[-1]                       # exactly the state before the failing step
    assert params_finite(tr.model)
    assert len(tr.history.step_loss) == tr.step and tr.history.events[-1]["event"] == "diverged"
    mg.save(tmp_path / "last.npz", tr.model, optimizer=tr.optimizer)
    assert model_bytes(mg.load(tmp_path / "last.npz")["model"]) == seen[-1]


class OverflowAfterUpdate(mg.Trainer):
    """A train_step override that updates *before* it looks at its loss (allowed, but then only the epoch start
    can be restored): makes a parameter non-finite in the 3rd step of epoch 2."""

    def train_step(self, xb, yb):
        loss = super().train_step(xb, yb)
        if self.epoch == 1 and self.step % 7 == 2:
            self.model.layers[0].params["W"][0, 0] = np.inf
            return float("nan")
        return loss


def test_divergence_after_an_update_restores_the_epoch_start():
    tr = OverflowAfterUpdate(mg.mlp([2, 16, 2], rng=0), "ce", mg.Adam(1e-2), batch_size=64, rng=0, progress=False)
    tr.fit(D.X_train, D.y_train, 1)
    at_epoch_1 = (model_bytes(tr.model), tr.rng.bit_generator.state, tr.step, len(tr.history.step_loss))
    with pytest.raises(mg.TrainingDiverged) as info:
        tr.fit(D.X_train, D.y_train, 3)
    assert info.value.restored == "epoch" and info.value.epoch == 1
    assert "start of epoch 2" in str(info.value)
    assert (model_bytes(tr.model), tr.rng.bit_generator.state, tr.step, len(tr.history.step_loss)) == at_epoch_1
    assert params_finite(tr.model) and tr.epoch == 1


def test_overflow_in_the_last_update_of_an_epoch_is_caught():
    """No forward pass follows the last update of a run: the epoch-end finiteness check catches it."""
    class LastStepOverflow(mg.Trainer):
        def train_step(self, xb, yb):
            loss = super().train_step(xb, yb)
            if self.step == 3:                      # the last of 4 full-batch steps (epochs)
                self.model.layers[-1].params["b"][:] = -np.inf
            return loss
    tr = LastStepOverflow(mg.mlp([2, 8, 2], rng=0), "ce", mg.SGD(0.1), batch_size=None, rng=0, progress=False)
    tr.fit(D.X_train, D.y_train, 3)
    before = model_bytes(tr.model)
    with pytest.raises(mg.TrainingDiverged) as info:
        tr.fit(D.X_train, D.y_train, 1)
    assert info.value.restored == "epoch" and info.value.step == 3
    assert model_bytes(tr.model) == before


def test_rollback_off_says_the_model_is_broken():
    tr = OverflowAfterUpdate(mg.mlp([2, 16, 2], rng=0), "ce", mg.Adam(1e-2), batch_size=64, rng=0, progress=False,
                             rollback=False)
    tr.fit(D.X_train, D.y_train, 1)
    with pytest.raises(mg.TrainingDiverged, match="NOT finite"):
        tr.fit(D.X_train, D.y_train, 1)


def test_training_refuses_a_model_with_non_finite_parameters():
    model = mg.mlp([2, 4, 2], rng=0)
    model.layers[2].params["b"][1] = np.nan
    with pytest.raises(ValueError, match=r"layers\[2\].params\['b'\]"):
        mg.Trainer(model, progress=False).fit(D.X_train, D.y_train, 1)


# --------------------------------------------------------------------------------------------------------------
# the methods: pruning runs resume bit-identically (θ lives on the gated layers; pruned widths in the file)
def _pruning_trainer(pruning, **kw):
    return pruning.PruningTrainer(pruning.gated_mlp([2, 16, 16, 2], rng=0), "ce", mg.Adam(1e-2), batch_size=50,
                                  rng=0, settings=pruning.PLAIN_SETTINGS, price=20.0, eta_theta=0.2, warmup_epochs=1,
                                  progress=False, **kw)


FISHER = {"price_balance": "fisher", "price_on": "params", "balance_every": 3}


@pytest.mark.parametrize("split,kw", [(1, {}), (3, {}), (5, {}), (3, FISHER)])
def test_pruning_run_resumes_bit_identically(split, kw, tmp_path):
    pruning = pytest.importorskip("minigrow.methods.pruning")
    straight = _pruning_trainer(pruning, **kw)
    straight.fit(D.X_train, D.y_train, 6)
    if not kw:
        assert [e["epoch"] for e in straight.history.events if e.get("event") == "prune"] == [2, 5, 6]
    first = _pruning_trainer(pruning, **kw)
    first.fit(D.X_train, D.y_train, split)
    save_checkpoint(tmp_path / "c.npz", first)
    fresh = _pruning_trainer(pruning, **kw)                 # built as for the original run, then restored
    resume(tmp_path / "c.npz", fresh)
    fresh.fit(D.X_train, D.y_train, 6 - fresh.epoch)
    assert model_bytes(fresh.model) == model_bytes(straight.model)
    for la, lb in zip(fresh.model.layers, straight.model.layers):
        if hasattr(la, "theta"):
            assert la.theta.tobytes() == lb.theta.tobytes()
            assert np.array_equal(la.unit_ids, lb.unit_ids)
    assert history_wo_time(fresh.history) == history_wo_time(straight.history)


def test_pruning_divergence_rolls_back_theta():
    """A θ/W update that makes a parameter non-finite mid-epoch: the epoch-start state, θ included, comes back."""
    pruning = pytest.importorskip("minigrow.methods.pruning")

    class Breaks(pruning.PruningTrainer):
        def train_step(self, xb, yb):
            loss = super().train_step(xb, yb)
            if self.epoch == 2 and self.step % 9 == 4:
                pruning.gates(self.model)[0].theta[:] = 0.123      # θ changed in place …
                self.model.layers[0].params["W"][0, 0] = np.nan    # … and a weight broken
            return loss
    tr = Breaks(pruning.gated_mlp([2, 16, 16, 2], rng=0), "ce", mg.Adam(1e-2), batch_size=50, rng=0,
                settings=pruning.PLAIN_SETTINGS, price=1.0, eta_theta=0.2, warmup_epochs=1, progress=False)
    tr.fit(D.X_train, D.y_train, 2)
    before = (model_bytes(tr.model), pruning.gates(tr.model)[0].theta.tobytes())
    with pytest.raises(mg.TrainingDiverged) as info:
        tr.fit(D.X_train, D.y_train, 2)
    assert info.value.restored == "epoch"
    assert (model_bytes(tr.model), pruning.gates(tr.model)[0].theta.tobytes()) == before


@pytest.mark.parametrize("schedule", [["--polish", "3", "--finetune", "0"], ["--polish", "0", "--finetune", "2"],
                                      ["--polish", "0", "--finetune", "1", "--estimator", "flip_cv",
                                       "--flip-samples", "5", "--cv-every", "3"]])
def test_prune_cli_interrupted_and_resumed_gives_identical_files(tmp_path, capsys, schedule):
    """`python -m minigrow prune`: 6 epochs straight vs 4 epochs + --resume to 6, with a StepLR on the weights and
    either 3 "polish" epochs (one θ step per epoch, from epoch 4 on) or 2 fine-tune epochs (θ rounded and frozen
    after the interruption). Units are pruned before the interruption (the checkpoint holds the pruned net) and
    after it."""
    pytest.importorskip("minigrow.methods.pruning")
    from minigrow.cli import main
    base = ["prune", "--data", "spirals", "--hidden", "16,16", "--warmup", "1", "--price", "1", "--eta-theta", "2",
            "--batch-size", "50", "--no-plots", "--no-progress", "--lr-step", "2", "--price-on",
            "incoming", "--no-precondition", "--estimator", "flip", "--flip-samples", "50", *schedule]
    assert main(base + ["--epochs", "6", "--out", str(tmp_path / "a"), "--checkpoint-every", "2"]) == 0
    ck = tmp_path / "a" / "checkpoints" / "epoch-0004.npz"       # as if the run had been killed after epoch 4
    assert ck.exists()
    assert main(["prune", "--resume", str(ck), "--out", str(tmp_path / "b"), "--no-plots", "--no-progress"]) == 0
    for name in ("model.npz", "gated_model.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    ha, hb = (json.loads((tmp_path / x / "history.json").read_text()) for x in "ab")
    for h in (ha, hb):
        for e in h["epochs"]:
            e.pop("seconds")
    assert ha == hb
    pruned_at = [e["epoch"] for e in ha["events"] if e.get("event") == "prune"]
    rounded_at = [e["epoch"] for e in ha["events"] if e.get("event") == "binarize"]
    assert min(pruned_at) <= 4, pruned_at
    if "--polish" in schedule and schedule[schedule.index("--polish") + 1] != "0":
        assert max(pruned_at) > 4, pruned_at                       # pruned again after the interruption
    elif schedule[schedule.index("--finetune") + 1] == "2":
        assert rounded_at == [4], rounded_at                       # rounded by the resumed run (after epoch 4)
    else:
        assert rounded_at == [5], rounded_at                       # θ steps in epoch 5, rounded after it
    assert ha["epochs"][-1]["widths"][1] < 16
