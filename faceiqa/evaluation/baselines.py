"""Baseline quality measures that any learned quality score has to beat.

Each is a plain function from what the pipeline already has - the detection (box,
probability, landmarks) or the aligned face crop (uint8 RGB) - to a number, higher = better:

==============  =========  ==================================================  ================
name            input      value                                               range
==============  =========  ==================================================  ================
detprob         detection  MTCNN face probability, passed through              [0, 1]
sharpness       crop       variance of the Laplacian of the grey crop          [0, inf), grey²
exposure        crop       -abs(mean luminance - 128), luma Rec. 601, 8-bit    [-128, 0]
eye_distance    detection  distance between the eye landmarks, original px     [0, inf)
random          key        uniform random, seeded per image key                [0, 1)
==============  =========  ==================================================  ================

For an image without a usable face, measures that need one take their ``floor`` (the
lowest value they can have: the image is ranked worst); ``random`` needs no face and
stays random, so that it remains an uninformed reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

import cv2
import numpy as np

from faceiqa._util import Registry
from faceiqa.errors import InvalidArgumentError
from faceiqa.evaluation.degrade import seed_for
from faceiqa.face.alignment import eye_distance as _eye_distance
from faceiqa.images import check_rgb

MID_GREY = 128.0


class FaceLike(Protocol):
    """What the baselines read from a detection (``faceiqa.face.detection.DetectedFace`` fits)."""

    prob: float
    landmarks: np.ndarray


def _grey(crop: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(check_rgb(crop, "face crop", min_side=3), cv2.COLOR_RGB2GRAY).astype(np.float64)


def detection_probability(face: FaceLike) -> float:
    """The detector's face probability in [0, 1]."""
    prob = float(face.prob)
    if not np.isfinite(prob) or not (0.0 <= prob <= 1.0):
        raise InvalidArgumentError(f"detection probability must be in [0, 1], got {prob}")
    return prob


def sharpness(crop: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian (4-neighbour) of the grey crop, in grey levels squared."""
    lap = cv2.Laplacian(_grey(crop), cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT_101)
    return float(lap.var())


def exposure(crop: np.ndarray) -> float:
    """Minus the distance of the crop's mean luminance from mid-grey (128), in [-128, 0]."""
    return -abs(float(_grey(crop).mean()) - MID_GREY)


def eye_distance(face: FaceLike) -> float:
    """Inter-eye distance in pixels of the original image (from the detection's landmarks)."""
    return _eye_distance(face.landmarks)


def random_score(key: str, seed: int = 0) -> float:
    """A uniform random number in [0, 1), the same for the same key and seed on any machine."""
    if not isinstance(key, str):
        raise InvalidArgumentError(f"random baseline key must be a string, got {type(key).__name__}")
    return float(np.random.default_rng(seed_for(key, seed)).random())


@dataclass(frozen=True)
class Baseline:
    """A registered baseline.

    Attributes:
        name: its name on the command line.
        input: ``"detection"``, ``"crop"`` (aligned face crop) or ``"key"`` (image key + seed).
        func: the measure.
        floor: value for images with no face; None when the measure needs no face.
        description: one line.
    """

    name: str
    input: Literal["detection", "crop", "key"]
    func: Callable
    floor: float | None
    description: str


BASELINES: Registry[Baseline] = Registry("baseline", {
    b.name: b
    for b in (
        Baseline("detprob", "detection", detection_probability, 0.0, "MTCNN detection probability"),
        Baseline("sharpness", "crop", sharpness, 0.0, "variance of the Laplacian of the grey face crop"),
        Baseline("exposure", "crop", exposure, -MID_GREY, "-|mean luminance - 128| of the face crop"),
        Baseline("eye_distance", "detection", eye_distance, 0.0, "inter-eye distance in original pixels"),
        Baseline("random", "key", random_score, None, "seeded uniform random score"),
    )
})


def get_baseline(name: str) -> Baseline:
    """Look up a baseline by name."""
    return BASELINES[name.strip().lower()]


def compute_baselines(
    names: Iterable[str],
    *,
    key: str,
    face: FaceLike | None = None,
    crop: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Compute several baselines for one image.

    Args:
        names: baseline names from :data:`BASELINES`.
        key: a stable identifier of the image (e.g. its path relative to the image folder).
        face: the chosen detection, or None when no face was found.
        crop: the aligned crop of that face (needed by crop measures when ``face`` is given).
        seed: seed of the random baseline.

    Returns:
        ``{name: value}``; measures needing a face give their floor when ``face`` is None.
    """
    out: dict[str, float] = {}
    for name in names:
        b = get_baseline(name)
        if b.input == "key":
            out[b.name] = b.func(key, seed)
        elif face is None:
            out[b.name] = float(b.floor)
        elif b.input == "detection":
            out[b.name] = b.func(face)
        else:
            if crop is None:
                raise InvalidArgumentError(f"baseline {b.name!r} needs the aligned face crop")
            out[b.name] = b.func(crop)
    return out
