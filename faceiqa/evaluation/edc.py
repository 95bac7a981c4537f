"""Error-versus-Discard Characteristic (EDC): quality as utility (ISO/IEC 29794-1).

Protocol implemented here:

1. Comparison scores come from a face recogniser. Give them as ``"distance"`` (lower = more
   alike, e.g. the Euclidean distance between dlib descriptors) or ``"similarity"``;
   internally distances are negated into similarities. ``+inf`` distance (``-inf``
   similarity) is allowed for comparisons that could not be made (no face): they never
   match. A comparison is a match when similarity >= threshold (distance <= threshold).
2. The threshold is fixed once, on all (undiscarded) impostor comparisons, for a target FMR:
   the lowest threshold whose FMR does not exceed the target. With N impostors only FMRs
   that are multiples of 1/N exist; the FMR actually reached is reported
   (``OperatingPoint.achieved_fmr``), and ``resolvable`` is False when N x target < 1, i.e.
   the target is below 1/N and the threshold simply sits above every impostor score.
3. Pair quality is the lower of the two images' qualities (:func:`pair_quality`).
4. The genuine comparisons are discarded in increasing pair quality and the FNMR is
   recomputed on the kept genuine comparisons at the fixed threshold.

Ties in quality are discarded as whole groups: the curve is the set of points reached by
raising a quality threshold (discard every comparison with pair quality below it), which is
how a deployed quality check works - it cannot keep one of two pairs with the same quality.
The discard fractions are therefore the achievable ones; a source that gives many pairs the
same value (e.g. 0 for every failed detection) jumps over that group in one step. Between
achievable points the curve is taken as linear (:meth:`EDCCurve.fnmr_at`), which to first
order is what discarding a random part of the tie group would give on average; no
ordering of the input is used, so the result does not depend on the order of the pairs.

Partial AUC: the trapezoid area under that piecewise-linear curve from discard 0 to
``limit`` (default 0.2), divided by ``limit``. It is the mean FNMR over that discard range:
equal to the starting FNMR for a useless (flat) source, 0 for a source that removes every
error at once; lower is better. (ISO/IEC 29794-1 and Schlett et al. use the raw area,
which is this value times ``limit``.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from faceiqa.errors import InvalidArgumentError

log = logging.getLogger("faceiqa.edc")

ScoreKind = Literal["distance", "similarity"]

DEFAULT_FMRS: tuple[float, ...] = (1e-2, 1e-3)
DEFAULT_PAUC_LIMIT = 0.2


def _as_similarity(scores, score_kind: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).ravel()
    if np.any(np.isnan(s)):
        raise InvalidArgumentError("comparison scores contain NaN")
    if score_kind == "distance":
        return -s
    if score_kind == "similarity":
        return s
    raise InvalidArgumentError(f"score_kind must be 'distance' or 'similarity', got {score_kind!r}")


def _from_similarity(value: float, score_kind: str) -> float:
    return -value if score_kind == "distance" else value


def _as_labels(genuine, n: int) -> np.ndarray:
    g = np.asarray(genuine)
    if g.shape != (n,):
        raise InvalidArgumentError(f"genuine labels must be a 1-D array of {n} booleans, got shape {g.shape}")
    if g.dtype != bool:
        if not np.all(np.isin(g, (0, 1))):
            raise InvalidArgumentError("genuine labels must be booleans (or 0/1)")
        g = g.astype(bool)
    return g


def pair_quality(quality1, quality2) -> np.ndarray:
    """Pair quality: the element-wise minimum of the two images' qualities."""
    q1 = np.asarray(quality1, dtype=np.float64)
    q2 = np.asarray(quality2, dtype=np.float64)
    if q1.shape != q2.shape:
        raise InvalidArgumentError(f"quality arrays differ in shape: {q1.shape} vs {q2.shape}")
    return np.minimum(q1, q2)


@dataclass(frozen=True)
class OperatingPoint:
    """A decision threshold fixed for a target FMR on the undiscarded comparisons.

    Attributes:
        target_fmr: requested false match rate in (0, 1).
        threshold: in the input's units; match when distance <= threshold (or
            similarity >= threshold).
        score_kind: ``"distance"`` or ``"similarity"``.
        achieved_fmr: the FMR at that threshold (<= target_fmr).
        resolvable: False when n_impostors x target_fmr < 1 (the target lies below 1/N).
        n_impostors, n_genuine: comparison counts.
        fnmr: false non-match rate at no discard, in [0, 1].
    """

    target_fmr: float
    threshold: float
    score_kind: str
    achieved_fmr: float
    resolvable: bool
    n_impostors: int
    n_genuine: int
    fnmr: float


