"""Evaluation orchestration: what a quality score is worth.

- :func:`evaluate_mos`: agreement with human labels (SRCC, KRCC, PLCC, RMSE; see
  :mod:`faceiqa.metrics`) from a score CSV and a label CSV.
- :func:`evaluate_edc`: the Error-versus-Discard Characteristic (:mod:`faceiqa.edc`) of
  several quality sources - score CSVs and on-the-fly baselines (:mod:`faceiqa.baselines`) -
  on verification pairs, with comparison scores from the face recogniser; optionally on
  degraded copies of the pair images (:mod:`faceiqa.degrade`).
- :func:`monotonicity`: per degradation kind, the Spearman correlation between severity
  level and score over the levels of each source image (a good score gives -1).
- :func:`degrade_set`: write degraded copies of a folder so that other tools (``faceiqa
  score``) can score exactly the images the EDC uses.

Image keys. An image is identified by its path relative to the image folder, in POSIX form
and without the file extension (``Abel_Pacheco/Abel_Pacheco_0001``). Degraded copies are
written as PNG under the same key and seeded from it, so a copy scored from disk and the
same image degraded on the fly are identical. Score CSV paths are matched to keys by their
trailing path components (:class:`KeyIndex`), so absolute, relative and ``../`` paths as
well as bare file names all match.

Score CSVs: faceiqa report CSVs (``path, face, score, ..., status``; one row per face; the
face with the highest ``det_prob``, else the lowest ``face`` number, with a finite score is
used) or any CSV with a path column and a score column. Rows without a finite score are
images where scoring failed (no face, unreadable...).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy import stats

from faceiqa import baselines as _baselines
from faceiqa import degrade as _degrade
from faceiqa.edc import DEFAULT_FMRS, DEFAULT_PAUC_LIMIT, EDCCurve, edc_curve, edc_table, operating_point, pair_quality
from faceiqa.errors import FaceIQAError, ImageReadError, InvalidArgumentError
from faceiqa.metrics import AgreementResult, agreement
from faceiqa.verification import Pair

log = logging.getLogger("faceiqa.evaluate")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
PATH_COLUMNS = ("path", "image", "image_name", "file", "filename", "name")
PROB_COLUMNS = ("det_prob", "prob", "detection_prob")
MANIFEST_NAME = "faceiqa-degrade.json"


# ---------------------------------------------------------------------------------------
# the interfaces this module needs from detection and recognition


class DetectedFaceLike(Protocol):
    box: Sequence[float]
    prob: float
    landmarks: np.ndarray


class DetectorLike(Protocol):
    def detect(self, image: np.ndarray) -> list[DetectedFaceLike]: ...


class RecognizerLike(Protocol):
    def align(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray: ...

    def embed(self, chips: np.ndarray) -> np.ndarray: ...


class ScoresLike(Protocol):
    score: np.ndarray


class QualityScorerLike(Protocol):
    template: Any

    def score_crops(self, crops: np.ndarray) -> ScoresLike: ...


def load_detector(device: str | None = None) -> DetectorLike:
    """The real face detector (``faceiqa.detection.FaceDetector``).

    Raises:
        FaceIQAError: the module is not available.
    """
    try:
        from faceiqa.detection import FaceDetector
    except ImportError as exc:
        raise FaceIQAError(
            f"this command needs faceiqa.detection.FaceDetector, which is not available ({exc})"
        ) from None
    try:
        return FaceDetector(device=device)
    except TypeError:  # a detector without a device argument
        return FaceDetector()


def load_models(device: str | None = None) -> tuple[DetectorLike, RecognizerLike]:
    """The real face detector and recogniser (``faceiqa.detection``, ``faceiqa.recognition``).

    Raises:
        FaceIQAError: a module is not available.
    """
    detector = load_detector(device)
    try:
        from faceiqa.recognition import load_recognizer
    except ImportError as exc:
        raise FaceIQAError(
            f"this command needs faceiqa.recognition.load_recognizer, which is not available ({exc})"
        ) from None
    return detector, load_recognizer(device=device)


def load_quality_scorer(weights: str = "default", device: str | None = None) -> QualityScorerLike:
    """The quality scorer of ``faceiqa.models.load_scorer``.

    Raises:
        FaceIQAError: the module is not available (or the weights cannot be loaded).
    """
    try:
        from faceiqa.models import load_scorer
    except ImportError as exc:
        raise FaceIQAError(
            f"this command needs faceiqa.models.load_scorer, which is not available ({exc}); "
            "call faceiqa.evaluate.monotonicity() with your own scoring function instead"
        ) from None
    return load_scorer(weights, device)


# ---------------------------------------------------------------------------------------
# keys and paths


def image_key(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """The key of an image: POSIX path relative to ``root`` (when inside it), no extension."""
    p = Path(path)
    if root is not None:
        try:
            p = p.resolve().relative_to(Path(root).resolve())
        except ValueError:
            pass
    return _norm_key(str(p))


def _norm_key(text: str) -> str:
    text = str(text).strip().replace("\\", "/")
    absolute = text.startswith("/")
    parts = [s for s in PurePosixPath(text).parts if s not in ("", ".", "/")]
    if not parts:
        return ""
    stem, ext = os.path.splitext(parts[-1])
    if ext.lower() in IMAGE_EXTENSIONS:
        parts[-1] = stem
    return ("/" if absolute else "") + "/".join(parts)


class KeyIndex:
    """Find which of a set of path-like keys refers to a given image key.

    A candidate matches when one of the two is a trailing part of the other, whole path
    components compared (``/data/A/A_0001`` matches ``A/A_0001`` and ``A_0001``; ``B/A_0001``
    does not match ``A/A_0001``). When several match, the longest wins if it is unique;
    otherwise the key is ambiguous and nothing is returned.
    """

    def __init__(self, keys: Iterable[str]):
        self._by_name: dict[str, list[str]] = {}
        for k in keys:
            self._by_name.setdefault(k.rsplit("/", 1)[-1], []).append(k)

    def find(self, key: str) -> str | None:
        cands = self._by_name.get(key.rsplit("/", 1)[-1], [])
        exact = [c for c in cands if c == key or c.endswith("/" + key) or key.endswith("/" + c)]
        if len(exact) == 1:
            return exact[0]
        if len(exact) > 1:
            # Longest shared suffix wins when it is unique.
            best = max(len(c) for c in exact)
            longest = [c for c in exact if len(c) == best]
            return longest[0] if len(longest) == 1 else None
        return None


def resolve_image_path(path: str | os.PathLike) -> Path:
    """``path`` if it exists, else the same stem with another image extension.

    Lets ``pairs.txt`` (which names .jpg files) point into a folder of PNG copies.

    Raises:
        ImageReadError: no such image.
    """
    p = Path(path)
    if p.is_file():
        return p
    for ext in IMAGE_EXTENSIONS:
        alt = p.with_suffix(ext)
        if alt.is_file():
            return alt
    raise ImageReadError(f"image not found: {p}")


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB with :func:`faceiqa.io.read_image` (the reader
    ``faceiqa score`` uses, so both see the same pixels).

    Raises:
        ImageReadError: missing, unreadable or oversized file.
    """
    from faceiqa.io import read_image

    return read_image(path)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive, hidden files skipped), in a stable order."""
    from faceiqa.io import list_images as _list

    return _list(folder)


def pair_image_keys(pairs: Sequence[Pair]) -> list[tuple[str, str]]:
    """(key1, key2) of each pair in the LFW layout ``<Name>/<Name>_<NNNN>``."""
    out = []
    for p in pairs:
        a, b = p.paths(Path("."))
        out.append((_norm_key(str(a)), _norm_key(str(b))))
    return out


# ---------------------------------------------------------------------------------------
# score and label CSVs


@dataclass(frozen=True)
class QualitySource:
    """Per-image quality values read from a CSV.

    Attributes:
        name: display name (the file stem by default).
        values: image key (as written in the CSV, normalised) -> quality.
        failed: image keys listed in the CSV without a finite score -> status text.
        n_rows: data rows read.
    """

    name: str
    values: dict[str, float]
    failed: dict[str, str]
    n_rows: int

    def index(self) -> KeyIndex:
        return KeyIndex(list(self.values) + list(self.failed))


def _read_csv(path: str | os.PathLike) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise InvalidArgumentError(f"no such CSV file: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read CSV {path}: {str(exc).splitlines()[0]}") from None


def _path_column(df: pd.DataFrame, path: str | os.PathLike, wanted: str | None = None) -> str:
    if wanted:
        if wanted not in df.columns:
            raise InvalidArgumentError(f"{path}: no column {wanted!r} (columns: {', '.join(map(str, df.columns))})")
        return wanted
    for c in PATH_COLUMNS:
        if c in df.columns:
            return c
    raise InvalidArgumentError(f"{path}: no image path column (expected one of: {', '.join(PATH_COLUMNS)})")


def read_quality_csv(
    path: str | os.PathLike, *, score_column: str = "score", path_column: str | None = None, name: str | None = None
) -> QualitySource:
    """Read per-image quality from a faceiqa report CSV or a simple ``path,score`` CSV.

    Raises:
        InvalidArgumentError: unreadable file, missing columns, or no row with a finite score.
    """
    df = _read_csv(path)
    pcol = _path_column(df, path, path_column)
    if score_column not in df.columns:
        raise InvalidArgumentError(
            f"{path}: no score column {score_column!r} (columns: {', '.join(map(str, df.columns))})"
        )
    scores = pd.to_numeric(df[score_column], errors="coerce").to_numpy(dtype=np.float64)
    keys = [_norm_key(p) for p in df[pcol].astype(str)]
    prob_col = next((c for c in PROB_COLUMNS if c in df.columns), None)
    probs = pd.to_numeric(df[prob_col], errors="coerce").to_numpy(np.float64) if prob_col else None
    faces = pd.to_numeric(df["face"], errors="coerce").to_numpy(np.float64) if "face" in df.columns else None
    status = df["status"].astype(str).to_numpy() if "status" in df.columns else None

    best: dict[str, tuple[tuple[float, float, int], float]] = {}
    failed: dict[str, str] = {}
    for i, key in enumerate(keys):
        if not key:
            continue
        if not np.isfinite(scores[i]):
            text = str(status[i]) if status is not None else ""
            failed.setdefault(key, text if text and text != "nan" else "no score")
            continue
        # Rank faces: highest detection probability, then lowest face number, then row order.
        prob = probs[i] if probs is not None and np.isfinite(probs[i]) else -np.inf
        face = faces[i] if faces is not None and np.isfinite(faces[i]) else float(i)
        rank = (-prob, face, i)
        if key not in best or rank < best[key][0]:
            best[key] = (rank, float(scores[i]))
    values = {k: v for k, (_, v) in best.items()}
    for k in values:
        failed.pop(k, None)
    if not values:
        raise InvalidArgumentError(f"{path}: no row has a finite {score_column!r}")
    return QualitySource(name or Path(path).stem, values, failed, int(len(df)))


def read_labels_csv(
    path: str | os.PathLike, *, label_column: str = "mos", path_column: str | None = None
) -> dict[str, float]:
    """Read ``key -> label`` from a CSV with a path-like column and a label column.

    Raises:
        InvalidArgumentError: unreadable file, missing columns, duplicate or non-numeric labels.
    """
    df = _read_csv(path)
    pcol = _path_column(df, path, path_column)
    if label_column not in df.columns:
        raise InvalidArgumentError(
            f"{path}: no label column {label_column!r} (columns: {', '.join(map(str, df.columns))})"
        )
    labels = pd.to_numeric(df[label_column], errors="coerce").to_numpy(np.float64)
    out: dict[str, float] = {}
    for p, y in zip(df[pcol].astype(str), labels, strict=True):
        key = _norm_key(p)
        if not np.isfinite(y):
            raise InvalidArgumentError(f"{path}: label {label_column!r} of {p!r} is not a number")
        if key in out:
            raise InvalidArgumentError(f"{path}: image {p!r} is labelled twice")
        out[key] = float(y)
    if not out:
        raise InvalidArgumentError(f"{path}: no labelled rows")
    return out


@dataclass(frozen=True)
class MOSEvaluation:
    """Agreement of a score CSV with a label CSV.

    Attributes:
        agreement: the metrics and intervals.
        n_labels: labelled images.
        n_matched: labelled images with a finite score (used).
        n_failed: labelled images whose scoring failed (excluded).
        n_unmatched: labelled images absent from the score CSV (excluded).
    """

    agreement: AgreementResult
    n_labels: int
    n_matched: int
    n_failed: int
    n_unmatched: int

    def to_dict(self) -> dict:
        d = self.agreement.to_dict()
        d.update(n_labels=self.n_labels, n_matched=self.n_matched, n_failed=self.n_failed, n_unmatched=self.n_unmatched)
        return d


def evaluate_mos(
    scores_csv: str | os.PathLike,
    labels_csv: str | os.PathLike,
    *,
    score_column: str = "score",
    label_column: str = "mos",
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MOSEvaluation:
    """Join scores and labels on the image path (or file name) and compute the agreement.

    Raises:
        InvalidArgumentError: bad CSVs, or fewer than 3 matched images.
    """
    source = read_quality_csv(scores_csv, score_column=score_column)
    labels = read_labels_csv(labels_csv, label_column=label_column)
    index = source.index()
    xs, ys = [], []
    n_failed = n_unmatched = 0
    for key, y in labels.items():
        match = index.find(key)
        if match is None:
            n_unmatched += 1
        elif match in source.values:
            xs.append(source.values[match])
            ys.append(y)
        else:
            n_failed += 1
    if len(xs) < 3:
        raise InvalidArgumentError(
            f"only {len(xs)} labelled images have a score ({n_unmatched} not in {Path(scores_csv).name}, "
            f"{n_failed} failed); check that both CSVs name the same images"
        )
    if n_unmatched or n_failed:
        log.warning("%d labelled images not in the score CSV, %d without a score: excluded", n_unmatched, n_failed)
    result = agreement(np.array(xs), np.array(ys), n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
    return MOSEvaluation(result, len(labels), len(xs), n_failed, n_unmatched)


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
        kinds = _degrade.list_kinds()
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
        pairs: verification pairs (``faceiqa.verification.read_pairs``).
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
        baselines: names from :data:`faceiqa.baselines.BASELINES` computed per image on the
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
        table: one row per source (:func:`faceiqa.edc.edc_table` plus counts).
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
    """

    kind: str
    n_images: int
    mean_srcc: float
    std_srcc: float
    n_constant: int


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
        kinds: degradation kinds (default: all of :data:`faceiqa.degrade.KINDS`).
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
    from faceiqa.alignment import align_face, get_template

    from faceiqa.pipeline import FACE_FEATURES

    extra_names = tuple(getattr(scorer, "extra_names", ()))
    if getattr(scorer, "extra_inputs", 0) and (
        len(extra_names) != scorer.extra_inputs or any(n not in FACE_FEATURES for n in extra_names)
    ):
        raise FaceIQAError(f"this quality model takes extra inputs {list(extra_names)} that faceiqa cannot compute")
    tpl = scorer.template if not isinstance(scorer.template, str) else get_template(scorer.template)
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
    """

    mode: str
    factors: tuple[float, ...]
    n_faces: int
    mean_srcc: float
    in_order: float
    n_lost: int
    mean_scores: tuple[float, ...]
    step_order: tuple[float, ...] = ()


def _box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def resolution_ranking(
    image_paths: Sequence[str | os.PathLike],
    assessor,
    *,
    factors: Sequence[float] = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
    mode: str = "down-up",
    face_rule: str = "prob",
) -> ResolutionRanking:
    """Score each photo's face at several real resolutions through the whole pipeline.

    Args:
        image_paths: photos (one face each is studied: the one ``face_rule`` picks).
        assessor: a :class:`faceiqa.pipeline.FaceQualityAssessor` (detector + model).
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
        for f in fs:
            small = image if f == 1 else cv2.resize(image, (max(8, round(w / f)), max(8, round(h / f))), interpolation=cv2.INTER_AREA)
            if mode == "down-up" and f != 1:
                small = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
            sx, sy = small.shape[1] / w, small.shape[0] / h
            expected = ((face.box[0] + 0.5) * sx - 0.5, (face.box[1] + 0.5) * sy - 0.5, (face.box[2] + 0.5) * sx - 0.5, (face.box[3] + 0.5) * sy - 0.5)
            found = [c for c in assessor.detector.detect(small) if _box_iou(c.box, expected) >= 0.3]
            if not found:
                row.append(-np.inf)
                continue
            best = max(found, key=lambda c: _box_iou(c.box, expected))
            crop = assessor.align(small, [best])
            row.append(float(assessor.score_crops(crop, eye_distance=[best.eye_distance]).score[0]))
        lost += int(any(np.isinf(v) for v in row))
        table.append(row)
    if not table:
        raise InvalidArgumentError("no face found in any of the photos")
    arr = np.array(table)
    ranked = np.where(np.isinf(arr), -1.0, arr)  # lost faces rank below every score
    rhos = [float(stats.spearmanr(fs, r).statistic) for r in ranked if np.ptp(r) > 0]
    falls = np.diff(ranked, axis=1) < 0
    in_order = float(np.mean(np.all(falls, axis=1)))
    means = tuple(float(np.mean(col[np.isfinite(col)])) if np.isfinite(col).any() else float("nan") for col in arr.T)
    steps = tuple(float(v) for v in falls.mean(axis=0))
    return ResolutionRanking(mode, tuple(fs), len(table), float(np.mean(rhos)) if rhos else float("nan"), in_order, lost, means, steps)


