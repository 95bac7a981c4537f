#!/usr/bin/env python3
"""End-to-end throughput of faceiqa (decode -> detect -> align -> score) on generated photos.

Prints figures, asserts nothing. Run from the repository root::

    python benchmarks/throughput.py --quick                  # about 2-3 minutes on 2 cores
    python benchmarks/throughput.py                          # the full run (about 15 minutes)
    python benchmarks/throughput.py --weights faceiqa-face   # any registry name or head file
    python benchmarks/throughput.py --configs default --skip split,scoring   # reference ratio only

What it does:

1. Writes JPEG folders (temporary, removed afterwards unless ``--keep``) of 640x480 and
   1920x1080 photos with 1 and 4 LFW faces each (``benchmarks/common.py``).
2. For the default model (``--weights``) and the ResNet-50 HyperIQA (random weights in the
   official layout unless ``--r50 PATH``): the per-stage time split (each stage run alone in
   the calling thread, fp32, at torch's thread count and at 1 thread), then photos/s and
   faces/s of ``FaceQualityAssessor.assess_many`` in several configurations (``--configs``):

   ``default``        the library defaults: the ``auto`` thread plan (a detection worker per
                      CPU, one torch thread per stage);
   ``exact``          the ``exact`` thread plan, the reference the golden scores were made with;
   ``overlap-exact``  a detection thread (``detect_workers=1``) overlapping scoring, every
                      stage at torch's thread count (results identical to ``default``);
   ``mt1``            MTCNN with 1 torch thread (``mtcnn_threads=1``), sequential;
   ``overlap-t1``     a detection thread with MTCNN on 1 torch thread, scoring in the main
                      thread on 1 torch thread (one core each);
   ``overlap2-t1``    two detection threads (MTCNN on 1 thread each), scoring on 1 thread;
   ``overlap2-bf16``  ``overlap2-t1`` with ``precision="bf16"`` (CPUs with native bf16 only);
   ``overlap2-compile`` ``overlap2-t1`` with ``compile=True`` (only with ``--compile``: the
                      first calls compile for about a minute, outside the timed passes).

   Each configuration's results are compared with ``default``'s (``=`` identical, else the
   largest score difference).
3. Scoring alone (crops/s of ``score_crops`` on aligned crops) for batch sizes 1, 8, 32
   and fp32 / channels_last / bf16, at 1 and at torch's thread count.
4. The reference protocol of the official HyperIQA test code with the ResNet-50 model:
   each detected face (same decoding and detection as ours) is cut out with a 20 % margin,
   resized to 384 x 512 (the official ``Resize((512, 384))``) and scored as the mean of 25
   random 224 x 224 crops, one forward pass each (batch 1, fp32). Printed: its photos/s and
   the ratio of ours to it.

The machine, the load average and other heavy faceiqa processes are printed first: take
figures for the record on a quiet machine (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    CpuMeter,
    PhotoSet,
    busy_processes,
    load_average,
    make_photo_set,
    print_header,
    random_resnet50_weights,
    temp_root,
)

from faceiqa.api import FaceQualityAssessor
from faceiqa.errors import FaceIQAError  # noqa: E402
from faceiqa.images import to_rgb
from faceiqa.models import QualityScorer, load_scorer  # noqa: E402
from faceiqa.models.scorer import cpu_supports_bf16  # noqa: E402

CONFIGS = {
    # name: (thread plan, detect_workers, mtcnn_threads, score_threads (None: from the plan), precision)
    "default": ("auto", None, None, None, "fp32"),  # the library default: the "auto" thread plan
    "exact": ("exact", None, None, None, "fp32"),  # the reference plan (v1's default)
    "overlap-exact": ("exact", 1, None, None, "fp32"),
    "mt1": ("exact", 0, 1, None, "fp32"),
    "overlap-t1": ("auto", 1, 1, 1, "fp32"),
    "overlap2-t1": ("auto", 2, 1, 1, "fp32"),
    "overlap2-bf16": ("auto", 2, 1, 1, "bf16"),
    "overlap2-compile": ("auto", 2, 1, 1, "fp32"),  # and torch.compile (only with --compile)
}


def _spin() -> None:
    while True:
        pass


class CompetingLoad:
    """``n`` busy processes (one spinning core each) for the length of a ``with`` block."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.procs: list = []

    def __enter__(self) -> CompetingLoad:
        import multiprocessing as mp

        self.procs = [mp.Process(target=_spin, daemon=True) for _ in range(self.n)]
        for proc in self.procs:
            proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.join()


