"""Pass/fail decisions for whole photos from the scores of their faces.

Policies (for a photo with at least one scored face):

- ``best``: the photo passes when its best face scores at least the threshold.
- ``all``: every face in the photo must score at least the threshold.
- ``largest``: the face with the largest box (face 0) must score at least the threshold.

A photo without a face, or one that could not be read, never passes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from faceiqa.errors import InvalidArgumentError
from faceiqa.output.reports import ReportRow, Status


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


def decide(rows: Sequence[ReportRow], min_score: float, policy: Policy | str = Policy.BEST) -> Decision:
    """Decide one photo from its report rows (all rows must share the same path)."""
    threshold = check_threshold(min_score)
    policy = check_policy(policy)
    if not rows:
        raise InvalidArgumentError("decide() needs the rows of one photo")
    path = rows[0].path
    if any(r.path != path for r in rows):
        raise InvalidArgumentError("decide() got rows of several photos")
    errors = [r for r in rows if r.status is Status.ERROR]
    if errors:
        return Decision(path, False, math.nan, f"error: {errors[0].error}")
    faces = [r for r in rows if r.has_score]
    if not faces:
        return Decision(path, False, math.nan, "no face")
    if policy is Policy.BEST:
        score = max(r.score for r in faces)
        what = "best face"
    elif policy is Policy.ALL:
        score = min(r.score for r in faces)
        what = "lowest face" if len(faces) > 1 else "face"
    else:
        largest = max(faces, key=lambda r: ((r.x2 - r.x1) * (r.y2 - r.y1), -(r.face or 0)))
        score = largest.score
        what = "largest face"
    passed = score >= threshold
    verb = ">=" if passed else "<"
    return Decision(path, passed, score, f"{what} {score:.3f} {verb} {threshold:g}")


def group_by_photo(rows: Iterable[ReportRow]) -> list[list[ReportRow]]:
    """Group consecutive rows by path, keeping the report's order."""
    groups: list[list[ReportRow]] = []
    for row in rows:
        if groups and groups[-1][0].path == row.path:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups
