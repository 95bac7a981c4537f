"""The Python API: find every face in a photo, align it, score it, decide.

>>> from faceiqa import FaceQualityAssessor
>>> assessor = FaceQualityAssessor()                # the default model, CPU or CUDA
>>> faces = assessor.assess("photo.jpg")            # list[FaceQuality], largest face first
>>> for result in assessor.assess_many(paths):      # streaming, crops batched across photos
...     print(result.source, [f.score for f in result.faces])

Scores are in [0, 1], higher is better; ``raw_score`` is the model's native output.
Nothing here prints; problems with single images in a batch are reported in the results
(``ImageAssessment.error``), never raised, so one bad file cannot stop a run.
"""

from __future__ import annotations

import functools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from faceiqa._util import check_int, one_line, pick_device
from faceiqa.errors import FaceIQAError, ImageReadError, InvalidArgumentError
from faceiqa.face.alignment import AlignmentTemplate, align_face, get_template
from faceiqa.face.detection import (
    DEFAULT_MAX_SIDE,
    DEFAULT_MIN_PROB,
    SMALL_FACE_EYE_DISTANCE,
    DetectedFace,
    FaceDetector,
    torch_threads,
)
from faceiqa.images import DEFAULT_MAX_PIXELS, expand_inputs, to_rgb
from faceiqa.models import QualityScorer, Scores, load_scorer
from faceiqa.models.features import FACE_FEATURES
from faceiqa.output.decisions import Decision, Policy, check_policy, check_threshold, decide
from faceiqa.results import FaceQuality, FilterResult, ImageAssessment

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

@dataclass
class _Pending:
    source: str
    faces: list[DetectedFace]
    crops: list[np.ndarray]
    error: str = ""
    scores: Scores | None = None


@dataclass(frozen=True)
class ThreadPlan:
    """How many threads each stage uses (None: torch's own setting)."""

    detect_workers: int
    mtcnn_threads: int | None
    score_threads: int | None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_plan(threads: str = "auto", cpus: int | None = None) -> ThreadPlan:
    """The thread plan for ``threads`` (see :class:`FaceQualityAssessor`) on ``cpus`` CPUs.

    Raises:
        InvalidArgumentError: not ``"auto"`` or ``"exact"``.
    """
    if threads == "exact":
        return ThreadPlan(0, None, None)
    if threads != "auto":
        raise InvalidArgumentError(f"threads must be 'auto' or 'exact', got {threads!r}")
    n = usable_cpus() if cpus is None else cpus
    # Single-threaded stages never spin-wait for each other's cores; detection (about 2/3 of
    # the work) gets a worker per CPU, which measured fastest quiet and under load.
    return ThreadPlan(n if n >= 2 else 0, 1, 1)


def _as_path_list(paths: Any) -> list[Any]:
    """A single path (str or path-like) as a one-item list; any other iterable as a list."""
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    return list(paths)


def ordered_prefetch(
    items: Iterable[T], fn: Callable[[T], R], *, workers: int, depth: int, name: str = "faceiqa-read"
) -> Iterator[R]:
    """``map(fn, items)`` computed ahead by ``workers`` threads, yielded in input order.

    At most ``depth`` results are in flight, so memory stays bounded on endless inputs.
    With ``workers`` = 0 it is a plain lazy map. ``items`` is iterated in the consumer's thread.
    """
    if workers <= 0:
        yield from map(fn, items)
        return
    queue: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        for item in items:
            queue.append(pool.submit(fn, item))
            if len(queue) >= depth:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()


