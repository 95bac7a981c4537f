"""Face detection: the DetectedFace contract, MTCNN output handling, downscaling, real photos."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faceiqa.errors import InvalidArgumentError
from faceiqa.face.detection import DEFAULT_MIN_PROB, SMALL_FACE_EYE_DISTANCE, DetectedFace, FaceDetector, _faces_from_mtcnn
from faceiqa.images import read_image

LANDMARKS = np.array([[30, 40], [60, 40], [45, 55], [33, 70], [57, 70]], np.float32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(device="cpu")


# ----------------------------------------------------------------------------------------------
# DetectedFace
# ----------------------------------------------------------------------------------------------


def test_detected_face_properties():
    face = DetectedFace((10, 20, 90, 120), 0.99, LANDMARKS.astype(np.float64))
    assert face.box == (10.0, 20.0, 90.0, 120.0) and all(isinstance(v, float) for v in face.box)
    assert face.width == 80 and face.height == 100 and face.area == 8000
    assert face.eye_distance == pytest.approx(30.0)
    assert face.landmarks.dtype == np.float32 and face.landmarks.shape == (5, 2)
    assert not face.small_face
    with pytest.raises(ValueError):
        face.landmarks[0, 0] = 1.0  # read-only: a frozen dataclass must not change under you
    tiny = DetectedFace((0, 0, 10, 10), 0.9, LANDMARKS * 0.5)
    assert tiny.eye_distance == pytest.approx(15.0) and tiny.small_face
    assert SMALL_FACE_EYE_DISTANCE == 20.0


def test_detected_face_equality_and_hash():
    a = DetectedFace((10, 20, 90, 120), 0.99, LANDMARKS)
    b = DetectedFace((10, 20, 90, 120), 0.99, LANDMARKS.copy())
    c = DetectedFace((10, 20, 90, 120), 0.99, LANDMARKS + 1)
    assert a == b and hash(a) == hash(b) and a != c
    assert len({a, b, c}) == 2
    assert "prob=0.9900" in repr(a)


@pytest.mark.parametrize(
    ("box", "prob", "landmarks", "message"),
    [
        ((10, 20, 5, 120), 0.9, LANDMARKS, "x1 <= x2"),
        ((10, 20, 90), 0.9, LANDMARKS, "box"),
        ((10, 20, 90, np.nan), 0.9, LANDMARKS, "finite"),
        ((10, 20, 90, 120), 1.5, LANDMARKS, r"prob must be in \[0, 1\]"),
        ((10, 20, 90, 120), 0.9, LANDMARKS[:4], r"\(5, 2\)"),
        ((10, 20, 90, 120), 0.9, LANDMARKS * np.inf, "finite"),
    ],
    ids=["inverted", "three-numbers", "nan", "prob", "four-landmarks", "inf-landmarks"],
)
def test_detected_face_validation(box, prob, landmarks, message):
    with pytest.raises(InvalidArgumentError, match=message):
        DetectedFace(box, prob, landmarks)


# ----------------------------------------------------------------------------------------------
# facenet-pytorch's output shapes, built the way its detect() builds them
# ----------------------------------------------------------------------------------------------


def _facenet_style(per_image: list[int]):
    boxes, probs, points = [], [], []
    for i, n in enumerate(per_image):
        if n == 0:
            boxes.append(None)
            probs.append([None])
            points.append(None)
        else:
            boxes.append(np.arange(n * 4, dtype=np.float32).reshape(n, 4) + [0, 0, 50, 50] + i)
            probs.append(np.linspace(0.99, 0.9, n).astype(np.float32))
            points.append(np.ones((n, 5, 2), np.float32) * (i + 1))
    return (np.array(boxes, dtype=object), np.array(probs, dtype=object), np.array(points, dtype=object))


@pytest.mark.parametrize(
    "per_image",
    [[0], [2], [0, 0], [1, 0], [0, 3], [2, 2], [1, 1, 1], [2, 0, 1]],
    ids=["none", "two", "all-none", "face-then-none", "none-then-three", "equal-counts", "ones", "mixed"],
)
def test_faces_from_mtcnn_handles_every_shape(per_image):
    raw = _faces_from_mtcnn(*_facenet_style(per_image), count=len(per_image))
    assert len(raw) == len(per_image)
    for i, (n, (b, p, pts)) in enumerate(zip(per_image, raw, strict=True)):
        assert b.shape == (n, 4) and p.shape == (n,) and pts.shape == (n, 5, 2)
        assert b.dtype == p.dtype == pts.dtype == np.float64
        if n:
            assert pts[0, 0, 0] == i + 1 and b[0, 0] == i


def test_faces_from_mtcnn_rejects_inconsistent_output():
    boxes, probs, points = (np.empty(1, dtype=object) for _ in range(3))
    boxes[0], probs[0], points[0] = np.zeros((2, 4)), np.ones(1), np.zeros((2, 5, 2))
    with pytest.raises(RuntimeError, match="unexpected MTCNN output"):
        _faces_from_mtcnn(boxes, probs, points, count=1)
    with pytest.raises(RuntimeError, match="unexpected MTCNN output"):
        _faces_from_mtcnn(*_facenet_style([1, 1]), count=3)


# ----------------------------------------------------------------------------------------------
# FaceDetector without real faces
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_face_size": 5}, "min_face_size"),
        ({"min_face_size": 20.0}, "min_face_size"),
        ({"thresholds": (0.6, 0.7)}, "thresholds"),
        ({"thresholds": (0.6, 0.7, 1.2)}, "thresholds"),
        ({"min_prob": 1.5}, "min_prob"),
        ({"max_side": 10}, "max_side"),
        ({"max_side": 512.0}, "max_side"),
        ({"device": "not-a-device"}, "device"),
    ],
)
def test_detector_argument_errors(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        FaceDetector(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_unavailable_device_is_an_argument_error():
    with pytest.raises(InvalidArgumentError, match="device 'cuda'"):
        FaceDetector(device="cuda")


def test_detector_defaults(detector):
    assert detector.min_prob == DEFAULT_MIN_PROB and detector.max_side == 1024
    assert detector.thresholds == (0.6, 0.7, 0.7) and str(detector.device) == "cpu"
    assert "max_side=1024" in repr(detector)


@pytest.mark.parametrize("shape", [(1, 1), (10, 10), (19, 500), (500, 19), (20, 20), (64, 64)])
def test_small_and_blank_images_give_no_faces(detector, shape):
    """Short side below min_face_size would crash MTCNN (empty scale pyramid)."""
    assert detector.detect(np.full((*shape, 3), 128, np.uint8)) == []


def test_downscaled_below_min_face_size_gives_no_faces():
    det = FaceDetector(device="cpu", max_side=256)
    assert det.detect(np.full((30, 3000, 3), 90, np.uint8)) == []  # becomes 256 x 3


def test_noise_gives_no_faces(detector):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(3)]
    assert detector.detect_batch(images) == [[], [], []]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((50, 50), np.uint8), r"got shape \(50, 50\)"),
        (np.zeros((50, 50, 4), np.uint8), r"got shape \(50, 50, 4\)"),
        (np.zeros((50, 50, 3), np.float32), "dtype float32"),
        (np.zeros((0, 50, 3), np.uint8), "empty"),
        ("photo.jpg", "got str"),
    ],
    ids=["gray", "rgba", "float", "empty", "path"],
)
def test_detect_rejects_bad_images(detector, image, message):
    with pytest.raises(InvalidArgumentError, match=message):
        detector.detect(image)


def test_detect_batch_argument_errors(detector):
    ok = np.zeros((30, 30, 3), np.uint8)
    with pytest.raises(InvalidArgumentError, match=r"images\[1\]"):
        detector.detect_batch([ok, np.zeros((30, 30), np.uint8)])
    with pytest.raises(InvalidArgumentError, match="sequence"):
        detector.detect_batch(np.zeros((2, 30, 30, 3), np.uint8))
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        detector.detect_batch([ok], batch_size=0)
    assert detector.detect_batch([]) == []


def _blob_image(h: int, w: int, x: float, y: float, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=2)


def _centroid(img: np.ndarray) -> tuple[float, float]:
    g = img[..., 0].astype(np.float64)
    yy, xx = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
    return float((g * xx).sum() / g.sum()), float((g * yy).sum() / g.sum())


@pytest.mark.parametrize(("h", "w", "max_side"), [(1501, 2003, 512), (751, 1001, 500), (900, 300, 128)])
def test_downscale_mapping_is_exact_for_a_drawn_dot(h, w, max_side):
    """Where a dot lands in the shrunk copy maps back to where it was drawn (no MTCNN)."""
    det = FaceDetector(device="cpu", max_side=max_side, min_prob=0.0)
    x0, y0 = w * 0.37 + 0.3, h * 0.61 - 0.2
    prep = det._prepare(_blob_image(h, w, x0, y0, sigma=max(h, w) / 60))
    assert max(prep.pixels.shape[:2]) == max_side
    xs, ys = _centroid(prep.pixels)
    raw = (np.array([[xs - 5, ys - 5, xs + 5, ys + 5]]), np.array([0.99]), np.full((1, 5, 2), [xs, ys]))
    (face,) = det._to_faces(raw, prep)
    assert face.landmarks[0] == pytest.approx((x0, y0), abs=0.05 * w / max_side + 0.05)
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    assert (cx, cy) == pytest.approx((x0, y0), abs=0.05 * w / max_side + 0.05)


# ----------------------------------------------------------------------------------------------
# Real photos (../shared/data/detect-samples)
# ----------------------------------------------------------------------------------------------


def _annotations(folder: Path) -> dict[str, list[tuple[tuple[int, int, int, int], bool]]]:
    """file -> [((x1, y1, x2, y2), ignore)], union of training.xml and testing.xml."""
    out: dict[str, dict[tuple[int, int, int, int], bool]] = {}
    for xml in ("training.xml", "testing.xml"):
        for image in ET.parse(folder / xml).getroot().iter("image"):
            boxes = out.setdefault(image.get("file"), {})
            for b in image.iter("box"):
                top, left, width, height = (int(b.get(k)) for k in ("top", "left", "width", "height"))
                key = (left, top, left + width, top + height)
                boxes[key] = boxes.get(key, False) or b.get("ignore") == "1"
    return {name: list(boxes.items()) for name, boxes in out.items()}


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _greedy_matches(truth, found, min_iou: float) -> int:
    """Greedy one-to-one matching by decreasing IoU; returns the number of matched truths."""
    pairs = sorted(((_iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)), reverse=True)
    used_t, used_f = set(), set()
    for value, i, j in pairs:
        if value < min_iou:
            break
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
    return len(used_t)


@pytest.fixture(scope="module")
def sample_faces(detect_samples, detector):
    """file -> (image, faces) for the annotated photos of detect-samples and dogs.jpg."""
    out = {}
    for name in [*sorted(_annotations(detect_samples)), "dogs.jpg"]:
        image = read_image(detect_samples / name)
        out[name] = (image, detector.detect(image))
    return out


def test_recall_on_annotated_faces(detect_samples, sample_faces):
    annotations = _annotations(detect_samples)
    assert len(annotations) == 9
    total = found = 0
    lines = []
    for name, boxes in sorted(annotations.items()):
        truth = [box for box, ignore in boxes if not ignore and box[2] - box[0] >= 40]
        faces = sample_faces[name][1]
        hits = _greedy_matches(truth, [f.box for f in faces], 0.4)
        total += len(truth)
        found += hits
        lines.append(f"{name}: {hits}/{len(truth)}")
    assert total >= 15, f"too few annotated faces >= 40 px to judge: {total}"
    recall = found / total
    assert recall >= 0.8, f"recall {recall:.2f} ({found}/{total}) below 0.80; per image: " + ", ".join(lines)


def test_no_unannotated_detections_on_annotated_photos(detect_samples, sample_faces):
    """Every detection overlaps some annotated face (any size, ignored ones included)."""
    strays = []
    for name, boxes in sorted(_annotations(detect_samples).items()):
        for face in sample_faces[name][1]:
            if max((_iou(face.box, box) for box, _ in boxes), default=0.0) < 0.3:
                strays.append(f"{name}: {face!r}")
    assert not strays, "detections without an annotated face: " + "; ".join(strays)


def test_dogs_have_no_human_face(sample_faces):
    assert sample_faces["dogs.jpg"][1] == []


def test_faces_are_sorted_and_landmarks_plausible(sample_faces):
    count = 0
    for name, (_, faces) in sample_faces.items():
        areas = [f.area for f in faces]
        assert areas == sorted(areas, reverse=True), name
        for f in faces:
            count += 1
            assert f.prob >= DEFAULT_MIN_PROB
            pad = 0.1 * f.width
            lm = f.landmarks
            assert (lm[:, 0] >= f.box[0] - pad).all() and (lm[:, 0] <= f.box[2] + pad).all(), (name, f)
            assert (lm[:, 1] >= f.box[1] - pad).all() and (lm[:, 1] <= f.box[3] + pad).all(), (name, f)
            # Upright photos: eyes above the mouth, left eye (as seen) left of the right eye.
            assert lm[0, 0] < lm[1, 0] and lm[:2, 1].max() < lm[3:, 1].min(), (name, f)
    assert count >= 40


def test_same_input_same_output(detector, sample_faces):
    image, faces = sample_faces["2008_007676.jpg"]
    assert faces and detector.detect(image.copy()) == faces


def test_detect_batch_matches_single_detection(detector, sample_faces):
    # Four 500 x 375 photos (one MTCNN call with batch_size=4) and two other sizes.
    names = ["2007_007763.jpg", "2008_001009.jpg", "2008_001322.jpg", "2008_002079.jpg",
             "2008_002506.jpg", "2009_004587.jpg"]  # fmt: skip
    assert sum(sample_faces[n][0].shape == (375, 500, 3) for n in names) == 4
    images = [sample_faces[n][0] for n in names]
    batched = detector.detect_batch(images, batch_size=4)
    assert len(batched) == len(names)
    for name, faces in zip(names, batched):
        single = sample_faces[name][1]
        assert len(faces) == len(single), name
        for a, b in zip(faces, single):
            np.testing.assert_allclose(a.box, b.box, atol=1e-2, err_msg=name)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-2, err_msg=name)


@pytest.mark.parametrize("factor", [2, 3])
def test_downscaled_detection_maps_back_exactly(sample_faces, factor):
    """An image blown up by pixel replication shrinks back to exactly the original, so MTCNN
    sees the same pixels and the boxes must agree after mapping: x_big = f * x + (f - 1) / 2."""
    image, _ = sample_faces["2008_002506.jpg"]
    h, w = image.shape[:2]
    big = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
    small_det = FaceDetector(device="cpu", max_side=None)
    big_det = FaceDetector(device="cpu", max_side=max(h, w))
    expected = small_det.detect(image)
    got = big_det.detect(big)
    assert len(expected) == 3 and len(got) == len(expected)
    shift = (factor - 1) / 2
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g.box, np.array(e.box) * factor + shift, atol=1e-2)
        np.testing.assert_allclose(g.landmarks, e.landmarks * factor + shift, atol=1e-2)
        assert g.prob == pytest.approx(e.prob, abs=1e-6)


def test_downscaled_detection_agrees_with_full_resolution(sample_faces):
    """A real 2x upscale (not an exact inverse of the shrink): boxes agree within a few pixels."""
    image, _ = sample_faces["2008_002506.jpg"]
    h, w = image.shape[:2]
    big = cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    expected = FaceDetector(device="cpu", max_side=None).detect(image)
    got = FaceDetector(device="cpu", max_side=max(h, w)).detect(big)
    assert len(got) == len(expected) == 3
    for e, g in zip(expected, got):
        scaled = np.array(e.box) * 2 + 0.5
        tolerance = max(4.0, 0.06 * (g.box[2] - g.box[0]))  # MTCNN boxes move with the pixels
        assert np.abs(np.array(g.box) - scaled).max() <= tolerance, (g.box, scaled)
        assert _iou(g.box, scaled) >= 0.85
