"""Copy / move / link never overwrite and never lose a file."""

from __future__ import annotations

import os
import stat

import pytest

from faceiqa.errors import InvalidArgumentError
from faceiqa.output.fileops import Transferer, TransferMode


@pytest.fixture()
def tree(tmp_path):
    src = tmp_path / "photos"
    (src / "alice").mkdir(parents=True)
    (src / "alice" / "1.jpg").write_bytes(b"alice-1")
    (src / "2.jpg").write_bytes(b"two")
    return src


def test_copy_keeps_structure_and_source(tree, tmp_path):
    t = Transferer(tmp_path / "out", "copy")
    r = t.transfer(tree / "alice" / "1.jpg", tree)
    assert r.done and r.destination == tmp_path / "out" / "alice" / "1.jpg"
    assert r.destination.read_bytes() == b"alice-1" and (tree / "alice" / "1.jpg").exists()
    assert not [p for p in r.destination.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_second_run_never_overwrites(tree, tmp_path):
    out = tmp_path / "out"
    first = Transferer(out, "copy").transfer(tree / "2.jpg", tree)
    (tree / "2.jpg").write_bytes(b"changed")
    second = Transferer(out, "copy").transfer(tree / "2.jpg", tree)
    assert first.destination.read_bytes() == b"two"
    assert second.destination.name == "2_1.jpg" and second.destination.read_bytes() == b"changed"


def test_move_removes_source_only_after_copy(tree, tmp_path):
    r = Transferer(tmp_path / "out", TransferMode.MOVE).transfer(tree / "2.jpg", tree)
    assert r.done and r.destination.read_bytes() == b"two" and not (tree / "2.jpg").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_move_into_unwritable_destination_keeps_source(tree, tmp_path):
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        r = Transferer(out, "move").transfer(tree / "2.jpg", tree)
    finally:
        out.chmod(stat.S_IRWXU)
    assert not r.done and r.error
    assert (tree / "2.jpg").read_bytes() == b"two"


def test_move_into_unwritable_destination_keeps_source_any_user(tree, tmp_path):
    # A regular file where the output folder should be: no user can create files under it.
    blocker = tmp_path / "out"
    blocker.write_bytes(b"not a folder")
    r = Transferer(blocker, "move").transfer(tree / "2.jpg", tree)
    assert not r.done and "cannot write" in r.error
    assert (tree / "2.jpg").read_bytes() == b"two" and blocker.read_bytes() == b"not a folder"


def test_link_points_at_source(tree, tmp_path):
    r = Transferer(tmp_path / "out", "link").transfer(tree / "2.jpg", tree)
    assert r.done and r.destination.is_symlink() and r.destination.read_bytes() == b"two"
    again = Transferer(tmp_path / "out", "link").transfer(tree / "2.jpg", tree)
    assert again.destination.name == "2_1.jpg"


def test_dry_run_touches_nothing_and_plans_unique_names(tree, tmp_path):
    out = tmp_path / "out"
    t = Transferer(out, "move", dry_run=True)
    a = t.transfer(tree / "2.jpg", tree)
    b = t.transfer(tree / "2.jpg", tree)
    assert not out.exists() and (tree / "2.jpg").exists()
    assert not a.done and a.destination.name == "2.jpg" and b.destination.name == "2_1.jpg"


def test_bad_mode():
    with pytest.raises(InvalidArgumentError):
        Transferer("x", "teleport")