class FaceQualityAssessor:
    """Detects, aligns and scores faces.

    Args:
        weights: ``"default"``, a registry name (``faceiqa weights list``) or a checkpoint path.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available.
        batch_size: face crops per forward pass of the quality model.
        scorer: a ready :class:`QualityScorer` (then ``weights`` is ignored).
        detector: a ready :class:`FaceDetector` (then the detector options are ignored).
        min_face_size: smallest face the detector looks for, in pixels of the image it
            runs on (after downscaling to ``max_side``).
        min_det_prob: detections below this probability in [0, 1] are dropped.
        max_side: detect on a copy whose longest side is at most this many pixels
            (None: full resolution); crops are always cut from the original pixels.
        small_face: faces whose inter-eye distance (original pixels) is below this are
            flagged ``small_face`` (they are still scored).
        flip: average each crop's score with its mirror image's (twice the compute).
        max_pixels: images with more pixels are refused (decompression-bomb guard).
        read_workers: threads that read and decode images ahead of detection.
        threads: the thread plan. ``"auto"`` (default): one torch thread per stage and as
            many detection workers as CPUs this process may use (``os.sched_getaffinity``),
            no OpenMP teams that spin while another stage needs the core; it holds up when
            other programs load the machine (benchmarks/RESULTS.md). ``"exact"``: detection in
            the calling thread and torch's own thread count for every stage, the setting the
            golden files and reference scores were made with; "auto" differs from it by float
            rounding only (below 1e-3 in the scores). The three options below override the plan.
        detect_workers: threads that detect and align faces ahead of scoring in
            :meth:`assess_many` (0: detection runs in the calling thread between scoring
            batches; None: from ``threads``). Each runs MTCNN with ``mtcnn_threads`` torch
            threads, so detection of the next photos overlaps scoring of the previous ones.
            Results do not depend on it (nor on ``read_workers``): crops are batched in input
            order either way.
        mtcnn_threads: torch intra-op threads while MTCNN runs on the CPU (None: from
            ``threads``); ignored when ``detector`` is given.
        score_threads: torch intra-op threads while the quality model runs on the CPU
            (None: from ``threads``). Thread counts change results by float rounding only.
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` (CUDA) or ``"auto"`` for the quality
            model (see :mod:`faceiqa.models.scorer`); None keeps the scorer's setting (fp32
            for one loaded here). Only fp32 gives the reference scores bit for bit.
        channels_last: run the quality model in channels-last layout (None: keep the
            scorer's setting, off for one loaded here).
        compile: ``torch.compile`` the quality model (None: keep the scorer's setting, off
            for one loaded here); falls back to eager when unavailable.

    Raises:
        InvalidArgumentError: a bad option value or an unusable ``device``.
        WeightsError: the weights cannot be found, verified or loaded.
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] = "default",
        device: str | torch.device | None = None,
        batch_size: int = 32,
        *,
        scorer: QualityScorer | None = None,
        detector: FaceDetector | None = None,
        min_face_size: int = 20,
        min_det_prob: float = DEFAULT_MIN_PROB,
        max_side: int | None = DEFAULT_MAX_SIDE,
        small_face: float = SMALL_FACE_EYE_DISTANCE,
        flip: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        read_workers: int = 1,
        threads: str = "auto",
        detect_workers: int | None = None,
        mtcnn_threads: int | None = None,
        score_threads: int | None = None,
        precision: str | None = None,
        channels_last: bool | None = None,
        compile: bool | None = None,
    ) -> None:
        check_int(batch_size, "batch_size", 1)
        check_int(read_workers, "read_workers", 0)
        plan = thread_plan(threads)
        detect_workers = plan.detect_workers if detect_workers is None else check_int(detect_workers, "detect_workers", 0)
        mtcnn_threads = plan.mtcnn_threads if mtcnn_threads is None else mtcnn_threads
        score_threads = plan.score_threads if score_threads is None else check_int(score_threads, "score_threads", 1)
        if not isinstance(small_face, (int, float)) or not small_face >= 0:
            raise InvalidArgumentError(f"small_face must be a number >= 0, got {small_face!r}")
        if scorer is None:
            device = pick_device(device)
        self.scorer = scorer if scorer is not None else load_scorer(weights, device, batch_size=batch_size)
        if precision is not None or channels_last is not None or compile is not None:
            self.scorer.configure(precision=precision, channels_last=channels_last, compile=compile)
        self.detector = (
            detector
            if detector is not None
            else FaceDetector(
                device=self.scorer.device,
                min_face_size=min_face_size,
                min_prob=min_det_prob,
                max_side=max_side,
                mtcnn_threads=mtcnn_threads,
            )
        )
        self.template: AlignmentTemplate = get_template(self.scorer.config.template)
        if self.template.size != self.scorer.config.size:
            raise InvalidArgumentError(
                f"{self.scorer.name}: template {self.template.name} makes {self.template.size} px crops, "
                f"the model wants {self.scorer.config.size} px"
            )
        self.batch_size = batch_size
        self.small_face = float(small_face)
        self.flip = bool(flip)
        self.max_pixels = int(max_pixels)
        self.read_workers = int(read_workers)
        self.detect_workers = int(detect_workers)
        self.score_threads = score_threads if self.scorer.device.type == "cpu" else None
        self._extra_names: tuple[str, ...] = tuple(self.scorer.config.extra)
        unknown = [n for n in self._extra_names if n not in FACE_FEATURES]
        if unknown or len(self._extra_names) != self.scorer.extra_inputs:
            raise InvalidArgumentError(
                f"{self.scorer.name} wants per-face inputs {list(self._extra_names)} that faceiqa cannot provide"
            )

    # ------------------------------------------------------------------ plain steps
    def align(self, image: np.ndarray, faces: Sequence[DetectedFace]) -> list[np.ndarray]:
        """Aligned crops (model input size, uint8 RGB) of ``faces`` in ``image``."""
        return [align_face(image, f.landmarks, self.template) for f in faces]

    def face_features(self, eye_distance: Sequence[float]) -> np.ndarray | None:
        """The per-face extra inputs the model takes, (N, k), or None when it takes none.

        Args:
            eye_distance: inter-eye distance of each face in original-image pixels.
        """
        if not self._extra_names:
            return None
        ed = np.asarray(eye_distance, dtype=np.float64).reshape(-1)
        if np.any(~np.isfinite(ed)) or np.any(ed <= 0):
            raise InvalidArgumentError("eye_distance must be positive numbers of pixels")
        return np.array([[FACE_FEATURES[n](float(e), self.template) for n in self._extra_names] for e in ed])

    def score_crops(self, crops: Any, *, eye_distance: Any = None) -> Scores:
        """Score crops that are already aligned to the model's template and input size.

        For pipelines that detect and align faces themselves (use :meth:`align` or
        ``faceiqa.face.alignment.align_face`` with ``self.template``). Models that also take the
        face size (``scorer.config.extra``) need each face's ``eye_distance`` in
        original-image pixels.
        """
        extra = None
        if self._extra_names:
            if eye_distance is None:
                raise InvalidArgumentError(f"{self.scorer.name} needs eye_distance= (original pixels) with the crops")
            extra = self.face_features(eye_distance)
        with torch_threads(self.score_threads):
            return self.scorer.score_crops(crops, flip=self.flip, extra=extra)

    def _build_faces(self, faces: Sequence[DetectedFace], scores: Scores) -> tuple[FaceQuality, ...]:
        return tuple(
            FaceQuality(
                index=i,
                box=f.box,
                landmarks=f.landmarks,
                det_prob=f.prob,
                eye_distance=f.eye_distance,
                score=float(scores.score[i]),
                raw_score=float(scores.raw[i]),
                flags=("small_face",) if f.eye_distance < self.small_face else (),
            )
            for i, f in enumerate(faces)
        )

    # ------------------------------------------------------------------ one image
    def assess(self, image: Any, *, color: str = "rgb") -> list[FaceQuality]:
        """All faces of one image, largest first.

        Args:
            image: a path, a PIL image, an (H, W, 3) uint8 RGB array or a float tensor
                in [0, 1] (see :func:`faceiqa.images.to_rgb`).
            color: ``"bgr"`` for numpy arrays in OpenCV's channel order (``cv2.imread``);
                scored as BGR by mistake, a face gets a different score.

        Raises:
            ImageReadError: the file cannot be read as an image.
            InvalidArgumentError: the array or tensor is not an image.
        """
        rgb = to_rgb(image, max_pixels=self.max_pixels, color=color)
        faces = self.detector.detect(rgb)
        if not faces:
            return []
        scores = self.score_crops(self.align(rgb, faces), eye_distance=[f.eye_distance for f in faces])
        return list(self._build_faces(faces, scores))

    # ------------------------------------------------------------------ many images
    def _read(self, item: tuple[int, Any], color: str = "rgb") -> tuple[str, np.ndarray | None, str]:
        index, image = item
        source = os.fspath(image) if isinstance(image, (str, os.PathLike)) else f"<image {index}>"
        try:
            return source, to_rgb(image, max_pixels=self.max_pixels, color=color), ""
        except (ImageReadError, InvalidArgumentError) as exc:
            return source, None, one_line(exc, limit=10_000)
        except Exception as exc:  # noqa: BLE001 - one odd file must not stop a batch
            log.debug("reading %s failed", source, exc_info=True)
            return source, None, f"cannot read image: {type(exc).__name__}: {one_line(exc, limit=10_000)}"

    def _prepare(self, source: str, rgb: np.ndarray | None, error: str) -> _Pending:
        if rgb is None:
            return _Pending(source, [], [], error)
        try:
            faces = self.detector.detect(rgb)
            return _Pending(source, faces, self.align(rgb, faces))
        except FaceIQAError as exc:
            return _Pending(source, [], [], one_line(exc, limit=10_000))
        except Exception as exc:  # noqa: BLE001 - one odd image must not stop a batch
            log.debug("detection failed on %s", source, exc_info=True)
            return _Pending(source, [], [], f"detection failed: {type(exc).__name__}: {one_line(exc, limit=10_000)}")

    def _prepare_read(self, read: tuple[str, np.ndarray | None, str]) -> _Pending:
        return self._prepare(*read)

    def _score_pending(self, pending: Sequence[_Pending]) -> None:
        todo = [p for p in pending if p.scores is None and p.crops]
        if not todo:
            return
        crops = [c for p in todo for c in p.crops]
        scores = self.score_crops(crops, eye_distance=[f.eye_distance for p in todo for f in p.faces])
        start = 0
        for p in todo:
            n = len(p.crops)
            p.scores = Scores(scores.score[start : start + n], scores.raw[start : start + n], scores.n_crops[start : start + n])
            start += n

    def _finish(self, p: _Pending) -> ImageAssessment:
        if p.error:
            return ImageAssessment(p.source, (), p.error)
        if not p.faces or p.scores is None:
            return ImageAssessment(p.source)
        return ImageAssessment(p.source, self._build_faces(p.faces, p.scores))

    def assess_many(
        self, images: Iterable[Any], *, progress: Callable[[], None] | None = None, color: str = "rgb"
    ) -> Iterator[ImageAssessment]:
        """Assess images one after another, yielding results in input order.

        Images are read ahead by ``read_workers`` threads and face crops of consecutive
        images are scored together in batches of about ``batch_size``. Memory stays
        bounded however many images there are. Unreadable images and per-image failures
        become results with ``error`` set; they never stop the iteration.

        Args:
            progress: called once per image as soon as its faces are found (results are
                yielded a batch later), for a progress bar that moves photo by photo.
            color: ``"bgr"`` for numpy arrays in OpenCV's channel order (see :meth:`assess`).
        """
        if color not in ("rgb", "bgr"):
            raise InvalidArgumentError(f"color must be 'rgb' or 'bgr', got {color!r}")
        pending: deque[_Pending] = deque()
        n_crops = 0  # crops in ``pending`` still waiting for the model
        reads = ordered_prefetch(
            enumerate(images), functools.partial(self._read, color=color), workers=self.read_workers, depth=2 * self.read_workers + 2
        )
        prepared = ordered_prefetch(
            reads, self._prepare_read, workers=self.detect_workers, depth=2 * self.detect_workers + 1, name="faceiqa-detect"
        )
        for p in prepared:
            if progress is not None:
                progress()
            pending.append(p)
            n_crops += len(p.crops)
            if n_crops >= self.batch_size:
                self._score_pending(pending)
                n_crops = 0
            # Everything at the front that needs no (more) scoring is final: errors and
            # photos without a face do not wait for a batch of crops to fill up.
            while pending and (pending[0].scores is not None or not pending[0].crops):
                yield self._finish(pending.popleft())
        self._score_pending(pending)
        while pending:
            yield self._finish(pending.popleft())

    def assess_paths(
        self, paths: Iterable[str | os.PathLike[str]], *, recursive: bool = True, include_hidden: bool = False
    ) -> Iterator[ImageAssessment]:
        """:meth:`assess_many` over files and folders (folders walked recursively, sorted).

        ``paths`` is one path or an iterable of paths.

        Raises:
            InvalidArgumentError: a given path does not exist.
        """
        files = expand_inputs(_as_path_list(paths), recursive=recursive, include_hidden=include_hidden)
        return self.assess_many(files)

    def decisions(
        self,
        images: Iterable[Any],
        min_score: float,
        policy: Policy | str = Policy.BEST,
        *,
        progress: Callable[[], None] | None = None,
    ) -> Iterator[tuple[ImageAssessment, Decision]]:
        """:meth:`assess_many` with each photo's filter decision, streaming, in input order.

        Raises:
            InvalidArgumentError: bad threshold or policy (before any image is processed).
        """
        threshold = check_threshold(min_score)
        policy = check_policy(policy)
        for assessment in self.assess_many(images, progress=progress):
            yield assessment, decide(assessment, threshold, policy)

    def filter(
        self, paths: Iterable[str | os.PathLike[str]], min_score: float, policy: Policy | str = Policy.BEST
    ) -> FilterResult:
        """Split photos into those that meet ``min_score`` under ``policy`` and the rest.

        Args:
            paths: a file or folder, or an iterable of files and/or folders.
            min_score: threshold in [0, 1].
            policy: ``best`` (best face), ``all`` (every face) or ``largest`` (largest face).

        Raises:
            InvalidArgumentError: bad threshold or policy, or a path that does not exist
                (checked before any image is processed).
        """
        threshold = check_threshold(min_score)
        policy = check_policy(policy)
        files = expand_inputs(_as_path_list(paths))
        result = FilterResult()
        for assessment, d in self.decisions(files, threshold, policy):
            result.rows.extend(assessment.rows())
            (result.passed if d.passed else result.failed).append(d)
        return result
