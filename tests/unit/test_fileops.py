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


def test_an_interrupted_copy_leaves_nothing_under_the_final_name(tree, tmp_path, monkeypatch):
    import faceiqa.output.fileops as fo

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies between the finished temp file and its name

    monkeypatch.setattr(fo.os, "link", killed)
    with pytest.raises(KeyboardInterrupt):
        Transferer(tmp_path / "out", "copy").transfer(tree / "2.jpg", tree)
    assert list((tmp_path / "out").iterdir()) == []  # no placeholder, no temp file


def test_stale_partial_files_of_dead_runs_are_removed_and_live_ones_kept(tree, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = out / f".2.jpg.faceiqa-{dead_pid}-abcd1234.part"
    live = out / f".2.jpg.faceiqa-{os.getppid()}-efgh5678.part"
    user = out / ".my.part"
    for p in (stale, live, user):
        p.write_bytes(b"x")
    r = Transferer(out, "copy").transfer(tree / "2.jpg", tree)
    assert r.done and not stale.exists() and live.exists() and user.exists()


def test_a_rerun_reuses_identical_copies_and_completes_an_interrupted_move(tree, tmp_path):
    out = tmp_path / "out"
    first = Transferer(out, "copy").transfer(tree / "2.jpg", tree)
    again = Transferer(out, "copy").transfer(tree / "2.jpg", tree)
    assert again.done and again.reused and again.destination == first.destination
    assert sorted(p.name for p in out.iterdir()) == ["2.jpg"]
    # a move killed after its copy and before deleting the source: the rerun finishes it
    moved = Transferer(out, "move").transfer(tree / "2.jpg", tree)
    assert moved.done and moved.reused and not (tree / "2.jpg").exists()
    assert (out / "2.jpg").read_bytes() == b"two" and not (out / "2_1.jpg").exists()


def test_a_same_file_system_move_is_a_link_then_unlink(tree, tmp_path):
    out = tmp_path / "out"
    ino = os.stat(tree / "2.jpg").st_ino
    r = Transferer(out, "move").transfer(tree / "2.jpg", tree)
    assert r.done and not r.reused and os.stat(r.destination).st_ino == ino and not (tree / "2.jpg").exists()


def test_names_at_the_file_system_limit_copy_and_get_suffixes(tmp_path):
    src_dir = tmp_path / "photos"
    src_dir.mkdir()
    name = "x" * 246 + ".jpg"  # 250 bytes: legal; the temp name and the _1 suffix must still fit
    (src_dir / name).write_bytes(b"one")
    out = tmp_path / "out"
    first = Transferer(out, "copy").transfer(src_dir / name, src_dir)
    assert first.done, first.error
    (src_dir / name).write_bytes(b"two")
    second = Transferer(out, "copy").transfer(src_dir / name, src_dir)
    assert second.done, second.error
    assert second.destination.name.endswith("_1.jpg") and len(second.destination.name.encode()) <= 255
    assert second.destination.read_bytes() == b"two" and first.destination.read_bytes() == b"one"


def test_a_dry_run_says_when_a_file_is_already_there(tree, tmp_path):
    out = tmp_path / "out"
    Transferer(out, "copy").transfer(tree / "2.jpg", tree)
    plan = Transferer(out, "copy", dry_run=True).transfer(tree / "2.jpg", tree)
    assert plan.reused and plan.destination == out / "2.jpg" and not plan.done


def test_moves_prune_the_source_folders_they_emptied_and_nothing_else(tmp_path):
    src = tmp_path / "photos"
    (src / "a" / "b").mkdir(parents=True)
    (src / "keep").mkdir()
    (src / "a" / "b" / "1.jpg").write_bytes(b"1")
    (src / "a" / "2.jpg").write_bytes(b"2")
    (src / "keep" / "3.jpg").write_bytes(b"3")
    (src / "keep" / "notes.txt").write_text("mine")
    (src / "untouched").mkdir()
    t = Transferer(tmp_path / "out", "move")
    for f in ("a/b/1.jpg", "a/2.jpg", "keep/3.jpg"):
        assert t.transfer(src / f, src).done
    removed = t.prune_empty_folders(src)
    assert sorted(p.relative_to(src).as_posix() for p in removed) == ["a", "a/b"]
    assert (src / "keep" / "notes.txt").exists() and (src / "untouched").is_dir() and src.is_dir()


def test_relative_links_point_to_the_source_by_a_relative_path(tree, tmp_path):
    r = Transferer(tmp_path / "out", "link", relative_links=True).transfer(tree / "alice" / "1.jpg", tree)
    assert r.done and not os.readlink(r.destination).startswith("/")
    assert r.destination.read_bytes() == b"alice-1"
    a = Transferer(tmp_path / "out2", "link").transfer(tree / "2.jpg", tree)
    assert os.readlink(a.destination).startswith("/")
