"""faceiqa: score and filter face images by quality before face recognition.

>>> from faceiqa import FaceQualityAssessor
>>> assessor = FaceQualityAssessor()          # the default face model, offline
>>> [f.score for f in assessor.assess("photo.jpg")]

The heavy parts (torch, the models) are imported on first use of the names below.
"""

from __future__ import annotations

__version__ = "0.1.0"

from faceiqa.errors import (  # noqa: E402
    CheckpointError,
    ChecksumError,
    DownloadError,
    FaceIQAError,
    ImageReadError,
    InvalidArgumentError,
    UnknownWeightsError,
    WeightsError,
    WeightsNotFoundError,
)

_LAZY = {
    "FaceQualityAssessor": "faceiqa.pipeline",
    "FaceQuality": "faceiqa.pipeline",
    "ImageAssessment": "faceiqa.pipeline",
    "FilterResult": "faceiqa.pipeline",
    "load_scorer": "faceiqa.models",
    "QualityScorer": "faceiqa.models",
    "Scores": "faceiqa.models",
    "FaceDetector": "faceiqa.detection",
    "FaceRecognizer": "faceiqa.recognition",
    "load_recognizer": "faceiqa.recognition",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'faceiqa' has no attribute {name!r}")


__all__ = [
    "__version__",
    *_LAZY,
    "CheckpointError",
    "ChecksumError",
    "DownloadError",
    "FaceIQAError",
    "ImageReadError",
    "InvalidArgumentError",
    "UnknownWeightsError",
    "WeightsError",
    "WeightsNotFoundError",
]
