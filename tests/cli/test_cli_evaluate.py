"""``faceiqa evaluate``: mos, edc (with a stub detector and recogniser), degrade-set,
monotonicity; and the orchestration functions behind them."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

import faceiqa.evaluation as ev
from faceiqa.cli import main
from faceiqa.errors import FaceIQAError, InvalidArgumentError
from faceiqa.evaluation.baselines import sharpness
from faceiqa.evaluation.metrics import agreement

# ---------------------------------------------------------------------------------------
# stubs: identity is the image's mean colour; a "bad" photo has its colour shifted


@dataclass
class Face:
    box: tuple
    prob: float
    landmarks: np.ndarray

    @property
    def eye_distance(self) -> float:
        return float(np.hypot(*(self.landmarks[1] - self.landmarks[0])))


class StubDetector:
    def detect(self, image):
        if image.mean() < 5:  # the black photo has no face
            return []
        h, w = image.shape[:2]
        lm = np.array([[0.4, 0.45], [0.6, 0.45], [0.5, 0.55], [0.42, 0.65], [0.58, 0.65]]) * [w, h]
        small = Face((w * 0.4, h * 0.4, w * 0.5, h * 0.5), 0.5, lm * 0.5)  # a weaker second face
        return [small, Face((w * 0.2, h * 0.2, w * 0.8, h * 0.8), 0.99, lm)]


class StubRecognizer:
    def align(self, image, landmarks):
        from faceiqa.face.alignment import align_face, arcface_template

        return align_face(image, landmarks, arcface_template(150, 0.5))

    def embed(self, chips):
        chips = np.asarray(chips)
        assert chips.ndim == 4 and chips.shape[1:] == (150, 150, 3)
        emb = np.zeros((len(chips), 128), np.float32)
        emb[:, :3] = chips.reshape(len(chips), -1, 3).mean(1) / 255.0
        return emb


PEOPLE = [f"Person_{c}" for c in "ABCDEFGH"]
BAD = {("Person_C", 3)}
BLACK = ("Person_G", 3)


def _colour(p: int) -> np.ndarray:
    # Identities spread over a 2x2x2 colour grid, 80 levels apart.
    return np.array([60 + 80 * ((p >> k) & 1) for k in range(3)], float)


def _photo(p: int, i: int, name: str) -> np.ndarray:
    rng = np.random.default_rng(100 * p + i)
    img = _colour(p) + rng.normal(0, 6, (64, 64, 1))
    if (name, i) in BAD:
        img = img + np.array([45.0, -45.0, 30.0])
    if (name, i) == BLACK:
        img = np.zeros_like(img)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture()
def lfw_like(tmp_path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    for p, name in enumerate(PEOPLE):
        (images / name).mkdir(parents=True)
        for i in (1, 2, 3):
            Image.fromarray(_photo(p, i, name)).save(images / name / f"{name}_{i:04d}.jpg", quality=95)
    genuine = [f"{n} {i} {j}" for n in PEOPLE for i, j in ((1, 2), (1, 3), (2, 3))][:20]
    impostor = [
        f"{PEOPLE[a]} {1 + (a + b) % 3} {PEOPLE[b]} {1 + (a * b) % 3}" for a in range(8) for b in range(a + 1, 8)
    ][:20]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1 20\n" + "\n".join(genuine + impostor) + "\n")
    return images, pairs


def _quality_csvs(tmp_path: Path, images: Path) -> tuple[Path, Path]:
    rows = []
    rng = np.random.default_rng(0)
    for name in PEOPLE:
        for i in (1, 2, 3):
            path = str(images / name / f"{name}_{i:04d}.jpg")
            if (name, i) == BLACK:
                rows.append({"path": path, "face": "", "score": "", "det_prob": "", "status": "no_face"})
                continue
            good = 0.1 if (name, i) in BAD else 0.8 + 0.1 * rng.uniform()
            rows.append({"path": path, "face": 0, "score": good, "det_prob": 0.99, "status": "ok"})
            rows.append({"path": path, "face": 1, "score": 0.05, "det_prob": 0.6, "status": "ok"})  # a background face
    oracle = tmp_path / "oracle.csv"
    pd.DataFrame(rows).to_csv(oracle, index=False)
    simple = tmp_path / "noise.csv"
    keys = [f"{n}/{n}_{i:04d}.jpg" for n in PEOPLE for i in (1, 2, 3)]
    pd.DataFrame({"path": keys, "score": rng.uniform(size=len(keys))}).to_csv(simple, index=False)
    return oracle, simple


@pytest.fixture()
def stubs(monkeypatch):
    monkeypatch.setattr(ev, "load_models", lambda device=None: (StubDetector(), StubRecognizer()))


def _run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _one_line_error(result):
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------------------------
# mos


def _mos_files(tmp_path):
    rng = np.random.default_rng(5)
    n = 60
    x = rng.uniform(0, 1, n)
    mos = 1 + 4 / (1 + np.exp(-(x - 0.5) / 0.15)) + rng.normal(0, 0.3, n)
    names = [f"img_{i:03d}.png" for i in range(n)]
    rows = [
        {"path": f"/data/set/{nm}", "face": 0, "score": s, "det_prob": 0.99, "status": "ok"}
        for nm, s in zip(names, x, strict=True)
    ]
    rows += [{"path": f"/data/set/{nm}", "face": 1, "score": 0.0, "det_prob": 0.5, "status": "ok"} for nm in names[:10]]
    rows.append({"path": "/data/set/extra.png", "face": "", "score": "", "det_prob": "", "status": "no_face"})
    scores = tmp_path / "q.csv"
    pd.DataFrame(rows).to_csv(scores, index=False)
    labels = tmp_path / "mos.csv"
    pd.DataFrame({"image_name": names + ["extra.png", "unknown.png"], "MOS": list(mos) + [3.0, 2.0]}).to_csv(
        labels, index=False
    )
    return scores, labels, x, mos


def test_mos_prints_metrics_with_intervals(tmp_path):
    scores, labels, x, mos = _mos_files(tmp_path)
    out = tmp_path / "r.json"
    result = _run(
        [
            "evaluate",
            "mos",
            "--scores",
            str(scores),
            "--labels",
            str(labels),
            "--label-column",
            "MOS",
            "--bootstrap",
            "100",
            "--json",
            str(out),
        ]
    )
    assert result.exit_code == 0, result.output
    expected = agreement(x, mos, n_bootstrap=100, seed=0)
    assert f"SRCC     {expected.srcc:.4f}  [{expected.srcc_ci[0]:.4f}, {expected.srcc_ci[1]:.4f}]" in result.output
    assert f"PLCC     {expected.plcc:.4f}" in result.output and f"RMSE     {expected.rmse:.4f}" in result.output
    assert "60 used of 62 labelled (1 without a score, 1 not in the score CSV)" in result.output
    assert "4-parameter logistic" in result.output
    data = json.loads(out.read_text())
    assert data["srcc"] == pytest.approx(expected.srcc) and data["n_matched"] == 60


def test_mos_bad_inputs(tmp_path):
    scores, labels, _, _ = _mos_files(tmp_path)
    r = _run(["evaluate", "mos", "--scores", str(scores), "--labels", str(labels)])  # no 'mos' column
    assert r.exit_code == 1 and "no label column 'mos'" in _one_line_error(r)
    r = _run(["evaluate", "mos", "--scores", str(tmp_path / "nope.csv"), "--labels", str(labels)])
    assert r.exit_code == 2
    r = _run(["evaluate", "mos", "--scores", str(scores), "--labels", str(labels), "--bootstrap", "-3"])
    assert r.exit_code == 2
    other = tmp_path / "other.csv"
    pd.DataFrame({"path": ["a.png", "b.png", "c.png"], "mos": [1, 2, 3]}).to_csv(other, index=False)
    r = _run(["evaluate", "mos", "--scores", str(scores), "--labels", str(other)])
    assert r.exit_code == 1 and "only 0 labelled images have a score" in _one_line_error(r)


# ---------------------------------------------------------------------------------------
# edc


def test_edc_end_to_end_with_stubs(tmp_path, lfw_like, stubs):
    images, pairs = lfw_like
    oracle, noise = _quality_csvs(tmp_path, images)
    plot, table = tmp_path / "edc.png", tmp_path / "edc.csv"
    r = _run(
        [
            "evaluate",
            "edc",
            "--pairs",
            str(pairs),
            "--images",
            str(images),
            "--scores",
            str(oracle),
            str(noise),
            "--baselines",
            "detprob,sharpness,exposure,eye_distance,random",
            "--fmr",
            "0.1,1e-3",
            "--plot",
            str(plot),
            "--table",
            str(table),
        ]
    )
    assert r.exit_code == 0, r.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    df = pd.read_csv(table)
    assert list(df["source"]) == ["oracle", "noise", "detprob", "sharpness", "exposure", "eye_distance", "random"]
    assert "1 without a face" in r.output and "not resolvable" in r.output
    row = df.set_index("source")
    # The oracle marks exactly the photos that break recognition: FNMR reaches 0 within 20 %.
    assert row.loc["oracle", "fnmr_0@fmr=1e-1"] > 0
    assert row.loc["oracle", "fnmr_0.2@fmr=1e-1"] == 0
    assert row.loc["oracle", "pauc_0.2@fmr=1e-1"] < row.loc["random", "pauc_0.2@fmr=1e-1"]
    # The black photo (no face) is unrated by the oracle (listed with no score) and the detector baselines.
    assert row.loc["oracle", "n_unrated"] == 1 and row.loc["detprob", "n_unrated"] == 1
    assert row.loc["random", "n_unrated"] == 0


@pytest.mark.parametrize("fraction", ["1", "0.5"])
def test_edc_degrade_on_the_fly_equals_degrade_set_on_disk(tmp_path, lfw_like, stubs, fraction):
    images, pairs = lfw_like
    spec = "blur:2,noise:1"
    t1, t2 = tmp_path / "t1.csv", tmp_path / "t2.csv"
    r = _run(
        [
            "evaluate",
            "edc",
            "--pairs",
            str(pairs),
            "--images",
            str(images),
            "--baselines",
            "sharpness,random",
            "--degrade",
            spec,
            "--degrade-fraction",
            fraction,
            "--seed",
            "3",
            "--table",
            str(t1),
        ]
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "degraded"
    r = _run(
        [
            "evaluate",
            "degrade-set",
            "--images",
            str(images),
            "--degrade",
            spec,
            "--degrade-fraction",
            fraction,
            "--seed",
            "3",
            "--out",
            str(out),
            "--pairs",
            str(pairs),
        ]
    )
    assert r.exit_code == 0, r.output
    assert sorted(out.glob("*/*.png")) and not list(out.glob("*/*.jpg"))
    r = _run(
        [
            "evaluate",
            "edc",
            "--pairs",
            str(pairs),
            "--images",
            str(out),
            "--baselines",
            "sharpness,random",
            "--table",
            str(t2),
        ]
    )
    assert r.exit_code == 0, r.output
    a, b = pd.read_csv(t1), pd.read_csv(t2)
    described = "blur:2,noise:1" if fraction == "1" else "blur:2,noise:1 on 50% of images"
    assert (a["degrade"] == described).all() and (b["degrade"] == "none").all()
    pd.testing.assert_frame_equal(a.drop(columns="degrade"), b.drop(columns="degrade"))
    # Copies left pristine by the fraction are pixel-identical to the originals.
    pristine = sum(
        np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(images / p.parent.name / (p.stem + ".jpg"))))
        for p in out.glob("*/*.png")
    )
    n = len(list(out.glob("*/*.png")))
    assert pristine == 0 if fraction == "1" else 0 < pristine < n
    t0 = tmp_path / "t0.csv"
    _run(
        [
            "evaluate",
            "edc",
            "--pairs",
            str(pairs),
            "--images",
            str(images),
            "--baselines",
            "sharpness,random",
            "--table",
            str(t0),
        ]
    )
    assert not pd.read_csv(t0)["threshold@fmr=1e-2"].equals(a["threshold@fmr=1e-2"])


def test_degrade_plan_selects_a_seeded_fraction():
    plan = ev.DegradePlan.parse("jpeg:2", 0.3, seed=1)
    chosen = [plan.selected(f"P/P_{i:04d}") for i in range(2000)]
    assert np.mean(chosen) == pytest.approx(0.3, abs=0.03)
    assert chosen == [ev.DegradePlan.parse("jpeg:2", 0.3, seed=1).selected(f"P/P_{i:04d}") for i in range(2000)]
    assert chosen != [ev.DegradePlan.parse("jpeg:2", 0.3, seed=2).selected(f"P/P_{i:04d}") for i in range(2000)]
    assert not ev.DegradePlan.parse(None).selected("x") and ev.DegradePlan.parse(None).describe() == "none"
    with pytest.raises(InvalidArgumentError, match="fraction"):
        ev.DegradePlan.parse("jpeg:2", 0.0)


@pytest.mark.parametrize(
    "extra, code, fragment",
    [
        (["--baselines", "brightness"], 2, "unknown baseline"),
        (["--baselines", "random", "--degrade", "sparkle:2"], 2, "unknown degradation kind"),
        (["--baselines", "random", "--degrade", "blur:9"], 2, "1..5"),
        (["--baselines", "random", "--fmr", "2"], 2, "(0, 1)"),
        (["--baselines", "random", "--fmr", "x"], 2, "comma-separated numbers"),
        ([], 2, "at least one quality source"),
        (["--baselines", "random", "--degrade-fraction", "0.5"], 2, "needs --degrade"),
        (["--baselines", "random", "--degrade", "blur:1", "--degrade-fraction", "0"], 2, "--degrade-fraction"),
    ],
)
def test_edc_usage_errors(lfw_like, stubs, extra, code, fragment):
    images, pairs = lfw_like
    r = _run(["evaluate", "edc", "--pairs", str(pairs), "--images", str(images), *extra])
    assert r.exit_code == code
    assert fragment in r.output


def test_edc_runtime_errors_are_one_line(tmp_path, lfw_like, stubs, monkeypatch):
    images, pairs = lfw_like
    bad = tmp_path / "bad.csv"
    bad.write_text("path,quality\na.jpg,1\n")
    r = _run(["evaluate", "edc", "--pairs", str(pairs), "--images", str(images), "--scores", str(bad)])
    assert r.exit_code == 1 and "no score column 'score'" in _one_line_error(r)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _run(["evaluate", "edc", "--pairs", str(pairs), "--images", str(empty), "--baselines", "random"])
    assert r.exit_code == 1 and "none of the" in _one_line_error(r)
    broken = tmp_path / "pairs_bad.txt"
    broken.write_text("1 2\nA 1 2\n")
    r = _run(["evaluate", "edc", "--pairs", str(broken), "--images", str(images), "--baselines", "random"])
    assert r.exit_code == 1 and "expected 4 pair lines" in _one_line_error(r)


def test_pair_distances_cache_embeddings_per_image(lfw_like):
    images, pairs_path = lfw_like
    from faceiqa.evaluation.verification import read_pairs

    class Counting(StubRecognizer):
        calls = 0

        def embed(self, chips):
            Counting.calls += len(chips)
            return super().embed(chips)

    pairs = read_pairs(pairs_path)
    scores = ev.compute_pair_distances(pairs, images, detector=StubDetector(), recognizer=Counting(), batch_size=4)
    n_images = len({k for pair in scores.keys for k in pair})
    assert Counting.calls == n_images - 1  # each image once; the black one has no face
    assert scores.count("no_face") == 1
    assert np.isinf(scores.distances).sum() == sum(
        ev.image_key(f"{BLACK[0]}/{BLACK[0]}_{BLACK[1]:04d}") in k for k in scores.keys
    )

    class Batched(StubDetector):
        batches: list[int] = []

        def detect_batch(self, images):
            Batched.batches.append(len(images))
            return [self.detect(im) for im in images]

    batched = ev.compute_pair_distances(pairs, images, detector=Batched(), recognizer=StubRecognizer(), batch_size=5)
    assert Batched.batches and max(Batched.batches) == 5 and sum(Batched.batches) == n_images
    assert np.array_equal(batched.distances, scores.distances)
    cache: dict = {}
    ev.compute_pair_distances(pairs, images, detector=StubDetector(), recognizer=Counting(), cache=cache)
    before = Counting.calls
    again = ev.compute_pair_distances(pairs, images, detector=StubDetector(), recognizer=Counting(), cache=cache)
    assert Counting.calls == before and np.array_equal(again.distances, scores.distances)


# ---------------------------------------------------------------------------------------
# degrade-set


def test_degrade_set_never_overwrites_and_refuses_other_specs(tmp_path, lfw_like):
    images, _ = lfw_like
    out = tmp_path / "d"
    r = _run(["evaluate", "degrade-set", "--images", str(images), "--degrade", "jpeg:3", "--out", str(out)])
    assert r.exit_code == 0 and "24 written" in r.output
    target = out / "Person_A" / "Person_A_0001.png"
    target.write_bytes(b"keep me")
    r = _run(["evaluate", "degrade-set", "--images", str(images), "--degrade", "jpeg:3", "--out", str(out)])
    assert r.exit_code == 0 and "0 written, 24 already present" in r.output
    assert target.read_bytes() == b"keep me"
    for other in (
        ["--degrade", "jpeg:4"],
        ["--degrade", "jpeg:3", "--seed", "1"],
        ["--degrade", "jpeg:3", "--degrade-fraction", "0.5"],
    ):
        r = _run(["evaluate", "degrade-set", "--images", str(images), *other, "--out", str(out)])
        assert r.exit_code == 1 and "use another folder" in _one_line_error(r), other
    r = _run(["evaluate", "degrade-set", "--images", str(images), "--degrade", "jpeg:3", "--out", str(images / "x")])
    assert r.exit_code == 1 and "must not be the image folder or inside it" in _one_line_error(r)
    r = _run(["evaluate", "degrade-set", "--images", str(images), "--degrade", "jpeg", "--out", str(out)])
    assert r.exit_code == 2 and "no level" in r.output


# ---------------------------------------------------------------------------------------
# monotonicity


def _sharpness_scores(images):
    return np.array([sharpness(im) for im in images])


def test_monotonicity_of_a_sharpness_score():
    rng = np.random.default_rng(0)
    crops = [np.clip(128 + rng.normal(0, 25, (96, 96, 3)), 0, 255).astype(np.uint8) for _ in range(4)]
    rows = ev.monotonicity(crops, lambda ims, owners: _sharpness_scores(ims), kinds=["blur", "defocus", "occlusion"], seed=1)
    by_kind = {r.kind: r for r in rows}
    assert by_kind["blur"].mean_srcc == -1.0 and by_kind["blur"].std_srcc == 0.0
    assert by_kind["defocus"].mean_srcc == -1.0 and by_kind["blur"].n_images == 4
    sharp = _sharpness_scores(crops)
    assert by_kind["blur"].score_first == pytest.approx(float(np.mean(sharp)))  # level 0 is the pristine crop
    assert by_kind["blur"].score_last < 0.5 * by_kind["blur"].score_first
    constant = ev.monotonicity(crops, lambda ims, owners: np.ones(len(ims)), kinds=["noise"])
    assert constant[0].n_constant == 4 and np.isnan(constant[0].mean_srcc)
    assert constant[0].score_first == constant[0].score_last == 1.0
    rising = ev.monotonicity(crops, lambda ims, owners: -_sharpness_scores(ims), kinds=["blur"])
    assert rising[0].mean_srcc == 1.0
    with pytest.raises(InvalidArgumentError, match="returned 1 scores"):
        ev.monotonicity(crops, lambda ims, owners: np.ones(1), kinds=["blur"])


@dataclass
class _Scores:
    score: np.ndarray
    raw: np.ndarray


class StubScorer:
    config = SimpleNamespace(template="hyperiqa-224")

    def score_crops(self, crops, extra=None):
        assert crops.shape[1:] == (224, 224, 3) and extra is None
        s = _sharpness_scores(list(crops))
        return _Scores(s / (1 + s), s)


def test_monotonicity_cli_with_a_stub_scorer(tmp_path, lfw_like, monkeypatch):
    images, _ = lfw_like
    monkeypatch.setattr(ev, "load_quality_scorer", lambda weights="default", device=None: StubScorer())
    monkeypatch.setattr(ev, "load_detector", lambda device=None: StubDetector())
    table = tmp_path / "m.md"
    r = _run(
        [
            "evaluate",
            "monotonicity",
            "--images",
            str(images),
            "--limit",
            "5",
            "--kinds",
            "blur,motion-blur",
            "--table",
            str(table),
        ]
    )
    assert r.exit_code == 0, r.output
    assert "5 used, 0 skipped" in r.output
    text = table.read_text()
    assert "| blur " in text and "| motion_blur " in text and "-1.0000" in text


# ---------------------------------------------------------------------------------------
# resolution ranking


class StubAssessor:
    """Detection by StubDetector (faces scale with the photo); the score is a function of
    the face crop (cut from the box, no alignment) and the eye distance."""

    def __init__(self, score_fn, min_width: int = 0):
        self.score_fn = score_fn
        self.min_width = min_width
        self.detector = self

    def detect(self, image):
        return [] if image.shape[1] < self.min_width else StubDetector().detect(image)

    def align(self, image, faces):
        x1, y1, x2, y2 = (int(round(v)) for v in faces[0].box)
        return [image[y1:y2, x1:x2]]

    def score_crops(self, crops, eye_distance):
        s = float(self.score_fn(crops[0], eye_distance[0]))
        return _Scores(np.array([s]), np.array([s]))


@pytest.fixture()
def noise_photos(tmp_path) -> list[Path]:
    rng = np.random.default_rng(3)
    paths = []
    for i in range(3):
        path = tmp_path / f"noise_{i}.png"
        Image.fromarray(np.clip(128 + rng.normal(0, 40, (120, 120, 3)), 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def test_resolution_ranking_known_answers(noise_photos):
    factors = (1, 1.5, 2, 3)
    sharp = StubAssessor(lambda crop, eye: sharpness(crop))
    r = ev.resolution_ranking(noise_photos, sharp, factors=factors, mode="down-up")
    assert (r.n_faces, r.n_lost, r.mean_srcc, r.in_order) == (3, 0, -1.0, 1.0)
    assert r.step_order == (1.0, 1.0, 1.0) and r.mean_scores[0] > r.mean_scores[-1]
    rising = ev.resolution_ranking(noise_photos, StubAssessor(lambda crop, eye: -sharpness(crop) + 1e6), factors=factors)
    assert rising.mean_srcc == 1.0 and rising.in_order == 0.0 and rising.step_order == (0.0, 0.0, 0.0)
    # Real pixel loss: the eye distance shrinks with the photo; a face the detector loses at
    # the smallest size counts as the lowest score, so the ranking still holds.
    by_pixels = StubAssessor(lambda crop, eye: eye / 100, min_width=30)
    r = ev.resolution_ranking(noise_photos, by_pixels, factors=(1, 2, 6), mode="down")
    assert r.n_lost == 3 and r.in_order == 1.0 and np.isnan(r.mean_scores[2])
    assert r.mean_scores[0] == pytest.approx(2 * r.mean_scores[1], rel=0.02)
    constant = ev.resolution_ranking(noise_photos, StubAssessor(lambda crop, eye: 0.5), factors=factors)
    assert constant.in_order == 0.0 and constant.step_order == (0.0, 0.0, 0.0) and np.isnan(constant.mean_srcc)
    assert constant.step_gain == (0.0, 0.0, 0.0) and rising.step_gain == (1.0, 1.0, 1.0)


def test_resolution_ranking_counts_gains_and_falls_of_small_faces(noise_photos):
    by_pixels = StubAssessor(lambda crop, eye: eye / 100)
    everything_small = ev.resolution_ranking(noise_photos, by_pixels, factors=(1, 2, 3), mode="down", small_ied=1e6)
    assert everything_small.n_small == (3, 3) and everything_small.small_fall == (1.0, 1.0)
    assert everything_small.small_fall_all == 1.0 and everything_small.step_gain == (0.0, 0.0)
    nothing_small = ev.resolution_ranking(noise_photos, by_pixels, factors=(1, 2, 3), mode="down", small_ied=0.0)
    assert nothing_small.n_small == (0, 0) and all(np.isnan(v) for v in nothing_small.small_fall)
    assert np.isnan(nothing_small.small_fall_all)
    # A model that rewards shrinking: every step gains, no small face falls.
    backwards = StubAssessor(lambda crop, eye: 1.0 - eye / 100)
    r = ev.resolution_ranking(noise_photos, backwards, factors=(1, 2, 3), mode="down", small_ied=1e6)
    assert r.step_gain == (1.0, 1.0) and r.small_fall == (0.0, 0.0)
    # In down-up mode the face keeps its pixel size: the eye distance is the original one.
    du = ev.resolution_ranking(noise_photos, by_pixels, factors=(1, 2), mode="down-up", small_ied=0.0)
    assert du.n_small == (0,)


@pytest.mark.parametrize(("factors", "mode"), [((2, 1), "down"), ((1,), "down"), ((0.5, 1), "down"), ((1, 2), "up")])
def test_resolution_ranking_rejects_bad_arguments(noise_photos, factors, mode):
    with pytest.raises(InvalidArgumentError):
        ev.resolution_ranking(noise_photos, StubAssessor(lambda crop, eye: 0.5), factors=factors, mode=mode)


def test_resolution_cli_with_a_stub_assessor(tmp_path, noise_photos, monkeypatch):
    import faceiqa.api

    monkeypatch.setattr(faceiqa.api, "FaceQualityAssessor", lambda weights, device=None: StubAssessor(lambda c, e: sharpness(c)))
    r = _run(["evaluate", "resolution", "--images", str(tmp_path), "--factors", "1,2,4", "--mode", "both"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "falls per step" in lines[0]
    down_up = [ln for ln in lines if ln.startswith("down-up")][0].split()
    assert down_up[1:5] == ["3", "-1.0000", "1.000", "0"] and down_up[-2:] == ["1.00", "1.00"]
    gains = [ln for ln in lines if ln.startswith("down-up") and "gains > 0.01 per step: 0.00 0.00" in ln]
    assert gains and "px between the eyes" in gains[0]
    r = _run(["evaluate", "resolution", "--images", str(tmp_path), "--factors", "2,1"])
    assert r.exit_code == 1 and "increasing" in _one_line_error(r)


# ---------------------------------------------------------------------------------------
# CSV reading and key matching


def test_report_csv_uses_the_most_probable_face(tmp_path):
    csv = tmp_path / "r.csv"
    pd.DataFrame(
        {
            "path": ["/x/a.jpg", "/x/a.jpg", "/x/b.jpg", "/x/c.jpg"],
            "face": [0, 1, 0, ""],
            "score": [0.2, 0.7, 0.4, ""],
            "det_prob": [0.80, 0.95, 0.9, ""],
            "status": ["ok", "ok", "ok", "unreadable"],
        }
    ).to_csv(csv, index=False)
    src = ev.read_quality_csv(csv)
    assert src.values == {"/x/a": 0.7, "/x/b": 0.4}
    assert src.failed == {"/x/c": "unreadable"}
    idx = src.index()
    assert idx.find("a") == "/x/a" and idx.find("x/b") == "/x/b"
    assert idx.find("y/a") is None  # same file name, another folder


def test_key_index_prefers_the_longest_matching_suffix():
    idx = ev.KeyIndex(["/d1/Ann/Ann_0001", "/d2/Bob/Ann_0001", "/d1/Bob/Bob_0001"])
    assert idx.find("Ann/Ann_0001") == "/d1/Ann/Ann_0001"
    assert idx.find("Ann_0001") is None  # two files of that name: ambiguous
    assert idx.find("Bob/Bob_0001") == "/d1/Bob/Bob_0001"
    assert ev.image_key("imgs/Ann/Ann_0001.JPG") == "imgs/Ann/Ann_0001"


def test_lfw_pairs_resolve_to_real_photos(lfw_dir):
    from faceiqa.evaluation.verification import read_pairs

    pairs = read_pairs(lfw_dir / "pairs.txt")
    keys = ev.pair_image_keys(pairs[:5])
    for a, b in keys:
        assert ev.resolve_image_path(lfw_dir / "images" / (a + ".jpg")).is_file()
        assert ev.resolve_image_path(lfw_dir / "images" / (b + ".jpg")).is_file()


@pytest.mark.slow
def test_edc_with_the_real_detector_and_recognizer(tmp_path, lfw_dir):
    pytest.importorskip("facenet_pytorch")
    from faceiqa.evaluation.verification import read_pairs

    try:
        detector, recognizer = ev.load_models("cpu")
    except FaceIQAError as exc:
        pytest.skip(f"real models unavailable: {exc}")
    pairs = read_pairs(lfw_dir / "pairs.txt")
    few = [p for p in pairs if p.genuine][:3] + [p for p in pairs if not p.genuine][:3]
    scores = ev.compute_pair_distances(
        few, lfw_dir / "images", detector=detector, recognizer=recognizer, baselines=["detprob", "eye_distance"]
    )
    assert scores.count("ok") == len(scores.images)
    assert np.all(np.isfinite(scores.distances))
    # dlib's same-person threshold is 0.6.
    assert scores.distances[:3].max() < 0.6 < scores.distances[3:].min()
    assert all(
        0.9 <= r.baselines["detprob"] <= 1.0 and r.baselines["eye_distance"] > 20 for r in scores.images.values()
    )


def test_missing_evaluation_extras_give_a_one_line_error(tmp_path, monkeypatch):
    import faceiqa

    scores, labels, _, _ = _mos_files(tmp_path)
    monkeypatch.delattr(faceiqa, "evaluation")
    for name in [m for m in sys.modules if m.startswith("faceiqa.evaluation")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "scipy", None)
    r = _run(["evaluate", "mos", "--scores", str(scores), "--labels", str(labels), "--label-column", "MOS"])
    assert r.exit_code == 1 and "needs scipy: pip install 'faceiqa[eval]'" in _one_line_error(r)


def test_mixed_degrade_plan_draws_one_seeded_step_per_image():
    plan = ev.DegradePlan.parse("mix", fraction=1.0, seed=2)
    assert plan.active and plan.spec == "mix"
    steps = {k: tuple(plan.steps_for(k)) for k in ("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg")}
    assert all(len(s) == 1 and 1 <= s[0][1] <= 5 for s in steps.values())
    assert len(set(steps.values())) > 1  # not the same for every image
    assert steps == {k: tuple(plan.steps_for(k)) for k in steps}
    img = np.full((64, 64, 3), 128, np.uint8)
    img[::4] = 30
    assert np.array_equal(plan.apply(img, "a.jpg"), plan.apply(img, "a.jpg"))


# ---------------------------------------------------------------------------------------
# real hq vs lq photos


def _textured_photo(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.clip(128 + rng.normal(0, 45, (size, size, 3)), 0, 255).astype(np.uint8)
    return img


@pytest.fixture()
def realfaces_root(tmp_path) -> Path:
    """4 sharp 400-px hq photos (stub IED 80 px) and 3 blurred lq ones (66 px), in the shared set's layout."""
    import cv2

    root = tmp_path / "realfaces"
    (root / "hq").mkdir(parents=True)
    (root / "lq").mkdir()
    lines = ["file,quality,eye_distance_px"]
    for i in range(4):
        Image.fromarray(_textured_photo(400, i)).save(root / "hq" / f"h{i}.png")
        lines.append(f"hq/h{i}.png,hq,80.0")
    for i in range(3):
        blurred = cv2.GaussianBlur(_textured_photo(330, 10 + i), (0, 0), 2.5)  # stub IED 66 px
        Image.fromarray(blurred).save(root / "lq" / f"l{i}.png")
        lines.append(f"lq/l{i}.png,lq,")
    (root / "index.csv").write_text("\n".join(lines) + "\n")
    return root


