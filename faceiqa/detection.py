"""Face detection with facenet-pytorch's MTCNN: boxes, probabilities and 5 landmarks.

Only ``MTCNN.detect(..., landmarks=True)`` is called (its batched ``forward()`` crashes when
some images of a batch have faces and others do not). Its ``None`` / ``[None]`` / object-array
returns are normalised in one place, :func:`_faces_from_mtcnn`, into plain arrays that become
:class:`DetectedFace` dataclasses, so nothing else ever sees them.

Large photos are detected on a copy shrunk with area averaging so that the longest side is at
most ``max_side``; boxes and landmarks are mapped back to original pixels with the exact
relation between the two pixel grids. Coordinates are continuous pixel positions with pixel
centres at integers (OpenCV's convention, the one :mod:`faceiqa.alignment` uses), and MTCNN's
output is taken to follow it. (A mirror test on 60 LFW photos puts MTCNN's landmarks about
1 px to the right of that convention, a trace of its 1-based MATLAB origin; y could not be
measured that way and nothing is corrected.)

MTCNN's weights (about 2 MB) ship inside the facenet-pytorch wheel: nothing is downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from faceiqa.errors import InvalidArgumentError

log = logging.getLogger("faceiqa.detection")

# Inter-eye distance (original pixels) below which a face is flagged ``small_face``: it is kept
# but its quality score is not trusted. At 20 px, MTCNN's landmark error (1-2 px) is 5-10 % of
# the eye distance, the HyperIQA crop (56 px between the eyes) is upscaled ~2.8x so the score
# mostly judges interpolation, and the ISO/IEC 29794-5 (OFIQ) inter-eye-distance component,
# a sigmoid with x0 = 70 px and w = 20 px, gives 1 / (1 + e^2.5), about 8 out of 100.
SMALL_FACE_EYE_DISTANCE = 20.0

# Detections below this MTCNN probability are dropped (MTCNN's own last stage keeps >= 0.7).
# Measured with the defaults: all 67 detections on the detect-samples photos scored >= 0.976,
# and the 150 main faces of 150 random LFW photos >= 0.993; of 22 further LFW detections the
# two below 0.9 (0.705, 0.73) were an ear/neck and a blur, while half faces cut by the border
# scored about 0.92. A small, informal sample: raise it to drop more partial faces.
DEFAULT_MIN_PROB = 0.9

DEFAULT_MAX_SIDE = 1024


@dataclass(frozen=True, eq=False)
class DetectedFace:
    """One detected face, in pixels of the original image.

    Attributes:
        box: (x1, y1, x2, y2) floats; may extend past the image border, since MTCNN boxes a
            whole face even when it is cut off.
        prob: MTCNN face probability in [0, 1].
        landmarks: (5, 2) float32 read-only array of (x, y): left eye, right eye, nose, left
            mouth corner, right mouth corner (left/right as seen in the image).
    """

    box: tuple[float, float, float, float]
    prob: float
    landmarks: np.ndarray

    def __post_init__(self) -> None:
        try:
            box = tuple(float(v) for v in self.box)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"box must be 4 numbers (x1, y1, x2, y2), got {self.box!r}") from None
        if len(box) != 4 or not np.all(np.isfinite(box)) or box[2] < box[0] or box[3] < box[1]:
            raise InvalidArgumentError(f"box must be 4 finite numbers with x1 <= x2 and y1 <= y2, got {box}")
        prob = float(self.prob)
        if not 0.0 <= prob <= 1.0:
            raise InvalidArgumentError(f"prob must be in [0, 1], got {prob}")
        pts = np.array(self.landmarks, dtype=np.float32)
        if pts.shape != (5, 2) or not np.all(np.isfinite(pts)):
            raise InvalidArgumentError(f"landmarks must be a finite (5, 2) array, got shape {pts.shape}")
        pts.setflags(write=False)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "prob", prob)
        object.__setattr__(self, "landmarks", pts)

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return self.width * self.height

    @property
    def eye_distance(self) -> float:
        """Distance between the two eye landmarks in pixels."""
        return float(np.linalg.norm(self.landmarks[1].astype(np.float64) - self.landmarks[0]))

    @property
    def small_face(self) -> bool:
        """True when :attr:`eye_distance` is below :data:`SMALL_FACE_EYE_DISTANCE`."""
        return self.eye_distance < SMALL_FACE_EYE_DISTANCE

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DetectedFace):
            return NotImplemented
        return (
            self.box == other.box
            and self.prob == other.prob
            and bool(np.array_equal(self.landmarks, other.landmarks))
        )

    def __hash__(self) -> int:
        return hash((self.box, self.prob, self.landmarks.tobytes()))

    def __repr__(self) -> str:
        x1, y1, x2, y2 = self.box
        return (
            f"DetectedFace(box=({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}), prob={self.prob:.4f}, "
            f"eye_distance={self.eye_distance:.1f})"
        )


def _sort_key(face: DetectedFace) -> tuple[float, float, float, float]:
    return (-face.area, -face.prob, face.box[0], face.box[1])


def _check_rgb(image: Any, index: int | None = None) -> np.ndarray:
    where = "image" if index is None else f"images[{index}]"
    if not isinstance(image, np.ndarray):
        raise InvalidArgumentError(
            f"{where} must be an (H, W, 3) uint8 RGB numpy array, got {type(image).__name__} "
            "(faceiqa.io.to_rgb converts paths, PIL images and tensors)"
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidArgumentError(
            f"{where} must be an (H, W, 3) uint8 RGB array, got shape {tuple(image.shape)} dtype {image.dtype}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InvalidArgumentError(f"{where} is empty: shape {tuple(image.shape)}")
    return image


@dataclass(frozen=True)
class _Prepared:
    """An image as MTCNN sees it and the factors from original to detection pixels."""

    pixels: np.ndarray
    sx: float
    sy: float


# One image's raw detections in detection-image pixels: boxes (k, 4), probs (k,), points (k, 5, 2).
_Raw = tuple[np.ndarray, np.ndarray, np.ndarray]


def _empty_raw() -> _Raw:
    return np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2))


def _faces_from_mtcnn(boxes: Any, probs: Any, points: Any, count: int) -> list[_Raw]:
    """Turn ``MTCNN.detect`` output for a batch of ``count`` images into plain float arrays.

    facenet-pytorch returns, per image, ``None`` (boxes, points) and ``[None]`` (probs) when
    there is no face, else arrays; the batch is an object array, or a regular 3-D array when
    every image happens to have the same number of faces.
    """
    if boxes is None or len(boxes) != count:
        raise RuntimeError(f"unexpected MTCNN output: expected {count} entries, got {boxes!r:.80}")
    out: list[_Raw] = []
    for i in range(count):
        b = boxes[i]
        if b is None:
            out.append(_empty_raw())
            continue
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
        p = np.asarray(probs[i], dtype=np.float64).reshape(-1)
        pts = np.asarray(points[i], dtype=np.float64).reshape(-1, 5, 2)
        if not len(b) == len(p) == len(pts):
            raise RuntimeError(f"unexpected MTCNN output: {len(b)} boxes, {len(p)} probs, {len(pts)} landmark sets")
        out.append((b, p, pts))
    return out


class FaceDetector:
    """Detect faces with MTCNN.

    Args:
        device: torch device for MTCNN ("cpu", "cuda", "cuda:1", a ``torch.device``); None
            picks CUDA when available, else the CPU.
        min_face_size: smallest face searched, in pixels of the image MTCNN sees, i.e. after
            the downscale to ``max_side`` (in original pixels it is ``min_face_size / scale``).
            At least 12 (MTCNN's smallest window). Smaller values cost time.
        thresholds: MTCNN's three stage thresholds (P-Net, R-Net, O-Net), each in (0, 1).
        min_prob: detections with a lower final probability are dropped, in [0, 1]; default
            :data:`DEFAULT_MIN_PROB`.
        max_side: images whose longest side exceeds this many pixels are detected on a copy
            shrunk to it (area averaging); None detects at full resolution. At least 32.

    Results are deterministic for a given input on a given device. Faces are returned largest
    box area first (ties: higher probability, then smaller x1, then smaller y1).
    """

    def __init__(
        self,
        *,
        device: Any = None,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        min_prob: float = DEFAULT_MIN_PROB,
        max_side: int | None = DEFAULT_MAX_SIDE,
    ) -> None:
        import torch
        from facenet_pytorch import MTCNN

        if isinstance(min_face_size, bool) or not isinstance(min_face_size, int) or min_face_size < 12:
            raise InvalidArgumentError(f"min_face_size must be an int >= 12, got {min_face_size!r}")
        try:
            th = tuple(float(t) for t in thresholds)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"thresholds must be 3 numbers in (0, 1), got {thresholds!r}") from None
        if len(th) != 3 or not all(0.0 < t < 1.0 for t in th):
            raise InvalidArgumentError(f"thresholds must be 3 numbers in (0, 1), got {thresholds!r}")
        if isinstance(min_prob, bool) or not isinstance(min_prob, (int, float)) or not 0.0 <= min_prob <= 1.0:
            raise InvalidArgumentError(f"min_prob must be a number in [0, 1], got {min_prob!r}")
        if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 32):
            raise InvalidArgumentError(f"max_side must be None or an int >= 32, got {max_side!r}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise InvalidArgumentError(f"bad device {device!r}: {e}") from None

        self.device = dev
        self.min_face_size = min_face_size
        self.thresholds = th
        self.min_prob = float(min_prob)
        self.max_side = max_side
        try:
            self._mtcnn = MTCNN(
                min_face_size=min_face_size,
                thresholds=list(th),
                keep_all=True,
                post_process=False,
                device=dev,
            ).eval()
        except (RuntimeError, AssertionError) as e:  # e.g. "Torch not compiled with CUDA enabled"
            raise InvalidArgumentError(f"cannot run MTCNN on device {str(dev)!r}: {e}") from None

    def __repr__(self) -> str:
        return (
            f"FaceDetector(device={str(self.device)!r}, min_face_size={self.min_face_size}, "
            f"thresholds={self.thresholds}, min_prob={self.min_prob}, max_side={self.max_side})"
        )

    # ---------------------------------------------------------------------------------------

    def _prepare(self, image: np.ndarray) -> _Prepared:
        h, w = image.shape[:2]
        if self.max_side is None or max(h, w) <= self.max_side:
            return _Prepared(np.ascontiguousarray(image), 1.0, 1.0)
        scale = self.max_side / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        # The effective factors after rounding the size, per axis.
        return _Prepared(small, nw / w, nh / h)

    def _to_faces(self, raw: _Raw, prep: _Prepared) -> list[DetectedFace]:
        boxes, probs, points = raw
        faces = []
        for b, p, pts in zip(boxes, probs, points, strict=True):
            if not p >= self.min_prob:  # also drops NaN
                continue
            if not (np.all(np.isfinite(b)) and np.all(np.isfinite(pts)) and b[2] > b[0] and b[3] > b[1]):
                log.debug("dropping a degenerate MTCNN detection %s", b)
                continue
            # Inverse of cv2.resize's pixel-centre mapping x' = (x + 0.5) * s - 0.5.
            bx = (b[[0, 2]] + 0.5) / prep.sx - 0.5
            by = (b[[1, 3]] + 0.5) / prep.sy - 0.5
            lm = np.empty((5, 2))
            lm[:, 0] = (pts[:, 0] + 0.5) / prep.sx - 0.5
            lm[:, 1] = (pts[:, 1] + 0.5) / prep.sy - 0.5
            faces.append(
                DetectedFace((bx[0], by[0], bx[1], by[1]), float(np.clip(p, 0.0, 1.0)), lm)
            )
        faces.sort(key=_sort_key)
        return faces

    def _run(self, batch: list[np.ndarray]) -> list[_Raw]:
        """MTCNN on equal-size images that are large enough to search."""
        stack = np.stack(batch)  # (N, h, w, 3): detect() then always answers per image
        boxes, probs, points = self._mtcnn.detect(stack, landmarks=True)
        return _faces_from_mtcnn(boxes, probs, points, len(batch))

    # ---------------------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in one (H, W, 3) uint8 RGB image, largest box first; [] when there are none.

        Raises:
            InvalidArgumentError: ``image`` is not an (H, W, 3) uint8 array.
        """
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray], *, batch_size: int = 8) -> list[list[DetectedFace]]:
        """Faces in several images; one list per image, in input order.

        Images that have the same size once prepared (downscaled) are run through MTCNN
        together, ``batch_size`` at a time (memory grows with batch size x pixels).

        Raises:
            InvalidArgumentError: an image is not an (H, W, 3) uint8 array, or bad batch_size.
        """
        if isinstance(images, np.ndarray):
            raise InvalidArgumentError("images must be a sequence of images; use detect() for one image")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be a positive int, got {batch_size!r}")
        checked = [_check_rgb(img, i) for i, img in enumerate(images)]
        prepared = [self._prepare(img) for img in checked]
        results: list[list[DetectedFace]] = [[] for _ in prepared]

        groups: dict[tuple[int, int], list[int]] = {}
        for i, prep in enumerate(prepared):
            h, w = prep.pixels.shape[:2]
            if min(h, w) < self.min_face_size:
                # MTCNN's scale pyramid would be empty and it would crash; nothing to find.
                log.debug("image %d is %dx%d, below min_face_size %d: no faces", i, w, h, self.min_face_size)
                continue
            groups.setdefault((h, w), []).append(i)

        for indices in groups.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                raws = self._run([prepared[i].pixels for i in chunk])
                for i, raw in zip(chunk, raws, strict=True):
                    results[i] = self._to_faces(raw, prepared[i])
        return results


__all__ = [
    "DEFAULT_MAX_SIDE",
    "DEFAULT_MIN_PROB",
    "SMALL_FACE_EYE_DISTANCE",
    "DetectedFace",
    "FaceDetector",
]
