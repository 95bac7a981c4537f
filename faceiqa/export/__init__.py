"""The scoring model as an ONNX graph.
"""

from __future__ import annotations

from faceiqa._util import lazy_getattr

_LAZY = {
    "DEFAULT_OPSET": "onnx",
    "ExportError": "onnx",
    "ScoringGraph": "onnx",
    "export_onnx": "onnx",
    "metadata": "onnx",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
