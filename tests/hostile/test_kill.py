"""SIGKILL at chosen points inside copy and move transfers: afterwards, and after a rerun,
every photo exists exactly once and intact, and nothing half-written or temporary remains."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO

CHILD = REPO / "tests" / "helpers" / "killed_transfer.py"
N = 5


def _make(src: Path) -> dict[str, str]:
    src.mkdir(parents=True)
    (src / "sub").mkdir()
    digests = {}
    for i in range(N):
        p = src / ("sub" if i % 2 else "") / f"photo{i}.jpg"
        data = os.urandom(200_000 + i)
        p.write_bytes(data)
        digests[hashlib.sha256(data).hexdigest()] = p.name
    return digests


def _hashes(*folders: Path) -> list[str]:
    out = []
    for folder in folders:
        for p in folder.rglob("*"):
            if p.is_file() and not p.is_symlink():
                out.append(hashlib.sha256(p.read_bytes()).hexdigest())
    return sorted(out)


def _child(src: Path, out: Path, mode: str, *kill: object) -> int:
    return subprocess.run([sys.executable, str(CHILD), str(src), str(out), mode, *map(str, kill)], timeout=120).returncode


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".part") or (p.is_file() and p.stat().st_size == 0)]


def _out_root(tmp_path: Path, cross_fs: bool) -> Path:
    if not cross_fs:
        return tmp_path / "out"
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system (/dev/shm) to move across")
    import tempfile

    return Path(tempfile.mkdtemp(dir=shm, prefix="faceiqa-kill-")) / "out"


@pytest.mark.parametrize("cross_fs", [False, True], ids=["same-fs", "cross-fs"])
@pytest.mark.parametrize(("step", "nth"), [("copied", 1), ("copied", 3), ("linked", 2), ("linked", N), ("unlink", 1), ("unlink", 4)])
def test_a_killed_move_loses_and_duplicates_nothing(tmp_path, step, nth, cross_fs):
    src = tmp_path / "src"
    digests = _make(src)
    out = _out_root(tmp_path, cross_fs)
    try:
        code = _child(src, out, "move", step, nth)
        if code == 0:
            pytest.skip(f"step {step} is not reached {nth} times in this setting")
        assert code == -9
        assert set(_hashes(src, out)) == set(digests)  # nothing lost, even right after the kill
        assert _child(src, out, "move") == 0  # the rerun finishes the job
        assert _hashes(out) == sorted(digests) and _hashes(src) == []  # each photo once, intact
        assert _leftovers(out) == []
    finally:
        if cross_fs:
            import shutil

            shutil.rmtree(out.parent, ignore_errors=True)


@pytest.mark.parametrize(("step", "nth"), [("copied", 2), ("linked", 3), ("unlink", 2)])
def test_a_killed_copy_reruns_to_exactly_one_copy_each(tmp_path, step, nth):
    src = tmp_path / "src"
    digests = _make(src)
    out = tmp_path / "out"
    assert _child(src, out, "copy", step, nth) == -9
    assert _child(src, out, "copy") == 0
    assert _hashes(src) == sorted(digests) and _hashes(out) == sorted(digests)
    assert _leftovers(out) == []
    assert _child(src, out, "copy") == 0 and _hashes(out) == sorted(digests)  # and again: idempotent


def test_two_processes_copying_into_the_same_folder_keep_one_copy_of_each(tmp_path):
    src = tmp_path / "src"
    digests = _make(src)
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, str(CHILD), str(src), str(out), "copy"]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    hashes = _hashes(out)
    # Racing writers may each take a name before seeing the other's file: never a lost or torn
    # file, at most one extra identical copy per photo, and never a temporary file left.
    assert set(hashes) == set(digests) and len(hashes) <= 2 * len(digests)
    assert _leftovers(out) == []
