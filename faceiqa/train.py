"""Training: the HyperIQA recipe, with the official solver's bugs fixed.

The recipe (Su et al. 2020 and the official solver): L1 loss, Adam with weight decay 5e-4,
two parameter groups: the backbone side (``res.*``: the backbone and the LDA modules) at
``lr`` and the hyper network at ``lr * lr_ratio`` (10). Fixed here:

- the hyper-network group really is in the optimizer every epoch (the official code passes
  it as a one-shot iterator, so from epoch 2 on only the backbone trained);
- one optimizer for the whole run: Adam's moment estimates are kept across epochs (the
  official code builds a new Adam every epoch); learning rates decay in place, both groups
  by ``lr_decay`` every ``lr_decay_every`` epochs;
- the checkpoint is chosen on a validation split (highest Spearman correlation, then lowest
  L1), never on the test split, and training stops after ``patience`` epochs without gain.

Two jobs share the loop (:func:`fit`):

- :func:`train_face_model`: the default face model (``hyperiqa-dlib``), whose backbone is
  the frozen face recognizer, trained on a cached :class:`~faceiqa.trainset.FaceTrainSet`.
- :func:`finetune_hyperiqa`: the ResNet-50 HyperIQA (e.g. ``hyperiqa-koniq``) fine-tuned on
  a CSV of (image path, score), backbone included.

Every run writes into its folder: ``config.json`` (every setting), ``log.csv`` (one row per
epoch), ``last.pt`` (resumable state) and ``best.pt`` (the chosen weights).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from faceiqa.errors import InvalidArgumentError

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Settings of a training run (all recorded in the run's ``config.json``).

    Attributes:
        epochs: maximum number of epochs.
        batch_size: samples per optimisation step.
        lr: learning rate of the backbone side (``res.*``).
        lr_ratio: the hyper network's learning rate is ``lr * lr_ratio``.
        weight_decay: Adam weight decay (L2).
        lr_decay, lr_decay_every: both groups' rates are multiplied by ``lr_decay`` every
            ``lr_decay_every`` epochs.
        patience: stop after this many epochs without a better validation score.
        seed: seed of every random choice (sampling, initialisation, shuffling).
        device: torch device (default CUDA when available).
        rank_weight: weight of a within-group ranking term added to the L1 loss (0: plain
            L1, the official loss). Jobs whose batches carry groups (the face job: the
            versions of one photo) penalise every pair of the same group whose predicted
            gap falls short of its label gap (:func:`group_rank_loss`).
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-4
    lr_ratio: float = 10.0
    weight_decay: float = 5e-4
    lr_decay: float = 0.1
    lr_decay_every: int = 10
    patience: int = 6
    seed: int = 0
    device: str | None = None
    rank_weight: float = 0.0

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr_decay_every < 1 or self.patience < 1:
            raise InvalidArgumentError("epochs, batch_size, lr_decay_every and patience must be positive")
        if not (self.lr > 0 and self.lr_ratio > 0 and self.weight_decay >= 0 and 0 < self.lr_decay <= 1):
            raise InvalidArgumentError("lr and lr_ratio must be positive, weight_decay >= 0, lr_decay in (0, 1]")
        if self.rank_weight < 0:
            raise InvalidArgumentError("rank_weight must be >= 0")


@dataclass
class EpochLog:
    epoch: int
    train_l1: float
    val_l1: float
    val_srcc: float
    val_plcc: float
    lr_backbone: float
    lr_hyper: float
    seconds: float
    best: bool


@dataclass
class FitResult:
    """What :func:`fit` produced.

    Attributes:
        best_epoch: 1-based epoch of the chosen checkpoint.
        best_srcc, best_l1: its validation figures.
        history: one :class:`EpochLog` per epoch run (including earlier runs when resumed).
        run_dir: the run folder.
    """

    best_epoch: int
    best_srcc: float
    best_l1: float
    history: list[EpochLog]
    run_dir: Path


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def parameter_groups(model: nn.Module, lr: float, lr_ratio: float) -> list[dict[str, Any]]:
    """Adam groups: ``res.*`` (backbone + LDA) at ``lr``, everything else at ``lr * lr_ratio``.

    Lists, not iterators: both groups are materialised once and stay in the optimizer.
    Frozen parameters (``requires_grad=False``) are left out.
    """
    backbone = [p for n, p in model.named_parameters() if n.startswith("res.") and p.requires_grad]
    hyper = [p for n, p in model.named_parameters() if not n.startswith("res.") and p.requires_grad]
    if not hyper:
        raise InvalidArgumentError("the model has no trainable hyper-network parameters")
    groups = [{"params": hyper, "lr": lr * lr_ratio, "name": "hyper"}]
    if backbone:
        groups.insert(0, {"params": backbone, "lr": lr, "name": "backbone"})
    return groups


def _srcc(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _plcc(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def group_rank_loss(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Mean shortfall of predicted gaps against label gaps over same-group pairs.

    For every pair (i, j) of one group with ``target[i] > target[j]``, the loss is
    ``relu((target[i] - target[j]) - (pred[i] - pred[j]))``: zero once the model separates
    the pair at least as much as the labels do. It teaches the order of a photo's versions
    (pristine above mildly degraded above badly degraded), which plain L1 leaves to chance
    when the label gaps are smaller than the model's error on the photo itself.
    """
    same = groups[:, None] == groups[None, :]
    gap_t = target[:, None] - target[None, :]
    mask = same & (gap_t > 0)
    if not bool(mask.any()):
        return pred.sum() * 0.0
    gap_p = pred[:, None] - pred[None, :]
    return torch.relu(gap_t - gap_p)[mask].mean()


def fit(
    model: nn.Module,
    *,
    train_batches: Callable[[int], Iterable[tuple[Any, ...]]],
    predict_val: Callable[[], tuple[np.ndarray, np.ndarray]],
    config: TrainConfig,
    run_dir: Path,
    save_best: Callable[[nn.Module, Path], None],
    resume: bool = False,
    progress: bool = True,
) -> FitResult:
    """The training loop shared by every job.

    Args:
        model: the network; its ``res.*`` parameters form the backbone group.
        train_batches: ``train_batches(epoch)`` yields ``(forward, target)`` or
            ``(forward, target, groups)``, where ``forward()`` returns the model's (B,)
            predictions for the batch and ``groups`` (B,) integer group ids for the ranking
            term.
        predict_val: returns ``(predictions, labels)`` on the validation split (model in
            eval mode, no gradients).
        config: settings.
        run_dir: where ``log.csv``, ``last.pt`` and ``best.pt`` go.
        save_best: writes the chosen weights to a path.
        resume: continue from ``run_dir/last.pt`` when it exists.
        progress: a tqdm bar per epoch on stderr.
    """
    from tqdm import tqdm

    config.check()
    run_dir.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.Adam(parameter_groups(model, config.lr, config.lr_ratio), weight_decay=config.weight_decay)
    loss_fn = nn.L1Loss()
    history: list[EpochLog] = []
    best = (-math.inf, math.inf)  # (srcc, -l1) ordering, see _better
    best_epoch, stale, start = 0, 0, 1
    last_path = run_dir / "last.pt"
    if resume and last_path.is_file():
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = [EpochLog(**h) for h in state["history"]]
        best, best_epoch, stale, start = tuple(state["best"]), state["best_epoch"], state["stale"], state["epoch"] + 1
        random.setstate(state["py_rng"])
        np.random.set_state(state["np_rng"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed from epoch %d", state["epoch"])
    for epoch in range(start, config.epochs + 1):
        factor = config.lr_decay ** ((epoch - 1) // config.lr_decay_every)
        for group in optimizer.param_groups:
            base = config.lr if group["name"] == "backbone" else config.lr * config.lr_ratio
            group["lr"] = base * factor
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        batches = list(train_batches(epoch))
        for batch in tqdm(batches, desc=f"epoch {epoch}", disable=not progress, leave=False, unit="batch"):
            forward, target = batch[0], batch[1]
            optimizer.zero_grad(set_to_none=True)
            pred = forward()
            target = target.to(pred.device, pred.dtype)
            loss = loss_fn(pred, target)
            if config.rank_weight > 0 and len(batch) > 2:
                loss = loss + config.rank_weight * group_rank_loss(pred, target, batch[2].to(pred.device))
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(target)
            count += len(target)
        model.eval()
        with torch.inference_mode():
            pred, labels = predict_val()
        val_l1 = float(np.mean(np.abs(pred - labels)))
        srcc = _srcc(pred, labels)
        improved = _better((srcc, val_l1), best)
        if improved:
            best, best_epoch, stale = (srcc, val_l1), epoch, 0
            save_best(model, run_dir / "best.pt")
        else:
            stale += 1
        lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
        entry = EpochLog(
            epoch, total / max(count, 1), val_l1, srcc, _plcc(pred, labels),
            lrs.get("backbone", 0.0), lrs["hyper"], time.perf_counter() - t0, improved,
        )
        history.append(entry)
        _write_log(run_dir / "log.csv", history)
        log.info(
            "epoch %d: train L1 %.4f, val L1 %.4f, val SRCC %.4f%s",
            epoch, entry.train_l1, val_l1, srcc, " (best)" if improved else "",
        )
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "history": [asdict(h) for h in history],
                "best": list(best),
                "best_epoch": best_epoch,
                "stale": stale,
                "epoch": epoch,
                "py_rng": random.getstate(),
                "np_rng": np.random.get_state(),
                "torch_rng": torch.get_rng_state(),
            },
            run_dir / "last.pt.tmp",
        )
        os.replace(run_dir / "last.pt.tmp", last_path)
        if stale >= config.patience:
            log.info("no validation gain for %d epochs: stopping", stale)
            break
    if best_epoch == 0:
        raise InvalidArgumentError("training produced no valid checkpoint (validation SRCC undefined)")
    return FitResult(best_epoch, best[0], best[1], history, run_dir)


def _better(candidate: tuple[float, float], best: tuple[float, float]) -> bool:
    srcc, l1 = candidate
    if math.isnan(srcc):
        return False
    return srcc > best[0] + 1e-6 or (abs(srcc - best[0]) <= 1e-6 and l1 < best[1])


def _write_log(path: Path, history: Sequence[EpochLog]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([f.name for f in fields(EpochLog)])
        for h in history:
            writer.writerow([getattr(h, f.name) for f in fields(EpochLog)])
    os.replace(tmp, path)


def write_config(run_dir: Path, config: dict[str, Any]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.json"
    path.write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    return path


def _device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# --------------------------------------------------------------------------- the face model


@dataclass
class FaceDataConfig:
    """Where the face training set comes from (see :mod:`faceiqa.trainset`).

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
    from faceiqa.trainset import FaceTrainSet, build_face_trainset

    if data.cache and Path(data.cache).is_file():
        log.info("using the cached training set %s", data.cache)
        return FaceTrainSet.load(data.cache)
    if not data.images:
        raise InvalidArgumentError("no training set: give the photo folder (images) or an existing cache")
    from tqdm import tqdm

    from faceiqa.detection import FaceDetector
    from faceiqa.recognition import load_dlib_resnet

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
    device = _device(config.device)
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


def finetune_hyperiqa(
    job: FinetuneConfig, config: TrainConfig, run_dir: str | os.PathLike[str], *, resume: bool = False, progress: bool = True
) -> FitResult:
    """Fine-tune a ResNet-50 HyperIQA checkpoint on labelled images (backbone included).

    Labels are rescaled from ``score_range`` to 0..100 (the KonIQ raw scale). Validation uses
    the inference protocol (the deterministic crop grid of
    :meth:`~faceiqa.models.scorer.QualityScorer.score_image`). ``best.pt`` is written in the
    official layout, so it loads anywhere a ``koniq_pretrained.pkl`` does.
    """
    from faceiqa.io import read_image
    from faceiqa.models import QualityScorer, ScoreMapping, hyperiqa_resnet50, load_hypernet_state, save_hypernet
    from faceiqa.models.checkpoints import OFFICIAL
    from faceiqa.models.scorer import IMAGENET_MEAN, IMAGENET_STD
    from faceiqa.weights import resolve

    run = Path(run_dir)
    config.check()
    if not 0 < job.val_fraction < 1 or job.patches < 1:
        raise InvalidArgumentError("val_fraction must be in (0, 1) and patches positive")
    device = _device(config.device)
    paths, scores = read_labelled_images(job)
    low, high = job.score_range if job.score_range is not None else (float(scores.min()), float(scores.max()))
    if not high > low:
        raise InvalidArgumentError(f"score range must have high > low, got {low}, {high}")
    labels = (scores - low) / (high - low) * 100.0
    write_config(run, {"job": "finetune", "train": asdict(config), "finetune": asdict(job), "score_range": [low, high]})
    seed_everything(config.seed)
    order = np.random.default_rng(config.seed).permutation(len(paths))
    n_val = max(2, round(job.val_fraction * len(paths)))  # a rank correlation needs two
    if len(paths) - n_val < 1:
        raise InvalidArgumentError(f"need at least 3 labelled images, got {len(paths)}")
    val_idx, train_idx = order[:n_val], order[n_val:]
    model = load_hypernet_state(hyperiqa_resnet50(), resolve(job.weights), layout="auto").to(device)
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
        scorer = QualityScorer(model, name="finetune", input_size=size, template="hyperiqa-224", mapping=ScoreMapping.linear(0, 100), device=device, batch_size=config.batch_size)
        pred = scorer.score_image([read_image(paths[i]) for i in val_idx]).raw
        return pred, labels[val_idx]

    def save_best(m: nn.Module, path: Path) -> None:
        save_hypernet(m, path, layout=OFFICIAL)

    return fit(
        model, train_batches=train_batches, predict_val=predict_val, config=config, run_dir=run,
        save_best=save_best, resume=resume, progress=progress,
    )


# --------------------------------------------------------------------------- export


#: Same-person threshold of the dlib recognizer (Euclidean descriptor distance).
RECOGNISABLE_DISTANCE = 0.6


@dataclass(frozen=True)
class Calibration:
    """A logistic map from raw face-model output to the probability of being recognisable.

    ``score = 1 / (1 + exp(-(raw - x0) / width))`` estimates the probability that a face
    is recognisable: found by the detector, and its recognizer descriptor closer than the
    same-person threshold (0.6) to the person's other photos on average. Fitted by maximum
    likelihood on the validation split of a training set.

    Attributes:
        x0, width: the logistic's centre and scale (raw units).
        n: validation samples used; share: share of them recognisable.
        bins: (low, high, n, observed share, mean predicted) per raw-value bin.
    """

    x0: float
    width: float
    n: int
    share: float
    bins: tuple[tuple[float, float, int, float, float], ...]


def calibrate_recognisability(raw: np.ndarray, recognisable: np.ndarray) -> Calibration:
    """Fit :class:`Calibration` to raw outputs and 0/1 outcomes (maximum likelihood)."""
    from scipy.optimize import minimize

    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(recognisable, dtype=np.float64)
    if raw.shape != y.shape or raw.size < 10 or y.min() == y.max():
        raise InvalidArgumentError("calibration needs at least 10 samples of both outcomes")

    def nll(theta: np.ndarray) -> float:
        x0, log_w = theta
        z = (raw - x0) / np.exp(log_w)
        return float(np.mean(np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1.0 - y)))

    fit = minimize(nll, np.array([float(np.median(raw)), np.log(max(float(raw.std()), 1e-3))]), method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})
    x0, width = float(fit.x[0]), float(np.exp(fit.x[1]))
    pred = 1.0 / (1.0 + np.exp(-(raw - x0) / width))
    edges = (-np.inf, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, np.inf)
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (raw >= lo) & (raw < hi)
        if m.any():
            bins.append((lo, hi, int(m.sum()), float(y[m].mean()), float(pred[m].mean())))
    return Calibration(x0, width, int(raw.size), float(y.mean()), tuple(bins))


def face_validation_outputs(run_dir: Path) -> tuple[np.ndarray, Any]:
    """Raw outputs of a face run's ``best.pt`` on the validation split of its training set."""
    from faceiqa.models.checkpoints import read_checkpoint
    from faceiqa.models.face import CachedStages, face_hypernet, load_head
    from faceiqa.models.hypernet import target_network
    from faceiqa.trainset import FaceTrainSet

    config = json.loads((Path(run_dir) / "config.json").read_text())
    cache = config.get("data", {}).get("cache", "")
    if not cache or not Path(cache).is_file():
        raise InvalidArgumentError(f"{run_dir}: the run's training-set cache {cache!r} is needed to calibrate")
    data = FaceTrainSet.load(cache)
    val = data.subset(data.split == "val")
    model = load_head(face_hypernet(CachedStages()), read_checkpoint(Path(run_dir) / "best.pt")).eval()
    with torch.inference_mode():
        raw = target_network(model.params_from_stages([torch.from_numpy(s) for s in val.stages], torch.from_numpy(val.extra)))
    return raw.double().numpy(), val


def export_face_model(run_dir: Path, dest: Path, name: str = "faceiqa-face", *, calibrate: bool = False) -> dict[str, Any]:
    """Write a face run's ``best.pt`` to ``dest`` and return its manifest entry.

    With ``calibrate`` the entry's score mapping is the recognisability calibration
    (:func:`calibrate_recognisability`) fitted on the run's validation split; otherwise the
    generic face mapping (logistic centred at 0.5, width 0.15).

    Raises:
        InvalidArgumentError: the run has no ``best.pt`` (or, to calibrate, no cache).
        CheckpointError: the weights do not fit the face model.
    """
    import shutil

    from faceiqa.models.checkpoints import read_checkpoint
    from faceiqa.models.face import FACE_INPUT, FACE_SCORE, face_hypernet, load_head
    from faceiqa.weights import sha256_file

    best = Path(run_dir) / "best.pt"
    if not best.is_file():
        raise InvalidArgumentError(f"{run_dir} has no best.pt")
    load_head(face_hypernet(), read_checkpoint(best), source=best.name)
    score = json.loads(json.dumps(FACE_SCORE))
    if calibrate:
        raw, val = face_validation_outputs(Path(run_dir))
        cal = calibrate_recognisability(raw, (val.distance < RECOGNISABLE_DISTANCE) & val.detected)
        score["mapping"] = {"kind": "logistic", "x0": round(cal.x0, 6), "width": round(cal.width, 6)}
        score["calibration"] = (
            f"score = P(recognisable): found by the detector and closer than {RECOGNISABLE_DISTANCE} to the "
            f"person's other photos on average; logistic fitted on {cal.n} validation samples ({cal.share:.1%} recognisable)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copyfile(best, tmp)
    os.replace(tmp, dest)
    return {
        "name": name,
        "file": dest.name,
        "size": dest.stat().st_size,
        "sha256": sha256_file(dest),
        "kind": "quality",
        "architecture": "hyperiqa-dlib",
        "layout": "faceiqa-head",
        "backbone": "dlib-resnet (frozen; loaded from the dlib-resnet entry)",
        "options": {"extra_target_inputs": 1},
        "input": dict(FACE_INPUT),
        "score": score,
    }
