"""Agreement metrics against scipy, the logistic fit, and the bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from faceiqa.errors import InvalidArgumentError
from faceiqa.evaluation import metrics as M


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    x = rng.uniform(0, 1, 200)
    y = 10 + 70 / (1 + np.exp(-(x - 0.45) / 0.1)) + rng.normal(0, 4, 200)
    return x, y


def test_rank_and_linear_correlations_match_scipy():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.normal(size=80)
        y = 0.6 * x + rng.normal(size=80)
        y[::7] = y[0]  # some ties
        assert M.srcc(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
        assert M.krcc(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
        assert M.plcc(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)


def test_constant_input_gives_nan():
    assert np.isnan(M.srcc([1, 1, 1, 1], [1, 2, 3, 4]))
    assert np.isnan(M.plcc([1, 2, 3, 4], [5, 5, 5, 5]))


def test_logistic_fit_recovers_known_parameters():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 100, 400)
    true = (90.0, 5.0, 40.0, 8.0)
    y = M.logistic4(x, *true) + rng.normal(0, 0.5, x.size)
    fit = M.fit_logistic(x, y)
    assert fit.kind == "logistic", fit.message
    b1, b2, b3, b4 = fit.params
    assert b1 == pytest.approx(90.0, abs=0.5)
    assert b2 == pytest.approx(5.0, abs=0.5)
    assert b3 == pytest.approx(40.0, abs=0.5)
    assert b4 == pytest.approx(8.0, rel=0.05)


def test_logistic_fit_handles_decreasing_relation():
    x = np.linspace(0, 1, 60)
    y = M.logistic4(x, 1.0, 9.0, 0.5, 0.1)  # falls from 9 to 1
    fit = M.fit_logistic(x, y)
    assert fit.kind == "logistic"
    assert np.max(np.abs(fit.predict(x) - y)) < 1e-3


def test_fit_falls_back_to_a_line_and_says_why():
    fit = M.fit_logistic([1.0, 2.0, 3.0, 4.0], [2.0, 4.1, 5.9, 8.0])
    assert fit.kind == "linear" and "fewer than 5" in fit.message
    assert fit.params[0] == pytest.approx(1.98, abs=0.01)


def test_agreement_values_and_plcc_after_fit(data):
    x, y = data
    res = M.agreement(x, y, n_bootstrap=0)
    assert res.n == 200
    assert res.srcc == pytest.approx(stats.spearmanr(x, y).statistic)
    assert res.krcc == pytest.approx(stats.kendalltau(x, y).statistic)
    pred = res.fit.predict(x)
    assert res.plcc == pytest.approx(stats.pearsonr(pred, y).statistic)
    assert res.rmse == pytest.approx(np.sqrt(np.mean((pred - y) ** 2)))
    # The sigmoid relation is fitted better than by the raw linear correlation.
    assert res.plcc > stats.pearsonr(x, y).statistic
    assert res.rmse == pytest.approx(4.0, rel=0.2)  # the noise level
    assert np.isnan(res.srcc_ci[0])


def test_bootstrap_intervals_contain_estimate_and_are_seeded(data):
    x, y = data
    a = M.agreement(x, y, n_bootstrap=150, seed=3)
    b = M.agreement(x, y, n_bootstrap=150, seed=3)
    c = M.agreement(x, y, n_bootstrap=150, seed=4)
    assert a == b
    assert a.srcc_ci != c.srcc_ci
    for name in ("srcc", "krcc", "plcc", "rmse"):
        low, high = getattr(a, f"{name}_ci")
        assert low < getattr(a, name) < high, name
    assert a.n_bootstrap_valid == 150
    assert a.srcc_ci[1] - a.srcc_ci[0] < 0.2


def test_bootstrap_interval_of_any_statistic(data):
    x, y = data
    low, high = M.bootstrap_interval(M.srcc, x, y, n_bootstrap=200, seed=0)
    assert low < M.srcc(x, y) < high
    assert (low, high) == M.bootstrap_interval(M.srcc, x, y, n_bootstrap=200, seed=0)
    # Wider at lower coverage? No: narrower.
    low90, high90 = M.bootstrap_interval(M.srcc, x, y, n_bootstrap=200, seed=0, confidence=0.8)
    assert high90 - low90 < high - low


@pytest.mark.parametrize(
    "scores, labels, fragment",
    [
        ([1, 2], [1, 2], "at least 3"),
        ([1, 2, 3], [1, 2], "differ in length"),
        ([1, 2, np.nan], [1, 2, 3], "finite"),
        ([1, 1, 1, 1], [1, 2, 3, 4], "all scores are equal"),
        ([1, 2, 3, 4], [2, 2, 2, 2], "all labels are equal"),
    ],
)
def test_agreement_rejects_bad_input(scores, labels, fragment):
    with pytest.raises(InvalidArgumentError, match=fragment):
        M.agreement(scores, labels, n_bootstrap=0)


def test_agreement_rejects_bad_bootstrap_settings(data):
    x, y = data
    with pytest.raises(InvalidArgumentError):
        M.agreement(x, y, n_bootstrap=-1)
    with pytest.raises(InvalidArgumentError):
        M.agreement(x, y, confidence=1.0)


def test_to_dict_is_json_ready(data):
    import json

    x, y = data
    d = M.agreement(x, y, n_bootstrap=20, seed=0).to_dict()
    text = json.dumps(d)
    assert '"fit"' in text and d["fit"]["kind"] == "logistic" and len(d["srcc_ci"]) == 2
