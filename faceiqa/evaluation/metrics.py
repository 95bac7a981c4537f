"""Agreement between predicted quality scores and human labels (MOS).

The usual IQA protocol (VQEG; most IQA papers):

- SRCC: Spearman rank correlation, KRCC: Kendall rank correlation (tau-b, ties corrected),
  both on the raw scores.
- PLCC and RMSE after a monotone 4-parameter logistic mapping of the scores onto the label
  scale, fitted by least squares::

      f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2

  b1 and b2 are the upper and lower asymptotes (label units), b3 the midpoint (score units),
  |b4| the slope scale (score units). When the fit fails (no convergence, non-finite
  result, or a fit worse than a straight line) a least-squares line is used instead and
  the result says so (``fit.kind == "linear"`` with the reason in ``fit.message``).
- 95 % intervals: percentile bootstrap over images (pairs resampled with replacement), every
  statistic (the logistic fit included) recomputed per resample; seeded.

All correlations lie in [-1, 1]; RMSE is in label units.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import optimize, stats

from faceiqa._util import check_int
from faceiqa.errors import InvalidArgumentError

log = logging.getLogger("faceiqa.metrics")

_MIN_POINTS = 3
_MIN_POINTS_LOGISTIC = 5


def _pair_arrays(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InvalidArgumentError(f"scores and labels differ in length: {x.size} vs {y.size}")
    if x.size < _MIN_POINTS:
        raise InvalidArgumentError(f"need at least {_MIN_POINTS} scored and labelled items, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InvalidArgumentError("scores and labels must be finite numbers")
    return x, y


def _constant(a: np.ndarray) -> bool:
    return bool(np.ptp(a) == 0.0)


def srcc(x, y) -> float:
    """Spearman rank correlation in [-1, 1]; NaN when either input is constant."""
    x, y = _pair_arrays(x, y)
    if _constant(x) or _constant(y):
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def monitor_correlations(x, y) -> tuple[float, float]:
    """(SRCC, PLCC) for monitoring a training run: NaN instead of an error where undefined
    (fewer than two items, a constant or non-finite input)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size < 2 or x.shape != y.shape or _constant(x) or _constant(y) or not np.all(np.isfinite(x) & np.isfinite(y)):
        return float("nan"), float("nan")
    return float(stats.spearmanr(x, y).statistic), float(np.corrcoef(x, y)[0, 1])


def krcc(x, y) -> float:
    """Kendall rank correlation (tau-b) in [-1, 1]; NaN when either input is constant."""
    x, y = _pair_arrays(x, y)
    if _constant(x) or _constant(y):
        return float("nan")
    return float(stats.kendalltau(x, y).statistic)


def plcc(x, y) -> float:
    """Pearson linear correlation of the raw values in [-1, 1]; NaN when either is constant."""
    x, y = _pair_arrays(x, y)
    if _constant(x) or _constant(y):
        return float("nan")
    return float(stats.pearsonr(x, y).statistic)


