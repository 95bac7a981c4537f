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

Speed (CPU). :func:`mtcnn_detect_face` is facenet-pytorch's ``detect_face`` step for step, with
its two slow parts done another way that gives the same bits: the image pyramid and the 24/48 px
crops of the refinement stages are area resizes (``adaptive_avg_pool2d``) of integer-valued
pixels, and here each window sum is read exactly from an integral image and divided the way
PyTorch's kernel divides (``sum / kh / kw`` in float32; exact while a window sums to less than
2**24, checked, else facenet-pytorch's own code runs). The max-pooling layers of R-Net and O-Net
run through PyTorch's channels-last kernel (a maximum has no rounding), several times faster than
its NCHW kernel. The networks, the tensors the convolutions get (values and memory layout), the
NMS and the box arithmetic are facenet-pytorch's own. Tests compare it with ``MTCNN.detect`` bit
for bit on real photos. MTCNN runs many small operations, so one torch thread is often faster
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

from faceiqa.errors import InvalidArgumentError
from faceiqa.io import check_rgb

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


# --------------------------------------------------------------------------- fast exact MTCNN

#: Window sums of integer pixels below this are exact in float32, whatever the order.
_EXACT_FLOAT32_SUM = 2**24


def _integral(images: np.ndarray) -> np.ndarray:
    """(N, H+1, W+1, 3) integral images of (N, H, W, 3) uint8 images (zero first row/column).

    int32 while every sum fits (255 * H * W < 2**31), else float64 (exact to 2**53).
    """
    n, h, w, _ = images.shape
    depth = cv2.CV_32S if 255 * h * w < 2**31 else cv2.CV_64F
    return np.stack([cv2.integral(np.ascontiguousarray(images[i]), sdepth=depth) for i in range(n)])


