"""Downloading registered weights into ``$FACEIQA_HOME``: a thin layer over gdown.

gdown (a kept library) does the transfer: plain HTTP(S) and Google Drive links (its
"can't scan this file for viruses" confirmation included), a progress callback, resuming
an interrupted transfer from its partial file (HTTP ``Range``, checked against
``Content-Range``) and retries. This module adds what the registry promises: the size
cap, the sha256 check before a file is published, an atomic rename into place, one
downloader per file at a time, ``FACEIQA_OFFLINE`` and messages that say where to put the
file by hand. Nothing here prints except the tqdm bar on stderr.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from faceiqa._util import one_line
from faceiqa.errors import ChecksumError, DownloadError, WeightsNotFoundError
from faceiqa.hub.manifest import ENV_OFFLINE, WeightsSpec
from faceiqa.hub.store import _candidates, _check_file, _missing_message, get_spec, offline, sha256_file, weights_home

logger = logging.getLogger("faceiqa.weights")

#: Seconds to wait for the server between bytes.
TIMEOUT_S = 60.0
#: Extra attempts per URL after a transient network failure (each resumes the transfer).
RETRIES = 2


def staging_path(spec: WeightsSpec) -> Path:
    """Where a download of ``spec`` lands before its checksum is known to be right.

    gdown keeps an interrupted transfer beside it as ``<file>.download<8 characters>.part``
    and resumes from that on the next run.
    """
    return weights_home() / (spec.file + ".download")


def partial_files(spec: WeightsSpec) -> list[Path]:
    """Partial transfers of ``spec`` left by an interrupted download (at most one normally)."""
    stage = staging_path(spec)
    if not stage.parent.is_dir():
        return []
    return sorted(p for p in stage.parent.glob(stage.name + "*.part") if len(p.name) == len(stage.name) + 13)


@contextmanager
def _exclusive(spec: WeightsSpec) -> Iterator[None]:
    """One downloader of ``spec`` at a time (an advisory lock beside the file)."""
    lock_path = weights_home() / f".{spec.file}.lock"
    with open(lock_path, "a+b") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; concurrent downloads are the user's risk
            yield
            return
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DownloadError(f"{spec.file} is being downloaded by another process; wait for it to finish") from None
        yield


def _fetch(url: str, stage: Path, spec: WeightsSpec, progress: bool) -> str:
    """Download ``url`` to ``stage`` (resuming a partial transfer); returns the sha256 of its bytes."""
    import gdown  # imported lazily: only downloads need it (and requests behind it)

    hasher = hashlib.sha256()
    with tqdm(total=spec.size, unit="B", unit_scale=True, unit_divisor=1024, desc=spec.file,
              disable=not progress, file=sys.stderr, leave=False) as bar:

        def on_chunk(done: int, total: int | None) -> None:
            if done > spec.size:
                raise DownloadError(f"the server sent more than the expected {spec.size} bytes")
            bar.update(done - bar.n)

        gdown.download(
            url, str(stage), quiet=True, resume=True, use_cookies=False, progress=on_chunk, hasher=hasher,
            timeout=TIMEOUT_S, retries=RETRIES, user_agent=f"faceiqa (gdown {gdown.__version__})",
        )
    return hasher.hexdigest()


def _fetch_resuming(url: str, stage: Path, spec: WeightsSpec, progress: bool) -> str:
    """:func:`_fetch`, and once more from scratch when resuming an earlier partial file failed
    (a server that ignores ``Range``, or a partial file of other bytes), so that a stale
    partial file never blocks a download for good."""
    if not partial_files(spec):
        return _fetch(url, stage, spec, progress)
    try:
        return _fetch(url, stage, spec, progress)
    except DownloadError:
        raise  # ours (e.g. the size cap): starting over would not help
    except Exception as exc:  # noqa: BLE001 - see download_weights
        logger.info("resuming %s failed (%s); starting over", spec.file, one_line(exc))
        for part in partial_files(spec):
            part.unlink(missing_ok=True)
        return _fetch(url, stage, spec, progress)


def download_weights(name: str, *, progress: bool = True, force: bool = False) -> Path:
    """Download ``name`` into ``$FACEIQA_HOME`` unless a verified local copy exists (then return that).

    A copy in ``$FACEIQA_HOME`` that fails verification is replaced once the new download
    has been verified. An interrupted download leaves a partial file that the next call
    resumes from; a download whose sha256 is wrong leaves nothing behind.

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
    home = weights_home()
    home.mkdir(parents=True, exist_ok=True)
    dest, stage = home / spec.file, staging_path(spec)
    failures: list[str] = []
    with _exclusive(spec):
        for url in spec.urls:
            stage.unlink(missing_ok=True)  # only a file whose checksum was right is ever published
            try:
                digest = _fetch_resuming(url, stage, spec, progress)
            except Exception as exc:  # noqa: BLE001 - network libraries raise many types; each URL is one attempt
                kept = " (the partial file is kept; rerun to resume)" if partial_files(spec) else ""
                failures.append(f"{url}: {one_line(exc, 200)}{kept}")
                logger.info("download of %s from %s failed: %s", spec.file, url, one_line(exc))  # the error lists them all
                continue
            if digest != spec.sha256 or stage.stat().st_size != spec.size:
                digest = sha256_file(stage) if digest == spec.sha256 else digest
                failures.append(f"{url}: sha256 {digest} does not match")
                logger.info("download of %s from %s has the wrong sha256; discarded", spec.file, url)
                stage.unlink(missing_ok=True)
                continue
            os.replace(stage, dest)
            _check_file(dest, spec)  # hashes once more and records (path, size, mtime) as verified
            logger.info("downloaded %s -> %s", spec.name, dest)
            return dest
    raise DownloadError(_missing_message(spec, f"download failed ({'; '.join(failures)})", list_sources=False))
