"""ONNX export of a quality model: aligned face crops in, raw output and score out.

The exported graph holds the whole scoring step of :meth:`QualityScorer.score_crops` for
one pass (no flip): the input normalisation, the network and the score mapping.

Graph inputs:

* ``crops``: float32 (N, 3, S, S), RGB values in [0, 1] (uint8 pixels / 255), crops aligned
  with the model's template (``faceiqa.face.alignment``), N dynamic;
* ``extra`` (only for models that take per-face values, e.g. the face model's
  ``log2_resolution``): float32 (N, k), in the order of the metadata key ``extra_names``.

Graph outputs:

* ``raw``: float32 (N,), the model's native output (``raw_name``);
* ``score``: float32 (N,), ``raw`` mapped to [0, 1] (higher is better) and clipped.

Everything needed to use the file is in its ``metadata_props`` (see :func:`metadata`):
model name, crop size, alignment template, normalisation (already inside the graph),
extra input names, the raw scale and the score mapping with its formula.

Requires the ``onnx`` package (``pip install faceiqa[onnx]``); onnxruntime is only needed to
run or check the file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from faceiqa import __version__
from faceiqa._util import atomic_path, check_int, one_line
from faceiqa.errors import FaceIQAError, InvalidArgumentError
from faceiqa.models import QualityScorer, load_scorer
from faceiqa.models.config import ScoreMapping
from faceiqa.models.hypernet import LDAPool
from faceiqa.models.scorer import NORMALIZATIONS

log = logging.getLogger("faceiqa.export")

#: Opset used when none is given (supported by onnxruntime 1.14 and later).
DEFAULT_OPSET = 17
#: Opsets the exporter is known to handle for these models.
MIN_OPSET, MAX_OPSET = 13, 20


class ExportError(FaceIQAError, RuntimeError):
    """The model could not be exported (missing package, unsupported operator...)."""


def _mapping_formula(mapping: ScoreMapping) -> str:
    if mapping.kind == "linear":
        return f"score = clip((raw - {mapping.low!r}) / ({mapping.high!r} - {mapping.low!r}), 0, 1)"
    if mapping.kind == "logistic":
        return f"score = clip(1 / (1 + exp(-(raw - {mapping.x0!r}) / {mapping.width!r})), 0, 1)"
    return "score = clip(raw, 0, 1)"


class ScoringGraph(nn.Module):
    """What gets exported: normalise, run the network, map the raw output to a score."""

    def __init__(self, scorer: QualityScorer) -> None:
        super().__init__()
        mean, std = NORMALIZATIONS[scorer.config.normalize]
        self.net = scorer.model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.extra_inputs = scorer.extra_inputs
        self.mapping = scorer.config.mapping

    def _score(self, raw: torch.Tensor) -> torch.Tensor:
        m = self.mapping
        if m.kind == "linear":
            score = (raw - m.low) / (m.high - m.low)
        elif m.kind == "logistic":
            score = torch.sigmoid((raw - m.x0) / m.width)
        else:
            score = raw
        return score.clamp(0.0, 1.0)

    def forward(self, crops: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = (crops - self.mean) / self.std
        raw = self.net(x, extra) if self.extra_inputs else self.net(x)
        raw = raw.reshape(-1)
        return raw, self._score(raw)


def _static_lda_pool(self: LDAPool, x: torch.Tensor) -> torch.Tensor:
    """:class:`LDAPool` with the adaptive windows written out (the map size is fixed in an
    exported graph, and the TorchScript exporter cannot export adaptive pooling to a grid > 1)."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    window = 7
    if h == w == self.grid * window:
        return F.avg_pool2d(x, window, stride=window)
    g = self.grid
    if g == 1:
        return x.mean(dim=(2, 3), keepdim=True)
    rows = []
    for i in range(g):
        r0, r1 = (i * h) // g, -(-((i + 1) * h) // g)
        cells = [x[:, :, r0:r1, (j * w) // g : -(-((j + 1) * w) // g)].mean(dim=(2, 3), keepdim=True) for j in range(g)]
        rows.append(torch.cat(cells, dim=3))
    return torch.cat(rows, dim=2)


@contextlib.contextmanager
def _exportable(model: nn.Module) -> Iterator[None]:
    """Temporarily give ``model``'s LDA pools the static form of :func:`_static_lda_pool`."""
    pools = [m for m in model.modules() if isinstance(m, LDAPool)]
    for m in pools:
        m.forward = types.MethodType(_static_lda_pool, m)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for m in pools:
            del m.forward


def metadata(scorer: QualityScorer, opset: int) -> dict[str, str]:
    """The ``metadata_props`` written into the ONNX file (all values are strings)."""
    mean, std = NORMALIZATIONS[scorer.config.normalize]
    size = scorer.config.size
    inputs = [f"crops: float32 [N, 3, {size}, {size}], RGB in [0, 1] (uint8 / 255), aligned with template {scorer.config.template}"]
    if scorer.extra_inputs:
        names = ", ".join(scorer.config.extra) or f"{scorer.extra_inputs} value(s)"
        inputs.append(f"extra: float32 [N, {scorer.extra_inputs}] per-face values ({names})")
    return {
        "faceiqa.format": "1",
        "faceiqa.version": __version__,
        "model_name": scorer.name,
        "input_size": str(size),
        "template": scorer.config.template,
        "normalize": scorer.config.normalize,
        "normalize_note": f"inside the graph: (crops - {list(mean)}) / {list(std)}",
        "extra_names": json.dumps(list(scorer.config.extra)),
        "inputs": "; ".join(inputs),
        "outputs": f"raw: float32 [N] ({scorer.config.raw_name}); score: float32 [N] in [0, 1], higher is better",
        "raw_name": scorer.config.raw_name,
        "raw_range": json.dumps(list(scorer.config.raw_range)),
        "score_mapping": json.dumps(scorer.config.mapping.to_dict()),
        "score_formula": _mapping_formula(scorer.config.mapping),
        "opset": str(opset),
        "protocol": "one pass per aligned crop; faceiqa's flip option averages raw over the crop and its mirror",
    }


def _write_onnx(scorer: QualityScorer, graph: nn.Module, args: tuple[Any, ...], tmp: Path, input_names: list[str],
                dynamic_axes: dict[str, dict[int, str]], opset: int) -> None:
    import onnx

    with torch.no_grad(), warnings.catch_warnings(), _exportable(graph):
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            graph,
            args,
            str(tmp),
            input_names=input_names,
            output_names=["raw", "score"],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load(str(tmp))
    for key, value in metadata(scorer, opset).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    model.producer_name = "faceiqa"
    model.producer_version = __version__
    model.doc_string = f"faceiqa quality model {scorer.name}: aligned crops -> raw, score"
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp))


