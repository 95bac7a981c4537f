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
  the frozen face recognizer, trained on a cached :class:`~faceiqa.training.trainset.FaceTrainSet`.
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
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from faceiqa._util import atomic_path, atomic_write
from faceiqa.errors import InvalidArgumentError
from faceiqa.evaluation import metrics

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
        state = read_resume_state(last_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = [EpochLog(**h) for h in state["history"]]
        best, best_epoch, stale, start = tuple(state["best"]), state["best_epoch"], state["stale"], state["epoch"] + 1
        restore_rng(state)
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
        srcc, plcc = metrics.monitor_correlations(pred, labels)
        improved = _better((srcc, val_l1), best)
        if improved:
            best, best_epoch, stale = (srcc, val_l1), epoch, 0
            save_best(model, run_dir / "best.pt")
        else:
            stale += 1
        lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
        entry = EpochLog(
            epoch, total / max(count, 1), val_l1, srcc, plcc,
            lrs.get("backbone", 0.0), lrs["hyper"], time.perf_counter() - t0, improved,
        )
        history.append(entry)
        _write_log(run_dir / "log.csv", history)
        log.info(
            "epoch %d: train L1 %.4f, val L1 %.4f, val SRCC %.4f%s",
            epoch, entry.train_l1, val_l1, srcc, " (best)" if improved else "",
        )
        with atomic_path(last_path) as tmp:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": [asdict(h) for h in history],
                    "best": list(best),
                    "best_epoch": best_epoch,
                    "stale": stale,
                    "epoch": epoch,
                    **rng_state(),
                },
                tmp,
            )
        if stale >= config.patience:
            log.info("no validation gain for %d epochs: stopping", stale)
            break
    if best_epoch == 0:
        raise InvalidArgumentError("training produced no valid checkpoint (validation SRCC undefined)")
    return FitResult(best_epoch, best[0], best[1], history, run_dir)


def rng_state() -> dict[str, Any]:
    """The Python, NumPy and torch random states as tensors and plain types (loadable with
    ``weights_only=True``)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "py_rng": [int(version), torch.tensor(internal, dtype=torch.int64), gauss],
        "np_rng": [str(kind), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch_rng": torch.get_rng_state(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Undo :func:`rng_state`."""
    version, internal, gauss = state["py_rng"]
    random.setstate((int(version), tuple(int(v) for v in internal.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["np_rng"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch_rng"])


_RESUME_KEYS = {"model", "optimizer", "history", "best", "best_epoch", "stale", "epoch", "py_rng", "np_rng", "torch_rng"}


def read_resume_state(path: Path) -> dict[str, Any]:
    """A run's ``last.pt``, loaded safely (tensors and plain types only; never code).

    Raises:
        InvalidArgumentError: not a resume file of this version (unsafe, unreadable or other keys).
    """
    from faceiqa.errors import CheckpointError
    from faceiqa.models.checkpoints import safe_load

    try:
        state = safe_load(path)
    except CheckpointError as exc:
        raise InvalidArgumentError(f"cannot resume from {path}: {exc}") from None
    if not isinstance(state, dict) or not _RESUME_KEYS <= set(state):
        raise InvalidArgumentError(f"cannot resume from {path}: not a faceiqa resume file (start a new run folder)")
    return state


def _better(candidate: tuple[float, float], best: tuple[float, float]) -> bool:
    srcc, l1 = candidate
    if math.isnan(srcc):
        return False
    return srcc > best[0] + 1e-6 or (abs(srcc - best[0]) <= 1e-6 and l1 < best[1])


def _write_log(path: Path, history: Sequence[EpochLog]) -> None:
    def write(fh: Any) -> None:
        writer = csv.writer(fh)
        writer.writerow([f.name for f in fields(EpochLog)])
        for h in history:
            writer.writerow([getattr(h, f.name) for f in fields(EpochLog)])

    atomic_write(path, write)


def write_config(run_dir: Path, config: dict[str, Any]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.json"
    path.write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    return path


