"""Baseline quality measures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from faceiqa.errors import InvalidArgumentError
from faceiqa.evaluation import baselines as B
from faceiqa.evaluation.degrade import degrade


@dataclass
class Face:
    box: tuple
    prob: float
    landmarks: np.ndarray


def _crop(seed=0, size=150):
    rng = np.random.default_rng(seed)
    grey = np.clip(128 + rng.normal(0, 30, (size, size)), 0, 255)
    return np.repeat(grey[:, :, None], 3, axis=2).astype(np.uint8)


def test_registry():
    assert set(B.BASELINES) == {"detprob", "sharpness", "exposure", "eye_distance", "random"}
    assert B.BASELINES["random"].floor is None
    assert B.get_baseline(" Sharpness ").name == "sharpness"
    with pytest.raises(InvalidArgumentError, match="unknown baseline"):
        B.get_baseline("brightness")


def test_sharpness_falls_with_blur():
    crop = _crop()
    values = [B.sharpness(degrade(crop, "blur", lv)) for lv in range(6)]
    assert np.all(np.diff(values) < 0)
    assert B.sharpness(np.full((20, 20, 3), 77, np.uint8)) == 0.0


def test_exposure_peaks_at_mid_grey():
    assert B.exposure(np.full((10, 10, 3), 128, np.uint8)) == 0.0
    assert B.exposure(np.full((10, 10, 3), 28, np.uint8)) == pytest.approx(-100.0)
    assert B.exposure(np.full((10, 10, 3), 228, np.uint8)) == pytest.approx(-100.0)
    crop = _crop()
    values = [B.exposure(degrade(crop, "underexposure", lv)) for lv in range(6)]
    assert np.all(np.diff(values) < 0)


def test_detection_measures():
    face = Face((0, 0, 10, 10), 0.97, np.array([[10, 20], [40, 60], [25, 40], [15, 70], [35, 70]], float))
    assert B.detection_probability(face) == 0.97
    assert B.eye_distance(face) == pytest.approx(50.0)
    with pytest.raises(InvalidArgumentError):
        B.detection_probability(Face((0, 0, 1, 1), 1.5, face.landmarks))


def test_random_is_seeded_per_key_and_uniform():
    a = [B.random_score(f"img{i}", seed=0) for i in range(2000)]
    assert a == [B.random_score(f"img{i}", seed=0) for i in range(2000)]
    assert a != [B.random_score(f"img{i}", seed=1) for i in range(2000)]
    assert 0.0 <= min(a) and max(a) < 1.0
    assert np.mean(a) == pytest.approx(0.5, abs=0.03)


def test_compute_baselines_uses_floors_without_a_face():
    values = B.compute_baselines(list(B.BASELINES), key="x/y", face=None)
    assert values["detprob"] == 0.0 and values["sharpness"] == 0.0 and values["eye_distance"] == 0.0
    assert values["exposure"] == -128.0
    assert values["random"] == B.random_score("x/y", 0)
    face = Face((0, 0, 10, 10), 0.9, np.array([[0, 0], [30, 40], [1, 1], [2, 2], [3, 3]], float))
    values = B.compute_baselines(["detprob", "eye_distance", "sharpness"], key="k", face=face, crop=_crop())
    assert values["eye_distance"] == 50.0 and values["sharpness"] > 0
    with pytest.raises(InvalidArgumentError, match="needs the aligned face crop"):
        B.compute_baselines(["sharpness"], key="k", face=face)


def test_bad_crop_is_rejected():
    with pytest.raises(InvalidArgumentError):
        B.sharpness(np.zeros((10, 10), np.uint8))
