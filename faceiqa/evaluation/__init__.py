"""The research lab's measurements: what a quality score is worth.

- :mod:`metrics` (agreement with human scores), :mod:`edc` (Error-versus-Discard Characteristic),
  :mod:`verification` (pairs, k-fold accuracy), :mod:`degrade` (seeded degradations),
  :mod:`baselines` (simple measures every model must beat);
- runs over files: :mod:`mos`, :mod:`pairs`, :mod:`edc_runs`, :mod:`sensitivity` (monotonicity, resolution), :mod:`degraded_set`
  (with the shared loaders, keys and tables in :mod:`common`).

Needs the ``eval`` extra (pandas, SciPy).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "AgreementResult": "metrics",
    "Baseline": "baselines",
    "DEFAULT_PAUC_LIMIT": "edc",
    "Degradation": "degrade",
    "DegradeFn": "degrade",
    "DegradePlan": "pairs",
    "DegradeSetResult": "degraded_set",
    "DetectedFaceLike": "common",
    "DetectorLike": "common",
    "EDCCurve": "edc",
    "EDCReport": "edc_runs",
    "FaceGeometry": "degrade",
    "FaceLike": "baselines",
    "IMAGE_EXTENSIONS": "common",
    "ImageRecord": "pairs",
    "KFoldResult": "verification",
    "KeyIndex": "common",
    "LogisticFit": "metrics",
    "MANIFEST_NAME": "common",
    "MID_GREY": "baselines",
    "MOSEvaluation": "mos",
    "MonotonicityRow": "sensitivity",
    "OperatingPoint": "edc",
    "PATH_COLUMNS": "common",
    "PROB_COLUMNS": "common",
    "Pair": "verification",
    "PairScores": "pairs",
    "QualityScorerLike": "common",
    "QualitySource": "common",
    "RecognizerLike": "common",
    "ResolutionRanking": "sensitivity",
    "ScoreFn": "sensitivity",
    "ScoreKind": "edc",
    "ScoresLike": "common",
    "SourceQuality": "edc_runs",
    "agreement": "metrics",
    "best_threshold": "verification",
    "bootstrap_interval": "metrics",
    "compose": "degrade",
    "compute_baselines": "baselines",
    "compute_pair_distances": "pairs",
    "degrade": "degrade",
    "degrade_set": "degraded_set",
    "detection_probability": "baselines",
    "edc_curve": "edc",
    "edc_report": "edc_runs",
    "edc_table": "edc",
    "evaluate_edc": "edc_runs",
    "evaluate_mos": "mos",
    "exposure": "baselines",
    "eye_distance": "baselines",
    "face_geometry": "degrade",
    "fit_logistic": "metrics",
    "format_spec": "degrade",
    "format_table": "common",
    "get_baseline": "baselines",
    "get_kind": "degrade",
    "image_key": "common",
    "kfold_accuracy": "verification",
    "krcc": "metrics",
    "list_images": "common",
    "list_kinds": "degrade",
    "load_detector": "common",
    "load_models": "common",
    "load_quality_scorer": "common",
    "logistic4": "metrics",
    "make_pairs": "verification",
    "monotonicity": "sensitivity",
    "monotonicity_of_scorer": "sensitivity",
    "monotonicity_table": "sensitivity",
    "occlude": "degrade",
    "operating_point": "edc",
    "pair_image_keys": "common",
    "pair_quality": "edc",
    "parse_spec": "degrade",
    "partial_auc": "edc",
    "plcc": "metrics",
    "plot_edc": "edc",
    "random_score": "baselines",
    "read_labels_csv": "mos",
    "read_pairs": "verification",
    "read_quality_csv": "common",
    "read_rgb": "common",
    "resolution_ranking": "sensitivity",
    "resolve_image_path": "common",
    "seed_for": "degrade",
    "select_face": "pairs",
    "sharpness": "baselines",
    "source_from_baseline": "edc_runs",
    "source_from_csv": "edc_runs",
    "srcc": "metrics",
    "verification_accuracy": "verification",
    "write_pairs": "verification",
    "write_table": "common",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(f"faceiqa.evaluation.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'faceiqa.evaluation' has no attribute {name!r}")
