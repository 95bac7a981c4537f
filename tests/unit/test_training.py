"""Training: labels, the training-set builder, the fixed HyperIQA solver, fine-tuning, export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from faceiqa.cli import main
from faceiqa.errors import CheckpointError, InvalidArgumentError
from faceiqa.models.checkpoints import OFFICIAL, read_checkpoint, save_hypernet
from faceiqa.models.face import BACKBONE_PREFIX, CachedStages, face_hypernet, head_state_dict, load_head
from faceiqa.training.calibrate import export_face_model
from faceiqa.training.face import FaceDataConfig, train_face_model
from faceiqa.training.finetune import FinetuneConfig, finetune_hyperiqa
from faceiqa.training.labels import UtilityCalibration, blend, calibrate_utility, perceptual_scores
from faceiqa.training.loop import TrainConfig, parameter_groups
from faceiqa.training.trainset import FaceTrainSet, sample_plans

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------- labels


def test_utility_calibration_maps_distances_linearly_and_clips():
    cal = UtilityCalibration(0.3, 0.8)
    np.testing.assert_allclose(cal([0.1, 0.3, 0.55, 0.8, 1.2]), [1.0, 1.0, 0.5, 0.0, 0.0])
    cal = calibrate_utility(np.linspace(0.2, 0.6, 101), np.full(10, 0.9))
    assert cal.d_good == pytest.approx(0.208) and cal.d_bad == pytest.approx(0.9)
    with pytest.raises(InvalidArgumentError):
        UtilityCalibration(0.8, 0.3)


def test_perceptual_scores_are_one_for_identical_and_fall_with_damage():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    noisy = np.clip(ref.astype(int) + rng.normal(0, 40, ref.shape), 0, 255).astype(np.uint8)
    very = np.clip(ref.astype(int) + rng.normal(0, 90, ref.shape), 0, 255).astype(np.uint8)
    same = perceptual_scores(ref, ref)
    assert np.all(same.combined == 1.0) and np.all(same.gmsd == 0.0)
    a, b = perceptual_scores(ref, noisy).combined, perceptual_scores(ref, very).combined
    assert np.all((a < 1) & (b < a) & (b >= 0))
    np.testing.assert_allclose(blend(1.0, 0.0), 0.5)


def test_variant_plans_are_seeded_and_start_pristine():
    a, b = sample_plans("x/y.jpg", 6, seed=1), sample_plans("x/y.jpg", 6, seed=1)
    assert a == b and a[0].spec == "pristine" and all(p.spec != "pristine" for p in a[1:])
    assert sample_plans("x/z.jpg", 6, seed=1) != a


# ----------------------------------------------------------------------------- solver


def test_parameter_groups_hold_lists_with_the_hyper_network_at_ten_times_lr():
    model = face_hypernet(CachedStages())
    groups = parameter_groups(model, 1e-4, 10.0)
    names = {g["name"]: g for g in groups}
    assert isinstance(names["hyper"]["params"], list) and names["hyper"]["lr"] == pytest.approx(1e-3)
    assert names["backbone"]["lr"] == pytest.approx(1e-4)
    n_res = sum(1 for n, _ in model.named_parameters() if n.startswith("res."))
    assert len(names["backbone"]["params"]) == n_res
    assert len(names["hyper"]["params"]) + n_res == len(list(model.parameters()))


def _synthetic_trainset(n: int = 600, seed: int = 0) -> FaceTrainSet:
    """Random stage features whose label is a smooth function of them (learnable)."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 5, 5), (32, 10, 10), (32, 5, 5), (64, 2, 2), (128, 1, 1), (256, 2, 2)]
    stages = [rng.normal(0, 1, (n, *s)).astype(np.float32) for s in shapes]
    signal = stages[-1].mean(axis=(1, 2, 3)) * 32  # unit variance
    label = 1 / (1 + np.exp(-signal))
    split = np.where(np.arange(n) % 4 == 0, "val", "train")
    person = np.array([f"p{i // 3}" for i in range(n)])
    return FaceTrainSet(
        stages=stages, extra=np.zeros((n, 1), np.float32), utility=label, perceptual=label, label=label,
        distance=np.zeros(n), detected=np.ones(n, bool), person=person, key=np.array([f"{i}" for i in range(n)]),
        spec=np.array(["pristine"] * n), split=split, calibration=UtilityCalibration(0.27, 0.8),
    )


