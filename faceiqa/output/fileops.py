"""Copy, move or link files into an output folder without ever overwriting or losing one.

Guarantees:

- A destination that exists is never overwritten: the name gets a ``_1``, ``_2``, ...
  suffix. A name is taken only with a finished file, by a hard link that fails if the name
  exists (``link(2)``), so two runs writing into the same folder cannot take the same name
  and no empty placeholder or half-written file is ever visible under a final name.
- ``copy`` writes into a hidden temporary file beside the destination
  (``.NAME.faceiqa-PID-XXXXXXXX.part``, within NAME_MAX), flushes it to disk (fsync) and only
  then links it to its name. Temporary files of runs that died (their process is gone) are
  removed the next time a run writes into that folder.
- ``move`` hard-links the source to its new name and then unlinks the source when both are on
  one file system (a kill in between leaves one file under two names); otherwise it copies as
  above and deletes the source only after the copy is complete and flushed. If anything
  fails, the source stays where it was.
- A destination that already holds the same bytes (size and sha256) as the source is reused,
  not duplicated: rerunning the same filter adds nothing, and a move interrupted after its
  copy completes on the rerun.
- ``link`` creates a symbolic link to the source's absolute path (or, with
  ``relative_links``, a path relative to the link's folder, which survives moving both trees).
- After a ``move``, :meth:`Transferer.prune_empty_folders` removes the source folders that the
  move emptied (never the input folder itself, never a folder that still holds anything).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from faceiqa.errors import InvalidArgumentError

log = logging.getLogger(__name__)

_MAX_SUFFIX = 100_000


class TransferMode(str, Enum):
    COPY = "copy"
    MOVE = "move"
    LINK = "link"


@dataclass(frozen=True)
class Transfer:
    """What happened (or, in a dry run, would happen) to one file.

    Attributes:
        source: the file that was copied, moved or linked.
        destination: where it went (the name actually used, after collision suffixes).
        mode: copy, move or link.
        done: True when the operation completed (always False in a dry run).
        error: a one-line reason when the operation failed, else empty.
        reused: the destination already held the same bytes (an earlier run put them there),
            so nothing was written.
    """

    source: Path
    destination: Path
    mode: TransferMode
    done: bool
    error: str = ""
    reused: bool = False


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8 (undecodable name bytes kept as they are)."""
    raw = text.encode("utf-8", "surrogateescape")
    return text if len(raw) <= limit else raw[:limit].decode("utf-8", "ignore")


def _fit(name: str, room: int = 0) -> str:
    """``name`` with its stem shortened so that it stays within NAME_MAX (255 bytes) with ``room`` spare."""
    p = Path(name)
    suffix = p.suffix if len(p.suffix) < 32 else ""
    return _cut(p.stem if suffix else name, 255 - room - len(suffix.encode("utf-8", "surrogateescape"))) + suffix


def _candidates(dest: Path) -> Iterator[Path]:
    yield dest.with_name(_fit(dest.name))
    for i in range(1, _MAX_SUFFIX):
        tail = f"_{i}{dest.suffix}"
        yield dest.with_name(_cut(dest.stem, 255 - len(tail.encode("utf-8", "surrogateescape"))) + tail)


def _free_name(src: Path, dest: Path, taken: set[Path]) -> tuple[Path, bool]:
    """Dry runs: the name a transfer would take, or reuse (nothing is created)."""
    for cand in _candidates(dest):
        if cand in taken:
            continue
        if not os.path.lexists(cand):
            return cand, False
        if same_bytes(src, cand):
            return cand, True
    raise OSError(errno.EEXIST, f"no free name for {dest.name}")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_PART = re.compile(r"\.faceiqa-(\d+)-[^.]+\.part$")


def _temp_prefix(final: Path) -> str:
    return f".{_fit(final.name, 40)}.faceiqa-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: someone else's live process
        return True
    return True


