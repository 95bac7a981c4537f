"""Training the face model and fine-tuning HyperIQA: labels, the training set, the loop, calibration.

Needs the ``train`` extra.
"""

from __future__ import annotations

from faceiqa._util import lazy_getattr

_LAZY = {
    "Calibration": "calibrate",
    "DOWNSCALE_FACTORS": "trainset",
    "EpochLog": "loop",
    "FaceDataConfig": "face",
    "FaceTrainSet": "trainset",
    "FinetuneConfig": "finetune",
    "FitResult": "loop",
    "GMSD_MAX": "labels",
    "LDA_GRIDS": "trainset",
    "PerceptualScores": "labels",
    "RECOGNISABLE_DISTANCE": "calibrate",
    "TrainConfig": "loop",
    "UTILITY_WEIGHT": "labels",
    "UtilityCalibration": "labels",
    "VariantPlan": "trainset",
    "blend": "labels",
    "build_face_trainset": "trainset",
    "calibrate_recognisability": "calibrate",
    "calibrate_utility": "labels",
    "export_face_model": "calibrate",
    "face_config_defaults": "face",
    "face_validation_outputs": "calibrate",
    "finetune_config_defaults": "finetune",
    "finetune_hyperiqa": "finetune",
    "fit": "loop",
    "group_rank_loss": "loop",
    "load_or_build_trainset": "face",
    "mean_reference_distance": "labels",
    "parameter_groups": "loop",
    "perceptual_scores": "labels",
    "pooled_stage_features": "trainset",
    "read_labelled_images": "finetune",
    "sample_plans": "trainset",
    "seed_everything": "loop",
    "split_people": "trainset",
    "train_face_model": "face",
    "write_config": "loop",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