def test_face_training_learns_resumes_and_exports(tmp_path):
    cache = _synthetic_trainset().save(tmp_path / "set.npz")
    data = FaceDataConfig(cache=str(cache))
    cfg = TrainConfig(epochs=3, batch_size=64, lr=1e-3, lr_ratio=3.0, device="cpu", patience=10)
    first = train_face_model(data, cfg, tmp_path / "run", progress=False)
    assert len(first.history) == 3
    resumed = train_face_model(data, TrainConfig(**{**cfg.__dict__, "epochs": 10}), tmp_path / "run", resume=True, progress=False)
    assert [h.epoch for h in resumed.history] == list(range(1, 11))
    assert resumed.best_srcc > 0.6, resumed.history
    assert resumed.history[-1].train_l1 < resumed.history[0].train_l1
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert len(rows) == 10 and float(rows[0]["lr_hyper"]) == pytest.approx(3e-3)
    cfg_json = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg_json["job"] == "face" and cfg_json["train"]["epochs"] == 10
    head = read_checkpoint(tmp_path / "run" / "best.pt")
    assert head and not any(k.startswith(BACKBONE_PREFIX) for k in head)
    entry = export_face_model(tmp_path / "run", tmp_path / "exported.pt")
    assert entry["size"] == (tmp_path / "exported.pt").stat().st_size and entry["architecture"] == "hyperiqa-dlib"


def test_head_loading_names_missing_and_unexpected_keys():
    model = face_hypernet(CachedStages())
    state = head_state_dict(model)
    load_head(face_hypernet(CachedStages()), state)
    broken = dict(state)
    key = sorted(broken)[0]
    del broken[key]
    with pytest.raises(CheckpointError, match=key):
        load_head(face_hypernet(CachedStages()), broken)
    with pytest.raises(CheckpointError, match="bogus"):
        load_head(face_hypernet(CachedStages()), {**state, "bogus.weight": torch.zeros(1)})


def test_training_without_validation_data_is_refused(tmp_path):
    ds = _synthetic_trainset(40)
    ds.split[:] = "train"
    cache = ds.save(tmp_path / "set.npz")
    with pytest.raises(InvalidArgumentError, match="validation"):
        train_face_model(FaceDataConfig(cache=str(cache)), TrainConfig(epochs=1, device="cpu"), tmp_path / "r", progress=False)


# ----------------------------------------------------------------------------- fine-tuning ResNet-50 HyperIQA


