"""Fine-tuning the ResNet-50 HyperIQA on a CSV of (image path, score), backbone included.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from faceiqa._util import pick_device
from faceiqa.errors import InvalidArgumentError
from faceiqa.training.loop import FitResult, TrainConfig, fit, seed_everything, write_config

log = logging.getLogger(__name__)



# --------------------------------------------------------------------------- fine-tuning ResNet-50 HyperIQA


@dataclass
class FinetuneConfig:
    """Fine-tuning the ResNet-50 HyperIQA on a user's labelled images.

    Attributes:
        weights: starting checkpoint (registry name such as ``hyperiqa-koniq``, or a path).
        csv: a CSV with an image path column and a score column.
        images_root: folder relative image paths are resolved against (default: the CSV's).
        path_column, score_column: column names (default: the first two columns).
        score_range: (low, high) of the user's scale, mapped to the KonIQ raw scale 0..100 so
            the checkpoint keeps the official raw scale and mapping; default the CSV's
            min and max.
        val_fraction: share of images held out (by a seeded shuffle) to choose the checkpoint.
        patches: random 224 x 224 crops per image per epoch (official: 25); the image is
            decoded once per epoch, not once per crop.
    """

    weights: str = "hyperiqa-koniq"
    csv: str = ""
    images_root: str = ""
    path_column: str = ""
    score_column: str = ""
    score_range: tuple[float, float] | None = None
    val_fraction: float = 0.2
    patches: int = 25


def finetune_config_defaults() -> TrainConfig:
    """The official solver's settings: lr 2e-5 (hyper network x10), batch 96, 16 epochs."""
    return TrainConfig(epochs=16, batch_size=96, lr=2e-5, lr_ratio=10.0, weight_decay=5e-4, lr_decay=0.1, lr_decay_every=6, patience=16)


def read_labelled_images(job: FinetuneConfig) -> tuple[list[Path], np.ndarray]:
    """Image paths and scores from the job's CSV (paths resolved, every file must exist)."""
    import pandas as pd

    csv_path = Path(job.csv)
    try:
        table = pd.read_csv(csv_path)
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"cannot read {csv_path}: {exc}") from None
    if table.shape[1] < 2:
        raise InvalidArgumentError(f"{csv_path} needs an image path column and a score column")
    path_col = job.path_column or table.columns[0]
    score_col = job.score_column or table.columns[1]
    for col in (path_col, score_col):
        if col not in table.columns:
            raise InvalidArgumentError(f"{csv_path} has no column {col!r}")
    root = Path(job.images_root) if job.images_root else csv_path.parent
    paths = [Path(p) if Path(p).is_absolute() else root / p for p in table[path_col].astype(str)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InvalidArgumentError(f"{len(missing)} images listed in {csv_path} are missing (first: {missing[0]})")
    scores = pd.to_numeric(table[score_col], errors="coerce").to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(scores)):
        raise InvalidArgumentError(f"{csv_path}: column {score_col!r} has missing or non-numeric scores")
    return paths, scores


def _starting_checkpoint(weights: str) -> Path:
    """The ResNet-50 HyperIQA checkpoint to start from, or a one-line error saying what to do.

    Raises:
        InvalidArgumentError: the weights are a face model (trained with ``faceiqa train face``)
            or another kind of model.
        WeightsNotFoundError: the file is not here and cannot be downloaded.
    """
    from faceiqa.hub.manifest import load_manifest
    from faceiqa.hub.store import get_spec, resolve
    from faceiqa.models import face
    from faceiqa.models.checkpoints import read_checkpoint

    if weights in load_manifest().names():
        spec = get_spec(weights)
        if spec.architecture == "hyperiqa-dlib":
            raise InvalidArgumentError(
                f"{weights} is a face model (HyperIQA head on the dlib recognizer): train or refine it with "
                "`faceiqa train face`; `train finetune` fine-tunes the ResNet-50 HyperIQA (hyperiqa-koniq)"
            )
        if spec.architecture != "hyperiqa-resnet50":
            raise InvalidArgumentError(f"{weights} is not a ResNet-50 HyperIQA model ({spec.architecture or spec.kind})")
    path = resolve(weights)
    if face.is_face_head(read_checkpoint(path)):
        raise InvalidArgumentError(f"{path.name} is a face-model head: use `faceiqa train face` to train face models")
    return path


