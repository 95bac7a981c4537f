#!/usr/bin/env python3
"""Convert face-api's TF.js face recognition weights into faceiqa's recognizer file.

Source: the npm package ``@vladmandic/face-api`` 1.7.15 (MIT; the network is dlib's
``dlib_face_recognition_resnet_model_v1``, CC0). To redo the conversion from scratch::

    cd "$(mktemp -d)"
    npm pack @vladmandic/face-api@1.7.15          # vladmandic-face-api-1.7.15.tgz
    tar xzf vladmandic-face-api-1.7.15.tgz        # package/model/face_recognition_model*
    python <repo>/tools/convert_face_api.py package/model \\
        --out <repo>/pretrained/dlib_face_recognition_resnet_v1.pt

then put the printed size and sha256 into ``pretrained/manifest.json`` (entry
``dlib-resnet``). The bytes written depend only on the input and the torch
serialisation format, so the same torch version reproduces the same sha256.

What it does: reads ``face_recognition_model-weights_manifest.json`` and the binary shard
(tensors concatenated in manifest order, uint8-quantised ones 1 byte per value, float32
ones 4 bytes little-endian), renames every tensor to the ``DlibResNet`` state-dict key
(``conv64_down/conv1/conv/filters`` -> ``conv64_down.conv1.conv.weight``), moves conv
filters from TF's HWIO to torch's OIHW layout and transposes ``fc`` (256x128 -> 128x256).
Quantised tensors stay uint8 together with their ``min`` and ``scale`` (float64, as in
the JSON); ``faceiqa.models.dlib_resnet.load_state_dict`` dequantises them at load time as TF.js
does, ``float32(q * scale + min)``. Nothing is rounded or re-quantised here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from faceiqa.models.dlib_resnet import _FORMAT, DlibResNet

MANIFEST = "face_recognition_model-weights_manifest.json"
_DTYPES = {"float32": np.dtype("<f4"), "uint8": np.dtype("u1")}


def _torch_key(tf_name: str) -> tuple[str, str]:
    """(state-dict key, layout kind) of a face-api tensor name."""
    if tf_name == "fc":
        return "fc.weight", "fc"
    *path, leaf = tf_name.split("/")
    prefix = ".".join(path)
    table = {
        ("conv", "filters"): ("weight", "conv"),
        ("conv", "bias"): ("bias", "vector"),
        ("scale", "weights"): ("weight", "vector"),
        ("scale", "biases"): ("bias", "vector"),
    }
    try:
        suffix, kind = table[(path[-1], leaf)]
    except (KeyError, IndexError):
        raise SystemExit(f"unexpected tensor name in the manifest: {tf_name}") from None
    return f"{prefix}.{suffix}", kind


def _to_torch_layout(arr: np.ndarray, kind: str) -> np.ndarray:
    if kind == "conv":  # HWIO -> OIHW
        return np.ascontiguousarray(arr.transpose(3, 2, 0, 1))
    if kind == "fc":  # (in, out) -> (out, in), as nn.Linear stores it
        return np.ascontiguousarray(arr.T)
    return np.ascontiguousarray(arr)


def read_face_api(src: Path) -> dict[str, object]:
    """Read the TF.js manifest + shard into ``{key: float32 tensor | {"q", "min", "scale"}}``."""
    groups = json.loads((src / MANIFEST).read_text())
    tensors: dict[str, object] = {}
    for group in groups:
        shard = b"".join((src / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            quant = spec.get("quantization")
            dtype = _DTYPES[quant["dtype"] if quant else spec["dtype"]]
            count = int(np.prod(spec["shape"]))
            nbytes = count * dtype.itemsize
            if offset + nbytes > len(shard):
                raise SystemExit(f"shard too short for {spec['name']}")
            arr = np.frombuffer(shard, dtype=dtype, count=count, offset=offset).reshape(spec["shape"])
            offset += nbytes
            key, kind = _torch_key(spec["name"])
            arr = _to_torch_layout(arr, kind)
            if quant:
                tensors[key] = {
                    "q": torch.from_numpy(arr.copy()),
                    "min": float(quant["min"]),
                    "scale": float(quant["scale"]),
                }
            else:
                tensors[key] = torch.from_numpy(arr.astype(np.float32))
        if offset != len(shard):
            raise SystemExit(f"{len(shard) - offset} bytes left over in the shard")
    return tensors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help=f"folder holding {MANIFEST} and its shard")
    parser.add_argument("--out", type=Path, required=True, help="output .pt file")
    args = parser.parse_args(argv)

    tensors = read_face_api(args.src)
    expected = DlibResNet().state_dict()
    shapes = {k: tuple((v["q"] if isinstance(v, dict) else v).shape) for k, v in tensors.items()}
    if set(shapes) != set(expected) or any(shapes[k] != tuple(expected[k].shape) for k in expected):
        diff = sorted(set(shapes) ^ set(expected)) or [k for k in expected if shapes[k] != tuple(expected[k].shape)]
        raise SystemExit(f"tensors do not fit DlibResNet, e.g. {diff[:3]}")
    blob = {
        "format": _FORMAT,
        "source": "npm @vladmandic/face-api@1.7.15 model/face_recognition_model (TF.js, uint8-quantised)",
        "tensors": {k: tensors[k] for k in expected},  # state-dict order
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, args.out)
    data = args.out.read_bytes()
    n_q = sum(isinstance(v, dict) for v in tensors.values())
    print(f"{args.out}: {len(tensors)} tensors ({n_q} uint8), {len(data)} bytes")
    print(f"sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