def logistic4(x, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The 4-parameter logistic ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``."""
    z = -(np.asarray(x, dtype=np.float64) - b3) / max(abs(b4), 1e-300)
    # exp overflow gives inf -> f = b2, which is the correct limit; silence the warning.
    with np.errstate(over="ignore"):
        return (b1 - b2) / (1.0 + np.exp(z)) + b2


@dataclass(frozen=True)
class LogisticFit:
    """A fitted score-to-label mapping.

    Attributes:
        kind: ``"logistic"`` (params b1, b2, b3, b4 of :func:`logistic4`) or ``"linear"``
            (params slope, intercept).
        params: the parameters, in score and label units.
        message: empty when the logistic fit was used, else why it was replaced by a line.
    """

    kind: Literal["logistic", "linear"]
    params: tuple[float, ...]
    message: str = ""

    def predict(self, x) -> np.ndarray:
        """Map scores onto the label scale."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "logistic":
            return logistic4(x, *self.params)
        slope, intercept = self.params
        return slope * x + intercept


def _linear_fit(x: np.ndarray, y: np.ndarray, message: str) -> LogisticFit:
    if _constant(x):
        return LogisticFit("linear", (0.0, float(y.mean())), message)
    slope, intercept = np.polyfit(x, y, 1)
    return LogisticFit("linear", (float(slope), float(intercept)), message)


def _sse(fit: LogisticFit, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((fit.predict(x) - y) ** 2))


def fit_logistic(x, y, *, maxfev: int = 20000) -> LogisticFit:
    """Fit :func:`logistic4` from scores ``x`` to labels ``y`` by least squares.

    Scores are standardised for the optimisation and the parameters mapped back. Initial
    values: asymptotes at the label extremes (swapped when the Pearson correlation is
    negative), midpoint at the mean score, slope scale at one score standard deviation.

    Returns:
        A :class:`LogisticFit`; ``kind == "linear"`` with a message when the logistic fit failed.
    """
    x, y = _pair_arrays(x, y)
    if _constant(x) or _constant(y):
        return _linear_fit(x, y, "scores or labels are constant")
    if x.size < _MIN_POINTS_LOGISTIC:
        return _linear_fit(x, y, f"fewer than {_MIN_POINTS_LOGISTIC} points for a 4-parameter fit")
    line = _linear_fit(x, y, "")
    mu, sd = float(x.mean()), float(x.std())
    xs = (x - mu) / sd
    hi, lo = float(y.max()), float(y.min())
    if np.corrcoef(x, y)[0, 1] < 0:
        hi, lo = lo, hi
    p0 = (hi, lo, 0.0, 1.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            popt, _ = optimize.curve_fit(logistic4, xs, y, p0=p0, maxfev=maxfev)
    except (RuntimeError, ValueError, FloatingPointError) as exc:
        return _linear_fit(x, y, f"logistic fit failed: {exc}".splitlines()[0])
    b1, b2, b3, b4 = (float(v) for v in popt)
    fit = LogisticFit("logistic", (b1, b2, mu + sd * b3, sd * abs(b4)))
    pred = fit.predict(x)
    if not (np.all(np.isfinite(popt)) and np.all(np.isfinite(pred))) or abs(b4) < 1e-12:
        return _linear_fit(x, y, "logistic fit gave non-finite or degenerate parameters")
    if _sse(fit, x, y) > _sse(line, x, y) * (1.0 + 1e-9):
        return _linear_fit(x, y, "logistic fit was worse than a straight line")
    return fit


def _statistics(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float, LogisticFit]:
    fit = fit_logistic(x, y)
    pred = fit.predict(x)
    rmse = float(np.sqrt(np.mean((pred - y) ** 2)))
    p = plcc(pred, y) if not _constant(pred) else float("nan")
    return srcc(x, y), krcc(x, y), p, rmse, fit


@dataclass(frozen=True)
class AgreementResult:
    """Agreement of quality scores with labels.

    Attributes:
        n: number of items.
        srcc, krcc: rank correlations of the raw scores, in [-1, 1].
        plcc: Pearson correlation after the fitted mapping, in [-1, 1].
        rmse: root mean square error after the mapping, in label units (>= 0).
        srcc_ci, krcc_ci, plcc_ci, rmse_ci: (low, high) bootstrap percentile intervals at
            ``confidence``; (nan, nan) when ``n_bootstrap`` is 0.
        fit: the mapping used for PLCC and RMSE (``fit.kind`` says logistic or linear).
        n_bootstrap: resamples requested.
        n_bootstrap_valid: resamples where every statistic was defined (others are dropped;
            a resample can be constant).
        n_bootstrap_linear: resamples whose logistic fit fell back to a line.
        confidence: interval coverage, e.g. 0.95.
        seed: the bootstrap seed.
    """

    n: int
    srcc: float
    krcc: float
    plcc: float
    rmse: float
    srcc_ci: tuple[float, float]
    krcc_ci: tuple[float, float]
    plcc_ci: tuple[float, float]
    rmse_ci: tuple[float, float]
    fit: LogisticFit
    n_bootstrap: int
    n_bootstrap_valid: int
    n_bootstrap_linear: int
    confidence: float
    seed: int

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        d = asdict(self)
        d["fit"] = {"kind": self.fit.kind, "params": list(self.fit.params), "message": self.fit.message}
        for key in ("srcc_ci", "krcc_ci", "plcc_ci", "rmse_ci"):
            d[key] = [None if not np.isfinite(v) else v for v in d[key]]
        return d


def _check_bootstrap(n_bootstrap: int, confidence: float, seed: int) -> None:
    check_int(n_bootstrap, "n_bootstrap", 0)
    if not (0.0 < confidence < 1.0):
        raise InvalidArgumentError(f"confidence must be in (0, 1), got {confidence}")
    check_int(seed, "seed", 0)


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return (float("nan"), float("nan"))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(samples, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return (float(low), float(high))


def bootstrap_interval(
    statistic, x, y, *, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(x, y)`` over resampled (x, y) pairs.

    Resamples where the statistic is not finite are dropped. Returns (nan, nan) when
    none is left or ``n_bootstrap`` is 0.
    """
    x, y = _pair_arrays(x, y)
    _check_bootstrap(n_bootstrap, confidence, seed)
    rng = np.random.default_rng(seed)
    values = np.full(n_bootstrap, np.nan)
    for i in range(n_bootstrap):
        idx = rng.integers(0, x.size, x.size)
        values[i] = statistic(x[idx], y[idx])
    return _percentile_interval(values, confidence)


def agreement(scores, labels, *, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0) -> AgreementResult:
    """SRCC, KRCC, PLCC and RMSE of ``scores`` against ``labels`` with bootstrap intervals.

    Args:
        scores: predicted quality, any monotone scale (higher = better is not assumed; a
            negative correlation is reported as such).
        labels: human labels (e.g. MOS), the scale RMSE is reported in.
        n_bootstrap: resamples for the intervals (0 to skip them).
        confidence: interval coverage in (0, 1).
        seed: bootstrap seed.

    Raises:
        InvalidArgumentError: mismatched lengths, fewer than 3 items, non-finite values,
            or constant scores or labels (correlations undefined).
    """
    x, y = _pair_arrays(scores, labels)
    _check_bootstrap(n_bootstrap, confidence, seed)
    if _constant(x):
        raise InvalidArgumentError("all scores are equal: correlations are undefined")
    if _constant(y):
        raise InvalidArgumentError("all labels are equal: correlations are undefined")
    s, k, p, r, fit = _statistics(x, y)
    if fit.kind == "linear":
        log.warning("PLCC/RMSE use a linear fit: %s", fit.message)
    rng = np.random.default_rng(seed)
    boot = np.full((n_bootstrap, 4), np.nan)
    n_linear = 0
    for i in range(n_bootstrap):
        idx = rng.integers(0, x.size, x.size)
        bx, by = x[idx], y[idx]
        if _constant(bx) or _constant(by):
            continue
        bs, bk, bp, br, bfit = _statistics(bx, by)
        n_linear += bfit.kind == "linear"
        boot[i] = (bs, bk, bp, br)
    valid = int(np.all(np.isfinite(boot), axis=1).sum())
    cis = [_percentile_interval(boot[:, j], confidence) for j in range(4)]
    return AgreementResult(
        n=int(x.size),
        srcc=s,
        krcc=k,
        plcc=p,
        rmse=r,
        srcc_ci=cis[0],
        krcc_ci=cis[1],
        plcc_ci=cis[2],
        rmse_ci=cis[3],
        fit=fit,
        n_bootstrap=int(n_bootstrap),
        n_bootstrap_valid=valid,
        n_bootstrap_linear=n_linear,
        confidence=float(confidence),
        seed=int(seed),
    )
