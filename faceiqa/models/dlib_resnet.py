"""The dlib ResNet face recognizer (128-d descriptors), ported from face-api's TF.js network.

The network is dlib's ``dlib_face_recognition_resnet_model_v1`` as published in the npm
package ``@vladmandic/face-api`` 1.7.15 (``faceRecognitionNet``). Its forward pass, as
face-api computes it (all tensors NHWC in TF.js, NCHW here):

* input: a 150x150 RGB chip, ``(RGB - (122.782, 117.001, 104.298)) / 255``;
* ``conv32_down``: 7x7 conv, stride 2, no padding ('valid'), + bias, scale layer, ReLU
  (150 -> 72), then 3x3 max pooling, stride 2, 'valid' (72 -> 35);
* residual blocks ``conv32_1..3`` (35x35x32), ``conv64_down, conv64_1..3`` (17x17x64),
  ``conv128_down, conv128_1..2`` (8x8x128), ``conv256_down, conv256_1..2,
  conv256_down_out`` (4x4x256, then 2x2x256);
* global average over the 2x2 map and a 256x128 matrix product without bias.

Every conv is followed by its bias and a per-channel "scale" (affine) layer ``x * w + b``
(dlib's frozen batch norm). A residual block is ``relu(conv1) -> conv2 (no relu) -> + x ->
relu``; 3x3 convs with stride 1 pad by one pixel on each side. A down block differs: its
first conv has stride 2 *without* padding ('valid'), the shortcut is a 2x2 average pool
(stride 2, 'valid') whose channels are zero-padded to the block's width, and where the
two branches differ in size (8 -> 3 vs 4; 4 -> 1 vs 2) face-api appends zero rows at the
bottom and zero columns at the right of the residual branch before the sum. This module
reproduces exactly that, so descriptors agree with face-api's to float32 rounding.

The weights file (``pretrained/dlib_face_recognition_resnet_v1.pt``, made by
``tools/convert_face_api.py``) keeps face-api's uint8 tensors with their ``min`` and
``scale`` and the few float32 tensors; they are dequantised at load time as
``value = float32(q * scale + min)``, exactly as TF.js does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from faceiqa import hub as weights_registry
from faceiqa.errors import CheckpointError, InvalidArgumentError, WeightsNotFoundError
from faceiqa.models.checkpoints import safe_load

logger = logging.getLogger("faceiqa.recognition")

logger = logging.getLogger("faceiqa.recognition")


#: Registry name of the converted face-api weights (``pretrained/manifest.json``).
WEIGHTS_NAME = "dlib-resnet"
#: Side of the square input chip in pixels.
CHIP_SIZE = 150
#: Alignment template name (see :data:`faceiqa.face.alignment.DLIB_150`).
TEMPLATE_NAME = "dlib-150"
#: Per-channel RGB mean subtracted before dividing by 255 (face-api's input protocol).
MEAN_RGB = (122.782, 117.001, 104.298)
#: Descriptor length.
DESCRIPTOR_DIM = 128
#: Two chips show the same person when the Euclidean distance of their descriptors is
#: below this (dlib's and face-api's decision threshold; dlib reports 99.38% on LFW).
SAME_PERSON_THRESHOLD = 0.6

_FORMAT = "faceiqa-face-api-quantized"


class ScaleLayer(nn.Module):
    """Per-channel affine ``x * weight + bias`` (dlib's frozen batch norm), NCHW."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ConvScale(nn.Module):
    """Conv (with bias) followed by a :class:`ScaleLayer`; optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, relu: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)
        self.scale = ScaleLayer(cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.scale(self.conv(x))
        return F.relu(out) if self.relu else out


class ResidualBlock(nn.Module):
    """face-api's ``residual`` (stride 1) or ``residualDown`` (``down=True``) block."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        if not down and cin != cout:
            raise InvalidArgumentError("a stride-1 residual block needs cin == cout")
        self.down = down
        # 'valid' stride-2 conv in the down block, 'same' (1 px each side) otherwise.
        self.conv1 = ConvScale(cin, cout, 3, 2 if down else 1, 0 if down else 1, relu=True)
        self.conv2 = ConvScale(cout, cout, 3, 1, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        if not self.down:
            return F.relu(out + x)
        pooled = F.avg_pool2d(x, 2, 2)
        dh = pooled.shape[2] - out.shape[2]
        dw = pooled.shape[3] - out.shape[3]
        if dh or dw:
            # face-api appends zeros at the bottom and right of the residual branch.
            out = F.pad(out, (0, dw, 0, dh))
        extra = out.shape[1] - pooled.shape[1]
        if extra:
            pooled = F.pad(pooled, (0, 0, 0, 0, 0, extra))
        return F.relu(pooled + out)


# (name, cin, cout, down) of the residual blocks, grouped by stage (32, 64, 128, 256 channels).
_STAGES: tuple[tuple[tuple[str, int, int, bool], ...], ...] = (
    (("conv32_1", 32, 32, False), ("conv32_2", 32, 32, False), ("conv32_3", 32, 32, False)),
    (
        ("conv64_down", 32, 64, True),
        ("conv64_1", 64, 64, False),
        ("conv64_2", 64, 64, False),
        ("conv64_3", 64, 64, False),
    ),
    (("conv128_down", 64, 128, True), ("conv128_1", 128, 128, False), ("conv128_2", 128, 128, False)),
    (
        ("conv256_down", 128, 256, True),
        ("conv256_1", 256, 256, False),
        ("conv256_2", 256, 256, False),
        ("conv256_down_out", 256, 256, True),
    ),
)


class DlibResNet(nn.Module):
    """dlib's ResNet-29 face recognition network (face-api layout and parameter names).

    ``forward`` takes normalised chips (see :func:`normalize_chips`), NCHW float32, usually
    (N, 3, 150, 150), and returns (N, 128) descriptors. Other sizes run (the head averages
    whatever map is left) but the weights were trained for 150x150 chips only.

    ``state_dict`` keys mirror face-api's tensor names: ``conv32_down.conv.weight``,
    ``conv64_down.conv1.scale.bias``, ..., ``fc.weight`` (128, 256).
    """

    stage_channels = (32, 64, 128, 256)

    def __init__(self) -> None:
        super().__init__()
        self.conv32_down = ConvScale(3, 32, 7, 2, 0, relu=True)
        for stage in _STAGES:
            for name, cin, cout, down in stage:
                self.add_module(name, ResidualBlock(cin, cout, down))
        self.fc = nn.Linear(256, DESCRIPTOR_DIM, bias=False)

    def forward_features(self, x: torch.Tensor, *, with_stem: bool = False) -> list[torch.Tensor]:
        """Outputs of the four stages for a normalised (N, 3, 150, 150) batch.

        With ``with_stem`` the list starts with the stem's output (the 7x7 convolution after
        its ReLU, before max pooling: (N, 32, 72, 72)), the finest-scale features.

        Returns:
            ``[(N, 32, 35, 35), (N, 64, 17, 17), (N, 128, 8, 8), (N, 256, 2, 2)]`` (after
            each stage's last ReLU; the last one is what the descriptor head averages).
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise InvalidArgumentError(f"expected an (N, 3, H, W) tensor, got shape {tuple(x.shape)}")
        stem = self.conv32_down(x)
        if stem.is_contiguous():
            # PyTorch's channels-last max pooling is several times faster than its NCHW one;
            # a maximum has no rounding, so the values are identical.
            out = F.max_pool2d(stem.contiguous(memory_format=torch.channels_last), 3, 2).contiguous()
        else:
            out = F.max_pool2d(stem, 3, 2)
        feats = [stem] if with_stem else []
        for stage in _STAGES:
            for name, *_ in stage:
                out = getattr(self, name)(out)
            feats.append(out)
        return feats

    def head(self, last_stage: torch.Tensor) -> torch.Tensor:
        """Descriptor from the last stage's map: global average, then the 256x128 matrix."""
        return self.fc(last_stage.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)[-1])


def normalize_chips(rgb: torch.Tensor) -> torch.Tensor:
    """face-api's input normalisation: ``(rgb - MEAN_RGB) / 255``.

    Args:
        rgb: (N, 3, H, W) float tensor of RGB values in 0..255.
    """
    mean = torch.tensor(MEAN_RGB, dtype=rgb.dtype, device=rgb.device)[None, :, None, None]
    return (rgb - mean) / 255.0


# --------------------------------------------------------------------------- weights


def default_weights_path() -> Path:
    """Path of the registered recognizer weights (``dlib-resnet``), size- and sha256-verified.

    Looked up by the weights registry (``$FACEIQA_HOME``, then ``pretrained/``); never
    downloads: the registered URL is the npm source the file is converted from, not the file.

    Raises:
        WeightsNotFoundError: no local copy.
        ChecksumError: the local copy differs from the manifest's size or sha256.
    """
    return weights_registry.resolve(WEIGHTS_NAME, download=False, progress=False)


def dequantize(q: torch.Tensor, minimum: float, scale: float) -> torch.Tensor:
    """TF.js uint8 dequantisation: ``float32(q * scale + min)`` computed in float64."""
    return (q.to(torch.float64) * scale + minimum).to(torch.float32)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a converted weights file and return a float32 state dict for :class:`DlibResNet`.

    Raises:
        WeightsNotFoundError: no such file.
        CheckpointError: the file is not a converted face-api recognizer file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"recognizer weights not found: {path}")
    blob = safe_load(path)
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT or "tensors" not in blob:
        raise CheckpointError(f"{path.name}: not a converted face-api recognizer file (format {_FORMAT!r})")
    state: dict[str, torch.Tensor] = {}
    try:
        for key, item in blob["tensors"].items():
            if isinstance(item, dict):
                state[key] = dequantize(item["q"], float(item["min"]), float(item["scale"]))
            else:
                state[key] = item.to(torch.float32)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: malformed tensor entry ({exc.__class__.__name__}: {exc})") from None
    return state


def load_dlib_resnet(weights: str | Path | None = None, device: str | torch.device | None = None) -> DlibResNet:
    """Build a :class:`DlibResNet` in eval mode with the converted face-api weights.

    Args:
        weights: a registry name or a converted weights file; default: the registered
            ``dlib-resnet`` file. Never downloads.
        device: torch device; default CPU.

    Raises:
        WeightsNotFoundError: the file is not there.
        CheckpointError: the file's tensors do not fit the network.
    """
    if weights is None:
        path = default_weights_path()
    else:
        path = weights_registry.resolve(weights, download=False, progress=False)
    state = load_state_dict(path)
    model = DlibResNet()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or bad:
        raise CheckpointError(
            f"recognizer weights do not fit: {len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(bad)} mis-shaped (first: {(missing + unexpected + bad)[0]})"
        )
    model.load_state_dict(state)
    return model.eval().to(device or "cpu")
