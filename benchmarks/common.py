"""Shared helpers of the benchmark scripts: test photos, weights, machine description.

Nothing here is imported by the library. The scripts run from the repository root
(``python benchmarks/throughput.py``); real faces come from ``../shared/data/lfw-train``
(or ``$FACEIQA_SHARED/data/lfw-train``).

Photos are generated, never downloaded: LFW photos (250 x 250, one main face each) are
scaled and pasted onto a plain or noisy background of the requested size, one per photo or
several side by side, and written as JPEG (quality 90) to a temporary folder.
"""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    env = os.environ.get("FACEIQA_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def lfw_images(count: int, seed: int = 0) -> list[Path]:
    """``count`` LFW photo paths, one per person where possible, chosen with ``seed``."""
    root = shared_root() / "data" / "lfw-train" / "images"
    if not root.is_dir():
        sys.exit(f"benchmark: LFW photos not found in {root} (set FACEIQA_SHARED)")
    people = sorted(p for p in root.iterdir() if p.is_dir())
    rng = random.Random(seed)
    rng.shuffle(people)
    out: list[Path] = []
    for person in people:
        files = sorted(person.glob("*.jpg"))
        if files:
            out.append(files[0])
        if len(out) == count:
            break
    if len(out) < count:
        sys.exit(f"benchmark: only {len(out)} LFW people found, {count} wanted")
    return out


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def background(width: int, height: int, rng: np.random.Generator, kind: str) -> np.ndarray:
    """A plain (one random colour) or noisy (smooth random blotches plus grain) background."""
    if kind == "plain":
        colour = rng.integers(40, 220, 3, dtype=np.uint8)
        return np.broadcast_to(colour, (height, width, 3)).copy()
    small = rng.integers(0, 256, (max(2, height // 64), max(2, width // 64), 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR), dtype=np.int16)
    img += rng.integers(-12, 13, img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def compose(
    faces: list[np.ndarray], width: int, height: int, rng: np.random.Generator, kind: str = "noisy"
) -> np.ndarray:
    """Paste ``faces`` (LFW photos) side by side, scaled to fit, onto a ``width x height`` background.

    One face fills about 60 % of the height (the LFW face itself is about 40 % of its photo);
    several faces share the width in one row.
    """
    img = background(width, height, rng, kind)
    n = len(faces)
    side = int(min(0.6 * height, 0.9 * width / n))
    slot = width // n
    for i, face in enumerate(faces):
        s = max(32, int(side * rng.uniform(0.85, 1.0)))
        tile = np.asarray(Image.fromarray(face).resize((s, s), Image.BILINEAR))
        x0 = i * slot + int(rng.integers(0, max(1, slot - s)))
        y0 = int(rng.integers(0, max(1, height - s)))
        img[y0 : y0 + s, x0 : x0 + s] = tile[: height - y0, : width - x0]
    return img


@dataclass(frozen=True)
class PhotoSet:
    """A folder of generated photos."""

    name: str
    folder: Path
    files: list[Path]
    width: int
    height: int
    faces_per_photo: int


def make_photo_set(
    root: Path, width: int, height: int, faces_per_photo: int, count: int, *, seed: int = 0, pool: int = 64
) -> PhotoSet:
    """Write ``count`` JPEG photos of ``faces_per_photo`` LFW faces each under ``root``.

    Faces are drawn from a pool of ``pool`` LFW people; backgrounds alternate plain / noisy.
    """
    name = f"{width}x{height}-{faces_per_photo}face"
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    faces = [load_rgb(p) for p in lfw_images(pool, seed)]
    files = []
    for i in range(count):
        pick = [faces[int(j)] for j in rng.choice(len(faces), faces_per_photo, replace=False)]
        img = compose(pick, width, height, rng, "plain" if i % 2 else "noisy")
        path = folder / f"photo_{i:05d}.jpg"
        Image.fromarray(img).save(path, quality=90)
        files.append(path)
    return PhotoSet(name, folder, files, width, height, faces_per_photo)


def temp_root(prefix: str = "faceiqa-bench-") -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=prefix)


def cycle_photos(base: list[np.ndarray], count: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``count`` distinct in-memory photos made on the fly from ``base`` (no files, O(1) memory).

    Each is a base photo with a small random brightness shift and a random mirror, so that no
    two consecutive inputs are bitwise equal.
    """
    rng = np.random.default_rng(seed)
    for i in range(count):
        img = base[i % len(base)]
        shift = int(rng.integers(-10, 11))
        out = np.clip(img.astype(np.int16) + shift, 0, 255).astype(np.uint8)
        if rng.random() < 0.5:
            out = np.ascontiguousarray(out[:, ::-1])
        yield out


def machine() -> str:
    """One line: CPU model, logical CPUs, torch version and threads, bf16 support."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    from faceiqa.models.scorer import cpu_supports_bf16

    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, torch {torch.__version__} "
        f"(capability {torch.backends.cpu.get_cpu_capability()}, bf16 {'yes' if cpu_supports_bf16() else 'no'}), "
        f"CUDA {'yes' if torch.cuda.is_available() else 'no'}"
    )


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
        return f"{one:.2f} {five:.2f} {fifteen:.2f}"
    except OSError:
        return "n/a"


class CpuMeter:
    """CPU time used by this process and by everything else between ``start()`` and ``stop()``.

    ``stop()`` returns (own, others) in cores (CPU seconds per wall second), read from
    /proc/stat and ``os.times()``; (nan, nan) where /proc is not available. ``others`` near 0
    means the measurement had the machine to itself.
    """

    def __init__(self) -> None:
        self._t = self._busy = self._own = 0.0

    @staticmethod
    def _machine_busy() -> float:
        with open("/proc/stat", encoding="ascii") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_cpu() -> float:
        t = os.times()
        return t.user + t.system

    def start(self) -> CpuMeter:
        import time

        self._t = time.perf_counter()
        try:
            self._busy = self._machine_busy()
        except (OSError, ValueError, IndexError):
            self._busy = float("nan")
        self._own = self._own_cpu()
        return self

    def stop(self) -> tuple[float, float]:
        import time

        wall = max(time.perf_counter() - self._t, 1e-9)
        own = (self._own_cpu() - self._own) / wall
        try:
            busy = (self._machine_busy() - self._busy) / wall
        except (OSError, ValueError, IndexError):
            return float("nan"), float("nan")
        return own, max(0.0, busy - own)


def busy_processes() -> list[str]:
    """Command lines of other faceiqa processes (CLI runs such as training, set building) now running."""
    try:
        out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    me = os.getpid()
    hits = []
    for line in out.splitlines()[1:]:
        pid, _, args = line.strip().partition(" ")
        heavy = "build_ts.py" in args or "bin/faceiqa " in args or args.startswith("faceiqa ")
        if pid.isdigit() and int(pid) != me and heavy:
            hits.append(args[:100])
    return hits


def print_header(what: str = "figures") -> None:
    """Print the machine, the load and the command line at the top of a benchmark's output."""
    import torch

    print(f"machine: {machine()}")
    print(f"load average at start: {load_average()}; torch threads {torch.get_num_threads()}")
    busy = busy_processes()
    if busy:
        print(f"WARNING: other heavy processes are running, {what} are not for the record: {busy}")
    print(f"command: python {' '.join(sys.argv)}")


def random_resnet50_weights(folder: Path, seed: int = 0) -> Path:
    """A ResNet-50 HyperIQA checkpoint with random weights in the official layout (109 MB)."""
    import torch

    from faceiqa.models import hyperiqa_resnet50, save_hypernet

    path = folder / "hyperiqa-r50-random.pkl"
    if not path.is_file():
        torch.manual_seed(seed)
        save_hypernet(hyperiqa_resnet50(), path)
    return path
