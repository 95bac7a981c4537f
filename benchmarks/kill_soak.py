"""Randomised kill soak of copy and move transfers: many SIGKILLs at random points, then reruns.

    python benchmarks/kill_soak.py [--runs 40] [--photos 12] [--seed 0]

Each run makes a fresh folder of photos (random bytes), runs a transfer child
(tests/helpers/killed_transfer.py) that SIGKILLs itself at a random step (temporary copy
done, name linked, before an unlink) and call number, checks that no photo is lost, reruns
the transfer without a kill and checks that every photo then exists exactly once, intact,
with no temporary file left. Moves go across file systems when /dev/shm is one. Prints the
counts; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = REPO / "tests" / "helpers" / "killed_transfer.py"


def hashes(*folders: Path) -> list[str]:
    return sorted(
        hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in f.rglob("*") if p.is_file() and not p.is_symlink()
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--photos", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    shm = Path("/dev/shm")
    counts = {"runs": 0, "killed": 0, "not_reached": 0, "lost_after_kill": 0, "bad_after_rerun": 0, "leftovers": 0}
    for _ in range(args.runs):
        mode = rng.choice(["copy", "move"])
        step = rng.choice(["copied", "linked", "unlink"])
        nth = rng.randint(1, args.photos)
        cross = mode == "move" and shm.is_dir() and rng.random() < 0.5
        base = Path(tempfile.mkdtemp(prefix="faceiqa-soak-"))
        out_base = Path(tempfile.mkdtemp(dir=shm, prefix="faceiqa-soak-")) if cross else base
        try:
            src, out = base / "src", out_base / "out"
            src.mkdir()
            for i in range(args.photos):
                (src / f"p{i}.jpg").write_bytes(os.urandom(rng.randint(10_000, 400_000)))
            before = hashes(src)
            counts["runs"] += 1
            code = subprocess.run([sys.executable, str(CHILD), str(src), str(out), mode, step, str(nth)]).returncode
            if code == 0:
                counts["not_reached"] += 1
            elif code == -9:
                counts["killed"] += 1
            if not set(before) <= set(hashes(src, out)):
                counts["lost_after_kill"] += 1
            subprocess.run([sys.executable, str(CHILD), str(src), str(out), mode], check=True)
            after_out, after_src = hashes(out), hashes(src)
            if after_out != before or (mode == "move" and after_src) or (mode == "copy" and after_src != before):
                counts["bad_after_rerun"] += 1
            if any(p.name.startswith(".") or p.name.endswith(".part") for p in out.rglob("*")):
                counts["leftovers"] += 1
        finally:
            shutil.rmtree(base, ignore_errors=True)
            if cross:
                shutil.rmtree(out_base, ignore_errors=True)
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 1 if counts["lost_after_kill"] or counts["bad_after_rerun"] or counts["leftovers"] else 0


if __name__ == "__main__":
    sys.exit(main())
