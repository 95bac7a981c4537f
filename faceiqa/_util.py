"""Small helpers every layer uses: argument checks, the device, atomic file writes, name registries.

Nothing here imports torch at module level, so the torch-free layers (the weights hub, reports)
can use it.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, TypeVar

from faceiqa.errors import InvalidArgumentError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

__all__ = [
    "Registry",
    "UnknownNameError",
    "atomic_path",
    "atomic_write",
    "box_iou",
    "check_int",
    "check_number",
    "lazy_getattr",
    "new_file_mode",
    "one_line",
    "pick_device",
    "publish",
    "temp_name_for",
]


# --------------------------------------------------------------------------- checks


def check_int(value: Any, name: str, minimum: int | None = 1, maximum: int | None = None) -> int:
    """``value`` as an int, or a one-line :class:`InvalidArgumentError`.

    Accepts Python and NumPy integers (not bools, not floats with a fraction).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise InvalidArgumentError(f"{name} must be an integer {minimum}..{maximum}, got {value}")
    if minimum is not None and value < minimum:
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidArgumentError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_number(value: Any, name: str, low: float | None = None, high: float | None = None) -> float:
    """``value`` as a finite float in [low, high] (either bound optional), or an :class:`InvalidArgumentError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise InvalidArgumentError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise InvalidArgumentError(f"{name} must be in [{lo}, {hi}], got {value:g}")
    return value


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """An exception (or text) as one line: ``Type: message`` collapsed to single spaces, cut at ``limit``."""
    if isinstance(exc, BaseException):
        text = " ".join(str(exc).split())
        text = text or type(exc).__name__
    else:
        text = " ".join(exc.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def box_iou(a: Any, b: Any) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes (0 when either is empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# --------------------------------------------------------------------------- device


def pick_device(device: Any = None) -> torch.device:
    """A :class:`torch.device`: the given one, else CUDA when available, else the CPU.

    Raises:
        InvalidArgumentError: not a device name, or CUDA asked for where there is none.
    """
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidArgumentError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidArgumentError(f"device {device!r}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidArgumentError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


# --------------------------------------------------------------------------- files


def _read_umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return _IMPORT_UMASK


def _umask_once() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read at import, before any worker thread creates files (setting the umask is process-wide).
_IMPORT_UMASK = _umask_once()


def new_file_mode() -> int:
    """The permission bits ``open(path, "w")`` would give a new file (0o666 less the umask).

    Linux shows the umask in /proc; elsewhere it was read once, at import.
    """
    return 0o666 & ~_read_umask()


def publish(tmp: Path, path: Path, *, replace: bool) -> None:
    """Give the finished file ``tmp`` the name ``path``, atomically.

    ``replace=True`` renames over whatever ``path`` is (a symbolic link is replaced, never
    written through); ``replace=False`` links the name only if nothing has it yet (a second
    writer gets :class:`FileExistsError`, and nobody ever sees a torn file). On success
    ``tmp`` is gone; on an error it is left for the caller.
    """
    if replace:
        os.replace(tmp, path)
        return
    os.link(tmp, path)
    tmp.unlink()


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, replace: bool = True) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write; it becomes ``path`` when the block succeeds.

    The file is flushed to disk and given ordinary permissions (umask) before it is
    published with :func:`publish`; on an error it is removed and ``path`` is untouched. Use
    for writers that take a path (``torch.save``, ``np.savez``, ``onnx.save``).

    Raises:
        FileExistsError: ``replace=False`` and ``path`` exists (it is left as it was).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{_short(path.name)}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, new_file_mode())  # mkstemp makes 0o600 files
        publish(tmp, path, replace=replace)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _short(name: str, room: int = 40) -> str:
    """``name`` cut so that a temporary name made from it stays within NAME_MAX (255 bytes)."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= 255 - room:
        return name
    return raw[: 255 - room].decode("utf-8", "ignore")


def temp_name_for(path: Path, suffix: str) -> str:
    """A hidden sibling name prefix for ``path`` that fits NAME_MAX with ``suffix`` and mkstemp's 8 characters."""
    return f".{_short(path.name, 12 + len(suffix))}."


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[Any]], Any], *, binary: bool = False, replace: bool = True
) -> Path:
    """Write a file through ``write(fh)`` so that readers see the old file or the whole new one.

    Text files are UTF-8 with ``newline=""`` (the csv module's convention). ``replace``: see
    :func:`publish`.
    """
    with atomic_path(path, replace=replace) as tmp:
        mode, kw = ("wb", {}) if binary else ("w", {"newline": "", "encoding": "utf-8"})
        with open(tmp, mode, **kw) as fh:
            write(fh)
    return Path(path)


# --------------------------------------------------------------------------- lazy packages


def lazy_getattr(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<table[name]>`` on first use of ``name``.

    Lets a package list its public names without importing torch (or SciPy) before they are used.
    """
    import importlib

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(f"{package}.{table[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


# --------------------------------------------------------------------------- registries


def unknown_name_message(what: str, name: Any, names: list[str], known: str = "known") -> str:
    """``unknown <what> 'x'; did you mean 'y'? (<known>: a, b)``: one line."""
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}{hint} ({known}: {', '.join(names) or 'none'})"


class UnknownNameError(InvalidArgumentError, KeyError):
    """A name is not in a :class:`Registry` (the message suggests the closest name)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it one plain line
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    """A name -> object table (architectures, templates, degradation kinds, baselines...).

    Reads like a dict; an unknown name raises :class:`UnknownNameError` with "did you mean"
    and the known names. Entries keep insertion order.

    Args:
        what: what the entries are, for messages (``"alignment template"``).
        entries: initial entries.
    """

    def __init__(self, what: str, entries: Mapping[str, T] | None = None) -> None:
        self.what = what
        self._entries: dict[str, T] = dict(entries or {})

    def register(self, name: str, obj: T) -> T:
        """Add (or replace) ``name``; returns ``obj``."""
        self._entries[name] = obj
        return obj

    def unknown(self, name: Any) -> UnknownNameError:
        """The error for an unknown ``name`` (for callers that check membership themselves)."""
        return UnknownNameError(unknown_name_message(self.what, name, list(self._entries)))

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {list(self._entries)})"
