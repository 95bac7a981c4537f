"""The fast paths: exact fast MTCNN, thread settings, detection workers, precision modes,
channels_last and torch.compile fallbacks.

What is promised and checked here:

- ``FaceDetector(fast=True)`` (the default) finds exactly what facenet-pytorch's
  ``MTCNN.detect`` finds, bit for bit (generated pictures always; real photos when
  ../shared is there), also for batches and at other thread counts;
- ``detect_workers`` / ``read_workers`` never change results;
- the default scorer path is the plain float32 forward pass, bit for bit;
- reduced precision stays within 0.01 of float32 on real LFW faces (the bound the issue
  sets; skipped without ../shared), ``auto`` only keeps it when it agrees, and the
  options fail with clear errors where they cannot run.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from tiny_models import TINY_SIZE, tiny_random_scorer

from faceiqa.api import FaceQualityAssessor
from faceiqa.errors import InvalidArgumentError
from faceiqa.face.alignment import align_face, get_template
from faceiqa.face.detection import FaceDetector, torch_threads
from faceiqa.images import read_image
from faceiqa.models import QualityScorer, ScoreMapping
from faceiqa.models import scorer as scorer_module
from faceiqa.models.config import ModelConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pictures(n: int, seed: int, size=(120, 160)) -> list[np.ndarray]:
    """Smooth random pictures: P-Net finds candidates in them, so all three stages run."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (size[0] // 4, size[1] // 4, 3), dtype=np.uint8)
        out.append(np.ascontiguousarray(np.kron(small, np.ones((4, 4, 1), np.uint8))))
    return out


@pytest.fixture(scope="module")
def detectors():
    return FaceDetector(device="cpu"), FaceDetector(device="cpu", fast=False)


@pytest.fixture(scope="module")
def real_images(lfw_dir, detect_samples) -> list[np.ndarray]:
    people = sorted(p for p in (lfw_dir / "images").iterdir() if p.is_dir())[:400:20]
    files = [sorted(p.glob("*.jpg"))[0] for p in people]
    files += sorted(detect_samples.glob("*.jpg"))[:6]
    return [read_image(f) for f in files]


# --------------------------------------------------------------------------- fast MTCNN == facenet-pytorch


def test_fast_mtcnn_equals_facenet_on_generated_pictures(detectors):
    fast, slow = detectors
    for img in _pictures(6, seed=0) + _pictures(2, seed=1, size=(64, 48)):
        assert fast.detect(img) == slow.detect(img)
    batch = _pictures(3, seed=2)
    assert fast.detect_batch(batch) == slow.detect_batch(batch)


def test_fast_mtcnn_only_changes_the_pooling_layers_and_leaves_mtcnn_alone(detectors):
    fast, _ = detectors
    pnet, rnet, onet = fast._fast_nets
    m = fast._mtcnn
    assert pnet is m.pnet and rnet is not m.rnet and onet is not m.onet
    pools = [n for n, c in m.onet.named_children() if isinstance(c, torch.nn.MaxPool2d)]
    assert len(pools) == 3 and all(not isinstance(getattr(onet, n), torch.nn.MaxPool2d) for n in pools)
    assert all(isinstance(getattr(m.onet, n), torch.nn.MaxPool2d) for n in pools)  # the original is untouched
    for net, ref, size in ((rnet, m.rnet, 24), (onet, m.onet, 48)):  # their input crop sizes
        x = torch.from_numpy(np.random.default_rng(size).uniform(-1, 1, (5, 3, size, size)).astype(np.float32))
        with torch.no_grad():
            for a, b in zip(net(x), ref(x)):
                assert torch.equal(a, b)
    assert FaceDetector(device="cpu", fast=False)._fast_nets is None


def test_fast_mtcnn_equals_facenet_on_real_photos(detectors, real_images):
    fast, slow = detectors
    n_faces = 0
    for img in real_images:
        got = fast.detect(img)
        assert got == slow.detect(img)
        n_faces += len(got)
    assert n_faces >= len(real_images) * 0.9  # the comparison covered real faces


def test_fast_mtcnn_equals_facenet_at_two_threads_and_full_resolution(real_images):
    fast, slow = FaceDetector(device="cpu", max_side=None), FaceDetector(device="cpu", max_side=None, fast=False)
    with torch_threads(2):
        for img in real_images[-3:]:
            assert fast.detect(img) == slow.detect(img)