def _pool_bounds(out_size: int, in_size: Any) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive-pooling windows [start, end) per output index (PyTorch's start/end_index).

    ``in_size`` is an int or a (K,) array of input lengths; the result is (out_size,) or
    (K, out_size) each.
    """
    o = np.arange(out_size, dtype=np.int64)
    length = np.asarray(in_size, dtype=np.int64)[..., None]
    return (o * length) // out_size, ((o + 1) * length + out_size - 1) // out_size


def _exact(kh: np.ndarray, kw: np.ndarray) -> bool:
    """True when every window of kh x kw integer pixels sums to less than 2**24 (exact in float32)."""
    return int(kh.max(initial=0)) * int(kw.max(initial=0)) * 255 < _EXACT_FLOAT32_SUM


def _divide(sums: np.ndarray, kh: np.ndarray, kw: np.ndarray) -> np.ndarray:
    """``float32(sum) / kh / kw`` in float32: PyTorch's adaptive average pooling arithmetic."""
    out = sums.astype(np.float32)
    out /= kh.astype(np.float32)[..., :, None, None]
    out /= kw.astype(np.float32)[..., None, :, None]
    return out


def _pyramid_level(integral: np.ndarray, out_h: int, out_w: int) -> np.ndarray | None:
    """``interpolate(images, (out_h, out_w), mode="area")`` as (N, out_h, out_w, 3) float32, or None
    when the float32 sums might not be exact."""
    h, w = integral.shape[1] - 1, integral.shape[2] - 1
    r0, r1 = _pool_bounds(out_h, h)
    c0, c1 = _pool_bounds(out_w, w)
    kh, kw = r1 - r0, c1 - c0
    if not _exact(kh, kw):
        return None
    rows = np.take(integral, r1, axis=1) - np.take(integral, r0, axis=1)
    sums = np.take(rows, c1, axis=2) - np.take(rows, c0, axis=2)
    return _divide(sums, kh, kw)


def _crops(integral: np.ndarray, image_inds: np.ndarray, y, ey, x, ex, size: int) -> torch.Tensor | None:
    """facenet-pytorch's refinement-stage crops ``imresample(img[:, y-1:ey, x-1:ex], size)``, stacked.

    Returns a contiguous (K, 3, size, size) float32 tensor, or None where the result could
    differ from facenet-pytorch's (an empty crop, which it skips, or an inexact sum).
    """
    import torch

    y0 = np.asarray(y, dtype=np.int64) - 1
    x0 = np.asarray(x, dtype=np.int64) - 1
    ey = np.asarray(ey, dtype=np.int64)
    ex = np.asarray(ex, dtype=np.int64)
    if not (np.all(ey > y0) and np.all(ex > x0)) or np.any(y0 < 0) or np.any(x0 < 0):
        return None
    r0, r1 = _pool_bounds(size, ey - y0)
    c0, c1 = _pool_bounds(size, ex - x0)
    kh, kw = r1 - r0, c1 - c0
    if not _exact(kh, kw):
        return None
    n, hp, wp, ch = integral.shape
    base = np.asarray(image_inds, dtype=np.int64)[:, None, None] * (hp * wp)
    a0 = base + (r0 + y0[:, None])[:, :, None] * wp
    a1 = base + (r1 + y0[:, None])[:, :, None] * wp
    b0 = (c0 + x0[:, None])[:, None, :]
    b1 = (c1 + x0[:, None])[:, None, :]
    corners = np.take(integral.reshape(-1, ch), np.stack([a1 + b1, a0 + b1, a1 + b0, a0 + b0]).ravel(), axis=0)
    corners = corners.reshape(4, len(y0), size, size, ch)
    sums = corners[0] - corners[1] - corners[2] + corners[3]
    return torch.from_numpy(_divide(sums, kh, kw)).permute(0, 3, 1, 2).contiguous()


def _max_pool(pool: Any, x: torch.Tensor) -> torch.Tensor:
    """``pool(x)`` for an NCHW-contiguous ``x``, through PyTorch's much faster channels-last kernel.

    A maximum involves no rounding, so the values are the same; the result is made
    NCHW-contiguous again, as ``pool(x)`` would return it, so the next layer sees the same tensor.
    """
    import torch

    y = pool(x.contiguous(memory_format=torch.channels_last))
    return y.contiguous()


def _rnet(net: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """facenet-pytorch's ``RNet.forward`` with :func:`_max_pool`."""
    x = _max_pool(net.pool1, net.prelu1(net.conv1(x)))
    x = _max_pool(net.pool2, net.prelu2(net.conv2(x)))
    x = net.prelu3(net.conv3(x))
    x = x.permute(0, 3, 2, 1).contiguous()
    x = net.prelu4(net.dense4(x.view(x.shape[0], -1)))
    return net.dense5_2(x), net.softmax5_1(net.dense5_1(x))


def _onet(net: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """facenet-pytorch's ``ONet.forward`` with :func:`_max_pool`."""
    x = _max_pool(net.pool1, net.prelu1(net.conv1(x)))
    x = _max_pool(net.pool2, net.prelu2(net.conv2(x)))
    x = _max_pool(net.pool3, net.prelu3(net.conv3(x)))
    x = net.prelu4(net.conv4(x))
    x = x.permute(0, 3, 2, 1).contiguous()
    x = net.prelu5(net.dense5(x.view(x.shape[0], -1)))
    return net.dense6_2(x), net.dense6_3(x), net.softmax6_1(net.dense6_1(x))


def mtcnn_detect_face(images: np.ndarray, mtcnn: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """facenet-pytorch's ``detect_face(images, ...)`` on the CPU, faster, same results.

    Args:
        images: (N, H, W, 3) uint8 RGB images of one size.
        mtcnn: a CPU ``facenet_pytorch.MTCNN`` (its nets, ``min_face_size``, thresholds, factor).

    Returns:
        ``(batch_boxes, batch_points)`` exactly as ``detect_face`` returns them, or None when
        this input needs facenet-pytorch's own code (see the module docstring).
    """
    import torch
    from facenet_pytorch.models.utils import detect_face as fd
    from torchvision.ops.boxes import batched_nms

    with torch.no_grad():
        return _detect_face(images, mtcnn)


def _detect_face(images: np.ndarray, mtcnn: Any) -> tuple[np.ndarray, np.ndarray] | None:
    import torch
    from facenet_pytorch.models.utils import detect_face as fd
    from torchvision.ops.boxes import batched_nms

    pnet, rnet, onet = mtcnn.pnet, mtcnn.rnet, mtcnn.onet
    threshold, factor, minsize = mtcnn.thresholds, mtcnn.factor, mtcnn.min_face_size
    device = torch.device("cpu")
    if next(pnet.parameters()).dtype != torch.float32:
        return None
    batch_size, h, w = images.shape[:3]
    integral = _integral(images)

    m = 12.0 / minsize
    minl = min(h, w) * m
    scale_i = m
    scales = []
    while minl >= 12:
        scales.append(scale_i)
        scale_i = scale_i * factor
        minl = minl * factor

    # First stage: P-Net on the pyramid.
    boxes_l, inds_l, picks = [], [], []
    offset = 0
    for scale in scales:
        level = _pyramid_level(integral, int(h * scale + 1), int(w * scale + 1))
        if level is None:
            return None
        # (N, oh, ow, 3) viewed as NCHW: the channels-last layout facenet-pytorch's tensors have.
        im_data = torch.from_numpy(level).permute(0, 3, 1, 2)
        im_data = (im_data - 127.5) * 0.0078125
        reg, probs = pnet(im_data)
        boxes_scale, image_inds_scale = fd.generateBoundingBox(reg, probs[:, 1], scale, threshold[0])
        boxes_l.append(boxes_scale)
        inds_l.append(image_inds_scale)
        pick = batched_nms(boxes_scale[:, :4], boxes_scale[:, 4], image_inds_scale, 0.5)
        picks.append(pick + offset)
        offset += boxes_scale.shape[0]

    boxes = torch.cat(boxes_l, dim=0)
    image_inds = torch.cat(inds_l, dim=0)
    scale_picks = torch.cat(picks, dim=0)
    boxes, image_inds = boxes[scale_picks], image_inds[scale_picks]
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]

    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    qq1 = boxes[:, 0] + boxes[:, 5] * regw
    qq2 = boxes[:, 1] + boxes[:, 6] * regh
    qq3 = boxes[:, 2] + boxes[:, 7] * regw
    qq4 = boxes[:, 3] + boxes[:, 8] * regh
    boxes = torch.stack([qq1, qq2, qq3, qq4, boxes[:, 4]]).permute(1, 0)
    boxes = fd.rerec(boxes)
    y, ey, x, ex = fd.pad(boxes, w, h)

    # Second stage: R-Net on 24 px crops.
    if len(boxes) > 0:
        im_data = _crops(integral, image_inds.numpy(), y, ey, x, ex, 24)
        if im_data is None:
            return None
        im_data = (im_data - 127.5) * 0.0078125
        out = fd.fixed_batch_process(im_data, lambda b: _rnet(rnet, b))
        out0 = out[0].permute(1, 0)
        out1 = out[1].permute(1, 0)
        score = out1[1, :]
        ipass = score > threshold[1]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds = image_inds[ipass]
        mv = out0[:, ipass].permute(1, 0)
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, mv = boxes[pick], image_inds[pick], mv[pick]
        boxes = fd.bbreg(boxes, mv)
        boxes = fd.rerec(boxes)

    # Third stage: O-Net on 48 px crops, landmarks.
    points = torch.zeros(0, 5, 2, device=device)
    if len(boxes) > 0:
        y, ey, x, ex = fd.pad(boxes, w, h)
        im_data = _crops(integral, image_inds.numpy(), y, ey, x, ex, 48)
        if im_data is None:
            return None
        im_data = (im_data - 127.5) * 0.0078125
        out = fd.fixed_batch_process(im_data, lambda b: _onet(onet, b))
        out0 = out[0].permute(1, 0)
        out1 = out[1].permute(1, 0)
        out2 = out[2].permute(1, 0)
        score = out2[1, :]
        points = out1
        ipass = score > threshold[2]
        points = points[:, ipass]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds = image_inds[ipass]
        mv = out0[:, ipass].permute(1, 0)
        w_i = boxes[:, 2] - boxes[:, 0] + 1
        h_i = boxes[:, 3] - boxes[:, 1] + 1
        points_x = w_i.repeat(5, 1) * points[:5, :] + boxes[:, 0].repeat(5, 1) - 1
        points_y = h_i.repeat(5, 1) * points[5:10, :] + boxes[:, 1].repeat(5, 1) - 1
        points = torch.stack((points_x, points_y)).permute(2, 1, 0)
        boxes = fd.bbreg(boxes, mv)
        pick = fd.batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
        boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]

    boxes = boxes.cpu().numpy()
    points = points.cpu().numpy()
    image_inds = image_inds.cpu()
    batch_boxes = []
    batch_points = []
    for b_i in range(batch_size):
        b_i_inds = np.where(image_inds == b_i)
        batch_boxes.append(boxes[b_i_inds].copy())
        batch_points.append(points[b_i_inds].copy())
    return np.array(batch_boxes, dtype=object), np.array(batch_points, dtype=object)


def _mtcnn_outputs(batch_boxes: np.ndarray, batch_points: np.ndarray, select_largest: bool) -> tuple[Any, Any, Any]:
    """``MTCNN.detect(batch, landmarks=True)``'s post-processing of ``detect_face`` output."""
    boxes, probs, points = [], [], []
    for box, point in zip(batch_boxes, batch_points):
        box = np.array(box)
        point = np.array(point)
        if len(box) == 0:
            boxes.append(None)
            probs.append([None])
            points.append(None)
        elif select_largest:
            box_order = np.argsort((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))[::-1]
            box = box[box_order]
            point = point[box_order]
            boxes.append(box[:, :4])
            probs.append(box[:, 4])
            points.append(point)
        else:
            boxes.append(box[:, :4])
            probs.append(box[:, 4])
            points.append(point)
    return np.array(boxes, dtype=object), np.array(probs, dtype=object), np.array(points, dtype=object)


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
        fast: on the CPU, run MTCNN through :func:`mtcnn_detect_face` (the same results as
            facenet-pytorch's ``MTCNN.detect``, bit for bit, several times faster); False calls
            facenet-pytorch directly. Ignored on CUDA (facenet-pytorch's code runs there).
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
        if mtcnn_threads is not None and (
            isinstance(mtcnn_threads, bool) or not isinstance(mtcnn_threads, int) or mtcnn_threads < 1
        ):
            raise InvalidArgumentError(f"mtcnn_threads must be None or an int >= 1, got {mtcnn_threads!r}")
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
        with torch_threads(self.mtcnn_threads):
            found = None
            if self.fast and self.device.type == "cpu":
                found = mtcnn_detect_face(stack, self._mtcnn)
            if found is not None:
                boxes, probs, points = _mtcnn_outputs(*found, self._mtcnn.select_largest)
            else:
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
    "mtcnn_detect_face",
    "torch_threads",
]
