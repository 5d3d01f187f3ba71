"""Conflicting bundles on conv VGG / ResNet nets (bundles.md §7): the report's entries and the residual scaling
(C1), exact hashing on feature maps (= the pairwise oracle), eval mode, the authors' pruning rule, auto-tune
restarts, lesioned forward passes and the lesion study, and the reproductions' command line (quick, tmp_path)."""
import json

import numpy as np
import pytest

from minigrow.methods.bundles import bundles_pairwise, group_rows, label_entropy, quantize, weight_amplitude
from minigrow.methods.bundles.conv import (SCALE_EPS, as_images, autotune_conv, block_conflicts, conv_activations,
                                   conflict_margin, conv_blocks, conv_layer_report, forward_lesioned_conv, lesion_conv,
                                   prune_first_stage)
from minigrow.experiments import bundles_conv as exp
from minigrow.layers import Sequential
from minigrow.convnets import resnet, vgg
from minigrow.optim import Adam
from minigrow.train import Trainer


def images(n=48, side=12, seed=0, ties=True):
    """Random grey images with labels; with ``ties`` some images repeat (with other labels) and some are black,
    so the feature maps have many exactly equal rows."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, 1, side, side), dtype=np.float32)
    y = rng.integers(0, 4, n)
    if ties:
        X[n // 2: n // 2 + 6] = X[0]            # duplicates of image 0 (labels differ)
        X[-5:] = 0.0                            # black images
    return X, y


def trained(net, blocks, width=3, seed=0, epochs=1):
    X, y = images(64, seed=seed, ties=False)
    m = net(blocks, width, rng=seed, n_classes=4)
    Trainer(m, "ce", Adam(1e-2), batch_size=16, rng=seed, progress=False).fit(X, y, epochs)
    return m


# ---- entries of the report ------------------------------------------------------------------------------------
def test_report_entries_vgg_one_per_block_resnet_two():
    X, y = images()
    rv = conv_layer_report(vgg([2, 1], 3, n_classes=4), X, y, n_classes=4)
    assert [(r.name, r.kind) for r in rv] == [("block 0", "block"), ("block 1", "block"), ("block 2", "block")]
    rr = conv_layer_report(resnet([2, 1], 3, n_classes=4), X, y, n_classes=4)
    assert [r.name for r in rr] == ["block 0 branch", "block 0", "block 1 branch", "block 1", "block 2 branch",
                                    "block 2"]
    assert [r.kind for r in rr] == ["branch", "block"] * 3
    assert len(block_conflicts(rr)) == 3 and len(block_conflicts(rv)) == 3
    last = conv_layer_report(resnet([2, 1], 3, n_classes=4), X, y, n_classes=4, last_only=True)
    assert len(last) == 1 and last[0].name == "block 2" and last[0].n_bundles == rr[-1].n_bundles


def test_branch_entry_is_scaled_by_both_conv_stds_and_block_entry_is_the_output():
    X, _ = images()
    m = trained(resnet, [1, 1])
    entries = list(conv_activations(m, X, chunk=7))          # chunking must not matter for the default scale
    blk = m.layers[conv_blocks(m)[1]]
    h = X
    for layer in m.layers[:conv_blocks(m)[1]]:
        h = layer.forward(h, train=False)
    outs = blk.branch.forward_all(h, train=False)
    c1, c2 = outs[1].astype(np.float64), outs[4].astype(np.float64)
    want = outs[5] / np.sqrt(c2.var() + SCALE_EPS) / np.sqrt(c1.var() + SCALE_EPS)      # (C1), float64
    name, kind, idx, got = entries[2]
    assert (name, kind) == ("block 1 branch", "branch")
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7)
    np.testing.assert_array_equal(entries[3][3], blk.forward(h, train=False))
    # the authors' per-batch scale: each chunk of scale_chunk samples gets its own 1/σ
    per = list(conv_activations(m, X, scale_chunk=16))[2][3]
    c1b, c2b = c1[:16], c2[:16]
    np.testing.assert_allclose(per[:16], outs[5][:16] / np.sqrt(c2b.var() + SCALE_EPS) / np.sqrt(c1b.var() + SCALE_EPS),
                               rtol=2e-5, atol=1e-7)
    assert not np.allclose(per, got)


def test_report_is_eval_mode_and_uses_model_wide_w_max():
    X, y = images()
    m = trained(resnet, [1, 1])
    before = {p: {k: v.copy() for k, v in lay.buffers.items()} for p, lay in m.named_layers()}
    r1 = conv_layer_report(m, X, y, n_classes=4)
    r2 = conv_layer_report(m, X, y, n_classes=4)
    for p, lay in m.named_layers():
        for k, v in lay.buffers.items():
            np.testing.assert_array_equal(v, before[p][k])       # running statistics untouched
    assert [r.n_bundles for r in r1] == [r.n_bundles for r in r2]
    # W_max is over every trainable tensor of the model: a parameter that no recorded entry depends on (the output
    # layer's bias) still sets the grid of every entry; at W_max = 1e6, γ ≈ ulp(1e6)·B/η = 4000 merges everything
    assert all(r.n_bundles > 1 for r in r1)
    m.layers[-1].params["b"][0] = 1e6
    assert weight_amplitude(m) == np.float32(1e6)
    assert [r.n_bundles for r in conv_layer_report(m, X, y, n_classes=4)] == [1] * len(r1)


# ---- hashing stays exact on feature maps ----------------------------------------------------------------------
@pytest.mark.parametrize("net", [vgg, resnet])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hashing_equals_pairwise_oracle_on_feature_maps(net, seed):
    X, y = images(seed=seed)
    m = trained(net, [1, 1], seed=seed)
    w = weight_amplitude(m)
    rep = conv_layer_report(m, X, y, n_classes=4)
    acts = list(conv_activations(m, X))
    assert len(acts) == len(rep)
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    for (name, kind, idx, a), r in zip(acts, rep):
        q = quantize(a, w)
        ref = bundles_pairwise(q, y, 4)
        np.testing.assert_array_equal(r.assignment, ref.assignment, err_msg=name)
        assert (r.n_bundles, r.n_conflicting) == (ref.n_bundles, ref.n_conflicting)
        assert r.entropy == pytest.approx(ref.entropy, abs=1e-12)
        # permuting the samples permutes the partition
        p = group_rows(q[perm])
        assert len(np.unique(np.stack([p, r.assignment[perm]], 1), axis=0)) == r.n_bundles
    # the duplicated and the black images are tied at every entry: fewer bundles than samples, conflicting ones
    assert all(r.n_bundles < X.shape[0] for r in rep)
    assert any(r.conflicting for r in rep)


def test_coarse_grid_merges_near_equal_feature_maps():
    """Feature maps that differ by less than the grid's γ ≈ ulp(W_max)·B/η fall into one bundle."""
    rng = np.random.default_rng(0)
    base = rng.random((1, 3, 4, 4), dtype=np.float32)
    a = np.repeat(base, 6, axis=0) + rng.uniform(0, 1e-7, (6, 3, 4, 4)).astype(np.float32)
    y = np.array([0, 1, 0, 1, 2, 2])
    from minigrow.methods.bundles import bundles
    b = bundles(a, y, w_max=1.0)
    assert b.n_bundles < 6 and b.entropy > 0
    assert bundles(a, y, grid=False).n_bundles == 6


