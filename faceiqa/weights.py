"""The weights registry: which weights exist, where their files are, and getting them.

The manifest (``pretrained/manifest.json``, schema in docs/ARCHITECTURE.md) lists every set
of weights with its file name, size, sha256, download URLs and the protocol of the model
that uses it. A file is looked up in this order:

1. an explicit path given by the caller;
2. ``$FACEIQA_HOME`` (default ``~/.cache/faceiqa``), directly in that folder;
3. the ``pretrained/`` folder: beside the package in a source or editable checkout, or
   ``<prefix>/share/faceiqa/pretrained`` for a wheel install;
4. a download into ``$FACEIQA_HOME`` on first use, unless ``FACEIQA_OFFLINE=1``: each URL in
   turn, with a progress bar on stderr, resumable (a ``.part`` file and HTTP ``Range``),
   sha256-verified and atomically renamed into place. Google Drive links are followed
   through Drive's "can't scan this file for viruses" confirmation page.

Registered files found on disk are verified (size and sha256) before use; the result is
remembered per (path, size, modification time) for the life of the process. Nothing here
prints; progress bars go to stderr through tqdm and everything else to
``logging.getLogger("faceiqa.weights")``.

This module does not import torch.
"""

from __future__ import annotations

import difflib
import hashlib
import html.parser
import http.client
import http.cookiejar
import json
import logging
import math
import os
import re
import shutil
import site
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

import faceiqa
from faceiqa.errors import (
    ChecksumError,
    DownloadError,
    InvalidArgumentError,
    UnknownWeightsError,
    WeightsError,
    WeightsNotFoundError,
)

logger = logging.getLogger("faceiqa.weights")

#: Manifest format this code reads.
MANIFEST_FORMAT = 1
#: Environment variables.
ENV_HOME = "FACEIQA_HOME"
ENV_OFFLINE = "FACEIQA_OFFLINE"
ENV_MANIFEST = "FACEIQA_MANIFEST"

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
_DRIVE_HOSTS = ("drive.google.com", "docs.google.com", "drive.usercontent.google.com")
_WEIGHT_KINDS = ("quality", "recognizer")


# --------------------------------------------------------------------------- schema


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
        template: name of the face alignment template (:mod:`faceiqa.alignment`).
        normalize: pixel normalisation inside the scorer (``"imagenet"``: mean
            0.485/0.456/0.406, std 0.229/0.224/0.225 on [0, 1] RGB; ``"dlib"``: minus
            122.782/117.001/104.298 on 0..255 RGB, divided by 255).
        grid: K of the K x K crop grid for whole images (see ``QualityScorer.score_image``).
        extra: names of per-face values the model takes besides the crop, in order (e.g.
            ``log2_resolution``, see ``faceiqa.pipeline.FACE_FEATURES``).
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
    if (checkout / "setup.cfg").is_file():  # a source or editable checkout, not site-packages
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


# --------------------------------------------------------------------------- lookup


def weights_home() -> Path:
    """``$FACEIQA_HOME`` or ``~/.cache/faceiqa``: where downloads and imports go."""
    env = os.environ.get(ENV_HOME)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "faceiqa"


def offline() -> bool:
    """True when ``FACEIQA_OFFLINE`` is set to 1/true/yes/on: no downloads."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")


def list_weights() -> list[WeightsSpec]:
    """Every registered set of weights, in manifest order."""
    return list(load_manifest().weights)


def default_name() -> str | None:
    """The manifest's default weights name (None while no default is set)."""
    return load_manifest().default


def get_spec(name: str) -> WeightsSpec:
    """The manifest entry called ``name``.

    Raises:
        UnknownWeightsError: not registered (with a "did you mean" suggestion).
    """
    manifest = load_manifest()
    for spec in manifest.weights:
        if spec.name == name:
            return spec
    names = manifest.names()
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    known = ", ".join(names) or "none"
    raise UnknownWeightsError(f"unknown weights {name!r}{hint} (registered: {known})")


def _candidates(spec: WeightsSpec) -> list[Path]:
    return [weights_home() / spec.file] + [d / spec.file for d in pretrained_dirs()]


def find_local(name: str) -> list[Path]:
    """Existing local files for ``name`` in lookup order (not verified); empty if none."""
    return [p for p in _candidates(get_spec(name)) if p.is_file()]


