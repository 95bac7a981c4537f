"""QualityScorer: input forms, protocols, determinism, batching, mapping, load_scorer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from official_hyperiqa import tiny_random_hypernet
from paths import REPO
from PIL import Image

from faceiqa.errors import InvalidArgumentError, WeightsNotFoundError
from faceiqa.hub.store import sha256_file
from faceiqa.models import QualityScorer, ScoreMapping, Scores, crop_grid, hyperiqa_resnet50, load_scorer
from faceiqa.models.checkpoints import OFFICIAL, PYIQA, save_hypernet
from faceiqa.models.config import ModelConfig
from faceiqa.models.scorer import IMAGENET_MEAN, IMAGENET_STD

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SIZE = 64


def tiny_random_scorer(extra: int = 0, **kw) -> QualityScorer:
    cfg = {k: kw.pop(k) for k in ("grid", "normalize", "extra") if k in kw}
    config = ModelConfig(name="tiny-random", size=SIZE, template="hyperiqa-224", raw_name="raw", raw_range=(-1.0, 1.0),
                         mapping=kw.pop("mapping", ScoreMapping.logistic(0.0, 0.5)), **cfg)
    return QualityScorer(tiny_random_hypernet(extra=extra, seed=3), config, device="cpu", **kw)


def images(n: int, h: int = SIZE, w: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


@pytest.mark.tiny_model
def test_scores_are_float64_in_unit_range_with_raw_kept():
    scorer = tiny_random_scorer()
    res = scorer.score_crops(images(5))
    assert isinstance(res, Scores) and len(res) == 5
    assert res.score.dtype == np.float64 and res.raw.dtype == np.float64
    assert np.all((res.score >= 0) & (res.score <= 1))
    np.testing.assert_array_equal(res.score, ScoreMapping.logistic(0.0, 0.5)(res.raw))
    np.testing.assert_array_equal(res.n_crops, np.ones(5))
    assert len(np.unique(res.raw)) == 5  # the raw value is the model's, not a constant


@pytest.mark.tiny_model
def test_same_input_same_score_bit_for_bit():
    scorer = tiny_random_scorer()
    x = images(3, 80, 100)
    a, b = scorer.score_image(x), scorer.score_image(x)
    assert np.array_equal(a.raw, b.raw) and np.array_equal(a.score, b.score)


@pytest.mark.tiny_model
def test_batch_of_one_vs_batch_of_n():
    x = images(6, seed=1)
    batched = tiny_random_scorer(batch_size=6).score_crops(x).raw
    single = np.concatenate([tiny_random_scorer(batch_size=1).score_crops(x[i]).raw for i in range(6)])
    # Not guaranteed bitwise: the backbone's batched kernels may round differently by batch size.
    np.testing.assert_allclose(single, batched, rtol=0, atol=1e-6)


@pytest.mark.full_size
def test_resnet50_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    scorer = QualityScorer(hyperiqa_resnet50(), ModelConfig(name="r50-random", size=224, template="hyperiqa-224"), device="cpu", batch_size=2)
    x = images(2, 224, 224, seed=2)
    first = scorer.score_crops(x)
    second = scorer.score_crops(x)
    assert np.array_equal(first.raw, second.raw) and np.array_equal(first.score, second.score)
    alone = scorer.score_crops(x[1])
    # Not bitwise: oneDNN rounds differently per batch size (measured ~1e-6 relative on raw ~2.7).
    np.testing.assert_allclose(alone.raw, first.raw[1:2], rtol=1e-5, atol=1e-6)


@pytest.mark.tiny_model
def test_input_forms_agree():
    scorer = tiny_random_scorer()
    x = images(2, seed=3)
    ref = scorer.score_crops(x).raw
    as_pil = [Image.fromarray(a) for a in x]
    as_tensor = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0
    np.testing.assert_array_equal(scorer.score_crops(as_pil).raw, ref)
    np.testing.assert_array_equal(scorer.score_crops(list(x)).raw, ref)
    np.testing.assert_array_equal(scorer.score_crops(as_tensor).raw, ref)
    one = scorer.score_crops(x[:1]).raw  # a batch of 1 (may round differently from a batch of 2)
    np.testing.assert_array_equal(scorer.score_crops(x[0]).raw, one)
    np.testing.assert_array_equal(scorer.score_crops(as_tensor[0]).raw, one)
    np.testing.assert_array_equal(scorer.score_crops(as_pil[0]).raw, one)
    gray = Image.fromarray(x[0]).convert("L")
    assert scorer.score_crops(gray).raw.shape == (1,)


@pytest.mark.tiny_model
def test_normalisation_is_imagenet():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return x.mean(dim=(1, 2, 3))

    scorer = QualityScorer(Probe(), ModelConfig(name="probe", size=8, template="t"), device="cpu")
    scorer.score_crops(np.full((8, 8, 3), 255, dtype=np.uint8))
    expected = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(seen[0][0, :, 0, 0], expected)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((SIZE, SIZE, 3), dtype=np.float32), "uint8"),
        (np.zeros((SIZE, SIZE), dtype=np.uint8), r"\(H, W, 3\)"),
        (torch.full((1, 3, SIZE, SIZE), 2.0), r"\[0, 1\]"),
        (torch.zeros((1, 3, SIZE, SIZE), dtype=torch.uint8), "float"),
        (np.zeros((1, 32, 32, 3), dtype=np.uint8), "use score_image"),
        ("image.jpg", "unsupported image type"),
        ([], "no images"),
    ],
)
@pytest.mark.tiny_model
def test_bad_inputs_raise_clear_errors(bad, match):
    with pytest.raises(InvalidArgumentError, match=match):
        tiny_random_scorer().score_crops(bad)


@pytest.mark.tiny_model
def test_flip_averages_raw_outputs():
    scorer = tiny_random_scorer()
    x = images(2, seed=4)
    plain = scorer.score_crops(x).raw
    mirrored = scorer.score_crops(np.ascontiguousarray(x[:, :, ::-1])).raw
    both = scorer.score_crops(x, flip=True)
    np.testing.assert_allclose(both.raw, (plain + mirrored) / 2, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(both.n_crops, [2, 2])


def test_crop_grid_covers_both_borders_and_dedupes():
    grid = crop_grid(100, 90, 64, 5)
    ys = sorted({y for y, _ in grid})
    xs = sorted({x for _, x in grid})
    assert ys == [0, 9, 18, 27, 36] and xs == [0, 6, 13, 20, 26]
    assert len(grid) == 25
    assert crop_grid(64, 64, 64, 5) == [(0, 0)]
    assert crop_grid(64, 66, 64, 5) == [(0, 0), (0, 1), (0, 2)]
    assert crop_grid(100, 64, 64, 1) == [(18, 0)]
    with pytest.raises(InvalidArgumentError):
        crop_grid(63, 64, 64, 5)


@pytest.mark.tiny_model
def test_score_image_protocol():
    scorer = tiny_random_scorer(grid=3)
    exact = images(1, seed=5)
    np.testing.assert_array_equal(scorer.score_image(exact).raw, scorer.score_crops(exact).raw)
    big = images(1, 100, 90, seed=6)[0]
    res = scorer.score_image(big)
    assert res.n_crops.tolist() == [9]
    manual = [
        scorer.score_crops(np.ascontiguousarray(big[y : y + SIZE, x : x + SIZE])).raw[0]
        for y, x in crop_grid(100, 90, SIZE, 3)
    ]
    np.testing.assert_allclose(res.raw, [np.mean(manual)], rtol=0, atol=1e-6)
    small = images(1, 32, 48, seed=7)[0]  # upscaled to 64x96, then 1 x 3 crops
    assert scorer.score_image(small).n_crops.tolist() == [3]


@pytest.mark.tiny_model
def test_score_image_mixed_sizes_match_single_calls():
    scorer = tiny_random_scorer(batch_size=4)
    items = [images(1, 70, 90, seed=8)[0], images(1, 64, 64, seed=9)[0], Image.fromarray(images(1, 40, 40, seed=10)[0])]
    together = scorer.score_image(items)
    apart = np.concatenate([scorer.score_image(item).raw for item in items])
    np.testing.assert_allclose(together.raw, apart, rtol=0, atol=1e-6)
    assert together.n_crops.tolist() == [scorer.score_image(item).n_crops[0] for item in items]


@pytest.mark.tiny_model
def test_scorer_runs_in_eval_mode_even_if_the_model_was_switched():
    scorer = tiny_random_scorer()
    x = images(2, seed=11)
    before = scorer.score_crops(x).raw
    scorer.model.train()
    after = scorer.score_crops(x).raw
    np.testing.assert_array_equal(before, after)
    assert not scorer.model.training


@pytest.mark.tiny_model
def test_extra_inputs_are_required_and_used():
    scorer = tiny_random_scorer(extra=1)
    assert scorer.extra_inputs == 1
    x = images(2, seed=12)
    a = scorer.score_crops(x, extra=[0.0, 0.0]).raw
    b = scorer.score_crops(x, extra=np.array([[4.0], [4.0]])).raw
    assert not np.allclose(a, b)
    whole = scorer.score_image(images(2, 80, 80, seed=13), extra=[1.0, 2.0])
    assert whole.raw.shape == (2,)
    with pytest.raises(InvalidArgumentError, match="needs extra"):
        scorer.score_crops(x)
    with pytest.raises(InvalidArgumentError, match="shape"):
        scorer.score_crops(x, extra=[1.0])
    with pytest.raises(InvalidArgumentError, match="no extra"):
        tiny_random_scorer().score_crops(x, extra=[1.0, 2.0])


def test_properties():
    scorer = tiny_random_scorer()
    assert (scorer.name, scorer.config.size, scorer.config.template, scorer.config.raw_name) == (
        "tiny-random",
        64,
        "hyperiqa-224",
        "raw",
    )
    assert scorer.config.raw_range == (-1.0, 1.0) and scorer.device == torch.device("cpu") and scorer.config.grid == 5


def test_score_mapping_kinds_and_clipping():
    raw = np.array([-50.0, 0.0, 25.0, 100.0, 150.0, np.nan])
    lin = ScoreMapping.linear(0, 100)(raw)
    np.testing.assert_array_equal(lin[:5], [0.0, 0.0, 0.25, 1.0, 1.0])
    assert np.isnan(lin[5])
    np.testing.assert_allclose(ScoreMapping.logistic(25.0, 10.0)(np.array([25.0, 1e6, -1e6])), [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(ScoreMapping.identity()(np.array([-1.0, 0.3, 2.0])), [0.0, 0.3, 1.0])
    np.testing.assert_array_equal(ScoreMapping.linear(10, 0)(np.array([0.0, 10.0])), [1.0, 0.0])
    assert ScoreMapping.from_dict({"kind": "linear", "low": 0, "high": 100}) == ScoreMapping.linear(0, 100)
    assert ScoreMapping.from_dict(ScoreMapping.logistic(1, 2).to_dict()) == ScoreMapping.logistic(1, 2)
    for bad in ({"kind": "linear", "low": 1, "high": 1}, {"kind": "cubic"}, {"kind": "linear", "low": 0}, {"x0": 1}):
        with pytest.raises(InvalidArgumentError):
            ScoreMapping.from_dict(bad)


def test_load_scorer_without_a_default_says_what_to_do(tmp_path, monkeypatch):
    manifest = json.loads((REPO / "pretrained" / "manifest.json").read_text())
    manifest["default"] = None
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("FACEIQA_MANIFEST", str(tmp_path / "manifest.json"))
    with pytest.raises(WeightsNotFoundError, match="no default quality model"):
        load_scorer()


def _manifest_for(tmp_path, file_path, name="hyperiqa-test"):
    entry = next(w for w in json.loads((REPO / "pretrained" / "manifest.json").read_text())["weights"] if w["name"] == "hyperiqa-koniq")
    entry.update(name=name, file=file_path.name, size=file_path.stat().st_size, sha256=sha256_file(file_path), urls=[])
    entry["score"]["mapping"] = {"kind": "linear", "low": -10, "high": 10}
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"format": 1, "default": name, "weights": [entry]}))
    return manifest


@pytest.mark.full_size
def test_load_scorer_by_name_default_and_path(tmp_path, monkeypatch):
    torch.manual_seed(4)
    source = hyperiqa_resnet50()
    home = tmp_path / "home"
    home.mkdir()
    ckpt = save_hypernet(source, home / "test_hyperiqa.pkl", OFFICIAL)
    monkeypatch.setenv("FACEIQA_HOME", str(home))
    monkeypatch.setenv("FACEIQA_MANIFEST", str(_manifest_for(tmp_path, ckpt)))
    by_default = load_scorer(device="cpu")
    assert by_default.name == "hyperiqa-test" and by_default.config.size == 224
    assert by_default.config.template == "hyperiqa-224" and by_default.config.raw_name == "koniq_mos_zscore"
    assert by_default.config.mapping == ScoreMapping.linear(-10, 10)
    # A path to the same bytes is recognised as the registered entry (size + sha256).
    assert load_scorer(ckpt, device="cpu").name == "hyperiqa-test"
    # An unregistered pyiqa-layout file: layout detected, identity mapping.
    py = save_hypernet(source, tmp_path / "mine.pth", PYIQA)
    adhoc = load_scorer(str(py), device="cpu")
    assert adhoc.name == "mine" and adhoc.config.mapping == ScoreMapping.identity()
    x = images(1, 224, 224, seed=14)
    np.testing.assert_array_equal(adhoc.score_crops(x).raw, by_default.score_crops(x).raw)
