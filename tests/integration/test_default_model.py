"""The shipped default model: offline loading, golden-file conformance, sane behaviour.

The golden file holds the report of ``faceiqa score examples/photos`` made with the shipped
weights (regenerate it with that command, ``--csv tests/data/golden/example_scores.csv``,
whenever the model changes on purpose). Scores may differ across CPUs by float32 rounding,
so they are compared at 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from paths import REPO, TEST_DATA

from faceiqa.api import FaceQualityAssessor
from faceiqa.hub.store import get_spec, resolve, verify
from faceiqa.models import load_scorer
from faceiqa.output.reports import Status, read_csv

EXAMPLES = REPO / "examples" / "photos"


@pytest.fixture(scope="module")
def assessor():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield FaceQualityAssessor(device="cpu")
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def results(assessor):
    return {Path(r.source).relative_to(REPO).as_posix(): r for r in assessor.assess_paths([EXAMPLES])}


def test_default_model_is_bundled_verified_and_offline(monkeypatch):
    monkeypatch.setenv("FACEIQA_OFFLINE", "1")
    spec = get_spec("faceiqa-face")
    path = resolve("faceiqa-face", download=False)
    assert path.parent == REPO / "pretrained" and verify("faceiqa-face") == path
    scorer = load_scorer(device="cpu")
    assert scorer.name == spec.name == "faceiqa-face"
    assert scorer.config.size == 150 and scorer.config.extra == ("log2_resolution",)


def test_golden_example_scores(results):
    golden = read_csv(TEST_DATA / "golden" / "example_scores.csv")
    rows = [row for key in sorted(results) for row in results[key].rows()]
    assert [(Path(r.path).relative_to(REPO).as_posix(), r.face, r.status) for r in rows] == [
        (g.path, g.face, g.status) for g in golden
    ]
    for row, ref in zip(rows, golden):
        if ref.status in (Status.OK, Status.SMALL_FACE):
            assert row.score == pytest.approx(ref.score, abs=1e-4), row.path
            assert row.raw_score == pytest.approx(ref.raw_score, abs=1e-4), row.path
            assert row.x1 == pytest.approx(ref.x1, abs=0.05) and row.eye_distance == pytest.approx(ref.eye_distance, abs=0.05)


def test_degraded_copies_score_below_the_original(results):
    original = results["examples/photos/Tom_Cruise_avp_2014_4.jpg"].faces[0].score
    degraded = {k: r.faces[0].score for k, r in results.items() if "/degraded/" in k}
    assert len(degraded) == 5 and all(s < original for s in degraded.values()), degraded
    assert min(degraded, key=degraded.get).endswith("blurred.jpg")
    assert results["examples/photos/dogs.jpg"].status is Status.NO_FACE
    assert len(results["examples/photos/bald_guys.jpg"].faces) >= 20


def test_same_input_same_score_bit_for_bit(assessor):
    a = assessor.assess(EXAMPLES / "Tom_Cruise_avp_2014_4.jpg")[0]
    b = assessor.assess(EXAMPLES / "Tom_Cruise_avp_2014_4.jpg")[0]
    assert a.score == b.score and a.raw_score == b.raw_score


@pytest.mark.parametrize(
    ("threshold", "passing"),
    [
        (0.5, {"Tom_Cruise_avp_2014_4.jpg", "bald_guys.jpg", "blocky.jpg", "dark_noisy.jpg", "low_resolution.jpg", "occluded.jpg"}),
        (0.95, {"Tom_Cruise_avp_2014_4.jpg", "bald_guys.jpg", "blocky.jpg"}),
    ],
)
def test_readme_quick_start_outcome(threshold, passing, monkeypatch):
    """README's quick start states which example photos pass at --min 0.5 and 0.95."""
    from click.testing import CliRunner

    from faceiqa.cli import main

    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["filter", "examples/photos", "--min", str(threshold), "--dry-run", "-q"])
    assert result.exit_code == 0, result.output
    verdicts = {line.split("\t")[1].rsplit("/", 1)[-1]: line.split("\t")[0] for line in result.output.splitlines() if "\t" in line}
    assert len(verdicts) == 8
    assert {name for name, verdict in verdicts.items() if verdict == "PASS"} == passing


def test_the_auto_thread_plan_agrees_with_the_exact_reference_on_the_examples():
    exact = FaceQualityAssessor(device="cpu", threads="exact")
    auto = FaceQualityAssessor(device="cpu", threads="auto")
    ref = {r.source: [f.score for f in r.faces] for r in exact.assess_paths([EXAMPLES])}
    got = {r.source: [f.score for f in r.faces] for r in auto.assess_paths([EXAMPLES])}
    assert ref.keys() == got.keys() and all(len(ref[k]) == len(got[k]) for k in ref)
    worst = max((abs(a - b) for k in ref for a, b in zip(ref[k], got[k], strict=True)), default=0.0)
    assert worst < 1e-3, worst
    again = {r.source: [f.score for f in r.faces] for r in auto.assess_paths([EXAMPLES])}
    assert again == got  # the same setting gives the same scores, bit for bit
