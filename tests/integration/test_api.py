"""The Python API: ``FaceQualityAssessor`` (assess, assess_many, score_crops, filter).

Scores come from the tiny random-weight model (tests/tiny_models.py): they mean nothing,
only the plumbing is checked. Two kinds of tests:

- generated pictures with a scripted stand-in for MTCNN (``ScriptedDetector``), which
  always run: the face count and geometry are known exactly;
- real photos from ../shared/data with the real MTCNN detector (skipped when absent).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from imagefiles import write_bad_files
from PIL import Image
from scripted import EYE_DISTANCES, ScriptedDetector, picture, save_png
from tiny_models import TINY_SIZE, install_tiny_model, tiny_random_scorer

from faceiqa.api import FaceQualityAssessor, FilterResult, ImageAssessment
from faceiqa.errors import FaceIQAError, ImageReadError, InvalidArgumentError
from faceiqa.face.detection import FaceDetector
from faceiqa.output.decisions import Policy
from faceiqa.output.reports import Status

# --------------------------------------------------------------------------- helpers


pytestmark = pytest.mark.usefixtures("one_torch_thread")












@pytest.fixture(scope="module")
def scorer():
    return tiny_random_scorer()


def scripted(scorer, **kw) -> FaceQualityAssessor:
    """An assessor with the tiny random model and the scripted detector."""
    return FaceQualityAssessor(scorer=scorer, detector=ScriptedDetector(), **kw)


def scores_of(faces) -> list[float]:
    return [f.score for f in faces]


# --------------------------------------------------------------------------- assess (generated)


@pytest.mark.tiny_model
def test_assess_gives_identical_scores_for_path_pil_array_and_tensor(scorer, tmp_path):
    img = picture(2, seed=1)
    path = save_png(img, tmp_path / "two faces.png")
    a = scripted(scorer)
    tensor = torch.from_numpy(img).permute(2, 0, 1).float() / 255.0
    inputs = {
        "str path": str(path),
        "Path": path,
        "PIL": Image.open(path),
        "array": img,
        "float tensor": tensor,
        "uint8 tensor": torch.from_numpy(img).permute(2, 0, 1),
    }
    results = {name: a.assess(x) for name, x in inputs.items()}
    reference = results["array"]
    assert len(reference) == 2
    for name, faces in results.items():
        assert scores_of(faces) == scores_of(reference), name
        assert [f.raw_score for f in faces] == [f.raw_score for f in reference], name
        assert [f.box for f in faces] == [f.box for f in reference], name


@pytest.mark.tiny_model
def test_assess_returns_faces_largest_first_with_all_fields(scorer):
    a = scripted(scorer)
    faces = a.assess(picture(3, seed=2))
    assert [f.index for f in faces] == [0, 1, 2]
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    assert areas == sorted(areas, reverse=True)
    np.testing.assert_allclose([f.eye_distance for f in faces], EYE_DISTANCES, rtol=1e-5)
    for f in faces:
        assert len(f.box) == 4 and all(isinstance(v, float) for v in f.box)
        assert f.landmarks.shape == (5, 2)
        assert 0.0 <= f.det_prob <= 1.0
        assert 0.0 <= f.score <= 1.0 and np.isfinite(f.raw_score)
        # score is the registry mapping of raw_score
        assert f.score == pytest.approx(float(a.scorer.config.mapping(np.array([f.raw_score]))[0]), abs=1e-12)
    assert [f.flags for f in faces] == [(), (), ("small_face",)]
    assert [f.status for f in faces] == [Status.OK, Status.OK, Status.SMALL_FACE]
    # the threshold is an option: at 40 px the 36 px face is small too
    assert [f.flags for f in scripted(scorer, small_face=40).assess(picture(3, seed=2))] == [
        (),
        ("small_face",),
        ("small_face",),
    ]
    assert scripted(scorer).assess(picture(0, seed=3)) == []


@pytest.mark.tiny_model
def test_assess_raises_typed_errors_for_bad_input(scorer, tmp_path):
    a = scripted(scorer)
    with pytest.raises(ImageReadError, match="file not found"):
        a.assess(tmp_path / "missing.jpg")
    checked = 0
    for name, bad in write_bad_files(tmp_path / "bad").items():
        if bad.skip:
            continue
        with pytest.raises(ImageReadError) as info:
            a.assess(bad.path)
        assert bad.reason in str(info.value), name
        assert "\n" not in str(info.value)
        checked += 1
    assert checked >= 10
    for bad_array in (
        np.zeros((10, 10, 5), np.uint8),  # 5 channels
        np.full((10, 10, 3), 2.0),  # float out of [0, 1]
        np.zeros((10, 10, 3), np.int64),  # dtype
        np.zeros((0, 10, 3), np.uint8),  # empty
        torch.full((3, 8, 8), float("nan")),
        [[0, 1], [2, 3]],  # not an image type
        None,
    ):
        with pytest.raises(InvalidArgumentError):
            a.assess(bad_array)
    assert a.detector.calls == 0  # nothing bad reached the detector


# --------------------------------------------------------------------------- assess_many (generated)


def _mixed_inputs(tmp_path: Path) -> tuple[list, list[tuple[str, Status]]]:
    """Inputs of every kind, with the (source, status) each result must have."""
    bad = write_bad_files(tmp_path / "bad")
    items: list = []
    expect: list[tuple[str, Status]] = []
    for i, n in enumerate([1, 0, 3, 2, 1, 0, 1]):
        p = save_png(picture(n, seed=10 + i), tmp_path / f"p{i}.png")
        items.append(p)
        expect.append((str(p), Status.OK if n else Status.NO_FACE))
        if i % 2 == 0:  # interleave bad files
            b = [v for v in bad.values() if not v.skip][i]
            items.append(b.path)
            expect.append((str(b.path), Status.ERROR))
    items.insert(3, picture(2, seed=99))  # in-memory image
    expect.insert(3, ("<image 3>", Status.OK))
    items.append(np.zeros((4, 4, 7), np.uint8))  # bad in-memory array
    expect.append((f"<image {len(items) - 1}>", Status.ERROR))
    items.append(str(tmp_path / "missing.png"))
    expect.append((str(tmp_path / "missing.png"), Status.ERROR))
    return items, expect


@pytest.mark.parametrize("batch_size,read_workers", [(1, 0), (3, 1), (64, 2)])
@pytest.mark.tiny_model
def test_assess_many_one_result_per_input_in_order(scorer, tmp_path, batch_size, read_workers):
    items, expect = _mixed_inputs(tmp_path)
    a = scripted(scorer, batch_size=batch_size, read_workers=read_workers)
    results = list(a.assess_many(items))  # never raises for bad inputs
    assert [(r.source, r.status) for r in results] == expect
    for item, r in zip(items, results, strict=True):
        assert isinstance(r, ImageAssessment)
        if r.status is Status.ERROR:
            assert r.error and "\n" not in r.error and r.faces == ()
            assert [row.status for row in r.rows()] == [Status.ERROR]
            continue
        assert not r.error
        if r.status is Status.NO_FACE:
            assert r.faces == () and [row.face for row in r.rows()] == [None]
            continue
        # crops were batched across images: the same scores as one image at a time
        alone = a.assess(item)
        assert len(alone) == len(r.faces) >= 1
        np.testing.assert_allclose(scores_of(r.faces), scores_of(alone), rtol=0, atol=1e-6)
        np.testing.assert_allclose([f.raw_score for f in r.faces], [f.raw_score for f in alone], rtol=1e-5, atol=1e-7)
        assert [row.face for row in r.rows()] == list(range(len(r.faces)))


@pytest.mark.tiny_model
def test_assess_many_survives_unexpected_reader_failures(scorer, tmp_path, monkeypatch):
    import faceiqa.api as pipeline

    real = pipeline.to_rgb

    def flaky(image, **kw):
        if isinstance(image, Path) and image.name == "odd.png":
            raise RuntimeError("decoder crashed\nbadly")
        return real(image, **kw)

    monkeypatch.setattr(pipeline, "to_rgb", flaky)
    paths = [save_png(picture(1, seed=i), tmp_path / name) for i, name in enumerate(["a.png", "odd.png", "c.png"])]
    results = list(scripted(scorer).assess_many(paths))
    assert [r.status for r in results] == [Status.OK, Status.ERROR, Status.OK]
    assert "decoder crashed badly" in results[1].error and "RuntimeError" in results[1].error


@pytest.mark.tiny_model
def test_assess_many_same_input_twice_is_bit_identical(scorer, tmp_path):
    items, _ = _mixed_inputs(tmp_path)
    a = scripted(scorer, batch_size=4)
    first = [(r.source, r.error, [(f.score, f.raw_score, f.box) for f in r.faces]) for r in a.assess_many(items)]
    second = [(r.source, r.error, [(f.score, f.raw_score, f.box) for f in r.faces]) for r in a.assess_many(items)]
    assert first == second
    one = a.assess(items[0])
    assert [(f.score, f.raw_score) for f in one] == [(f.score, f.raw_score) for f in a.assess(items[0])]


class CountingInput:
    """A generator of pictures that records how many were taken."""

    def __init__(self, faces_per_picture: list[int]) -> None:
        self.faces = faces_per_picture
        self.taken = 0

    def __iter__(self):
        for i, n in enumerate(self.faces):
            self.taken += 1
            yield picture(n, seed=200 + i, size=(64, 80))


@pytest.mark.parametrize("faces", [[1] * 30, [0] * 30, [3, 0, 0, 1] * 8])
@pytest.mark.parametrize("read_workers", [0, 1])
@pytest.mark.tiny_model
def test_assess_many_streams_from_a_generator(scorer, faces, read_workers):
    source = CountingInput(faces)
    a = scripted(scorer, batch_size=2, read_workers=read_workers)
    results = a.assess_many(iter(source))
    first = next(results)
    # the first result comes before the input is used up (at most the read-ahead of the
    # readers and of the detection workers)
    assert source.taken <= 2 * read_workers + 4 + 2 + 2 * a.detect_workers + 1, source.taken
    assert first.source == "<image 0>"
    rest = list(results)
    assert source.taken == len(faces) and len(rest) == len(faces) - 1
    assert [len(r.faces) for r in [first, *rest]] == faces


@pytest.mark.tiny_model
def test_assess_many_yields_faceless_pictures_without_waiting_for_a_batch(scorer):
    # 40 pictures without a face and a large batch: results must still flow one by one
    source = CountingInput([0] * 40)
    a = scripted(scorer, batch_size=1000, read_workers=0, detect_workers=0)
    results = a.assess_many(source)
    next(results)
    assert source.taken == 1
    next(results)
    assert source.taken == 2


@pytest.mark.tiny_model
def test_assess_many_reports_progress_per_photo_before_the_batch_is_scored(scorer):
    # One face per picture and a batch of 1000: no result can come before the end, but the
    # progress callback moves with every photo whose faces were found.
    source = CountingInput([1] * 12)
    ticks: list[int] = []
    a = scripted(scorer, batch_size=1000, read_workers=0, detect_workers=0)
    results = a.assess_many(source, progress=lambda: ticks.append(source.taken))
    first = next(results)
    assert len(ticks) == 12 and ticks == sorted(ticks) and ticks[0] <= 2
    assert first.faces and len(list(results)) == 11


# --------------------------------------------------------------------------- score_crops (generated)


@pytest.mark.tiny_model
def test_score_crops_matches_assess_and_checks_its_input(scorer):
    a = scripted(scorer)
    img = picture(3, seed=5)
    faces = a.detector.detect(img)
    crops = a.align(img, faces)
    assert all(c.shape == (TINY_SIZE, TINY_SIZE, 3) and c.dtype == np.uint8 for c in crops)
    via_assess = a.assess(img)
    scores = a.score_crops(np.stack(crops))
    assert scores.score.tolist() == scores_of(via_assess)
    as_tensor = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
    np.testing.assert_allclose(a.score_crops(as_tensor).score, scores.score, rtol=0, atol=1e-6)
    assert a.score_crops(list(crops)).score.tolist() == scores.score.tolist()
    assert ((scores.score >= 0) & (scores.score <= 1)).all()
    with pytest.raises(InvalidArgumentError, match="crops must be"):
        a.score_crops(np.zeros((2, TINY_SIZE + 1, TINY_SIZE + 1, 3), np.uint8))
    with pytest.raises(InvalidArgumentError):
        a.score_crops(torch.full((1, 3, TINY_SIZE, TINY_SIZE), 3.0))


# --------------------------------------------------------------------------- filter (generated)


def _filter_folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for i, n in enumerate([1, 2, 3, 0, 1, 2]):
        save_png(picture(n, seed=300 + i), root / ("sub" if i % 2 else "") / f"p{i}.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.mark.tiny_model
def test_filter_splits_passed_and_failed_with_reasons(scorer, tmp_path):
    root = _filter_folder(tmp_path)
    a = scripted(scorer)
    every = a.filter(root, 0.0)  # a single folder path is accepted
    assert isinstance(every, FilterResult)
    by_path = {}
    for row in every.rows:
        by_path.setdefault(row.path, []).append(row)
    best = {p: max(r.score for r in rows) for p, rows in by_path.items() if rows[0].has_score}
    threshold = float(np.median(list(best.values())))

    result = a.filter([root], threshold, "best")
    decided = result.passed + result.failed
    assert sorted(d.path for d in decided) == sorted(by_path) and len(decided) == len(by_path) == 7
    assert {d.path for d in result.passed} == {p for p, s in best.items() if s >= threshold}
    assert 0 < len(result.passed) < len(best)
    for d in result.passed:
        assert d.passed and d.score >= threshold and ">=" in d.reason
    reasons = {Path(d.path).name: d.reason for d in result.failed}
    assert reasons["p3.png"] == "no face"
    assert reasons["broken.jpg"].startswith("error: ")
    assert all("<" in r for n, r in reasons.items() if n not in ("p3.png", "broken.jpg"))
    # the passed and failed lists keep the input order
    order = [row.path for row in result.rows]
    for part in (result.passed, result.failed):
        assert [d.path for d in part] == sorted((d.path for d in part), key=order.index)

    # "all" is at least as strict as "best"
    strict = a.filter(root, threshold, Policy.ALL)
    assert {d.path for d in strict.passed} <= {d.path for d in result.passed}


@pytest.mark.tiny_model
def test_filter_checks_arguments_before_any_work(scorer, tmp_path):
    root = _filter_folder(tmp_path)
    a = scripted(scorer)
    for bad in (dict(min_score=1.5), dict(min_score=float("nan")), dict(min_score="high"), dict(min_score=None)):
        with pytest.raises(InvalidArgumentError, match="threshold"):
            a.filter(root, **bad)
    with pytest.raises(InvalidArgumentError, match="policy"):
        a.filter(root, 0.5, "median")
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        a.filter([root, tmp_path / "nope"], 0.5)
    assert a.detector.calls == 0


def test_constructor_rejects_bad_arguments(scorer, tmp_path, monkeypatch):
    for kw in (dict(batch_size=0), dict(batch_size=True), dict(read_workers=-1), dict(small_face=-1.0)):
        with pytest.raises(InvalidArgumentError):
            FaceQualityAssessor(scorer=scorer, detector=ScriptedDetector(), **kw)
    install_tiny_model(tmp_path / "model", monkeypatch)
    for device in ("gpu", "cuda:x"):
        with pytest.raises(InvalidArgumentError, match="device"):
            FaceQualityAssessor("tiny-random", device=device)
    if not torch.cuda.is_available():
        with pytest.raises(InvalidArgumentError, match="CUDA is not available"):
            FaceQualityAssessor("tiny-random", device="cuda")
    with pytest.raises(FaceIQAError):
        FaceQualityAssessor("no-such-weights", device="cpu")


@pytest.mark.tiny_model
def test_library_prints_nothing(scorer, tmp_path, capfd):
    items, _ = _mixed_inputs(tmp_path)
    a = scripted(scorer, batch_size=2)
    list(a.assess_many(items))
    a.assess(items[0])
    a.filter(tmp_path, 0.5)
    for bad in (tmp_path / "missing.png", np.zeros((3, 3, 9), np.uint8)):
        with pytest.raises(FaceIQAError):
            a.assess(bad)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# --------------------------------------------------------------------------- real photos


@pytest.fixture(scope="module")
def mtcnn():
    return FaceDetector(device="cpu")


@pytest.fixture(scope="module")
def real_photos(lfw_dir, detect_samples, tmp_path_factory) -> list[Path]:
    """Four LFW portraits, a group photo (3 faces) and a photo of dogs (no face)."""
    folder = tmp_path_factory.mktemp("real")
    names = ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0002.jpg",
             "Aaron_Sorkin/Aaron_Sorkin_0001.jpg", "Aaron_Sorkin/Aaron_Sorkin_0002.jpg"]
    photos = []
    for name in names:
        src = lfw_dir / "images" / name
        if not src.is_file():
            pytest.skip(f"{name} not in the LFW sample")
        photos.append(Path(shutil.copy(src, folder / Path(name).name)))
    for name in ("2008_002506.jpg", "dogs.jpg"):
        photos.append(Path(shutil.copy(detect_samples / name, folder / name)))
    return photos


@pytest.mark.tiny_model
def test_real_photos_assess_many_matches_assess(scorer, mtcnn, real_photos):
    a = FaceQualityAssessor(scorer=scorer, detector=mtcnn, batch_size=3)
    results = list(a.assess_many(real_photos))
    assert [r.source for r in results] == [str(p) for p in real_photos]
    n_faces = [len(r.faces) for r in results]
    assert all(n >= 1 for n in n_faces[:4]), n_faces  # LFW portraits
    assert n_faces[4] >= 2 and n_faces[5] == 0, n_faces  # group photo, dogs
    assert results[5].status is Status.NO_FACE and not results[5].error
    for photo, r in zip(real_photos, results, strict=True):
        alone = a.assess(photo)
        np.testing.assert_allclose(scores_of(r.faces), scores_of(alone), rtol=0, atol=1e-6)
        areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in r.faces]
        assert areas == sorted(areas, reverse=True)
        for f in r.faces:
            assert 0.0 <= f.score <= 1.0 and f.det_prob >= 0.9
            x1, y1, x2, y2 = f.box
            assert ((f.landmarks[:, 0] > x1) & (f.landmarks[:, 0] < x2)).all()
            assert ((f.landmarks[:, 1] > y1) & (f.landmarks[:, 1] < y2)).all()
            assert f.eye_distance > 20 and f.flags == ()  # LFW and this group photo: no small face


@pytest.mark.tiny_model
def test_real_photo_same_scores_for_every_input_form(scorer, mtcnn, real_photos):
    a = FaceQualityAssessor(scorer=scorer, detector=mtcnn)
    path = real_photos[0]
    rgb = np.array(Image.open(path).convert("RGB"))
    forms = [str(path), Image.open(path), rgb, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0]
    results = [scores_of(a.assess(x)) for x in forms]
    assert len(results[0]) >= 1 and all(r == results[0] for r in results)


@pytest.mark.tiny_model
def test_real_photo_small_face_flag(scorer, mtcnn, real_photos):
    a = FaceQualityAssessor(scorer=scorer, detector=mtcnn)
    big = a.assess(real_photos[2])
    assert big and big[0].flags == ()
    flagged = FaceQualityAssessor(scorer=scorer, detector=mtcnn, small_face=big[0].eye_distance + 1).assess(
        real_photos[2]
    )
    assert flagged[0].flags == ("small_face",) and flagged[0].score == big[0].score
    # the same portrait shrunk about 3x: an eye distance near 14 px
    small = Image.open(real_photos[2]).resize((80, 80), Image.Resampling.LANCZOS)
    small = Image.fromarray(np.pad(np.asarray(small), ((60, 60), (60, 60), (0, 0)), mode="edge"))
    faces = a.assess(small)
    assert faces, "MTCNN found no face in the downscaled portrait"
    assert faces[0].eye_distance < 20 and faces[0].flags == ("small_face",)


@pytest.mark.tiny_model
def test_opencv_arrays_score_like_the_rgb_photo_when_declared_bgr(scorer):
    a = scripted(scorer)
    rgb = picture(1, seed=40)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    ref = [f.score for f in a.assess(rgb)]
    assert [f.score for f in a.assess(bgr, color="bgr")] == ref
    many = list(a.assess_many([bgr, bgr], color="bgr"))
    assert [[f.score for f in r.faces] for r in many] == [ref, ref]
    with pytest.raises(InvalidArgumentError, match="color"):
        a.assess(bgr, color="hsv")


def test_the_thread_plan_follows_the_cpus_and_exact_is_the_reference(scorer):
    from faceiqa.api import ThreadPlan, thread_plan

    assert thread_plan("auto", cpus=2) == ThreadPlan(2, 1, 1)
    assert thread_plan("auto", cpus=1) == ThreadPlan(0, 1, 1)
    assert thread_plan("exact") == ThreadPlan(0, None, None)
    with pytest.raises(InvalidArgumentError, match="threads"):
        thread_plan("fast")
    a = scripted(scorer, threads="exact")
    assert a.detect_workers == 0 and a.score_threads is None
    b = scripted(scorer, threads="auto", detect_workers=3)  # an explicit option overrides the plan
    assert b.detect_workers == 3 and b.score_threads == 1
