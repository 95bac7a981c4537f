"""End-to-end tests of ``faceiqa score | filter | rank | report`` through click's CliRunner.

Every command runs the real pipeline (MTCNN, alignment, reports, file operations) with the
tiny random-weight model installed through the registry (tests/helpers/tiny_models.py), so scores
mean nothing: tests that need them carry the ``tiny_model`` marker and derive their
expectations from the scores the run itself reports.

The photo folder is built from real photos in ../shared/data (tests that need it skip when
it is absent) plus generated bad files; tests that need no photo always run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import stat
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from imagefiles import running_as_root, write_png_with_declared_size
from scripted import ScriptedDetector, picture, save_png
from tiny_models import install_tiny_model

from faceiqa.cli import main
from faceiqa.output.reports import REPORT_COLUMNS

# --------------------------------------------------------------------------- the photo folder

LFW = {
    "Aaron_Peirsol/Aaron_Peirsol_0001.jpg": 1,
    "Aaron_Peirsol/Aaron_Peirsol_0002.jpg": 1,
    "Aaron_Sorkin/Aaron_Sorkin_0001.jpg": 1,
    "Aaron_Sorkin/Aaron_Sorkin_0002.jpg": 1,
}
GROUP = "group/2008_002506.jpg"  # three faces
DOGS = "dogs.jpg"  # no face
BAD = {  # relative path -> words the error column must hold
    "bad/empty.jpg": "empty file",
    "bad/truncated.jpg": "truncated image file",
    "bad/text.jpg": "not an image",
    "bad/broken_link.jpg": "broken symbolic link",
    "bad/loop_a.jpg": "symbolic link loop",
    "bad/loop_b.jpg": "symbolic link loop",
    "bad/bomb.png": "image too large: 40000x40000",
}
FACE_PHOTOS = [*LFW, GROUP]
# The documented report contract (README, faceiqa/reports.py): these columns, in this order.
COLUMNS = ["path", "face", "score", "raw_score", "det_prob", "x1", "y1", "x2", "y2", "eye_distance", "status", "error"]
INPUTS = sorted([*LFW, GROUP, DOGS, *BAD], key=lambda p: Path(p).parts)  # the documented walk order


def write_bad(folder: Path, truncate_from: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    data = truncate_from.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "text.jpg").write_text("this is not a picture\n")
    os.symlink("missing.jpg", folder / "broken_link.jpg")
    os.symlink("loop_b.jpg", folder / "loop_a.jpg")
    os.symlink("loop_a.jpg", folder / "loop_b.jpg")
    write_png_with_declared_size(folder / "bomb.png", 40000, 40000)


def build_photos(root: Path, lfw_dir: Path, samples: Path) -> Path:
    """The folder described by the constants above, plus a text file that is not an input."""
    for rel in LFW:
        src = lfw_dir / "images" / rel
        if not src.is_file():
            pytest.skip(f"{rel} not in the LFW sample")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / rel)
    (root / GROUP).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(samples / Path(GROUP).name, root / GROUP)
    shutil.copyfile(samples / DOGS, root / DOGS)
    write_bad(root / "bad", root / next(iter(LFW)))
    (root / "notes.txt").write_text("not an image\n")
    return root


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: kind, content hash or link target, mode and mtime."""
    out: dict[str, tuple] = {}
    if not os.path.lexists(root):
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = p.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mode, st.st_mtime_ns)
    return out


def file_hashes(*roots: Path) -> Counter:
    """Multiset of the contents of the regular files (not links) under ``roots``."""
    c: Counter = Counter()
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file() and not p.is_symlink():
                c[hashlib.sha256(p.read_bytes()).hexdigest()] += 1
    return c


