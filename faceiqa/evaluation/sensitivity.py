"""Does the score fall as a degradation gets stronger, and as a face loses resolution?
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from faceiqa._util import box_iou
from faceiqa.errors import FaceIQAError, ImageReadError, InvalidArgumentError
from faceiqa.evaluation import degrade as _degrade
from faceiqa.evaluation.common import DetectorLike, QualityScorerLike, image_key, read_rgb
from faceiqa.evaluation.pairs import select_face

log = logging.getLogger("faceiqa.evaluation")


# ---------------------------------------------------------------------------------------
# monotonicity


@dataclass(frozen=True)
class MonotonicityRow:
    """Monotonicity of a score under one degradation kind.

    Attributes:
        kind: degradation kind.
        n_images: source images.
        mean_srcc, std_srcc: mean and population standard deviation over images of the
            Spearman correlation between level (0..5) and score; -1 is ideal (quality falls
            at every step). NaN when every image was constant.
        n_constant: images whose score did not change over the levels (excluded from the mean).
        score_first, score_last: mean score at the first and the last level studied (0 and 5
            by default): how far the scale moves, which a rank correlation cannot show.
    """

    kind: str
    n_images: int
    mean_srcc: float
    std_srcc: float
    n_constant: int
    score_first: float = float("nan")
    score_last: float = float("nan")


#: ``f(images, owners) -> scores``: scores of uint8 images; ``owners[k]`` is the index of the
#: pristine image that ``images[k]`` was made from.
ScoreFn = Callable[[list[np.ndarray], list[int]], np.ndarray]


def monotonicity(
    images: Sequence[np.ndarray],
    score_fn: ScoreFn,
    *,
    kinds: Sequence[str] | None = None,
    levels: Sequence[int] = (0, 1, 2, 3, 4, 5),
    seed: int = 0,
    keys: Sequence[str] | None = None,
    landmarks: Sequence[np.ndarray | None] | None = None,
    template=None,
    images_per_call: int = 8,
) -> list[MonotonicityRow]:
    """How consistently a score falls as each degradation gets stronger.

    Args:
        images: pristine (H, W, 3) uint8 RGB images (e.g. aligned face crops).
        score_fn: ``f(list of uint8 images, owners) -> scores``, one finite score per image,
            higher = better; ``owners`` gives each image's source index in ``images``.
        kinds: degradation kinds (default: all of :data:`faceiqa.evaluation.degrade.KINDS`).
        levels: severity levels to score, 0 = pristine.
        seed: base seed; image ``i`` is degraded with ``seed_for(keys[i], seed)``.
        keys: stable image identifiers (default: the index as text).
        landmarks: optional per-image landmarks for the degradations.
        template: alignment template the images are crops of (positions the occluder).
        images_per_call: how many images' variants go into one ``score_fn`` call.

    Raises:
        InvalidArgumentError: no images, bad levels, or ``score_fn`` returned the wrong number of
            scores or non-finite scores.
    """
    if not images:
        raise InvalidArgumentError("no images for the monotonicity study")
    lv = [int(v) for v in levels]
    if len(lv) < 2 or len(set(lv)) != len(lv) or not all(0 <= v <= 5 for v in lv):
        raise InvalidArgumentError(f"levels must be at least two distinct integers 0..5, got {list(levels)}")
    kinds = list(kinds) if kinds is not None else _degrade.list_kinds()
    kinds = [_degrade.get_kind(k).name for k in kinds]
    keys = list(keys) if keys is not None else [str(i) for i in range(len(images))]
    marks = list(landmarks) if landmarks is not None else [None] * len(images)
    if len(keys) != len(images) or len(marks) != len(images):
        raise InvalidArgumentError("keys and landmarks must have one entry per image")
    rows = []
    for kind in kinds:
        rhos: list[float] = []
        firsts: list[float] = []
        lasts: list[float] = []
        n_constant = 0
        for start in range(0, len(images), max(1, images_per_call)):
            chunk = range(start, min(len(images), start + max(1, images_per_call)))
            variants = [
                _degrade.degrade(
                    images[i], kind, v, seed=_degrade.seed_for(keys[i], seed), landmarks=marks[i], template=template
                )
                for i in chunk
                for v in lv
            ]
            owners = [i for i in chunk for _ in lv]
            scores = np.asarray(score_fn(variants, owners), dtype=np.float64).ravel()
            if scores.shape != (len(variants),):
                raise InvalidArgumentError(f"score function returned {scores.size} scores for {len(variants)} images")
            if not np.all(np.isfinite(scores)):
                raise InvalidArgumentError(f"score function returned non-finite scores under {kind}")
            for j in range(len(chunk)):
                s = scores[j * len(lv) : (j + 1) * len(lv)]
                firsts.append(float(s[0]))
                lasts.append(float(s[-1]))
                if np.ptp(s) == 0.0:
                    n_constant += 1
                else:
                    rhos.append(float(stats.spearmanr(lv, s).statistic))
        arr = np.array(rhos)
        rows.append(
            MonotonicityRow(
                kind,
                len(images),
                float(arr.mean()) if arr.size else float("nan"),
                float(arr.std()) if arr.size else float("nan"),
                n_constant,
                float(np.mean(firsts)),
                float(np.mean(lasts)),
            )
        )
    return rows


def monotonicity_of_scorer(
    image_paths: Sequence[str | os.PathLike],
    *,
    scorer: QualityScorerLike,
    detector: DetectorLike,
    kinds: Sequence[str] | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    face_rule: str = "prob",
) -> tuple[list[MonotonicityRow], int]:
    """:func:`monotonicity` of a quality scorer on photos.

    Each pristine photo is detected once and its face aligned to the scorer's template;
    the degradations are applied to that aligned crop (so their size scaling uses the
    template's known inter-eye distance) and the crops are scored with ``score_crops``.
    Photos without a face are skipped.

    Returns:
        (rows, number of photos skipped for having no face or being unreadable).
    """
    from faceiqa.face.alignment import align_face, get_template
    from faceiqa.models.features import FACE_FEATURES

    extra_names = tuple(getattr(getattr(scorer, "config", None), "extra", ()))
    if getattr(scorer, "extra_inputs", 0) and (
        len(extra_names) != scorer.extra_inputs or any(n not in FACE_FEATURES for n in extra_names)
    ):
        raise FaceIQAError(f"this quality model takes extra inputs {list(extra_names)} that faceiqa cannot compute")
    tpl = scorer.config.template if not isinstance(scorer.config.template, str) else get_template(scorer.config.template)
    crops, keys, eye = [], [], []
    skipped = 0
    for path in image_paths:
        try:
            image = read_rgb(path)
        except ImageReadError as exc:
            log.warning("%s", exc)
            skipped += 1
            continue
        face = select_face(detector.detect(image), face_rule)
        if face is None:
            skipped += 1
            continue
        landmarks = np.asarray(face.landmarks, dtype=np.float64)
        crops.append(align_face(image, landmarks, tpl))
        keys.append(image_key(path, root))
        eye.append(float(np.linalg.norm(landmarks[1] - landmarks[0])))
    if not crops:
        raise InvalidArgumentError("no face found in any of the images")

    def score_fn(images: list[np.ndarray], owners: list[int]) -> np.ndarray:
        # Per-face inputs (e.g. the face's size) describe the source photo, so every
        # degraded version of a crop gets its source's values.
        extra = None
        if extra_names:
            extra = np.array([[FACE_FEATURES[n](eye[i], tpl) for n in extra_names] for i in owners])
        return np.asarray(scorer.score_crops(np.stack(images), extra=extra).score, dtype=np.float64)

    return monotonicity(crops, score_fn, kinds=kinds, seed=seed, keys=keys, template=tpl), skipped


@dataclass(frozen=True)
class ResolutionRanking:
    """Does the score rank the same faces by their real resolution?

    Attributes:
        mode: ``down-up`` (the photo is shrunk by each factor and enlarged back to its size:
            the face keeps its pixel size but loses detail) or ``down`` (the photo is only
            shrunk: the face really has fewer pixels).
        factors: shrink factors, 1 = the original photo.
        n_faces: faces studied.
        mean_srcc: mean over faces of the Spearman correlation between factor and score
            (-1: the score falls at every step).
        in_order: share of faces whose scores strictly fall from each factor to the next.
        n_lost: faces the detector lost at some factor (their score there counts as the
            lowest, since a pipeline would drop them).
        mean_scores: mean score at each factor (over the faces found at that factor).
        step_order: for each step between neighbouring factors, the share of faces whose
            score strictly falls over that step (len(factors) - 1 values in [0, 1]); shows
            which steps the score resolves.
        step_gain: for each step, the share of faces whose score rises by more than
            ``gain_tolerance`` (0.01) over it: the model rewarding the smaller face.
        small_fall: for each step, among the faces whose smaller version has fewer than
            ``small_ied`` (64) pixels between the eyes, the share whose score strictly falls
            (NaN where no face is that small).
        n_small: for each step, how many faces that is.
        gain_tolerance, small_ied: the thresholds used.
    """

    mode: str
    factors: tuple[float, ...]
    n_faces: int
    mean_srcc: float
    in_order: float
    n_lost: int
    mean_scores: tuple[float, ...]
    step_order: tuple[float, ...] = ()
    step_gain: tuple[float, ...] = ()
    small_fall: tuple[float, ...] = ()
    n_small: tuple[int, ...] = ()
    gain_tolerance: float = 0.01
    small_ied: float = 64.0

    @property
    def small_fall_all(self) -> float:
        """Share of all (face, step) pairs with a small face whose score falls (NaN if none)."""
        total = sum(self.n_small)
        if not total:
            return float("nan")
        return float(sum(f * n for f, n in zip(self.small_fall, self.n_small) if n) / total)


def resolution_ranking(
    image_paths: Sequence[str | os.PathLike],
    assessor,
    *,
    factors: Sequence[float] = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
    mode: str = "down-up",
    face_rule: str = "prob",
    gain_tolerance: float = 0.01,
    small_ied: float = 64.0,
) -> ResolutionRanking:
    """Score each photo's face at several real resolutions through the whole pipeline.

    Args:
        image_paths: photos (one face each is studied: the one ``face_rule`` picks).
        assessor: a :class:`faceiqa.api.FaceQualityAssessor` (detector + model).
        factors: increasing shrink factors; the first is usually 1.
        mode: ``down-up`` or ``down`` (see :class:`ResolutionRanking`).
    """
    import cv2

    fs = [float(f) for f in factors]
    if len(fs) < 2 or any(f < 1 for f in fs) or fs != sorted(set(fs)):
        raise InvalidArgumentError(f"factors must be at least two increasing numbers >= 1, got {list(factors)}")
    if mode not in ("down-up", "down"):
        raise InvalidArgumentError(f"mode must be 'down-up' or 'down', got {mode!r}")
    table: list[list[float]] = []
    ieds: list[list[float]] = []
    lost = 0
    for path in image_paths:
        try:
            image = read_rgb(path)
        except ImageReadError as exc:
            log.warning("%s", exc)
            continue
        face = select_face(assessor.detector.detect(image), face_rule)
        if face is None:
            continue
        h, w = image.shape[:2]
        row: list[float] = []
        ied_row = [face.eye_distance * (1.0 if mode == "down-up" else 1.0 / f) for f in fs]
        for f in fs:
            small = image if f == 1 else cv2.resize(image, (max(8, round(w / f)), max(8, round(h / f))), interpolation=cv2.INTER_AREA)
            if mode == "down-up" and f != 1:
                small = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
            sx, sy = small.shape[1] / w, small.shape[0] / h
            expected = ((face.box[0] + 0.5) * sx - 0.5, (face.box[1] + 0.5) * sy - 0.5, (face.box[2] + 0.5) * sx - 0.5, (face.box[3] + 0.5) * sy - 0.5)
            found = [c for c in assessor.detector.detect(small) if box_iou(c.box, expected) >= 0.3]
            if not found:
                row.append(-np.inf)
                continue
            best = max(found, key=lambda c: box_iou(c.box, expected))
            crop = assessor.align(small, [best])
            row.append(float(assessor.score_crops(crop, eye_distance=[best.eye_distance]).score[0]))
        lost += int(any(np.isinf(v) for v in row))
        table.append(row)
        ieds.append(ied_row)
    if not table:
        raise InvalidArgumentError("no face found in any of the photos")
    arr = np.array(table)
    ranked = np.where(np.isinf(arr), -1.0, arr)  # lost faces rank below every score
    rhos = [float(stats.spearmanr(fs, r).statistic) for r in ranked if np.ptp(r) > 0]
    falls = np.diff(ranked, axis=1) < 0
    in_order = float(np.mean(np.all(falls, axis=1)))
    means = tuple(float(np.mean(col[np.isfinite(col)])) if np.isfinite(col).any() else float("nan") for col in arr.T)
    steps = tuple(float(v) for v in falls.mean(axis=0))
    gains = tuple(float(v) for v in (np.diff(ranked, axis=1) > gain_tolerance).mean(axis=0))
    small = np.array(ieds)[:, 1:] < small_ied  # the smaller face of each step
    n_small = tuple(int(v) for v in small.sum(axis=0))
    small_fall = tuple(float(falls[small[:, j], j].mean()) if n_small[j] else float("nan") for j in range(len(fs) - 1))
    return ResolutionRanking(
        mode, tuple(fs), len(table), float(np.mean(rhos)) if rhos else float("nan"), in_order, lost, means, steps,
        gains, small_fall, n_small, gain_tolerance, small_ied,
    )


def monotonicity_table(rows: Sequence[MonotonicityRow]) -> pd.DataFrame:
    """The rows as a DataFrame (one row per kind)."""
    return pd.DataFrame([r.__dict__ for r in rows])
