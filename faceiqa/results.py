"""The domain results: what faceiqa found in an image, and what a filter decided.

Made by :mod:`faceiqa.api`, read by :mod:`faceiqa.output` (decisions, reports). Plain frozen
dataclasses with no behaviour beyond small derived properties.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from faceiqa.output.reports import Status

if TYPE_CHECKING:
    from faceiqa.output.decisions import Decision
    from faceiqa.output.reports import ReportRow

__all__ = ["FaceQuality", "FilterResult", "ImageAssessment"]


@dataclass(frozen=True, eq=False)
class FaceQuality:
    """The quality of one detected face.

    Attributes:
        index: 0-based face index in its photo (largest box first).
        box: (x1, y1, x2, y2) in original-image pixels.
        landmarks: (5, 2) float32 landmarks in original-image pixels (MTCNN order).
        det_prob: detector probability in [0, 1].
        eye_distance: inter-eye distance in original-image pixels.
        score: quality in [0, 1], higher is better.
        raw_score: the model's native output (scale in the weights registry).
        flags: ``("small_face",)`` when the face is too small to judge reliably.
    """

    index: int
    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    det_prob: float
    eye_distance: float
    score: float
    raw_score: float
    flags: tuple[str, ...] = ()

    @property
    def status(self) -> Status:
        return Status.SMALL_FACE if "small_face" in self.flags else Status.OK


@dataclass(frozen=True)
class ImageAssessment:
    """Everything found in one input image.

    Attributes:
        source: the path as given, or ``<image N>`` for in-memory inputs.
        faces: the faces, largest first (empty when none was found or on error).
        error: a one-line reason when the image could not be processed, else empty.
    """

    source: str
    faces: tuple[FaceQuality, ...] = ()
    error: str = ""

    @property
    def status(self) -> Status:
        if self.error:
            return Status.ERROR
        return Status.OK if self.faces else Status.NO_FACE

    def rows(self) -> list[ReportRow]:
        """Report rows (see :mod:`faceiqa.output.reports`): one per face, or one for none / error."""
        from faceiqa.output.reports import assessment_rows

        return assessment_rows(self)


@dataclass(frozen=True)
class FilterResult:
    """Outcome of :meth:`FaceQualityAssessor.filter`.

    Attributes:
        passed: decisions of the photos that meet the threshold, in input order.
        failed: decisions of the others (low score, no face, error), in input order.
        rows: the full report rows, in input order.
    """

    passed: list[Decision] = field(default_factory=list)
    failed: list[Decision] = field(default_factory=list)
    rows: list[ReportRow] = field(default_factory=list)
