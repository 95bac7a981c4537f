"""Old import paths (before the package was organised into folders), kept for one release.

``import faceiqa.pipeline`` still works and gives a module that forwards every name to its new
home (``faceiqa.api``), with a :class:`DeprecationWarning` that names the new path. The table
is the whole list; nothing else of the old flat layout is kept.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence

#: old module -> the modules its names now live in (searched in order).
MOVED: dict[str, tuple[str, ...]] = {
    "faceiqa.pipeline": ("faceiqa.api", "faceiqa.models.features"),
    "faceiqa.io": ("faceiqa.images",),
    "faceiqa.weights": ("faceiqa.hub.manifest", "faceiqa.hub.store", "faceiqa.hub.download", "faceiqa.models.config"),
    "faceiqa.detection": ("faceiqa.face.detection",),
    "faceiqa.alignment": ("faceiqa.face.alignment",),
    "faceiqa.recognition": ("faceiqa.face.recognition", "faceiqa.models.dlib_resnet"),
    "faceiqa.decisions": ("faceiqa.output.decisions",),
    "faceiqa.fileops": ("faceiqa.output.fileops",),
    "faceiqa.reports": ("faceiqa.output.reports", "faceiqa.output.html"),
    "faceiqa.metrics": ("faceiqa.evaluation.metrics",),
    "faceiqa.edc": ("faceiqa.evaluation.edc",),
    "faceiqa.verification": ("faceiqa.evaluation.verification",),
    "faceiqa.degrade": ("faceiqa.evaluation.degrade",),
    "faceiqa.baselines": ("faceiqa.evaluation.baselines",),
    "faceiqa.evaluate": tuple(
        f"faceiqa.evaluation.{m}" for m in ("common", "mos", "pairs", "edc_runs", "sensitivity", "degraded_set")
    ),
    "faceiqa.labels": ("faceiqa.training.labels",),
    "faceiqa.trainset": ("faceiqa.training.trainset",),
    "faceiqa.train": tuple(f"faceiqa.training.{m}" for m in ("loop", "face", "finetune", "calibrate")),
}


class _Forwarder(types.ModuleType):
    """A deprecated module: every attribute comes from the first new module that has it."""

    def __init__(self, name: str, targets: Sequence[str]) -> None:
        super().__init__(name, f"Deprecated: moved to {', '.join(targets)}.")
        self.__targets = tuple(targets)

    def __getattr__(self, attr: str) -> object:
        for target in self.__targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")

    def __dir__(self) -> list[str]:
        return sorted({n for t in self.__targets for n in dir(importlib.import_module(t))})


class _Loader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        targets = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {targets[0]}; the old path will be removed in the next release",
            DeprecationWarning,
            stacklevel=3,
        )
        return _Forwarder(spec.name, targets)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname in MOVED:
            return importlib.machinery.ModuleSpec(fullname, _Loader())
        return None


def install() -> None:
    """Make the old paths importable (idempotent)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
