"""Auto-tune by conflicting layer removal and the lesion study (bundles.md §4, §6 item 6)."""
import numpy as np
import pytest

from minigrow.methods.bundles import (DenseBlock, autotune, block_net, block_types, forward_lesioned, lesion_study,
                               remove_all_types, remove_first_type)
from minigrow.methods.bundles import layer_report
from minigrow.gradcheck import check_layer
from minigrow.io import load, save
from minigrow.network import residual_mlp


def flags_at(counts, conflicts):
    f = [False] * sum(counts)
    for i in conflicts:
        f[i] = True
    return f


# ---- 6. the removal rules ----------------------------------------------------------------------------------------
def test_first_type_rule_paper_example():
    counts = [3, 12, 41, 3]
    third_of_b = 3 + 2
    assert remove_first_type(counts, flags_at(counts, [third_of_b])) == [3, 2, 41, 3]
    # with P4 every later block conflicts too — same answer; later types are never touched
    later = list(range(third_of_b, sum(counts)))
    assert remove_first_type(counts, flags_at(counts, later)) == [3, 2, 41, 3]
    assert remove_first_type(counts, flags_at(counts, [])) == counts
    assert remove_first_type(counts, flags_at(counts, [0])) == [0, 12, 41, 3]


def test_all_types_rule_prunes_every_type_in_one_pass():
    counts = [3, 12, 41, 3]
    f = flags_at(counts, [5, 6, 20, 58])
    assert remove_all_types(counts, f) == [3, 10, 40, 2]
    with pytest.raises(ValueError, match="one flag per block"):
        remove_all_types(counts, f[:-1])


def test_block_net_structure_and_gradients():
    m = block_net([2, 0, 3], [5, 9, 4], n_in=6, n_out=3, rng=0, dtype=np.float64)
    assert [type(l).__name__ for l in m.layers] == ["DenseBlock"] * 5 + ["Dense"]
    assert [l.out_features for l in m.layers[:5]] == [5, 5, 4, 4, 4]
    assert block_types([2, 0, 3]) == [0, 0, 2, 2, 2]
    rep = layer_report(m, np.random.default_rng(0).standard_normal((20, 6)), np.arange(20) % 3)
    assert [r.kind for r in rep] == ["block"] * 5
    r = check_layer(DenseBlock(4, 3, rng=1, dtype=np.float64), np.random.default_rng(2).standard_normal((5, 4)) + 0.3)
    assert r.max_error < 1e-6


def test_dense_block_roundtrips_through_io(tmp_path):
    m = block_net([2], [4], 3, 2, rng=0)
    save(tmp_path / "m.npz", m)
    m2 = load(tmp_path / "m.npz")["model"]
    X = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    assert np.array_equal(m.predict_logits(X), m2.predict_logits(X))


# ---- auto-tune end to end on a tiny problem ----------------------------------------------------------------------
def spiral_like(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.standard_normal((n, 8)) * 0.5
    X[np.arange(n), y] += 2.0
    return X.astype(np.float32), y


@pytest.mark.parametrize("rule", ["first_type", "all_types"])
def test_autotune_shrinks_a_collapsed_deep_net(rule):
    X, y = spiral_like()
    res = autotune(X, y, [2, 30], [16, 4], X_test=X, y_test=y, rule=rule, epochs=8, max_rounds=6, n_eval=128,
                   rng=0)
    first = res.rounds[0]
    assert first["conflict_epoch"] is not None and first["entropy_last"] > 0     # the deep narrow part collapsed
    assert first["new_counts"][0] == 2 and first["new_counts"][1] < 30          # type a is healthy and kept
    assert res.converged and res.counts[0] == 2 and res.counts[1] < 30
    assert len(res.rounds) <= 6
    for a, b in zip(res.rounds[:-1], res.rounds[1:]):                            # history is consistent
        assert a["new_counts"] == b["counts"]
    if res.converged:
        last = res.rounds[-1]
        assert last["conflict_epoch"] is None and last["entropy_last"] == 0.0 and last["test_acc"] > 0.8
    if rule == "all_types":
        assert first["conflict_epoch"] == 0                                       # checked at initialisation


def test_autotune_keeps_a_healthy_net():
    X, y = spiral_like()
    res = autotune(X, y, [2], [16], rule="first_type", epochs=2, n_eval=128, rng=0)
    assert res.converged and res.counts == [2] and len(res.rounds) == 1


# ---- lesion study ------------------------------------------------------------------------------------------------
def test_forward_lesioned_skips_branches():
    m = residual_mlp(4, 5, 3, 2, "relu", rng=0)
    X = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    assert np.array_equal(forward_lesioned(m, X), m.predict_logits(X))
    h = m.layers[1].forward(m.layers[0].forward(X, False), False)
    h = m.layers[3].forward(h, False)                       # blocks 0 and 2 dropped: only block 1 runs
    assert np.allclose(forward_lesioned(m, X, drop=[0, 2]), m.layers[5].forward(h, False))


def test_lesion_study_groups_blocks_by_branch_conflicts():
    X, y = spiral_like(200)
    m = residual_mlp(8, 6, 4, 3, "relu", rng=0, hidden=2)
    for blk in m.layers[2:6]:
        blk.params["b1"][:] = -50.0 if blk is m.layers[3] else blk.params["b1"]   # block 1: dead branch
    res = lesion_study(m, X, y, X, y, ks=[1, 2], repeats=3, rng=0)
    assert 1 in res["conflicting_blocks"]
    assert res["single_block_test_acc"][1] == res["base_test_acc"]              # a dead branch adds nothing
    assert set(res["curves"]) == {"conflicting", "non_conflicting", "random"}
