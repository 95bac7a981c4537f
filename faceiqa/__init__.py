"""faceiqa: score and filter face images by quality before face recognition.

>>> from faceiqa import FaceQualityAssessor
>>> assessor = FaceQualityAssessor()          # the default face model, offline
>>> [f.score for f in assessor.assess("photo.jpg")]

The heavy parts (torch, the models) are imported on first use of the names below.
"""

from __future__ import annotations

__version__ = "0.1.0"

from faceiqa import _compat  # noqa: E402
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

_compat.install()  # old flat module paths (faceiqa.pipeline, faceiqa.io, ...) for one release

_LAZY = {
    "FaceQualityAssessor": "faceiqa.api",
    "FaceQuality": "faceiqa.api",
    "ImageAssessment": "faceiqa.api",
    "FilterResult": "faceiqa.api",
    "load_scorer": "faceiqa.models.loader",
    "QualityScorer": "faceiqa.models.scorer",
    "Scores": "faceiqa.models.scorer",
    "ModelConfig": "faceiqa.models.config",
    "FaceDetector": "faceiqa.face.detection",
    "FaceRecognizer": "faceiqa.face.recognition",
    "load_recognizer": "faceiqa.face.recognition",
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
