"""``faceiqa export --onnx`` and ``faceiqa.export.export_onnx``.

Parity with onnxruntime (max |score difference| <= 1e-4, raw too) for the face model's
architecture (real dlib backbone when its weights are there, random head) and a tiny
HyperIQA; skipped when onnx or onnxruntime is not installed.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from paths import REPO
from tiny_models import TINY_SIZE, install_tiny_model, tiny_random_hypernet, tiny_random_scorer

from faceiqa.errors import InvalidArgumentError
from faceiqa.models import QualityScorer, ScoreMapping
from faceiqa.models.config import ModelConfig

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from faceiqa.cli import main  # noqa: E402
from faceiqa.export.onnx import ExportError, export_onnx  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _crops(n: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, size // 5 + 1, size // 5 + 1, 3), dtype=np.uint8)
    big = np.kron(small, np.ones((1, 5, 5, 1), np.uint8))[:, :size, :size]
    return np.ascontiguousarray(big)


def _run_onnx(sess, crops: np.ndarray, extra: np.ndarray | None):
    feed = {"crops": (crops.astype(np.float32) / 255.0).transpose(0, 3, 1, 2).copy()}
    if extra is not None:
        feed["extra"] = extra.astype(np.float32)
    return sess.run(["raw", "score"], feed)


def _face_scorer() -> QualityScorer:
    from faceiqa.models.face import face_hypernet

    torch.manual_seed(0)
    model = face_hypernet()
    try:
        from faceiqa.models.dlib_resnet import load_dlib_resnet

        model.res.net.load_state_dict(load_dlib_resnet().state_dict())
    except Exception:  # noqa: BLE001 - a random backbone checks the graph just as well
        pass
    return QualityScorer(model, ModelConfig(name="face-random-head", size=150, template="dlib-150", normalize="dlib", mapping=ScoreMapping.logistic(0.5, 0.15), extra=("log2_resolution",)), device="cpu")


def _props(path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_face_architecture_onnx_matches_pytorch(tmp_path):
    scorer = _face_scorer()
    path = export_onnx(scorer, tmp_path / "face.onnx")
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == ["crops", "extra"]
    assert [o.name for o in sess.get_outputs()] == ["raw", "score"]
    for n, seed in ((5, 0), (1, 1)):  # the batch size is dynamic
        crops = _crops(n, 150, seed)
        extra = np.random.default_rng(seed).uniform(-4, 0, (n, 1))
        ref = scorer.score_crops(crops, extra=extra)
        raw, score = _run_onnx(sess, crops, extra)
        assert raw.shape == score.shape == (n,)
        assert np.abs(score - ref.score).max() <= 1e-4
        assert np.abs(raw - ref.raw).max() <= 1e-4
    props = _props(path)
    assert props["input_size"] == "150" and props["template"] == "dlib-150" and props["normalize"] == "dlib"
    assert json.loads(props["extra_names"]) == ["log2_resolution"]
    assert json.loads(props["score_mapping"]) == {"kind": "logistic", "x0": 0.5, "width": 0.15}
    assert "exp" in props["score_formula"] and "extra" in props["inputs"]


@pytest.mark.parametrize("mapping", [ScoreMapping.logistic(0.0, 0.05), ScoreMapping.linear(-1.0, 1.0), ScoreMapping.identity()])
@pytest.mark.tiny_model
def test_hyperiqa_onnx_matches_pytorch(tmp_path, mapping):
    scorer = tiny_random_scorer(mapping=mapping)
    path = export_onnx(scorer, tmp_path / "tiny.onnx", opset=13)
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == ["crops"]
    crops = _crops(7, TINY_SIZE, seed=2)
    ref = scorer.score_crops(crops)
    raw, score = _run_onnx(sess, crops, None)
    assert np.abs(score - ref.score).max() <= 1e-4
    assert np.abs(raw - ref.raw).max() <= 1e-4
    assert _props(path)["opset"] == "13"


@pytest.mark.tiny_model
def test_hyperiqa_with_extra_input_and_unchanged_scorer(tmp_path):
    torch.manual_seed(0)
    scorer = QualityScorer(tiny_random_hypernet(extra=2), ModelConfig(name="tiny-extra", size=TINY_SIZE, template="tiny-64"), device="cpu")
    crops = _crops(3, TINY_SIZE, seed=4)
    extra = np.array([[0.1, -1.0], [0.5, 0.0], [-0.3, 2.0]])
    before = scorer.score_crops(crops, extra=extra).raw
    raw, _ = _run_onnx(_session(export_onnx(scorer, tmp_path / "x.onnx")), crops, extra)
    assert np.abs(raw - before).max() <= 1e-4
    assert np.array_equal(scorer.score_crops(crops, extra=extra).raw, before)  # export left the model as it was


def test_export_errors(tmp_path, monkeypatch):
    scorer = tiny_random_scorer()
    with pytest.raises(InvalidArgumentError, match="opset"):
        export_onnx(scorer, tmp_path / "a.onnx", opset=9)
    with pytest.raises(InvalidArgumentError, match="batch"):
        export_onnx(scorer, tmp_path / "a.onnx", batch=0)
    monkeypatch.setitem(sys.modules, "onnx", None)  # "not installed"
    with pytest.raises(ExportError, match="pip install"):
        export_onnx(scorer, tmp_path / "a.onnx")
    assert not (tmp_path / "a.onnx").exists()


def test_cli_export(tmp_path, monkeypatch):
    install_tiny_model(tmp_path / "models", monkeypatch)
    out = tmp_path / "model.onnx"
    runner = CliRunner()
    result = runner.invoke(main, ["export", "--onnx", str(out), "--opset", "14"])
    assert result.exit_code == 0, result.output
    assert _props(out)["model_name"] == "tiny-random" and _props(out)["opset"] == "14"
    result = runner.invoke(main, ["export", "--onnx", str(out)])
    assert result.exit_code == 2 and "--overwrite" in result.output
    result = runner.invoke(main, ["export", "--onnx", str(out), "--overwrite", "--weights", "tiny-random"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["export", "--onnx", str(tmp_path / "b.onnx"), "--opset", "99"])
    assert result.exit_code == 2 and "opset" in result.output
    result = runner.invoke(main, ["export", "--onnx", str(tmp_path / "c.onnx"), "--weights", "no-such-model"])
    assert result.exit_code == 1 and "no-such-model" in result.output
    assert not (tmp_path / "c.onnx").exists()


@pytest.mark.slow
def test_full_resnet50_hyperiqa_onnx_matches_pytorch(tmp_path):
    """The official architecture (random weights; about 5 s to export on 2 cores)."""
    from faceiqa.models import hyperiqa_resnet50

    torch.manual_seed(0)
    scorer = QualityScorer(hyperiqa_resnet50(), ModelConfig(name="r50-random", size=224, template="hyperiqa-224", mapping=ScoreMapping.linear(0, 100)), device="cpu")
    path = export_onnx(scorer, tmp_path / "r50.onnx")
    crops = _crops(2, 224, seed=5)
    ref = scorer.score_crops(crops)
    raw, score = _run_onnx(_session(path), crops, None)
    assert np.abs(score - ref.score).max() <= 1e-4
    assert np.abs(raw - ref.raw).max() <= 1e-4 * 100  # raw is on the 0..100 KonIQ scale
    assert _props(path)["score_formula"].startswith("score = clip((raw - 0.0) / (100.0 - 0.0)")


def test_shipped_default_model_onnx_matches_pytorch_on_example_faces(tmp_path):
    """The real default weights (faceiqa-face), on aligned faces of the shipped example photo."""

    from faceiqa.api import FaceQualityAssessor

    assessor = FaceQualityAssessor(weights="default", device="cpu")
    photo = REPO / "examples" / "photos" / "bald_guys.jpg"
    from faceiqa.images import read_image

    image = read_image(photo)
    faces = assessor.detector.detect(image)
    crops = np.asarray(assessor.align(image, faces))
    eye = [f.eye_distance for f in faces]
    assert len(crops) >= 2
    ref = assessor.score_crops(crops, eye_distance=eye)
    path = export_onnx(assessor.scorer, tmp_path / "default.onnx")
    raw, score = _run_onnx(_session(path), crops, assessor.face_features(eye))
    assert np.abs(score - ref.score).max() <= 1e-4
    assert np.abs(raw - ref.raw).max() <= 1e-4
    assert _props(path)["model_name"] == assessor.scorer.name