def test_mtcnn_threads_option(detectors):
    with pytest.raises(InvalidArgumentError, match="mtcnn_threads"):
        FaceDetector(device="cpu", mtcnn_threads=0)
    with pytest.raises(InvalidArgumentError, match="mtcnn_threads"):
        FaceDetector(device="cpu", mtcnn_threads=True)
    one = FaceDetector(device="cpu", mtcnn_threads=1)
    img = _pictures(1, seed=5)[0]
    before = torch.get_num_threads()
    with torch_threads(2):
        assert torch.get_num_threads() == 2
        first = one.detect(img)
        assert torch.get_num_threads() == 2  # restored after detection
        assert one.detect(img) == first
    assert torch.get_num_threads() == before


# --------------------------------------------------------------------------- pipeline workers


def test_detect_and_read_workers_do_not_change_results(detectors, real_images):
    scorer = tiny_random_scorer(batch_size=4)
    base = FaceQualityAssessor(scorer=scorer, detector=detectors[0], read_workers=0)
    images = real_images[:10]
    ref = [(r.source, [(f.box, f.score, f.raw_score) for f in r.faces], r.error) for r in base.assess_many(images)]
    assert sum(len(f) for _, f, _ in ref) >= 8
    for read_workers, detect_workers in ((1, 1), (2, 2), (0, 3)):
        a = FaceQualityAssessor(scorer=scorer, detector=detectors[0], read_workers=read_workers, detect_workers=detect_workers)
        got = [(r.source, [(f.box, f.score, f.raw_score) for f in r.faces], r.error) for r in a.assess_many(images)]
        assert got == ref, (read_workers, detect_workers)


def test_score_threads_apply_to_scoring_only_and_are_restored():
    scorer = tiny_random_scorer()
    crops = _crops_batch(5)
    seen = []
    model = scorer.model
    hook = model.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    try:
        with torch_threads(2):
            a = FaceQualityAssessor(scorer=scorer, detector=ScriptedDetector(), score_threads=1)
            got = a.score_crops(crops)
            assert torch.get_num_threads() == 2
    finally:
        hook.remove()
    assert seen == [1]
    assert np.array_equal(got.raw, scorer.score_crops(crops).raw)  # this test runs on 1 thread


class ScriptedDetector:
    """No faces anywhere (the scorer is what is tested)."""

    def detect(self, rgb):
        return []


def test_detect_workers_keep_bad_inputs_in_order(detectors):
    a = FaceQualityAssessor(scorer=tiny_random_scorer(), detector=detectors[0], detect_workers=2)
    inputs = [_pictures(1, seed=6)[0], 3.5, "no/such/file.jpg", _pictures(1, seed=7)[0]]
    out = list(a.assess_many(inputs))
    assert [r.source for r in out] == ["<image 0>", "<image 1>", "no/such/file.jpg", "<image 3>"]
    assert not out[0].error and out[1].error and out[2].error and not out[3].error


def test_bad_worker_and_fast_options_raise_clear_errors():
    scorer = tiny_random_scorer()
    with pytest.raises(InvalidArgumentError, match="detect_workers"):
        FaceQualityAssessor(scorer=scorer, detect_workers=-1)
    with pytest.raises(InvalidArgumentError, match="score_threads"):
        FaceQualityAssessor(scorer=scorer, score_threads=0)
    with pytest.raises(InvalidArgumentError, match="precision"):
        FaceQualityAssessor(scorer=scorer, precision="fp8")
    with pytest.raises(InvalidArgumentError, match="CUDA"):
        FaceQualityAssessor(scorer=scorer, precision="fp16")


# --------------------------------------------------------------------------- scorer modes


