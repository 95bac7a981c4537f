"""Network families by name: how to build one (random weights, offline) and how to fill it.

``hyperiqa-resnet50`` (the official HyperIQA) and ``hyperiqa-dlib`` (the face model) are built
in; :func:`register_architecture` adds more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from faceiqa._util import Registry
from faceiqa.errors import InvalidArgumentError
from faceiqa.models.checkpoints import (
    OFFICIAL,
    PYIQA,
    load_hypernet_state,
)
from faceiqa.models.config import ModelConfig, ScoreMapping
from faceiqa.models.hypernet import HyperNet
from faceiqa.models.resnet import resnet50_backbone

logger = logging.getLogger("faceiqa.models")

#: The protocol assumed for unregistered ResNet-50 HyperIQA checkpoints, by layout: the
#: official layout is KonIQ-10k's (224 px crops, raw MOS 0..100 mapped linearly); pyiqa's
#: retrained weights output about 0..1, kept as the score.
UNREGISTERED_HYPERIQA: dict[str, ModelConfig] = {
    OFFICIAL: ModelConfig(
        "hyperiqa", 224, "hyperiqa-224", raw_range=(0.0, 100.0), mapping=ScoreMapping.linear(0.0, 100.0),
        architecture="hyperiqa-resnet50", layout=OFFICIAL,
    ),
    PYIQA: ModelConfig("hyperiqa", 224, "hyperiqa-224", architecture="hyperiqa-resnet50", layout=PYIQA),
}


@dataclass(frozen=True)
class Architecture:
    """How to make and fill one network family.

    Attributes:
        name: the manifest's ``architecture`` value.
        build: ``build(options) -> nn.Module`` with random weights and no network access;
            ``options`` is the manifest entry's ``options`` object.
        load: ``load(model, path, layout) -> model``: load a checkpoint file strictly.
    """

    name: str
    build: Callable[[Mapping[str, Any]], nn.Module]
    load: Callable[[nn.Module, Path, str], nn.Module]


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def register_architecture(
    name: str,
    build: Callable[[Mapping[str, Any]], nn.Module],
    load: Callable[[nn.Module, Path, str], nn.Module],
) -> None:
    """Add (or replace) an architecture builder under ``name``."""
    ARCHITECTURES.register(name, Architecture(name, build, load))


def build_model(architecture: str, options: Mapping[str, Any] | None = None) -> nn.Module:
    """A randomly initialised network of a registered architecture.

    Raises:
        InvalidArgumentError: unknown architecture.
    """
    return ARCHITECTURES[architecture].build(dict(options or {}))


def hyperiqa_resnet50(extra_target_inputs: int = 0, input_size: int = 224) -> HyperNet:
    """Official HyperIQA: ResNet-50 backbone, HyperNet(16, 112, 224, 112, 56, 28, 14, 7).

    Random weights; nothing is downloaded. ``extra_target_inputs`` > 0 adds inputs to the
    target network (a faceiqa extension; the official checkpoint has none).
    """
    return HyperNet(resnet50_backbone(input_size), extra_target_inputs=extra_target_inputs)


def _build_hyperiqa_resnet50(options: Mapping[str, Any]) -> nn.Module:
    unknown = set(options) - {"extra_target_inputs", "input_size"}
    if unknown:
        raise InvalidArgumentError(f"hyperiqa-resnet50 does not take options {sorted(unknown)}")
    return hyperiqa_resnet50(int(options.get("extra_target_inputs", 0)), int(options.get("input_size", 224)))


def _load_hyperiqa(model: nn.Module, path: Path, layout: str) -> nn.Module:
    return load_hypernet_state(model, path, layout=layout or "auto")


register_architecture("hyperiqa-resnet50", _build_hyperiqa_resnet50, _load_hyperiqa)


def _register_face_model() -> None:
    from faceiqa.models import face

    register_architecture("hyperiqa-dlib", face._build, face._load)


_register_face_model()
