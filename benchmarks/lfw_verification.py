#!/usr/bin/env python3
"""LFW verification accuracy of the dlib ResNet recognizer with MTCNN alignment.

For every photo named in ``pairs.txt``: detect faces with MTCNN, keep the one whose box
centre is closest to the image centre, align it to dlib's 150x150 chip (template
``dlib-150``) from its five landmarks and compute the 128-d descriptor. Photos without a
detection are aligned with the median landmarks of the detected photos (a fixed centre
crop; they are counted and reported). Pair distances then go through the standard k-fold
threshold protocol (``faceiqa.evaluation.verification.kfold_accuracy``).

Usage (from the repository root; about 10 minutes on 2 CPU cores for all 8 folds)::

    python benchmarks/lfw_verification.py                      # ../shared/data/lfw-train
    python benchmarks/lfw_verification.py --lfw DIR --folds 0  # one fold only

Descriptors are cached (``--cache``, default: a folder in the system temp dir) keyed by the
weights file, the template and the detector, so a second run only redoes the protocol.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from faceiqa.evaluation.verification import kfold_accuracy, read_pairs
from faceiqa.face.alignment import align_face, get_template
from faceiqa.face.recognition import FaceRecognizer
from faceiqa.models.dlib_resnet import TEMPLATE_NAME, default_weights_path

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("lfw_verification")


def _load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


class _Detector:
    """MTCNN through faceiqa.face.detection.FaceDetector, or facenet-pytorch directly without it."""

    def __init__(self, device: str) -> None:
        try:
            from faceiqa.face.detection import FaceDetector
        except ImportError:
            from facenet_pytorch import MTCNN

            self._faceiqa = None
            self._mtcnn = MTCNN(keep_all=True, device=device)
            self.name = "facenet_pytorch.MTCNN(keep_all=True)"
        else:
            self._faceiqa = FaceDetector(device=device)
            self.name = repr(self._faceiqa)

    def detect(self, images: list[np.ndarray]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """Per image, a list of (box (4,), landmarks (5, 2)) in image pixels."""
        if self._faceiqa is not None:
            found = self._faceiqa.detect_batch(images, batch_size=len(images))
            return [[(np.asarray(f.box, float), np.asarray(f.landmarks, float)) for f in faces] for faces in found]
        out = []
        for im in images:
            boxes, _, points = self._mtcnn.detect(im, landmarks=True)
            faces = [] if boxes is None else list(zip(boxes, points))
            out.append([(np.asarray(b, float), np.asarray(p, float)) for b, p in faces])
        return out


def _central_face(faces: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, ...]) -> np.ndarray | None:
    if not faces:
        return None
    centre = np.array([shape[1], shape[0]], float) / 2.0
    dist = [np.linalg.norm((box[:2] + box[2:]) / 2.0 - centre) for box, _ in faces]
    return faces[int(np.argmin(dist))][1]


def compute_descriptors(
    paths: list[Path], recognizer: FaceRecognizer, detector: _Detector, batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors (N, 128) and a (N,) bool array marking photos that fell back to the centre crop."""
    template = get_template(TEMPLATE_NAME)
    landmarks: list[np.ndarray | None] = []
    shapes: list[tuple[int, ...]] = []
    for start in tqdm(range(0, len(paths), batch), desc="detect", unit="batch"):
        images = [_load_rgb(p) for p in paths[start : start + batch]]
        for im, faces in zip(images, detector.detect(images)):
            landmarks.append(_central_face(faces, im.shape))
            shapes.append(im.shape)
    found = [lm / [s[1], s[0]] for lm, s in zip(landmarks, shapes) if lm is not None]
    if not found:
        raise SystemExit("no face detected in any photo")
    median_rel = np.median(np.stack(found), axis=0)
    fallback = np.array([lm is None for lm in landmarks])
    descriptors = np.empty((len(paths), 128), np.float32)
    for start in tqdm(range(0, len(paths), batch), desc="embed", unit="batch"):
        chips = []
        for i in range(start, min(start + batch, len(paths))):
            lm = landmarks[i] if landmarks[i] is not None else median_rel * [shapes[i][1], shapes[i][0]]
            chips.append(align_face(_load_rgb(paths[i]), lm, template))
        descriptors[start : start + len(chips)] = recognizer.embed(np.stack(chips))
    return descriptors, fallback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="LFW k-fold verification accuracy (dlib ResNet, MTCNN alignment)")
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw-train",
                        help="folder with pairs.txt and images/<Name>/<Name>_NNNN.jpg")
    parser.add_argument("--folds", default="", help="comma-separated 0-based folds to use (default: all)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "faceiqa-lfw-cache")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the descriptor cache")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    pairs = read_pairs(args.lfw / "pairs.txt")
    if args.folds:
        wanted = {int(f) for f in args.folds.split(",")}
        pairs = [p for p in pairs if p.fold in wanted]
    images_dir = args.lfw / "images"
    paths = sorted({path for p in pairs for path in p.paths(images_dir)})
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"{len(missing)} photos named in pairs.txt are missing, e.g. {missing[0]}")

    t0 = time.perf_counter()
    recognizer = FaceRecognizer(device=args.device, batch_size=args.batch)
    detector = _Detector(args.device)
    template_points = repr(np.round(get_template(TEMPLATE_NAME).points, 6).tolist())
    key = hashlib.sha256((default_weights_path().name + template_points + detector.name).encode()).hexdigest()[:16]
    cache_file = args.cache / f"lfw-dlib-{key}.npz"
    cached: dict[str, tuple[np.ndarray, bool]] = {}
    if not args.no_cache and cache_file.is_file():
        with np.load(cache_file) as z:
            cached = {n: (d, bool(f)) for n, d, f in zip(z["names"], z["descriptors"], z["fallback"])}
    rel = [str(p.relative_to(images_dir)) for p in paths]
    todo = [i for i, r in enumerate(rel) if r not in cached]
    log.info("%d photos, %d cached, detector %s, torch threads %d", len(paths), len(paths) - len(todo),
             detector.name, torch.get_num_threads())
    if todo:
        desc, fb = compute_descriptors([paths[i] for i in todo], recognizer, detector, args.batch)
        for i, d, f in zip(todo, desc, fb):
            cached[rel[i]] = (d, bool(f))
        if not args.no_cache:
            args.cache.mkdir(parents=True, exist_ok=True)
            names = sorted(cached)
            np.savez(cache_file, names=np.array(names), descriptors=np.stack([cached[n][0] for n in names]),
                     fallback=np.array([cached[n][1] for n in names]))
    index = {r: i for i, r in enumerate(rel)}
    descriptors = np.stack([cached[r][0] for r in rel])
    fallback = np.array([cached[r][1] for r in rel])

    a = np.array([index[str(p.paths(images_dir)[0].relative_to(images_dir))] for p in pairs])
    b = np.array([index[str(p.paths(images_dir)[1].relative_to(images_dir))] for p in pairs])
    distances = np.linalg.norm(descriptors[a] - descriptors[b], axis=1)
    genuine = np.array([p.genuine for p in pairs])
    folds = np.array([p.fold for p in pairs])
    result = kfold_accuracy(distances, genuine, folds) if len(np.unique(folds)) > 1 else None

    print(f"LFW pairs: {len(pairs)} ({genuine.sum()} genuine) in {len(np.unique(folds))} folds; photos: {len(paths)}")
    print(f"detector: {detector.name}; no face found (centre-crop fallback): {int(fallback.sum())} photos")
    print(f"accuracy at the fixed threshold 0.6: {np.mean((distances < 0.6) == genuine):.4f}")
    if result is None:
        print("only one fold selected: the k-fold protocol needs at least two")
    else:
        for f, acc, th in zip(result.folds, result.accuracies, result.thresholds):
            print(f"  fold {f}: accuracy {acc:.4f} at threshold {th:.4f}")
        print(f"LFW {len(result.folds)}-fold accuracy: {100 * result.mean:.2f}% +- {100 * result.std:.2f}%")
    print(f"time: {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
