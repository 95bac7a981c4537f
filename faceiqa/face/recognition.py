"""The face recognizer: aligned 150x150 chips to 128-d dlib descriptors (see
:mod:`faceiqa.models.dlib_resnet` for the network).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from faceiqa._util import check_int, pick_device
from faceiqa.errors import InvalidArgumentError
from faceiqa.face.alignment import align_face, get_template
from faceiqa.models.dlib_resnet import (
    CHIP_SIZE,
    DESCRIPTOR_DIM,
    SAME_PERSON_THRESHOLD,
    TEMPLATE_NAME,
    load_dlib_resnet,
    normalize_chips,
)

logger = logging.getLogger("faceiqa.recognition")



# --------------------------------------------------------------------------- recognizer


class FaceRecognizer:
    """128-d face descriptors from 150x150 dlib-style chips.

    Args:
        weights: a registry name or a converted weights file; default: the registered
            ``dlib-resnet`` file.
        device: torch device ("cpu", "cuda", a ``torch.device``); None picks CUDA when
            available, else the CPU (as :class:`faceiqa.face.detection.FaceDetector` does).
        batch_size: chips per forward pass (memory vs speed; results do not depend on it
            beyond float rounding).

    On CPU the descriptors match face-api's to about 1e-6. On CUDA, PyTorch runs cuDNN
    convolutions in TF32 by default on Ampere and newer GPUs, which is expected to move
    descriptors by about 1e-3 (not measured here; small next to the 0.6 threshold); set
    ``torch.backends.cudnn.allow_tf32 = False`` where float32-faithful values matter.
    """

    threshold = SAME_PERSON_THRESHOLD

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 32,
    ) -> None:
        check_int(batch_size, "batch_size", 1)
        self.device = pick_device(device)
        self.model = load_dlib_resnet(weights, self.device)
        self.batch_size = batch_size
        self.template = get_template(TEMPLATE_NAME)

    def align(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Cut the (150, 150, 3) uint8 RGB chip for one face from its 5 MTCNN landmarks."""
        return align_face(image, landmarks, self.template)

    def _as_batch(self, chips: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> torch.Tensor:
        """(N, 3, 150, 150) float32 RGB in 0..255 on the model's device."""
        if isinstance(chips, Sequence) and not isinstance(chips, (str, bytes)):
            if len(chips) == 0:
                return torch.empty((0, 3, CHIP_SIZE, CHIP_SIZE), device=self.device)
            chips = np.stack([np.asarray(c) for c in chips])
        size = CHIP_SIZE
        if isinstance(chips, np.ndarray) or (isinstance(chips, torch.Tensor) and chips.dtype == torch.uint8):
            arr = chips if isinstance(chips, torch.Tensor) else torch.from_numpy(np.array(chips, copy=True))
            if arr.dtype != torch.uint8:
                raise InvalidArgumentError(f"numpy chips must be uint8 RGB, got dtype {chips.dtype}")
            if arr.ndim == 3:
                arr = arr[None]
            if arr.ndim != 4 or tuple(arr.shape[1:]) != (size, size, 3):
                raise InvalidArgumentError(
                    f"uint8 chips must be (N, {size}, {size}, 3) or ({size}, {size}, 3), got {tuple(chips.shape)}"
                )
            return arr.to(self.device).permute(0, 3, 1, 2).to(torch.float32)
        if isinstance(chips, torch.Tensor) and chips.is_floating_point():
            t = chips[None] if chips.ndim == 3 else chips
            if t.ndim != 4 or tuple(t.shape[1:]) != (3, size, size):
                raise InvalidArgumentError(
                    f"float chips must be (N, 3, {size}, {size}) or (3, {size}, {size}) in 0..255, "
                    f"got {tuple(chips.shape)}"
                )
            return t.to(self.device, torch.float32)
        raise InvalidArgumentError(f"chips must be a uint8 numpy array or a tensor, got {type(chips).__name__}")

    def embed(self, chips: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors of aligned chips.

        Args:
            chips: uint8 RGB (N, 150, 150, 3) or (150, 150, 3) numpy arrays (or a list of
                (150, 150, 3) arrays, or a uint8 tensor in that layout), or float tensors
                (N, 3, 150, 150) / (3, 150, 150) holding RGB values in 0..255.

        Returns:
            (N, 128) float32 descriptors (N = 1 for a single chip), not normalised (their
            Euclidean norms are typically 1.2-1.6); compare them with :meth:`distance`.
        """
        batch = self._as_batch(chips)
        out = np.empty((batch.shape[0], DESCRIPTOR_DIM), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, batch.shape[0], self.batch_size):
                part = normalize_chips(batch[start : start + self.batch_size])
                out[start : start + len(part)] = self.model(part).cpu().numpy()
        return out

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
        """Euclidean distance between descriptors ((128,) or (N, 128), broadcast row-wise).

        Returns a float for two single descriptors, else an (N,) float array.
        """
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape[-1:] != (DESCRIPTOR_DIM,) or b.shape[-1:] != (DESCRIPTOR_DIM,):
            raise InvalidArgumentError(f"descriptors must end in {DESCRIPTOR_DIM}, got {a.shape} and {b.shape}")
        d = np.linalg.norm(a - b, axis=-1)
        return float(d) if d.ndim == 0 else d

    def same_person(self, a: np.ndarray, b: np.ndarray) -> np.ndarray | bool:
        """``distance(a, b) < SAME_PERSON_THRESHOLD``."""
        d = self.distance(a, b)
        return bool(d < self.threshold) if isinstance(d, float) else d < self.threshold


def load_recognizer(device: str | torch.device | None = None) -> FaceRecognizer:
    """The default :class:`FaceRecognizer` (registered ``dlib-resnet`` weights, never downloads).

    ``device`` None picks CUDA when available, else the CPU.
    """
    return FaceRecognizer(device=device)