def monotonicity_table(rows: Sequence[MonotonicityRow]) -> pd.DataFrame:
    """The rows as a DataFrame (one row per kind)."""
    return pd.DataFrame([r.__dict__ for r in rows])


# ---------------------------------------------------------------------------------------
# degraded copies on disk


@dataclass(frozen=True)
class DegradeSetResult:
    """Outcome of :func:`degrade_set`.

    Attributes:
        written: files written.
        skipped: outputs that already existed (left untouched).
        failed: inputs that could not be read (key -> message).
        out_dir: the output folder.
    """

    written: int
    skipped: int
    failed: dict[str, str]
    out_dir: Path


def _check_manifest(out_dir: Path, plan: DegradePlan) -> None:
    manifest = out_dir / MANIFEST_NAME
    wanted = {"format": 1, "degrade": plan.spec, "fraction": plan.fraction, "seed": plan.seed}
    if manifest.exists():
        try:
            found = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidArgumentError(f"{manifest} is unreadable: {exc}") from None
        if any(found.get(k) != v for k, v in wanted.items()):
            raise InvalidArgumentError(
                f"{out_dir} holds copies made with degrade={found.get('degrade')!r} fraction={found.get('fraction')!r} "
                f"seed={found.get('seed')!r}; use another folder for degrade={plan.spec!r} fraction={plan.fraction:g} "
                f"seed={plan.seed}"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(wanted, indent=2) + "\n")


