"""Tiny random-weight quality models for shape and plumbing tests (scores mean nothing).

``install_tiny_model`` registers a tiny HyperIQA-shaped architecture, a 64 px alignment
template and a manifest entry in a temporary folder, so that ``--weights tiny-random`` works
end to end through the registry exactly like real weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from faceiqa.face.alignment import TEMPLATES, arcface_template
from faceiqa.hub.store import sha256_file
from faceiqa.models import QualityScorer, ScoreMapping, register_architecture
from faceiqa.models.checkpoints import load_hypernet_state
from faceiqa.models.config import ModelConfig
from faceiqa.models.hypernet import HyperNet
from faceiqa.models.resnet import ResNetBackbone

TINY_SIZE = 64
TINY_TEMPLATE = arcface_template(TINY_SIZE, scale=0.8, name="tiny-64")
TEMPLATES.register(TINY_TEMPLATE.name, TINY_TEMPLATE)


def tiny_random_hypernet(seed: int = 0, extra: int = 0) -> HyperNet:
    torch.manual_seed(seed)
    backbone = ResNetBackbone(layers=(1, 1, 1, 1), widths=(4, 8, 16, 32), stem_width=8, input_size=TINY_SIZE)
    return HyperNet(
        backbone, lda_out_channels=4, hyper_in_channels=8, target_in_size=32, target_fc_sizes=(16, 8, 8, 4),
        extra_target_inputs=extra,
    ).eval()


def tiny_random_scorer(seed: int = 0, **kw) -> QualityScorer:
    """A scorer on :func:`tiny_random_hypernet`; ``kw`` are ModelConfig fields or runtime options."""
    config = ModelConfig(name="tiny-random", size=TINY_SIZE, template=TINY_TEMPLATE.name, raw_range=(-1.0, 1.0),
                         mapping=kw.pop("mapping", ScoreMapping.logistic(0.0, 0.05)), grid=kw.pop("grid", 5))
    return QualityScorer(tiny_random_hypernet(seed), config, device="cpu", **kw)


register_architecture(
    "tiny-random-hyperiqa",
    lambda options: tiny_random_hypernet(),
    lambda model, path, layout: load_hypernet_state(model, path, layout=layout or "auto"),
)


def install_tiny_model(folder: Path, monkeypatch, seed: int = 0) -> str:
    """Write a tiny checkpoint + manifest into ``folder`` and point faceiqa at them."""
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / "tiny-random.pt"
    torch.save(tiny_random_hypernet(seed).state_dict(), ckpt)
    entry = {
        "name": "tiny-random", "file": ckpt.name, "size": ckpt.stat().st_size, "sha256": sha256_file(ckpt),
        "kind": "quality", "architecture": "tiny-random-hyperiqa", "layout": "hyperiqa-official",
        "input": {"size": TINY_SIZE, "template": TINY_TEMPLATE.name, "normalize": "imagenet"},
        "score": {"raw_name": "raw", "raw_range": [-1, 1], "mapping": {"kind": "logistic", "x0": 0.0, "width": 0.05}},
        "description": "tiny random-weight model for tests",
    }
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"format": 1, "default": "tiny-random", "weights": [entry]}))
    monkeypatch.setenv("FACEIQA_MANIFEST", str(manifest))
    monkeypatch.setenv("FACEIQA_HOME", str(folder))
    return "tiny-random"
