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

from faceiqa._util import Registry
from faceiqa.errors import InvalidArgumentError
from faceiqa.images import check_rgb

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

# dlib's mean face shape (landmarks 17..67 of the 68-point scheme, in units of the face
# box), the constants of dlib's get_face_chip_details().
_DLIB_MEAN_FACE_X = (
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
)  # fmt: skip
_DLIB_MEAN_FACE_Y = (
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
)  # fmt: skip


def dlib_chip_template(size: int = 150, padding: float = 0.25, name: str | None = None) -> AlignmentTemplate:
    """5-point template reproducing dlib's ``get_face_chip(img, shape, size, padding)``.

    Derivation. dlib fits a similarity transform from the mean-shape points
    ``p * size`` with ``p = (padding + mean) / (1 + 2 * padding)`` (68-point landmarks
    27..54 and 60..64) to the detected landmarks, then samples the chip so that the chip's
    corner pixel centres 0 and ``size - 1`` span ``size * s - 1`` image pixels around the
    fitted centre (``s``: image pixels per template unit). For ``s`` near 1 a template
    point ``p * size`` therefore lands at chip pixel ``p * size - 0.5``; for other scales
    the deviation is below 1% of the distance to the chip centre. A face that matches
    the mean shape puts its landmarks exactly there, so MTCNN's five points go to the
    mean shape's eye centres (mean of the six eye-contour points 36..41 and 42..47),
    nose tip (30) and mouth corners (48, 54). For 150 px and padding 0.25 the points are
    about (47.0, 46.1), (100.0, 46.1), (73.5, 76.1), (49.9, 102.5), (97.1, 102.5).
    """
    if size < 16 or not (0.0 <= padding <= 1.0):
        raise InvalidArgumentError(f"bad dlib chip size {size} or padding {padding}")
    full = np.zeros((68, 2))
    full[17:, 0] = _DLIB_MEAN_FACE_X
    full[17:, 1] = _DLIB_MEAN_FACE_Y
    five = np.array([full[36:42].mean(0), full[42:48].mean(0), full[30], full[48], full[54]])
    points = (padding + five) / (1.0 + 2.0 * padding) * size - 0.5
    return AlignmentTemplate(name or f"dlib-{size}-p{padding:g}", size, points)


# Chip of dlib's face recognition ResNet (faceiqa.face.recognition): 150 px, padding 0.25.
DLIB_150 = dlib_chip_template(150, 0.25, name="dlib-150")

TEMPLATES: Registry[AlignmentTemplate] = Registry("alignment template", {t.name: t for t in (HYPERIQA_224, DLIB_150)})


def get_template(name: str) -> AlignmentTemplate:
    """Look up a registered template by name."""
    return TEMPLATES[name]


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


def transform_points(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points.

    Args:
        m: (2, 3) matrix, e.g. from :func:`similarity_transform`.
        points: (N, 2) array of (x, y).

    Returns:
        (N, 2) float64 array of ``m @ [x, y, 1]``.
    """
    m = np.asarray(m, dtype=np.float64)
    pts = np.asarray(points, dtype=np.float64)
    if m.shape != (2, 3) or pts.ndim != 2 or pts.shape[1] != 2:
        raise InvalidArgumentError(
            f"transform_points needs a (2, 3) matrix and (N, 2) points, got {m.shape} and {pts.shape}"
        )
    return pts @ m[:, :2].T + m[:, 2]


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
    check_rgb(image)
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
