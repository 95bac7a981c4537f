"""The dlib ResNet port: golden descriptors from face-api itself, weights, API, LFW sanity."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import numpy as np
import pytest
import torch
from paths import REPO, TEST_DATA
from PIL import Image

from faceiqa.errors import CheckpointError, InvalidArgumentError
from faceiqa.evaluation.verification import best_threshold, read_pairs, verification_accuracy
from faceiqa.face.alignment import DLIB_150, get_template
from faceiqa.face.recognition import FaceRecognizer
from faceiqa.models.dlib_resnet import (
    _FORMAT,
    SAME_PERSON_THRESHOLD,
    DlibResNet,
    dequantize,
    load_dlib_resnet,
    load_state_dict,
    normalize_chips,
)

CHIPS = TEST_DATA / "recognizer"
GOLDEN = CHIPS / "golden_face_api.json"
WEIGHTS = REPO / "pretrained" / "dlib_face_recognition_resnet_v1.pt"


@pytest.fixture(scope="module")
def recognizer() -> FaceRecognizer:
    return FaceRecognizer(device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


def _chip(name: str) -> np.ndarray:
    with Image.open(CHIPS / name) as im:
        return np.array(im.convert("RGB"))


def test_port_matches_face_api_golden_descriptors(recognizer, golden):
    assert golden["package"] == "@vladmandic/face-api@1.7.15"
    names = sorted(golden["descriptors"])
    assert len(names) == 4 and "synthetic_pattern.png" in names
    chips = np.stack([_chip(n) for n in names])
    ours = recognizer.embed(chips)
    ref = np.array([golden["descriptors"][n] for n in names], dtype=np.float64)
    assert ours.shape == (4, 128) and ours.dtype == np.float32
    err = np.abs(ours - ref).max()
    assert err <= 1e-4, f"max abs error {err:.3g}"
    # The descriptors are far apart relative to that tolerance, so the check has teeth.
    assert np.linalg.norm(ref[0] - ref[3]) > 0.5


def test_embed_is_deterministic_and_batch_independent(recognizer, golden):
    chips = np.stack([_chip(n) for n in sorted(golden["descriptors"])])
    a = recognizer.embed(chips)
    b = recognizer.embed(chips)
    np.testing.assert_array_equal(a, b)
    one_by_one = np.concatenate([recognizer.embed(c) for c in chips])
    np.testing.assert_allclose(one_by_one, a, atol=1e-5)


def test_embed_accepts_float_tensors_and_lists(recognizer):
    chip = _chip("lfw_0_Abel_Pacheco_0001.png")
    ref = recognizer.embed(chip)
    as_float = torch.from_numpy(chip).permute(2, 0, 1).float()
    np.testing.assert_allclose(recognizer.embed(as_float), ref, atol=1e-6)
    np.testing.assert_allclose(recognizer.embed([chip, chip]), np.vstack([ref, ref]), atol=1e-6)
    assert recognizer.embed([]).shape == (0, 128)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((150, 150, 3), np.float32),  # numpy must be uint8
        np.zeros((112, 112, 3), np.uint8),  # wrong size
        np.zeros((2, 150, 150), np.uint8),  # no channel axis
        torch.zeros(1, 150, 150, 3),  # float tensor must be channels-first
        "chip.png",
    ],
)
def test_embed_rejects_bad_input(recognizer, bad):
    with pytest.raises(InvalidArgumentError):
        recognizer.embed(bad)


def test_constructor_rejects_bad_arguments():
    with pytest.raises(InvalidArgumentError):
        FaceRecognizer(device="no-such-device")
    with pytest.raises(InvalidArgumentError):
        FaceRecognizer(device="cpu", batch_size=0)


def test_distance_and_threshold(recognizer, golden):
    d = {k: np.array(v, np.float32) for k, v in golden["descriptors"].items()}
    same = recognizer.distance(d["lfw_0_Abel_Pacheco_0001.png"], d["lfw_1_Abel_Pacheco_0004.png"])
    other = recognizer.distance(d["lfw_0_Abel_Pacheco_0001.png"], d["lfw_2_Dean_Barker_0001.png"])
    assert isinstance(same, float) and same < SAME_PERSON_THRESHOLD < other
    assert recognizer.same_person(d["lfw_0_Abel_Pacheco_0001.png"], d["lfw_1_Abel_Pacheco_0004.png"]) is True
    rows = recognizer.distance(np.stack([d["lfw_0_Abel_Pacheco_0001.png"]] * 2), d["lfw_2_Dean_Barker_0001.png"])
    np.testing.assert_allclose(rows, [other, other])
    with pytest.raises(InvalidArgumentError):
        recognizer.distance(np.zeros(127), np.zeros(128))


def test_forward_features_are_the_four_stages():
    torch.manual_seed(0)
    model = load_dlib_resnet()
    x = normalize_chips(torch.rand(2, 3, 150, 150) * 255)
    with torch.inference_mode():
        feats = model.forward_features(x)
        desc = model(x)
    assert [tuple(f.shape) for f in feats] == [(2, 32, 35, 35), (2, 64, 17, 17), (2, 128, 8, 8), (2, 256, 2, 2)]
    assert all(bool((f >= 0).all()) for f in feats)  # each stage ends in a ReLU
    torch.testing.assert_close(model.head(feats[-1]), desc)
    with pytest.raises(InvalidArgumentError):
        model.forward_features(torch.zeros(1, 150, 150, 3))


def test_weights_file_matches_manifest():
    manifest = json.loads((REPO / "pretrained" / "manifest.json").read_text())
    entry = next(e for e in manifest["weights"] if e["name"] == "dlib-resnet")
    data = WEIGHTS.read_bytes()
    assert entry["file"] == WEIGHTS.name
    assert entry["size"] == len(data)
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["kind"] == "recognizer" and entry["architecture"] == "dlib-resnet"
    assert entry["input"]["template"] == DLIB_150.name and entry["input"]["size"] == 150
    assert (REPO / "pretrained" / "LICENSE-dlib-face-recognition.txt").is_file()


def test_bad_weights_file_is_a_checkpoint_error(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something else"}, bad)
    with pytest.raises(CheckpointError):
        load_state_dict(bad)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError):
        load_state_dict(garbage)
    malformed = tmp_path / "malformed.pt"
    torch.save({"format": _FORMAT, "tensors": {"fc.weight": {"q": torch.zeros(128, 256, dtype=torch.uint8)}}}, malformed)
    with pytest.raises(CheckpointError):
        load_state_dict(malformed)
    partial = tmp_path / "partial.pt"
    torch.save({"format": _FORMAT, "tensors": {"fc.weight": torch.zeros(128, 256)}}, partial)
    with pytest.raises(CheckpointError, match="missing"):
        load_dlib_resnet(partial)


def test_dequantize_is_tfjs_formula():
    q = torch.tensor([0, 1, 128, 255], dtype=torch.uint8)
    out = dequantize(q, -0.123456789, 0.00098765432)
    expected = np.float32(np.array([0, 1, 128, 255], np.float64) * 0.00098765432 + -0.123456789)
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), expected)


def test_committed_weights_equal_fresh_conversion_of_tfjs_files(face_api_weights):
    spec = importlib.util.spec_from_file_location("convert_face_api", REPO / "tools" / "convert_face_api.py")
    conv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv)
    fresh = conv.read_face_api(face_api_weights)
    state = load_state_dict(WEIGHTS)
    assert set(fresh) == set(state) == set(DlibResNet().state_dict())
    for key, item in fresh.items():
        if isinstance(item, dict):  # independent dequantisation in numpy float64
            ref = np.float32(item["q"].numpy().astype(np.float64) * item["scale"] + item["min"])
        else:
            ref = item.numpy()
        np.testing.assert_array_equal(state[key].numpy(), ref, err_msg=key)


def test_dlib_template_geometry():
    t = get_template("dlib-150")
    assert t is DLIB_150 and t.size == 150
    # Symmetric about the mean face's vertical axis (x = 73.5 px), eyes level, mouth below nose.
    np.testing.assert_allclose(t.points[0, 1], t.points[1, 1])
    np.testing.assert_allclose((t.points[0, 0] + t.points[1, 0]) / 2, t.points[2, 0], atol=0.01)
    np.testing.assert_allclose(t.points[2, 0], 73.5127, atol=1e-3)
    assert t.points[0, 1] < t.points[2, 1] < t.points[3, 1]
    np.testing.assert_allclose(t.eye_distance, 52.927, atol=1e-3)


# --------------------------------------------------------------------------- real photos


def _lfw_descriptors(lfw_dir, pairs, recognizer):
    from faceiqa.face.detection import FaceDetector

    detector = FaceDetector(device="cpu")
    images_dir = lfw_dir / "images"
    paths = sorted({p for pair in pairs for p in pair.paths(images_dir)})
    chips = []
    for start in range(0, len(paths), 32):
        images = []
        for path in paths[start : start + 32]:
            with Image.open(path) as im:
                images.append(np.array(im.convert("RGB")))
        for path, rgb, faces in zip(paths[start:], images, detector.detect_batch(images, batch_size=32)):
            assert faces, f"no face in {path.name}"
            centre = np.array([rgb.shape[1], rgb.shape[0]]) / 2
            face = min(faces, key=lambda f: np.linalg.norm((np.array(f.box[:2]) + f.box[2:]) / 2 - centre))
            chips.append(recognizer.align(rgb, face.landmarks))
    desc = dict(zip(paths, recognizer.embed(np.stack(chips))))
    d = np.array([recognizer.distance(*(desc[p] for p in pair.paths(images_dir))) for pair in pairs])
    return d, np.array([pair.genuine for pair in pairs])


def test_same_person_closer_than_different_people(lfw_dir, recognizer):
    pairs = read_pairs(lfw_dir / "pairs.txt")
    fold0 = [p for p in pairs if p.fold == 0]
    chosen = [p for p in fold0 if p.genuine][:4] + [p for p in fold0 if not p.genuine][:4]
    d, genuine = _lfw_descriptors(lfw_dir, chosen, recognizer)
    assert d[genuine].max() < SAME_PERSON_THRESHOLD < d[~genuine].min(), d


@pytest.mark.slow
def test_lfw_subset_accuracy(lfw_dir, recognizer):
    # Half of fold 0 (150 genuine + 150 impostor pairs, ~450 photos) keeps this near a minute
    # on 2 CPU cores; all 8 folds give 98.65% (benchmarks/lfw_verification.py).
    fold0 = [p for p in read_pairs(lfw_dir / "pairs.txt") if p.fold == 0]
    pairs = [p for p in fold0 if p.genuine][:150] + [p for p in fold0 if not p.genuine][:150]
    assert len(pairs) == 300
    d, genuine = _lfw_descriptors(lfw_dir, pairs, recognizer)
    assert verification_accuracy(d, genuine, SAME_PERSON_THRESHOLD) >= 0.95
    _, best = best_threshold(d, genuine)
    assert best >= 0.95
