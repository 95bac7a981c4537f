"""Face detection with facenet-pytorch's MTCNN: boxes, probabilities and 5 landmarks.

Only ``MTCNN.detect(..., landmarks=True)`` is called (its batched ``forward()`` crashes when
some images of a batch have faces and others do not). Its ``None`` / ``[None]`` / object-array
returns are normalised in one place, :func:`_faces_from_mtcnn`, into plain arrays that become
:class:`DetectedFace` dataclasses, so nothing else ever sees them.

Large photos are detected on a copy shrunk with area averaging so that the longest side is at
most ``max_side``; boxes and landmarks are mapped back to original pixels with the exact
relation between the two pixel grids. Coordinates are continuous pixel positions with pixel
centres at integers (OpenCV's convention, the one :mod:`faceiqa.face.alignment` uses), and MTCNN's
output is taken to follow it. (A mirror test on 60 LFW photos puts MTCNN's landmarks about
1 px to the right of that convention, a trace of its 1-based MATLAB origin; y could not be
measured that way and nothing is corrected.)

MTCNN's weights (about 2 MB) ship inside the facenet-pytorch wheel: nothing is downloaded.

Speed (CPU). With ``fast=True`` (the default) facenet-pytorch's own ``detect_face`` runs with
copies of R-Net and O-Net whose max-pooling layers go through PyTorch's channels-last kernel
(a maximum has no rounding), several times faster than its NCHW kernel; the results are
``MTCNN.detect``'s bit for bit (tested on generated pictures and real photos). MTCNN runs many small operations, so one torch thread is often faster
than several (``mtcnn_threads``, opt-in: results then differ from the default's by float
rounding, since some of its kernels split work across threads differently).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from faceiqa._util import check_int, pick_device
from faceiqa.errors import InvalidArgumentError
from faceiqa.images import check_rgb

if TYPE_CHECKING:
    import torch

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
    return check_rgb(image, "image" if index is None else f"images[{index}]")


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


# --------------------------------------------------------------------------- faster exact MTCNN


def _channels_last_max_pool(pool: Any) -> Any:
    """``pool`` (a max-pooling layer) run through PyTorch's channels-last kernel.

    For an NCHW-contiguous input that kernel is several times faster than the NCHW one, and a
    maximum involves no rounding, so the values are identical; the output is made
    NCHW-contiguous again, as ``pool`` would return it, so the next layer sees the same tensor.
    """
    import torch

    class ChannelsLastMaxPool(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool = pool

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not x.is_contiguous():
                return self.pool(x)
            return self.pool(x.contiguous(memory_format=torch.channels_last)).contiguous()

    return ChannelsLastMaxPool()


def _with_fast_pools(net: Any) -> Any:
    """A copy of an MTCNN refinement network (R-Net, O-Net) whose max-pooling layers use
    :func:`_channels_last_max_pool`; its own ``forward`` runs unchanged."""
    import copy

    import torch

    fast = copy.deepcopy(net)
    for name, child in list(fast.named_children()):
        if isinstance(child, torch.nn.MaxPool2d):
            setattr(fast, name, _channels_last_max_pool(child))
    return fast


def _faces_from_detect_face(batch_boxes: Any, batch_points: Any, count: int) -> list[_Raw]:
    """facenet-pytorch's ``detect_face`` output (per image: (k, 5) box + probability rows and
    (k, 5, 2) landmarks, as an object array) as plain float arrays."""
    if len(batch_boxes) != count or len(batch_points) != count:
        raise RuntimeError(f"unexpected MTCNN output: expected {count} entries, got {len(batch_boxes)}")
    out: list[_Raw] = []
    for rows, pts in zip(batch_boxes, batch_points):
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 5, 2)
        if len(rows) != len(pts):
            raise RuntimeError(f"unexpected MTCNN output: {len(rows)} boxes, {len(pts)} landmark sets")
        out.append((rows[:, :4], rows[:, 4], pts))
    return out


_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads in the calling thread (None: leave them alone).

    With PyTorch's OpenMP backend the setting is per thread (a thread that sets it does not
    change another running thread's), but it also becomes the start value of threads created
    later, so the previous value is restored afterwards.
    """
    import torch

    if n is None:
        yield
        return
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        if before != n:
            torch.set_num_threads(n)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            if before != n:
                torch.set_num_threads(before)


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
        fast: on the CPU, run facenet-pytorch's ``detect_face`` with R-Net and O-Net pooling
            through the channels-last kernel (the same results as ``MTCNN.detect``, bit for
            bit, about 1.5 times as fast); False calls ``MTCNN.detect`` as it is. Ignored on CUDA.
        mtcnn_threads: torch intra-op threads while MTCNN runs on the CPU; None (default)
            leaves the calling thread's setting. MTCNN is many small operations, and 1 thread
            is often faster than several, above all on a busy machine. Results depend on the
            thread count by float rounding (measured up to 1e-4 px on box and landmark
            coordinates between 1 and 2 threads), so the default keeps torch's own setting.

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
        fast: bool = True,
        mtcnn_threads: int | None = None,
    ) -> None:
        from facenet_pytorch import MTCNN

        check_int(min_face_size, "min_face_size", 12)
        try:
            th = tuple(float(t) for t in thresholds)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"thresholds must be 3 numbers in (0, 1), got {thresholds!r}") from None
        if len(th) != 3 or not all(0.0 < t < 1.0 for t in th):
            raise InvalidArgumentError(f"thresholds must be 3 numbers in (0, 1), got {thresholds!r}")
        if isinstance(min_prob, bool) or not isinstance(min_prob, (int, float)) or not 0.0 <= min_prob <= 1.0:
            raise InvalidArgumentError(f"min_prob must be a number in [0, 1], got {min_prob!r}")
        if max_side is not None:
            check_int(max_side, "max_side", 32)
        if mtcnn_threads is not None:
            check_int(mtcnn_threads, "mtcnn_threads", 1)
        dev = pick_device(device)

        self.device = dev
        self.min_face_size = min_face_size
        self.thresholds = th
        self.min_prob = float(min_prob)
        self.max_side = max_side
        self.fast = bool(fast)
        self.mtcnn_threads = mtcnn_threads if dev.type == "cpu" else None
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
        # P-Net keeps its own pooling: its input comes channels-last from the image pyramid,
        # and a different layout would change its convolutions' rounding.
        self._fast_nets = (
            (self._mtcnn.pnet, _with_fast_pools(self._mtcnn.rnet), _with_fast_pools(self._mtcnn.onet))
            if self.fast and dev.type == "cpu"
            else None
        )

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
        import torch

        with torch_threads(self.mtcnn_threads):
            if self._fast_nets is None:
                boxes, probs, points = self._mtcnn.detect(stack, landmarks=True)
                return _faces_from_mtcnn(boxes, probs, points, len(batch))
            from facenet_pytorch.models.utils.detect_face import detect_face

            m = self._mtcnn
            with torch.no_grad():
                found = detect_face(stack, m.min_face_size, *self._fast_nets, m.thresholds, m.factor, self.device)
        return _faces_from_detect_face(*found, len(batch))

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
        check_int(batch_size, "batch_size", 1)
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
    "torch_threads",
]