def operating_point(scores, genuine, target_fmr: float, *, score_kind: ScoreKind = "distance") -> OperatingPoint:
    """Fix the threshold for ``target_fmr`` on all comparisons (see module docstring).

    Raises:
        InvalidArgumentError: target outside (0, 1), no genuine or no impostor comparisons.
    """
    sim = _as_similarity(scores, score_kind)
    gen = _as_labels(genuine, sim.size)
    if not (0.0 < target_fmr < 1.0):
        raise InvalidArgumentError(f"target FMR must be in (0, 1), got {target_fmr}")
    imp = np.sort(sim[~gen])[::-1]
    n_imp, n_gen = int(imp.size), int(gen.sum())
    if n_imp == 0 or n_gen == 0:
        raise InvalidArgumentError(f"need genuine and impostor comparisons (got {n_gen} genuine, {n_imp} impostor)")
    allowed = int(np.floor(target_fmr * n_imp + 1e-9))
    if allowed >= n_imp:
        thr = -np.inf
    else:
        # Accept only similarities strictly above the (allowed+1)-th highest impostor score;
        # ties at that score are all rejected, so the FMR never exceeds the target.
        thr = float(np.nextafter(imp[allowed], np.inf))
    achieved = float(np.mean(imp >= thr))
    fnmr = float(np.mean(sim[gen] < thr))
    resolvable = target_fmr * n_imp >= 1.0
    if not resolvable:
        log.warning(
            "only %d impostor comparisons: FMR %.0e cannot be estimated (smallest step 1/%d); "
            "threshold set above every impostor score (achieved FMR %g)",
            n_imp,
            target_fmr,
            n_imp,
            achieved,
        )
    return OperatingPoint(
        target_fmr=float(target_fmr),
        threshold=_from_similarity(thr, score_kind),
        score_kind=score_kind,
        achieved_fmr=achieved,
        resolvable=resolvable,
        n_impostors=n_imp,
        n_genuine=n_gen,
        fnmr=fnmr,
    )


def partial_auc(discard, fnmr, limit: float = DEFAULT_PAUC_LIMIT) -> float:
    """Mean FNMR over discard fractions [0, limit]: trapezoid area divided by ``limit``.

    ``discard`` must start at 0 and increase; the curve is linear between points and held
    flat after the last point.
    """
    d = np.asarray(discard, dtype=np.float64)
    f = np.asarray(fnmr, dtype=np.float64)
    if d.ndim != 1 or d.shape != f.shape or d.size == 0 or d[0] != 0.0 or np.any(np.diff(d) <= 0):
        raise InvalidArgumentError("discard fractions must start at 0 and increase, one FNMR per fraction")
    if not (0.0 < limit <= 1.0):
        raise InvalidArgumentError(f"partial AUC limit must be in (0, 1], got {limit}")
    end = float(np.interp(limit, d, f))
    inside = d < limit
    xs = np.append(d[inside], limit)
    ys = np.append(f[inside], end)
    area = float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))
    return area / limit


@dataclass(frozen=True)
class EDCCurve:
    """FNMR against the fraction of genuine comparisons discarded, for one quality source.

    Attributes:
        source: name of the quality source.
        point: the operating point (threshold fixed before any discard).
        discard: achievable discard fractions in [0, 1), ascending, starting at 0.
        fnmr: FNMR on the kept genuine comparisons at each fraction, in [0, 1].
        quality_threshold: the pair quality below which comparisons are discarded at each
            point (``-inf`` for the first).
        pauc: :func:`partial_auc` up to ``pauc_limit`` (mean FNMR over that range).
        pauc_limit: the discard fraction the partial AUC stops at.
    """

    source: str
    point: OperatingPoint
    discard: np.ndarray
    fnmr: np.ndarray
    quality_threshold: np.ndarray
    pauc: float
    pauc_limit: float

    def fnmr_at(self, fraction: float) -> float:
        """FNMR after discarding ``fraction`` of the genuine comparisons (linear between points)."""
        if not (0.0 <= fraction < 1.0):
            raise InvalidArgumentError(f"discard fraction must be in [0, 1), got {fraction}")
        return float(np.interp(fraction, self.discard, self.fnmr))


