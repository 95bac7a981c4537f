"""The k-fold verification protocol (and that pairs.txt reading is unchanged)."""

from __future__ import annotations

import numpy as np
import pytest

from faceiqa.errors import InvalidArgumentError
from faceiqa.evaluation.verification import KFoldResult, best_threshold, kfold_accuracy, read_pairs, verification_accuracy


def test_kfold_hand_made_case():
    # fold 0: genuine 0.1, 0.2; impostor 0.8, 0.9 (separable)
    # fold 1: genuine 0.3, 0.7; impostor 0.5, 0.95 (one genuine pair looks like an impostor)
    d = [0.1, 0.2, 0.8, 0.9, 0.3, 0.7, 0.5, 0.95]
    g = [1, 1, 0, 0, 1, 1, 0, 0]
    f = [0, 0, 0, 0, 1, 1, 1, 1]
    r = kfold_accuracy(d, g, f)
    assert isinstance(r, KFoldResult)
    # Testing fold 0: fold 1 alone is best split at 0.4 (3/4; 0.3 | 0.5), which gets fold 0 all right.
    # Testing fold 1: fold 0 is best split at 0.5 (midpoint of 0.2 and 0.8); 0.7 is then
    # rejected and 0.5 is not below 0.5, so fold 1 scores 3/4.
    np.testing.assert_allclose(r.thresholds, [0.4, 0.5])
    np.testing.assert_allclose(r.accuracies, [1.0, 0.75])
    assert r.mean == pytest.approx(0.875)
    assert r.std == pytest.approx(0.125)
    np.testing.assert_array_equal(r.folds, [0, 1])


def test_best_threshold_exact_search_matches_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(100):
        n = int(rng.integers(1, 30))
        d = np.round(rng.random(n), 1)  # many ties
        g = rng.random(n) < 0.5
        th, acc = best_threshold(d, g)
        grid = np.r_[d.min() - 1, np.unique(d) + 1e-9, d.max() + 1]
        assert acc == pytest.approx(max(np.mean((d < c) == g) for c in grid))
        assert verification_accuracy(d, g, th) == pytest.approx(acc)


def test_best_threshold_edge_cases():
    # All impostors: accept nothing.
    th, acc = best_threshold([0.2, 0.4], [False, False])
    assert acc == 1.0 and th < 0.2
    # All genuine: accept everything.
    th, acc = best_threshold([0.2, 0.4], [True, True])
    assert acc == 1.0 and th > 0.4
    # Equal distances decide together: one of two is right whatever the threshold.
    assert best_threshold([0.5, 0.5], [True, False])[1] == 0.5
    # Equally good thresholds (0.1 | 0.3 and 0.5 | 0.7 both give 3/4): the smallest wins.
    th, acc = best_threshold([0.1, 0.3, 0.5, 0.7], [True, False, True, False])
    assert acc == 0.75 and th == pytest.approx(0.2)


def test_perfectly_separable_folds_score_one():
    rng = np.random.default_rng(0)
    folds = np.repeat(np.arange(4), 50)
    genuine = np.tile(np.r_[np.ones(25, bool), np.zeros(25, bool)], 4)
    d = np.where(genuine, rng.uniform(0.1, 0.5, 200), rng.uniform(0.7, 1.2, 200))
    r = kfold_accuracy(d, genuine, folds)
    assert r.mean == 1.0 and r.std == 0.0
    assert np.all((r.thresholds > 0.45) & (r.thresholds < 0.75))


@pytest.mark.parametrize(
    "args",
    [
        ([0.1, 0.2], [1], [0, 1]),  # length mismatch
        ([0.1, np.nan], [1, 0], [0, 1]),  # not finite
        ([0.1, 0.2], [1, 2], [0, 1]),  # labels not boolean
        ([0.1, 0.2], [1, 0], [0, 0]),  # one fold
        ([0.1, 0.2], [1, 0], [0.0, 1.0]),  # fold ids not integers
        ([], [], []),
    ],
)
def test_kfold_rejects_bad_input(args):
    with pytest.raises(InvalidArgumentError):
        kfold_accuracy(*args)


def test_read_pairs_still_reads_lfw_layout(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("2\t1\nA\t1\t2\nB\t1\tC\t3\nD\t2\t4\nE\t1\tF\t1\n")
    pairs = read_pairs(path)
    assert [(p.genuine, p.fold) for p in pairs] == [(True, 0), (False, 0), (True, 1), (False, 1)]
    assert pairs[1].paths(tmp_path)[1].name == "C_0003.jpg"


def test_make_pairs_round_trips_and_balances(tmp_path):
    from faceiqa.evaluation.verification import make_pairs, write_pairs

    photos = {"Ann": [1, 2, 3], "Bob": [1, 2], "Cy": [1], "Dee": [4, 7]}
    pairs = make_pairs(photos, 100, seed=3, max_per_person=2)
    genuine = [p for p in pairs if p.genuine]
    assert len(genuine) == 4 and len(pairs) == 8  # Ann capped at 2, Bob 1, Dee 1
    assert all(p.name1 == p.name2 for p in genuine)
    assert all(p.name1 != p.name2 for p in pairs if not p.genuine)
    back = read_pairs(write_pairs(pairs, tmp_path / "p.txt"))
    assert back == pairs
    assert make_pairs(photos, 100, seed=3, max_per_person=2) == pairs


def test_make_pairs_needs_two_people():
    from faceiqa.evaluation.verification import make_pairs

    with pytest.raises(InvalidArgumentError):
        make_pairs({"Ann": [1, 2]}, 10)
