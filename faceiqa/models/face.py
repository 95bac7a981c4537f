"""The face quality model: the HyperIQA head on the dlib face recognition ResNet.

HyperIQA's design (content understanding, a hyper network, a per-image target network over
multi-scale local features) on a backbone that was trained on millions of faces: the dlib
ResNet of :mod:`faceiqa.face.recognition` (150 x 150 chips, four stages of 32/64/128/256
channels with 35/17/8/2-pixel maps). Local distortion-aware taps pool each of the first
three stages; the semantic features come from the last stage. The head is the same
:class:`~faceiqa.models.hypernet.HyperNet` code as the ResNet-50 model, with smaller sizes.

The backbone is the recognizer, frozen: a checkpoint of this architecture holds only the
head (every key but ``res.net.*``), and the backbone weights are loaded from the
recognizer's registered file. So the model judges faces with exactly the features the
recognizer uses.

One extra target input tells the model how much real resolution stands behind the chip
(``log2_resolution``: log2 of the face's inter-eye distance in original pixels over the
chip's, clipped to [-4, 0]); a chip cannot show that by itself, since every face is resized
to the same 150 pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from faceiqa.errors import CheckpointError, InvalidArgumentError
from faceiqa.models.checkpoints import read_checkpoint
from faceiqa.models.config import ModelConfig, ScoreMapping
from faceiqa.models.dlib_resnet import CHIP_SIZE, DlibResNet, load_dlib_resnet
from faceiqa.models.hypernet import FeatureTaps, HyperNet, LDABackbone

#: Keys of the frozen backbone inside the model's state dict (not stored in head files).
BACKBONE_PREFIX = "res.net."

#: Taps for a 150 x 150 chip: the detail maps (:func:`detail_maps`), the dlib ResNet's stem
#: (the 7x7 convolution before max pooling) and its four residual stages.
DLIB_TAPS = FeatureTaps(channels=(3, 32, 32, 64, 128, 256), sizes=(35, 72, 35, 17, 8, 2), input_size=CHIP_SIZE)

_LUMA = (0.299, 0.587, 0.114)
_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def detail_maps(x: torch.Tensor) -> torch.Tensor:
    """Fine-detail energy of chips: (N, 3, 35, 35) mean |Laplacian| of the luma.

    The recognizer's first layer works at half the chip's resolution and was trained to
    ignore blur, so it barely notices a face that lost its finest detail (shrunk 1.5-2 times
    and enlarged back). These parameter-free maps give the LDA taps that detail: the
    absolute Laplacian of the central 140 x 140 pixels' luma at full, half and quarter
    resolution (area averaging), each averaged over 4x4, 2x2 and 1x1 cells to a 35 x 35 map,
    in 0..255 grey levels.

    Args:
        x: (N, 3, 150, 150) chips normalised as the recognizer wants (an offset per channel
            does not change a Laplacian).
    """
    import torch.nn.functional as F

    luma = (x[:, 0] * _LUMA[0] + x[:, 1] * _LUMA[1] + x[:, 2] * _LUMA[2])[:, None] * 255.0
    margin = (x.shape[-1] - 140) // 2
    luma = luma[..., margin : margin + 140, margin : margin + 140]
    kernel = torch.tensor(_LAPLACIAN, dtype=x.dtype, device=x.device)[None, None]
    maps = []
    for scale, cell in ((1, 4), (2, 2), (4, 1)):
        g = F.avg_pool2d(luma, scale) if scale > 1 else luma
        lap = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), kernel).abs()
        maps.append(F.avg_pool2d(lap, cell) if cell > 1 else lap)
    return torch.cat(maps, dim=1)

#: Head sizes of the face model (the official ResNet-50 model uses 16/112/224/(112,56,28,14)/7).
FACE_HEAD: dict[str, Any] = {
    "lda_out_channels": 16,
    "hyper_in_channels": 64,
    "target_in_size": 96,
    "target_fc_sizes": (32, 16, 8, 4),
    "conv1_channels": (128, 64),
}


#: The face model's configuration, for face heads that have no manifest entry (e.g. fresh from
#: ``faceiqa train face``). Raw predictions live on the label scale (0..1, a predicted blend
#: of recognition utility and perceptual fidelity, see faceiqa/training/labels.py); this
#: uncalibrated logistic centred at 0.5 keeps 0.5 at 0.5, is strictly increasing and maps
#: 0..1 to about 0.03..0.97. A released model replaces the mapping by its calibrated one in
#: its manifest entry (``faceiqa train export-face --calibrate``).
FACE_CONFIG = ModelConfig(
    name="faceiqa-face-head",
    size=CHIP_SIZE,
    template="dlib-150",
    normalize="dlib",
    grid=1,
    extra=("log2_resolution",),
    raw_name="predicted quality label (0..1: blend of recognition utility and perceptual fidelity)",
    raw_range=(0.0, 1.0),
    mapping=ScoreMapping.logistic(0.5, 0.15),
    architecture="hyperiqa-dlib",
    layout="faceiqa-head",
    options={"extra_target_inputs": 1},
)


def is_face_head(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether a state dict is a face-model head file (no backbone, dlib-shaped LDA taps)."""
    w = state.get("res.lda1_pool.0.weight")
    return (
        w is not None
        and tuple(w.shape[1:]) == (DLIB_TAPS.channels[0], 1, 1)
        and "res.lda6_fc.weight" in state
        and not any(k.startswith(BACKBONE_PREFIX) or k.startswith("res.conv1") for k in state)
    )


