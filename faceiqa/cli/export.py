"""``faceiqa export --onnx FILE``: the scoring model as an ONNX file."""

from __future__ import annotations

import os
from pathlib import Path

import click

from faceiqa.cli._common import fail, weights_option, write_failed
from faceiqa.errors import FaceIQAError, InvalidArgumentError, WeightsError


@click.command("export")
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False), required=True, help="Write the ONNX model here.")
@weights_option
@click.option("--opset", type=int, default=None, help="ONNX opset version (default 17; 13..20).")
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
def export_cmd(onnx_path: str, weights: str, opset: int | None, overwrite: bool) -> None:
    """Export the quality model (aligned crops in, raw output and score out) to ONNX.

    The graph takes `crops` (float32 N x 3 x S x S, RGB in [0, 1], aligned with the
    model's template; N is dynamic) and, for models that need it, `extra` (float32 N x k
    per-face values such as log2_resolution). It returns `raw` and `score` (float32 N).
    The input normalisation and the score mapping are inside the graph; the crop size,
    template, extra input names and the mapping are also written to the file's metadata.
    """
    from faceiqa.export.onnx import DEFAULT_OPSET, ExportError, export_onnx

    path = Path(onnx_path)
    if os.path.lexists(path) and not overwrite:
        raise click.UsageError(f"--onnx {path} already exists; pass --overwrite to replace it")
    if not path.parent.is_dir() and str(path.parent) not in ("", "."):
        raise click.UsageError(f"--onnx {path} cannot be created: {path.parent} is not a folder")
    try:
        out = export_onnx(weights, path, opset=DEFAULT_OPSET if opset is None else opset)
    except InvalidArgumentError as exc:
        raise click.UsageError(str(exc)) from None
    except (WeightsError, ExportError, FaceIQAError) as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise write_failed("--onnx", path, exc) from None
    click.echo(f"faceiqa: wrote {out}", err=True)


def register(main: click.Group) -> None:
    main.add_command(export_cmd)
