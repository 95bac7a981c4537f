"""Checkpoint loading: official and pyiqa layouts, wrappers, prefixes, strictness, CUDA files."""

from __future__ import annotations

import zipfile

import pytest
import torch
from official_hyperiqa import OFFICIAL_HEAD, official_resnet_keys, tiny_random_hypernet

from faceiqa.errors import CheckpointError, WeightsNotFoundError
from faceiqa.models import hyperiqa_resnet50
from faceiqa.models.checkpoints import (
    OFFICIAL,
    PYIQA,
    detect_layout,
    hypernet_state_dict,
    load_hypernet_state,
    official_to_pyiqa,
    pyiqa_to_official,
    read_checkpoint,
    save_hypernet,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# The same tensors in pyiqa's layout (anchors.md section 2.1 mapping).
PYIQA_HEAD = {
    "base_model.conv1.weight": (64, 3, 7, 7),
    "lda_modules.0.0.weight": (16, 256, 1, 1),
    "lda_modules.0.3.weight": (16, 1024),
    "lda_modules.0.3.bias": (16,),
    "lda_modules.1.0.weight": (32, 512, 1, 1),
    "lda_modules.1.3.weight": (16, 512),
    "lda_modules.1.3.bias": (16,),
    "lda_modules.2.0.weight": (64, 1024, 1, 1),
    "lda_modules.2.3.weight": (16, 256),
    "lda_modules.2.3.bias": (16,),
    "lda_modules.3.2.weight": (176, 2048),
    "lda_modules.3.2.bias": (176,),
    "conv1.0.weight": (1024, 2048, 1, 1),
    "conv1.4.bias": (112,),
    "fc_w_modules.0.weight": (512, 112, 3, 3),
    "fc_w_modules.0.bias": (512,),
    "fc_w_modules.3.weight": (8, 112, 3, 3),
    "fc_w_modules.4.2.weight": (14, 112),
    "fc_w_modules.4.2.bias": (14,),
    "fc_b_modules.0.2.weight": (112, 112),
    "fc_b_modules.3.2.weight": (14, 112),
    "fc_b_modules.4.2.weight": (1, 112),
    "fc_b_modules.4.2.bias": (1,),
}


def synthetic_official_state(with_nbt: bool, seed: int = 10) -> dict[str, torch.Tensor]:
    """Random values with exactly the official key set and shapes."""
    torch.manual_seed(seed)
    sd = hyperiqa_resnet50().state_dict()
    out = {}
    for key, value in sd.items():
        if key.endswith("num_batches_tracked"):
            if with_nbt:
                out[key] = torch.tensor(1234)
        elif key.endswith("running_var"):
            out[key] = torch.rand_like(value) + 0.5
        else:
            out[key] = torch.randn_like(value) * 0.05
    expected = set(OFFICIAL_HEAD) | official_resnet_keys(with_nbt=False)
    if with_nbt:
        expected |= official_resnet_keys(with_nbt=True) | {"res.bn1.num_batches_tracked"}
    assert set(out) == expected and len(out) == (355 if with_nbt else 302)
    return out


def assert_loaded(model, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    for key, value in state.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded[key], value), key


@pytest.mark.full_size
def test_synthetic_official_file_loads_strictly(tmp_path):
    state = synthetic_official_state(with_nbt=False)
    path = tmp_path / "koniq_pretrained.pkl"
    torch.save(state, path)
    model = load_hypernet_state(hyperiqa_resnet50(), path, layout=OFFICIAL)
    assert_loaded(model, state)


@pytest.mark.full_size
def test_synthetic_pyiqa_layout_loads_strictly(tmp_path):
    state = synthetic_official_state(with_nbt=True, seed=11)
    py = official_to_pyiqa(state)
    body = {k for k in py if k.startswith("base_model.")}
    assert {k.replace("base_model.", "res.", 1) for k in body} == official_resnet_keys(True) | {
        "res.conv1.weight",
        "res.bn1.weight",
        "res.bn1.bias",
        "res.bn1.running_mean",
        "res.bn1.running_var",
        "res.bn1.num_batches_tracked",
    }
    for key, shape in PYIQA_HEAD.items():
        assert tuple(py[key].shape) == shape, key
    head = set(py) - body
    assert head == {k for k in head if k.split(".")[0] in ("lda_modules", "fc_w_modules", "fc_b_modules", "conv1")}
    assert len(py) == 355
    path = tmp_path / "HyperIQA-resnet50-koniq10k.pth"
    torch.save({"params": py}, path)
    assert detect_layout(read_checkpoint(path)) == PYIQA
    model = load_hypernet_state(hyperiqa_resnet50(), path)
    assert_loaded(model, state)


def test_layout_mappings_are_inverse():
    state = tiny_random_hypernet().state_dict()
    assert pyiqa_to_official(official_to_pyiqa(state)).keys() == state.keys()
    assert list(official_to_pyiqa(state)) != list(state)


def tiny_state(seed: int = 5) -> dict[str, torch.Tensor]:
    return tiny_random_hypernet(seed=seed).state_dict()


@pytest.mark.tiny_model
def test_missing_key_is_named():
    state = tiny_state()
    del state["fc5b_fc.bias"]
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): fc5b_fc\.bias"):
        load_hypernet_state(tiny_random_hypernet(), state)


@pytest.mark.tiny_model
def test_unexpected_key_is_named():
    state = tiny_state()
    state["res.lda9_fc.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\): res\.lda9_fc\.weight"):
        load_hypernet_state(tiny_random_hypernet(), state)


