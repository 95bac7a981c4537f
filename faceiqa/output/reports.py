"""The report contract (CSV and JSON) and the self-contained HTML visual report.

One row per detected face; one row for an image with no face or an error. Columns, in
this order (:data:`REPORT_COLUMNS`)::

    path, face, score, raw_score, det_prob, x1, y1, x2, y2, eye_distance, status, error

- ``path``: the image path as given (or found by the folder walk).
- ``face``: 0-based face index within the image (largest face first); empty without a face.
- ``score``: quality in [0, 1], higher is better; empty when there is no face or an error.
- ``raw_score``: the model's native output (its scale is in the weights registry).
- ``det_prob``: the detector's face probability in [0, 1].
- ``x1, y1, x2, y2``: face box in original-image pixels.
- ``eye_distance``: inter-eye distance in original-image pixels.
- ``status``: ``ok``, ``small_face`` (scored, but the face is too small to judge reliably),
  ``no_face`` or ``error``.
- ``error``: a one-line reason when ``status`` is ``error``, else empty.

JSON reports hold the same records (a list of objects with these keys, ``null`` for empty).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from faceiqa._util import atomic_write, new_file_mode, publish, temp_name_for

if TYPE_CHECKING:
    from faceiqa.results import ImageAssessment
from faceiqa.errors import InvalidArgumentError

REPORT_COLUMNS: tuple[str, ...] = (
    "path",
    "face",
    "score",
    "raw_score",
    "det_prob",
    "x1",
    "y1",
    "x2",
    "y2",
    "eye_distance",
    "status",
    "error",
)


def safe_text(text: str) -> str:
    """``text`` as valid UTF-8: bytes of a file name that are not UTF-8 (held by Python as
    surrogate escapes) become ``\\xNN``. The report's path contract: every other character is
    kept as it is."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def display_text(text: str) -> str:
    """:func:`safe_text` with control characters (newline, tab, ...) escaped as ``\\n``, ``\\t``,
    ``\\xNN``: for the lines faceiqa prints, one per photo, tab-separated."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), safe_text(text))


#: First characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def excel_safe(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would run it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


_excel_safe = excel_safe  # ReportRow.to_cells has a parameter of that name


class Status(str, Enum):
    """Outcome of one report row."""

    OK = "ok"
    SMALL_FACE = "small_face"
    NO_FACE = "no_face"
    ERROR = "error"


_FLOAT_FIELDS = ("score", "raw_score", "det_prob", "x1", "y1", "x2", "y2", "eye_distance")


@dataclass(frozen=True)
class ReportRow:
    """One line of a report. Absent numbers are NaN (written as empty cells)."""

    path: str
    face: int | None = None
    score: float = math.nan
    raw_score: float = math.nan
    det_prob: float = math.nan
    x1: float = math.nan
    y1: float = math.nan
    x2: float = math.nan
    y2: float = math.nan
    eye_distance: float = math.nan
    status: Status = Status.OK
    error: str = ""

    @property
    def has_score(self) -> bool:
        return self.status in (Status.OK, Status.SMALL_FACE) and not math.isnan(self.score)

    def to_record(self) -> dict[str, object]:
        """A JSON-ready dict in column order (``None`` for empty cells, text as :func:`safe_text`)."""
        rec = asdict(self)
        out: dict[str, object] = {}
        for key in REPORT_COLUMNS:
            value = rec[key]
            if isinstance(value, float) and math.isnan(value):
                value = None
            elif isinstance(value, Status):
                value = value.value
            elif isinstance(value, str):
                value = safe_text(value) if value else None
            out[key] = value
        return out

    def to_cells(self, *, excel_safe: bool = False) -> list[str]:
        """CSV cells in column order; ``excel_safe`` prefixes text cells that a spreadsheet
        would run as a formula with ``'`` (see :func:`excel_safe`)."""
        rec = self.to_record()
        cells = []
        for key in REPORT_COLUMNS:
            value = rec[key]
            if value is None:
                cells.append("")
            elif key in ("score", "raw_score"):
                cells.append(repr(float(value)))  # shortest round-trip: scores stay bit-exact
            elif key == "det_prob":
                cells.append(f"{value:.6f}")
            elif key in _FLOAT_FIELDS:
                cells.append(f"{value:.2f}")
            elif excel_safe and key in ("path", "error"):
                cells.append(_excel_safe(str(value)))
            else:
                cells.append(str(value))
        return cells


def assessment_rows(assessment: ImageAssessment) -> list[ReportRow]:
    """The report rows of one image: one per face, or one for no face / an error."""
    if assessment.error:
        return [error_row(assessment.source, assessment.error)]
    if not assessment.faces:
        return [no_face_row(assessment.source)]
    return [
        ReportRow(
            path=assessment.source,
            face=f.index,
            score=f.score,
            raw_score=f.raw_score,
            det_prob=f.det_prob,
            x1=f.box[0],
            y1=f.box[1],
            x2=f.box[2],
            y2=f.box[3],
            eye_distance=f.eye_distance,
            status=f.status,
        )
        for f in assessment.faces
    ]


def error_row(path: str | os.PathLike[str], reason: str) -> ReportRow:
    """A row for an image that could not be processed (reason is made one line)."""
    return ReportRow(path=str(path), status=Status.ERROR, error=" ".join(str(reason).split()))


