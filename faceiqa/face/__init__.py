"""Finding, cutting and recognising faces: detection (MTCNN), 5-point alignment, the dlib recognizer.
"""

from __future__ import annotations

from faceiqa._util import lazy_getattr

_LAZY = {
    "AlignmentTemplate": "alignment",
    "DEFAULT_MAX_SIDE": "detection",
    "DEFAULT_MIN_PROB": "detection",
    "DLIB_150": "alignment",
    "DetectedFace": "detection",
    "FaceDetector": "detection",
    "FaceRecognizer": "recognition",
    "HYPERIQA_224": "alignment",
    "SMALL_FACE_EYE_DISTANCE": "detection",
    "align_face": "alignment",
    "arcface_template": "alignment",
    "dlib_chip_template": "alignment",
    "eye_distance": "alignment",
    "get_template": "alignment",
    "load_recognizer": "recognition",
    "similarity_transform": "alignment",
    "torch_threads": "detection",
    "transform_points": "alignment",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