def test_roc_auc_known_answers():
    assert ev.roc_auc([3, 4], [1, 2]) == 1.0 and ev.roc_auc([1, 2], [3, 4]) == 0.0
    assert ev.roc_auc([1, 1], [1, 1]) == 0.5 and ev.roc_auc([2, 0], [1]) == 0.5
    with pytest.raises(InvalidArgumentError):
        ev.roc_auc([], [1])


def test_realfaces_separates_sharp_from_blurred_and_shrinks_hq_only(realfaces_root):
    photos = ev.read_index(realfaces_root)
    assert [p.quality for p in photos].count("hq") == 4 and len(photos) == 7
    sharp = StubAssessor(lambda crop, eye: sharpness(crop))
    sharp.detector = StubDetector()
    scores = ev.score_realfaces(photos, sharp, baselines=["sharpness", "eye_distance"], shrink=(56, 71), seed=1)
    assert len(scores) == 14 and all(s.found for s in scores)
    shrunk_hq = [s for s in scores if s.condition == ev.HQ_SHRUNK and s.photo.quality == "hq"]
    assert all(56 - 1 <= s.eye_distance <= 71 + 1 for s in shrunk_hq)
    assert [ev.shrink_target(s.photo, (56, 71), 1) for s in shrunk_hq] != [ev.shrink_target(s.photo, (56, 71), 2) for s in shrunk_hq]
    as_is_lq = {s.photo.path: s.values for s in scores if s.condition == ev.AS_IS and s.photo.quality == "lq"}
    assert all(s.values == as_is_lq[s.photo.path] for s in scores if s.condition == ev.HQ_SHRUNK and s.photo.quality == "lq")
    table = ev.realfaces_table(scores).set_index(["condition", "measure"])
    assert table.loc[(ev.AS_IS, "model"), "auc"] == 1.0 and table.loc[(ev.AS_IS, "sharpness"), "auc"] == 1.0
    assert table.loc[(ev.AS_IS, "eye_distance"), "auc"] == 1.0  # 80 px vs 66 px faces
    assert table.loc[(ev.HQ_SHRUNK, "eye_distance"), "auc"] < 1.0  # size no longer separates them
    assert table.loc[(ev.AS_IS, "model"), "n_hq"] == 4 and table.loc[(ev.AS_IS, "model"), "n_lq"] == 3


