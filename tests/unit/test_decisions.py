"""Photo-level pass/fail policies, decided on the domain result (ImageAssessment)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceiqa.errors import InvalidArgumentError
from faceiqa.output.decisions import Policy, decide
from faceiqa.output.reports import Status
from faceiqa.results import FaceQuality, ImageAssessment


def _face(i, score, size, flags=()):
    return FaceQuality(i, (0.0, 0.0, float(size), float(size)), np.zeros((5, 2), np.float32), 0.99, 10.0, score, 0.0, flags)


PHOTO = ImageAssessment("p.jpg", (_face(0, 0.4, 100), _face(1, 0.9, 30)))


@pytest.mark.parametrize(
    "policy,passed,score",
    [(Policy.BEST, True, 0.9), (Policy.ALL, False, 0.4), (Policy.LARGEST, False, 0.4), ("largest", False, 0.4)],
)
def test_policies(policy, passed, score):
    d = decide(PHOTO, 0.5, policy)
    assert d.passed is passed and d.score == score and d.path == "p.jpg"


def test_largest_face_ties_go_to_the_lower_index():
    tied = ImageAssessment("t.jpg", (_face(0, 0.2, 50), _face(1, 0.9, 50)))
    assert decide(tied, 0.5, Policy.LARGEST).score == 0.2


def test_threshold_is_inclusive_and_checked():
    assert decide(ImageAssessment("q.jpg", (_face(0, 0.5, 10),)), 0.5).passed
    with pytest.raises(InvalidArgumentError):
        decide(PHOTO, 1.2)
    with pytest.raises(InvalidArgumentError):
        decide(PHOTO, 0.5, "median")


def test_no_face_and_error_never_pass():
    d = decide(ImageAssessment("x.jpg"), 0.0)
    assert not d.passed and d.reason == "no face" and math.isnan(d.score)
    d = decide(ImageAssessment("y.jpg", error="truncated image file"), 0.0)
    assert not d.passed and d.reason == "error: truncated image file"


def test_an_unscored_face_does_not_count():
    d = decide(ImageAssessment("n.jpg", (_face(0, math.nan, 40),)), 0.0)
    assert not d.passed and d.reason == "no face"


def test_rows_of_an_assessment_keep_face_order_and_status():
    photo = ImageAssessment("p.jpg", (_face(0, 0.4, 100), _face(1, 0.9, 30, ("small_face",))))
    rows = photo.rows()
    assert [(r.path, r.face, r.score, r.status) for r in rows] == [
        ("p.jpg", 0, 0.4, Status.OK), ("p.jpg", 1, 0.9, Status.SMALL_FACE)
    ]
    assert [r.status for r in ImageAssessment("x.jpg").rows()] == [Status.NO_FACE]
    assert ImageAssessment("y.jpg", error="bad").rows()[0].error == "bad"