def test_conflict_margin_is_the_nearest_differently_labelled_pair_in_grid_units():
    a = np.array([[0.0, 0.0], [0.0, 0.3], [1.0, 1.0], [1.0, 1.05]], dtype=np.float32)
    y = np.array([0, 0, 1, 2])
    m = conflict_margin(a, y, w_max=1.0, max_bytes=40)               # row chunks of one row
    assert m["min_linf"] == pytest.approx(0.05, abs=1e-6)             # pairs (0,1) share a label: not counted
    assert m["gamma"] == pytest.approx(float(np.spacing(np.float32(1.0))) * 64 / 1e-3)
    assert m["ratio"] == pytest.approx(m["min_linf"] / m["gamma"])
    assert conflict_margin(a, np.zeros(4, int), 1.0)["min_linf"] == np.inf


# ---- dead blocks, conflicts, pruning -------------------------------------------------------------------------
def test_dead_vgg_block_is_one_conflicting_bundle_and_resnet_skip_keeps_bundles():
    X, y = images(ties=False)
    m = vgg([1, 2], 3, n_classes=4)
    bn2 = m.layers[conv_blocks(m)[1]].branch.layers[-1]
    bn2.params["gamma"][:] = 0.0
    bn2.params["beta"][:] = -1.0                           # ReLU(−1) = 0 everywhere: a dead block
    rep = conv_layer_report(m, X, y, n_classes=4)
    assert [r.n_bundles for r in rep] == [48, 1, 1]        # dead from block 1 on (later blocks see a constant)
    assert rep[1].entropy == pytest.approx(label_entropy(y), abs=1e-12)
    assert block_conflicts(rep) == [False, True, True]
    assert prune_first_stage([1, 2], block_conflicts(rep)) == [1, 0]
    r = resnet([1, 2], 3, n_classes=4)
    bn2 = r.layers[conv_blocks(r)[2]].branch.layers[-1]
    bn2.params["gamma"][:] = 0.0
    bn2.params["beta"][:] = 0.0                            # zero branch: the block is the identity
    rep = conv_layer_report(r, X, y, n_classes=4)
    d = {x.name: x for x in rep}
    assert d["block 2 branch"].n_bundles == 1 and d["block 2 branch"].conflicting
    assert d["block 2"].n_bundles == d["block 1"].n_bundles == 48      # the skip keeps the bundles
    assert block_conflicts(rep) == [False, False, True]