def test_realfaces_index_errors_are_one_line(tmp_path, realfaces_root):
    with pytest.raises(InvalidArgumentError, match="no index.csv"):
        ev.read_index(tmp_path)
    index = realfaces_root / "index.csv"
    good = index.read_text()
    for text, match in [
        (good.replace("quality", "class"), "missing column"),
        (good.replace(",lq,", ",medium,", 1), "hq or lq"),
        (good.replace("h0.png", "gone.png", 1), "not found"),
        ("file,quality\nhq/h0.png,hq\n", "both hq and lq"),
    ]:
        index.write_text(text)
        with pytest.raises(InvalidArgumentError, match=match) as info:
            ev.read_index(realfaces_root)
        assert "\n" not in str(info.value)


def test_realfaces_cli_with_a_stub_assessor(tmp_path, realfaces_root, monkeypatch):
    import faceiqa.api

    def make(weights, device=None):
        a = StubAssessor(lambda c, e: sharpness(c))
        a.detector = StubDetector()
        return a

    monkeypatch.setattr(faceiqa.api, "FaceQualityAssessor", make)
    out = tmp_path / "scores.csv"
    r = _run(["evaluate", "realfaces", "--root", str(realfaces_root), "--scores", str(out), "--baselines", "sharpness"])
    assert r.exit_code == 0, r.output
    assert "| as is " in r.output and "| hq shrunk " in r.output and "auc" in r.output
    rows = pd.read_csv(out)
    assert len(rows) == 14 and set(rows.columns) >= {"file", "quality", "condition", "model", "sharpness"}
    r = _run(["evaluate", "realfaces", "--root", str(realfaces_root), "--shrink", "70"])
    assert r.exit_code == 2 and "low,high" in r.output


