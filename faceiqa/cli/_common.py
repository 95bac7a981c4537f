"""What the command groups share: option blocks, the assessor they build, one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from faceiqa._util import one_line
from faceiqa.errors import CheckpointError, InvalidArgumentError, UnknownWeightsError, WeightsError, WeightsNotFoundError

#: A device option for commands that run models.
device_option = click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available).")
#: A quality model option.
weights_option = click.option(
    "--weights", default="default", show_default=True, help="Registry name (faceiqa weights list) or checkpoint path."
)


def fail(exc: BaseException) -> click.ClickException:
    """A library error as a one-line CLI error (exit code 1)."""
    text = str(exc).strip()
    return click.ClickException(text.splitlines()[0] if text else type(exc).__name__)


def _looks_like_a_path(weights: str) -> bool:
    return "/" in weights or "\\" in weights or "." in weights


def write_failed(option: str, path: object, exc: OSError) -> click.ClickException:
    """A report or output file that could not be written, as a one-line CLI error."""
    return click.ClickException(f"cannot write {option} {path}: {exc.strerror or exc}")


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        weights_option,
        device_option,
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Face crops per forward pass."),
        click.option("--max-side", type=click.IntRange(min=64), default=1024, show_default=True, help="Detect faces on a copy downscaled to this longest side (pixels)."),
        click.option("--min-face-size", type=click.IntRange(min=8), default=20, show_default=True, help="Smallest face the detector looks for (pixels, after downscaling)."),
        click.option("--flip", is_flag=True, help="Average each face's score with its mirror image's."),
        click.option(
            "--precision",
            type=click.Choice(["fp32", "bf16", "fp16", "auto"]),
            default="fp32",
            show_default=True,
            help="Quality model precision: bf16 (CPUs with native bf16, or CUDA) and fp16 (CUDA) are faster and "
            "change scores by up to about 0.01; auto uses one only where it agrees with fp32. fp32 is the reference.",
        ),
        click.option(
            "--threads",
            type=click.Choice(["auto", "exact"]),
            default="auto",
            show_default=True,
            help="auto: one torch thread per stage and a detection worker per CPU (fast, also on a busy machine); "
            "exact: the reference setting the golden scores were made with (scores differ by float rounding).",
        ),
        click.option(
            "--detect-workers",
            type=click.IntRange(min=0),
            default=None,
            help="Threads that detect faces while the model scores (default: from --threads).",
        ),
        click.option(
            "--mtcnn-threads",
            type=click.IntRange(min=1),
            default=None,
            help="Torch threads for face detection (default: from --threads).",
        ),
        click.option(
            "--score-threads",
            type=click.IntRange(min=1),
            default=None,
            help="Torch threads for the quality model (default: from --threads).",
        ),
        click.option("--hidden", is_flag=True, help="Include hidden files and folders."),
        click.option(
            "--excel-safe",
            is_flag=True,
            help="Prefix CSV text cells that start with = + - @ (a spreadsheet formula) with ' . Off: the CSV "
            "holds the exact paths.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def check_device_option(device: str | None) -> None:
    """Reject an unknown or unavailable --device before any work (exit code 2)."""
    if device is None:
        return
    from faceiqa._util import pick_device

    try:
        pick_device(device)
    except InvalidArgumentError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None


def plural(n: int, word: str) -> str:
    """``1 image``, ``2 images``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def make_assessor(opts: dict[str, Any]) -> Any:
    from faceiqa.api import FaceQualityAssessor

    check_device_option(opts["device"])
    if not opts.get("quiet"):
        click.echo(f"faceiqa: loading the face detector and the quality model ({opts['weights']})...", err=True)
    try:
        return FaceQualityAssessor(
            opts["weights"],
            device=opts["device"],
            batch_size=opts["batch_size"],
            max_side=opts["max_side"],
            min_face_size=opts["min_face_size"],
            flip=opts["flip"],
            precision=opts["precision"],
            threads=opts["threads"],
            detect_workers=opts["detect_workers"],
            mtcnn_threads=opts["mtcnn_threads"],
            score_threads=opts["score_threads"],
        )
    except (UnknownWeightsError, CheckpointError) as exc:
        raise click.BadParameter(one_line(exc, 400), param_hint="--weights") from None
    except WeightsNotFoundError as exc:
        if _looks_like_a_path(opts["weights"]):
            raise click.BadParameter(one_line(exc, 400), param_hint="--weights") from None
        raise fail(exc) from None
    except WeightsError as exc:
        raise fail(exc) from None
    except InvalidArgumentError as exc:
        raise click.UsageError(str(exc)) from None