@dataclass
class Row:
    model: str
    photos: str
    config: str
    photos_s: float
    faces_s: float
    same: str
    notes: list[str] = field(default_factory=list)


def _fmt_ms(seconds: float, count: int) -> str:
    return f"{1000.0 * seconds / max(count, 1):7.1f}"


def stage_split(assessor: FaceQualityAssessor, photos: PhotoSet, batch_size: int) -> tuple[dict[str, float], int]:
    """Seconds per stage over the whole set, each stage run alone in this thread."""
    t0 = time.perf_counter()
    images = [to_rgb(p) for p in photos.files]
    t1 = time.perf_counter()
    found = [assessor.detector.detect(im) for im in images]
    t2 = time.perf_counter()
    crops = [c for im, faces in zip(images, found) for c in assessor.align(im, faces)]
    eyes = [f.eye_distance for faces in found for f in faces]
    t3 = time.perf_counter()
    for start in range(0, len(crops), batch_size):
        assessor.score_crops(crops[start : start + batch_size], eye_distance=eyes[start : start + batch_size])
    t4 = time.perf_counter()
    return {"decode": t1 - t0, "detect": t2 - t1, "align": t3 - t2, "score": t4 - t3}, len(crops)


def run_config(
    make: callable, photos: PhotoSet, config: str, repeats: int
) -> tuple[float, float, list[tuple[str, tuple[float, ...]]], float]:
    plan, detect_workers, mtcnn_threads, threads, precision = CONFIGS[config]
    assessor = make(
        threads=plan,
        detect_workers=detect_workers,
        mtcnn_threads=mtcnn_threads,
        score_threads=threads,
        precision=precision,
        compile=config.endswith("compile"),
    )
    list(assessor.assess_many(photos.files[:2]))  # warm-up (allocators, oneDNN primitives)
    if config.endswith("compile"):  # compile for the batch sizes the timed passes meet
        list(assessor.assess_many(photos.files))
    best = float("inf")
    others = cpu_per_photo = float("nan")
    results: list = []
    for _ in range(repeats):
        meter = CpuMeter().start()
        c0 = os.times()
        t = time.perf_counter()
        out = list(assessor.assess_many(photos.files))
        elapsed = time.perf_counter() - t
        c1 = os.times()
        if elapsed < best:
            best, others = elapsed, meter.stop()[1]
            cpu_per_photo = ((c1.user - c0.user) + (c1.system - c0.system)) / len(photos.files)
        results = [(r.source, tuple(f.score for f in r.faces)) for r in out]
    n_faces = sum(len(s) for _, s in results)
    return len(photos.files) / best, n_faces / best, results, others, cpu_per_photo


def compare(a: list, b: list) -> str:
    if a == b:
        return "="
    if [s for s, _ in a] != [s for s, _ in b] or [len(x) for _, x in a] != [len(x) for _, x in b]:
        return "faces differ"
    diffs = [abs(x - y) for (_, xs), (_, ys) in zip(a, b) for x, y in zip(xs, ys)]
    return f"max|d|={max(diffs):.1e}" if diffs else "="