def degrade_set(
    images_dir: str | os.PathLike,
    spec: str,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    fraction: float = 1.0,
    keys: Iterable[str] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> DegradeSetResult:
    """Write PNG copies ``out_dir/<key>.png`` exactly as :func:`compute_pair_distances` sees the
    images with the same spec, fraction and seed (images left pristine by ``fraction`` are
    copied unchanged, so the folder is complete). Never overwrites a file.

    Args:
        images_dir: source folder.
        spec: ``"kind:level,..."``.
        out_dir: destination; must not be (inside) ``images_dir``. A small manifest records the
            spec, fraction and seed, and a folder made with other settings is refused.
        seed: base seed.
        fraction: share of images degraded, in (0, 1].
        keys: only these image keys (e.g. the images of a pairs file); default every image.
        progress: optional iterable wrapper.

    Raises:
        InvalidArgumentError: bad spec, bad folders, or a folder made with other settings.
    """
    from PIL import Image

    plan = DegradePlan.parse(spec, fraction, seed)
    if not plan.active:
        raise InvalidArgumentError("empty degradation spec")
    src, dst = Path(images_dir).resolve(), Path(out_dir).resolve()
    if not src.is_dir():
        raise InvalidArgumentError(f"not a folder: {images_dir}")
    if dst == src or src in dst.parents:
        raise InvalidArgumentError("the output folder must not be the image folder or inside it")
    failed: dict[str, str] = {}
    if keys is None:
        items = [(image_key(p, src), p) for p in list_images(src)]
    else:
        items = []
        for k in dict.fromkeys(keys):
            try:
                items.append((k, resolve_image_path(src / (k + ".jpg"))))
            except ImageReadError as exc:
                failed[k] = str(exc)
    if not items:
        raise InvalidArgumentError(f"no images found under {images_dir}")
    _check_manifest(dst, plan)
    written = skipped = 0
    for key, path in progress(items) if progress else items:
        target = dst / (key + ".png")
        if target.exists():
            skipped += 1
            continue
        try:
            image = read_rgb(path)
        except ImageReadError as exc:
            failed[key] = str(exc)
            continue
        out = plan.apply(image, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(target, "xb") as fh:
                Image.fromarray(out).save(fh, format="PNG")
        except FileExistsError:
            skipped += 1
            continue
        except OSError:
            target.unlink(missing_ok=True)
            raise
        written += 1
    return DegradeSetResult(written, skipped, failed, dst)


# ---------------------------------------------------------------------------------------
# tables


def format_table(df: pd.DataFrame, *, digits: int = 4) -> str:
    """A GitHub-style markdown table (no extra dependency)."""

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            if math.isnan(v):
                return "nan"
            if v != 0 and (abs(v) < 10 ** (-digits) or abs(v) >= 1e6):
                return f"{v:.{digits - 1}e}"
            return f"{v:.{digits}f}"
        return str(v)

    header = [str(c) for c in df.columns]
    body = [[cell(v) for v in row] for row in df.itertuples(index=False)]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body]
    return "\n".join(lines)


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` as markdown (``.md``) or CSV (anything else)."""
    out = Path(path)
    if out.suffix.lower() in (".md", ".markdown"):
        out.write_text(format_table(df) + "\n")
    else:
        df.to_csv(out, index=False)
    return out