@pytest.mark.slow
def test_finetune_from_a_random_full_size_official_checkpoint(tmp_path):
    from PIL import Image

    from faceiqa.models import hyperiqa_resnet50, load_scorer

    torch.manual_seed(0)
    start = tmp_path / "koniq_random.pkl"
    save_hypernet(hyperiqa_resnet50(), start, layout=OFFICIAL)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(5):
        level = i * 50
        img = np.clip(rng.normal(128, 10 + level, (240, 232, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(tmp_path / f"im{i}.png")
        rows.append((f"im{i}.png", 1 + i))
    with open(tmp_path / "scores.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "mos"])
        w.writerows(rows)
    job = FinetuneConfig(weights=str(start), csv=str(tmp_path / "scores.csv"), patches=2, val_fraction=0.4)
    cfg = TrainConfig(epochs=1, batch_size=3, lr=2e-5, device="cpu")
    result = finetune_hyperiqa(job, cfg, tmp_path / "ft", progress=False)
    assert result.best_epoch == 1
    saved = torch.load(tmp_path / "ft" / "best.pt", map_location="cpu", weights_only=True)
    assert "res.lda4_fc.weight" in saved and "fc5w_fc.weight" in saved  # official layout
    before = torch.load(start, map_location="cpu", weights_only=True)
    assert not torch.equal(saved["fc1w_conv.weight"], before["fc1w_conv.weight"])  # the hyper network trained
    assert not torch.equal(saved["res.layer4.2.conv3.weight"], before["res.layer4.2.conv3.weight"])
    scorer = load_scorer(tmp_path / "ft" / "best.pt", device="cpu")
    assert scorer.score_image(np.zeros((230, 230, 3), np.uint8)).score.shape == (1,)
    cfg_json = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert cfg_json["score_range"] == [1.0, 5.0]


def test_finetune_reports_missing_images_clearly(tmp_path):
    (tmp_path / "s.csv").write_text("image,mos\nnope.jpg,3\nalso.jpg,4\nthird.jpg,1\n")
    with pytest.raises(InvalidArgumentError, match="missing"):
        finetune_hyperiqa(FinetuneConfig(csv=str(tmp_path / "s.csv")), TrainConfig(epochs=1, device="cpu"), tmp_path / "r", progress=False)


# ----------------------------------------------------------------------------- CLI


def test_cli_train_face_on_a_cache_and_usage_errors(tmp_path):
    cache = _synthetic_trainset(200).save(tmp_path / "set.npz")
    runner = CliRunner()
    res = runner.invoke(main, ["train", "face", "--cache", str(cache), "--out", str(tmp_path / "run"), "--epochs", "2", "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    assert "best epoch" in res.output and (tmp_path / "run" / "best.pt").is_file()
    res = runner.invoke(main, ["train", "face", "--out", str(tmp_path / "run2")])
    assert res.exit_code == 2 and "--images" in res.output
    (tmp_path / "cfg.json").write_text(json.dumps({"train": {"bogus": 1}}))
    res = runner.invoke(main, ["train", "face", "--cache", str(cache), "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "r3")])
    assert res.exit_code == 2 and "bogus" in res.output
    res = runner.invoke(main, ["train", "export-face", str(tmp_path / "run"), "--to", str(tmp_path / "w.pt")])
    assert res.exit_code == 0 and json.loads(res.output)["file"] == "w.pt"


@pytest.mark.slow
def test_trainset_from_real_photos_is_identity_split_labelled_and_reproducible(lfw_dir, tmp_path):
    from faceiqa.training.trainset import build_face_trainset

    kwargs = dict(pairs_path=lfw_dir / "pairs.txt", limit_people=2, variants=3, val_variants=2, seed=5)
    ds = build_face_trainset(lfw_dir / "images", **kwargs)
    assert set(ds.person[ds.split == "train"]).isdisjoint(ds.person[ds.split == "val"])
    assert len(set(ds.person[ds.split == "val"])) == 2
    assert [s.shape[1:] for s in ds.stages] == [(3, 5, 5), (32, 10, 10), (32, 5, 5), (64, 2, 2), (128, 1, 1), (256, 2, 2)]
    pristine = ds.spec == "pristine"
    assert pristine.sum() == len(set(ds.key)) and np.all(ds.perceptual[pristine] == 1.0)
    assert np.all((ds.label >= 0) & (ds.label <= 1)) and np.all(ds.utility[~ds.detected] == 0)
    assert np.all(ds.extra <= 0) and np.all(ds.extra >= -4)
    # degraded versions score lower than their pristine photo on the perceptual label
    assert np.all(ds.perceptual[~pristine] < 1.0)
    again = build_face_trainset(lfw_dir / "images", **kwargs)
    np.testing.assert_array_equal(ds.label, again.label)
    for a, b in zip(ds.stages, again.stages):
        np.testing.assert_array_equal(a, b)
    back = FaceTrainSet.load(ds.save(tmp_path / "set.npz"))
    np.testing.assert_array_equal(back.label, ds.label)


def test_resume_refuses_a_planted_last_pt_without_running_it(tmp_path):
    from faceiqa.training.loop import read_resume_state

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "ran"), "w"))

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": {}, "obj": Payload()}, run / "last.pt")
    with pytest.raises(InvalidArgumentError, match="cannot resume") as info:
        read_resume_state(run / "last.pt")
    assert "weights_only" not in str(info.value) and not (tmp_path / "ran").exists()
    torch.save({"model": {}}, run / "last.pt")  # safe, but not a resume file
    with pytest.raises(InvalidArgumentError, match="not a faceiqa resume file"):
        read_resume_state(run / "last.pt")


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    import random

    from faceiqa.training.loop import restore_rng, rng_state

    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def _labelled_images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    with open(tmp_path / "scores.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "mos"])
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"im{i}.png")
            w.writerow([f"im{i}.png", i])
    return tmp_path / "scores.csv"


def test_finetune_without_the_koniq_file_says_so_once_and_leaves_nothing(tmp_path, caplog):
    csv_path = _labelled_images(tmp_path)
    res = CliRunner().invoke(main, ["train", "finetune", "--csv", str(csv_path), "--out", str(tmp_path / "ft"), "--device", "cpu"])
    assert res.exit_code == 1
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1 and "hyperiqa-koniq" in errors[0] and "faceiqa weights import" in errors[0]
    assert not (tmp_path / "ft").exists() or not any((tmp_path / "ft").iterdir())
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_finetune_of_a_face_model_points_to_train_face(tmp_path):
    csv_path = _labelled_images(tmp_path)
    res = CliRunner().invoke(
        main, ["train", "finetune", "--csv", str(csv_path), "--weights", "faceiqa-face", "--out", str(tmp_path / "ft"), "--device", "cpu"]
    )
    assert res.exit_code == 1 and "faceiqa train face" in res.output and "missing key" not in res.output
    assert not (tmp_path / "ft").exists() or not any((tmp_path / "ft").iterdir())
