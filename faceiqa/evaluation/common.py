"""Shared pieces of the evaluation runs: model loaders, image keys, score CSVs, tables.

Image keys. An image is identified by its path relative to the image folder, in POSIX form
and without the file extension (``Abel_Pacheco/Abel_Pacheco_0001``). Degraded copies are
written as PNG under the same key and seeded from it, so a copy scored from disk and the
same image degraded on the fly are identical. Score CSV paths are matched to keys by their
trailing path components (:class:`KeyIndex`), so absolute, relative and ``../`` paths as
well as bare file names all match.

Score CSVs: faceiqa report CSVs (``path, face, score, ..., status``; one row per face; the
face with the highest ``det_prob``, else the lowest ``face`` number, with a finite score is
used) or any CSV with a path column and a score column. Rows without a finite score are
images where scoring failed (no face, unreadable...).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import numpy as np
import pandas as pd

from faceiqa.errors import ImageReadError, InvalidArgumentError
from faceiqa.evaluation.verification import Pair

log = logging.getLogger("faceiqa.evaluation")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
PATH_COLUMNS = ("path", "image", "image_name", "file", "filename", "name")
PROB_COLUMNS = ("det_prob", "prob", "detection_prob")
MANIFEST_NAME = "faceiqa-degrade.json"



# ---------------------------------------------------------------------------------------
# the interfaces this module needs from detection and recognition


class DetectedFaceLike(Protocol):
    box: Sequence[float]
    prob: float
    landmarks: np.ndarray


class DetectorLike(Protocol):
    def detect(self, image: np.ndarray) -> list[DetectedFaceLike]: ...


class RecognizerLike(Protocol):
    def align(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray: ...

    def embed(self, chips: np.ndarray) -> np.ndarray: ...


class ScoresLike(Protocol):
    score: np.ndarray


class QualityScorerLike(Protocol):
    config: Any  # .template: the alignment template name

    def score_crops(self, crops: np.ndarray) -> ScoresLike: ...


def load_detector(device: str | None = None) -> DetectorLike:
    """The real face detector (:class:`faceiqa.face.detection.FaceDetector`)."""
    from faceiqa.face.detection import FaceDetector

    return FaceDetector(device=device)


def load_models(device: str | None = None) -> tuple[DetectorLike, RecognizerLike]:
    """The real face detector and recognizer."""
    from faceiqa.face.recognition import load_recognizer

    return load_detector(device), load_recognizer(device=device)


def load_quality_scorer(weights: str = "default", device: str | None = None) -> QualityScorerLike:
    """The quality scorer of :func:`faceiqa.models.load_scorer`."""
    from faceiqa.models.loader import load_scorer

    return load_scorer(weights, device)


# ---------------------------------------------------------------------------------------
# keys and paths


def image_key(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """The key of an image: POSIX path relative to ``root`` (when inside it), no extension."""
    p = Path(path)
    if root is not None:
        try:
            p = p.resolve().relative_to(Path(root).resolve())
        except ValueError:
            pass
    return _norm_key(str(p))


def _norm_key(text: str) -> str:
    text = str(text).strip().replace("\\", "/")
    absolute = text.startswith("/")
    parts = [s for s in PurePosixPath(text).parts if s not in ("", ".", "/")]
    if not parts:
        return ""
    stem, ext = os.path.splitext(parts[-1])
    if ext.lower() in IMAGE_EXTENSIONS:
        parts[-1] = stem
    return ("/" if absolute else "") + "/".join(parts)


class KeyIndex:
    """Find which of a set of path-like keys refers to a given image key.

    A candidate matches when one of the two is a trailing part of the other, whole path
    components compared (``/data/A/A_0001`` matches ``A/A_0001`` and ``A_0001``; ``B/A_0001``
    does not match ``A/A_0001``). When several match, the longest wins if it is unique;
    otherwise the key is ambiguous and nothing is returned.
    """

    def __init__(self, keys: Iterable[str]):
        self._by_name: dict[str, list[str]] = {}
        for k in keys:
            self._by_name.setdefault(k.rsplit("/", 1)[-1], []).append(k)

    def find(self, key: str) -> str | None:
        cands = self._by_name.get(key.rsplit("/", 1)[-1], [])
        exact = [c for c in cands if c == key or c.endswith("/" + key) or key.endswith("/" + c)]
        if len(exact) == 1:
            return exact[0]
        if len(exact) > 1:
            # Longest shared suffix wins when it is unique.
            best = max(len(c) for c in exact)
            longest = [c for c in exact if len(c) == best]
            return longest[0] if len(longest) == 1 else None
        return None


def resolve_image_path(path: str | os.PathLike) -> Path:
    """``path`` if it exists, else the same stem with another image extension.

    Lets ``pairs.txt`` (which names .jpg files) point into a folder of PNG copies.

    Raises:
        ImageReadError: no such image.
    """
    p = Path(path)
    if p.is_file():
        return p
    for ext in IMAGE_EXTENSIONS:
        alt = p.with_suffix(ext)
        if alt.is_file():
            return alt
    raise ImageReadError(f"image not found: {p}")


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB with :func:`faceiqa.images.read_image` (the reader
    ``faceiqa score`` uses, so both see the same pixels).

    Raises:
        ImageReadError: missing, unreadable or oversized file.
    """
    from faceiqa.images import read_image

    return read_image(path)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive, hidden files skipped), in a stable order."""
    from faceiqa.images import list_images as _list

    return _list(folder)


def pair_image_keys(pairs: Sequence[Pair]) -> list[tuple[str, str]]:
    """(key1, key2) of each pair in the LFW layout ``<Name>/<Name>_<NNNN>``."""
    out = []
    for p in pairs:
        a, b = p.paths(Path("."))
        out.append((_norm_key(str(a)), _norm_key(str(b))))
    return out


# ---------------------------------------------------------------------------------------
# score and label CSVs


@dataclass(frozen=True)
class QualitySource:
    """Per-image quality values read from a CSV.

    Attributes:
        name: display name (the file stem by default).
        values: image key (as written in the CSV, normalised) -> quality.
        failed: image keys listed in the CSV without a finite score -> status text.
        n_rows: data rows read.
    """

    name: str
    values: dict[str, float]
    failed: dict[str, str]
    n_rows: int

    def index(self) -> KeyIndex:
        return KeyIndex(list(self.values) + list(self.failed))


def _read_csv(path: str | os.PathLike) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise InvalidArgumentError(f"no such CSV file: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read CSV {path}: {str(exc).splitlines()[0]}") from None


def _path_column(df: pd.DataFrame, path: str | os.PathLike, wanted: str | None = None) -> str:
    if wanted:
        if wanted not in df.columns:
            raise InvalidArgumentError(f"{path}: no column {wanted!r} (columns: {', '.join(map(str, df.columns))})")
        return wanted
    for c in PATH_COLUMNS:
        if c in df.columns:
            return c
    raise InvalidArgumentError(f"{path}: no image path column (expected one of: {', '.join(PATH_COLUMNS)})")


def read_quality_csv(
    path: str | os.PathLike, *, score_column: str = "score", path_column: str | None = None, name: str | None = None
) -> QualitySource:
    """Read per-image quality from a faceiqa report CSV or a simple ``path,score`` CSV.

    Raises:
        InvalidArgumentError: unreadable file, missing columns, or no row with a finite score.
    """
    df = _read_csv(path)
    pcol = _path_column(df, path, path_column)
    if score_column not in df.columns:
        raise InvalidArgumentError(
            f"{path}: no score column {score_column!r} (columns: {', '.join(map(str, df.columns))})"
        )
    scores = pd.to_numeric(df[score_column], errors="coerce").to_numpy(dtype=np.float64)
    keys = [_norm_key(p) for p in df[pcol].astype(str)]
    prob_col = next((c for c in PROB_COLUMNS if c in df.columns), None)
    probs = pd.to_numeric(df[prob_col], errors="coerce").to_numpy(np.float64) if prob_col else None
    faces = pd.to_numeric(df["face"], errors="coerce").to_numpy(np.float64) if "face" in df.columns else None
    status = df["status"].astype(str).to_numpy() if "status" in df.columns else None

    best: dict[str, tuple[tuple[float, float, int], float]] = {}
    failed: dict[str, str] = {}
    for i, key in enumerate(keys):
        if not key:
            continue
        if not np.isfinite(scores[i]):
            text = str(status[i]) if status is not None else ""
            failed.setdefault(key, text if text and text != "nan" else "no score")
            continue
        # Rank faces: highest detection probability, then lowest face number, then row order.
        prob = probs[i] if probs is not None and np.isfinite(probs[i]) else -np.inf
        face = faces[i] if faces is not None and np.isfinite(faces[i]) else float(i)
        rank = (-prob, face, i)
        if key not in best or rank < best[key][0]:
            best[key] = (rank, float(scores[i]))
    values = {k: v for k, (_, v) in best.items()}
    for k in values:
        failed.pop(k, None)
    if not values:
        raise InvalidArgumentError(f"{path}: no row has a finite {score_column!r}")
    return QualitySource(name or Path(path).stem, values, failed, int(len(df)))




# ---------------------------------------------------------------------------------------
# tables


def format_table(df: pd.DataFrame, *, digits: int = 4) -> str:
    """A GitHub-style markdown table (no extra dependency)."""

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            if math.isnan(v):
                return "nan"
            if v != 0 and (abs(v) < 10 ** (-digits) or abs(v) >= 1e6):
                return f"{v:.{digits - 1}e}"
            return f"{v:.{digits}f}"
        return str(v)

    header = [str(c) for c in df.columns]
    body = [[cell(v) for v in row] for row in df.itertuples(index=False)]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body]
    return "\n".join(lines)


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` as markdown (``.md``) or CSV (anything else)."""
    out = Path(path)
    if out.suffix.lower() in (".md", ".markdown"):
        out.write_text(format_table(df) + "\n")
    else:
        df.to_csv(out, index=False)
    return out
