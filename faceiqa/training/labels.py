"""Training labels for the face quality model, from two signals (both in [0, 1], 1 = best).

Utility (ISO/IEC 29794-1: quality as the usefulness of a sample for recognition)
    How far the face's recognizer descriptor lies from the same person's *other* pristine
    photos: the mean Euclidean distance ``d`` is mapped linearly from ``d_good`` (the 2nd
    percentile of genuine pristine distances: as close as two photos of one person get) to
    ``d_bad`` (the mean impostor distance: as far as a stranger) onto [1, 0], clipped. A
    degraded face the detector no longer finds gets utility 0: a pipeline would lose it.

Perceptual (how a person would judge the damage)
    Full-reference agreement between the pristine and the degraded face, both cut with the
    same transform (the pristine landmarks) so that only the degradation differs. Three
    training-free measures that track human opinion scores well on the IQA benchmarks are
    averaged: HaarPSI (Reisenhofer et al. 2018; in [0, 1], fitted to opinion scores by
    design), GMSD (Xue et al. 2014), put on the same footing as ``1 - GMSD / 0.35`` (0.35 is
    about the largest GMSD of strongly distorted images), and VIF in its pixel-domain form
    (Sheikh and Bovik 2006; clipped to [0, 1]). VIF is the one that notices mild loss of
    fine detail: shrinking an LFW face 1.5 or 2 times and enlarging it back leaves HaarPSI at
    0.99 / 0.98 and GMSD at 0.005 / 0.010, while VIF falls to 0.90 / 0.84. A pristine face
    scores 1.

Blend
    ``label = w * utility + (1 - w) * perceptual`` with ``w = 0.5``. The utility signal
    ranks faces by what matters downstream (pose, expression, occlusion, blur that breaks
    recognition) and is the only one that varies among pristine photos; the perceptual
    signal adds what people see but the recognizer shrugs off (contrast loss, darkening,
    compression, colour casts), which keeps scores monotone in every degradation's severity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceiqa.errors import InvalidArgumentError

#: GMSD value treated as "as bad as it gets" when GMSD is put on a [0, 1] scale.
GMSD_MAX = 0.35
#: Weight of the utility signal in the blended label.
UTILITY_WEIGHT = 0.5


@dataclass(frozen=True)
class UtilityCalibration:
    """Linear map from a mean descriptor distance to utility in [0, 1].

    Attributes:
        d_good: distance that maps to 1 (Euclidean, descriptor units).
        d_bad: distance that maps to 0.
    """

    d_good: float
    d_bad: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.d_good) and np.isfinite(self.d_bad) and self.d_bad > self.d_good >= 0):
            raise InvalidArgumentError(f"utility calibration needs 0 <= d_good < d_bad, got {self.d_good}, {self.d_bad}")

    def __call__(self, distance: np.ndarray | float) -> np.ndarray:
        d = np.asarray(distance, dtype=np.float64)
        return np.clip((self.d_bad - d) / (self.d_bad - self.d_good), 0.0, 1.0)


def calibrate_utility(genuine: np.ndarray, impostor: np.ndarray, percentile: float = 2.0) -> UtilityCalibration:
    """``d_good`` = the ``percentile``-th percentile of genuine distances, ``d_bad`` = mean impostor distance."""
    genuine = np.asarray(genuine, dtype=np.float64)
    impostor = np.asarray(impostor, dtype=np.float64)
    if genuine.size == 0 or impostor.size == 0:
        raise InvalidArgumentError("utility calibration needs genuine and impostor distances")
    return UtilityCalibration(float(np.percentile(genuine, percentile)), float(impostor.mean()))


def mean_reference_distance(descriptor: np.ndarray, references: np.ndarray) -> float:
    """Mean Euclidean distance from one (D,) descriptor to (R, D) reference descriptors."""
    refs = np.asarray(references, dtype=np.float64)
    if refs.ndim != 2 or refs.shape[0] == 0:
        raise InvalidArgumentError("need at least one reference descriptor")
    return float(np.linalg.norm(refs - np.asarray(descriptor, dtype=np.float64)[None], axis=1).mean())


@dataclass(frozen=True)
class PerceptualScores:
    """Full-reference measures of one degraded face against its pristine version.

    Attributes:
        haarpsi: HaarPSI similarity in [0, 1] (1 = identical).
        gmsd: gradient magnitude similarity deviation, >= 0 (0 = identical).
        vif: pixel-domain visual information fidelity, clipped to [0, 1] (1 = identical).
        combined: ``(haarpsi + clip(1 - gmsd / GMSD_MAX, 0, 1) + vif) / 3`` in [0, 1].
    """

    haarpsi: np.ndarray
    gmsd: np.ndarray
    vif: np.ndarray
    combined: np.ndarray


def perceptual_scores(reference: np.ndarray, degraded: np.ndarray) -> PerceptualScores:
    """Compare (N, H, W, 3) uint8 RGB pristine faces with their degraded versions.

    Both sets must be cut with the same geometry. Needs the ``piq`` package (the ``train``
    extra).
    """
    import piq
    import torch

    ref = np.asarray(reference)
    deg = np.asarray(degraded)
    if ref.ndim == 3:
        ref, deg = ref[None], deg[None]
    if ref.shape != deg.shape or ref.ndim != 4 or ref.shape[-1] != 3 or ref.dtype != np.uint8 or deg.dtype != np.uint8:
        raise InvalidArgumentError("perceptual_scores needs two uint8 (N, H, W, 3) arrays of the same shape")
    x = torch.from_numpy(ref).permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(deg).permute(0, 3, 1, 2).float() / 255.0
    with torch.inference_mode():
        haar = piq.haarpsi(y, x, data_range=1.0, reduction="none").double().numpy()
        gmsd = piq.gmsd(y, x, data_range=1.0, reduction="none").double().numpy()
        vif = piq.vif_p(y, x, data_range=1.0, reduction="none").double().numpy()
    identical = np.all(ref.reshape(len(ref), -1) == deg.reshape(len(deg), -1), axis=1)
    haar = np.where(identical, 1.0, np.clip(haar, 0.0, 1.0))
    gmsd = np.where(identical, 0.0, np.maximum(gmsd, 0.0))
    vif = np.where(identical, 1.0, np.clip(vif, 0.0, 1.0))
    combined = (haar + np.clip(1.0 - gmsd / GMSD_MAX, 0.0, 1.0) + vif) / 3.0
    return PerceptualScores(haar, gmsd, vif, combined)


def blend(utility: np.ndarray | float, perceptual: np.ndarray | float, weight: float = UTILITY_WEIGHT) -> np.ndarray:
    """``weight * utility + (1 - weight) * perceptual``, both in [0, 1]."""
    if not 0.0 <= weight <= 1.0:
        raise InvalidArgumentError(f"weight must be in [0, 1], got {weight}")
    return weight * np.asarray(utility, dtype=np.float64) + (1.0 - weight) * np.asarray(perceptual, dtype=np.float64)