def scoring_alone(
    scorer: QualityScorer, crops: list[np.ndarray], eyes: list[float], assessor: FaceQualityAssessor, compile: bool
) -> tuple[list[str], dict[str, float]]:
    """crops/s of score_crops for a few batch sizes, layouts, precisions and thread counts.

    Returns the printed lines and {"threads=T mode bsB": crops/s}.
    """
    lines = []
    found: dict[str, float] = {}
    extra = assessor.face_features(eyes) if scorer.extra_inputs else None
    n = len(crops)
    variants = [("fp32", False, False), ("fp32", True, False)]
    if cpu_supports_bf16():
        variants += [("bf16", False, False), ("bf16", True, False)]
    if compile:
        variants += [("fp32", False, True)]
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        meter = CpuMeter().start()
        for precision, cl, comp in variants:
            scorer.configure(precision=precision, channels_last=cl, compile=comp)
            cells = []
            for bs in (1, 8, 32):
                batch = crops[: max(bs, min(n, 2 * bs))]
                ex = None if extra is None else extra[: len(batch)]
                scorer._batch_size = bs
                scorer.score_crops(batch[:bs], extra=None if ex is None else ex[:bs])  # warm-up (and compile)
                t = time.perf_counter()
                scorer.score_crops(batch, extra=ex)
                rate = len(batch) / (time.perf_counter() - t)
                cells.append(f"bs{bs:<2} {rate:7.1f}")
                found[f"threads={threads} {precision}{' channels_last' if cl else ' compiled' if comp else ''} bs{bs}"] = rate
            mode = " channels_last" if cl else " compiled" if comp else ""
            lines.append(f"  threads={threads} {precision}{mode:14s} crops/s: " + "  ".join(cells))
        lines.append(f"  (threads={threads}: other processes used {meter.stop()[1]:.2f} cores meanwhile)")
    scorer.configure(precision="fp32", channels_last=False, compile=False)
    torch.set_num_threads(default_threads)
    return lines, found