def finetune_hyperiqa(
    job: FinetuneConfig, config: TrainConfig, run_dir: str | os.PathLike[str], *, resume: bool = False, progress: bool = True
) -> FitResult:
    """Fine-tune a ResNet-50 HyperIQA checkpoint on labelled images (backbone included).

    Labels are rescaled from ``score_range`` to 0..100 (the KonIQ raw scale). Validation uses
    the inference protocol (the deterministic crop grid of
    :meth:`~faceiqa.models.scorer.QualityScorer.score_image`). ``best.pt`` is written in the
    official layout, so it loads anywhere a ``koniq_pretrained.pkl`` does.
    """
    from faceiqa.images import read_image
    from faceiqa.models import ModelConfig, QualityScorer, ScoreMapping, hyperiqa_resnet50, load_hypernet_state, save_hypernet
    from faceiqa.models.checkpoints import OFFICIAL
    from faceiqa.models.scorer import IMAGENET_MEAN, IMAGENET_STD

    run = Path(run_dir)
    config.check()
    if not 0 < job.val_fraction < 1 or job.patches < 1:
        raise InvalidArgumentError("val_fraction must be in (0, 1) and patches positive")
    device = pick_device(config.device)
    paths, scores = read_labelled_images(job)
    low, high = job.score_range if job.score_range is not None else (float(scores.min()), float(scores.max()))
    if not high > low:
        raise InvalidArgumentError(f"score range must have high > low, got {low}, {high}")
    labels = (scores - low) / (high - low) * 100.0
    start = _starting_checkpoint(job.weights)  # before anything is written: a missing or wrong file leaves nothing behind
    write_config(run, {"job": "finetune", "train": asdict(config), "finetune": asdict(job), "score_range": [low, high]})
    seed_everything(config.seed)
    order = np.random.default_rng(config.seed).permutation(len(paths))
    n_val = max(2, round(job.val_fraction * len(paths)))  # a rank correlation needs two
    if len(paths) - n_val < 1:
        raise InvalidArgumentError(f"need at least 3 labelled images, got {len(paths)}")
    val_idx, train_idx = order[:n_val], order[n_val:]
    model = load_hypernet_state(hyperiqa_resnet50(), start, layout="auto").to(device)
    size = model.res.taps.input_size
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def crops_of(path: Path, rng: np.random.Generator) -> torch.Tensor:
        img = torch.from_numpy(read_image(path)).permute(2, 0, 1).float() / 255.0
        h, w = img.shape[1:]
        if min(h, w) < size:
            scale = size / min(h, w)
            img = torch.nn.functional.interpolate(img[None], size=(max(size, round(h * scale)), max(size, round(w * scale))), mode="bilinear", align_corners=False)[0]
            h, w = img.shape[1:]
        out = []
        for _ in range(job.patches):
            y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            crop = img[:, y : y + size, x : x + size]
            out.append(crop.flip(-1) if rng.random() < 0.5 else crop)
        return torch.stack(out)

    def train_batches(epoch: int) -> Iterable[tuple[Callable[[], torch.Tensor], torch.Tensor]]:
        rng = np.random.default_rng([config.seed, epoch])
        crops, targets = [], []
        for i in rng.permutation(train_idx):
            crops.append(crops_of(paths[i], rng))
            targets.append(torch.full((job.patches,), float(labels[i])))
        x_all, y_all = torch.cat(crops), torch.cat(targets)
        perm = torch.from_numpy(rng.permutation(len(y_all)))
        for start in range(0, len(perm), config.batch_size):
            idx = perm[start : start + config.batch_size]
            x = ((x_all[idx].to(device)) - mean) / std
            yield (lambda x=x: model(x)), y_all[idx]

    def predict_val() -> tuple[np.ndarray, np.ndarray]:
        scorer = QualityScorer(model, ModelConfig("finetune", size, "hyperiqa-224", mapping=ScoreMapping.linear(0, 100)), device=device, batch_size=config.batch_size)
        pred = scorer.score_image([read_image(paths[i]) for i in val_idx]).raw
        return pred, labels[val_idx]

    def save_best(m: nn.Module, path: Path) -> None:
        save_hypernet(m, path, layout=OFFICIAL)

    return fit(
        model, train_batches=train_batches, predict_val=predict_val, config=config, run_dir=run,
        save_best=save_best, resume=resume, progress=progress,
    )
