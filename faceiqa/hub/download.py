"""Downloading registered weights: resumable, sha256-checked, atomically renamed; Google Drive aware.
"""

from __future__ import annotations

import hashlib
import html.parser
import http.client
import http.cookiejar
import logging
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import faceiqa
from faceiqa.errors import (
    ChecksumError,
    DownloadError,
    WeightsNotFoundError,
)
from faceiqa.hub.manifest import ENV_OFFLINE, WeightsSpec
from faceiqa.hub.store import _CHUNK, _candidates, _check_file, _missing_message, get_spec, offline, weights_home

logger = logging.getLogger("faceiqa.weights")

_TIMEOUT_S = 60.0
_DRIVE_HOSTS = ("drive.google.com", "docs.google.com", "drive.usercontent.google.com")


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
