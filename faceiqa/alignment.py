"""Face alignment: a similarity transform from 5 landmarks to a canonical template.

Landmarks follow MTCNN's order, in pixels of the source image (x, y):
0 left eye, 1 right eye (as seen in the image: 0 has the smaller x in a frontal face),
2 nose tip, 3 left mouth corner, 4 right mouth corner.

A template says where those five points land in the output crop. The transform is the
least-squares similarity (rotation, uniform scale, translation; no reflection) of
Umeyama (1991). Strong downscaling is done with area averaging first so that small
output crops of large faces do not alias.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceiqa.errors import InvalidArgumentError

# The widely used 5-point template for 112x112 face recognition crops (ArcFace), in pixels.
_ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class AlignmentTemplate:
    """Where the 5 landmarks go in a square output crop.

    Attributes:
        name: identifier used by the weights registry (``input.template``).
        size: output side in pixels.
        points: (5, 2) float array of target landmark positions in output pixels.
    """

    name: str
    size: int
    points: np.ndarray

    @property
    def eye_distance(self) -> float:
        """Distance between the two eye points in output pixels."""
        return float(np.linalg.norm(self.points[1] - self.points[0]))


def arcface_template(size: int, scale: float = 1.0, name: str | None = None) -> AlignmentTemplate:
    """The ArcFace 5-point template resized to ``size`` pixels.

    ``scale`` < 1 shrinks the face about the crop centre, leaving more margin (hair, chin,
    background); ``scale`` = 1 is the tight recognition crop.
    """
    if size < 16 or not (0.1 <= scale <= 2.0):
        raise InvalidArgumentError(f"bad template size {size} or scale {scale}")
    points = 56.0 + (_ARCFACE_112 - 56.0) * scale
    points = points * (size / 112.0)
    return AlignmentTemplate(name or f"arcface-{size}-s{scale:g}", size, points)


# Crop for the ResNet-50 HyperIQA model: 224 px, face at 80% of the tight recognition crop
# (the whole head, with some background, fills the crop; inter-eye distance ~56 px).
HYPERIQA_224 = arcface_template(224, scale=0.8, name="hyperiqa-224")

TEMPLATES: dict[str, AlignmentTemplate] = {HYPERIQA_224.name: HYPERIQA_224}


def get_template(name: str) -> AlignmentTemplate:
    """Look up a registered template by name."""
    try:
        return TEMPLATES[name]
    except KeyError:
        known = ", ".join(sorted(TEMPLATES))
        raise InvalidArgumentError(f"unknown alignment template {name!r} (known: {known})") from None


def _as_landmarks(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (5, 2) or not np.all(np.isfinite(pts)):
        raise InvalidArgumentError(f"landmarks must be a finite (5, 2) array, got shape {pts.shape}")
    return pts


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform mapping ``src`` points onto ``dst`` points.

    Args:
        src, dst: (N, 2) point arrays, N >= 2.

    Returns:
        (2, 3) float64 affine matrix ``M`` with ``dst ~= M @ [x, y, 1]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise InvalidArgumentError("similarity_transform needs two (N, 2) arrays of the same shape")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / len(src)
    if var_s <= 1e-12:
        raise InvalidArgumentError("degenerate landmarks: all points coincide")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def eye_distance(landmarks: np.ndarray) -> float:
    """Inter-eye distance in pixels of the image the landmarks are given in."""
    pts = _as_landmarks(landmarks)
    return float(np.linalg.norm(pts[1] - pts[0]))


def align_face(image: np.ndarray, landmarks: np.ndarray, template: AlignmentTemplate) -> np.ndarray:
    """Cut and align one face.

    Args:
        image: (H, W, 3) uint8 RGB image.
        landmarks: (5, 2) landmarks in ``image`` pixels (MTCNN order).
        template: where the landmarks go.

    Returns:
        (size, size, 3) uint8 RGB crop. Pixels outside the image repeat the border.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidArgumentError("image must be an (H, W, 3) uint8 RGB array")
    pts = _as_landmarks(landmarks)
    m = similarity_transform(pts, template.points)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    src = image
    if scale < 0.5:
        # Pre-shrink by an integer-friendly factor with area averaging to avoid aliasing,
        # then warp what is left (a scale between 0.5 and 1).
        factor = scale * 1.5
        h, w = image.shape[:2]
        nw, nh = max(1, round(w * factor)), max(1, round(h * factor))
        src = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = nw / w, nh / h
        # Pixel centres map as (x + 0.5) * f - 0.5 under cv2.resize.
        m = similarity_transform((pts + 0.5) * [fx, fy] - 0.5, template.points)
    return cv2.warpAffine(
        src,
        m,
        (template.size, template.size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