@pytest.mark.tiny_model
def test_misshaped_key_is_named_with_both_shapes():
    state = tiny_state()
    state["fc1b_fc.bias"] = torch.zeros(17)
    with pytest.raises(CheckpointError, match=r"fc1b_fc\.bias \(checkpoint \[17\], model \[16\]\)"):
        load_hypernet_state(tiny_random_hypernet(), state)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"module." + k: v for k, v in sd.items()},
        lambda sd: {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")},
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"params": sd},
        lambda sd: {"model": {"module." + k: v for k, v in sd.items()}, "optimizer": {"lr": 1e-4}},
    ],
    ids=["module-prefix", "no-num_batches_tracked", "state_dict-wrapper", "params-wrapper", "nested"],
)
@pytest.mark.tiny_model
def test_checkpoint_variants_load(tmp_path, wrap):
    state = tiny_state()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(state), path)
    model = load_hypernet_state(tiny_random_hypernet(seed=99), path)
    assert_loaded(model, state)


@pytest.mark.tiny_model
def test_legacy_serialization_loads(tmp_path):
    """Files written by torch < 1.6 (the official checkpoint's era) use the legacy format."""
    state = tiny_state()
    path = tmp_path / "legacy.pkl"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    assert_loaded(load_hypernet_state(tiny_random_hypernet(seed=8), path), state)


def _relocate_to_cuda(src, dst) -> None:
    """Rewrite a torch zip checkpoint so that its storages claim to live on cuda:0."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(info.filename, data)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA to prove the mapping")
@pytest.mark.tiny_model
def test_checkpoint_saved_on_cuda_loads_on_cpu(tmp_path):
    state = tiny_state()
    cpu_file, cuda_file = tmp_path / "cpu.pth", tmp_path / "cuda.pth"
    torch.save(state, cpu_file)
    _relocate_to_cuda(cpu_file, cuda_file)
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(cuda_file, weights_only=True)  # what the official demo does
    loaded = read_checkpoint(cuda_file)
    assert all(v.device.type == "cpu" for v in loaded.values())
    model = load_hypernet_state(tiny_random_hypernet(seed=7), cuda_file)
    assert_loaded(model, state)


@pytest.mark.tiny_model
def test_official_and_pyiqa_files_give_identical_outputs(tmp_path):
    source = tiny_random_hypernet(seed=21)
    off = save_hypernet(source, tmp_path / "official.pth", OFFICIAL)
    py = save_hypernet(source, tmp_path / "pyiqa.pth", PYIQA)
    assert set(torch.load(py, weights_only=True)) == {"params"}
    a = load_hypernet_state(tiny_random_hypernet(seed=1), off)
    b = load_hypernet_state(tiny_random_hypernet(seed=2), py)
    x = torch.rand(3, 3, 64, 64)
    with torch.inference_mode():
        ya, yb, ys = a(x), b(x), source(x)
    assert torch.equal(ya, yb) and torch.equal(ya, ys)


def test_hypernet_state_dict_can_drop_num_batches_tracked():
    model = tiny_random_hypernet()
    full = hypernet_state_dict(model)
    lean = hypernet_state_dict(model, num_batches_tracked=False)
    assert any(k.endswith("num_batches_tracked") for k in full)
    assert not any(k.endswith("num_batches_tracked") for k in lean)


def test_declared_layout_must_match_the_keys():
    state = official_to_pyiqa(tiny_state())
    with pytest.raises(CheckpointError, match="declared as hyperiqa-official"):
        load_hypernet_state(tiny_random_hypernet(), state, layout=OFFICIAL)


def test_bad_files_give_checkpoint_errors(tmp_path):
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pkl: not a readable torch checkpoint"):
        read_checkpoint(garbage)
    scalars = tmp_path / "scalars.pth"
    torch.save({"epoch": 3, "lr": 0.1}, scalars)
    with pytest.raises(CheckpointError, match="no state dict of tensors"):
        read_checkpoint(scalars)
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="neither the official nor the pyiqa layout"):
        load_hypernet_state(tiny_random_hypernet(), other)
    with pytest.raises(WeightsNotFoundError):
        read_checkpoint(tmp_path / "missing.pth")


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "obj": zipfile.ZipInfo("x")}, path)
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint of plain tensors"):
        read_checkpoint(path)


class _Payload:
    """Pickles to a call that would create a marker file when unpickled unsafely."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_runs_code_is_refused_without_unsafe_advice(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "planted.pt"
    torch.save({"w": torch.zeros(1), "x": _Payload(marker)}, path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert "refused" in message and "weights_only" not in message and "\n" not in message
    assert not marker.exists()


def test_a_compressed_bomb_is_refused_from_its_zip_directory(tmp_path, monkeypatch):
    import faceiqa.models.checkpoints as ck

    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb/data.pkl", b"\x80\x02}q\x00.")
        with z.open("bomb/data/0", "w", force_zip64=True) as out:
            chunk = bytes(1 << 20)
            for _ in range(64):  # 64 MiB of zeros in about 64 KB
                out.write(chunk)
    assert path.stat().st_size < 1 << 20

    def never(*args, **kwargs):
        raise AssertionError("torch.load must not see the bomb")

    monkeypatch.setattr(ck.torch, "load", never)
    with pytest.raises(CheckpointError, match="compressed bomb") as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value)


def test_a_real_checkpoint_passes_the_archive_check(tmp_path):
    import faceiqa.models.checkpoints as ck

    path = tmp_path / "ok.pt"
    torch.save({"w": torch.randn(256, 256)}, path)
    ck.check_archive(path)
    assert torch.equal(read_checkpoint(path)["w"], torch.load(path, weights_only=True)["w"])
