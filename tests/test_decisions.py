"""Photo-level pass/fail policies."""

from __future__ import annotations

import math

import pytest

from faceiqa.output.decisions import Policy, decide, group_by_photo
from faceiqa.errors import InvalidArgumentError
from faceiqa.output.reports import ReportRow, Status, error_row, no_face_row


def _face(i, score, size):
    return ReportRow("p.jpg", i, score, 0.0, 0.99, 0, 0, size, size, 10.0, Status.OK)


ROWS = [_face(0, 0.4, 100), _face(1, 0.9, 30)]


@pytest.mark.parametrize(
    "policy,passed,score",
    [(Policy.BEST, True, 0.9), (Policy.ALL, False, 0.4), (Policy.LARGEST, False, 0.4)],
)
def test_policies(policy, passed, score):
    d = decide(ROWS, 0.5, policy)
    assert d.passed is passed and d.score == score


def test_threshold_is_inclusive_and_checked():
    assert decide([_face(0, 0.5, 10)], 0.5).passed
    with pytest.raises(InvalidArgumentError):
        decide(ROWS, 1.2)
    with pytest.raises(InvalidArgumentError):
        decide(ROWS, 0.5, "median")


def test_no_face_and_error_never_pass():
    d = decide([no_face_row("x.jpg")], 0.0)
    assert not d.passed and d.reason == "no face" and math.isnan(d.score)
    d = decide([error_row("y.jpg", "truncated image file")], 0.0)
    assert not d.passed and d.reason == "error: truncated image file"


def test_group_by_photo_keeps_order():
    rows = [*ROWS, no_face_row("q.jpg")]
    assert [[r.path for r in g] for g in group_by_photo(rows)] == [["p.jpg", "p.jpg"], ["q.jpg"]]
