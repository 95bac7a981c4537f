"""Training the default face model (``hyperiqa-dlib``): the HyperIQA head on the frozen dlib
face ResNet, on a cached face training set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from faceiqa._util import pick_device
from faceiqa.errors import InvalidArgumentError
from faceiqa.training.loop import FitResult, TrainConfig, fit, seed_everything, write_config

log = logging.getLogger(__name__)



# --------------------------------------------------------------------------- the face model


@dataclass
class FaceDataConfig:
    """Where the face training set comes from (see :mod:`faceiqa.training.trainset`).

    Attributes:
        images: LFW-layout photo folder (``<Name>/<photo>``).
        pairs: verification pairs file; people of ``val_folds`` form the validation split.
        val_folds: 0-based folds of ``pairs`` whose people are held out for validation.
        variants, val_variants: versions per photo (the first pristine) per split.
        limit_people: use only the first N people per split (quick runs).
        cache: the built set is stored here (``.npz``) and reused when present.
        workers: processes building the set in parallel (0: this process); the set does
            not depend on it.
    """

    images: str = ""
    pairs: str = ""
    val_folds: tuple[int, ...] = (6, 7)
    variants: int = 5
    val_variants: int = 3
    limit_people: int | None = None
    cache: str = ""
    workers: int = 0


def face_config_defaults() -> TrainConfig:
    """Training settings of the shipped default face model."""
    return TrainConfig(epochs=40, batch_size=128, lr=1e-4, lr_ratio=10.0, weight_decay=5e-4, lr_decay=0.1, lr_decay_every=15, patience=8)


def load_or_build_trainset(data: FaceDataConfig, seed: int, device: torch.device, progress: bool = True) -> Any:
    from faceiqa.training.trainset import FaceTrainSet, build_face_trainset

    if data.cache and Path(data.cache).is_file():
        log.info("using the cached training set %s", data.cache)
        return FaceTrainSet.load(data.cache)
    if not data.images:
        raise InvalidArgumentError("no training set: give the photo folder (images) or an existing cache")
    from tqdm import tqdm

    from faceiqa.face.detection import FaceDetector
    from faceiqa.models.dlib_resnet import load_dlib_resnet

    bar = tqdm(total=0, desc="building the training set", unit="photo", disable=not progress)

    def step(n: int, total: int) -> None:
        bar.total = total
        bar.update(n - bar.n)

    try:
        dataset = build_face_trainset(
            data.images,
            pairs_path=data.pairs or None,
            val_folds=data.val_folds,
            variants=data.variants,
            val_variants=data.val_variants,
            seed=seed,
            limit_people=data.limit_people,
            net=load_dlib_resnet(device=device) if data.workers == 0 else None,
            detector=FaceDetector(device=device) if data.workers == 0 else None,
            workers=data.workers,
            device=str(device),
            progress=step,
        )
    finally:
        bar.close()
    if data.cache:
        dataset.save(data.cache)
    return dataset


def train_face_model(
    data: FaceDataConfig, config: TrainConfig, run_dir: str | os.PathLike[str], *, resume: bool = False, progress: bool = True
) -> FitResult:
    """Train the head of the face quality model on the cached features of a frozen recognizer.

    Writes ``best.pt`` holding only the head (load it with ``faceiqa.models.face``).
    """
    from faceiqa.models.face import CachedStages, face_hypernet, head_state_dict
    from faceiqa.models.hypernet import target_network

    run = Path(run_dir)
    config.check()
    device = pick_device(config.device)
    write_config(run, {"job": "face", "train": asdict(config), "data": asdict(data)})
    seed_everything(config.seed)
    dataset = load_or_build_trainset(data, config.seed, device, progress)
    train = dataset.subset(dataset.split == "train")
    val = dataset.subset(dataset.split == "val")
    if len(train) == 0 or len(val) < 2:
        raise InvalidArgumentError(f"need training and validation samples, got {len(train)} and {len(val)}")
    log.info("face training set: %d train / %d val samples", len(train), len(val))
    seed_everything(config.seed)
    model = face_hypernet(CachedStages()).to(device)

    def tensors(ds: Any) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        return (
            [torch.from_numpy(s).to(device) for s in ds.stages],
            torch.from_numpy(ds.extra).to(device),
            torch.from_numpy(ds.label.astype(np.float32)).to(device),
        )

    tr_stages, tr_extra, tr_label = tensors(train)
    va_stages, va_extra, va_label = tensors(val)
    generator = torch.Generator().manual_seed(config.seed)

    def forward_on(stages: list[torch.Tensor], extra: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return target_network(model.params_from_stages([s[idx] for s in stages], extra[idx]))

    # Batches hold whole photos (all their versions), so the ranking term sees every pair.
    _, photo_of = np.unique(train.key, return_inverse=True)
    members = [torch.from_numpy(np.flatnonzero(photo_of == k)) for k in range(int(photo_of.max()) + 1)]
    tr_group = torch.from_numpy(photo_of).to(device)

    def train_batches(epoch: int) -> Iterable[tuple[Any, ...]]:
        photos = torch.randperm(len(members), generator=generator)
        order = torch.cat([members[int(k)] for k in photos]).to(device)
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            yield (lambda idx=idx: forward_on(tr_stages, tr_extra, idx)), tr_label[idx], tr_group[idx]

    def predict_val() -> tuple[np.ndarray, np.ndarray]:
        preds = []
        for start in range(0, len(val), 1024):
            idx = torch.arange(start, min(start + 1024, len(val)), device=device)
            preds.append(forward_on(va_stages, va_extra, idx).double().cpu().numpy())
        return np.concatenate(preds), va_label.double().cpu().numpy()

    def save_best(m: nn.Module, path: Path) -> None:
        torch.save(head_state_dict(m), path)  # type: ignore[arg-type]

    return fit(
        model, train_batches=train_batches, predict_val=predict_val, config=config, run_dir=run,
        save_best=save_best, resume=resume, progress=progress,
    )