def remove_stale_parts(folder: Path) -> list[Path]:
    """Remove the temporary files in ``folder`` left by faceiqa runs whose process is gone."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _PART.search(entry.name)
        if m and entry.name.startswith(".") and entry.is_file(follow_symlinks=False) and not _pid_alive(int(m.group(1))):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    if removed:
        log.info("removed %d stale partial file(s) of interrupted runs in %s", len(removed), folder)
    return removed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def same_bytes(a: Path, b: Path) -> bool:
    """True when ``b`` is a regular file (not a link) with the size and sha256 of ``a``."""
    try:
        sb = os.lstat(b)
        if not stat.S_ISREG(sb.st_mode) or sb.st_size != os.stat(a).st_size:
            return False
        return os.path.samefile(a, b) or _sha256(a) == _sha256(b)
    except OSError:
        return False


def _take_name(write: Path | None, src: Path, dest: Path, taken: set[Path], *, hard_link_source: bool) -> tuple[Path, bool]:
    """Give a finished file the first free candidate name, or reuse one holding the same bytes.

    ``write`` is the finished temporary file (copy), or None to hard-link ``src`` itself
    (same-file-system move). Returns (name, reused).
    """
    for cand in _candidates(dest):
        if cand in taken:
            continue
        if os.path.lexists(cand):
            if same_bytes(src, cand):
                return cand, True
            continue
        try:
            os.link(src if hard_link_source else write, cand)
        except FileExistsError:
            if same_bytes(src, cand):
                return cand, True
            continue
        return cand, False
    raise OSError(errno.EEXIST, f"no free name for {dest.name}")


def _copy_to_temp(src: Path, final: Path) -> Path:
    """Copy src's bytes and times into a hidden temporary file beside ``final``, flushed to disk."""
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(final), suffix=".part", dir=final.parent)
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, length=1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        try:
            shutil.copystat(src, tmp)
        except OSError as exc:  # e.g. a file system without permission bits: the bytes are what matter
            log.debug("could not copy times/permissions of %s: %s", src, exc)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class Transferer:
    """Copies, moves or links files under an output folder, mirroring their sub-folders.

    Args:
        out_dir: the output folder (created on demand).
        mode: copy, move or link.
        dry_run: compute destinations only; touch nothing.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        mode: TransferMode | str = TransferMode.COPY,
        *,
        dry_run: bool = False,
        relative_links: bool = False,
    ):
        try:
            self.mode = TransferMode(mode)
        except ValueError:
            raise InvalidArgumentError(f"mode must be copy, move or link, got {mode!r}") from None
        self.out_dir = Path(out_dir)
        self.dry_run = dry_run
        self._planned: set[Path] = set()
        self._cleaned: set[Path] = set()
        self._emptied: set[Path] = set()
        self.relative_links = relative_links

    def destination_for(self, source: Path, root: Path | None) -> Path:
        """Where ``source`` goes: its path relative to ``root`` under the output folder."""
        source = Path(source)
        rel: Path
        if root is not None:
            try:
                rel = source.absolute().relative_to(Path(root).absolute())
            except ValueError:
                rel = Path(source.name)
        else:
            rel = Path(source.name)
        return self.out_dir / rel

    def transfer(self, source: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Transfer:
        """Copy, move or link one file. Never raises for I/O problems: see ``Transfer.error``."""
        src = Path(source)
        dest = self.destination_for(src, Path(root) if root is not None else None)
        if self.dry_run:
            try:
                final, reused = _free_name(src, dest, self._planned)
            except OSError as exc:
                return Transfer(src, dest, self.mode, False, _reason(exc))
            self._planned.add(final)
            return Transfer(src, final, self.mode, False, reused=reused)
        if not src.is_file():
            return Transfer(src, dest, self.mode, False, "source is not a regular file")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.parent not in self._cleaned:
                self._cleaned.add(dest.parent)
                remove_stale_parts(dest.parent)
            if self.mode is TransferMode.LINK:
                return self._link(src, dest)
        except OSError as exc:
            return Transfer(src, dest, self.mode, False, f"cannot write to {dest.parent}: {_reason(exc)}")
        final, reused = dest, False
        try:
            if self.mode is TransferMode.MOVE:
                try:
                    final, reused = _take_name(None, src, dest, self._planned, hard_link_source=True)
                    self._planned.add(final)
                    _fsync_dir(final.parent)
                    return self._remove_source(src, final, reused)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
                        raise
            tmp = _copy_to_temp(src, dest)
            try:
                final, reused = _take_name(tmp, src, dest, self._planned, hard_link_source=False)
            finally:
                tmp.unlink(missing_ok=True)
            self._planned.add(final)
            _fsync_dir(final.parent)
        except OSError as exc:
            return Transfer(src, final, self.mode, False, _reason(exc))
        if self.mode is TransferMode.MOVE:
            return self._remove_source(src, final, reused)
        return Transfer(src, final, self.mode, True, reused=reused)

    def _remove_source(self, src: Path, final: Path, reused: bool) -> Transfer:
        """The last step of a move: the source goes once its bytes are safe under ``final``."""
        try:
            src.unlink()
        except OSError as exc:
            return Transfer(src, final, self.mode, False, f"copied, but the source could not be removed: {_reason(exc)}")
        self._emptied.add(src.parent)
        return Transfer(src, final, self.mode, True, reused=reused)

    def prune_empty_folders(self, root: str | os.PathLike[str]) -> list[Path]:
        """Remove the folders under ``root`` that moves emptied, deepest first; returns them.

        ``root`` itself stays, and so does any folder that still holds a file or folder
        (``os.rmdir`` only removes empty ones, so nothing of the user's is lost).
        """
        base = Path(os.path.abspath(root))
        removed: list[Path] = []
        todo = {Path(os.path.abspath(d)) for d in self._emptied}
        while todo:
            folder = max(todo, key=lambda d: len(d.parts))
            todo.discard(folder)
            if folder == base or base not in folder.parents:
                continue
            try:
                folder.rmdir()
            except OSError:
                continue
            removed.append(folder)
            todo.add(folder.parent)
        return removed

    def _link(self, src: Path, dest: Path) -> Transfer:
        target = Path(os.path.relpath(src.absolute(), dest.parent.absolute())) if self.relative_links else src.absolute()
        for cand in _candidates(dest):
            if cand in self._planned:
                continue
            try:
                os.symlink(target, cand)
            except FileExistsError:
                continue
            self._planned.add(cand)
            return Transfer(src, cand, self.mode, True)
        return Transfer(src, dest, self.mode, False, f"no free name for {dest.name}")
