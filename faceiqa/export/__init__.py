"""The scoring model as an ONNX graph.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "DEFAULT_OPSET": "onnx",
    "ExportError": "onnx",
    "ScoringGraph": "onnx",
    "export_onnx": "onnx",
    "metadata": "onnx",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(f"faceiqa.export.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'faceiqa.export' has no attribute {name!r}")