def _crops_batch(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, TINY_SIZE // 8, TINY_SIZE // 8, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.kron(small, np.ones((1, 8, 8, 1), np.uint8)))


def test_default_scorer_path_is_the_plain_float32_forward_pass():
    scorer = tiny_random_scorer(batch_size=5)
    assert (scorer.precision, scorer.channels_last, scorer.compile, scorer.compiled) == ("fp32", False, False, False)
    crops = _crops_batch(7)
    got = scorer.score_crops(crops).raw
    x = torch.from_numpy(crops.astype(np.float32)).movedim(-1, -3).div_(255.0).contiguous()
    mean = torch.tensor(scorer_module.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(scorer_module.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.inference_mode():
        ref = np.concatenate([scorer.model((x[i : i + 5] - mean) / std).double().numpy() for i in (0, 5)])
    assert np.array_equal(got, ref)


def test_channels_last_is_close_and_switching_back_restores_the_bits():
    scorer = tiny_random_scorer()
    crops = _crops_batch(6)
    ref = scorer.score_crops(crops).raw
    scorer.configure(channels_last=True)
    assert scorer.channels_last
    np.testing.assert_allclose(scorer.score_crops(crops).raw, ref, atol=1e-5)
    scorer.configure(channels_last=False)
    assert np.array_equal(scorer.score_crops(crops).raw, ref)


def test_bf16_runs_on_cpu_and_stays_near_fp32_on_the_tiny_model():
    scorer = tiny_random_scorer()
    crops = _crops_batch(6)
    ref = scorer.score_crops(crops).raw
    scorer.configure(precision="bf16")
    assert scorer.precision == "bf16"
    got = scorer.score_crops(crops).raw
    assert np.all(np.isfinite(got)) and not np.array_equal(got, ref)
    np.testing.assert_allclose(got, ref, atol=0.05)
    scorer.configure(precision="fp32")
    assert np.array_equal(scorer.score_crops(crops).raw, ref)


def test_auto_without_native_reduced_precision_is_fp32(monkeypatch):
    monkeypatch.setattr(scorer_module, "cpu_supports_bf16", lambda: False)
    scorer = tiny_random_scorer(precision="auto")
    crops = _crops_batch(6)
    got = scorer.score_crops(crops).raw
    assert scorer.precision == "fp32"
    assert np.array_equal(got, tiny_random_scorer().score_crops(crops).raw)


@pytest.mark.parametrize(("tolerance", "expected"), [(1.0, "bf16"), (0.0, "fp32")])
def test_auto_keeps_bf16_only_when_it_agrees_with_fp32(monkeypatch, tolerance, expected):
    monkeypatch.setattr(scorer_module, "cpu_supports_bf16", lambda: True)
    monkeypatch.setattr(scorer_module, "AUTO_TOLERANCE", tolerance)
    scorer = tiny_random_scorer(precision="auto", batch_size=4)
    crops = _crops_batch(8)
    ref = tiny_random_scorer(batch_size=4).score_crops(crops).raw
    got = scorer.score_crops(crops).raw
    assert scorer.precision == expected
    assert np.array_equal(got[:4], ref[:4])  # the first chunk decides and keeps its fp32 result
    assert np.array_equal(got[4:], ref[4:]) == (expected == "fp32")


def test_compile_falls_back_to_eager_when_unavailable(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    scorer = tiny_random_scorer(compile=True)
    crops = _crops_batch(3)
    with caplog.at_level(logging.WARNING, logger="faceiqa.models.scorer"):
        got = scorer.score_crops(crops).raw
    assert "running eagerly" in caplog.text
    assert not scorer.compiled
    assert np.array_equal(got, tiny_random_scorer().score_crops(crops).raw)


def test_compile_falls_back_when_the_compiled_model_fails(monkeypatch, caplog):
    def failing_compile(model, **kwargs):
        def run(*args):
            raise RuntimeError("inductor exploded")

        return run

    monkeypatch.setattr(torch, "compile", failing_compile)
    scorer = tiny_random_scorer(compile=True)
    crops = _crops_batch(3)
    with caplog.at_level(logging.WARNING, logger="faceiqa.models.scorer"):
        got = scorer.score_crops(crops).raw
    assert "failed" in caplog.text and not scorer.compiled
    assert np.array_equal(got, tiny_random_scorer().score_crops(crops).raw)


# --------------------------------------------------------------------------- reduced precision bound on real faces


@pytest.fixture(scope="module")
def lfw_face_crops(lfw_dir):
    """Aligned dlib-150 chips and eye distances of validation faces: 24 people of folds 6-7
    (never trained on), each pristine and blurred, noisy and darkened (level 3), so that
    the scores span the steep middle of the calibrated mapping, not only its flat top."""
    from faceiqa.evaluation.degrade import degrade
    from faceiqa.training.trainset import split_people

    detector = FaceDetector(device="cpu")
    template = get_template("dlib-150")
    val = split_people(lfw_dir / "images", lfw_dir / "pairs.txt", (6, 7))["val"]
    firsts = {p.parent.name: p for p in reversed(val)}  # each person's first photo
    crops, eyes = [], []
    for path in [firsts[name] for name in sorted(firsts)][::10][:24]:
        img = read_image(path)
        for version in (img, *(degrade(img, kind, 3) for kind in ("blur", "noise", "low_light"))):
            faces = detector.detect(version)
            if faces:
                crops.append(align_face(version, faces[0].landmarks, template))
                eyes.append(faces[0].eye_distance)
    return np.stack(crops), np.array(eyes)


def test_bf16_scores_within_0_01_of_fp32_on_validation_faces(lfw_face_crops):
    from faceiqa.models import load_scorer

    crops, eyes = lfw_face_crops
    scorer = load_scorer("default", "cpu", download=False)
    a = FaceQualityAssessor(scorer=scorer, detector=FaceDetector(device="cpu"))
    ref = a.score_crops(crops, eye_distance=eyes)
    assert len(ref) >= 80 and ref.score.min() < 0.5 < ref.score.max()  # the bound is tested where it matters
    scorer.configure(precision="bf16")
    try:
        got = a.score_crops(crops, eye_distance=eyes)
    finally:
        scorer.configure(precision="fp32")
    diff = np.abs(got.score - ref.score)
    assert diff.max() <= 0.01, f"{scorer.name}: bf16 differs from fp32 by up to {diff.max():.4f}"
    assert not np.array_equal(got.raw, ref.raw)  # bf16 really ran


@pytest.mark.slow
def test_bf16_scores_within_0_01_of_fp32_resnet50_random_weights(lfw_dir):
    """ResNet-50 HyperIQA (random weights: numerics of the architecture, not of KonIQ weights)."""
    from faceiqa.models import hyperiqa_resnet50

    torch.manual_seed(0)
    scorer = QualityScorer(hyperiqa_resnet50(), ModelConfig(name="r50-random", size=224, template="hyperiqa-224", mapping=ScoreMapping.linear(0, 100)), device="cpu", batch_size=8)
    detector = FaceDetector(device="cpu")
    template = get_template("hyperiqa-224")
    crops = []
    for person in sorted(p for p in (lfw_dir / "images").iterdir() if p.is_dir())[::100][:16]:
        img = read_image(sorted(person.glob("*.jpg"))[0])
        faces = detector.detect(img)
        if faces:
            crops.append(align_face(img, faces[0].landmarks, template))
    ref = scorer.score_crops(crops)
    scorer.configure(precision="bf16")
    got = scorer.score_crops(crops)
    assert np.abs(got.score - ref.score).max() <= 0.01


# --------------------------------------------------------------------------- CLI options


def test_cli_precision_and_worker_options(tmp_path, monkeypatch, lfw_dir):
    import csv
    import io
    import shutil

    from click.testing import CliRunner
    from tiny_models import install_tiny_model

    from faceiqa.cli import main

    install_tiny_model(tmp_path / "models", monkeypatch)
    folder = tmp_path / "photos"
    folder.mkdir()
    for person in sorted(p for p in (lfw_dir / "images").iterdir() if p.is_dir())[:3]:
        shutil.copy(sorted(person.glob("*.jpg"))[0], folder)
    runner = CliRunner()

    def scores(*options: str) -> list[float]:
        result = runner.invoke(main, ["score", str(folder), "-q", *options])
        assert result.exit_code == 0, result.output
        return [float(r["score"]) for r in csv.DictReader(io.StringIO(result.stdout)) if r["score"]]

    ref = scores()
    assert len(ref) >= 3
    assert scores("--detect-workers", "1") == ref  # workers never change results
    fast = scores("--detect-workers", "2", "--mtcnn-threads", "1", "--score-threads", "1", "--precision", "bf16")
    assert len(fast) == len(ref)
    result = runner.invoke(main, ["score", str(folder), "--precision", "fp16", "--device", "cpu"])
    assert result.exit_code == 2 and "CUDA" in result.output
    result = runner.invoke(main, ["score", str(folder), "--precision", "fp64"])
    assert result.exit_code == 2
