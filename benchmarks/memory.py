#!/usr/bin/env python3
"""Peak memory while scoring many images through ``FaceQualityAssessor.assess_many``.

Prints figures, asserts nothing. Run from the repository root::

    python benchmarks/memory.py                 # 10,000 images (about 6-10 minutes on 2 cores)
    python benchmarks/memory.py --quick         # 1,000 images
    python benchmarks/memory.py --weights PATH  # any registry name or head file

The images are made on the fly, in memory, from a few real photos: ``--base`` 640x480
photos with one LFW face each (``benchmarks/common.py``), each yielded with a random
brightness shift and mirror, so nothing is read from disk during the run and no two
consecutive inputs are equal. The run keeps only the report rows (``ImageAssessment.rows()``,
as the CLI does); the resident set size (RSS, from /proc) is printed at 10 %, 20 %, 50 % and
100 % of the count (1k, 2k, 5k and 10k by default), with the largest RSS sampled every 50
images since the previous checkpoint and the peak RSS of the process (``ru_maxrss``). Flat
means: after the first checkpoint the RSS moves within the same band (the allocator keeps
and reuses freed blocks) and grows only by the rows.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import compose, cycle_photos, lfw_images, load_average, load_rgb, print_header  # noqa: E402

from faceiqa.api import FaceQualityAssessor
from faceiqa.errors import FaceIQAError  # noqa: E402


def rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_mb()


def peak_mb() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss`` is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="default", help="quality model: registry name or head/checkpoint path (default: the registry default)")
    ap.add_argument("--count", type=int, default=None, help="images to score (default 10000, quick 1000)")
    ap.add_argument("--quick", action="store_true", help="1,000 images")
    ap.add_argument("--base", type=int, default=8, help="distinct real photos the images are made from (default 8)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--detect-workers", type=int, default=0, help="FaceQualityAssessor detect_workers (default 0)")
    ap.add_argument("--mtcnn-threads", type=int, default=None, help="FaceQualityAssessor mtcnn_threads (default: torch's)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    count = args.count or (1000 if args.quick else 10000)
    if args.threads:
        torch.set_num_threads(args.threads)

    print_header("timings")
    print(f"RSS after imports: {rss_mb():.0f} MiB")

    rng = np.random.default_rng(0)
    base = [compose([load_rgb(p)], 640, 480, rng, "noisy" if i % 2 else "plain") for i, p in enumerate(lfw_images(args.base, seed=5))]
    try:
        assessor = FaceQualityAssessor(
            args.weights,
            device="cpu",
            batch_size=args.batch_size,
            detect_workers=args.detect_workers,
            mtcnn_threads=args.mtcnn_threads,
        )
    except FaceIQAError as exc:
        print(f"cannot load --weights {args.weights}: {exc}", file=sys.stderr)
        return 1
    print(f"model {assessor.scorer.name}; RSS after loading: {rss_mb():.0f} MiB")

    checkpoints = sorted({max(1, round(count * f)) for f in (0.1, 0.2, 0.5, 1.0)})
    rows = []
    n_images = n_faces = 0
    t0 = time.perf_counter()
    first = None
    print(f"{'images':>8s} {'faces':>8s} {'rows':>8s} {'RSS MiB':>8s} {'max since last':>14s} {'peak MiB':>9s} {'img/s':>7s}")
    high = 0.0  # largest RSS sampled (every 50 images) since the last checkpoint
    for result in assessor.assess_many(cycle_photos(base, count, seed=1)):
        rows.extend(result.rows())
        n_images += 1
        n_faces += len(result.faces)
        if n_images % 50 == 0:
            high = max(high, rss_mb())
        if n_images in checkpoints:
            now = rss_mb()
            high = max(high, now)
            first = now if first is None else first
            print(
                f"{n_images:8d} {n_faces:8d} {len(rows):8d} {now:8.0f} {high:14.0f} {peak_mb():9.0f} "
                f"{n_images / (time.perf_counter() - t0):7.1f}",
                flush=True,
            )
            high = 0.0
    sample = rows[:100]
    row_bytes = sum(sys.getsizeof(r) + sum(sys.getsizeof(getattr(r, f.name)) for f in fields(r)) for r in sample) / max(1, len(sample))
    print(
        f"done: {n_images} images, {n_faces} faces, {len(rows)} report rows (~{row_bytes * len(rows) / 2**20:.1f} MiB of rows); "
        f"RSS {rss_mb():.0f} MiB (first checkpoint {first:.0f} MiB), peak {peak_mb():.0f} MiB"
    )
    print(f"load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
