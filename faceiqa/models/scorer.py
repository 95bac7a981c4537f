"""QualityScorer: a quality network together with its input protocol and score mapping.

Input forms accepted everywhere:

* ``numpy.ndarray`` uint8 RGB, (H, W, 3) for one image or (N, H, W, 3) for several;
* ``PIL.Image.Image`` (converted with ``convert("RGB")``);
* ``torch.Tensor`` float, (3, H, W) or (N, 3, H, W), RGB values in [0, 1];
* a list or tuple of any of those (one image each).

Pixels are normalised inside the scorer (ImageNet mean and std for ``normalize="imagenet"``).

Protocols (both deterministic):

* :meth:`QualityScorer.score_crops`: crops already at the model's input size (e.g. aligned
  faces) are scored in one pass each; ``flip=True`` also scores the horizontal mirror and
  averages the two raw outputs.
* :meth:`QualityScorer.score_image`: whole images of any size. An image whose shorter side
  is below the input size S is first upscaled (bilinear) so that its shorter side is S.
  Then S x S crops are taken on a K x K grid (``grid``, default 5): along an axis of length
  L the crop offsets are ``round(i * (L - S) / (K - 1))`` for i = 0..K-1, so the first crop
  touches one border and the last the other; repeated offsets (L - S < K - 1) are taken
  once, and an axis with L = S has a single offset 0. K = 1 takes the centre crop. The raw
  outputs of all crops are averaged.

Scores: ``raw`` is the model's output (averaged as above) in float64, ``score`` is
``mapping(raw)`` clipped to [0, 1], higher is better.

Reproducibility: the same input gives bit-identical results on the same device and
software (and the same ``batch_size``). Results for an image depend on the other images in
the call only through float32 rounding of the backbone's batched kernels: batch of 1 vs
batch of N is not bitwise equal on CPU (measured ~1e-6 relative on the raw output).

Fast modes (all opt-in; the default is plain float32 in NCHW layout, eager):

* ``precision``: ``"fp32"`` (default), ``"bf16"`` (autocast, CPUs with native bf16 such as
  AVX512-BF16 or AMX, or CUDA), ``"fp16"`` (autocast, CUDA only) or ``"auto"``. Reduced
  precision covers the backbone only (the bulk of the work); for HyperIQA networks the
  hyper network's head and the target network run in float32 on its float32-cast stage
  maps. ``"auto"`` picks the reduced precision the hardware supports natively (bf16 on such
  CPUs, fp16 on CUDA) and keeps it only if, on the first chunk of crops it scores, every
  score is within :data:`AUTO_TOLERANCE` of float32 (that chunk's results are the float32
  ones); otherwise it stays in float32. :attr:`QualityScorer.precision` says what runs.
  The default path is unchanged bit for bit; reduced precision changes scores by up to about
  0.01 (measured in ``tests/integration/test_fast_paths.py`` on LFW faces).
* ``channels_last``: model and inputs in channels-last memory layout (faster convolutions
  on CPU; results differ from NCHW by float32 rounding, about 1e-6).
* ``compile``: ``torch.compile`` the model on first use (the float32 path; reduced
  precision runs eagerly). Compiling takes tens of seconds, once more when a second batch
  size appears, so it pays off on long runs only. If compiling fails or is not available, a
  warning is logged and the eager model runs. Results differ from eager by float rounding.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from faceiqa._util import Registry, check_int, pick_device
from faceiqa.errors import InvalidArgumentError
from faceiqa.models.config import ModelConfig, ScoreMapping
from faceiqa.models.hypernet import HyperNet, target_network

logger = logging.getLogger("faceiqa.models.scorer")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: dlib / face-api face recognition input: (RGB 0..255 - mean) / 255, i.e. [0, 1] RGB minus mean/255.
DLIB_MEAN = (122.782 / 255.0, 117.001 / 255.0, 104.298 / 255.0)
NORMALIZATIONS: Registry[tuple[tuple[float, float, float], tuple[float, float, float]]] = Registry("normalisation", {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "dlib": (DLIB_MEAN, (1.0, 1.0, 1.0)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
})

ImageInput = np.ndarray | Image.Image | torch.Tensor
ImagesInput = ImageInput | Sequence[ImageInput]

__all__ = [
    "AUTO_TOLERANCE",
    "PRECISIONS",
    "QualityScorer",
    "Scores",
    "ScoreMapping",
    "cpu_supports_bf16",
    "crop_grid",
]

#: Values of ``precision``.
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
#: ``precision="auto"`` keeps a reduced precision only if its scores on the first chunk of
#: crops are all within this of float32's (half the 0.01 bound the tests check).
AUTO_TOLERANCE = 0.005


def cpu_supports_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16), as far as can be told.

    Linux reads ``/proc/cpuinfo``; elsewhere PyTorch's own check (``torch.backends.mkldnn``)
    is used when it has one, else False.
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    check = getattr(getattr(torch.backends, "mkldnn", None), "is_bf16_supported", None)
    try:
        return bool(check()) if callable(check) else False
    except Exception:  # noqa: BLE001 - a capability probe must never fail the caller
        return False


def _native_reduced_precision(device: torch.device) -> str | None:
    """The reduced precision ``"auto"`` tries on ``device``, or None."""
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and cpu_supports_bf16():
        return "bf16"
    return None


def _check_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise InvalidArgumentError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise InvalidArgumentError("precision fp16 needs a CUDA device (use bf16 on the CPU)")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InvalidArgumentError(f"precision bf16 is not supported on {device}")
    return precision


@dataclass(frozen=True)
class Scores:
    """Per-item results of a scoring call, in input order.

    Attributes:
        score: (N,) float64 in [0, 1], higher is better.
        raw: (N,) float64 model output on its native scale (see ``QualityScorer.raw_name``).
        n_crops: (N,) int64 number of forward passes averaged per item (crops x flips).
    """

    score: np.ndarray
    raw: np.ndarray
    n_crops: np.ndarray

    def __len__(self) -> int:
        return int(self.score.shape[0])


def crop_grid(height: int, width: int, size: int, grid: int) -> list[tuple[int, int]]:
    """Top-left (y, x) offsets of the whole-image crop grid (see the module docstring).

    Args:
        height, width: image size in pixels, both >= ``size``.
        size: crop side in pixels.
        grid: K of the K x K grid (>= 1).
    """
    if height < size or width < size:
        raise InvalidArgumentError(f"image {height}x{width} is smaller than the {size}px crop")
    if grid < 1:
        raise InvalidArgumentError(f"grid must be >= 1, got {grid}")

    def offsets(length: int) -> list[int]:
        span = length - size
        if span == 0:
            return [0]
        if grid == 1:
            return [span // 2]
        out: list[int] = []
        for i in range(grid):
            o = int(round(i * span / (grid - 1)))
            if o not in out:
                out.append(o)
        return out

    return [(y, x) for y in offsets(height) for x in offsets(width)]


def _uint8_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [0, 1] (the same arithmetic for every input form)."""
    t = torch.from_numpy(arr.astype(np.float32))  # astype copies: read-only arrays are fine
    return t.movedim(-1, -3).div_(255.0).contiguous()


