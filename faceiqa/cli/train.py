"""``faceiqa train face | finetune | export-face``."""

from __future__ import annotations

import json
import logging
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import click

from faceiqa.cli._common import fail
from faceiqa.errors import FaceIQAError

log = logging.getLogger("faceiqa.cli")


def _read_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--config") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold a JSON object", param_hint="--config")
    return data


def _merge(obj: Any, values: dict[str, Any], what: str) -> Any:
    """Dataclass ``obj`` with ``values`` applied (unknown keys are an error)."""
    names = {f.name for f in fields(obj)}
    unknown = set(values) - names
    if unknown:
        raise click.BadParameter(f"unknown {what} settings: {', '.join(sorted(unknown))}", param_hint="--config")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return replace(obj, **fixed)


def _train_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option("--out", "run_dir", type=click.Path(file_okay=False), required=True, help="Run folder (config, log, checkpoints)."),
            click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="JSON settings (a run's config.json reproduces it); flags override it."),
            click.option("--epochs", type=click.IntRange(min=1), help="Maximum epochs."),
            click.option("--batch-size", type=click.IntRange(min=1), help="Samples per step."),
            click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Backbone-side learning rate."),
            click.option("--lr-ratio", type=click.FloatRange(min=0, min_open=True), help="Hyper network learning rate / lr."),
            click.option("--seed", type=int, help="Seed of every random choice."),
            click.option("--device", default=None, help="cpu, cuda or cuda:N."),
            click.option("--resume", is_flag=True, help="Continue from the run folder's last.pt."),
            click.option("-q", "--quiet", is_flag=True, help="No progress bars."),
        ]
    ):
        f = option(f)
    return f


def _train_config(defaults: Any, file_cfg: dict[str, Any], opts: dict[str, Any]) -> Any:
    cfg = _merge(defaults, file_cfg.get("train", {}), "train")
    flags = {k: opts[k] for k in ("epochs", "batch_size", "lr", "lr_ratio", "seed", "device") if opts.get(k) is not None}
    return replace(cfg, **flags)


def _report(result: Any) -> None:
    click.echo(
        f"best epoch {result.best_epoch}: validation SRCC {result.best_srcc:.4f}, L1 {result.best_l1:.4f}; "
        f"weights in {result.run_dir / 'best.pt'}"
    )


@click.group("train")
def train_group() -> None:
    """Train the face model or fine-tune a HyperIQA model."""


@train_group.command("face")
@click.option("--images", type=click.Path(exists=True, file_okay=False), help="Photo folder, one sub-folder per person (LFW layout).")
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False), help="Verification pairs; people of --val-folds are held out.")
@click.option("--val-folds", default=None, help="Comma-separated 0-based folds of --pairs held out for validation (default 6,7).")
@click.option("--cache", type=click.Path(dir_okay=False), help="Training-set cache (.npz): reused when present, written otherwise.")
@click.option("--variants", type=click.IntRange(min=1), help="Versions per training photo (the first pristine).")
@click.option("--limit-people", type=click.IntRange(min=1), help="Use only the first N people per split (quick runs).")
@click.option("--workers", type=click.IntRange(min=0), help="Processes building the training set (default 0: this one).")
@_train_options
def train_face(images: str | None, pairs: str | None, val_folds: str | None, cache: str | None, variants: int | None, limit_people: int | None, workers: int | None, run_dir: str, config_path: str | None, resume: bool, quiet: bool, **opts: Any) -> None:
    """Train the head of the default face model on degraded real faces.

    The backbone is the frozen face recognizer; see faceiqa/training/trainset.py for the data and
    faceiqa/training/labels.py for the labels. Example (on 2 CPU cores about 15 minutes to build the
    training set with --workers 2, then a few minutes of training):

      faceiqa train face --images lfw/images --pairs lfw/pairs.txt --workers 2 --cache runs/face.npz --out runs/face
    """
    from faceiqa.training.face import FaceDataConfig, face_config_defaults, train_face_model

    file_cfg = _read_config(config_path)
    data = _merge(FaceDataConfig(), file_cfg.get("data", {}), "data")
    updates: dict[str, Any] = {k: v for k, v in {"images": images, "pairs": pairs, "cache": cache, "variants": variants, "limit_people": limit_people, "workers": workers}.items() if v is not None}
    if val_folds is not None:
        try:
            updates["val_folds"] = tuple(int(v) for v in val_folds.split(","))
        except ValueError:
            raise click.BadParameter("expected comma-separated integers", param_hint="--val-folds") from None
    data = replace(data, **updates)
    if not data.images and not (data.cache and Path(data.cache).is_file()):
        raise click.UsageError("give --images (and --pairs), or an existing --cache")
    config = _train_config(face_config_defaults(), file_cfg, opts)
    try:
        result = train_face_model(data, config, run_dir, resume=resume, progress=not quiet)
    except FaceIQAError as exc:
        raise fail(exc) from None
    _report(result)


