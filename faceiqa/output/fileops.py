"""Copy, move or link files into an output folder without ever overwriting or losing one.

Guarantees:

- A destination that exists is never overwritten: the name gets a ``_1``, ``_2``, ...
  suffix. Names are reserved atomically (``O_CREAT | O_EXCL``), so two runs writing into
  the same folder cannot take the same name.
- ``copy`` writes into a hidden temporary file, flushes it to disk (fsync) and only then
  renames it onto its reserved name: an interrupted copy leaves no half-written file
  under the final name.
- ``move`` renames when source and destination share a file system (atomic); otherwise
  it copies as above and deletes the source only after the copy is complete and flushed.
  If anything fails, the source stays where it was.
- ``link`` creates a symbolic link to the source's absolute path.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
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
    """

    source: Path
    destination: Path
    mode: TransferMode
    done: bool
    error: str = ""


def _candidates(dest: Path) -> Iterator[Path]:
    yield dest
    for i in range(1, _MAX_SUFFIX):
        yield dest.with_name(f"{dest.stem}_{i}{dest.suffix}")


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


def _reserve(dest: Path, taken: set[Path]) -> Path:
    """Create an empty placeholder under the first free candidate name and return it."""
    for cand in _candidates(dest):
        if cand in taken:
            continue
        try:
            fd = os.open(cand, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return cand
    raise OSError(errno.EEXIST, f"no free name for {dest.name}")


def _free_name(dest: Path, taken: set[Path]) -> Path:
    """The first candidate name that does not exist (dry runs; nothing is created)."""
    for cand in _candidates(dest):
        if cand not in taken and not os.path.lexists(cand):
            return cand
    raise OSError(errno.EEXIST, f"no free name for {dest.name}")


def _copy_into(src: Path, final: Path) -> None:
    """Copy src's bytes and times into a temp file beside ``final``, fsync, rename onto it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, length=1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        try:
            shutil.copystat(src, tmp)
        except OSError as exc:  # e.g. a file system without permission bits: the bytes are what matter
            log.debug("could not copy times/permissions of %s: %s", src, exc)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class Transferer:
    """Copies, moves or links files under an output folder, mirroring their sub-folders.

    Args:
        out_dir: the output folder (created on demand).
        mode: copy, move or link.
        dry_run: compute destinations only; touch nothing.
    """

    def __init__(self, out_dir: str | os.PathLike[str], mode: TransferMode | str = TransferMode.COPY, *, dry_run: bool = False):
        try:
            self.mode = TransferMode(mode)
        except ValueError:
            raise InvalidArgumentError(f"mode must be copy, move or link, got {mode!r}") from None
        self.out_dir = Path(out_dir)
        self.dry_run = dry_run
        self._planned: set[Path] = set()

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
                final = _free_name(dest, self._planned)
            except OSError as exc:
                return Transfer(src, dest, self.mode, False, _reason(exc))
            self._planned.add(final)
            return Transfer(src, final, self.mode, False)
        if not src.is_file():
            return Transfer(src, dest, self.mode, False, "source is not a regular file")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if self.mode is TransferMode.LINK:
                return self._link(src, dest)
            final = _reserve(dest, self._planned)
        except OSError as exc:
            return Transfer(src, dest, self.mode, False, f"cannot write to {dest.parent}: {_reason(exc)}")
        self._planned.add(final)
        try:
            if self.mode is TransferMode.MOVE:
                try:
                    os.replace(src, final)  # same file system: atomic; the placeholder is ours
                    _fsync_dir(final.parent)
                    return Transfer(src, final, self.mode, True)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
            _copy_into(src, final)
        except OSError as exc:
            final.unlink(missing_ok=True)  # our placeholder (or our incomplete copy): never the user's file
            return Transfer(src, final, self.mode, False, _reason(exc))
        if self.mode is TransferMode.MOVE:
            try:
                src.unlink()
            except OSError as exc:
                return Transfer(src, final, self.mode, False, f"copied, but the source could not be removed: {_reason(exc)}")
        return Transfer(src, final, self.mode, True)

    def _link(self, src: Path, dest: Path) -> Transfer:
        target = src.absolute()
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
