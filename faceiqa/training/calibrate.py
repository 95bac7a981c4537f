"""Calibrating a trained face model's score and exporting the head as a registered weights file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from faceiqa._util import atomic_path
from faceiqa.errors import InvalidArgumentError

log = logging.getLogger(__name__)



# --------------------------------------------------------------------------- export


#: Same-person threshold of the dlib recognizer (Euclidean descriptor distance).
RECOGNISABLE_DISTANCE = 0.6


@dataclass(frozen=True)
class Calibration:
    """A logistic map from raw face-model output to the probability of being recognisable.

    ``score = 1 / (1 + exp(-(raw - x0) / width))`` estimates the probability that a face
    is recognisable: found by the detector, and its recognizer descriptor closer than the
    same-person threshold (0.6) to the person's other photos on average. Fitted by maximum
    likelihood on the validation split of a training set.

    Attributes:
        x0, width: the logistic's centre and scale (raw units).
        n: validation samples used; share: share of them recognisable.
        bins: (low, high, n, observed share, mean predicted) per raw-value bin.
    """

    x0: float
    width: float
    n: int
    share: float
    bins: tuple[tuple[float, float, int, float, float], ...]


def calibrate_recognisability(raw: np.ndarray, recognisable: np.ndarray) -> Calibration:
    """Fit :class:`Calibration` to raw outputs and 0/1 outcomes (maximum likelihood)."""
    from scipy.optimize import minimize

    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(recognisable, dtype=np.float64)
    if raw.shape != y.shape or raw.size < 10 or y.min() == y.max():
        raise InvalidArgumentError("calibration needs at least 10 samples of both outcomes")

    def nll(theta: np.ndarray) -> float:
        x0, log_w = theta
        z = (raw - x0) / np.exp(log_w)
        return float(np.mean(np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1.0 - y)))

    fit = minimize(nll, np.array([float(np.median(raw)), np.log(max(float(raw.std()), 1e-3))]), method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})
    x0, width = float(fit.x[0]), float(np.exp(fit.x[1]))
    pred = 1.0 / (1.0 + np.exp(-(raw - x0) / width))
    edges = (-np.inf, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, np.inf)
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (raw >= lo) & (raw < hi)
        if m.any():
            bins.append((lo, hi, int(m.sum()), float(y[m].mean()), float(pred[m].mean())))
    return Calibration(x0, width, int(raw.size), float(y.mean()), tuple(bins))


def face_validation_outputs(run_dir: Path) -> tuple[np.ndarray, Any]:
    """Raw outputs of a face run's ``best.pt`` on the validation split of its training set."""
    from faceiqa.models.checkpoints import read_checkpoint
    from faceiqa.models.face import CachedStages, face_hypernet, load_head
    from faceiqa.models.hypernet import target_network
    from faceiqa.training.trainset import FaceTrainSet

    config = json.loads((Path(run_dir) / "config.json").read_text())
    cache = config.get("data", {}).get("cache", "")
    if not cache or not Path(cache).is_file():
        raise InvalidArgumentError(f"{run_dir}: the run's training-set cache {cache!r} is needed to calibrate")
    data = FaceTrainSet.load(cache)
    val = data.subset(data.split == "val")
    model = load_head(face_hypernet(CachedStages()), read_checkpoint(Path(run_dir) / "best.pt")).eval()
    with torch.inference_mode():
        raw = target_network(model.params_from_stages([torch.from_numpy(s) for s in val.stages], torch.from_numpy(val.extra)))
    return raw.double().numpy(), val


def export_face_model(run_dir: Path, dest: Path, name: str = "faceiqa-face", *, calibrate: bool = False) -> dict[str, Any]:
    """Write a face run's ``best.pt`` to ``dest`` and return its manifest entry.

    With ``calibrate`` the entry's score mapping is the recognisability calibration
    (:func:`calibrate_recognisability`) fitted on the run's validation split; otherwise the
    generic face mapping (logistic centred at 0.5, width 0.15).

    Raises:
        InvalidArgumentError: the run has no ``best.pt`` (or, to calibrate, no cache).
        CheckpointError: the weights do not fit the face model.
    """
    import shutil

    from faceiqa.hub.store import sha256_file
    from faceiqa.models.checkpoints import read_checkpoint
    from faceiqa.models.config import ScoreMapping
    from faceiqa.models.face import FACE_CONFIG, face_hypernet, load_head

    best = Path(run_dir) / "best.pt"
    if not best.is_file():
        raise InvalidArgumentError(f"{run_dir} has no best.pt")
    load_head(face_hypernet(), read_checkpoint(best), source=best.name)
    config = FACE_CONFIG
    if calibrate:
        raw, val = face_validation_outputs(Path(run_dir))
        cal = calibrate_recognisability(raw, (val.distance < RECOGNISABLE_DISTANCE) & val.detected)
        config = config.replace(
            mapping=ScoreMapping.logistic(round(cal.x0, 6), round(cal.width, 6)),
            calibration=(
                f"score = P(recognisable): found by the detector and closer than {RECOGNISABLE_DISTANCE} to the "
                f"person's other photos on average; logistic fitted on {cal.n} validation samples ({cal.share:.1%} recognisable)"
            ),
        )
    with atomic_path(dest) as tmp:
        shutil.copyfile(best, tmp)
    return {
        "name": name,
        "file": dest.name,
        "size": dest.stat().st_size,
        "sha256": sha256_file(dest),
        "kind": "quality",
        "architecture": config.architecture,
        "layout": config.layout,
        "backbone": "dlib-resnet (frozen; loaded from the dlib-resnet entry)",
        "options": dict(config.options),
        "input": config.input.to_dict(),
        "score": config.score.to_dict(),
    }