def reference_protocol(r50: QualityScorer, assessor: FaceQualityAssessor, photos: PhotoSet, seed: int = 0) -> tuple[float, int]:
    """Seconds for the official-style protocol over ``photos`` (decode + detect + 25 crops/face)."""
    import cv2

    rng = np.random.default_rng(seed)
    model = r50.model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    n_faces = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for path in photos.files:
            rgb = to_rgb(path)
            for face in assessor.detector.detect(rgb):
                n_faces += 1
                x1, y1, x2, y2 = face.box
                mx, my = 0.2 * (x2 - x1), 0.2 * (y2 - y1)
                h, w = rgb.shape[:2]
                a, b = int(max(0, y1 - my)), int(min(h, y2 + my))
                c, d = int(max(0, x1 - mx)), int(min(w, x2 + mx))
                patch = cv2.resize(rgb[a:b, c:d], (384, 512), interpolation=cv2.INTER_LINEAR)
                img = torch.from_numpy(patch).permute(2, 0, 1).float().div(255.0)[None]
                preds = []
                for _ in range(25):
                    y0 = int(rng.integers(0, 512 - 224 + 1))
                    x0 = int(rng.integers(0, 384 - 224 + 1))
                    crop = (img[:, :, y0 : y0 + 224, x0 : x0 + 224] - mean) / std
                    preds.append(float(model(crop)))
                float(np.mean(preds))
    return time.perf_counter() - t0, n_faces


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="default", help="quality model: registry name or head/checkpoint path (default: the registry default)")
    ap.add_argument("--r50", default="random", help="ResNet-50 HyperIQA checkpoint path, 'random' (default) or 'none' to skip it")
    ap.add_argument("--quick", action="store_true", help="fewer photos and configurations (a smoke run)")
    ap.add_argument("--photos", type=int, default=None, help="photos per folder (default 48, quick 12; 1920x1080 gets half)")
    ap.add_argument("--batch-size", type=int, default=32, help="crops per forward pass (default 32)")
    ap.add_argument("--configs", default=None, help=f"comma-separated subset of {', '.join(CONFIGS)}")
    ap.add_argument("--repeats", type=int, default=None, help="timed passes per configuration, best kept (default 2, quick 1)")
    ap.add_argument("--reference-photos", type=int, default=None, help="photos for the reference protocol (default 8, quick 3)")
    ap.add_argument("--keep", default=None, help="write the photo folders here and keep them")
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile (adds minutes of compiling)")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: split, scoring, reference")
    ap.add_argument("--load", type=int, default=0, help="busy processes (one core each) running during the end-to-end passes: "
                    "the competing load of a busy laptop (e.g. --load 2 on 2 cores)")
    args = ap.parse_args()

    skip = {x for x in args.skip.split(",") if x}
    if skip - {"split", "scoring", "reference"}:
        ap.error(f"unknown --skip section(s) {sorted(skip - {'split', 'scoring', 'reference'})}")
    n = args.photos or (12 if args.quick else 48)
    repeats = args.repeats or (1 if args.quick else 2)
    n_ref = args.reference_photos or (3 if args.quick else 8)
    configs = args.configs.split(",") if args.configs else (["default", "overlap-t1", "overlap2-t1"] if args.quick else list(CONFIGS))
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        ap.error(f"unknown configuration(s) {unknown}; known: {', '.join(CONFIGS)}")
    if "overlap2-bf16" in configs and not cpu_supports_bf16():
        configs.remove("overlap2-bf16")
    if "overlap2-compile" in configs and not args.compile:
        configs.remove("overlap2-compile")
    elif args.compile and "overlap2-compile" not in configs:
        configs.append("overlap2-compile")

    print_header("figures")
    print("(others: CPU cores used by other processes during the best timed pass; near 0 = quiet)")

    tmp = None
    if args.keep:
        root = Path(args.keep)
    else:
        tmp = temp_root()
        root = Path(tmp.name)
    try:
        t = time.perf_counter()
        sets = [
            make_photo_set(root, 640, 480, 1, n, seed=1),
            make_photo_set(root, 640, 480, 4, n, seed=2),
            make_photo_set(root, 1920, 1080, 1, max(4, n // 2), seed=3),
            make_photo_set(root, 1920, 1080, 4, max(4, n // 2), seed=4),
        ]
        print(f"photos: {', '.join(f'{s.name} x{len(s.files)}' for s in sets)} in {time.perf_counter() - t:.1f} s")

        models: list[tuple[str, object]] = []
        try:
            main_scorer = load_scorer(args.weights, "cpu", batch_size=args.batch_size)
        except FaceIQAError as exc:
            print(f"cannot load --weights {args.weights}: {exc}", file=sys.stderr)
            return 1
        models.append((main_scorer.name, args.weights))
        if args.r50 != "none":
            r50_path = random_resnet50_weights(root) if args.r50 == "random" else Path(args.r50)
            models.append(("hyperiqa-r50" + (" (random weights)" if args.r50 == "random" else ""), r50_path))

        rows: list[Row] = []
        main_scoring: dict[str, float] = {}
        ratios: list[float] = []
        ours_default: dict[str, float] = {}
        r50_scorer = None
        for label, weights in models:
            scorer = main_scorer if weights == args.weights else load_scorer(weights, "cpu", batch_size=args.batch_size)
            if "r50" in label:
                r50_scorer = scorer

            def make(scorer=scorer, **kw) -> FaceQualityAssessor:
                scorer.configure(precision=kw.pop("precision"), channels_last=False, compile=kw.pop("compile", False))
                return FaceQualityAssessor(scorer=scorer, batch_size=args.batch_size, **kw)

            print(f"\n=== {label}: {scorer.config.size} px crops, template {scorer.config.template}, batch size {args.batch_size}")
            for split_threads in [] if "split" in skip else sorted({torch.get_num_threads(), 1}, reverse=True):
                print(f"stage split (ms per photo; each stage alone in one thread, torch threads {split_threads}, fp32):")
                print(f"  {'photos':18s} {'faces/photo':>11s} {'decode':>7s} {'detect':>7s} {'align':>7s} {'score':>7s} {'total':>7s}  ms/face(score) others")
                before = torch.get_num_threads()
                torch.set_num_threads(split_threads)
                try:
                    split_assessor = make(precision="fp32")
                    for photos in sets:
                        meter = CpuMeter().start()
                        secs, faces = stage_split(split_assessor, photos, args.batch_size)
                        others = meter.stop()[1]
                        k = len(photos.files)
                        total = sum(secs.values())
                        print(
                            f"  {photos.name:18s} {faces / k:11.2f} {_fmt_ms(secs['decode'], k)} {_fmt_ms(secs['detect'], k)} "
                            f"{_fmt_ms(secs['align'], k)} {_fmt_ms(secs['score'], k)} {_fmt_ms(total, k)}  {_fmt_ms(secs['score'], faces):>14s} {others:6.2f}",
                            flush=True,
                        )
                finally:
                    torch.set_num_threads(before)
            print("end to end (assess_many):")
            print(f"  {'photos':18s} {'config':16s} {'photos/s':>9s} {'faces/s':>8s}  {'CPU-s/photo':>11s}  {'others':>6s}  vs default")
            for photos in sets:
                ref_results = None
                for config in configs:
                    with CompetingLoad(args.load):
                        ps, fs, res, others, cps = run_config(make, photos, config, repeats)
                    if config == "default":
                        ref_results = res
                        ours_default[f"{label}|{photos.name}"] = ps
                    same = compare(res, ref_results) if ref_results is not None else "n/a"
                    rows.append(Row(label, photos.name, config, ps, fs, same))
                    print(f"  {photos.name:18s} {config:16s} {ps:9.1f} {fs:8.1f}  {cps:11.3f}  {others:6.2f}  {same}", flush=True)
            if "scoring" in skip:
                continue
            print("scoring alone (aligned crops from the 640x480 4-face photos):")
            crops, eyes = [], []
            a = make(precision="fp32")
            for p in sets[1].files:
                rgb = to_rgb(p)
                faces = a.detector.detect(rgb)
                crops += a.align(rgb, faces)
                eyes += [f.eye_distance for f in faces]
            while len(crops) < 64:
                crops, eyes = crops + crops, eyes + eyes
            lines, found = scoring_alone(scorer, crops[:64], eyes[:64], a, args.compile)
            for line in lines:
                print(line, flush=True)
            if weights == args.weights:
                main_scoring = found
            scorer._batch_size = args.batch_size

        if r50_scorer is not None and "reference" not in skip:
            print("\n=== reference protocol (official HyperIQA test code: 25 random 224 px crops per face, batch 1, fp32, ResNet-50)")
            a = FaceQualityAssessor(scorer=r50_scorer)
            for photos in sets:
                sub = PhotoSet(photos.name, photos.folder, photos.files[:n_ref], photos.width, photos.height, photos.faces_per_photo)
                meter = CpuMeter().start()
                secs, faces = reference_protocol(r50_scorer, a, sub)
                others = meter.stop()[1]
                ref_ps = len(sub.files) / secs
                line = f"  {photos.name:18s} {ref_ps:7.2f} photos/s {faces / secs:7.2f} faces/s ({len(sub.files)} photos, others {others:.2f})"
                for label, _ in models:
                    ours = ours_default.get(f"{label}|{photos.name}")
                    best = max((r.photos_s for r in rows if r.model == label and r.photos == photos.name), default=None)
                    if ours:
                        line += f"; {label.split(' ')[0]}: default x{ours / ref_ps:.0f}, best x{best / ref_ps:.0f}"
                        if label == main_scorer.name:
                            ratios.append(ours / ref_ps)
                print(line, flush=True)

        def best_of(photos: str, default_only: bool = False) -> str:
            mine = [r for r in rows if r.model == main_scorer.name and r.photos == photos and (r.config == "default" or not default_only)]
            if not mine:
                return "n/a"
            top = max(mine, key=lambda r: r.photos_s)
            return f"{top.photos_s:.1f} ({top.config})"

        print(f"\n=== targets ({main_scorer.name})")
        for name, goal in (("640x480-1face", 25), ("1920x1080-1face", 8), ("1920x1080-4face", 8)):
            print(f"  {name:18s} photos/s: default {best_of(name, True)}, best {best_of(name)}   target >= {goal}")
        fp32 = {k: v for k, v in main_scoring.items() if " fp32 " in k + " " and "bs32" in k and "channels_last" not in k and "compiled" not in k}
        if fp32:
            k = max(fp32, key=fp32.get)
            top = max(main_scoring, key=main_scoring.get)
            print(f"  scoring alone crops/s: fp32 {fp32[k]:.0f} ({k}), fastest {main_scoring[top]:.0f} ({top})   target >= 200")
        if ratios:
            print(f"  vs reference protocol (default configuration): x{min(ratios):.0f} .. x{max(ratios):.0f}   target >= 10")
        print(f"\nload average at end: {load_average()}")
        busy = busy_processes()
        if busy:
            print(f"WARNING: other heavy processes were running at the end: {busy}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
