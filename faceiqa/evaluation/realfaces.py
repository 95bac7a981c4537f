"""Separating real high- from real low-quality photos: ROC AUC of a score and of the baselines.

The data set is a folder with an ``index.csv`` (columns ``file``, ``quality`` = ``hq`` or
``lq``, ``eye_distance_px``; the layout of ``../shared/data/realfaces``) and the photos it
names. Each photo's largest face is detected, aligned with the model's template and scored;
the baselines (:mod:`faceiqa.evaluation.baselines`) are computed on the same detection and
crop. A photo in which no face is found gets every measure's floor (the model's: 0).

Two conditions:

- ``as is``: the photos as they are;
- ``hq shrunk``: every high-quality photo is first shrunk (area averaging, kept small) so
  that its face has a seeded uniform random inter-eye distance in ``shrink`` (default 56-71
  px), so that face size alone cannot separate the classes; the low-quality photos are unchanged.

AUC is the probability that a random high-quality face scores above a random low-quality one
(ties count half; Mann-Whitney U / (n_hq n_lq)); 0.5 is chance, 1 a perfect separation.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy import stats

from faceiqa.errors import ImageReadError, InvalidArgumentError
from faceiqa.evaluation.baselines import BASELINES, compute_baselines
from faceiqa.evaluation.common import read_rgb
from faceiqa.evaluation.degrade import seed_for

log = logging.getLogger("faceiqa.evaluation")

#: Condition names.
AS_IS = "as is"
HQ_SHRUNK = "hq shrunk"
#: The model's column in the results.
MODEL = "model"


@dataclass(frozen=True)
class RealPhoto:
    """One photo of the set: its path, class and the index's inter-eye distance (px, NaN if unknown)."""

    path: Path
    quality: str
    eye_distance: float


@dataclass(frozen=True)
class RealFaceScore:
    """The measures of one photo under one condition.

    Attributes:
        photo: the photo.
        condition: :data:`AS_IS` or :data:`HQ_SHRUNK`.
        eye_distance: inter-eye distance of the face scored, px of the image scored (NaN: no face).
        values: ``{"model": score, <baseline>: value, ...}``; floors when no face was found.
    """

    photo: RealPhoto
    condition: str
    eye_distance: float
    values: dict[str, float] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return math.isfinite(self.eye_distance)


def read_index(root: str | os.PathLike[str]) -> list[RealPhoto]:
    """The photos listed in ``root/index.csv`` (sorted by file name).

    Raises:
        InvalidArgumentError: no index, missing columns, an unknown class, a missing photo,
            or not both classes.
    """
    root = Path(root)
    index = root / "index.csv"
    if not index.is_file():
        raise InvalidArgumentError(f"{root} has no index.csv (columns file, quality, eye_distance_px)")
    with open(index, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"file", "quality"} - set(reader.fieldnames or ())
        if missing:
            raise InvalidArgumentError(f"{index}: missing column(s) {', '.join(sorted(missing))}")
        photos = []
        for i, row in enumerate(reader, start=2):
            quality = (row["quality"] or "").strip()
            if quality not in ("hq", "lq"):
                raise InvalidArgumentError(f"{index} line {i}: quality must be hq or lq, got {quality!r}")
            path = root / row["file"]
            if not path.is_file():
                raise InvalidArgumentError(f"{index} line {i}: {row['file']} not found")
            try:
                ied = float(row.get("eye_distance_px") or "nan")
            except ValueError:
                ied = float("nan")
            photos.append(RealPhoto(path, quality, ied))
    if {p.quality for p in photos} != {"hq", "lq"}:
        raise InvalidArgumentError(f"{index}: needs both hq and lq photos")
    return sorted(photos, key=lambda p: p.path.name)


def shrink_target(photo: RealPhoto, shrink: tuple[float, float], seed: int = 0) -> float:
    """The seeded inter-eye distance (px) a high-quality photo is shrunk to in :data:`HQ_SHRUNK`."""
    rng = np.random.default_rng(seed_for("realfaces\0" + photo.path.name, seed))
    return float(rng.uniform(*shrink))


