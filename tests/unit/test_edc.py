"""EDC: thresholds at a target FMR, discard by pair quality, ties, partial AUC, table, plot."""

from __future__ import annotations

import numpy as np
import pytest

from faceiqa.errors import InvalidArgumentError
from faceiqa.evaluation import edc as E


def _hand_made(n_gen=100, n_bad=10, n_imp=1000, seed=0):
    """Genuine distances 0.2..0.4 except ``n_bad`` at 0.9; impostor distances 0.6..1.2.

    At FMR 1e-2 the threshold sits below the 11th smallest impostor distance, well above
    0.4 and below 0.9, so exactly the bad genuine pairs are false non-matches.
    """
    rng = np.random.default_rng(seed)
    gen = rng.uniform(0.2, 0.4, n_gen)
    bad = rng.choice(n_gen, n_bad, replace=False)
    gen[bad] = 0.9
    imp = rng.uniform(0.6, 1.2, n_imp)
    dist = np.concatenate([gen, imp])
    genuine = np.concatenate([np.ones(n_gen, bool), np.zeros(n_imp, bool)])
    is_bad = np.zeros(dist.size, bool)
    is_bad[bad] = True
    return dist, genuine, is_bad


def test_threshold_respects_target_fmr_and_counts_ties():
    dist = np.array([0.1, 0.2, 0.3] + [0.5, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3])
    genuine = np.array([True] * 3 + [False] * 10)
    p = E.operating_point(dist, genuine, 0.1)
    # One false match allowed out of 10, but the two lowest impostors tie at 0.5:
    # accepting one means accepting both, so neither is accepted.
    assert p.achieved_fmr == 0.0 and p.threshold < 0.5
    assert p.resolvable
    p = E.operating_point(dist, genuine, 0.25)
    assert p.achieved_fmr == pytest.approx(0.2) and 0.5 <= p.threshold < 0.6
    assert p.fnmr == 0.0


def test_similarity_scores_give_the_same_operating_point():
    dist, genuine, _ = _hand_made()
    a = E.operating_point(dist, genuine, 1e-2)
    b = E.operating_point(-dist, genuine, 1e-2, score_kind="similarity")
    assert a.achieved_fmr == b.achieved_fmr and a.fnmr == b.fnmr
    assert a.threshold == pytest.approx(-b.threshold)


def test_too_few_impostors_is_reported():
    dist, genuine, _ = _hand_made(n_imp=200)
    p = E.operating_point(dist, genuine, 1e-3)
    assert not p.resolvable and p.achieved_fmr == 0.0 and p.n_impostors == 200
    assert E.operating_point(dist, genuine, 1e-2).resolvable


def test_perfect_quality_drives_fnmr_to_zero_at_the_bad_fraction():
    dist, genuine, is_bad = _hand_made()
    quality = np.where(is_bad, 0.1, 0.9) + np.random.default_rng(1).uniform(0, 0.05, dist.size)
    curve = E.edc_curve(dist, genuine, quality, target_fmr=1e-2, source="perfect")
    assert curve.point.fnmr == pytest.approx(0.10)
    assert curve.fnmr[0] == pytest.approx(0.10)
    # FNMR falls by one error per discarded pair and reaches 0 at exactly 10 % discarded.
    reached = curve.discard[np.flatnonzero(curve.fnmr == 0)[0]]
    assert reached == pytest.approx(0.10)
    assert np.all(np.diff(curve.fnmr[curve.discard <= 0.1]) < 0)
    assert curve.fnmr_at(0.15) == 0.0


def test_random_quality_stays_flat_and_has_a_worse_pauc():
    dist, genuine, is_bad = _hand_made(n_gen=2000, n_bad=200, n_imp=20000)
    perfect = E.edc_curve(dist, genuine, np.where(is_bad, 0.0, 1.0), target_fmr=1e-2, source="perfect")
    rng = np.random.default_rng(7)
    random = E.edc_curve(dist, genuine, rng.uniform(size=dist.size), target_fmr=1e-2, source="random")
    assert random.point == perfect.point
    for f in (0.05, 0.1, 0.2):
        assert abs(random.fnmr_at(f) - random.fnmr_at(0.0)) < 0.02, f
    assert perfect.pauc < random.pauc
    # pAUC is the mean FNMR over [0, 0.2]: a flat curve at 0.1 gives 0.1.
    assert random.pauc == pytest.approx(0.1, abs=0.01)
    # Perfect: linear from 0.1 to 0 over [0, 0.1], then 0 -> mean 0.025.
    assert perfect.pauc == pytest.approx(0.025, abs=1e-9)