def export_onnx(
    scorer: QualityScorer | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    batch: int = 2,
) -> Path:
    """Write ``scorer``'s model as an ONNX file with a dynamic batch size.

    Args:
        scorer: a :class:`QualityScorer`, or weights (registry name or checkpoint path)
            loaded on the CPU.
        path: the ``.onnx`` file to write (replaced if it exists; written to a temporary
            name first).
        opset: ONNX opset version, ``MIN_OPSET``..``MAX_OPSET``.
        batch: batch size of the example input used for tracing (any batch size runs).

    Raises:
        InvalidArgumentError: bad opset or batch.
        ExportError: the ``onnx`` package is missing or the export failed.
        WeightsError: the weights cannot be loaded.
    """
    check_int(opset, "opset", MIN_OPSET, MAX_OPSET)
    check_int(batch, "batch", 1)
    try:
        import onnx  # noqa: F401 - checked here, used by _write_onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'faceiqa[onnx]'") from None
    if not isinstance(scorer, QualityScorer):
        scorer = load_scorer(scorer, "cpu")
    if scorer.device.type != "cpu":
        raise InvalidArgumentError("export a scorer that runs on the CPU (load it with device='cpu')")
    path = Path(path)
    graph = ScoringGraph(scorer).eval()
    size = scorer.config.size
    crops = torch.rand(batch, 3, size, size)
    args: tuple[Any, ...] = (crops,)
    input_names = ["crops"]
    dynamic_axes: dict[str, dict[int, str]] = {"crops": {0: "N"}, "raw": {0: "N"}, "score": {0: "N"}}
    if scorer.extra_inputs:
        args = (crops, torch.zeros(batch, scorer.extra_inputs))
        input_names.append("extra")
        dynamic_axes["extra"] = {0: "N"}
    try:
        with atomic_path(path) as tmp:
            _write_onnx(scorer, graph, args, tmp, input_names, dynamic_axes, opset)
    except FaceIQAError:
        raise
    except Exception as exc:
        raise ExportError(f"ONNX export of {scorer.name} failed: {type(exc).__name__}: {one_line(exc, 200)}") from exc
    log.info("exported %s to %s (opset %d)", scorer.name, path, opset)
    return path


__all__ = ["DEFAULT_OPSET", "ExportError", "ScoringGraph", "export_onnx", "metadata"]
