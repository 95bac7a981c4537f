"""The weights manifest (``pretrained/manifest.json``, schema in docs/ARCHITECTURE.md): entries and lookup by name.

This module does not import torch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import site
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faceiqa
from faceiqa.errors import (
    InvalidArgumentError,
    WeightsError,
    WeightsNotFoundError,
)
from faceiqa.models.config import InputProtocol, ScoreSpec

logger = logging.getLogger("faceiqa.weights")

#: Manifest format this code reads.
MANIFEST_FORMAT = 1
#: Environment variables.
ENV_HOME = "FACEIQA_HOME"
ENV_OFFLINE = "FACEIQA_OFFLINE"
ENV_MANIFEST = "FACEIQA_MANIFEST"

_WEIGHT_KINDS = ("quality", "recognizer")


@dataclass(frozen=True)
class WeightsSpec:
    """One manifest entry (see docs/ARCHITECTURE.md for the JSON form).

    Attributes:
        name: registry name (``weights=`` argument, CLI ``NAME``).
        file: file name on disk (also the name a download is saved under).
        size: file size in bytes.
        sha256: lowercase hex digest of the file.
        urls: download sources, tried in order (may be empty for bundled files).
        kind: ``quality`` or ``recognizer``.
        architecture: key of the builder that makes the network (e.g. ``hyperiqa-resnet50``).
        layout: checkpoint layout (e.g. ``hyperiqa-official``).
        backbone: backbone name, informative (e.g. ``resnet50``).
        input: input protocol; None for entries that declare none (only allowed for
            non-quality kinds).
        score: raw output and mapping; None for non-quality kinds.
        source: where the file comes from when it is not downloaded as is (e.g. the package
            it was converted from, or the command that trained it).
        licence, citation, description: free text.
        options: architecture-specific builder options (e.g. ``extra_target_inputs``).
    """

    name: str
    file: str
    size: int
    sha256: str
    kind: str
    architecture: str = ""
    urls: tuple[str, ...] = ()
    layout: str = ""
    backbone: str = ""
    input: InputProtocol | None = None
    score: ScoreSpec | None = None
    licence: str = ""
    citation: str = ""
    description: str = ""
    source: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightsSpec:
        """Parse and validate one manifest entry.

        Raises:
            InvalidArgumentError: a field is missing or malformed.
        """
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(f"manifest entry must be an object, got {type(data).__name__}")
        name = data.get("name", "?")
        missing = [k for k in ("name", "file", "size", "sha256", "kind") if k not in data]
        if missing:
            raise InvalidArgumentError(f"manifest entry {name!r} lacks {', '.join(missing)}")
        sha = str(data["sha256"]).lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise InvalidArgumentError(f"manifest entry {name!r}: sha256 must be 64 hex digits")
        file = str(data["file"])
        if not file or Path(file).name != file or file in (".", ".."):
            raise InvalidArgumentError(f"manifest entry {name!r}: file must be a plain file name, got {file!r}")
        kind = str(data["kind"])
        if kind not in _WEIGHT_KINDS:
            raise InvalidArgumentError(f"manifest entry {name!r}: kind must be one of {', '.join(_WEIGHT_KINDS)}")
        urls = data.get("urls", [])
        if isinstance(urls, str) or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
            raise InvalidArgumentError(f"manifest entry {name!r}: urls must be a list of http(s) URLs")
        try:
            size = int(data["size"])
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"manifest entry {name!r}: size must be an integer") from None
        if size <= 0:
            raise InvalidArgumentError(f"manifest entry {name!r}: size must be positive")
        spec = cls(
            name=str(data["name"]),
            file=file,
            size=size,
            sha256=sha,
            kind=kind,
            architecture=str(data.get("architecture", "")),
            urls=tuple(urls),
            layout=str(data.get("layout", "")),
            backbone=str(data.get("backbone", "")),
            input=InputProtocol.from_dict(data["input"]) if "input" in data else None,
            score=ScoreSpec.from_dict(data["score"]) if "score" in data else None,
            licence=str(data.get("licence", "")),
            citation=str(data.get("citation", "")),
            description=str(data.get("description", "")),
            source=str(data.get("source", "")),
            options=dict(data.get("options", {})),
        )
        if kind == "quality" and (spec.input is None or spec.score is None or not spec.architecture):
            raise InvalidArgumentError(f"quality weights {spec.name!r} need 'architecture', 'input' and 'score'")
        return spec


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest: its path, default name (None if unset) and entries."""

    path: Path
    default: str | None
    weights: tuple[WeightsSpec, ...]

    def names(self) -> list[str]:
        return [w.name for w in self.weights]


def _data_dirs() -> list[Path]:
    """``pretrained/`` folders: source checkout first, then wheel data locations."""
    dirs = []
    checkout = Path(faceiqa.__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():  # a source or editable checkout, not site-packages
        dirs.append(checkout / "pretrained")
    dirs.append(Path(sys.prefix) / "share" / "faceiqa" / "pretrained")
    user_base = getattr(site, "USER_BASE", None)
    if user_base:
        dirs.append(Path(user_base) / "share" / "faceiqa" / "pretrained")
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def pretrained_dirs() -> list[Path]:
    """The existing ``pretrained/`` folders searched for bundled weights, in order."""
    return [d for d in _data_dirs() if d.is_dir()]


def manifest_path() -> Path:
    """The manifest in use: ``$FACEIQA_MANIFEST`` if set, else the first ``pretrained/manifest.json``.

    Raises:
        WeightsNotFoundError: no manifest found (a broken install).
    """
    env = os.environ.get(ENV_MANIFEST)
    if env:
        return Path(env).expanduser()
    for d in _data_dirs():
        if (d / "manifest.json").is_file():
            return d / "manifest.json"
    looked = ", ".join(str(d) for d in _data_dirs())
    raise WeightsNotFoundError(f"weights manifest not found (looked in {looked}); reinstall faceiqa")


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read and validate a manifest (default: :func:`manifest_path`).

    Raises:
        WeightsError: unreadable or invalid manifest.
    """
    path = Path(path) if path is not None else manifest_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read the weights manifest {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("weights"), list):
        raise WeightsError(f"{path}: not a format-{MANIFEST_FORMAT} weights manifest")
    try:
        specs = tuple(WeightsSpec.from_dict(entry) for entry in data["weights"])
    except InvalidArgumentError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise WeightsError(f"{path}: duplicate weights names {', '.join(dupes)}")
    default = data.get("default")
    if default is not None and default not in names:
        raise WeightsError(f"{path}: default {default!r} is not a listed weights name")
    return Manifest(path=path, default=default, weights=specs)




def describe(spec: WeightsSpec) -> dict[str, Any]:
    """The entry as a JSON-ready dict (the manifest form)."""
    out: dict[str, Any] = {
        "name": spec.name,
        "file": spec.file,
        "size": spec.size,
        "sha256": spec.sha256,
        "urls": list(spec.urls),
        "kind": spec.kind,
        "architecture": spec.architecture,
        "layout": spec.layout,
        "backbone": spec.backbone,
    }
    if spec.input is not None:
        out["input"] = spec.input.to_dict()
    if spec.score is not None:
        out["score"] = spec.score.to_dict()
    out.update(licence=spec.licence, citation=spec.citation, description=spec.description)
    if spec.options:
        out["options"] = dict(spec.options)
    return out