def _pil_to_tensor(img: Image.Image) -> torch.Tensor:
    return _uint8_to_tensor(np.asarray(img.convert("RGB"), dtype=np.uint8))


def _check_float(t: torch.Tensor) -> torch.Tensor:
    if not t.is_floating_point():
        raise InvalidArgumentError(f"image tensors must be float in [0, 1], got {t.dtype}")
    t = t.detach().to("cpu", torch.float32)
    if t.numel() and (not torch.isfinite(t).all() or t.min() < 0.0 or t.max() > 1.0):
        raise InvalidArgumentError("image tensors must hold finite values in [0, 1]")
    return t


def _one_image(item: Any) -> torch.Tensor:
    """One image as a (3, H, W) float32 CPU tensor in [0, 1]."""
    if isinstance(item, Image.Image):
        return _pil_to_tensor(item)
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
            raise InvalidArgumentError(
                f"numpy images must be (H, W, 3) uint8 RGB, got {item.dtype} {item.shape}; "
                "pass float data as a torch tensor in [0, 1]"
            )
        return _uint8_to_tensor(item)
    if isinstance(item, torch.Tensor):
        if item.ndim != 3 or item.shape[0] != 3:
            raise InvalidArgumentError(f"an image tensor must be (3, H, W), got {tuple(item.shape)}")
        return _check_float(item)
    raise InvalidArgumentError(f"unsupported image type {type(item).__name__} (numpy uint8, PIL or float tensor)")


