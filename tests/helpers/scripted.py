"""A scripted face detector and synthetic photos: the pipeline without MTCNN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from faceiqa.face.detection import DetectedFace


class ScriptedDetector:
    """Stands in for MTCNN on generated pictures.

    The red value of pixel (0, 0) says how many faces (0-3) the picture holds; the faces
    have the eye distances of ``EYE_DISTANCES``, largest first, like ``FaceDetector``.
    """

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        self.calls += 1
        n = int(rgb[0, 0, 0]) % 4
        h, w = rgb.shape[:2]
        return [_scripted_face(i, w * (i + 1) / 4, h * 0.4, d) for i, d in enumerate(EYE_DISTANCES[:n])]


def picture(n_faces: int, seed: int, size: tuple[int, int] = (160, 200)) -> np.ndarray:
    """A smooth random (H, W, 3) uint8 picture that ``ScriptedDetector`` sees ``n_faces`` faces in."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    img = np.ascontiguousarray(np.kron(small, np.ones((8, 8, 1), np.uint8)))
    img[0, 0, 0] = n_faces
    return img


def save_png(img: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


EYE_DISTANCES = (60.0, 36.0, 12.0)  # largest first; 12 px is below the default small_face 20 px


def _scripted_face(i: int, cx: float, cy: float, d: float) -> DetectedFace:
    landmarks = [
        (cx - d / 2, cy),
        (cx + d / 2, cy),
        (cx, cy + 0.45 * d),
        (cx - 0.38 * d, cy + 0.9 * d),
        (cx + 0.38 * d, cy + 0.9 * d),
    ]
    return DetectedFace((cx - d, cy - 0.9 * d, cx + d, cy + 1.5 * d), 0.99 - 0.01 * i, landmarks)