def no_face_row(path: str | os.PathLike[str]) -> ReportRow:
    """A row for an image in which no face was found."""
    return ReportRow(path=str(path), status=Status.NO_FACE)


class CsvReportWriter:
    """Streams rows to a CSV report: header first, one flushed line per row.

    Rows go to a hidden sibling (``.NAME.<random>.partial``) as they are produced and the
    report gets its name only when the writer is closed normally: readers never see a
    half-written report, and a run that is interrupted leaves every finished row in that
    partial file. Without ``replace`` the name is taken only if it is still free, so of two
    runs writing the same report the second fails (:class:`FileExistsError`) instead of
    mixing rows; with ``replace`` an existing file or symbolic link at that name is replaced
    (a link is never written through). Use as a context manager.
    """

    def __init__(self, path: str | os.PathLike[str], *, replace: bool = False, excel_safe: bool = False):
        self.path = Path(path)
        self.replace = replace
        self.excel_safe = excel_safe
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_name_for(self.path, ".partial"), suffix=".partial", dir=self.path.parent)
        self.partial = Path(tmp)
        os.chmod(fd, new_file_mode())
        self._fh = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(REPORT_COLUMNS)
        self._fh.flush()

    def write(self, row: ReportRow) -> None:
        self._writer.writerow(row.to_cells(excel_safe=self.excel_safe))
        self._fh.flush()

    def close(self) -> None:
        """Finish the file and give it its name (see the class docstring)."""
        if self._fh.closed:
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        try:
            publish(self.partial, self.path, replace=self.replace)
        except FileExistsError:
            raise FileExistsError(f"{self.path} was created by another writer meanwhile; the rows are in {self.partial}") from None

    def abandon(self) -> Path:
        """Stop without publishing; the rows so far stay in :attr:`partial`, which is returned."""
        if not self._fh.closed:
            self._fh.close()
        return self.partial

    def __enter__(self) -> CsvReportWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()


def write_csv(
    rows: Iterable[ReportRow], path: str | os.PathLike[str], *, replace: bool = True, excel_safe: bool = False
) -> None:
    """Write a CSV report atomically (see :func:`faceiqa._util.publish` for ``replace``)."""

    def write(fh: io.TextIOBase) -> None:
        writer = csv.writer(fh)
        writer.writerow(REPORT_COLUMNS)
        for row in rows:
            writer.writerow(row.to_cells(excel_safe=excel_safe))

    atomic_write(path, write, replace=replace)


def write_json(rows: Iterable[ReportRow], path: str | os.PathLike[str], *, replace: bool = True) -> None:
    """Write a JSON report (a list of records) atomically (``replace``: see :func:`faceiqa._util.publish`)."""
    records = [row.to_record() for row in rows]
    atomic_write(path, lambda fh: json.dump(records, fh, indent=1, allow_nan=False), replace=replace)


def _parse_float(text: str, key: str) -> float:
    """One numeric cell: empty is NaN; anything else must be a finite number (scores and
    probabilities in [0, 1])."""
    if not text.strip():
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"column {key}: {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"column {key}: {text[:40]!r} is not a finite number")
    if key in ("score", "det_prob") and not 0.0 <= value <= 1.0:
        raise ValueError(f"column {key}: {value:g} is outside [0, 1]")
    return value


def _parse_face(text: str) -> int | None:
    if not text.strip():
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"column face: {text[:40]!r} is not a face number") from None
    if value < 0:
        raise ValueError(f"column face: {value} is negative")
    return value


def _parse_status(text: str) -> Status:
    try:
        return Status(text)
    except ValueError:
        raise ValueError(f"column status: {text[:40]!r} is not one of {', '.join(s.value for s in Status)}") from None


def _records(reader: csv.DictReader, path: Path) -> Iterator[dict[str, str | None]]:
    try:
        yield from reader
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidArgumentError(f"{path}: unreadable CSV: {' '.join(str(exc).split())}") from None


def read_csv(path: str | os.PathLike[str]) -> list[ReportRow]:
    """Read a CSV report written by :func:`write_csv`.

    Raises:
        InvalidArgumentError: the file lacks the report columns or holds a malformed row.
    """
    path = Path(path)
    try:
        # utf-8-sig: a report saved again by a spreadsheet program may start with a BOM.
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read report {path}: {exc.strerror or exc}") from None
    with fh:
        reader = csv.DictReader(fh)
        try:
            fieldnames = reader.fieldnames or []
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InvalidArgumentError(f"{path} is not a faceiqa report: {' '.join(str(exc).split())}") from None
        missing = [c for c in REPORT_COLUMNS if c not in fieldnames]
        if missing:
            raise InvalidArgumentError(f"{path} is not a faceiqa report: missing columns {', '.join(missing)}")
        rows = []
        for rec in _records(reader, path):
            n = reader.line_num
            if any(rec[c] is None for c in REPORT_COLUMNS):
                raise InvalidArgumentError(f"{path}: line {n}: fewer cells than columns")
            try:
                rows.append(
                    ReportRow(
                        path=rec["path"],
                        face=_parse_face(rec["face"]),
                        status=_parse_status(rec["status"]),
                        error=rec["error"],
                        **{k: _parse_float(rec[k], k) for k in _FLOAT_FIELDS},
                    )
                )
            except ValueError as exc:
                raise InvalidArgumentError(f"{path}: line {n}: {exc}") from None
    return rows
