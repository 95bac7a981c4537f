"""ResNet backbones (bottleneck blocks, torchvision module names) with HyperIQA taps.

:func:`resnet50_backbone` is the ResNet-50 of the official HyperIQA code: the ImageNet
ResNet-50 without its classifier (``conv1``, ``bn1``, ``layer1``..``layer4``; ResNet v1.5,
stride on the 3x3 conv). It is built with random weights: nothing is downloaded here; the
weights come from a HyperIQA checkpoint afterwards.

Smaller widths and depths (:class:`ResNetBackbone` arguments) give tiny networks with the
same structure, used in tests and for experiments.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from faceiqa.errors import InvalidArgumentError
from faceiqa.models.hypernet import FeatureTaps, LDABackbone

_EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (carries the stride) -> 1x1 residual block with batch norm."""

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * _EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.downsample = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


def _half(n: int) -> int:
    """Output side of a stride-2 layer that pads by half its kernel (7x7/3, 3x3/1)."""
    return (n + 1) // 2


class ResNetBackbone(LDABackbone):
    """Bottleneck ResNet exposing its four stage outputs as HyperIQA taps.

    Args:
        layers: blocks per stage (ResNet-50: 3, 4, 6, 3).
        widths: bottleneck widths per stage (ResNet-50: 64, 128, 256, 512); stage outputs
            have 4x these channels.
        stem_width: channels of the 7x7 stem convolution (ResNet-50: 64).
        input_size: nominal input side in pixels (224); sets :attr:`taps` sizes
            (input/4, /8, /16, /32, rounded up).
    """

    def __init__(
        self,
        layers: tuple[int, int, int, int] = (3, 4, 6, 3),
        widths: tuple[int, int, int, int] = (64, 128, 256, 512),
        stem_width: int = 64,
        input_size: int = 224,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or len(widths) != 4 or min(layers) < 1 or min(widths) < 1 or stem_width < 1:
            raise InvalidArgumentError("ResNetBackbone needs 4 positive layer counts and 4 positive widths")
        if input_size < 32:
            raise InvalidArgumentError(f"input_size must be at least 32 pixels, got {input_size}")
        self.conv1 = nn.Conv2d(3, stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = stem_width
        for i, (blocks, width) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            stage = [Bottleneck(in_ch, width, stride)]
            in_ch = width * _EXPANSION
            stage += [Bottleneck(in_ch, width) for _ in range(blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        side = _half(_half(input_size))
        sizes = [side]
        for _ in range(3):
            sizes.append(_half(sizes[-1]))
        self.taps = FeatureTaps(
            channels=tuple(w * _EXPANSION for w in widths),
            sizes=tuple(sizes),
            input_size=input_size,
        )

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            out.append(x)
        return out


def resnet50_backbone(input_size: int = 224) -> ResNetBackbone:
    """The ResNet-50 of HyperIQA (random weights; nothing is downloaded)."""
    return ResNetBackbone((3, 4, 6, 3), (64, 128, 256, 512), 64, input_size)