def sha256_file(path: str | Path) -> str:
    """Lowercase hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


_verified_lock = threading.Lock()
_verified: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _verified_lock:
        if key in _verified:
            return _verified[key]
    digest = sha256_file(path)
    with _verified_lock:
        _verified[key] = digest
    return digest


def _check_file(path: Path, spec: WeightsSpec, *, use_cache: bool = True) -> None:
    size = path.stat().st_size
    if size != spec.size:
        raise ChecksumError(
            f"{path}: {size} bytes, but {spec.name} ({spec.file}) has {spec.size}; "
            f"delete it or run `faceiqa weights download {spec.name}` to replace it"
        )
    digest = _cached_sha256(path) if use_cache else sha256_file(path)
    if not use_cache:
        st = path.stat()
        with _verified_lock:
            _verified[(str(path.resolve()), st.st_size, st.st_mtime_ns)] = digest
    if digest != spec.sha256:
        raise ChecksumError(
            f"{path}: sha256 {digest} does not match {spec.name}'s {spec.sha256}; "
            f"delete it or run `faceiqa weights download {spec.name}` to replace it"
        )


def _missing_message(spec: WeightsSpec, reason: str, *, list_sources: bool = True) -> str:
    sources = ""
    if list_sources:
        sources = f" Sources: {' '.join(spec.urls) if spec.urls else 'none registered'}."
    return (
        f"weights {spec.name!r} not found: {spec.file} ({spec.size} bytes, sha256 {spec.sha256}); {reason}.{sources} "
        f"Put the file at {weights_home() / spec.file} (or run `faceiqa weights import {spec.name} PATH`)"
    )


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or (os.altsep is not None and os.altsep in text) or bool(Path(text).suffix)


def resolve(name_or_path: str | Path, *, download: bool = True, progress: bool = True) -> Path:
    """Find a weights file, downloading a registered one on first use.

    Args:
        name_or_path: a registry name, or a path to a file (a :class:`~pathlib.Path` is always
            a path; a string is a registry name if registered, else a path).
        download: allow a download when no local copy exists (also needs FACEIQA_OFFLINE unset).
        progress: show a download progress bar on stderr.

    Returns:
        Path of an existing file; registered files are size- and sha256-verified.

    Raises:
        UnknownWeightsError: neither registered nor an existing file.
        WeightsNotFoundError: no local copy and downloads are off, or no such path.
        ChecksumError: a local copy of a registered file is corrupt.
        DownloadError: every download source failed.
    """
    if isinstance(name_or_path, Path):
        return _explicit_path(name_or_path)
    text = str(name_or_path)
    manifest = load_manifest()
    if text not in manifest.names():
        candidate = Path(text).expanduser()
        if candidate.is_file() or _looks_like_path(text):
            return _explicit_path(candidate)
    spec = get_spec(text)
    for path in _candidates(spec):
        if path.is_file():
            _check_file(path, spec)
            logger.debug("weights %s: %s", spec.name, path)
            return path
    if not download:
        raise WeightsNotFoundError(_missing_message(spec, "downloads were not allowed"))
    return download_weights(spec.name, progress=progress)


def _explicit_path(path: Path) -> Path:
    path = path.expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}")
    return path


def matching_specs(path: str | Path) -> list[WeightsSpec]:
    """Registered entries whose size and sha256 equal this file's (usually 0 or 1)."""
    path = Path(path)
    size = path.stat().st_size
    same_size = [s for s in list_weights() if s.size == size]
    if not same_size:
        return []
    digest = _cached_sha256(path)
    return [s for s in same_size if s.sha256 == digest]


def verify(name: str) -> Path:
    """Re-check the local copy of ``name`` (the one :func:`resolve` would use): size and sha256.

    Returns:
        The verified path.

    Raises:
        WeightsNotFoundError: no local copy.
        ChecksumError: size or sha256 differs.
    """
    spec = get_spec(name)
    for path in _candidates(spec):
        if path.is_file():
            _check_file(path, spec, use_cache=False)
            return path
    raise WeightsNotFoundError(_missing_message(spec, "no local copy"))


