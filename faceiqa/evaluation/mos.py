"""Agreement of a score CSV with human opinion labels (MOS): SRCC, KRCC, PLCC, RMSE.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from faceiqa.errors import InvalidArgumentError
from faceiqa.evaluation.common import _norm_key, _path_column, _read_csv, read_quality_csv
from faceiqa.evaluation.metrics import AgreementResult, agreement

log = logging.getLogger("faceiqa.evaluation")


def read_labels_csv(
    path: str | os.PathLike, *, label_column: str = "mos", path_column: str | None = None
) -> dict[str, float]:
    """Read ``key -> label`` from a CSV with a path-like column and a label column.

    Raises:
        InvalidArgumentError: unreadable file, missing columns, duplicate or non-numeric labels.
    """
    df = _read_csv(path)
    pcol = _path_column(df, path, path_column)
    if label_column not in df.columns:
        raise InvalidArgumentError(
            f"{path}: no label column {label_column!r} (columns: {', '.join(map(str, df.columns))})"
        )
    labels = pd.to_numeric(df[label_column], errors="coerce").to_numpy(np.float64)
    out: dict[str, float] = {}
    for p, y in zip(df[pcol].astype(str), labels, strict=True):
        key = _norm_key(p)
        if not np.isfinite(y):
            raise InvalidArgumentError(f"{path}: label {label_column!r} of {p!r} is not a number")
        if key in out:
            raise InvalidArgumentError(f"{path}: image {p!r} is labelled twice")
        out[key] = float(y)
    if not out:
        raise InvalidArgumentError(f"{path}: no labelled rows")
    return out


@dataclass(frozen=True)
class MOSEvaluation:
    """Agreement of a score CSV with a label CSV.

    Attributes:
        agreement: the metrics and intervals.
        n_labels: labelled images.
        n_matched: labelled images with a finite score (used).
        n_failed: labelled images whose scoring failed (excluded).
        n_unmatched: labelled images absent from the score CSV (excluded).
    """

    agreement: AgreementResult
    n_labels: int
    n_matched: int
    n_failed: int
    n_unmatched: int

    def to_dict(self) -> dict:
        d = self.agreement.to_dict()
        d.update(n_labels=self.n_labels, n_matched=self.n_matched, n_failed=self.n_failed, n_unmatched=self.n_unmatched)
        return d


def evaluate_mos(
    scores_csv: str | os.PathLike,
    labels_csv: str | os.PathLike,
    *,
    score_column: str = "score",
    label_column: str = "mos",
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MOSEvaluation:
    """Join scores and labels on the image path (or file name) and compute the agreement.

    Raises:
        InvalidArgumentError: bad CSVs, or fewer than 3 matched images.
    """
    source = read_quality_csv(scores_csv, score_column=score_column)
    labels = read_labels_csv(labels_csv, label_column=label_column)
    index = source.index()
    xs, ys = [], []
    n_failed = n_unmatched = 0
    for key, y in labels.items():
        match = index.find(key)
        if match is None:
            n_unmatched += 1
        elif match in source.values:
            xs.append(source.values[match])
            ys.append(y)
        else:
            n_failed += 1
    if len(xs) < 3:
        raise InvalidArgumentError(
            f"only {len(xs)} labelled images have a score ({n_unmatched} not in {Path(scores_csv).name}, "
            f"{n_failed} failed); check that both CSVs name the same images"
        )
    if n_unmatched or n_failed:
        log.warning("%d labelled images not in the score CSV, %d without a score: excluded", n_unmatched, n_failed)
    result = agreement(np.array(xs), np.array(ys), n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
    return MOSEvaluation(result, len(labels), len(xs), n_failed, n_unmatched)