@train_group.command("finetune")
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False), help="CSV of image path and score.")
@click.option("--weights", default=None, help="Starting checkpoint: registry name or path (default hyperiqa-koniq).")
@click.option("--images-root", type=click.Path(exists=True, file_okay=False), help="Folder relative paths in the CSV refer to (default: the CSV's folder).")
@click.option("--path-column", default=None, help="Image path column (default: the first).")
@click.option("--score-column", default=None, help="Score column (default: the second).")
@click.option("--score-range", nargs=2, type=float, default=None, help="LOW HIGH of your scale, mapped to 0..100 (default: the CSV's min and max).")
@click.option("--patches", type=click.IntRange(min=1), default=None, help="Random 224 px crops per image per epoch (default 25).")
@_train_options
def train_finetune(csv_path: str | None, weights: str | None, images_root: str | None, path_column: str | None, score_column: str | None, score_range: tuple[float, float] | None, patches: int | None, run_dir: str, config_path: str | None, resume: bool, quiet: bool, **opts: Any) -> None:
    """Fine-tune the ResNet-50 HyperIQA (e.g. hyperiqa-koniq) on your own scores.

    The result (best.pt, official layout, KonIQ raw scale 0..100) loads with
    --weights PATH anywhere in faceiqa.
    """
    from faceiqa.training.finetune import FinetuneConfig, finetune_config_defaults, finetune_hyperiqa

    file_cfg = _read_config(config_path)
    job = _merge(FinetuneConfig(), file_cfg.get("finetune", {}), "finetune")
    updates = {
        k: v
        for k, v in {
            "csv": csv_path, "weights": weights, "images_root": images_root, "path_column": path_column,
            "score_column": score_column, "score_range": tuple(score_range) if score_range else None, "patches": patches,
        }.items()
        if v is not None
    }
    job = replace(job, **updates)
    if not job.csv:
        raise click.UsageError("give --csv (image path, score)")
    config = _train_config(finetune_config_defaults(), file_cfg, opts)
    try:
        result = finetune_hyperiqa(job, config, run_dir, resume=resume, progress=not quiet)
    except FaceIQAError as exc:
        raise fail(exc) from None
    _report(result)


@train_group.command("export-face")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--to", "dest", type=click.Path(dir_okay=False), required=True, help="Where to write the head weights (.pt).")
@click.option("--name", default="faceiqa-face", show_default=True, help="Registry name for the manifest entry printed.")
@click.option("--calibrate", is_flag=True, help="Map scores to the probability of being recognisable, fitted on the run's validation split.")
def export_face(run_dir: str, dest: str, name: str, calibrate: bool) -> None:
    """Copy a face run's best weights to a file and print its manifest entry (JSON)."""
    from faceiqa.training.calibrate import export_face_model

    if Path(dest).exists():
        raise click.UsageError(f"{dest} already exists")
    try:
        entry = export_face_model(Path(run_dir), Path(dest), name, calibrate=calibrate)
    except FaceIQAError as exc:
        raise fail(exc) from None
    click.echo(json.dumps(entry, indent=2))


def register(main: click.Group) -> None:
    main.add_command(train_group)