def import_weights(name: str, src_path: str | Path) -> Path:
    """Copy a user's file for ``name`` into ``$FACEIQA_HOME`` after verifying it.

    The source is only read, never moved or deleted. The copy is hashed as it is written and
    renamed into place only if it matches.

    Returns:
        The installed path.

    Raises:
        WeightsNotFoundError: ``src_path`` does not exist.
        ChecksumError: the file is not the registered one.
    """
    spec = get_spec(name)
    src = Path(src_path).expanduser()
    if not src.is_file():
        raise WeightsNotFoundError(f"file to import not found: {src}")
    size = src.stat().st_size
    if size != spec.size:
        raise ChecksumError(f"{src}: {size} bytes, but {spec.name} ({spec.file}) has {spec.size}; not imported")
    home = weights_home()
    dest = home / spec.file
    if dest.is_file() and dest.resolve() == src.resolve():
        _check_file(dest, spec, use_cache=False)
        return dest
    home.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.file}.", suffix=".import", dir=home)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                digest.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        if digest.hexdigest() != spec.sha256:
            raise ChecksumError(
                f"{src}: sha256 {digest.hexdigest()} does not match {spec.name}'s {spec.sha256}; not imported"
            )
        shutil.copystat(src, tmp)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    _check_file(dest, spec)  # records the verified (path, size, mtime) in the cache
    logger.info("imported %s -> %s", src, dest)
    return dest


# --------------------------------------------------------------------------- download