def test_the_shared_realfaces_index_reads(shared_dir):
    root = shared_dir / "data" / "realfaces"
    if not (root / "index.csv").is_file():
        pytest.skip("shared/data/realfaces not present")
    photos = ev.read_index(root)
    assert sum(p.quality == "hq" for p in photos) == 68 and sum(p.quality == "lq" for p in photos) == 51


@pytest.mark.tiny_model
def test_monotonicity_of_a_real_scorer_with_a_face_size_input(noise_photos):
    from official_hyperiqa import tiny_random_hypernet

    from faceiqa.models.config import ModelConfig
    from faceiqa.models.scorer import QualityScorer

    scorer = QualityScorer(
        tiny_random_hypernet(extra=1), ModelConfig("tiny-face", 224, "hyperiqa-224", extra=("log2_resolution",)), device="cpu"
    )
    rows, skipped = ev.monotonicity_of_scorer(noise_photos, scorer=scorer, detector=StubDetector(), kinds=["blur"])
    assert skipped == 0 and rows[0].kind == "blur" and rows[0].n_images == 3


def test_score_bands_known_answers():
    from faceiqa.evaluation.edc_runs import SourceQuality

    # 1000 impostors at distance 1.0 .. 1.999; genuine pairs: low quality ones far apart.
    imp = np.linspace(1.0, 1.999, 1000)
    gen_q = np.array([0.1, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0])
    gen_d = np.array([1.5, np.inf, 1.2, 0.5, 0.4, 0.3, 0.2])
    scores = SimpleNamespace(distances=np.concatenate([gen_d, imp]), genuine=np.r_[np.ones(7, bool), np.zeros(1000, bool)])
    source = SourceQuality("q", np.concatenate([gen_q, np.full(1000, 0.5)]), 10, 0, 0, 0.0)
    bands, threshold = ev.score_bands(scores, source, [0, 0.3, 0.5, 0.7, 0.9, 1], fmr=1e-3)
    assert 1.0 < threshold < 1.001  # one impostor allowed at FMR 1e-3: only the closest (1.0) is accepted
    assert [b.n_genuine for b in bands] == [2, 1, 1, 1, 2]
    assert [b.fnmr for b in bands] == [1.0, 1.0, 0.0, 0.0, 0.0]  # the inf pair (no face) fails
    assert sum(b.share for b in bands) == pytest.approx(1.0)
    empty, _ = ev.score_bands(scores, source, [0, 0.05, 1])
    assert empty[0].n_genuine == 0 and np.isnan(empty[0].fnmr)
    with pytest.raises(InvalidArgumentError, match="increasing"):
        ev.score_bands(scores, source, [0.5, 0.3])


def test_edc_bands_print_what_a_threshold_means_per_score_csv(tmp_path, lfw_like, stubs):
    images, pairs = lfw_like
    oracle, noise = _quality_csvs(tmp_path, images)
    r = _run(["evaluate", "edc", "--pairs", str(pairs), "--images", str(images), "--scores", str(oracle), str(noise),
              "--baselines", "random", "--bands", "0,0.5,1"])
    assert r.exit_code == 0, r.output
    assert r.output.count("FNMR at FMR 1e-3") == 2  # one table per score CSV, none for baselines
    assert "| 0-0.5 " in r.output and "| 0.5-1 " in r.output
    bad = _run(["evaluate", "edc", "--pairs", str(pairs), "--images", str(images), "--scores", str(oracle), "--bands", "1,0"])
    assert bad.exit_code == 1 and "increasing" in bad.output
