"""The local store of weights: where registered files are, their checksums, imports, lookup.

The manifest (``pretrained/manifest.json``, schema in docs/ARCHITECTURE.md) lists every set
of weights with its file name, size, sha256, download URLs and the protocol of the model
that uses it. A file is looked up in this order:

1. an explicit path given by the caller;
2. ``$FACEIQA_HOME`` (default ``~/.cache/faceiqa``), directly in that folder;
3. the ``pretrained/`` folder: beside the package in a source or editable checkout, or
   ``<prefix>/share/faceiqa/pretrained`` for a wheel install;
4. a download into ``$FACEIQA_HOME`` on first use, unless ``FACEIQA_OFFLINE=1``
   (:mod:`faceiqa.hub.download`: each URL in turn, resumable, sha256-verified, atomically
   renamed into place; Google Drive links included).

Registered files found on disk are verified (size and sha256) before use; the result is
remembered per (path, size, modification time) for the life of the process. Nothing here
prints; progress bars go to stderr through tqdm and everything else to
``logging.getLogger("faceiqa.weights")``.

This module does not import torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from faceiqa._util import unknown_name_message
from faceiqa.errors import (
    ChecksumError,
    UnknownWeightsError,
    WeightsNotFoundError,
)
from faceiqa.hub.manifest import ENV_HOME, ENV_OFFLINE, WeightsSpec, load_manifest, pretrained_dirs

_CHUNK = 1 << 20

logger = logging.getLogger("faceiqa.weights")


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
    raise UnknownWeightsError(unknown_name_message("weights", name, manifest.names(), known="registered"))


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
    from faceiqa.hub.download import download_weights  # download imports this module

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