def test_prune_first_stage_rule():
    flags = [False] * 3 + [False, False] + [True] * 10 + [False] * 41 + [False] * 3
    assert prune_first_stage([3, 12, 41, 3], flags) == [3, 2, 41, 3]
    # not monotone: the stage keeps its non-conflicting count (the authors' prune_model), later stages untouched
    flags = [False] * 3 + [True, False, True] + [False] * 9 + [True] * 41 + [False] * 3
    assert prune_first_stage([3, 12, 41, 3], flags) == [3, 10, 41, 3]
    assert prune_first_stage([2, 2], [False] * 4) == [2, 2]
    assert prune_first_stage([0, 2], [True, True]) == [0, 0]
    with pytest.raises(ValueError, match="one flag per block"):
        prune_first_stage([2, 2], [True])


def test_autotune_restarts_until_no_block_conflicts():
    """Identical images with different labels conflict at every block: each round empties the first non-empty
    stage and restarts from scratch, until the net has no blocks."""
    X = np.full((32, 1, 8, 8), 0.5, dtype=np.float32)
    y = np.arange(32) % 4
    res = autotune_conv(X, y, [1, 2, 1], width=2, X_test=X, y_test=y, epochs=2, n_eval=32, n_classes=4, seed=0)
    assert [r["blocks"] for r in res.rounds] == [[1, 2, 1], [0, 2, 1], [0, 0, 1], [0, 0, 0]]
    assert [r["conflict_epoch"] for r in res.rounds] == [1, 1, 1, None]
    assert res.converged and res.blocks == [0, 0, 0]
    assert res.rounds[-1]["epochs_trained"] == 2 and all(r["epochs_trained"] == 1 for r in res.rounds[:-1])
    assert res.total_epochs == 5 and res.total_train_macs == sum(r["train_macs"] for r in res.rounds) > 0
    assert res.rounds[0]["n_params"] > res.rounds[-1]["n_params"]
    assert json.dumps(res.as_dict(), default=float)


# ---- lesion --------------------------------------------------------------------------------------------------
def test_forward_lesioned_equals_removing_identity_blocks():
    X, _ = images()
    m = trained(resnet, [3, 1])
    np.testing.assert_allclose(forward_lesioned_conv(m, X, chunk=10), m.predict_logits(X), rtol=1e-6, atol=1e-6)
    idx = conv_blocks(m)
    cut = Sequential([lay for i, lay in enumerate(m.layers) if i != idx[1]])   # block 1 has an identity shortcut
    np.testing.assert_allclose(forward_lesioned_conv(m, X, drop=[1]), cut.predict_logits(X), rtol=1e-6, atol=1e-6)
    # a projection block (block 3, stride 2) dropped outputs ReLU(BN(conv1×1 x))
    out = forward_lesioned_conv(m, X, drop=[3])
    assert out.shape == (48, 4) and not np.allclose(out, m.predict_logits(X))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        forward_lesioned_conv(m, X, drop=[4])
    with pytest.raises(ValueError, match="no shortcut"):
        forward_lesioned_conv(vgg([1], 2, n_classes=4), X, drop=[0])


