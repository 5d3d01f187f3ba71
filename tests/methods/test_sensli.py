"""SensLI: the "what must hold" list of sensli.md §7, for ReLU FNNs and residual nets, in float64."""
import copy

import numpy as np
import pytest
from hypothesis import given, strategies as st

from minigrow.methods import sensli as S
from minigrow.data import two_spirals
from minigrow.gradcheck import numerical_gradient, rel_error
from minigrow.layers import Dense, ReLU, ResidualBlock, Sequential
from minigrow.losses import SoftmaxCrossEntropy
from minigrow.network import mlp, residual_mlp
from minigrow.optim import SGD, Adam, Optimizer, StepLR
from minigrow.train import Trainer

F64 = np.float64


@pytest.fixture(scope="module")
def spirals():
    return two_spirals(rng=0, dtype=F64)


def small_data(seed, n=40, d=3, k=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


def trained(model, X, y, steps=30, lr=0.1):
    """A few SGD steps so that the scores are not those of a fresh init."""
    Trainer(model, "ce", SGD(lr), batch_size=None, rng=0, progress=False, dtype=F64).fit(X, y, steps)
    return model


# --- 1. insertion leaves the output bit-identical ---------------------------------------------------------------

@given(seed=st.integers(0, 10_000), widths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_identity_insertion_is_bit_identical(seed, widths, dtype):
    X, y = small_data(seed)
    model = mlp([3, *widths, 3], "relu", rng=seed, dtype=dtype)
    X = X.astype(dtype)
    before = model.predict_logits(X)
    for c in S.candidates(model):
        m = copy.deepcopy(model)
        S.insert_candidate(m, c)
        assert len(m) == len(model) + 2
        assert np.array_equal(m.predict_logits(X), before)


@given(seed=st.integers(0, 10_000), width=st.integers(1, 5), blocks=st.integers(0, 3),
       act=st.sampled_from(["tanh", "relu", "leaky_relu", "sigmoid"]))
def test_residual_insertion_is_bit_identical_for_any_activation(seed, width, blocks, act):
    X, y = small_data(seed)
    model = residual_mlp(3, width, blocks, 3, activation=act, rng=seed, dtype=F64)
    before = model.predict_logits(X)
    cands = S.candidates(model, form="residual")    # ('auto' would pick 'identity' when blocks == 0)
    assert len(cands) == blocks + 1                  # after the input layer and after every block
    for c in cands:
        m = copy.deepcopy(model)
        S.insert_candidate(m, c)
        assert isinstance(m.layers[c.after + 1], ResidualBlock)
        assert np.array_equal(m.predict_logits(X), before)


def test_extended_network_is_function_preserving_and_frozen(spirals):
    for model in (mlp([2, 5, 4, 2], rng=3, dtype=F64), residual_mlp(2, 3, 2, 2, rng=3, dtype=F64)):
        n_layers = len(model)
        ext, cands, index = S.extended_network(model)
        assert len(model) == n_layers                  # the model itself is untouched
        assert len(ext) == n_layers + sum(2 if c.form == "identity" else 1 for c in cands)
        assert np.array_equal(ext.predict_logits(spirals.X_train), model.predict_logits(spirals.X_train))
        for c in cands:
            layer = ext.layers[index[c.position]]
            assert layer.frozen == set(layer.params)
            if c.form == "identity":
                assert np.array_equal(layer.params["W"], np.eye(c.width))
            else:
                assert np.array_equal(layer.params["W1"], 0.8 * np.eye(c.width))
                assert not layer.params["W2"].any()


# --- 2. closed form == gradients of the explicit extended network -----------------------------------------------

@pytest.mark.parametrize("batch_size", [None, 45, 64])
@pytest.mark.parametrize("kind", ["fnn", "fnn_deep", "res", "res_relu"])
def test_closed_form_equals_extended_network(spirals, kind, batch_size):
    model = {"fnn": lambda: mlp([2, 5, 2], rng=1, dtype=F64),
             "fnn_deep": lambda: mlp([2, 6, 4, 3, 2], rng=1, dtype=F64),
             "res": lambda: residual_mlp(2, 3, 2, 2, "tanh", rng=1, dtype=F64),
             "res_relu": lambda: residual_mlp(2, 4, 1, 2, "relu", rng=1, dtype=F64)}[kind]()
    trained(model, spirals.X_train, spirals.y_train)
    a = S.closed_form_sensitivities(model, spirals.X_train, spirals.y_train, batch_size=batch_size)
    b = S.extended_sensitivities(model, spirals.X_train, spirals.y_train, batch_size=batch_size)
    assert a.n_batches == b.n_batches == (1 if batch_size is None else -(-450 // batch_size))
    for ga, gb in zip(a.grads, b.grads):
        assert np.abs(ga).max() > 0
        np.testing.assert_allclose(ga, gb, rtol=1e-12, atol=1e-15)
    for ba, bb in zip(a.bias_grads, b.bias_grads):
        if ba is not None:
            np.testing.assert_allclose(ba, bb, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-12)


def test_fnn_bias_sensitivity_equals_existing_bias_gradient(spirals):
    """∂L/∂c_l = mean δ_l = ∂L/∂b_l of the Dense layer in front of the ReLU (sensli.md §2)."""
    model = trained(mlp([2, 5, 4, 2], rng=2, dtype=F64), spirals.X_train, spirals.y_train)
    a = S.closed_form_sensitivities(model, spirals.X_train, spirals.y_train)
    loss = SoftmaxCrossEntropy()
    loss.forward(model.forward(spirals.X_train), spirals.y_train)
    model.backward(loss.backward())
    for c, gb in zip(a.candidates, a.bias_grads):
        np.testing.assert_allclose(gb, model.layers[c.after - 1].grads["b"], rtol=1e-12, atol=1e-15)


def test_scores_average_before_squaring(spirals):
    """s_p = ‖mean_b G_b‖², not mean_b ‖G_b‖² — the two differ for minibatches."""
    model = trained(mlp([2, 5, 2], rng=4, dtype=F64), spirals.X_train, spirals.y_train)
    a = S.closed_form_sensitivities(model, spirals.X_train, spirals.y_train, batch_size=45)
    per_batch = [S.closed_form_sensitivities(model, spirals.X_train[s:s + 45], spirals.y_train[s:s + 45]).grads[0]
                 for s in range(0, 450, 45)]
    mean_first = np.mean(per_batch, axis=0)
    np.testing.assert_allclose(a.grads[0], mean_first, rtol=1e-12, atol=1e-15)
    assert a.scores[0] == pytest.approx(np.sum(mean_first ** 2), rel=1e-12)
    assert a.scores[0] < np.mean([np.sum(g ** 2) for g in per_batch])
    n = S.closed_form_sensitivities(model, spirals.X_train, spirals.y_train, batch_size=45, normalise=True)
    assert n.scores[0] == pytest.approx(a.scores[0] / 25, rel=1e-12)


def test_sensitivity_pass_updates_nothing(spirals):
    model = trained(mlp([2, 5, 4, 2], rng=5, dtype=F64), spirals.X_train, spirals.y_train)
    params = {(i, k): v.copy() for i, layer in enumerate(model.layers) for k, v in layer.params.items()}
    S.closed_form_sensitivities(model, spirals.X_train, spirals.y_train, batch_size=45, free_score=True)
    S.extended_sensitivities(model, spirals.X_train, spirals.y_train)
    assert len(model) == 5
    for (i, k), v in params.items():
        assert np.array_equal(model.layers[i].params[k], v)


# --- 3. finite differences at the kink ----------------------------------------------------------------------------

def _extended_loss(ext, X, y):
    loss = SoftmaxCrossEntropy()
    return lambda: loss.forward(ext.forward(X, train=False), y)


def test_fnn_one_sided_backward_difference_matches_central_fails(spirals):
    """At V = I the inactive units of the virtual layer sit at the ReLU kink. The backward one-sided
    difference (L(V) − L(V − εE_ij))/ε is the left derivative, which is what ReLU'(0) = 0 computes; the central
    difference averages left and right derivatives and disagrees."""
    model = trained(mlp([2, 5, 2], rng=0, dtype=F64), spirals.X_train, spirals.y_train)
    a = S.closed_form_sensitivities(model, spirals.X_train, spirals.y_train)
    ext, cands, index = S.extended_network(model)
    V = ext.layers[index[0]].params["W"]
    f = _extended_loss(ext, spirals.X_train, spirals.y_train)
    back = numerical_gradient(f, V, h=1e-7, method="backward")
    central = numerical_gradient(f, V, h=1e-5, method="central")
    assert rel_error(a.grads[0], back) < 1e-5
    assert rel_error(a.grads[0], central) > 1e-3
    forward = numerical_gradient(f, V, h=1e-7, method="forward")
    assert rel_error(a.grads[0], forward) > 1e-3          # the right derivative differs too


def test_residual_central_differences_match(spirals):
    model = trained(residual_mlp(2, 3, 2, 2, "tanh", rng=0, dtype=F64), spirals.X_train, spirals.y_train)
    a = S.closed_form_sensitivities(model, spirals.X_train, spirals.y_train)
    ext, cands, index = S.extended_network(model)
    f = _extended_loss(ext, spirals.X_train, spirals.y_train)
    for c in cands:
        W2 = ext.layers[index[c.position]].params["W2"]
        num = numerical_gradient(f, W2, h=1e-5, method="central")
        assert rel_error(a.grads[c.position], num) < 1e-8
        # W2 = 0 kills the gradients of W1 and b1 of the virtual block
        for name in ("W1", "b1"):
            p = ext.layers[index[c.position]].params[name]
            assert np.abs(numerical_gradient(f, p, h=1e-5, method="central")).max() < 1e-10


# --- 4. single hidden layer: abs max == abs min ---------------------------------------------------------------------

def test_single_position_abs_max_equals_abs_min(spirals):
    runs = []
    for mode in ("abs_max", "abs_min"):
        model = mlp([2, 5, 2], rng=7, dtype=F64)
        runs.append(S.sensli_train(model, spirals.X_train, spirals.y_train, [20, 20], lr=0.2, mode=mode))
    assert runs[0].insertions[0]["chosen"] == runs[1].insertions[0]["chosen"] == 0
    assert runs[0].train_loss == runs[1].train_loss


def test_select_modes():
    s = np.array([0.3, 0.9, 0.1, 0.9, 0.1])
    assert S.select(s, "abs_max") == 1                 # first index on ties
    assert S.select(s, "abs_min") == 2
    assert S.select(s, "fixed", position=4) == 4
    assert S.select(s, "threshold", tau=2.0, free_score=0.4) == 1
    assert S.select(s, "threshold", tau=3.0, free_score=0.4) is None
    with pytest.raises(ValueError, match="position"):
        S.select(s, "fixed", position=5)
    with pytest.raises(ValueError, match="mode"):
        S.select(s, "max")
    with pytest.raises(ValueError, match="tau"):
        S.select(s, "threshold")


def test_free_score_is_mean_weight_score(spirals):
    """s̄_free = mean over the weight matrices of ‖pass-averaged ∂L/∂W‖² (definition in sensli.py, S7)."""
    model = trained(mlp([2, 5, 4, 2], rng=8, dtype=F64), spirals.X_train, spirals.y_train)
    for normalise in (False, True):
        a = S.closed_form_sensitivities(model, spirals.X_train, spirals.y_train, free_score=True,
                                        normalise=normalise)
        loss = SoftmaxCrossEntropy()
        loss.forward(model.forward(spirals.X_train), spirals.y_train)
        model.backward(loss.backward())
        Ws = [layer.grads["W"] for layer in model.layers if isinstance(layer, Dense)]
        expect = np.mean([np.sum(g ** 2) / (g.size if normalise else 1) for g in Ws])
        assert a.free_score == pytest.approx(expect, rel=1e-12)
        b = S.closed_form_sensitivities(model, spirals.X_train, spirals.y_train, normalise=normalise)
        np.testing.assert_array_equal(a.scores, b.scores)   # the free-score path gives the same scores


def test_threshold_mode_can_skip_insertion(spirals):
    model = mlp([2, 5, 2], rng=1, dtype=F64)
    run = S.sensli_train(model, spirals.X_train, spirals.y_train, [10, 10], lr=0.2, mode="threshold", tau=1e12)
    assert run.insertions[0]["inserted"] is False and len(model) == 3
    model = mlp([2, 5, 2], rng=1, dtype=F64)
    run = S.sensli_train(model, spirals.X_train, spirals.y_train, [10, 10], lr=0.2, mode="threshold", tau=0.0)
    assert run.insertions[0]["inserted"] is True and len(model) == 5


def test_fixed_position_and_argmin_choose_different_layers(spirals):
    model = trained(mlp([2, 4, 4, 2], rng=3, dtype=F64), spirals.X_train, spirals.y_train)
    s = S.closed_form_sensitivities(model, spirals.X_train, spirals.y_train).scores
    assert s[0] != s[1]
    for mode, expect in (("abs_max", int(np.argmax(s))), ("abs_min", int(np.argmin(s))), ("fixed", 1)):
        m = copy.deepcopy(model)
        run = S.sensli_train(m, spirals.X_train, spirals.y_train, [0, 0], lr=0.1, mode=mode, position=1)
        assert run.insertions[0]["chosen"] == expect
        assert isinstance(m.layers[S.candidates(model)[expect].after + 1], Dense)


# --- 5. loss continuous across the insertion ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fnn", "res"])
def test_loss_continuous_across_insertion(spirals, kind):
    model = mlp([2, 5, 5, 2], rng=2, dtype=F64) if kind == "fnn" else residual_mlp(2, 3, 1, 2, rng=2, dtype=F64)
    run = S.sensli_train(model, spirals.X_train, spirals.y_train, [50, 50, 50], lr=0.2, decrease=0.8)
    assert len(run.insertions) == 2 and len(run.train_loss) == 150
    for rec in run.insertions:
        assert rec["loss_before"] == rec["loss_after"]
    # full batch: the first loss of the next phase is the loss right after the insertion
    assert run.train_loss[50] == pytest.approx(run.insertions[0]["loss_after"], rel=1e-12)
    assert abs(run.train_loss[50] - run.train_loss[49]) < 0.05 * run.train_loss[49]
    assert run.phases[1]["lr_start"] == pytest.approx(0.8 * 0.2)
    assert run.phases[2]["lr_start"] == pytest.approx(0.8 * 0.8 * 0.2)
    assert run.phases[2]["n_params"] > run.phases[1]["n_params"] > run.phases[0]["n_params"]
    assert run.sensitivity_macs > 0 and run.train_macs == sum(p["macs"] for p in run.phases)


# --- 6. identity insertion after LeakyReLU / tanh changes the output and is refused --------------------------------

@pytest.mark.parametrize("act", ["leaky_relu", "tanh"])
def test_identity_insertion_refused_for_non_relu(spirals, act):
    model = mlp([2, 5, 2], act, rng=0, dtype=F64)
    X = spirals.X_train
    before = model.predict_logits(X)
    # the demonstration: inserting the identity layer anyway changes the output
    m = copy.deepcopy(model)
    m.insert(2, *S.identity_layers(5, act, F64))
    assert np.abs(m.predict_logits(X) - before).max() > 1e-3
    # … so the library refuses it and points to the residual form
    with pytest.raises(ValueError, match="residual"):
        S.candidates(model, form="identity")
    with pytest.raises(ValueError, match="residual"):
        S.closed_form_sensitivities(model, X, spirals.y_train)
    with pytest.raises(ValueError, match="residual"):
        S.insert_candidate(model, S.Candidate(0, 1, 5, "identity", act))
    # the residual form works and preserves the function
    c = S.candidates(model, form="residual")
    assert [x.after for x in c] == [1]
    S.insert_candidate(model, c[0])
    assert np.array_equal(model.predict_logits(X), before)


# --- 7. optimiser state survives, the new layer starts fresh --------------------------------------------------------

@pytest.mark.parametrize("opt", ["adam", "momentum"])
@pytest.mark.parametrize("kind", ["fnn", "res"])
def test_optimizer_state_survives_insertion(spirals, opt, kind):
    model = mlp([2, 5, 4, 2], rng=1, dtype=F64) if kind == "fnn" else residual_mlp(2, 3, 1, 2, rng=1, dtype=F64)
    optimizer = Adam(1e-2) if opt == "adam" else SGD(0.05, momentum=0.9)
    tr = Trainer(model, "ce", optimizer, batch_size=45, rng=0, progress=False, dtype=F64)
    tr.fit(spirals.X_train, spirals.y_train, 2)
    old_layers = list(model.layers)
    saved = {(id(layer), k): {s: (v.copy() if isinstance(v, np.ndarray) else v) for s, v in st_.items()}
             for layer in old_layers for k, st_ in layer.state.items()}
    assert saved
    c = S.candidates(model)[-1]
    idx = S.insert_candidate(model, c)
    new = model.layers[idx]
    assert new not in old_layers and new.state == {}
    for layer in old_layers:
        assert layer in model.layers
        for k, st_ in layer.state.items():
            for s, v in st_.items():
                np.testing.assert_array_equal(v, saved[(id(layer), k)][s])
    tr.fit(spirals.X_train, spirals.y_train, 1)            # the same optimiser continues
    if opt == "adam":
        assert all(st_["t"] == 10 for st_ in new.state.values())
        assert all(st_["t"] == 30 for layer in old_layers for st_ in layer.state.values())
    else:
        assert set(new.state) == set(new.params)


# --- the loop, errors --------------------------------------------------------------------------------------------

def test_loop_without_insertion_is_plain_training(spirals):
    a = mlp([2, 5, 2], rng=3, dtype=F64)
    b = copy.deepcopy(a)
    run = S.sensli_train(a, spirals.X_train, spirals.y_train, [30], spirals.X_test, spirals.y_test, lr=0.2)
    tr = Trainer(b, "ce", SGD(0.2), batch_size=None, rng=0, progress=False, dtype=F64)
    tr.fit(spirals.X_train, spirals.y_train, 30)
    assert run.train_loss == list(tr.history.column("train_loss"))
    assert run.insertions == [] and run.test_acc[-1][0] == 30


def test_loop_steplr_and_adam(spirals):
    model = mlp([2, 5, 2], rng=3, dtype=F64)
    run = S.sensli_train(model, spirals.X_train, spirals.y_train, [4, 4], optimizer="adam", lr=0.01,
                         weight_decay=5e-3, batch_size=100, step_size=2, gamma=0.5, decrease=0.7)
    assert run.phases[0]["lr_end"] == pytest.approx(0.01 * 0.25)
    assert run.phases[1]["lr_start"] == pytest.approx(0.7 * 0.01 * 0.25)
    assert run.insertions[0]["n_batches"] == 5


def _phase_by_phase(model, X, y, epochs, lr, decrease, batch_size, step_size, gamma, rng):
    """sensli.md §5 written out as a loop over phases, a new Trainer, Adam and StepLR per phase — the reference."""
    losses, chosen = [], []
    for k, e in enumerate(epochs):
        opt = Adam(lr, weight_decay=5e-3)
        Optimizer.reset_state(model)
        tr = Trainer(model, "ce", opt, batch_size=batch_size, rng=rng, scheduler=StepLR(opt, step_size, gamma),
                     progress=False, dtype=model.dtype)
        tr.fit(X, y, e)
        losses += [float(v) for v in tr.history.column("train_loss")]
        if k < len(epochs) - 1:
            sens = S.closed_form_sensitivities(model, X, y, batch_size=batch_size)
            chosen.append(S.select(sens.scores))
            S.insert_candidate(model, sens.candidates[chosen[-1]])
            lr = decrease * opt.lr
    return losses, chosen


@pytest.mark.parametrize("kind", ["fnn", "res"])
def test_one_trainer_loop_equals_phase_by_phase_loop(kind):
    """The single-Trainer schedule (InsertionSchedule) reproduces the per-phase loop bit for bit: fresh optimiser
    state, lr = decrease · lr at the end of the phase, a restarted StepLR, the same minibatch order."""
    d = two_spirals(rng=0)
    a = mlp([2, 6, 5, 2], rng=4) if kind == "fnn" else residual_mlp(2, 3, 1, 2, rng=4)
    b = copy.deepcopy(a)
    run = S.sensli_train(a, d.X_train, d.y_train, [5, 4, 6], optimizer="adam", lr=0.02, weight_decay=5e-3,
                         batch_size=64, step_size=2, gamma=0.5, decrease=0.7, rng=np.random.default_rng(9))
    losses, chosen = _phase_by_phase(b, d.X_train, d.y_train, [5, 4, 6], 0.02, 0.7, 64, 2, 0.5,
                                     np.random.default_rng(9))
    assert run.train_loss == losses and [e["chosen"] for e in run.insertions] == chosen
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        for k in la.params:
            assert la.params[k].tobytes() == lb.params[k].tobytes()


# --- checkpoints: an interrupted insertion run resumes bit-identically ------------------------------------------

RESUME_SETUPS = {
    "fnn_adam_steplr_minibatch": (lambda: mlp([2, 6, 5, 2], rng=2),
                                  dict(optimizer="adam", lr=0.01, weight_decay=5e-3, batch_size=64, step_size=2,
                                       gamma=0.5, decrease=0.7, test_every=2)),
    "res_sgd_fullbatch": (lambda: residual_mlp(2, 3, 1, 2, activation="tanh", rng=2),
                          dict(optimizer="sgd", lr=0.1, decrease=0.8)),
}
EPOCHS = [3, 3, 3]                   # insertions at the ends of epochs 3 and 6


class Interrupted(Exception):
    """Stands for the process being killed right after a checkpoint was written."""


def _insertion_run(setup, ckdir=None, resume=None, **over):
    make, kw = RESUME_SETUPS[setup]
    d = two_spirals(rng=0)                                  # fresh data, model and Generator: a new process
    return S.sensli_train(make(), d.X_train, d.y_train, over.pop("epochs", EPOCHS), d.X_test, d.y_test,
                          rng=np.random.default_rng(5), checkpoint_dir=ckdir, resume=resume, **{**kw, **over})


def _interrupt_after(monkeypatch, epoch, exc=Interrupted):
    import minigrow.train as tr                 # the Trainer writes through minigrow.trainstate, imported there
    write = tr.write_epoch_checkpoint

    def write_then_die(trainer):
        path = write(trainer)
        if trainer.epoch == epoch:
            raise exc(str(path))
        return path
    monkeypatch.setattr(tr, "write_epoch_checkpoint", write_then_die)


def _no_seconds(obj):
    if isinstance(obj, dict):
        return {k: _no_seconds(v) for k, v in obj.items() if "seconds" not in k}
    if isinstance(obj, list):
        return [_no_seconds(v) for v in obj]
    return obj


def _everything(run):
    """Architecture, parameters, optimiser state, records, history, RNG and optimiser settings of a run."""
    layers = [(type(layer).__name__, [(k, v.dtype.str, v.shape, v.tobytes()) for k, v in sorted(layer.params.items())],
               [(k, s, np.asarray(v).tobytes()) for k, st_ in sorted(layer.state.items()) for s, v in sorted(st_.items())])
              for layer in run.model.layers]
    tr = run.trainer
    return (layers, _no_seconds(run.as_dict()), _no_seconds(tr.history.epochs), tr.history.step_loss,
            tr.history.events, tr.rng.bit_generator.state, tr.optimizer.config(), (tr.epoch, tr.step))


@pytest.mark.parametrize("setup", sorted(RESUME_SETUPS))
@pytest.mark.parametrize("stop", [2, 3, 4, 6, 8])    # before, at and after the 1st insertion; at the 2nd; after
def test_insertion_run_resumes_bit_identically(setup, stop, tmp_path, monkeypatch):
    straight = _insertion_run(setup)
    assert [e["inserted"] for e in straight.insertions] == [True, True]
    _interrupt_after(monkeypatch, stop)
    with pytest.raises(Interrupted):
        _insertion_run(setup, tmp_path)
    monkeypatch.undo()
    path = tmp_path / f"epoch-{stop:04d}.npz"
    from minigrow.checkpoint import load_checkpoint
    state = load_checkpoint(path)["checkpoint"]["method"]["sensli"]["meta"]
    assert (state["phase"], state["in_phase"]) == divmod(stop, 3)
    n_small = len(RESUME_SETUPS[setup][0]().layers)
    per = 2 if setup.startswith("fnn") else 1
    assert len(load_checkpoint(path)["model"].layers) == n_small + per * (stop // 3)   # at 3, 6: already grown
    resumed = _insertion_run(setup, resume=path)
    assert _everything(resumed) == _everything(straight)


def test_insertion_resume_from_the_folder_and_from_the_end(tmp_path):
    straight = _insertion_run("res_sgd_fullbatch", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0008.npz", "epoch-0009.npz"]
    again = _insertion_run("res_sgd_fullbatch", resume=tmp_path)           # the newest: nothing left to train
    assert _everything(again) == _everything(straight)


def test_insertion_resume_refuses_other_settings(tmp_path):
    _insertion_run("res_sgd_fullbatch", tmp_path)
    with pytest.raises(ValueError, match="decrease"):
        _insertion_run("res_sgd_fullbatch", resume=tmp_path, decrease=0.5)
    with pytest.raises(ValueError, match="epochs"):
        _insertion_run("res_sgd_fullbatch", resume=tmp_path, epochs=[3, 3, 4])
    with pytest.raises(ValueError, match="optimizer"):
        _insertion_run("res_sgd_fullbatch", resume=tmp_path, optimizer="adam")


def test_errors(spirals):
    model = mlp([2, 5, 2], rng=0)
    with pytest.raises(ValueError, match="form"):
        S.candidates(model, form="conv")
    with pytest.raises(TypeError, match="Sequential"):
        S.candidates(Dense(2, 2))
    with pytest.raises(ValueError, match="no hidden layer"):
        S.candidates(Sequential([Dense(2, 2)]))
    with pytest.raises(ValueError, match="epochs"):
        S.sensli_train(model, spirals.X_train, spirals.y_train, [])
    with pytest.raises(TypeError, match="Candidate"):
        S.insert_candidate(model, 1)


def test_loop_refuses_identity_form_before_training(spirals):
    model = mlp([2, 5, 2], "tanh", rng=0, dtype=F64)
    W = model.layers[0].params["W"].copy()
    with pytest.raises(ValueError, match="residual"):
        S.sensli_train(model, spirals.X_train, spirals.y_train, [5, 5])
    assert np.array_equal(model.layers[0].params["W"], W)        # nothing was trained
    run = S.sensli_train(model, spirals.X_train, spirals.y_train, [5, 5], form="residual")
    assert isinstance(model.layers[2], ResidualBlock) and run.insertions[0]["loss_before"] == \
        run.insertions[0]["loss_after"]


def test_cli_insert_runs_and_reports(tmp_path, capsys):
    from minigrow.cli import main
    rc = main(["insert", "--epochs", "3,3", "--out", str(tmp_path), "--no-progress", "--no-plots"])
    out = capsys.readouterr().out
    assert rc == 0 and "inserted at p=0" in out and (tmp_path / "history.json").exists()
    import json
    h = json.loads((tmp_path / "history.json").read_text())
    assert len(h["train_loss"]) == 6 and h["insertions"][0]["loss_before"] == h["insertions"][0]["loss_after"]
    rc = main(["insert", "--arch", "resnet", "--hidden", "3", "--out", str(tmp_path), "--no-progress"])
    assert rc == 2 and "WIDTH,BLOCKS" in capsys.readouterr().err


def test_cli_insert_checkpoint_and_resume(tmp_path, monkeypatch, capsys):
    """``insert --checkpoint-every 1`` interrupted (Ctrl-C) after epoch 4, then ``--resume``: the same files as
    the uninterrupted run."""
    import json
    from minigrow.cli import main
    argv = ["insert", "--epochs", "3,3,3", "--optimizer", "adam", "--lr", "0.01", "--batch-size", "64",
            "--step-size", "2", "--decrease", "0.7", "--no-progress", "--no-plots"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    _interrupt_after(monkeypatch, 4, KeyboardInterrupt)
    assert main([*argv, "--checkpoint-every", "1", "--out", str(tmp_path / "b")]) == 130
    monkeypatch.undo()
    assert not (tmp_path / "b" / "model.npz").exists()
    assert main(["insert", "--resume", str(tmp_path / "b" / "checkpoints"), "--out", str(tmp_path / "b"),
                 "--no-progress", "--no-plots"]) == 0
    assert "resuming" in capsys.readouterr().out
    ha, hb = (json.loads((tmp_path / r / "history.json").read_text()) for r in "ab")
    assert _no_seconds(ha) == _no_seconds(hb) and len(hb["insertions"]) == 2
    with np.load(tmp_path / "a" / "model.npz") as fa, np.load(tmp_path / "b" / "model.npz") as fb:
        assert sorted(fa.files) == sorted(fb.files)
        assert all(fa[k].tobytes() == fb[k].tobytes() for k in fa.files)


def test_reproduce_quick_writes_json(tmp_path):
    from minigrow.experiments.sensli import reproduce
    s = reproduce("D", seeds=2, quick=True, out_dir=tmp_path, progress=False, plots=False)
    assert (tmp_path / "results" / "sensli_D.json").exists()
    assert set(s["summary"]) == {"argmax", "argmin", "small", "big"}
    assert 0.0 <= s["argmax_vs_argmin"]["fraction_same_position"] <= 1.0
    assert s["summary"]["big"]["train_macs"] > s["summary"]["small"]["train_macs"]


def test_demo_quick(tmp_path):
    from minigrow.cli.insert import demo
    res = demo(tmp_path, 0, True, False)
    assert "SensLI" in res["summary"] and all((tmp_path / p).exists() for p in res["plots"])
