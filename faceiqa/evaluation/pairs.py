"""Verification pairs through detection, alignment and the recognizer: comparison scores per pair,
optionally on degraded copies of the pair images.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceiqa.errors import ImageReadError, InvalidArgumentError
from faceiqa.evaluation import baselines as _baselines
from faceiqa.evaluation import degrade as _degrade
from faceiqa.evaluation.common import (
    DetectedFaceLike,
    DetectorLike,
    RecognizerLike,
    pair_image_keys,
    read_rgb,
    resolve_image_path,
)
from faceiqa.evaluation.verification import Pair

log = logging.getLogger("faceiqa.evaluation")


# ---------------------------------------------------------------------------------------
# comparison scores of verification pairs


def select_face(faces: Sequence[DetectedFaceLike], rule: str = "prob") -> DetectedFaceLike | None:
    """The face to use: ``"prob"`` highest probability (ties: first), ``"largest"`` box area."""
    if not faces:
        return None
    if rule == "prob":
        return max(faces, key=lambda f: float(f.prob))
    if rule == "largest":
        return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    raise InvalidArgumentError(f"face rule must be 'prob' or 'largest', got {rule!r}")


@dataclass(frozen=True)
class DegradePlan:
    """Which pair images are degraded, and how.

    Attributes:
        steps: ``[(kind, level), ...]`` applied in order (empty: nothing is degraded).
        fraction: share of images degraded, in (0, 1]; which ones is decided per image key
            from the seed, so a good quality score can be tested on finding them.
        seed: base seed (degradation noise and the selection are both derived per key).
        mixed: instead of fixed steps, each degraded image gets one degradation of a kind
            and level (1..5) drawn per image key (spec ``"mix"``).
    """

    steps: tuple[tuple[str, int], ...] = ()
    fraction: float = 1.0
    seed: int = 0
    mixed: bool = False

    @classmethod
    def parse(cls, spec: str | Sequence[tuple[str, int]] | None, fraction: float = 1.0, seed: int = 0) -> DegradePlan:
        """Build a plan from a spec string (or steps); validates everything."""
        if isinstance(spec, str) and spec.strip().lower() == "mix":
            if not (0.0 < fraction <= 1.0):
                raise InvalidArgumentError(f"degrade fraction must be in (0, 1], got {fraction}")
            return cls((), float(fraction), int(seed), mixed=True)
        steps = _degrade.parse_spec(spec) if isinstance(spec, str) else [tuple(s) for s in (spec or [])]
        steps = [(_degrade.get_kind(k).name, lv) for k, lv in steps]
        if steps:
            _degrade.format_spec(steps)  # validates the levels
        if not (0.0 < fraction <= 1.0):
            raise InvalidArgumentError(f"degrade fraction must be in (0, 1], got {fraction}")
        return cls(tuple(steps), float(fraction), int(seed))

    @property
    def active(self) -> bool:
        """Whether any image is degraded."""
        return bool(self.steps) or self.mixed

    @property
    def spec(self) -> str:
        """The steps as ``"kind:level,..."`` (``"mix"`` for mixed, ``""`` for none)."""
        if self.mixed:
            return "mix"
        return _degrade.format_spec(self.steps) if self.steps else ""

    def describe(self) -> str:
        """``none``, ``blur:3`` or ``blur:3 on 50% of images``."""
        if not self.active:
            return "none"
        return self.spec if self.fraction >= 1.0 else f"{self.spec} on {100 * self.fraction:g}% of images"

    def steps_for(self, key: str) -> list[tuple[str, int]]:
        """The degradation steps of the image with this key (when it is selected)."""
        if not self.mixed:
            return list(self.steps)
        rng = np.random.default_rng(_degrade.seed_for("mix\0" + key, self.seed))
        kinds = _degrade.CLASSIC_KINDS
        return [(kinds[int(rng.integers(len(kinds)))], int(rng.integers(1, 6)))]

    def selected(self, key: str) -> bool:
        """Whether the image with this key is degraded."""
        if not self.active:
            return False
        if self.fraction >= 1.0:
            return True
        draw = np.random.default_rng(_degrade.seed_for("select\0" + key, self.seed)).random()
        return bool(draw < self.fraction)

    def apply(self, image: np.ndarray, key: str) -> np.ndarray:
        """The image as evaluated: degraded (seeded by its key) when selected, else unchanged."""
        if not self.selected(key):
            return image
        return _degrade.compose(image, self.steps_for(key), seed=_degrade.seed_for(key, self.seed))


@dataclass
class ImageRecord:
    """What the evaluation learnt about one image.

    Attributes:
        key: image key.
        status: ``"ok"``, ``"no_face"`` or ``"unreadable"``.
        det_prob: probability of the chosen face (0 when none).
        embedding: recogniser descriptor, or None.
        baselines: baseline name -> value.
        message: why it failed, if it did.
        degraded: whether the degradation plan was applied to it.
    """

    key: str
    status: str
    degraded: bool = False
    det_prob: float = 0.0
    embedding: np.ndarray | None = None
    baselines: dict[str, float] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class PairScores:
    """Comparison scores of verification pairs.

    Attributes:
        keys: (key1, key2) per pair.
        distances: Euclidean descriptor distance per pair; +inf when either image has no face.
        genuine: True for same-person pairs.
        images: key -> :class:`ImageRecord` (each image processed once).
        plan: the degradations applied.
        seed: base seed of the random baseline.
    """

    keys: list[tuple[str, str]]
    distances: np.ndarray
    genuine: np.ndarray
    images: dict[str, ImageRecord]
    plan: DegradePlan
    seed: int

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.images.values())

    @property
    def n_pairs_without_face(self) -> int:
        return int(np.sum(~np.isfinite(self.distances)))


def compute_pair_distances(
    pairs: Sequence[Pair],
    images_dir: str | os.PathLike,
    *,
    detector: DetectorLike,
    recognizer: RecognizerLike,
    degrade_spec: str | Sequence[tuple[str, int]] | None = None,
    degrade_fraction: float = 1.0,
    seed: int = 0,
    baselines: Sequence[str] = (),
    face_rule: str = "prob",
    batch_size: int = 32,
    cache: dict[tuple, ImageRecord] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> PairScores:
    """Detect, align and embed every pair image once, and compute the pair distances.

    Args:
        pairs: verification pairs (``faceiqa.evaluation.verification.read_pairs``).
        images_dir: the LFW-layout image folder (``.jpg`` names may resolve to ``.png`` copies).
        detector: object with ``detect(rgb uint8) -> [face with .box, .prob, .landmarks]``
            (and optionally ``detect_batch(list of images) -> list of such lists``).
        recognizer: object with ``align(image, landmarks) -> chip`` and
            ``embed(chips (N, S, S, 3) uint8) -> (N, D) float``.
        degrade_spec: optional ``"kind:level,..."``; images are degraded (seeded by their key)
            before detection, so detector, recogniser and baselines all see the degraded image.
        degrade_fraction: share of images degraded, chosen per key from the seed (see
            :class:`DegradePlan`).
        seed: base seed for the degradations and the random baseline.
        baselines: names from :data:`faceiqa.evaluation.baselines.BASELINES` computed per image on the
            chosen face and its recogniser chip.
        face_rule: which detected face to use (:func:`select_face`).
        batch_size: images per detection (``detect_batch`` when the detector has it) and
            ``embed`` call.
        cache: optional dict reused across calls with the same folder, detector and
            recogniser (keyed by image key, degradation plan and seed).
        progress: optional wrapper around the image iterable (e.g. ``tqdm``).

    Raises:
        InvalidArgumentError: no pairs, or not one pair image could be read.
    """
    if not pairs:
        raise InvalidArgumentError("no verification pairs")
    plan = DegradePlan.parse(degrade_spec, degrade_fraction, seed)
    plan_key = (plan.spec, plan.fraction, plan.seed)
    names = [_baselines.get_baseline(b).name for b in baselines]
    keys = pair_image_keys(pairs)
    unique = list(dict.fromkeys(k for pair in keys for k in pair))
    root = Path(images_dir)
    cache = {} if cache is None else cache
    records: dict[str, ImageRecord] = {}

    def unrated(key: str, status: str, message: str) -> ImageRecord:
        rec = ImageRecord(key, status, degraded=plan.selected(key), message=message)
        rec.baselines = _baselines.compute_baselines(names, key=key, face=None, seed=seed)
        return rec

    def process(pending: list[tuple[str, np.ndarray]]) -> None:
        if not pending:
            return
        images = [im for _, im in pending]
        # Batched detection is several times faster on CPU (equal-size images share passes).
        found = (
            detector.detect_batch(images)
            if hasattr(detector, "detect_batch")
            else [detector.detect(im) for im in images]
        )
        chips, chip_keys = [], []
        for (key, image), faces in zip(pending, found, strict=True):
            face = select_face(faces, face_rule)
            if face is None:
                records[key] = unrated(key, "no_face", "no face detected")
                continue
            chip = np.asarray(recognizer.align(image, np.asarray(face.landmarks, dtype=np.float64)))
            rec = ImageRecord(key, "ok", degraded=plan.selected(key), det_prob=float(face.prob))
            rec.baselines = _baselines.compute_baselines(names, key=key, face=face, crop=chip, seed=seed)
            records[key] = rec
            chips.append(chip)
            chip_keys.append(key)
        if chips:
            emb = np.asarray(recognizer.embed(np.stack(chips)), dtype=np.float64)
            if emb.ndim != 2 or emb.shape[0] != len(chips):
                raise InvalidArgumentError(
                    f"recognizer returned descriptors of shape {emb.shape} for {len(chips)} chips"
                )
            for k, e in zip(chip_keys, emb, strict=True):
                records[k].embedding = e

    pending: list[tuple[str, np.ndarray]] = []
    for key in progress(unique) if progress else unique:
        cache_key = (key, plan_key, seed)
        if cache_key in cache and set(names) <= set(cache[cache_key].baselines):
            records[key] = cache[cache_key]
            continue
        try:
            image = read_rgb(resolve_image_path(root / (key + ".jpg")))
        except ImageReadError as exc:
            records[key] = unrated(key, "unreadable", str(exc))
            continue
        pending.append((key, plan.apply(image, key)))
        if len(pending) >= batch_size:
            process(pending)
            pending = []
    process(pending)
    records = {k: records[k] for k in unique}  # pair order, whatever the processing order
    for key, rec in records.items():
        cache[(key, plan_key, seed)] = rec

    n_unreadable = sum(r.status == "unreadable" for r in records.values())
    if n_unreadable == len(records):
        first = next(iter(records.values())).message
        raise InvalidArgumentError(f"none of the {len(records)} pair images could be read under {root} ({first})")
    if n_unreadable:
        log.warning(
            "%d of %d pair images could not be read; their pairs count as non-matches", n_unreadable, len(records)
        )

    distances = np.full(len(keys), np.inf)
    for i, (a, b) in enumerate(keys):
        ea, eb = records[a].embedding, records[b].embedding
        if ea is not None and eb is not None:
            distances[i] = float(np.linalg.norm(ea - eb))
    genuine = np.array([p.genuine for p in pairs], dtype=bool)
    return PairScores(keys, distances, genuine, records, plan, seed)
