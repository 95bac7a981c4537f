"""Ready-to-use scorers: :func:`load_scorer` finds the weights (registry name or path), builds
the network its entry names, loads the checkpoint strictly and wraps it with its configuration.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from faceiqa.errors import InvalidArgumentError, WeightsNotFoundError
from faceiqa.hub.manifest import WeightsSpec, load_manifest
from faceiqa.hub.store import default_name, get_spec, matching_specs, resolve
from faceiqa.models.architectures import ARCHITECTURES, UNREGISTERED_HYPERIQA, hyperiqa_resnet50
from faceiqa.models.checkpoints import (
    detect_layout,
    load_hypernet_state,
    read_checkpoint,
)
from faceiqa.models.config import ModelConfig, ScoreMapping
from faceiqa.models.hypernet import OFFICIAL_TARGET_FC_SIZES
from faceiqa.models.scorer import QualityScorer

logger = logging.getLogger("faceiqa.models")

def load_scorer(
    weights: str | Path = "default",
    device: str | torch.device | None = None,
    *,
    batch_size: int = 32,
    grid: int | None = None,
    mapping: ScoreMapping | None = None,
    download: bool = True,
    progress: bool = True,
) -> QualityScorer:
    """Build a ready-to-use :class:`QualityScorer`.

    Args:
        weights: ``"default"`` (the manifest's default), a registry name, or a checkpoint
            path. A path whose size and sha256 equal a registered file uses that entry;
            any other path is loaded as a ResNet-50 HyperIQA checkpoint in the official or
            pyiqa layout (detected from its keys), with the KonIQ protocol (224 px crops,
            template ``hyperiqa-224``, raw 0..100 mapped linearly) for the official layout
            and an identity mapping for the pyiqa layout (whose retrained weights output ~0..1).
        device: torch device; default CUDA if available, else CPU.
        batch_size: crops per forward pass.
        grid: K of the whole-image K x K crop grid; default the entry's (5).
        mapping: override the raw -> score mapping.
        download: allow downloading registered weights on first use.
        progress: progress bar on stderr while downloading.

    Raises:
        WeightsNotFoundError: ``"default"`` while no default is registered, or no file.
        UnknownWeightsError, ChecksumError, DownloadError, CheckpointError: see
            :func:`faceiqa.hub.resolve` and :func:`load_hypernet_state`.
        InvalidArgumentError: the entry is not a quality model.
    """
    if isinstance(weights, str) and weights == "default":
        name = default_name()
        if name is None:
            raise WeightsNotFoundError(
                "no default quality model is registered yet; pass weights= a registry name "
                "(e.g. 'hyperiqa-koniq', see `faceiqa weights list`) or a checkpoint path"
            )
        weights = name
    path = resolve(weights, download=download, progress=progress)
    if isinstance(weights, str) and weights in load_manifest().names():
        specs = [get_spec(weights)]
    else:
        specs = matching_specs(path)
    spec = next((s for s in specs if s.kind == "quality"), specs[0] if specs else None)
    if spec is not None:
        return _scorer_from_spec(spec, path, device, batch_size, grid, mapping)
    return _scorer_from_file(path, device, batch_size, grid, mapping)


def _scorer_from_spec(
    spec: WeightsSpec,
    path: Path,
    device: str | torch.device | None,
    batch_size: int,
    grid: int | None,
    mapping: ScoreMapping | None,
) -> QualityScorer:
    config = ModelConfig.from_spec(spec)
    if config.architecture not in ARCHITECTURES:
        raise InvalidArgumentError(f"weights {spec.name!r} need {ARCHITECTURES.unknown(config.architecture)}")
    arch = ARCHITECTURES[config.architecture]
    model = arch.load(arch.build(dict(config.options)), path, config.layout)
    return QualityScorer(model, config.replace(grid=grid, mapping=mapping), device=device, batch_size=batch_size)


def _scorer_from_file(
    path: Path,
    device: str | torch.device | None,
    batch_size: int,
    grid: int | None,
    mapping: ScoreMapping | None,
) -> QualityScorer:
    """An unregistered checkpoint: a face-model head, or a ResNet-50 HyperIQA (official or pyiqa layout)."""
    state = read_checkpoint(path)
    from faceiqa.models import face

    w_extra = state.get("fc1w_extra_fc.weight")
    if face.is_face_head(state):
        extra = int(w_extra.shape[0]) // face.FACE_HEAD["target_fc_sizes"][0] if w_extra is not None else 0
        model = face.load_face_model(face.face_hypernet(extra_target_inputs=extra), state, source=path.name)
        config = face.FACE_CONFIG.replace(name=path.stem, extra=face.FACE_CONFIG.extra[:extra])
        logger.info("%s: unregistered face-model head; using the face protocol", path.name)
    else:
        layout = detect_layout(state)
        extra = int(w_extra.shape[0]) // OFFICIAL_TARGET_FC_SIZES[0] if w_extra is not None else 0
        model = load_hypernet_state(hyperiqa_resnet50(extra), state, source=path.name)
        config = UNREGISTERED_HYPERIQA[layout].replace(name=path.stem)
        logger.info("%s: unregistered %s checkpoint; assuming the %s score mapping", path.name, layout, config.mapping.kind)
    return QualityScorer(model, config.replace(grid=grid, mapping=mapping), device=device, batch_size=batch_size)
