"""HyperNet structure (official keys and shapes), target network and pooling equivalences."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from official_hyperiqa import OFFICIAL_HEAD, official_resnet_keys, tiny_random_hypernet
from torch import nn

from faceiqa.errors import InvalidArgumentError
from faceiqa.models import HyperNet, ResNetBackbone, hyperiqa_resnet50
from faceiqa.models.hypernet import FeatureTaps, LDABackbone, LDAPool, TargetNetParams, target_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")






@pytest.fixture(scope="module")
def full_model() -> HyperNet:
    torch.manual_seed(0)
    return hyperiqa_resnet50().eval()




def test_state_dict_keys_and_shapes_equal_the_official_checkpoint(full_model):
    sd = full_model.state_dict()
    assert len(sd) == 355
    no_nbt = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert len(no_nbt) == 302
    expected = set(OFFICIAL_HEAD) | official_resnet_keys(with_nbt=False)
    assert set(no_nbt) == expected
    assert set(sd) == expected | official_resnet_keys(with_nbt=True) | {"res.bn1.num_batches_tracked"}
    for key, shape in OFFICIAL_HEAD.items():
        assert tuple(sd[key].shape) == shape, key
    assert sum(v.numel() for v in no_nbt.values()) == 27_428_489
    assert sum(p.numel() for p in full_model.parameters()) == 27_375_369


def test_resnet_body_shapes_equal_torchvision_resnet50(full_model):
    tv = torchvision.models.resnet50(weights=None).state_dict()
    sd = full_model.state_dict()
    body = {k[len("res.") :]: v for k, v in sd.items() if k.startswith("res.") and "lda" not in k}
    assert set(body) == set(tv) - {"fc.weight", "fc.bias"}
    for key, value in body.items():
        assert value.shape == tv[key].shape, key


def reference_official_forward(model: HyperNet, img: torch.Tensor) -> torch.Tensor:
    """The official computation written out: fixed AvgPool2d(7, 7) LDA pooling, .view()
    reshapes of the generated weights and the grouped-conv TargetFC."""
    res = model.res
    x = res.maxpool(res.relu(res.bn1(res.conv1(img))))
    vec = []
    for k in (1, 2, 3):
        x = getattr(res, f"layer{k}")(x)
        conv = getattr(res, f"lda{k}_pool")[0]
        pooled = nn.AvgPool2d(7, stride=7)(conv(x))
        vec.append(getattr(res, f"lda{k}_fc")(pooled.view(x.size(0), -1)))
    x = res.layer4(x)
    vec.append(res.lda4_fc(nn.AvgPool2d(7, stride=7)(x).view(x.size(0), -1)))
    target_in = torch.cat(vec, 1).view(-1, 224, 1, 1)
    feat = model.conv1(x).view(-1, 112, 7, 7)
    pooled = nn.AdaptiveAvgPool2d((1, 1))(feat).view(feat.size(0), -1)
    sizes = (224, 112, 56, 28, 14)
    layers = []
    for i in range(1, 5):
        w = getattr(model, f"fc{i}w_conv")(feat).view(-1, sizes[i], sizes[i - 1], 1, 1)
        layers.append((w, getattr(model, f"fc{i}b_fc")(pooled).view(-1, sizes[i])))
    layers.append((model.fc5w_fc(pooled).view(-1, 1, 14, 1, 1), model.fc5b_fc(pooled).view(-1, 1)))
    q = target_in
    for i, (w, b) in enumerate(layers):
        batch = q.shape[0]
        q_re = q.view(1, batch * q.shape[1], 1, 1)
        out = F.conv2d(q_re, w.view(w.shape[0] * w.shape[1], w.shape[2], 1, 1), b.view(-1), groups=batch)
        q = out.view(batch, w.shape[1], 1, 1)
        if i < 4:
            q = torch.sigmoid(q)
    return q.view(-1)


def test_full_model_matches_the_official_computation_at_224(full_model):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        params = full_model.hyper_params(x)
        ours = target_network(params)
        ref = reference_official_forward(full_model, x)
    assert ours.shape == (2,)
    # Same operations up to the target layers (bmm vs grouped conv): float32 rounding only.
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert [tuple(w.shape) for w in params.weights] == [
        (2, 112, 224),
        (2, 56, 112),
        (2, 28, 56),
        (2, 14, 28),
        (2, 1, 14),
    ]
    assert [tuple(b.shape) for b in params.biases] == [(2, 112), (2, 56), (2, 28), (2, 14), (2, 1)]
    assert tuple(params.inputs.shape) == (2, 224)


def test_lda_pool_is_the_official_avgpool_bit_for_bit_at_224_sizes():
    torch.manual_seed(2)
    for side, channels in ((56, 16), (28, 32), (14, 64), (7, 2048)):
        x = torch.randn(2, channels, side, side)
        official = nn.AvgPool2d(7, stride=7)(x)
        ours = LDAPool(side // 7)(x)
        assert torch.equal(ours, official), side
        # Plain adaptive pooling computes the same means, up to float32 rounding.
        torch.testing.assert_close(nn.AdaptiveAvgPool2d(side // 7)(x), official, rtol=0, atol=1e-6)


def test_lda_pool_is_adaptive_on_other_sizes():
    x = torch.randn(1, 3, 10, 10)
    assert torch.equal(LDAPool(2)(x), F.adaptive_avg_pool2d(x, 2))
    assert LDAPool(1)(torch.randn(1, 5, 3, 3)).shape == (1, 5, 1, 1)


def official_target_fc(q: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    batch = q.shape[0]
    out = F.conv2d(q.reshape(1, -1, 1, 1), w.reshape(-1, w.shape[2], 1, 1), b.reshape(-1), groups=batch)
    return out.view(batch, w.shape[1])


@pytest.mark.parametrize("batch", [1, 3])
def test_target_network_matches_grouped_conv_and_keeps_the_batch_dim(batch):
    torch.manual_seed(batch)
    sizes = (224, 112, 56, 28, 14, 1)
    weights = tuple(torch.randn(batch, sizes[i + 1], sizes[i]) * 0.1 for i in range(5))
    biases = tuple(torch.randn(batch, sizes[i + 1]) for i in range(5))
    inputs = torch.randn(batch, 224)
    ours = target_network(TargetNetParams(inputs, weights, biases))
    q = inputs
    for i in range(5):
        q = official_target_fc(q, weights[i], biases[i])
        if i < 4:  # sigmoid after the first four layers, linear output
            q = torch.sigmoid(q)
    assert ours.shape == (batch,)
    torch.testing.assert_close(ours, q[:, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.tiny_model
def test_batch_of_one_equals_its_row_in_a_batch():
    model = tiny_random_hypernet()
    x = torch.randn(4, 3, 64, 64)
    with torch.inference_mode():
        full = model(x)
        singles = torch.cat([model(x[i : i + 1]) for i in range(4)])
    assert singles.shape == (4,)
    torch.testing.assert_close(singles, full, rtol=0, atol=1e-6)


@pytest.mark.tiny_model
def test_extra_target_inputs_change_the_output_and_keep_official_keys():
    plain = tiny_random_hypernet(extra=0)
    model = tiny_random_hypernet(extra=1)
    assert set(model.state_dict()) - set(plain.state_dict()) == {"fc1w_extra_fc.weight", "fc1w_extra_fc.bias"}
    assert tuple(model.fc1w_extra_fc.weight.shape) == (16 * 1, 8)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        a = model(x, torch.tensor([[0.0], [0.0]]))
        b = model(x, torch.tensor([[3.0], [3.0]]))
        params = model.hyper_params(x, torch.zeros(2, 1))
    assert not torch.allclose(a, b)
    assert tuple(params.inputs.shape) == (2, 33) and tuple(params.weights[0].shape) == (2, 16, 33)
    with pytest.raises(InvalidArgumentError, match="extra"):
        model(x)
    with pytest.raises(InvalidArgumentError, match="no extra"):
        plain(x, torch.zeros(2, 1))


class FaceLikeBackbone(LDABackbone):
    """Stand-in for a face network: 4 stages of 32/64/128/256 channels on a 150 px chip."""

    def __init__(self) -> None:
        super().__init__()
        chans = (32, 64, 128, 256)
        self.stages = nn.ModuleList()
        prev = 3
        for i, c in enumerate(chans):
            stride = 4 if i == 0 else 2
            self.stages.append(nn.Sequential(nn.Conv2d(prev, c, 3, stride=stride, padding=1), nn.ReLU()))
            prev = c
        self.taps = FeatureTaps(channels=chans, sizes=(38, 19, 10, 5), input_size=150)

    def stage_features(self, x):
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


@pytest.mark.tiny_model
def test_head_adapts_to_another_backbone():
    torch.manual_seed(3)
    model = HyperNet(
        FaceLikeBackbone(), target_fc_sizes=(112, 56, 28, 14), feature_size=7, extra_target_inputs=1
    ).eval()
    # Taps drive the head's sizes: LDA grids from stage sizes, conv1 from 256 semantic channels.
    assert tuple(model.res.lda1_pool[0].weight.shape) == (16, 32, 1, 1)
    assert tuple(model.res.lda1_fc.weight.shape) == (16, 16 * 5 * 5)
    assert tuple(model.res.lda4_fc.weight.shape) == (176, 256)
    assert tuple(model.conv1[0].weight.shape) == (128, 256, 1, 1)
    x = torch.randn(2, 3, 150, 150)
    with torch.inference_mode():
        out = model(x, torch.ones(2, 1))
    assert out.shape == (2,) and torch.isfinite(out).all()
    # Left to its semantic size (5), the default sizes do not divide: a clear error.
    with pytest.raises(InvalidArgumentError, match="divisible by feature_size"):
        HyperNet(FaceLikeBackbone())


def test_backbone_without_lda_refuses_to_run_and_lda_is_built_once():
    backbone = ResNetBackbone(layers=(1, 1, 1, 1), widths=(4, 8, 16, 32), stem_width=8, input_size=64)
    with pytest.raises(InvalidArgumentError, match="build_lda"):
        backbone(torch.randn(1, 3, 64, 64))
    HyperNet(backbone, lda_out_channels=4, hyper_in_channels=8, target_in_size=32, target_fc_sizes=(16, 8, 8, 4))
    with pytest.raises(InvalidArgumentError, match="already built"):
        backbone.build_lda(4, 32)