class DlibBackbone(LDABackbone):
    """The dlib ResNet as a HyperIQA backbone (input: dlib-normalised 150 x 150 chips)."""

    def __init__(self, net: DlibResNet | None = None) -> None:
        super().__init__()
        self.net = net if net is not None else DlibResNet()
        self.taps = DLIB_TAPS

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [detail_maps(x), *self.net.forward_features(x, with_stem=True)]


class CachedStages(LDABackbone):
    """A stand-in backbone for training on cached stage features of a frozen backbone.

    It has the taps of the dlib ResNet and no layers; feed it stage maps through
    :meth:`HyperNet.params_from_stages`. A head trained on it loads into the real model.
    """

    def __init__(self, taps: FeatureTaps = DLIB_TAPS) -> None:
        super().__init__()
        self.taps = taps

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise InvalidArgumentError("CachedStages has no layers: pass stage maps to params_from_stages()")


def face_hypernet(backbone: LDABackbone | None = None, extra_target_inputs: int = 1) -> HyperNet:
    """A face quality network with random head weights (no file is read).

    Args:
        backbone: default a :class:`DlibBackbone` with random weights; pass
            ``CachedStages()`` for training on cached features.
        extra_target_inputs: per-face scalars the target network takes (1: log2_resolution).
    """
    return HyperNet(backbone if backbone is not None else DlibBackbone(), extra_target_inputs=extra_target_inputs, **FACE_HEAD)


def head_state_dict(model: HyperNet) -> dict[str, torch.Tensor]:
    """The trainable part of a face model's state dict (everything but the frozen backbone)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if not k.startswith(BACKBONE_PREFIX)}


def load_head(model: HyperNet, state: Mapping[str, torch.Tensor], *, source: str = "checkpoint") -> HyperNet:
    """Load head weights strictly (every non-backbone key, nothing else, matching shapes).

    Raises:
        CheckpointError: a key is missing, unexpected or mis-shaped (named in the message).
    """
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(BACKBONE_PREFIX)}
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        raise CheckpointError(
            f"{source} does not fit the face model: {what} ({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{source}: {key} has shape {tuple(state[key].shape)}, the face model needs {tuple(value.shape)}"
            )
    model.load_state_dict(dict(state), strict=False)
    return model


def _build(options: Mapping[str, Any]) -> HyperNet:
    unknown = set(options) - {"extra_target_inputs"}
    if unknown:
        raise InvalidArgumentError(f"unknown hyperiqa-dlib options: {', '.join(sorted(unknown))}")
    return face_hypernet(extra_target_inputs=int(options.get("extra_target_inputs", 1)))


def _load(model: HyperNet, path: Path, layout: str) -> HyperNet:
    """Load a head file and the registered recognizer weights into the backbone."""
    return load_face_model(model, read_checkpoint(path), source=Path(path).name)


def load_face_model(model: HyperNet, head: Mapping[str, torch.Tensor], *, source: str = "checkpoint") -> HyperNet:
    """Load head weights (strictly) and the registered recognizer weights into the backbone;
    the backbone is frozen and the model put in eval mode."""
    backbone = model.res
    if not isinstance(backbone, DlibBackbone):
        raise InvalidArgumentError("hyperiqa-dlib checkpoints load into a model with a DlibBackbone")
    backbone.net.load_state_dict(load_dlib_resnet().state_dict())
    load_head(model, head, source=source)
    for p in backbone.net.parameters():
        p.requires_grad_(False)
    return model.eval()