def to_image_list(images: ImagesInput) -> list[torch.Tensor]:
    """Any accepted input form as a list of (3, H, W) float32 CPU tensors in [0, 1]."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        if images.dtype != np.uint8 or images.shape[3] != 3:
            raise InvalidArgumentError(
                f"numpy batches must be (N, H, W, 3) uint8 RGB, got {images.dtype} {images.shape}"
            )
        return list(_uint8_to_tensor(images).unbind(0))
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        if images.shape[1] != 3:
            raise InvalidArgumentError(f"image batches must be (N, 3, H, W), got {tuple(images.shape)}")
        return list(_check_float(images).unbind(0))
    if isinstance(images, (list, tuple)):
        out = [_one_image(item) for item in images]
    else:
        out = [_one_image(images)]
    if not out:
        raise InvalidArgumentError("no images given")
    return out


def _upscale_to(img: torch.Tensor, size: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    short = min(h, w)
    if short >= size:
        return img
    scale = size / short
    new = (max(size, int(round(h * scale))), max(size, int(round(w * scale))))
    out = F.interpolate(img[None], size=new, mode="bilinear", align_corners=False)[0]
    return out.clamp_(0.0, 1.0)


class QualityScorer:
    """Scores images with a quality network (see the module docstring for the protocol).

    Args:
        model: ``nn.Module`` mapping (B, 3, S, S) normalised images (and, when
            ``extra_inputs > 0``, a (B, extra_inputs) float tensor) to (B,) raw scores.
        config: the model's :class:`~faceiqa.models.config.ModelConfig` (crop size S,
            alignment template, normalisation, grid, extra inputs, score mapping).
        device: torch device; default CUDA if available, else CPU.
        batch_size: crops per forward pass (memory bound; results do not depend on it
            beyond float32 rounding).
        extra_inputs: scalars per crop the model takes; default the model's
            ``extra_target_inputs`` attribute, or 0. ``config.extra`` names them (or is empty).
        precision: ``"fp32"`` (default), ``"bf16"``, ``"fp16"`` (CUDA) or ``"auto"`` (see the
            module docstring).
        channels_last: run the model in channels-last memory layout (opt-in, see above).
        compile: ``torch.compile`` the model on first use (opt-in, falls back to eager).
    """

    def __init__(
        self,
        model: nn.Module,
        config: ModelConfig,
        *,
        device: str | torch.device | None = None,
        batch_size: int = 32,
        extra_inputs: int | None = None,
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        if not isinstance(config, ModelConfig):
            raise InvalidArgumentError(f"config must be a ModelConfig, got {type(config).__name__}")
        self._batch_size = check_int(batch_size, "batch_size", 1)
        mean, std = NORMALIZATIONS[config.normalize]
        self._device = pick_device(device)
        self._model = model.to(self._device).eval()
        self.config = config
        self._extra_inputs = int(getattr(model, "extra_target_inputs", 0) if extra_inputs is None else extra_inputs)
        if config.extra and len(config.extra) != self._extra_inputs:
            raise InvalidArgumentError(
                f"{config.name}: {len(config.extra)} extra input names for {self._extra_inputs} extra inputs"
            )
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self._device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=self._device).view(1, 3, 1, 1)
        self._precision = "fp32"
        self._auto_pending: str | None = None
        self._channels_last = False
        self._compile = False
        self._compiled: Any = None
        self.configure(precision=precision, channels_last=channels_last, compile=compile)

    def configure(
        self, *, precision: str | None = None, channels_last: bool | None = None, compile: bool | None = None
    ) -> QualityScorer:
        """Change the fast-mode settings (None keeps a setting); returns ``self``.

        Raises:
            InvalidArgumentError: an unknown precision, or one the device cannot run.
        """
        if precision is not None:
            precision = _check_precision(precision, self._device)
            self._auto_pending = None
            if precision == "auto":
                candidate = _native_reduced_precision(self._device)
                self._precision = "fp32"
                self._auto_pending = candidate
            else:
                self._precision = precision
        if channels_last is not None and bool(channels_last) != self._channels_last:
            self._channels_last = bool(channels_last)
            fmt = torch.channels_last if self._channels_last else torch.contiguous_format
            self._model.to(memory_format=fmt)
            self._compiled = None
        if compile is not None and bool(compile) != self._compile:
            self._compile = bool(compile)
            self._compiled = None
        return self

    # ------------------------------------------------------------------ properties
    @property
    def name(self) -> str:
        """Weights name (``config.name``)."""
        return self.config.name

    @property
    def device(self) -> torch.device:
        """Device the model runs on."""
        return self._device

    @property
    def batch_size(self) -> int:
        """Crops per forward pass."""
        return self._batch_size

    @property
    def extra_inputs(self) -> int:
        """Extra scalars per crop the model needs (``extra=`` argument)."""
        return self._extra_inputs

    @property
    def model(self) -> nn.Module:
        """The wrapped network (in eval mode)."""
        return self._model

    @property
    def precision(self) -> str:
        """The precision that runs now: ``fp32``, ``bf16`` or ``fp16`` (``auto`` resolves to one
        of them on the first chunk it scores)."""
        return self._precision

    @property
    def channels_last(self) -> bool:
        """Whether the model runs in channels-last memory layout."""
        return self._channels_last

    @property
    def compile(self) -> bool:
        """Whether ``torch.compile`` is requested (see :attr:`compiled`)."""
        return self._compile

    @property
    def compiled(self) -> bool:
        """Whether a compiled model is in use (False before the first call or after a fallback)."""
        return self._compiled is not None and self._compiled is not self._model

    def __repr__(self) -> str:
        return (
            f"QualityScorer(name={self.name!r}, size={self.config.size}, template={self.config.template!r}, "
            f"raw_name={self.config.raw_name!r}, device={str(self._device)!r})"
        )

    # ------------------------------------------------------------------ running
    def _extra_array(self, extra: Any, n: int) -> np.ndarray:
        if self._extra_inputs == 0:
            if extra is not None:
                raise InvalidArgumentError(f"{self.name} takes no extra inputs")
            return np.zeros((n, 0), dtype=np.float32)
        if extra is None:
            raise InvalidArgumentError(f"{self.name} needs extra= with {self._extra_inputs} value(s) per image")
        arr = np.asarray(extra, dtype=np.float64)
        if arr.ndim == 1 and self._extra_inputs == 1:
            arr = arr[:, None]
        if arr.shape != (n, self._extra_inputs) or not np.all(np.isfinite(arr)):
            raise InvalidArgumentError(f"extra must be finite with shape ({n}, {self._extra_inputs}), got {arr.shape}")
        return arr.astype(np.float32)

    def _network(self) -> Any:
        """The callable that runs: the model, or its compiled version (made on first use)."""
        if not self._compile:
            return self._model
        if self._compiled is None:
            try:
                self._compiled = torch.compile(self._model)
            except Exception as exc:  # noqa: BLE001 - compile is optional; eager always works
                logger.warning("%s: torch.compile is not available (%s); running eagerly", self.name, exc)
                self._compiled = self._model
        return self._compiled

    def _run_model(self, net: Any, x: torch.Tensor, e: torch.Tensor | None, precision: str) -> torch.Tensor:
        """One chunk through ``net`` at ``precision`` (the fp32 path is the plain call)."""
        if precision == "fp32":
            return net(x, e) if e is not None else net(x)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        model = self._model
        if isinstance(model, HyperNet):
            # Reduced precision for the backbone only; the head and the target network run in
            # float32 on float32-cast stage maps (they are small, and sensitive to rounding).
            with torch.autocast(self._device.type, dtype=dtype):
                stages = model.res.stage_features(x)
            stages = [t.float() for t in stages]
            return target_network(model.params_from_stages(stages, e))
        with torch.autocast(self._device.type, dtype=dtype):
            y = net(x, e) if e is not None else net(x)
        return y.float()

    def _chunk(self, x: torch.Tensor, e: torch.Tensor | None, precision: str) -> torch.Tensor:
        net = self._network()
        try:
            return self._run_model(net, x, e, precision)
        except Exception as exc:
            if net is self._model or not self._compile:
                raise
            logger.warning("%s: the compiled model failed (%s: %s); running eagerly", self.name, type(exc).__name__, exc)
            self._compiled = self._model
            return self._run_model(self._model, x, e, precision)

    def _resolve_auto(self, x: torch.Tensor, e: torch.Tensor | None, y32: torch.Tensor) -> None:
        """``precision="auto"``: keep the candidate only if it matches fp32 on this chunk."""
        candidate, self._auto_pending = self._auto_pending, None
        if candidate is None or x.shape[0] == 0:
            return
        try:
            y = self._chunk(x, e, candidate).reshape(-1).double().cpu().numpy()
        except Exception as exc:  # noqa: BLE001 - the float32 result is already there
            logger.info("%s: %s failed (%s); staying in fp32", self.name, candidate, exc)
            return
        ref = y32.reshape(-1).double().cpu().numpy()
        diff = float(np.max(np.abs(self.config.mapping(y) - self.config.mapping(ref)))) if len(ref) else 0.0
        if np.isfinite(diff) and diff <= AUTO_TOLERANCE:
            self._precision = candidate
            logger.info("%s: precision auto -> %s (max |score - fp32| %.2g on %d crops)", self.name, candidate, diff, len(ref))
        else:
            logger.info("%s: precision auto stays fp32 (%s differs by %.2g)", self.name, candidate, diff)

    def _forward(self, crops: torch.Tensor, extra: np.ndarray) -> np.ndarray:
        """Raw outputs (float64) of (M, 3, S, S) crops in [0, 1], in chunks of batch_size."""
        out = np.empty(crops.shape[0], dtype=np.float64)
        self._model.eval()
        with torch.inference_mode():
            for start in range(0, crops.shape[0], self._batch_size):
                stop = start + self._batch_size
                x = crops[start:stop].to(self._device, torch.float32)
                x = (x - self._mean) / self._std
                if self._channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                e = torch.from_numpy(extra[start:stop]).to(self._device) if self._extra_inputs else None
                y = self._chunk(x, e, self._precision)
                if self._auto_pending is not None:
                    self._resolve_auto(x, e, y)
                y = y.reshape(-1)
                if y.shape[0] != x.shape[0]:
                    raise InvalidArgumentError(
                        f"{self.name}: the model returned {y.shape[0]} values for {x.shape[0]} crops"
                    )
                out[start:stop] = y.double().cpu().numpy()
        return out

    def _finish(self, raw: np.ndarray, n_crops: np.ndarray) -> Scores:
        raw = np.ascontiguousarray(raw, dtype=np.float64)
        return Scores(score=self.config.mapping(raw), raw=raw, n_crops=n_crops.astype(np.int64))

    def score_crops(self, crops: ImagesInput, *, flip: bool = False, extra: Any = None) -> Scores:
        """Score crops that are already ``input_size`` x ``input_size`` (one pass each).

        Args:
            crops: N crops in any accepted input form.
            flip: also score the horizontally mirrored crops and average the raw outputs.
            extra: (N, extra_inputs) values for models that take them (e.g. log inter-eye
                distance); must be None for models that do not.

        Raises:
            InvalidArgumentError: wrong type, size or value range.
        """
        images = to_image_list(crops)
        size = self.config.size
        for img in images:
            if tuple(img.shape[-2:]) != (size, size):
                raise InvalidArgumentError(
                    f"crops must be {size}x{size}, got {img.shape[-1]}x{img.shape[-2]}; "
                    "use score_image() for whole images"
                )
        batch = torch.stack(images)
        extra_arr = self._extra_array(extra, len(images))
        raw = self._forward(batch, extra_arr)
        if flip:
            raw = (raw + self._forward(batch.flip(-1), extra_arr)) / 2.0
        return self._finish(raw, np.full(len(images), 2 if flip else 1))

    def score_image(self, images: ImagesInput, *, flip: bool = False, extra: Any = None) -> Scores:
        """Score whole images of any size with the deterministic crop grid.

        Args:
            images: one image or several (any accepted form; sizes may differ in a list).
            flip: also score every crop mirrored.
            extra: (N, extra_inputs) values per image, repeated for each of its crops.
        """
        items = to_image_list(images)
        extra_arr = self._extra_array(extra, len(items))
        size = self.config.size
        sums = np.zeros(len(items), dtype=np.float64)
        counts = np.zeros(len(items), dtype=np.int64)
        raws: list[np.ndarray] = []
        owners: list[np.ndarray] = []

        def run(chunk: list[torch.Tensor], owner: list[int]) -> None:
            batch = torch.stack(chunk)
            own = np.asarray(owner)
            raws.append(self._forward(batch, extra_arr[own]))
            owners.append(own)
            if flip:
                raws.append(self._forward(batch.flip(-1), extra_arr[own]))
                owners.append(own)

        chunk: list[torch.Tensor] = []
        owner: list[int] = []
        for i, img in enumerate(items):
            img = _upscale_to(img, size)
            for y, x in crop_grid(img.shape[-2], img.shape[-1], size, self.config.grid):
                chunk.append(img[:, y : y + size, x : x + size])
                owner.append(i)
                if len(chunk) == self._batch_size:
                    run(chunk, owner)
                    chunk, owner = [], []
        if chunk:
            run(chunk, owner)
        all_raw = np.concatenate(raws)
        all_owner = np.concatenate(owners)
        # Sum per image in a fixed order (np.add.at is unbuffered and sequential).
        np.add.at(sums, all_owner, all_raw)
        np.add.at(counts, all_owner, 1)
        return self._finish(sums / counts, counts)
