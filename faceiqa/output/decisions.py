"""Pass/fail decisions for whole photos from the scores of their faces.

Policies (for a photo with at least one scored face):

- ``best``: the photo passes when its best face scores at least the threshold.
- ``all``: every face in the photo must score at least the threshold.
- ``largest``: the face with the largest box (face 0) must score at least the threshold.

A photo without a face, or one that could not be read, never passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from faceiqa.errors import InvalidArgumentError

if TYPE_CHECKING:
    from faceiqa.results import ImageAssessment


class Policy(str, Enum):
    BEST = "best"
    ALL = "all"
    LARGEST = "largest"


@dataclass(frozen=True)
class Decision:
    """The verdict for one photo.

    Attributes:
        path: the photo.
        passed: True when it meets the threshold under the policy.
        score: the score the policy judged (best / lowest / largest face), in [0, 1];
            NaN when the photo has no scored face.
        reason: a short human-readable explanation.
    """

    path: str
    passed: bool
    score: float
    reason: str


def check_threshold(min_score: float) -> float:
    """Validate a threshold: a finite number in [0, 1]."""
    if isinstance(min_score, bool):
        raise InvalidArgumentError(f"threshold must be a number in [0, 1], got {min_score!r}")
    try:
        value = float(min_score)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"threshold must be a number in [0, 1], got {min_score!r}") from None
    if not (0.0 <= value <= 1.0):
        raise InvalidArgumentError(f"threshold must be in [0, 1], got {min_score}")
    return value


def check_policy(policy: Policy | str) -> Policy:
    """Validate a policy name (``best``, ``all`` or ``largest``)."""
    try:
        return Policy(policy)
    except ValueError:
        raise InvalidArgumentError(f"policy must be best, all or largest, got {policy!r}") from None


def decide(assessment: ImageAssessment, min_score: float, policy: Policy | str = Policy.BEST) -> Decision:
    """Decide one photo from what was found in it (see the module docstring for the policies)."""
    threshold = check_threshold(min_score)
    policy = check_policy(policy)
    path = assessment.source
    if assessment.error:
        return Decision(path, False, math.nan, f"error: {assessment.error}")
    faces = [f for f in assessment.faces if math.isfinite(f.score)]
    if not faces:
        return Decision(path, False, math.nan, "no face")
    if policy is Policy.BEST:
        score = max(f.score for f in faces)
        what = "best face"
    elif policy is Policy.ALL:
        score = min(f.score for f in faces)
        what = "lowest face" if len(faces) > 1 else "face"
    else:
        largest = max(faces, key=lambda f: ((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), -f.index))
        score = largest.score
        what = "largest face"
    passed = score >= threshold
    verb = ">=" if passed else "<"
    return Decision(path, passed, score, f"{what} {score:.3f} {verb} {threshold:g}")
