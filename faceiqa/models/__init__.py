"""Quality networks, their configuration and the scorer that runs them.

- :mod:`~faceiqa.models.config`: :class:`ModelConfig` (input protocol, score mapping), torch-free;
- :mod:`~faceiqa.models.hypernet`, :mod:`~faceiqa.models.resnet`, :mod:`~faceiqa.models.dlib_resnet`,
  :mod:`~faceiqa.models.face`: the networks;
- :mod:`~faceiqa.models.checkpoints`: reading checkpoints (official / pyiqa layouts);
- :mod:`~faceiqa.models.architectures`: network families by name;
- :mod:`~faceiqa.models.scorer`: :class:`QualityScorer`, a network with its configuration;
- :mod:`~faceiqa.models.loader`: :func:`load_scorer`, the entry point.

The names below are imported on first use, so ``faceiqa.models.config`` can be used without torch.
"""

from __future__ import annotations

from faceiqa._util import lazy_getattr

_LAZY = {
    "ARCHITECTURES": "architectures",
    "Architecture": "architectures",
    "build_model": "architectures",
    "hyperiqa_resnet50": "architectures",
    "register_architecture": "architectures",
    "FeatureTaps": "hypernet",
    "HyperNet": "hypernet",
    "LDABackbone": "hypernet",
    "TargetNetParams": "hypernet",
    "target_network": "hypernet",
    "LAYOUTS": "checkpoints",
    "OFFICIAL": "checkpoints",
    "PYIQA": "checkpoints",
    "detect_layout": "checkpoints",
    "hypernet_state_dict": "checkpoints",
    "load_hypernet_state": "checkpoints",
    "read_checkpoint": "checkpoints",
    "save_hypernet": "checkpoints",
    "ResNetBackbone": "resnet",
    "resnet50_backbone": "resnet",
    "QualityScorer": "scorer",
    "Scores": "scorer",
    "crop_grid": "scorer",
    "InputProtocol": "config",
    "ModelConfig": "config",
    "ScoreMapping": "config",
    "ScoreSpec": "config",
    "load_scorer": "loader",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
