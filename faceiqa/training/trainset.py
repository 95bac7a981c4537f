"""The training set of the face quality model: real faces, degraded variants, labels, features.

For every photo of a person with at least two photos (LFW layout ``<root>/<Name>/<file>``):

1. MTCNN finds the face (the detection nearest the image centre); the pristine face is
   aligned to the recognizer's 150 px chip and described by the recognizer.
2. ``variants`` versions of the photo are made: the first is the pristine photo, the others
   get 1-3 degradations of the :mod:`faceiqa.evaluation.degrade` library at random severities, and/or
   real resolution loss (the whole photo shrunk 2-6 times, so that the face really has
   fewer pixels; the quality model also sees the face size through ``log2_resolution``).
   The plan of each variant is drawn from a generator seeded by the photo's relative path.
3. The variant is run through the same steps as at inference: detection (a variant where
   MTCNN no longer finds the face gets utility 0, and is cut with the pristine landmarks),
   alignment to the chip, the recognizer's stage features (cached, average-pooled to the
   HyperIQA LDA grids) and descriptor.
4. Labels (:mod:`faceiqa.training.labels`): utility from the descriptor's mean distance to the same
   person's other pristine photos, perceptual from HaarPSI/GMSD against the pristine face.

The result is one ``.npz`` file of arrays (see :class:`FaceTrainSet`); training the head on
it takes seconds per epoch because the backbone is frozen.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from faceiqa._util import atomic_path, box_iou
from faceiqa.errors import FaceIQAError, InvalidArgumentError
from faceiqa.evaluation.degrade import CLASSIC_KINDS, compose, format_spec, seed_for
from faceiqa.evaluation.verification import read_pairs
from faceiqa.face.alignment import DLIB_150, align_face
from faceiqa.face.detection import DetectedFace, FaceDetector
from faceiqa.images import read_image
from faceiqa.models.dlib_resnet import DlibResNet, normalize_chips
from faceiqa.models.face import DLIB_TAPS, detail_maps
from faceiqa.models.features import log2_resolution
from faceiqa.training.labels import UtilityCalibration, blend, calibrate_utility, perceptual_scores

log = logging.getLogger(__name__)

#: LDA grid side of each local stage of the dlib backbone (``size // 7``, at least 1).
LDA_GRIDS = tuple(max(1, s // 7) for s in DLIB_TAPS.sizes[:-1])
#: Real resolution-loss factors (whole photo shrunk by these).
DOWNSCALE_FACTORS = (2.0, 3.0, 4.0, 6.0)


@dataclass(frozen=True)
class VariantPlan:
    """How one variant of a photo is made.

    Attributes:
        steps: degradation steps ``(kind, level)`` applied in order (empty: none).
        downscale: the photo is shrunk by this factor afterwards (1: not shrunk).
    """

    steps: tuple[tuple[str, int], ...] = ()
    downscale: float = 1.0

    @property
    def spec(self) -> str:
        parts = [format_spec(self.steps)] if self.steps else []
        if self.downscale > 1:
            parts.append(f"downscale:{self.downscale:g}")
        return ",".join(parts) or "pristine"


def sample_plans(key: str, variants: int, seed: int = 0, kinds: Sequence[str] = CLASSIC_KINDS) -> list[VariantPlan]:
    """The variant plans of one photo: the pristine photo first, then random degradations.

    Each degraded variant is, with probability 0.2, real resolution loss (the photo shrunk
    2-6 times; one time in three with one more degradation); with probability 0.2, mild
    loss of detail (``resolution`` at level 1-3: shrunk and enlarged back, the hardest
    change to see); otherwise 1, 2 or 3 distinct degradations (probabilities 0.6, 0.3,
    0.1) at uniform severities 1..5, drawn from ``kinds`` (default the twelve classic
    kinds v1 was trained on).
    """
    rng = np.random.default_rng(seed_for(key, seed))
    kinds = list(kinds)
    plans = [VariantPlan()]
    for _ in range(variants - 1):
        draw = rng.random()
        if draw < 0.2:
            factor = float(rng.choice(DOWNSCALE_FACTORS))
            n = 1 if rng.random() < 1 / 3 else 0
        elif draw < 0.4:
            plans.append(VariantPlan((("resolution", int(rng.integers(1, 4))),)))
            continue
        else:
            factor = 1.0
            n = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
        chosen = rng.choice(len(kinds), size=n, replace=False)
        steps = tuple((kinds[int(k)], int(rng.integers(1, 6))) for k in chosen)
        plans.append(VariantPlan(steps, factor))
    return plans


@dataclass
class FaceTrainSet:
    """Arrays of a built training set (one row per variant).

    Attributes:
        stages: pooled features, one float32 array per tap: (N, 3, 5, 5) detail maps,
            (N, 32, 10, 10) stem, (N, 32, 5, 5), (N, 64, 2, 2), (N, 128, 1, 1), (N, 256, 2, 2).
        extra: (N, 1) float32 ``log2_resolution`` of the face.
        utility, perceptual, label: (N,) float64 in [0, 1].
        distance: (N,) mean descriptor distance to the person's other pristine photos.
        detected: (N,) bool, False where MTCNN lost the face.
        person: (N,) person names; key: (N,) photo keys (relative paths); spec: (N,) plan specs.
        split: (N,) ``train`` or ``val``.
        calibration: the utility calibration (d_good, d_bad) used.
    """

    stages: list[np.ndarray]
    extra: np.ndarray
    utility: np.ndarray
    perceptual: np.ndarray
    label: np.ndarray
    distance: np.ndarray
    detected: np.ndarray
    person: np.ndarray
    key: np.ndarray
    spec: np.ndarray
    split: np.ndarray
    calibration: UtilityCalibration
    info: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                **{f"stage{i}": s for i, s in enumerate(self.stages)},
                extra=self.extra,
                utility=self.utility,
                perceptual=self.perceptual,
                label=self.label,
                distance=self.distance,
                detected=self.detected,
                person=self.person,
                key=self.key,
                spec=self.spec,
                split=self.split,
                calibration=np.array([self.calibration.d_good, self.calibration.d_bad]),
                info=np.array(repr(self.info)),
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FaceTrainSet:
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InvalidArgumentError(f"cannot read training set {path}: {exc}") from None
        n_stages = len(DLIB_TAPS.channels)
        d_good, d_bad = (float(v) for v in z["calibration"])
        return cls(
            stages=[z[f"stage{i}"] for i in range(n_stages)],
            extra=z["extra"],
            utility=z["utility"],
            perceptual=z["perceptual"],
            label=z["label"],
            distance=z["distance"],
            detected=z["detected"],
            person=z["person"],
            key=z["key"],
            spec=z["spec"],
            split=z["split"],
            calibration=UtilityCalibration(d_good, d_bad),
        )

    def subset(self, mask: np.ndarray) -> FaceTrainSet:
        return FaceTrainSet(
            stages=[s[mask] for s in self.stages],
            extra=self.extra[mask],
            utility=self.utility[mask],
            perceptual=self.perceptual[mask],
            label=self.label[mask],
            distance=self.distance[mask],
            detected=self.detected[mask],
            person=self.person[mask],
            key=self.key[mask],
            spec=self.spec[mask],
            split=self.split[mask],
            calibration=self.calibration,
            info=dict(self.info),
        )


def split_people(images_dir: Path, pairs_path: Path | None, val_folds: Sequence[int], min_photos: int = 2) -> dict[str, list[Path]]:
    """Photos per person for people with at least ``min_photos`` photos, and their split.

    People who appear in the verification folds ``val_folds`` of ``pairs_path`` form the
    validation split (the folds are identity-disjoint); everybody else is training.

    Returns:
        ``{"train": [...], "val": [...]}`` lists of photo paths, sorted.
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise InvalidArgumentError(f"images folder not found: {images_dir}")
    val_people: set[str] = set()
    if pairs_path is not None:
        for pair in read_pairs(pairs_path):
            if pair.fold in val_folds:
                val_people.update((pair.name1, pair.name2))
    out: dict[str, list[Path]] = {"train": [], "val": []}
    for person in sorted(p.name for p in images_dir.iterdir() if p.is_dir()):
        photos = sorted(f for f in (images_dir / person).iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if len(photos) >= min_photos:
            out["val" if person in val_people else "train"].extend(photos)
    return out


def _central_face(faces: Sequence[DetectedFace], shape: tuple[int, ...]) -> DetectedFace | None:
    if not faces:
        return None
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(faces, key=lambda f: (0.5 * (f.box[0] + f.box[2]) - cx) ** 2 + (0.5 * (f.box[1] + f.box[3]) - cy) ** 2)


def _shrink(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (max(8, round(w / factor)), max(8, round(h / factor))), interpolation=cv2.INTER_AREA)


def _scale_points(points: np.ndarray, fx: float, fy: float) -> np.ndarray:
    # Pixel centres map as (x + 0.5) * f - 0.5 under cv2.resize.
    return ((np.asarray(points, dtype=np.float64) + 0.5) * [fx, fy] - 0.5).astype(np.float32)


def pooled_stage_features(net: DlibResNet, chips: np.ndarray, batch_size: int = 64) -> tuple[list[np.ndarray], np.ndarray]:
    """Stage features pooled to the LDA grids, and descriptors, of uint8 (N, 150, 150, 3) chips."""
    stages: list[list[np.ndarray]] = [[] for _ in DLIB_TAPS.channels]
    descriptors = []
    with torch.inference_mode():
        for start in range(0, len(chips), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(chips[start : start + batch_size])).permute(0, 3, 1, 2).float()
            normalised = normalize_chips(x)
            feats = [detail_maps(normalised), *net.forward_features(normalised, with_stem=True)]
            descriptors.append(net.head(feats[-1]).numpy())
            for i, f in enumerate(feats[:-1]):
                stages[i].append(F.adaptive_avg_pool2d(f, LDA_GRIDS[i]).numpy())
            stages[-1].append(feats[-1].numpy())
    return [np.concatenate(s).astype(np.float32) for s in stages], np.concatenate(descriptors)


@dataclass
class _Variant:
    person: str
    key: str
    split: str
    spec: str
    chip: np.ndarray
    reference: np.ndarray
    degraded_fixed: np.ndarray
    eye_distance: float
    detected: bool
    pristine: bool


class _Detectors:
    """MTCNN detectors that only look for faces about as large as the one expected.

    The face's size in every variant is known from the pristine photo, so the detector's
    scale pyramid can start near it (``min_face_size`` = half the expected box width, in a
    few buckets). This is several times faster than searching every size from 20 px and
    finds the same face; a variant whose face the detector misses is still a miss.
    """

    BUCKETS = (12, 20, 30, 45, 60)

    def __init__(self, detector: FaceDetector) -> None:
        self._base = detector
        self._by_size: dict[int, FaceDetector] = {}

    def for_width(self, width: float) -> FaceDetector:
        wanted = 0.5 * width
        size = max([b for b in self.BUCKETS if b <= wanted], default=self.BUCKETS[0])
        if size not in self._by_size:
            self._by_size[size] = FaceDetector(
                device=self._base.device, min_face_size=size, thresholds=self._base.thresholds,
                min_prob=self._base.min_prob, max_side=self._base.max_side,
            )
        return self._by_size[size]


def _make_variants(
    path: Path, root: Path, split: str, detectors: _Detectors, variants: int, seed: int
) -> list[_Variant] | str:
    """All variants of one photo, or a reason string when the photo is unusable."""
    key = path.relative_to(root).as_posix()
    try:
        rgb = read_image(path)
    except FaceIQAError as exc:
        return f"{key}: {exc}"
    face = _central_face(detectors.for_width(0.4 * min(rgb.shape[:2])).detect(rgb), rgb.shape)
    if face is None:
        return f"{key}: no face"
    person = path.parent.name
    reference = align_face(rgb, face.landmarks, DLIB_150)
    plans = sample_plans(key, variants, seed)
    images = []
    for i, plan in enumerate(plans):
        img = compose(rgb, list(plan.steps), seed=seed_for(f"{key}#{i}", seed), landmarks=face.landmarks) if plan.steps else rgb
        if plan.downscale > 1:
            img = _shrink(img, plan.downscale)
        images.append(img)
    out = []
    for plan, img in zip(plans, images, strict=True):
        fx, fy = img.shape[1] / rgb.shape[1], img.shape[0] / rgb.shape[0]
        expected_box = ((face.box[0] + 0.5) * fx - 0.5, (face.box[1] + 0.5) * fy - 0.5, (face.box[2] + 0.5) * fx - 0.5, (face.box[3] + 0.5) * fy - 0.5)
        fixed_landmarks = _scale_points(face.landmarks, fx, fy)
        if img is rgb:
            faces = [face]  # the pristine photo: its detection is already known
        else:
            faces = detectors.for_width((face.box[2] - face.box[0]) * fx).detect(img)
        match = max(faces, key=lambda f: box_iou(f.box, expected_box), default=None)
        detected = match is not None and box_iou(match.box, expected_box) >= 0.3
        landmarks = match.landmarks if detected else fixed_landmarks
        eye = float(np.linalg.norm(landmarks[1] - landmarks[0]))
        out.append(
            _Variant(
                person=person,
                key=key,
                split=split,
                spec=plan.spec,
                chip=align_face(img, landmarks, DLIB_150),
                reference=reference,
                degraded_fixed=align_face(img, fixed_landmarks, DLIB_150),
                eye_distance=eye,
                detected=detected,
                pristine=not plan.steps and plan.downscale == 1,
            )
        )
    return out


@dataclass
class _Chunk:
    """Features, descriptors, perceptual labels and metadata of the variants of some photos."""

    stages: list[np.ndarray]
    descriptors: np.ndarray
    perceptual: np.ndarray
    meta: list[tuple[str, str, str, str, bool, bool, float]]
    skipped: list[str]


_WORKER: dict[str, object] = {}


def _init_worker(device: str, threads: int) -> None:
    from faceiqa.models.dlib_resnet import load_dlib_resnet

    torch.set_num_threads(threads)
    _WORKER["net"] = load_dlib_resnet(device=device)
    _WORKER["detector"] = FaceDetector(device=device)


def _process_chunk(
    jobs: Sequence[tuple[Path, str]], root: Path, variants: int, val_variants: int, seed: int,
    net: DlibResNet | None = None, detector: FaceDetector | None = None,
) -> _Chunk:
    net = net if net is not None else _WORKER["net"]  # type: ignore[assignment]
    detector = detector if detector is not None else _WORKER["detector"]  # type: ignore[assignment]
    detectors = _Detectors(detector)  # type: ignore[arg-type]
    records: list[_Variant] = []
    skipped: list[str] = []
    for path, split in jobs:
        result = _make_variants(path, root, split, detectors, variants if split == "train" else val_variants, seed)
        if isinstance(result, str):
            skipped.append(result)
        else:
            records.extend(result)
    if not records:
        return _Chunk([np.zeros((0, c, g, g), np.float32) for c, g in zip(DLIB_TAPS.channels, (*LDA_GRIDS, DLIB_TAPS.sizes[-1]))], np.zeros((0, 128), np.float32), np.zeros(0), [], skipped)
    stages, descriptors = pooled_stage_features(net, np.stack([r.chip for r in records]))  # type: ignore[arg-type]
    fr = perceptual_scores(np.stack([r.reference for r in records]), np.stack([r.degraded_fixed for r in records]))
    perceptual = np.where([r.pristine for r in records], 1.0, fr.combined)
    meta = [(r.person, r.key, r.split, r.spec, r.pristine, r.detected, r.eye_distance) for r in records]
    return _Chunk(stages, descriptors, perceptual, meta, skipped)


def build_face_trainset(
    images_dir: str | os.PathLike[str],
    *,
    pairs_path: str | os.PathLike[str] | None,
    val_folds: Sequence[int] = (6, 7),
    variants: int = 5,
    val_variants: int = 3,
    seed: int = 0,
    limit_people: int | None = None,
    net: DlibResNet | None = None,
    detector: FaceDetector | None = None,
    workers: int = 0,
    device: str = "cpu",
    chunk_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> FaceTrainSet:
    """Build the face training set (see the module docstring).

    Args:
        images_dir: LFW-layout folder ``<Name>/<photo>``.
        pairs_path: verification pairs; people of ``val_folds`` form the validation split.
        variants, val_variants: versions per photo (the first is pristine) in each split.
        seed: base seed of every random choice.
        limit_people: use only the first N people of each split (quick runs and tests).
        net, detector: the recognizer network (frozen backbone) and the face detector used
            in this process (``workers`` = 0); loaded when not given.
        workers: processes that build chunks of photos in parallel (each with one torch
            thread); 0 works in this process. The result does not depend on it.
        device: torch device of the worker processes.
        chunk_size: photos per chunk.
        progress: called with (photos done, photos in all).
    """
    root = Path(images_dir)
    splits = split_people(root, Path(pairs_path) if pairs_path else None, val_folds)
    if limit_people is not None:
        for name, photos in splits.items():
            keep = sorted({p.parent.name for p in photos})[:limit_people]
            splits[name] = [p for p in photos if p.parent.name in keep]
    jobs = [(p, "train") for p in splits["train"]] + [(p, "val") for p in splits["val"]]
    chunks = [jobs[i : i + chunk_size] for i in range(0, len(jobs), chunk_size)]
    results: list[_Chunk] = []
    done = 0
    if workers > 0:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(device, 1)) as pool:
            futures = [pool.submit(_process_chunk, c, root, variants, val_variants, seed) for c in chunks]
            for chunk, fut in zip(chunks, futures):
                results.append(fut.result())
                done += len(chunk)
                if progress is not None:
                    progress(done, len(jobs))
    else:
        if net is None or detector is None:
            from faceiqa.models.dlib_resnet import load_dlib_resnet

            net = net if net is not None else load_dlib_resnet(device=device)
            detector = detector if detector is not None else FaceDetector(device=device)
        # One torch thread, as in the workers: thread counts change float rounding (and so
        # MTCNN's landmarks a little), and the set must not depend on how it was built.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for chunk in chunks:
                results.append(_process_chunk(chunk, root, variants, val_variants, seed, net, detector))
                done += len(chunk)
                if progress is not None:
                    progress(done, len(jobs))
        finally:
            torch.set_num_threads(threads)
    meta = [m for r in results for m in r.meta]
    skipped = [s for r in results for s in r.skipped]
    if not meta:
        raise InvalidArgumentError(f"no usable photos in {root}")
    stages = [np.concatenate([r.stages[i] for r in results]) for i in range(len(DLIB_TAPS.channels))]
    descriptors = np.concatenate([r.descriptors for r in results])
    perceptual = np.concatenate([r.perceptual for r in results])
    person, key, split, spec = (np.array([m[i] for m in meta]) for i in range(4))
    pristine = np.array([m[4] for m in meta])
    detected = np.array([m[5] for m in meta])
    eye_distance = np.array([m[6] for m in meta])

    train_pristine = pristine & (split == "train")
    calibration = _calibrate(descriptors[train_pristine], person[train_pristine], seed)
    distance = _reference_distances(descriptors, person, key, pristine)
    utility = calibration(np.nan_to_num(distance, nan=np.inf))
    utility[~detected] = 0.0
    extra = np.array([[log2_resolution(e, DLIB_150)] for e in eye_distance], dtype=np.float32)
    info = {"skipped": len(skipped), "photos": len(jobs), "variants": variants, "val_variants": val_variants, "seed": seed}
    if skipped:
        log.info("skipped %d photos (first: %s)", len(skipped), skipped[0])
    data = FaceTrainSet(
        stages=stages,
        extra=extra,
        utility=utility,
        perceptual=perceptual,
        label=blend(utility, perceptual),
        distance=distance,
        detected=detected,
        person=person,
        key=key,
        spec=spec,
        split=split,
        calibration=calibration,
        info=info,
    )
    # A photo whose person has no other usable pristine photo has no utility reference.
    return data.subset(np.isfinite(distance))


def _calibrate(descriptors: np.ndarray, person: np.ndarray, seed: int, n_impostor: int = 200_000) -> UtilityCalibration:
    """Utility calibration from pristine training descriptors (genuine: all same-person pairs)."""
    genuine = []
    for name in np.unique(person):
        d = descriptors[person == name]
        if len(d) > 1:
            dist = np.linalg.norm(d[:, None] - d[None], axis=2)
            genuine.append(dist[np.triu_indices(len(d), 1)])
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(descriptors), n_impostor)
    j = rng.integers(0, len(descriptors), n_impostor)
    keep = person[i] != person[j]
    impostor = np.linalg.norm(descriptors[i[keep]] - descriptors[j[keep]], axis=1)
    return calibrate_utility(np.concatenate(genuine), impostor)


def _reference_distances(descriptors: np.ndarray, person: np.ndarray, key: np.ndarray, pristine: np.ndarray) -> np.ndarray:
    """Mean distance of every variant to the pristine descriptors of the person's other photos."""
    out = np.full(len(descriptors), math.nan)
    for name in np.unique(person):
        rows = np.flatnonzero(person == name)
        refs = rows[pristine[rows]]
        for r in rows:
            others = refs[key[refs] != key[r]]
            if len(others):
                out[r] = np.linalg.norm(descriptors[others] - descriptors[r][None], axis=1).mean()
    return out
