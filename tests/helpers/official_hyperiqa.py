"""The official HyperIQA's key names and head sizes, and a tiny random-weight HyperNet.
"""

from __future__ import annotations

import torch

from faceiqa.models import HyperNet, ResNetBackbone

# Non-ResNet keys of koniq_pretrained.pkl (../shared/reference/anchors.md section 1.2).
OFFICIAL_HEAD = {
    "res.conv1.weight": (64, 3, 7, 7),
    "res.bn1.weight": (64,),
    "res.bn1.bias": (64,),
    "res.bn1.running_mean": (64,),
    "res.bn1.running_var": (64,),
    "res.lda1_pool.0.weight": (16, 256, 1, 1),
    "res.lda1_fc.weight": (16, 1024),
    "res.lda1_fc.bias": (16,),
    "res.lda2_pool.0.weight": (32, 512, 1, 1),
    "res.lda2_fc.weight": (16, 512),
    "res.lda2_fc.bias": (16,),
    "res.lda3_pool.0.weight": (64, 1024, 1, 1),
    "res.lda3_fc.weight": (16, 256),
    "res.lda3_fc.bias": (16,),
    "res.lda4_fc.weight": (176, 2048),
    "res.lda4_fc.bias": (176,),
    "conv1.0.weight": (1024, 2048, 1, 1),
    "conv1.0.bias": (1024,),
    "conv1.2.weight": (512, 1024, 1, 1),
    "conv1.2.bias": (512,),
    "conv1.4.weight": (112, 512, 1, 1),
    "conv1.4.bias": (112,),
    "fc1w_conv.weight": (512, 112, 3, 3),
    "fc1w_conv.bias": (512,),
    "fc1b_fc.weight": (112, 112),
    "fc1b_fc.bias": (112,),
    "fc2w_conv.weight": (128, 112, 3, 3),
    "fc2w_conv.bias": (128,),
    "fc2b_fc.weight": (56, 112),
    "fc2b_fc.bias": (56,),
    "fc3w_conv.weight": (32, 112, 3, 3),
    "fc3w_conv.bias": (32,),
    "fc3b_fc.weight": (28, 112),
    "fc3b_fc.bias": (28,),
    "fc4w_conv.weight": (8, 112, 3, 3),
    "fc4w_conv.bias": (8,),
    "fc4b_fc.weight": (14, 112),
    "fc4b_fc.bias": (14,),
    "fc5w_fc.weight": (14, 112),
    "fc5w_fc.bias": (14,),
    "fc5b_fc.weight": (1, 112),
    "fc5b_fc.bias": (1,),
}


def official_resnet_keys(with_nbt: bool) -> set[str]:
    """torchvision-named ResNet-50 body keys under ``res.`` (no stem, no classifier)."""
    bn = ["weight", "bias", "running_mean", "running_var"] + (["num_batches_tracked"] if with_nbt else [])
    keys = set()
    for layer, blocks in enumerate((3, 4, 6, 3), start=1):
        for b in range(blocks):
            p = f"res.layer{layer}.{b}"
            for i in (1, 2, 3):
                keys.add(f"{p}.conv{i}.weight")
                keys.update(f"{p}.bn{i}.{s}" for s in bn)
            if b == 0:
                keys.add(f"{p}.downsample.0.weight")
                keys.update(f"{p}.downsample.1.{s}" for s in bn)
    return keys


def tiny_random_hypernet(extra: int = 0, seed: int = 0) -> HyperNet:
    """A ResNet-shaped HyperNet small enough for fast tests (64 px input)."""
    torch.manual_seed(seed)
    backbone = ResNetBackbone(layers=(1, 1, 1, 1), widths=(4, 8, 16, 32), stem_width=8, input_size=64)
    return HyperNet(
        backbone,
        lda_out_channels=4,
        hyper_in_channels=8,
        target_in_size=32,
        target_fc_sizes=(16, 8, 8, 4),
        extra_target_inputs=extra,
    ).eval()
