"""faceiqa: score and filter face images by quality before face recognition."""

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

__all__ = [
    "__version__",
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
