"""A quality model's configuration: input protocol, score description and mapping.

One :class:`ModelConfig` per model, filled from its weights manifest entry (like timm's
pretrained configs). This module does not import torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from faceiqa.errors import InvalidArgumentError

if TYPE_CHECKING:
    from faceiqa.hub.manifest import WeightsSpec

__all__ = ["InputProtocol", "ModelConfig", "NORMALIZE_KINDS", "ScoreMapping", "ScoreSpec"]

#: Pixel normalisations a scorer knows (see :data:`faceiqa.models.scorer.NORMALIZATIONS`).
NORMALIZE_KINDS = ("imagenet", "dlib", "none")


@dataclass(frozen=True)
class ScoreMapping:
    """Maps a model's raw output onto a score in [0, 1] (higher is better).

    Kinds:
        ``linear``: ``(raw - low) / (high - low)``; ``high < low`` flips the direction.
        ``logistic``: ``1 / (1 + exp(-(raw - x0) / width))``; a negative width flips it.
        ``identity``: ``raw``.

    The result is clipped to [0, 1]; NaN stays NaN.
    """

    kind: str = "identity"
    low: float = 0.0
    high: float = 1.0
    x0: float = 0.0
    width: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "logistic", "identity"):
            raise InvalidArgumentError(f"unknown score mapping kind {self.kind!r} (linear, logistic, identity)")
        values = (self.low, self.high, self.x0, self.width)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise InvalidArgumentError(f"score mapping parameters must be finite numbers: {self}")
        if self.kind == "linear" and self.high == self.low:
            raise InvalidArgumentError("linear score mapping needs high != low")
        if self.kind == "logistic" and self.width == 0:
            raise InvalidArgumentError("logistic score mapping needs a non-zero width")

    @classmethod
    def linear(cls, low: float, high: float) -> ScoreMapping:
        """``raw = low`` maps to 0, ``raw = high`` to 1."""
        return cls("linear", low=float(low), high=float(high))

    @classmethod
    def logistic(cls, x0: float, width: float) -> ScoreMapping:
        """``raw = x0`` maps to 0.5; ``width`` is the raw distance from 0.5 to ~0.73."""
        return cls("logistic", x0=float(x0), width=float(width))

    @classmethod
    def identity(cls) -> ScoreMapping:
        """The raw value is the score."""
        return cls("identity")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreMapping:
        """From the manifest form ``{"kind": ..., "low"/"high" | "x0"/"width"}``."""
        if not isinstance(data, Mapping) or "kind" not in data:
            raise InvalidArgumentError(f"a score mapping needs a 'kind': {data!r}")
        kind = data["kind"]
        allowed = {"linear": ("low", "high"), "logistic": ("x0", "width"), "identity": ()}.get(kind)
        if allowed is None:
            raise InvalidArgumentError(f"unknown score mapping kind {kind!r} (linear, logistic, identity)")
        extra = set(data) - {"kind", *allowed}
        missing = [k for k in allowed if k not in data]
        if extra or missing:
            raise InvalidArgumentError(f"{kind} score mapping takes exactly {list(allowed)}, got {sorted(data)}")
        return cls(kind, **{k: float(data[k]) for k in allowed})

    def to_dict(self) -> dict[str, Any]:
        """The manifest form (only the parameters the kind uses)."""
        if self.kind == "linear":
            return {"kind": "linear", "low": self.low, "high": self.high}
        if self.kind == "logistic":
            return {"kind": "logistic", "x0": self.x0, "width": self.width}
        return {"kind": "identity"}

    def __call__(self, raw: Any) -> np.ndarray:
        """Scores in [0, 1] as float64, same shape as ``raw``."""
        x = np.asarray(raw, dtype=np.float64)
        if self.kind == "linear":
            y = (x - self.low) / (self.high - self.low)
        elif self.kind == "logistic":
            y = 0.5 * (1.0 + np.tanh(0.5 * (x - self.x0) / self.width))  # overflow-free sigmoid
        else:
            y = x.copy()
        return np.clip(y, 0.0, 1.0)


@dataclass(frozen=True)
class InputProtocol:
    """How a model wants its input.

    Attributes:
        size: side in pixels of the square crops the model is run on.
        template: name of the face alignment template (:mod:`faceiqa.face.alignment`).
        normalize: pixel normalisation inside the scorer (``"imagenet"``: mean
            0.485/0.456/0.406, std 0.229/0.224/0.225 on [0, 1] RGB; ``"dlib"``: minus
            122.782/117.001/104.298 on 0..255 RGB, divided by 255).
        grid: K of the K x K crop grid for whole images (see ``QualityScorer.score_image``).
        extra: names of per-face values the model takes besides the crop, in order (e.g.
            ``log2_resolution``, see ``faceiqa.models.features.FACE_FEATURES``).
    """

    size: int
    template: str
    normalize: str = "imagenet"
    grid: int = 5
    extra: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputProtocol:
        try:
            return cls(
                size=int(data["size"]),
                template=str(data["template"]),
                normalize=str(data.get("normalize", "imagenet")),
                grid=int(data.get("grid", 5)),
                extra=tuple(str(x) for x in data.get("extra", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"bad 'input' block {data!r}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"size": self.size, "template": self.template, "normalize": self.normalize, "grid": self.grid}
        if self.extra:
            out["extra"] = list(self.extra)
        return out


@dataclass(frozen=True)
class ScoreSpec:
    """A quality model's output.

    Attributes:
        raw_name: name of the raw output (e.g. ``koniq_mos_zscore``).
        raw_range: typical (low, high) of the raw output, for display; not enforced.
        higher_is_better: direction of the raw output.
        mapping: raw -> score in [0, 1].
        calibration: what the mapped score means, when it was calibrated (free text).
    """

    raw_name: str
    raw_range: tuple[float, float]
    mapping: ScoreMapping
    higher_is_better: bool = True
    calibration: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreSpec:
        try:
            low, high = (float(v) for v in data["raw_range"])
            return cls(
                raw_name=str(data["raw_name"]),
                raw_range=(low, high),
                mapping=ScoreMapping.from_dict(data["mapping"]),
                higher_is_better=bool(data.get("higher_is_better", True)),
                calibration=str(data.get("calibration", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"bad 'score' block {data!r}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "raw_name": self.raw_name,
            "raw_range": list(self.raw_range),
            "higher_is_better": self.higher_is_better,
            "mapping": self.mapping.to_dict(),
            **({"calibration": self.calibration} if self.calibration else {}),
        }


@dataclass(frozen=True)
class ModelConfig:
    """Everything a scorer needs to know about one quality model besides its weights.

    Filled from the model's manifest entry (:meth:`from_spec`), or made by hand for a network
    you built yourself. Pixel sizes are in pixels of the crop the model runs on.

    Attributes:
        name: weights name (e.g. ``faceiqa-face``).
        size: side S of the square crops the model is run on, in pixels.
        template: face alignment template (:mod:`faceiqa.face.alignment`) for face crops.
        normalize: pixel normalisation: ``imagenet`` (mean 0.485/0.456/0.406, std
            0.229/0.224/0.225 on [0, 1] RGB), ``dlib`` (minus 122.782/117.001/104.298 on 0..255
            RGB, divided by 255) or ``none``.
        grid: K of the K x K crop grid for whole images (see ``QualityScorer.score_image``).
        extra: names of per-face values the model takes besides the crop, in order
            (:data:`faceiqa.models.features.FACE_FEATURES`).
        raw_name: what the raw output is.
        raw_range: its typical (low, high), informative.
        mapping: raw -> score in [0, 1], higher is better.
        higher_is_better: direction of the raw output.
        calibration: what the mapped score means, when it was calibrated (free text).
        architecture: builder name (:data:`faceiqa.models.architectures.ARCHITECTURES`).
        layout: checkpoint layout the builder's loader expects.
        options: architecture-specific builder options.
    """

    name: str
    size: int
    template: str
    normalize: str = "imagenet"
    grid: int = 5
    extra: tuple[str, ...] = ()
    raw_name: str = "raw"
    raw_range: tuple[float, float] = (0.0, 1.0)
    mapping: ScoreMapping = field(default_factory=ScoreMapping.identity)
    higher_is_better: bool = True
    calibration: str = ""
    architecture: str = ""
    layout: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZE_KINDS:
            raise InvalidArgumentError(f"unknown normalisation {self.normalize!r} (known: {', '.join(NORMALIZE_KINDS)})")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 1:
            raise InvalidArgumentError(f"{self.name}: size must be a positive integer, got {self.size!r}")
        if not isinstance(self.grid, int) or isinstance(self.grid, bool) or self.grid < 1:
            raise InvalidArgumentError(f"{self.name}: grid must be a positive integer, got {self.grid!r}")
        object.__setattr__(self, "extra", tuple(str(n) for n in self.extra))
        object.__setattr__(self, "raw_range", (float(self.raw_range[0]), float(self.raw_range[1])))

    @classmethod
    def from_blocks(cls, name: str, input: InputProtocol, score: ScoreSpec, **kw: Any) -> ModelConfig:
        """From the manifest's ``input`` and ``score`` blocks (``kw``: architecture, layout, options)."""
        return cls(
            name=name,
            size=input.size,
            template=input.template,
            normalize=input.normalize,
            grid=input.grid,
            extra=input.extra,
            raw_name=score.raw_name,
            raw_range=score.raw_range,
            mapping=score.mapping,
            higher_is_better=score.higher_is_better,
            calibration=score.calibration,
            **kw,
        )

    @classmethod
    def from_spec(cls, spec: WeightsSpec) -> ModelConfig:
        """The configuration of a registered quality model.

        Raises:
            InvalidArgumentError: the entry is not a quality model.
        """
        if spec.kind != "quality" or spec.input is None or spec.score is None:
            raise InvalidArgumentError(f"weights {spec.name!r} are a {spec.kind} model, not a quality model")
        return cls.from_blocks(
            spec.name, spec.input, spec.score, architecture=spec.architecture, layout=spec.layout, options=dict(spec.options)
        )

    @property
    def input(self) -> InputProtocol:
        """The manifest ``input`` block."""
        return InputProtocol(self.size, self.template, self.normalize, self.grid, self.extra)

    @property
    def score(self) -> ScoreSpec:
        """The manifest ``score`` block."""
        return ScoreSpec(self.raw_name, self.raw_range, self.mapping, self.higher_is_better, self.calibration)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
