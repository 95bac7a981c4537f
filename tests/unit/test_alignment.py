"""Alignment: similarity transforms, templates and where landmarks land in the crop."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceiqa.errors import InvalidArgumentError
from faceiqa.face.alignment import (
    HYPERIQA_224,
    AlignmentTemplate,
    align_face,
    arcface_template,
    eye_distance,
    get_template,
    similarity_transform,
    transform_points,
)


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([r, [[tx], [ty]]])


@pytest.mark.parametrize(
    ("angle", "scale", "tx", "ty"),
    [(0.0, 1.0, 0.0, 0.0), (17.0, 0.37, 12.5, -40.0), (-135.0, 2.8, 300.0, 7.25), (179.0, 0.05, -3.0, 1000.0)],
)
def test_similarity_transform_recovers_known_transform(angle, scale, tx, ty):
    rng = np.random.default_rng(1)
    src = rng.uniform(-200, 800, (5, 2))
    m_true = _similarity(angle, scale, tx, ty)
    dst = transform_points(m_true, src)
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m, m_true, rtol=0, atol=1e-9 * max(1.0, abs(tx), abs(ty)))
    np.testing.assert_allclose(transform_points(m, src), dst, atol=1e-8)


def test_similarity_transform_never_reflects():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 100, (5, 2))
    mirrored = src * [-1.0, 1.0] + [50.0, 0.0]  # dst is a reflection of src
    m = similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0
    # The best proper similarity still fits less well than the reflection would.
    assert np.abs(transform_points(m, src) - mirrored).max() > 1.0
    # Landmarks of a face seen in a mirror: the aligned eyes must not swap sides.
    mirrored_template = HYPERIQA_224.points * [-1.0, 1.0] + [HYPERIQA_224.size, 0.0]
    m2 = similarity_transform(mirrored_template, HYPERIQA_224.points)
    assert np.linalg.det(m2[:, :2]) > 0


@pytest.mark.parametrize(
    "points",
    [np.full((5, 2), 7.0), np.zeros((5, 2)), np.full((5, 2), 1e6) + 1e-9],
    ids=["all-equal", "zeros", "nearly-equal"],
)
def test_degenerate_landmarks_are_rejected(points):
    with pytest.raises(InvalidArgumentError, match="degenerate"):
        similarity_transform(points, HYPERIQA_224.points)
    with pytest.raises(InvalidArgumentError, match="degenerate"):
        align_face(np.zeros((50, 50, 3), np.uint8), points, HYPERIQA_224)


@pytest.mark.parametrize(
    "landmarks",
    [np.zeros((4, 2)), np.zeros((5, 3)), np.zeros(10), np.array([[np.nan, 0]] * 5)],
    ids=["4-points", "3-columns", "flat", "nan"],
)
def test_bad_landmarks_are_rejected(landmarks):
    with pytest.raises(InvalidArgumentError, match="landmarks"):
        align_face(np.zeros((50, 50, 3), np.uint8), landmarks, HYPERIQA_224)


def test_bad_transform_inputs():
    with pytest.raises(InvalidArgumentError):
        similarity_transform(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(InvalidArgumentError):
        similarity_transform(np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(InvalidArgumentError):
        transform_points(np.eye(3), np.zeros((5, 2)))
    with pytest.raises(InvalidArgumentError):
        transform_points(np.zeros((2, 3)), np.zeros((5, 3)))


@pytest.mark.parametrize(
    "image",
    [np.zeros((50, 50), np.uint8), np.zeros((50, 50, 4), np.uint8), np.zeros((50, 50, 3), np.float32), [[0]]],
    ids=["gray", "rgba", "float", "list"],
)
def test_align_face_rejects_bad_images(image):
    with pytest.raises(InvalidArgumentError, match="uint8 RGB"):
        align_face(image, HYPERIQA_224.points, HYPERIQA_224)


def test_templates():
    assert get_template("hyperiqa-224") is HYPERIQA_224
    with pytest.raises(InvalidArgumentError, match="unknown alignment template"):
        get_template("nope")
    t = arcface_template(112)
    assert t.points.shape == (5, 2)
    # The tight 112 template's eyes are 35.2 px apart; scale 0.8 at 224 px gives 56.4 px.
    assert t.eye_distance == pytest.approx(35.24, abs=0.01)
    assert HYPERIQA_224.eye_distance == pytest.approx(35.24 * 2 * 0.8, abs=0.02)
    with pytest.raises(InvalidArgumentError):
        arcface_template(8)
    assert eye_distance(HYPERIQA_224.points) == pytest.approx(HYPERIQA_224.eye_distance)


# ----------------------------------------------------------------------------------------------
# Where the landmarks land: draw a blob at each landmark, align, find the blobs in the crop.
# ----------------------------------------------------------------------------------------------


def _face_landmarks(template: AlignmentTemplate, angle: float, eye_px: float, centre: tuple[float, float]):
    """Template points moved into a source image: rotated, scaled to ``eye_px``, centred."""
    scale = eye_px / template.eye_distance
    m = _similarity(angle, scale, 0.0, 0.0)
    pts = transform_points(m, template.points - template.points.mean(0))
    return pts + centre


def _draw_blobs(shape: tuple[int, int], points: np.ndarray, sigma: float) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w), np.float32)
    for x, y in points:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.repeat(np.clip(img * 255, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _blob_centroids(crop: np.ndarray, expected: np.ndarray, radius: float) -> np.ndarray:
    """Intensity-weighted centroid of the crop near each expected point."""
    gray = crop[..., 0].astype(np.float64)
    yy, xx = np.mgrid[0 : gray.shape[0], 0 : gray.shape[1]]
    out = []
    for ex, ey in expected:
        window = ((xx - ex) ** 2 + (yy - ey) ** 2) <= radius**2
        wgt = np.where(window, gray, 0.0)
        assert wgt.sum() > 0, f"no blob found near ({ex:.1f}, {ey:.1f})"
        out.append([(wgt * xx).sum() / wgt.sum(), (wgt * yy).sum() / wgt.sum()])
    return np.array(out)


def _nearest_template_gap(template: AlignmentTemplate) -> float:
    d = np.linalg.norm(template.points[:, None] - template.points[None], axis=2)
    return float(d[d > 0].min())


def test_align_face_output_shape_and_dtype():
    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    lm = _face_landmarks(HYPERIQA_224, 10.0, 60.0, (200.0, 150.0))
    crop = align_face(image, lm, HYPERIQA_224)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    small = arcface_template(64)
    assert align_face(image, lm, small).shape == (64, 64, 3)


@pytest.mark.parametrize(("angle", "eye_px"), [(0.0, 56.4), (25.0, 80.0), (-40.0, 40.0), (180.0, 100.0)])
def test_landmarks_land_on_template_points_direct(angle, eye_px):
    """Scale >= 0.5: one warp. The blob drawn at each landmark appears at its template point."""
    template = HYPERIQA_224
    lm = _face_landmarks(template, angle, eye_px, (250.0, 210.0))
    image = _draw_blobs((420, 500), lm, sigma=3.0)
    m = similarity_transform(lm, template.points)
    assert np.sqrt(np.linalg.det(m[:, :2])) >= 0.5  # this case must take the direct path
    np.testing.assert_allclose(transform_points(m, lm), template.points, atol=1e-9)
    crop = align_face(image, lm, template)
    found = _blob_centroids(crop, template.points, _nearest_template_gap(template) / 2)
    err = np.linalg.norm(found - template.points, axis=1)
    # Well within a pixel; 0.1 px also catches half-pixel convention slips (~0.4 px here).
    assert err.max() < 0.1, f"landmarks land {err.round(3)} px from the template points"


def test_pre_shrink_places_landmarks_as_well_as_the_direct_warp():
    """Scale < 0.5 (a big face into 224 px): area pre-shrink then warp, vs one direct warp."""
    template = HYPERIQA_224
    lm = _face_landmarks(template, 12.0, 600.0, (1030.7, 940.2))  # scale ~0.094
    image = _draw_blobs((1900, 2100), lm, sigma=25.0)
    m = similarity_transform(lm, template.points)
    assert np.sqrt(np.linalg.det(m[:, :2])) < 0.5  # this case must take the pre-shrink path
    radius = _nearest_template_gap(template) / 2

    crop = align_face(image, lm, template)
    direct = cv2.warpAffine(image, m, (template.size, template.size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    found = _blob_centroids(crop, template.points, radius)
    found_direct = _blob_centroids(direct, template.points, radius)
    err = np.linalg.norm(found - template.points, axis=1)
    err_direct = np.linalg.norm(found_direct - template.points, axis=1)
    # Dropping the half-pixel term of the resize mapping would put them ~0.4 px off.
    assert err.max() < 0.15, f"pre-shrink path: landmarks {err.round(3)} px off"
    assert err.max() <= err_direct.max() + 0.1, f"pre-shrink {err.round(3)} vs direct {err_direct.round(3)}"
    # Both crops show the same picture (the pre-shrunk one just without aliasing).
    assert np.abs(crop.astype(int) - direct.astype(int)).mean() < 3.0


def test_pre_shrink_with_anisotropic_rounding():
    """Odd image sizes make the pre-shrink's x and y factors differ slightly; still exact."""
    template = arcface_template(112)
    lm = _face_landmarks(template, -20.0, 300.0, (611.3, 402.9))
    image = _draw_blobs((997, 1283), lm, sigma=14.0)
    crop = align_face(image, lm, template)
    found = _blob_centroids(crop, template.points, _nearest_template_gap(template) / 2)
    err = np.linalg.norm(found - template.points, axis=1)
    assert err.max() < 0.15, f"landmarks {err.round(3)} px off"