def test_ties_are_discarded_as_whole_groups_independent_of_order():
    dist, genuine, is_bad = _hand_made()
    quality = np.ones(dist.size)
    quality[np.flatnonzero(genuine)[:40]] = 0.5  # a tie group of 40 genuine pairs
    curve = E.edc_curve(dist, genuine, quality, target_fmr=1e-2)
    assert list(curve.discard) == [0.0, 0.4]
    perm = np.random.default_rng(3).permutation(dist.size)
    shuffled = E.edc_curve(dist[perm], genuine[perm], quality[perm], target_fmr=1e-2)
    assert np.array_equal(curve.discard, shuffled.discard) and np.array_equal(curve.fnmr, shuffled.fnmr)
    # Between achievable points the curve is linear.
    assert curve.fnmr_at(0.2) == pytest.approx((curve.fnmr[0] + curve.fnmr[1]) / 2)


def test_only_genuine_quality_matters_for_discard():
    dist, genuine, is_bad = _hand_made()
    q = np.where(is_bad, 0.1, 0.9)
    other = q.copy()
    other[~genuine] = np.random.default_rng(0).uniform(size=(~genuine).sum())
    a = E.edc_curve(dist, genuine, q, target_fmr=1e-2)
    b = E.edc_curve(dist, genuine, other, target_fmr=1e-2)
    assert np.array_equal(a.fnmr, b.fnmr)


def test_unmatchable_comparisons_count_as_non_matches():
    dist, genuine, _ = _hand_made()
    dist = dist.copy()
    dist[0] = np.inf  # a genuine pair without a face
    dist[-1] = np.inf  # an impostor pair without a face
    curve = E.edc_curve(dist, genuine, np.ones(dist.size), target_fmr=1e-2)
    assert np.isfinite(curve.point.threshold) and curve.fnmr[0] >= 0.1


def test_pair_quality_is_the_minimum():
    assert list(E.pair_quality([0.2, 0.9], [0.5, 0.1])) == [0.2, 0.1]


def test_partial_auc_by_hand():
    # Linear 0.2 -> 0 over [0, 0.2]: mean 0.1.
    assert E.partial_auc([0.0, 0.2], [0.2, 0.0], 0.2) == pytest.approx(0.1)
    # Held flat after the last point.
    assert E.partial_auc([0.0, 0.05], [0.1, 0.1], 0.2) == pytest.approx(0.1)
    # Interpolated at the limit.
    assert E.partial_auc([0.0, 0.4], [0.4, 0.0], 0.2) == pytest.approx(0.3)
    with pytest.raises(InvalidArgumentError):
        E.partial_auc([0.1, 0.2], [0.1, 0.1], 0.2)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"target_fmr": 0.0}, "target FMR"),
        ({"target_fmr": 1e-2, "score_kind": "score"}, "score_kind"),
        ({}, "exactly one"),
    ],
)
def test_bad_arguments(kwargs, fragment):
    dist, genuine, _ = _hand_made()
    with pytest.raises(InvalidArgumentError, match=fragment):
        E.edc_curve(dist, genuine, np.ones(dist.size), **kwargs)


def test_nan_and_mismatched_inputs_are_rejected():
    dist, genuine, _ = _hand_made()
    q = np.ones(dist.size)
    q[3] = np.nan
    with pytest.raises(InvalidArgumentError, match="NaN"):
        E.edc_curve(dist, genuine, q, target_fmr=1e-2)
    with pytest.raises(InvalidArgumentError, match="one quality per comparison"):
        E.edc_curve(dist, genuine, q[:-1], target_fmr=1e-2)
    with pytest.raises(InvalidArgumentError, match="genuine and impostor"):
        E.operating_point(dist[genuine], genuine[genuine], 1e-2)


def test_table_has_one_row_per_source_and_plot_is_a_png(tmp_path):
    dist, genuine, is_bad = _hand_made()
    curves = []
    for fmr in (1e-2, 1e-3):
        point = E.operating_point(dist, genuine, fmr)
        curves.append(E.edc_curve(dist, genuine, np.where(is_bad, 0.0, 1.0), point=point, source="perfect"))
        curves.append(E.edc_curve(dist, genuine, np.arange(dist.size), point=point, source="order"))
    table = E.edc_table(curves)
    assert list(table["source"]) == ["perfect", "order"]
    assert "pauc_0.2@fmr=1e-2" in table.columns and "pauc_0.2@fmr=1e-3" in table.columns
    assert table.loc[0, "fnmr_0.1@fmr=1e-2"] == 0.0
    out = E.plot_edc(curves, tmp_path / "edc.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