# --------------------------------------------------------------------------- running the CLI


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(*args: object):
    """Invoke ``faceiqa ARGS``; unexpected exceptions fail the test with their traceback."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def read_report(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def rel(path: str, root: Path) -> str:
    return Path(path).relative_to(root).as_posix()


def by_photo(rows: list[dict[str, str]], root: Path) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        out.setdefault(rel(r["path"], root), []).append(r)
    return out


@pytest.fixture
def tiny_model(tmp_path, monkeypatch) -> str:
    return install_tiny_model(tmp_path / "model", monkeypatch)


@pytest.fixture
def photos(tmp_path, lfw_dir, detect_samples) -> Path:
    return build_photos(tmp_path / "photos", lfw_dir, detect_samples)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, lfw_dir, detect_samples):
    """One ``faceiqa score --csv --json`` run on a pristine photo folder (read-only for tests)."""
    base = tmp_path_factory.mktemp("reference")
    root = build_photos(base / "photos", lfw_dir, detect_samples)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEIQA_OFFLINE", "1")
        install_tiny_model(base / "model", mp)
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            result = run("score", root, "--csv", base / "r.csv", "--json", base / "r.json", "--device", "cpu")
        finally:
            torch.set_num_threads(before)
    header, rows = read_report(base / "r.csv")
    best = {p: max(float(r["score"]) for r in rs) for p, rs in by_photo(rows, root).items() if rs[0]["score"]}
    return {"root": root, "result": result, "csv": base / "r.csv", "json": base / "r.json",
            "header": header, "rows": rows, "best": best}


def split_threshold(best: dict[str, float]) -> tuple[float, set[str], set[str]]:
    """A --min between the 2nd and 3rd best photo: (threshold, passing, failing photos)."""
    ordered = sorted(best.values(), reverse=True)
    t = (ordered[1] + ordered[2]) / 2
    return t, {p for p, s in best.items() if s >= t}, {p for p, s in best.items() if s < t}


# --------------------------------------------------------------------------- score and the report contract


@pytest.mark.tiny_model
def test_score_report_contract(reference):
    result, root, rows = reference["result"], reference["root"], reference["rows"]
    assert result.exit_code == 0, result.output  # bad files do not fail the run
    assert result.stdout == ""  # the CSV went to --csv
    n_faces = sum(r["score"] != "" for r in rows)
    assert f"13 images, {n_faces} faces scored, 1 without a face, 7 errors" in result.stderr
    assert "loading the face detector" in result.stderr
    assert "photo/s" not in result.stderr and "it/s" not in result.stderr  # no bar when stderr is not a terminal
    assert reference["header"] == COLUMNS and tuple(COLUMNS) == REPORT_COLUMNS

    # every input exactly once (once per face), in the sorted input order, rows of a photo together
    order = []
    for r in rows:
        p = rel(r["path"], root)
        if not order or order[-1] != p:
            order.append(p)
    assert order == INPUTS
    photos = by_photo(rows, root)
    for p, rs in photos.items():
        status = {r["status"] for r in rs}
        if status & {"no_face", "error"}:
            assert len(rs) == 1, p
            r = rs[0]
            assert r["face"] == "" and r["score"] == "" and r["raw_score"] == "" and r["x1"] == "", p
            assert (r["error"] != "") == (r["status"] == "error"), p
        else:
            assert status <= {"ok", "small_face"}, p
            assert [r["face"] for r in rs] == [str(i) for i in range(len(rs))], p
            for r in rs:
                assert 0.0 <= float(r["score"]) <= 1.0 and r["error"] == ""
                assert 0.0 <= float(r["det_prob"]) <= 1.0
                assert float(r["x2"]) > float(r["x1"]) and float(r["y2"]) > float(r["y1"])
                assert float(r["eye_distance"]) > 0
    for p in LFW:
        assert photos[p][0]["status"] == "ok"
    assert len(photos[GROUP]) >= 2
    assert photos[DOGS][0]["status"] == "no_face"
    for p, words in BAD.items():
        assert photos[p][0]["status"] == "error" and words in photos[p][0]["error"], (p, photos[p][0]["error"])
    assert "notes.txt" not in photos


@pytest.mark.tiny_model
def test_score_json_holds_the_same_records_as_the_csv(reference):
    records = json.loads(reference["json"].read_text())
    rows = reference["rows"]
    assert len(records) == len(rows)
    for rec, row in zip(records, rows, strict=True):
        assert list(rec) == list(REPORT_COLUMNS)
        for key in REPORT_COLUMNS:
            cell, value = row[key], rec[key]
            if cell == "":
                assert value is None or (key == "error" and value == ""), (key, value)
            elif key in ("score", "raw_score"):
                assert value == float(cell)  # bit-exact in both
            elif key == "face":
                assert value == int(cell)
            elif key in ("path", "status", "error"):
                assert value == cell
            else:
                assert value == pytest.approx(float(cell), abs=0.006)


@pytest.mark.tiny_model
def test_score_to_stdout_follows_argument_order_and_quiet_is_silent(tiny_model, photos, tmp_path):
    single = photos / "Aaron_Sorkin" / "Aaron_Sorkin_0002.jpg"
    result = run("score", photos / "group", single, photos / "bad" / "empty.jpg", "-q", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # --quiet: no progress bar, no summary
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == list(REPORT_COLUMNS)
    distinct = list(dict.fromkeys(r["path"] for r in rows))
    assert distinct == [str(photos / GROUP), str(single), str(photos / "bad" / "empty.jpg")]
    assert [r["status"] for r in rows].count("error") == 1 and rows[-1]["status"] == "error"


@pytest.mark.tiny_model
def test_exit_1_when_nothing_can_be_processed(tiny_model, tmp_path):
    only_bad = tmp_path / "only_bad"
    src = tmp_path / "src.jpg"
    src.write_bytes(b"\xff\xd8\xff\xe0" + bytes(4000))
    write_bad(only_bad, src)
    report = tmp_path / "r.csv"
    result = run("score", only_bad, "--csv", report, "--device", "cpu")
    assert result.exit_code == 1, result.output
    assert "no image could be processed" in result.stderr
    _, rows = read_report(report)  # the report still says why
    assert len(rows) == 7 and {r["status"] for r in rows} == {"error"}
    assert run("filter", only_bad, "--min", "0.5", "-q").exit_code == 1
    assert run("rank", only_bad, "-q").exit_code == 1

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no image here\n")
    for args in (("score", empty), ("filter", empty, "--min", "0.5"), ("rank", empty)):
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "no images found" in result.stderr


@pytest.mark.parametrize(
    "args,words",
    [
        (("filter", "{p}", "--min", "1.5"), "--min"),
        (("filter", "{p}", "--min", "abc"), "--min"),
        (("filter", "{p}"), "--min"),
        (("filter", "{p}", "--min", "0.5", "--policy", "median"), "--policy"),
        (("filter", "{p}", "--min", "0.5", "--mode", "teleport"), "--mode"),
        (("filter", "{p}", "--min", "0.5", "--device", "gpu"), "--device"),
        (("score", "{p}", "--device", "cuda:x"), "--device"),
        (("rank", "{p}", "--device", "tpu"), "--device"),
        (("filter", "{p}", "--min", "0.5", "--report", "{existing}"), "already exists"),
        (("score", "{p}", "--csv", "{existing}"), "already exists"),
        (("score", "{p}", "--json", "{existing}"), "already exists"),
        (("rank", "{p}", "--csv", "{existing}"), "already exists"),
        (("report", "{existing}", "--html", "{existing}"), "already exists"),
        (("score", "{p}", "--csv", "{existing}/r.csv"), "not a folder"),
        (("score", "{p}", "--csv", "{p}/a.png", "--overwrite"), "one of the input images"),
        (("filter", "{p}", "--min", "0.5", "--out", "{existing}"), "--out"),
        (("filter", "{p}", "--min", "0.5", "--out", "{p}"), "input folder"),
        (("filter", "{p}", "--min", "0.5", "--out", "{p}/../{pname}", "--dry-run"), "input folder"),
        (("filter", "{p}/nope", "--min", "0.5"), "does not exist"),
        (("score", "{p}/nope.jpg"), "does not exist"),
        (("rank", "{p}", "--top", "0"), "--top"),
        (("score",), "PATHS"),
    ],
)
def test_usage_errors_exit_2_and_change_nothing(tiny_model, tmp_path, args, words):
    p = tmp_path / "in"
    p.mkdir()
    (p / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not a real png")
    existing = tmp_path / "existing.csv"
    existing.write_text("keep me\n")
    before = snapshot(tmp_path)
    fmt = {"p": p, "existing": existing, "pname": p.name}
    result = run(*[a.format(**fmt) for a in args])
    assert result.exit_code == 2, result.output
    assert words in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1  # one clear line
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- filter


@pytest.mark.tiny_model
def test_filter_copy_keeps_structure_and_a_second_run_never_overwrites(tiny_model, photos, reference):
    threshold, passing, failing = split_threshold(reference["best"])
    out = photos / "kept"  # inside the input folder: must not be scanned again
    sources = snapshot(photos)
    result = run("filter", photos, "--min", threshold, "--out", out, "--report", photos.parent / "r1.csv",
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [rel(line[1], photos) for line in lines] == INPUTS  # one verdict per photo, in order
    verdicts = {rel(line[1], photos): line[0] for line in lines}
    assert {p for p, v in verdicts.items() if v == "PASS"} == passing
    assert {p for p, v in verdicts.items() if v == "FAIL"} == set(INPUTS) - passing
    assert failing and all(verdicts[p] == "FAIL" for p in failing)
    for line in lines:
        if line[0] == "PASS":
            assert line[3].startswith("copy -> ")
    assert f"{len(passing)} of {len(INPUTS)} photos pass" in result.stderr

    first = snapshot(out)
    copied = {p for p, v in first.items() if v[0] == "file"}
    assert copied == passing  # the folder structure is kept
    for p in passing:
        assert (out / p).read_bytes() == (photos / p).read_bytes()
    assert {p: v for p, v in snapshot(photos).items() if not p.startswith("kept")} == sources  # sources untouched

    # scores agree with the reference run (same photos, same model)
    _, rows = read_report(photos.parent / "r1.csv")
    assert [rel(r["path"], photos) for r in rows] == [rel(r["path"], reference["root"]) for r in reference["rows"]]
    assert [r["score"] for r in rows] == [r["score"] for r in reference["rows"]]

    again = run("filter", photos, "--min", threshold, "--out", out, "--report", photos.parent / "r2.csv", "-q")
    assert again.exit_code == 0, again.output
    _, rows2 = read_report(photos.parent / "r2.csv")
    assert not [r for r in rows2 if "kept" in Path(r["path"]).parts]  # --out not re-scanned
    assert snapshot(out) == first  # a rerun reuses the identical copies: nothing overwritten, nothing added
    assert all("(already there)" in line for line in again.stdout.splitlines() if line.startswith("PASS"))
    changed = sorted(passing)[0]
    (photos / changed).write_bytes((photos / changed).read_bytes() + b"\0")  # same name, other bytes
    third = run("filter", photos, "--min", threshold, "--out", out, "-q")
    assert third.exit_code == 0, third.output
    new = {p for p in snapshot(out) if p not in first}
    assert new == {str(Path(changed).with_name(Path(changed).stem + "_1" + Path(changed).suffix))}
    assert {p: v for p, v in snapshot(out).items() if p in first} == first  # nothing overwritten


@pytest.mark.tiny_model
def test_filter_move_never_loses_a_photo_when_some_destinations_fail(tiny_model, photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "Aaron_Sorkin").write_bytes(b"a file where a folder should go")  # Sorkin's photos cannot land
    before = file_hashes(photos, out)
    result = run("filter", photos, "--min", "0", "--out", out, "--mode", "move", "-q")
    assert result.exit_code == 1, result.output
    assert "2 of 5 passing photos could not be moved" in result.stderr
    assert "still in place" in result.stderr
    for p in FACE_PHOTOS:
        if p.startswith("Aaron_Sorkin/"):
            assert (photos / p).is_file() and not (out / p).exists()
        else:
            assert not (photos / p).exists() and (out / p).is_file()
    failed = [line for line in result.stdout.splitlines() if "move FAILED" in line]
    assert len(failed) == 2
    assert file_hashes(photos, out) == before  # every photo is somewhere, exactly once
    assert (out / "Aaron_Sorkin").read_bytes() == b"a file where a folder should go"


@pytest.mark.tiny_model
def test_filter_move_into_an_unwritable_out_touches_nothing(tiny_model, photos, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"a regular file")
    before = snapshot(tmp_path)
    for dry in ((), ("--dry-run",)):
        result = run("filter", photos, "--min", "0", "--out", blocker / "sub", "--mode", "move", *dry)
        assert result.exit_code == 2, result.output
        assert "--out" in result.stderr and "blocker" in result.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(running_as_root(), reason="root ignores folder permissions")
@pytest.mark.tiny_model
def test_filter_move_into_a_read_only_folder_touches_nothing(tiny_model, photos, tmp_path):
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        before = snapshot(photos)
        result = run("filter", photos, "--min", "0", "--out", out, "--mode", "move")
        after = snapshot(photos)
    finally:
        out.chmod(stat.S_IRWXU)
    assert result.exit_code != 0 and "--out" in result.stderr
    assert after == before and not list(out.iterdir())


@pytest.mark.tiny_model
def test_filter_move_moves_only_passing_photos(tiny_model, photos, reference, tmp_path):
    threshold, passing, _ = split_threshold(reference["best"])
    out = tmp_path / "moved"
    before = file_hashes(photos)
    result = run("filter", photos, "--min", threshold, "--out", out, "--mode", "move", "-q")
    assert result.exit_code == 0, result.output
    assert {p for p, v in snapshot(out).items() if v[0] == "file"} == passing
    for p in INPUTS:
        assert os.path.lexists(photos / p) == (p not in passing), p
    assert file_hashes(photos, out) == before


@pytest.mark.tiny_model
def test_filter_link_mode(tiny_model, photos, tmp_path):
    out = tmp_path / "linked"
    before = snapshot(photos)
    result = run("filter", photos, "--min", "0", "--out", out, "--mode", "link", "-q")
    assert result.exit_code == 0, result.output
    links = {p: v for p, v in snapshot(out).items() if v[0] != "dir"}
    assert set(links) == set(FACE_PHOTOS)
    for p, v in links.items():
        assert v[0] == "link" and Path(v[1]) == (photos / p).absolute()
        assert (out / p).read_bytes() == (photos / p).read_bytes()
    assert snapshot(photos) == before


@pytest.mark.tiny_model
def test_filter_dry_run_changes_nothing_and_prints_the_plan(tiny_model, photos, tmp_path):
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    report = tmp_path / "plan.csv"
    result = run("filter", photos, "--min", "0", "--out", out, "--mode", "move", "--dry-run", "--report", report)
    assert result.exit_code == 0, result.output
    plan = [line.split("\t") for line in result.stdout.splitlines()]
    moves = [line for line in plan if line[0] == "PASS"]
    assert {rel(line[1], photos) for line in moves} == set(FACE_PHOTOS)
    for line in moves:
        assert line[3] == f"would move to {out / rel(line[1], photos)}"
    assert not out.exists()
    after = snapshot(tmp_path)
    assert after.pop(report.name)[0] == "file"  # the report is the only new file
    assert {k: v for k, v in after.items() if not k.startswith("model")} == {
        k: v for k, v in before.items() if not k.startswith("model")
    }


# --------------------------------------------------------------------------- filter on generated photos

SCRIPTED = {"a/p0.png": 1, "a/p1.png": 2, "b/p2.png": 0, "p3.png": 3, "b/c/p4.png": 1}


@pytest.fixture
def scripted_photos(tmp_path, monkeypatch) -> Path:
    """Generated pictures whose faces a scripted detector 'finds' (see test_pipeline.py): always available."""
    import faceiqa.api

    monkeypatch.setattr(faceiqa.api, "FaceDetector", lambda **kw: ScriptedDetector())
    root = tmp_path / "gen"
    for i, (name, n) in enumerate(SCRIPTED.items()):
        save_png(picture(n, seed=500 + i), root / name)
    write_bad(root / "bad", root / "p3.png")
    return root


@pytest.mark.tiny_model
def test_generated_photos_dry_run_then_move_then_copy_twice(tiny_model, scripted_photos, tmp_path):
    root = scripted_photos
    result = run("score", root, "--json", tmp_path / "s.json", "-q")
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "s.json").read_text())
    best: dict[str, float] = {}
    for r in records:
        if r["score"] is not None:
            p = rel(r["path"], root)
            best[p] = max(best.get(p, 0.0), r["score"])
    assert set(best) == {p for p, n in SCRIPTED.items() if n}
    threshold, passing, failing = split_threshold(best)
    assert passing and failing

    out = tmp_path / "out"
    before, hashes = snapshot(tmp_path), file_hashes(root)
    plan = run("filter", root, "--min", threshold, "--out", out, "--mode", "move", "--dry-run", "-q")
    assert plan.exit_code == 0, plan.output
    assert snapshot(tmp_path) == before and not out.exists()
    planned = {rel(line.split("\t")[1], root) for line in plan.stdout.splitlines() if line.startswith("PASS")}
    assert planned == passing

    moved = run("filter", root, "--min", threshold, "--out", out, "--mode", "move", "-q")
    assert moved.exit_code == 0, moved.output
    assert {p for p, v in snapshot(out).items() if v[0] == "file"} == passing
    assert not any((root / p).exists() for p in passing) and all((root / p).exists() for p in failing)
    assert file_hashes(root, out) == hashes  # nothing lost, nothing duplicated

    copies = tmp_path / "copies"
    for _ in range(2):
        assert run("filter", root, "--min", "0", "--out", copies, "-q").exit_code == 0
    names = sorted(p for p, v in snapshot(copies).items() if v[0] == "file")
    assert names == sorted(failing)  # the second copy run found every file already there


@pytest.mark.tiny_model
def test_filter_move_into_a_folder_that_refuses_writes_touches_nothing(
    tiny_model, scripted_photos, tmp_path, monkeypatch
):
    # What a read-only --out does for a normal user, simulated so that it also runs as root.
    import tempfile

    out = tmp_path / "locked"
    out.mkdir()
    real_mkstemp = tempfile.mkstemp

    def refuse(*args, dir=None, **kw):
        if dir is not None and Path(dir).resolve().is_relative_to(out.resolve()):
            raise PermissionError(13, "Permission denied")
        return real_mkstemp(*args, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    before = snapshot(tmp_path)
    result = run("filter", scripted_photos, "--min", "0", "--out", out, "--mode", "move")
    assert result.exit_code == 2, result.output
    assert "--out" in result.stderr and "Permission denied" in result.stderr and "no photo was touched" in result.stderr
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- rank


@pytest.mark.tiny_model
def test_rank_top_k_and_best_photo_per_folder(tiny_model, photos, reference):
    faces = sorted(
        ((float(r["score"]), rel(r["path"], reference["root"]), int(r["face"])) for r in reference["rows"] if r["score"]),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    result = run("rank", photos, "--top", 3, "-q")
    assert result.exit_code == 0, result.output
    header, *lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert header == ["rank", "score", "path", "face"]
    assert [line[0] for line in lines] == ["1", "2", "3"]
    assert [(line[1], rel(line[2], photos), int(line[3])) for line in lines] == [
        (f"{s:.4f}", p, f) for s, p, f in faces[:3]
    ]

    table = photos.parent / "rank.csv"
    result = run("rank", photos, "--per-folder", "--csv", table)
    assert result.exit_code == 0, result.output
    header, *lines = [line.split("\t") for line in result.stdout.splitlines()]
    with open(table, newline="") as fh:
        assert list(csv.reader(fh)) == [header, *lines] and header == ["folder", "score", "path", "face"]
    best = reference["best"]
    expected = {}
    for p, s in best.items():
        folder = Path(p).parent.as_posix()
        if folder not in expected or s > best[expected[folder]]:
            expected[folder] = p
    assert {line[0]: rel(line[2], photos) for line in lines} == expected
    assert set(expected) == {"Aaron_Peirsol", "Aaron_Sorkin", "group"}
    scores = [float(line[1]) for line in lines]
    assert scores == sorted(scores, reverse=True)
    assert "no face scored in 2 folder(s): ., bad" in result.stderr

    result = run("rank", photos, "--per-folder", "--top", 1, "-q")
    assert result.stdout.splitlines() == ["\t".join(header), "\t".join(lines[0])]


# --------------------------------------------------------------------------- HTML


class Page(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.faces, self.problems, self.bars, self.lines, self.imgs, self.threshold_divs = [], [], [], [], 0, 0
        self.histograms: dict[str, list[int]] = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class", "")
        if tag == "div" and cls in ("face", "face fail"):
            self.faces.append(a)
        elif tag == "div" and cls == "threshold-line":
            self.threshold_divs += 1
        elif tag == "tr" and cls == "problem":
            self.problems.append(a)
        elif tag == "svg" and cls == "histogram":
            self.histograms[a["aria-label"]] = self.bars = []
        elif tag == "rect" and cls == "bar":
            self.bars.append(int(a["data-count"]))
        elif tag == "line" and cls == "threshold":
            self.lines.append(float(a["data-threshold"]))
        elif tag == "img" and a.get("src", "").startswith("data:image/jpeg;base64,"):
            self.imgs += 1


def check_page(page: Page, rows: list[dict[str, str]], threshold: float | None) -> None:
    scored = [float(r["score"]) for r in rows if r["score"]]
    shown = [float(f["data-score"]) for f in page.faces]
    assert shown == sorted(scored, reverse=True)  # every face, best first
    assert page.imgs == len(scored)  # a thumbnail for each
    assert sum(page.histograms["score histogram of faces"]) == len(scored)
    photos = {r["path"] for r in rows if r["score"]}
    assert sum(page.histograms["score histogram of photos"]) == len(photos)
    assert all(sum(v) in (len(scored), len(photos)) for v in page.histograms.values())
    assert sorted(p["data-status"] for p in page.problems) == sorted(r["status"] for r in rows if not r["score"])
    if threshold is None:
        assert page.lines == [] and page.threshold_divs == 0
    else:
        assert page.lines and all(v == pytest.approx(threshold, abs=1e-5) for v in page.lines) and page.threshold_divs == 1
        assert sum(f["class"] == "face fail" for f in page.faces) == sum(s < threshold for s in scored)


@pytest.mark.tiny_model
def test_report_command_renders_the_csv_as_html(reference, tmp_path):
    out = tmp_path / "page.html"
    result = run("report", reference["csv"], "--html", out, "--min", "0.5")
    assert result.exit_code == 0, result.output
    check_page(Page(out.read_text()), reference["rows"], 0.5)
    assert run("report", reference["csv"], "--html", out).exit_code == 2  # exists
    not_a_report = tmp_path / "x.csv"
    not_a_report.write_text("a,b\n1,2\n")
    result = run("report", not_a_report, "--html", tmp_path / "x.html")
    assert result.exit_code == 1 and "missing columns" in result.stderr
    assert not (tmp_path / "x.html").exists()


@pytest.mark.tiny_model
def test_html_option_on_score_and_filter(tiny_model, photos, tmp_path):
    result = run("score", photos, "--csv", tmp_path / "s.csv", "--html", tmp_path / "s.html", "-q")
    assert result.exit_code == 0, result.output
    _, rows = read_report(tmp_path / "s.csv")
    check_page(Page((tmp_path / "s.html").read_text()), rows, None)
    page = Page((tmp_path / "s.html").read_text())
    errors = [p for p in page.problems if p["data-status"] == "error"]
    assert len(errors) == len(BAD)

    result = run("filter", photos, "--min", "0.5", "--report", tmp_path / "f.csv", "--html", tmp_path / "f.html", "-q")
    assert result.exit_code == 0, result.output
    _, rows = read_report(tmp_path / "f.csv")
    check_page(Page((tmp_path / "f.html").read_text()), rows, 0.5)


def test_report_command_reads_spreadsheet_saved_reports_and_rejects_broken_ones(tmp_path):
    header = ",".join(COLUMNS)
    saved = tmp_path / "saved.csv"  # as a spreadsheet program writes it back: BOM, no thumbnails to find
    saved.write_text("\ufeff" + header + "\nx.jpg,0,0.75,0.1,0.99,1,2,30,40,12,ok,\ny.jpg,,,,,,,,,,no_face,\n",
                     encoding="utf-8")
    result = run("report", saved, "--html", tmp_path / "saved.html", "--min", "0.5")
    assert result.exit_code == 0, result.output
    page = Page((tmp_path / "saved.html").read_text())
    assert [f["data-score"] for f in page.faces] == ["0.75"] and page.imgs == 0  # no photo: no thumbnail
    assert [p["data-status"] for p in page.problems] == ["no_face"]

    short = tmp_path / "short.csv"
    short.write_text(header + "\nx.jpg,0,0.75\n")
    bad_status = tmp_path / "status.csv"
    bad_status.write_text(header + "\nx.jpg,0,0.75,0.1,0.99,1,2,30,40,12,great,\n")
    for broken, words in ((short, "line 2: fewer cells"), (bad_status, "line 2")):
        result = run("report", broken, "--html", tmp_path / "b.html")
        assert result.exit_code == 1, result.output
        assert words in result.stderr and "Traceback" not in result.output
        assert not (tmp_path / "b.html").exists()


def test_the_progress_bar_moves_photo_by_photo_on_a_terminal_and_is_silent_otherwise(monkeypatch):
    import io
    import sys

    from faceiqa.cli.scoring import _progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    with _progress(3, quiet=False) as tick:
        for _ in range(3):
            tick()
    assert "3/3" in term.getvalue() and "photo" in term.getvalue()
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    with _progress(3, quiet=True) as tick:
        tick()
    assert quiet.getvalue() == ""
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    with _progress(3, quiet=False) as tick:
        tick()
    assert pipe.getvalue() == ""


@pytest.mark.tiny_model
def test_report_from_another_folder_finds_photos_beside_the_csv_and_warns_otherwise(tiny_model, scripted_photos, tmp_path, monkeypatch):
    work = scripted_photos.parent
    monkeypatch.chdir(work)
    assert run("score", scripted_photos.name, "--csv", "r.csv", "--device", "cpu", "-q").exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ok = run("report", work / "r.csv", "--html", "a.html")  # relative paths resolve beside the CSV
    assert ok.exit_code == 0 and "no preview" not in ok.stderr
    assert "data:image/jpeg;base64" in (elsewhere / "a.html").read_text() or "data:image/png;base64" in (elsewhere / "a.html").read_text()
    moved = tmp_path / "other" / "moved.csv"
    moved.parent.mkdir()
    moved.write_bytes((work / "r.csv").read_bytes())
    lost = run("report", moved, "--html", "b.html")
    assert lost.exit_code == 0 and "warning: no preview for" in lost.stderr


@pytest.mark.tiny_model
def test_threads_exact_and_auto_give_the_same_rows_within_rounding(tiny_model, scripted_photos, tmp_path):
    a, b = tmp_path / "auto.csv", tmp_path / "exact.csv"
    assert run("score", scripted_photos, "--csv", a, "--device", "cpu", "-q").exit_code == 0
    assert run("score", scripted_photos, "--csv", b, "--threads", "exact", "--device", "cpu", "-q").exit_code == 0
    _, ra = read_report(a)
    _, rb = read_report(b)
    assert [(r["path"], r["face"], r["status"]) for r in ra] == [(r["path"], r["face"], r["status"]) for r in rb]
    assert all(abs(float(x["score"]) - float(y["score"])) < 1e-3 for x, y in zip(ra, rb) if x["score"])
    assert run("score", scripted_photos, "--threads", "turbo").exit_code == 2