def _shrunk(image: np.ndarray, ied: float, target: float) -> np.ndarray:
    if not math.isfinite(ied) or ied <= target:
        return image
    f = target / ied
    h, w = image.shape[:2]
    return cv2.resize(image, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)


def _measure(image: np.ndarray, photo: RealPhoto, condition: str, assessor, names: Sequence[str]) -> RealFaceScore:
    faces = assessor.detector.detect(image)
    if not faces:
        values = {MODEL: 0.0, **compute_baselines(names, key=photo.path.name)}
        return RealFaceScore(photo, condition, float("nan"), values)
    face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    crop = assessor.align(image, [face])
    score = float(assessor.score_crops(crop, eye_distance=[face.eye_distance]).score[0])
    values = {MODEL: score, **compute_baselines(names, key=photo.path.name, face=face, crop=np.asarray(crop[0]))}
    return RealFaceScore(photo, condition, float(face.eye_distance), values)


def score_realfaces(
    photos: Sequence[RealPhoto],
    assessor,
    *,
    baselines: Sequence[str] = ("sharpness", "exposure", "eye_distance", "detprob"),
    shrink: tuple[float, float] | None = (56.0, 71.0),
    seed: int = 0,
) -> list[RealFaceScore]:
    """Measure every photo as is and, when ``shrink`` is given, with the hq photos shrunk.

    Args:
        photos: from :func:`read_index`.
        assessor: a :class:`faceiqa.api.FaceQualityAssessor` (``detector``, ``align``, ``score_crops``).
        baselines: names from :data:`faceiqa.evaluation.baselines.BASELINES`.
        shrink: (low, high) inter-eye distance in px for :data:`HQ_SHRUNK`; None skips it.
    """
    names = [BASELINES[n].name for n in baselines]
    if shrink is not None and not (0 < shrink[0] <= shrink[1]):
        raise InvalidArgumentError(f"shrink must be 0 < low <= high, got {shrink}")
    out: list[RealFaceScore] = []
    for photo in photos:
        try:
            image = read_rgb(photo.path)
        except ImageReadError as exc:
            log.warning("%s", exc)
            continue
        first = _measure(image, photo, AS_IS, assessor, names)
        out.append(first)
        if shrink is None:
            continue
        if photo.quality == "lq":
            out.append(RealFaceScore(photo, HQ_SHRUNK, first.eye_distance, dict(first.values)))
            continue
        ied = first.eye_distance if first.found else photo.eye_distance
        small = _shrunk(image, ied, shrink_target(photo, shrink, seed))
        out.append(_measure(small, photo, HQ_SHRUNK, assessor, names))
    return out


def roc_auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a random positive scores above a random negative), ties counting half."""
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    if not len(pos) or not len(neg):
        raise InvalidArgumentError("AUC needs scores of both classes")
    u = stats.mannwhitneyu(pos, neg, alternative="two-sided").statistic
    return float(u / (len(pos) * len(neg)))


def realfaces_table(scores: Sequence[RealFaceScore]) -> pd.DataFrame:
    """One row per (condition, measure): AUC hq vs lq, class medians, faces found, and for
    the model the share of lq faces that score at least 0.99."""
    rows = []
    for condition in (AS_IS, HQ_SHRUNK):
        sub = [s for s in scores if s.condition == condition]
        if not sub:
            continue
        for name in sub[0].values:
            hq = [s.values[name] for s in sub if s.photo.quality == "hq"]
            lq = [s.values[name] for s in sub if s.photo.quality == "lq"]
            rows.append({
                "condition": condition,
                "measure": name,
                "auc": roc_auc(hq, lq),
                "median_hq": float(np.median(hq)),
                "median_lq": float(np.median(lq)),
                "n_hq": len(hq),
                "n_lq": len(lq),
                "found": sum(s.found for s in sub),
                "lq_at_0.99": float(np.mean(np.asarray(lq) >= 0.99)) if name == MODEL else float("nan"),
                "median_ied_hq": float(np.nanmedian([s.eye_distance for s in sub if s.photo.quality == "hq"] or [np.nan])),
            })
    return pd.DataFrame(rows)