class _DriveFormParser(html.parser.HTMLParser):
    """Collects the download form (action and hidden inputs) of Drive's confirmation page."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.action and "download" in (a.get("id", "") + a.get("action", "")):
            self.action = a.get("action", "")
            self._in_form = True
        elif tag == "input" and self._in_form and a.get("type") == "hidden" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def _is_drive(url: str) -> bool:
    return urllib.parse.urlsplit(url).hostname in _DRIVE_HOSTS


def drive_direct_url(url: str) -> str:
    """Turn a Drive share link (``/file/d/<id>/view``, ``open?id=<id>``) into its download URL."""
    parts = urllib.parse.urlsplit(url)
    m = re.search(r"/file/d/([\w-]+)", parts.path)
    file_id = m.group(1) if m else urllib.parse.parse_qs(parts.query).get("id", [""])[0]
    if not file_id:
        return url
    if parts.path.rstrip("/") in ("/uc", "/download"):
        return url
    return f"{parts.scheme}://{parts.netloc}/uc?export=download&id={file_id}"


def drive_confirm_url(page: str, page_url: str, cookies: Iterable[http.cookiejar.Cookie] = ()) -> str:
    """The URL that confirms a Drive download, from the "can't scan for viruses" page.

    Handles the current form-based page (``<form id="download-form" action=...>`` with hidden
    ``id``/``export``/``confirm``/``uuid`` inputs) and the older ``confirm=<token>`` link or
    ``download_warning`` cookie.

    Raises:
        DownloadError: the page holds no confirmation (quota exceeded, no access, link changed).
    """
    parser = _DriveFormParser()
    parser.feed(page)
    if parser.action:
        action = urllib.parse.urljoin(page_url, parser.action)
        return action + ("&" if "?" in action else "?") + urllib.parse.urlencode(parser.fields)
    m = re.search(r"confirm=([\w-]+)", page)
    token = m.group(1) if m else next((c.value for c in cookies if c.name.startswith("download_warning")), "")
    if token:
        return page_url + ("&" if "?" in page_url else "?") + f"confirm={token}"
    title = re.search(r"<title>(.*?)</title>", page, re.S | re.I)
    what = f" ({title.group(1).strip()[:80]})" if title else ""
    raise DownloadError(f"Google Drive returned a web page instead of the file{what}: quota exceeded or no access")


def _is_html(response: Any) -> bool:
    return response.headers.get_content_type() in ("text/html", "application/xhtml+xml")


class _Downloader:
    """Fetches one URL into an open ``.part`` file, resuming from its current length."""

    def __init__(self, spec: WeightsSpec, part: IO[bytes], progress: bool) -> None:
        self.spec = spec
        self.part = part
        self.progress = progress
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def _open(self, url: str, start: int) -> Any:
        request = urllib.request.Request(url, headers={"User-Agent": f"faceiqa/{faceiqa.__version__}"})
        if start:
            request.add_header("Range", f"bytes={start}-")
        return self.opener.open(request, timeout=_TIMEOUT_S)

    def _length(self) -> int:
        self.part.seek(0, os.SEEK_END)
        return self.part.tell()

    def _restart(self) -> None:
        self.part.seek(0)
        self.part.truncate()

    def fetch(self, url: str) -> None:
        have = self._length()
        if have > self.spec.size:
            self._restart()
            have = 0
        if have == self.spec.size:
            return
        drive = _is_drive(url)
        url = drive_direct_url(url) if drive else url
        try:
            response = self._open(url, have)
        except urllib.error.HTTPError as exc:
            if exc.code != 416 or not have:
                raise
            self._restart()  # the partial file does not fit this server's file: start over
            have = 0
            response = self._open(url, 0)
        try:
            if _is_html(response):
                if not drive:
                    raise DownloadError("the server sent a web page, not the file")
                page = response.read(1 << 20).decode("utf-8", "replace")
                confirm = drive_confirm_url(page, response.geturl(), self.cookies)
                response.close()
                response = self._open(confirm, have)
                if _is_html(response):
                    raise DownloadError("Google Drive did not release the file after confirmation")
            self._copy(response, have)
        finally:
            response.close()

    def _copy(self, response: Any, have: int) -> None:
        status = getattr(response, "status", 200)
        if have and status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {have}-"):
                raise DownloadError(f"server resumed at the wrong offset ({content_range or 'no Content-Range'})")
            logger.info("resuming %s at byte %d", self.spec.file, have)
        elif status == 200:
            if have:
                logger.info("server ignored the range request; downloading %s from the start", self.spec.file)
            self._restart()
            have = 0
        else:
            raise DownloadError(f"unexpected HTTP status {status}")
        self.part.seek(have)
        from tqdm import tqdm  # imported lazily: only downloads need it

        with tqdm(
            total=self.spec.size,
            initial=have,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=self.spec.file,
            disable=not self.progress,
            file=sys.stderr,
            leave=False,
        ) as bar:
            while chunk := response.read(_CHUNK):
                have += len(chunk)
                if have > self.spec.size:
                    raise DownloadError(f"the server sent more than the expected {self.spec.size} bytes")
                self.part.write(chunk)
                bar.update(len(chunk))
        self.part.flush()
        if have != self.spec.size:
            raise DownloadError(f"connection closed after {have} of {self.spec.size} bytes (rerun to resume)")


def _lock(f: IO[bytes], part: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; concurrent downloads are the user's risk
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise DownloadError(f"{part} is being written by another process; wait for it to finish") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"{exc.reason}"
    return str(exc) or exc.__class__.__name__


def download_weights(name: str, *, progress: bool = True, force: bool = False) -> Path:
    """Download ``name`` into ``$FACEIQA_HOME`` unless a verified local copy exists (then return that).

    A copy in ``$FACEIQA_HOME`` that fails verification is replaced once the new download
    has been verified. An interrupted download leaves ``<file>.part`` to resume from.

    Args:
        progress: tqdm progress bar on stderr.
        force: download even if a valid local copy exists.

    Returns:
        Path of the verified file.

    Raises:
        WeightsNotFoundError: downloads are disabled (FACEIQA_OFFLINE) or no URL is registered.
        DownloadError: every URL failed (the message lists each failure).
    """
    spec = get_spec(name)
    home = weights_home()
    dest = home / spec.file
    if not force:
        for path in _candidates(spec):
            if path.is_file():
                try:
                    _check_file(path, spec)
                    return path
                except ChecksumError as exc:
                    logger.warning("%s; downloading a fresh copy", exc)
    if offline():
        raise WeightsNotFoundError(_missing_message(spec, f"downloads are disabled ({ENV_OFFLINE}=1)"))
    if not spec.urls:
        raise WeightsNotFoundError(_missing_message(spec, "no download source is registered"))
    home.mkdir(parents=True, exist_ok=True)
    part = home / (spec.file + ".part")
    failures: list[str] = []
    done = False
    with open(part, "a+b") as f:
        _lock(f, part)
        for url in spec.urls:
            try:
                _Downloader(spec, f, progress).fetch(url)
            except (OSError, http.client.HTTPException, DownloadError, ValueError) as exc:
                # URLError, HTTPError and timeouts are OSErrors; the .part is kept for a resume.
                failures.append(f"{url}: {_reason(exc)}")
                logger.warning("download of %s from %s failed: %s", spec.file, url, _reason(exc))
                continue
            f.flush()
            os.fsync(f.fileno())
            f.seek(0)
            digest = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
            if digest.hexdigest() == spec.sha256:
                done = True
                break
            failures.append(f"{url}: sha256 {digest.hexdigest()} does not match")
            logger.warning("download of %s from %s has the wrong sha256; discarded", spec.file, url)
            f.seek(0)
            f.truncate()
        partial = f.seek(0, os.SEEK_END)
    if not done:
        if partial == 0:
            part.unlink(missing_ok=True)
        raise DownloadError(_missing_message(spec, f"download failed ({'; '.join(failures)})", list_sources=False))
    os.replace(part, dest)
    _check_file(dest, spec)  # cheap now: records (path, size, mtime) as verified
    logger.info("downloaded %s -> %s", spec.name, dest)
    return dest


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
