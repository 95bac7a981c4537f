"""EDC runs: several quality sources (score CSVs, baselines) on the same verification pairs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from faceiqa.errors import InvalidArgumentError
from faceiqa.evaluation import baselines as _baselines
from faceiqa.evaluation.common import DetectorLike, QualitySource, RecognizerLike, read_quality_csv
from faceiqa.evaluation.edc import DEFAULT_FMRS, DEFAULT_PAUC_LIMIT, EDCCurve, edc_curve, edc_table, operating_point, pair_quality
from faceiqa.evaluation.pairs import PairScores, compute_pair_distances
from faceiqa.evaluation.verification import Pair

log = logging.getLogger("faceiqa.evaluation")


# ---------------------------------------------------------------------------------------
# EDC over several quality sources


@dataclass(frozen=True)
class SourceQuality:
    """Per-pair quality of one source and how many pair images it could not rate.

    Attributes:
        name: source name.
        pair_quality: min of the two images' qualities, per pair.
        n_images: distinct pair images.
        n_unrated: images given the floor value (no face, failed, or absent from a CSV).
        n_absent: of those, images absent from the CSV (0 for baselines).
        floor: the value given to unrated images (the lowest the source can give).
    """

    name: str
    pair_quality: np.ndarray
    n_images: int
    n_unrated: int
    n_absent: int
    floor: float


def source_from_csv(source: QualitySource, scores: PairScores) -> SourceQuality:
    """Pair qualities from a score CSV; unrated images get min(0, lowest score in the CSV)."""
    floor = min(0.0, min(source.values.values()))
    index = source.index()
    per_image: dict[str, float] = {}
    n_absent = n_unrated = 0
    for key in scores.images:
        match = index.find(key)
        if match is not None and match in source.values:
            per_image[key] = source.values[match]
        else:
            per_image[key] = floor
            n_unrated += 1
            n_absent += match is None
    if n_absent == len(scores.images):
        raise InvalidArgumentError(f"quality source {source.name!r}: none of the pair images is in its CSV")
    return _source(source.name, per_image, scores, n_unrated, n_absent, floor)


def source_from_baseline(name: str, scores: PairScores) -> SourceQuality:
    """Pair qualities from a baseline computed by :func:`compute_pair_distances`."""
    b = _baselines.get_baseline(name)
    per_image = {}
    for key, rec in scores.images.items():
        if b.name not in rec.baselines:
            raise InvalidArgumentError(f"baseline {b.name!r} was not computed for the pairs")
        per_image[key] = rec.baselines[b.name]
    n_unrated = 0 if b.floor is None else sum(r.status != "ok" for r in scores.images.values())
    floor = b.floor if b.floor is not None else float("nan")
    return _source(b.name, per_image, scores, n_unrated, 0, floor)


def _source(name, per_image, scores: PairScores, n_unrated, n_absent, floor) -> SourceQuality:
    q1 = np.array([per_image[a] for a, _ in scores.keys])
    q2 = np.array([per_image[b] for _, b in scores.keys])
    return SourceQuality(name, pair_quality(q1, q2), len(per_image), n_unrated, n_absent, floor)


@dataclass(frozen=True)
class EDCReport:
    """EDC curves of several sources on the same comparisons.

    Attributes:
        curves: one per (source, target FMR).
        sources: per-source quality summaries, in input order.
        scores: the comparison scores.
        table: one row per source (:func:`faceiqa.evaluation.edc.edc_table` plus counts).
    """

    curves: list[EDCCurve]
    sources: list[SourceQuality]
    scores: PairScores
    table: pd.DataFrame


def edc_report(
    scores: PairScores,
    sources: Sequence[SourceQuality],
    *,
    fmrs: Sequence[float] = DEFAULT_FMRS,
    max_discard: float = DEFAULT_PAUC_LIMIT,
) -> EDCReport:
    """EDC curves and the table for ``sources`` on ``scores``."""
    if not sources:
        raise InvalidArgumentError("no quality sources (give score CSVs and/or baselines)")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"quality source names must be unique: {', '.join(names)}")
    curves = []
    for fmr in fmrs:
        point = operating_point(scores.distances, scores.genuine, fmr, score_kind="distance")
        for s in sources:
            curves.append(
                edc_curve(
                    scores.distances, scores.genuine, s.pair_quality, point=point, pauc_limit=max_discard, source=s.name
                )
            )
    table = edc_table(curves, fractions=sorted({0.05, 0.1, max_discard}))
    extra = pd.DataFrame(
        {"source": names, "n_images": [s.n_images for s in sources], "n_unrated": [s.n_unrated for s in sources]}
    )
    table = extra.merge(table, on="source", how="right")
    table.insert(len(extra.columns), "degrade", scores.plan.describe())
    return EDCReport(curves, list(sources), scores, table)


@dataclass(frozen=True)
class Band:
    """Verification outcome of the genuine pairs whose quality falls in one score band.

    Attributes:
        low, high: the band, ``low <= pair quality < high`` (the last band includes ``high``).
        n_genuine: genuine pairs in the band.
        share: their share of all genuine pairs, in [0, 1].
        fnmr: the share of them rejected at the operating point (NaN when the band is empty).
    """

    low: float
    high: float
    n_genuine: int
    share: float
    fnmr: float


def score_bands(
    scores: PairScores, source: SourceQuality, edges: Sequence[float], *, fmr: float = 1e-3
) -> tuple[list[Band], float]:
    """What a threshold means: FNMR at ``fmr`` of genuine pairs by band of pair quality (the
    lower of the two photos' scores).

    The threshold is fixed on every comparison (all impostor pairs), as for the EDC.
    Returns the bands and the recognizer's distance threshold.

    Raises:
        InvalidArgumentError: fewer than two edges or edges not increasing.
    """
    e = [float(v) for v in edges]
    if len(e) < 2 or any(b <= a for a, b in zip(e, e[1:])):
        raise InvalidArgumentError(f"band edges must be at least two increasing numbers, got {list(edges)}")
    point = operating_point(scores.distances, scores.genuine, fmr, score_kind="distance")
    gen = np.asarray(scores.genuine, dtype=bool)
    quality = source.pair_quality[gen]
    failed = ~(scores.distances[gen] <= point.threshold)  # a pair without a face (inf) fails
    bands = []
    for i, (lo, hi) in enumerate(zip(e, e[1:])):
        inside = (quality >= lo) & ((quality <= hi) if i == len(e) - 2 else (quality < hi))
        n = int(inside.sum())
        bands.append(Band(lo, hi, n, n / max(int(gen.sum()), 1), float(failed[inside].mean()) if n else float("nan")))
    return bands, float(point.threshold)


def bands_table(bands: Sequence[Band]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "band": [f"{b.low:g}-{b.high:g}" for b in bands],
            "genuine_pairs": [b.n_genuine for b in bands],
            "share": [b.share for b in bands],
            "fnmr": [b.fnmr for b in bands],
        }
    )


def evaluate_edc(
    pairs: Sequence[Pair],
    images_dir: str | os.PathLike,
    *,
    detector: DetectorLike,
    recognizer: RecognizerLike,
    score_csvs: Sequence[str | os.PathLike] = (),
    baselines: Sequence[str] = (),
    degrade_spec: str | None = None,
    degrade_fraction: float = 1.0,
    fmrs: Sequence[float] = DEFAULT_FMRS,
    max_discard: float = DEFAULT_PAUC_LIMIT,
    seed: int = 0,
    score_column: str = "score",
    progress: Callable[[Iterable], Iterable] | None = None,
) -> EDCReport:
    """The whole EDC evaluation: comparison scores, quality sources, curves and table.

    Score CSVs must rate the same images the recogniser sees: with ``degrade_spec`` they must
    have been computed on the degraded copies (:func:`degrade_set` with the same spec,
    fraction and seed).
    """
    csv_sources = [read_quality_csv(p, score_column=score_column) for p in score_csvs]
    _dedupe_names(csv_sources, score_csvs)
    scores = compute_pair_distances(
        pairs,
        images_dir,
        detector=detector,
        recognizer=recognizer,
        degrade_spec=degrade_spec,
        degrade_fraction=degrade_fraction,
        seed=seed,
        baselines=baselines,
        progress=progress,
    )
    sources = [source_from_csv(s, scores) for s in csv_sources]
    sources += [source_from_baseline(b, scores) for b in baselines]
    return edc_report(scores, sources, fmrs=fmrs, max_discard=max_discard)


def _dedupe_names(sources: list[QualitySource], paths: Sequence[str | os.PathLike]) -> None:
    """Make CSV source names unique and distinct from baseline names (file stem, else
    parent/stem, else a running number)."""
    taken = set(_baselines.BASELINES)
    stems = [s.name for s in sources]
    for i, s in enumerate(sources):
        name = s.name
        if name in taken or stems.count(name) > 1:
            p = Path(paths[i])
            name = f"{p.parent.name}/{p.stem}" if p.parent.name else p.stem
        base, n = name, 2
        while name in taken:
            name, n = f"{base}#{n}", n + 1
        taken.add(name)
        sources[i] = QualitySource(name, s.values, s.failed, s.n_rows)