def test_lesion_study_groups_and_largest_fraction():
    X, y = images(ties=False)
    m = trained(resnet, [3, 1])
    # make block 1's branch constant (γ = β = 0): conflicting, and dropping it changes nothing
    bn2 = m.layers[conv_blocks(m)[1]].branch.layers[-1]
    bn2.params["gamma"][:] = 0.0
    bn2.params["beta"][:] = 0.0
    res = lesion_conv(m, X, y, X, y, repeats=4, rng=0, n_classes=4)
    assert res["n_blocks"] == 4 and 1 in res["conflicting_blocks"]
    assert res["single_block_test_acc"][1] == res["base_test_acc"]
    c = res["curves"]
    assert c["random"]["k"] == [1, 2, 3, 4]
    assert c["conflicting"]["k"] == list(range(1, len(res["conflicting_blocks"]) + 1))
    assert c["random"]["mean"][-1] == c["random"]["min"][-1] == c["random"]["max"][-1]   # one subset: all blocks
    for g in c.values():
        ok = [mu >= res["base_test_acc"] - 0.005 for mu in g["mean"]]
        want = 0
        for k, good in zip(g["k"], ok):        # every k' ≤ k within the tolerance
            if not good:
                break
            want = k
        assert g["largest_k_mean"] == want
        assert g["largest_k_all_repeats"] <= g["largest_k_mean"]
        assert all(len(a) == 4 for a in g["accs"])
    if res["conflicting_blocks"] == [1]:
        assert res["drop_all_conflicting_acc"] == res["base_test_acc"]
    with pytest.raises(ValueError, match="ResNet blocks"):
        lesion_conv(vgg([1], 2, n_classes=4), X, y, X, y, n_classes=4)


def test_as_images_shapes_and_errors():
    assert as_images(np.zeros((2, 784))).shape == (2, 1, 28, 28)
    assert as_images(np.zeros((2, 28, 28))).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="expected images"):
        as_images(np.zeros((2, 5)))


# ---- the reproductions, end to end (quick, tmp_path) ----------------------------------------------------------
@pytest.mark.parametrize("what", ["grid", "autotune", "lesion"])
def test_reproduction_quick_writes_only_to_given_dirs(what, tmp_path, capsys):
    assert exp.main([what, "--quick", "--out-dir", str(tmp_path), "--fig-dir", str(tmp_path), "--quiet"]) == 0
    res = json.loads((tmp_path / f"bundles_conv_{what}.json").read_text())
    assert (tmp_path / f"bundles_conv_{what}.png").stat().st_size > 1000
    assert res["config"]["quick"] is True
    if what == "grid":
        cfg = res["config"]
        assert len(res["runs"]) == 2 * len(cfg["depths"]) * len(cfg["widths"]) * len(cfg["seeds"]) * len(cfg["datasets"])
        assert all(r["n_bundles"] is not None and 0 <= r["test_acc"] <= 1 for r in res["runs"])
    elif what == "autotune":
        assert {"start", "autotuned", "shallow"} <= set(res)
        assert res["shallow"]["blocks"] == exp.QUICK_AUTOTUNE["shallow"]
    else:
        assert res["nets"][0]["repeats"] == exp.QUICK_LESION["repeats"]
        assert set(res["nets"][0]["curves"]) == {"conflicting", "non_conflicting", "random"}


def test_reproduction_quick_without_dirs_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(exp, "REPO_ROOT", tmp_path)        # would be the target of a full run
    exp.main(["autotune", "--quick", "--quiet"])
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("what", ["conv-grid", "conv-autotune", "conv-lesion"])
def test_cli_reproduce_conv_quick(what, tmp_path):
    from minigrow.cli import main
    out = tmp_path / "o"
    assert main(["bundles", "reproduce", what, "--quick", "--out", str(out), "--no-progress"]) == 0
    name = "bundles_conv_" + what[len("conv-"):]
    assert json.loads((out / f"{name}.json").read_text())
    assert (out / "manifest.json").exists()