def edc_curve(
    scores,
    genuine,
    quality,
    *,
    target_fmr: float | None = None,
    point: OperatingPoint | None = None,
    score_kind: ScoreKind = "distance",
    pauc_limit: float = DEFAULT_PAUC_LIMIT,
    source: str = "",
) -> EDCCurve:
    """Compute the EDC of one quality source.

    Args:
        scores: comparison scores, one per comparison (see ``score_kind``).
        genuine: True for same-person comparisons.
        quality: pair quality per comparison (higher = better; see :func:`pair_quality`).
            Only the genuine comparisons' values are used for discarding.
        target_fmr: FMR to fix the threshold at (or give ``point`` to reuse one).
        point: a precomputed :class:`OperatingPoint` on the same comparisons.
        score_kind: ``"distance"`` (default) or ``"similarity"``.
        pauc_limit: upper discard fraction of the partial AUC, in (0, 1].
        source: a name for tables and plots.

    Raises:
        InvalidArgumentError: bad shapes, NaN values, or neither/both of target_fmr and point.
    """
    sim = _as_similarity(scores, score_kind)
    gen = _as_labels(genuine, sim.size)
    q = np.asarray(quality, dtype=np.float64).ravel()
    if q.shape != sim.shape:
        raise InvalidArgumentError(f"need one quality per comparison: {q.size} qualities for {sim.size} comparisons")
    if np.any(np.isnan(q)):
        raise InvalidArgumentError(f"quality source {source!r} has NaN pair qualities")
    if (target_fmr is None) == (point is None):
        raise InvalidArgumentError("give exactly one of target_fmr and point")
    if point is None:
        point = operating_point(scores, gen, target_fmr, score_kind=score_kind)
    elif point.score_kind != score_kind:
        raise InvalidArgumentError("operating point was fixed on another score kind")
    thr_sim = _from_similarity(point.threshold, score_kind)

    gq = q[gen]
    errors = sim[gen] < thr_sim
    order = np.argsort(gq, kind="stable")
    gq, errors = gq[order], errors[order]
    n = gq.size
    # Start of each tie group = number of comparisons discarded when the quality threshold
    # is raised to that group's value.
    starts = np.concatenate(([0], np.flatnonzero(gq[1:] != gq[:-1]) + 1))
    errors_from = np.concatenate((np.cumsum(errors[::-1])[::-1], [0]))  # errors among kept
    kept = n - starts
    discard = starts / n
    fnmr = errors_from[starts] / kept
    thresholds = np.concatenate(([-np.inf], gq[starts[1:]]))
    return EDCCurve(
        source=source,
        point=point,
        discard=discard.astype(np.float64),
        fnmr=fnmr.astype(np.float64),
        quality_threshold=thresholds,
        pauc=partial_auc(discard, fnmr, pauc_limit),
        pauc_limit=float(pauc_limit),
    )


def _fmr_label(fmr: float) -> str:
    return f"{fmr:.0e}".replace("e-0", "e-")


def edc_table(curves: Sequence[EDCCurve], fractions: Sequence[float] = (0.05, 0.1, 0.2)) -> pd.DataFrame:
    """One row per source; for each target FMR: threshold, achieved FMR, FNMR at no discard
    and at ``fractions``, and the partial AUC.

    Columns are suffixed ``@fmr=<target>``, e.g. ``pauc@fmr=1e-2``.
    """
    if not curves:
        raise InvalidArgumentError("no EDC curves to tabulate")
    rows: dict[str, dict] = {}
    for c in curves:
        row = rows.setdefault(
            c.source, {"source": c.source, "n_genuine": c.point.n_genuine, "n_impostor": c.point.n_impostors}
        )
        tag = f"@fmr={_fmr_label(c.point.target_fmr)}"
        row[f"threshold{tag}"] = c.point.threshold
        row[f"achieved_fmr{tag}"] = c.point.achieved_fmr
        row[f"fnmr_0{tag}"] = c.fnmr_at(0.0)
        for f in fractions:
            row[f"fnmr_{f:g}{tag}"] = c.fnmr_at(f)
        row[f"pauc_{c.pauc_limit:g}{tag}"] = c.pauc
    return pd.DataFrame(list(rows.values()))


def plot_edc(
    curves: Sequence[EDCCurve], path: str | Path, *, max_discard: float = DEFAULT_PAUC_LIMIT, title: str | None = None
) -> Path:
    """Draw every source's EDC on one PNG, one panel per target FMR.

    Uses matplotlib's object API (rendered by the Agg canvas), so pyplot's global state and
    the user's chosen backend are left alone.

    Returns:
        The path written.
    """
    if not curves:
        raise InvalidArgumentError("no EDC curves to plot")
    if not (0.0 < max_discard <= 1.0):
        raise InvalidArgumentError(f"max discard must be in (0, 1], got {max_discard}")
    from matplotlib.figure import Figure

    fmrs = sorted({c.point.target_fmr for c in curves}, reverse=True)
    fig = Figure(figsize=(5.5 * len(fmrs), 4.5), dpi=100)
    axes = fig.subplots(1, len(fmrs), squeeze=False)[0]
    for ax, fmr in zip(axes, fmrs, strict=True):
        for c in (c for c in curves if c.point.target_fmr == fmr):
            # Extend to max_discard with the interpolated value so that every line spans the axis.
            keep = c.discard <= max_discard
            xs = np.append(c.discard[keep], max_discard)
            ys = np.append(c.fnmr[keep], np.interp(max_discard, c.discard, c.fnmr))
            ax.plot(xs, ys, label=f"{c.source} (pAUC {c.pauc:.4f})", linewidth=1.5)
        point = next(c.point for c in curves if c.point.target_fmr == fmr)
        note = "" if point.resolvable else f", only {point.n_impostors} impostors"
        ax.set_title(f"FMR {_fmr_label(fmr)} (achieved {point.achieved_fmr:.2g}{note})", fontsize=10)
        ax.set_xlabel("fraction of genuine comparisons discarded")
        ax.set_ylabel("FNMR")
        ax.set_xlim(0.0, max_discard)
        ax.set_ylim(bottom=0.0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png")
    return out
