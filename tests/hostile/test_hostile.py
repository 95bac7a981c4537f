"""Hostile inputs: names, files and reports built to break faceiqa. Every input is accounted for.

Runs the real CLI with the tiny random-weight model and a scripted detector (no shared data
needed), so scores mean nothing here; what is checked is status, rows and files.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scripted import ScriptedDetector, picture, save_png
from tiny_models import install_tiny_model

from faceiqa.cli import main
from faceiqa.errors import ImageReadError

pytestmark = [pytest.mark.tiny_model, pytest.mark.usefixtures("one_torch_thread")]


def run(*args: object):
    return CliRunner().invoke(main, [a if isinstance(a, (str, bytes)) else os.fspath(a) for a in args], catch_exceptions=False)


@pytest.fixture
def env(tmp_path, monkeypatch):
    import faceiqa.api

    install_tiny_model(tmp_path / "model", monkeypatch)
    monkeypatch.setattr(faceiqa.api, "FaceDetector", lambda **kw: ScriptedDetector())
    root = tmp_path / "in"
    root.mkdir()
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_file_name_that_is_not_utf8_gets_its_row_and_every_report_is_written(env, tmp_path):
    if sys.platform == "darwin":
        pytest.skip("macOS file systems refuse names that are not UTF-8")
    for i in range(3):
        save_png(picture(1, seed=i), env / f"ok{i}.png")
    bad = os.fsencode(env) + b"/caf\xe9 \xff.png"
    with open(bad, "wb") as fh, open(env / "ok0.png", "rb") as src:
        fh.write(src.read())
    out = tmp_path / "r.csv"
    r = run("score", env, "--csv", out, "--json", tmp_path / "r.json", "--html", tmp_path / "r.html", "--device", "cpu")
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    assert len(rows) == 4 and {row["status"] for row in rows} <= {"ok", "small_face"}
    assert any(row["path"].endswith("caf\\xe9 \\xff.png") for row in rows)  # the undecodable bytes as \xNN
    records = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert len(records) == 4 and "caf\\xe9" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_a_malformed_report_gives_a_one_line_error_naming_row_and_column(env, tmp_path):
    save_png(picture(1, seed=1), env / "a.png")
    good = tmp_path / "good.csv"
    assert run("score", env, "--csv", good, "--device", "cpu").exit_code == 0
    text = good.read_text()
    header, first = text.splitlines()[:2]
    cells = first.split(",")
    for column, value, fragment in [("x1", "inf", "not a finite number"), ("score", "2.5", "outside [0, 1]"),
                                    ("face", "one", "not a face number"), ("status", "great", "status")]:
        bad = list(cells)
        bad[header.split(",").index(column)] = value
        path = tmp_path / f"bad_{column}.csv"
        path.write_text(header + "\n" + ",".join(bad) + "\n")
        r = run("report", path, "--html", tmp_path / f"{column}.html")
        assert r.exit_code == 1, (column, r.output)
        err = r.output.strip().splitlines()[-1]
        assert "line 2" in err and f"column {column}" in err and fragment in err, err


def test_named_inputs_never_vanish(env, tmp_path, caplog):
    save_png(picture(1, seed=2), env / "tmp.png")
    (env / "tmp.png").rename(env / "trailing space.png ")  # an extension with a trailing space
    (tmp_path / "x.png").mkdir()  # a folder named like an image, given explicitly
    out = tmp_path / "r.csv"
    r = run("score", env, tmp_path / "x.png", "--csv", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert [Path(row["path"]).name for row in _rows(out)] == ["trailing space.png "]
    assert "x.png is a folder with no image files in it" in caplog.text


def test_control_characters_in_names_do_not_split_output_lines(env, tmp_path):
    save_png(picture(1, seed=3), env / "two\nlines\t.png")
    r = run("filter", env, "--min", "0", "--dry-run")
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(("PASS", "FAIL"))]
    assert len(lines) == 1 and "two\\nlines\\t.png" in lines[0] and len(lines[0].split("\t")) == 3


def test_a_spreadsheet_formula_in_a_name_is_exact_by_default_and_quoted_with_excel_safe(env, tmp_path):
    save_png(picture(1, seed=4), env / "=HYPERLINK(1).png")
    save_png(picture(1, seed=5), env / "-plain.png")
    exact, safe = tmp_path / "exact.csv", tmp_path / "safe.csv"
    assert run("score", env, "--csv", exact, "--device", "cpu").exit_code == 0
    assert run("score", env, "--csv", safe, "--excel-safe", "--device", "cpu").exit_code == 0
    assert sorted(Path(r["path"]).name for r in _rows(exact)) == ["-plain.png", "=HYPERLINK(1).png"]
    # paths are absolute or relative; a path cell starting with a formula character gets the quote
    safe_paths = [r["path"] for r in _rows(safe)]
    assert all(not p.startswith(("=", "+", "-", "@")) for p in safe_paths)
    rel = tmp_path / "rel.csv"
    cwd = os.getcwd()
    os.chdir(env)
    try:
        r = run("score", "--csv", rel, "--excel-safe", "--device", "cpu", "--", "=HYPERLINK(1).png", "-plain.png")
        assert r.exit_code == 0, r.output
    finally:
        os.chdir(cwd)
    assert sorted(r["path"] for r in _rows(rel)) == ["'-plain.png", "'=HYPERLINK(1).png"]


def test_bad_destinations_and_reports_are_refused_before_the_model_loads(env, tmp_path, monkeypatch):
    import faceiqa.cli._common as common

    def no_model(opts):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(common, "make_assessor", no_model)
    import faceiqa.cli.scoring as scoring

    monkeypatch.setattr(scoring, "make_assessor", no_model)
    save_png(picture(1, seed=6), env / "a.png")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("filter", env, "--min", "0.5", "--out", blocker / "sub")
    assert r.exit_code == 2 and "cannot be" in r.output
    r = run("score", env, "--csv", tmp_path / "missing" / "r.csv")
    assert r.exit_code == 2 and "does not exist" in r.output
    (tmp_path / "r.csv").write_text("keep")
    r = run("score", env, "--csv", tmp_path / "r.csv")
    assert r.exit_code == 2 and "already exists" in r.output and (tmp_path / "r.csv").read_text() == "keep"


def test_wrong_weights_are_a_usage_error(env, tmp_path):
    save_png(picture(1, seed=7), env / "a.png")
    (tmp_path / "some.jpg").write_bytes(b"not a checkpoint")
    for weights in ("no-such-model", str(tmp_path / "some.jpg"), str(tmp_path / "absent.pt")):
        r = run("score", env, "--weights", weights, "--device", "cpu")
        assert r.exit_code == 2, (weights, r.output)
        assert "--weights" in r.output


def test_the_json_report_has_null_where_a_cell_is_empty(env, tmp_path):
    save_png(picture(1, seed=8), env / "a.png")
    (env / "broken.png").write_bytes(b"\x89PNG truncated")
    out = tmp_path / "r.json"
    assert run("score", env, "--json", out, "--device", "cpu").exit_code == 0
    records = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
    assert records["a.png"]["error"] is None and records["broken.png"]["score"] is None
    assert records["broken.png"]["status"] == "error" and records["broken.png"]["error"]


def test_in_memory_images_obey_the_pixel_limit():
    import torch

    from faceiqa.images import to_rgb

    big = np.lib.stride_tricks.as_strided(np.zeros(3, np.uint8), shape=(40000, 40000, 3), strides=(0, 0, 1))
    with pytest.raises(ImageReadError, match="too large"):
        to_rgb(big)
    with pytest.raises(ImageReadError, match="too large"):
        to_rgb(torch.zeros(1, 1, 1, dtype=torch.uint8).expand(3, 20000, 20000))
    with pytest.raises(ImageReadError, match="too large"):
        to_rgb(np.zeros((100, 100, 3), np.uint8), max_pixels=5000)


def test_two_runs_writing_the_same_report_never_leave_a_torn_file(env, tmp_path):
    import subprocess

    for i in range(6):
        save_png(picture(1, seed=20 + i), env / f"p{i}.png")
    out = tmp_path / "same.csv"
    code = (
        "import sys, faceiqa.api as a; sys.path.insert(0, sys.argv[1]);"
        "import tiny_models; from scripted import ScriptedDetector; a.FaceDetector = lambda **kw: ScriptedDetector();"
        "from faceiqa.cli import main; main(sys.argv[2:])"
    )
    helpers = str(Path(__file__).resolve().parents[1] / "helpers")
    args = [sys.executable, "-c", code, helpers, "score", str(env), "--csv", str(out), "--device", "cpu", "-q"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ}) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in results)
    assert codes[0] == 0 and codes[1] in (1, 2), results  # one wins; the other is refused, whenever it came
    rows = _rows(out)
    assert sorted(Path(r["path"]).name for r in rows) == [f"p{i}.png" for i in range(6)]  # whole, never mixed
    loser = [err for c, err in results if c != 0]
    assert all("already exists" in err or "another run created it" in err for err in loser), loser


def test_a_hostile_corpus_every_input_accounted_for_with_its_exact_status(env, tmp_path):
    from imagefiles import write_bad_files, write_good_images
    from PIL import Image, features

    good = write_good_images(env / "good")
    bad = write_bad_files(env / "bad")
    extra = env / "extra"
    extra.mkdir()
    rotated = Image.fromarray(picture(1, seed=31))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: a viewer turns it upright
    rotated.save(extra / "exif_rotated.jpg", exif=exif.tobytes())
    avif = tmp_path / "photo.avif"  # not a format faceiqa decodes: named explicitly, it gets an error row
    if features.check("avif"):
        Image.fromarray(picture(1, seed=32)).save(avif)
    else:
        avif.write_bytes(b"\x00\x00\x00\x1cftypavif" + bytes(64))
    names = {"=SUM(1).png": None, "two\nlines.png": None, "x" * 246 + ".png": None, "tab\there.png": None}
    for name in names:
        save_png(picture(1, seed=30), env / "names" / name)
    out = tmp_path / "r.csv"
    r = run("score", env, avif, "--csv", out, "--device", "cpu", "-q")
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    by_path: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_path.setdefault(row["path"], []).append(row)
    for g in good.values():
        statuses = {row["status"] for row in by_path.pop(str(g.path))}
        assert statuses <= {"ok", "small_face", "no_face"}, (g.path, statuses)
    for name, b in bad.items():
        if b.skip or b.path.is_dir():
            by_path.pop(str(b.path), None)
            continue
        (row,) = by_path.pop(str(b.path))
        assert row["status"] == "error" and b.reason.split(":")[0] in row["error"], (name, row["error"])
    (row,) = by_path.pop(str(avif))
    assert row["status"] == "error" and ("unsupported image format" in row["error"] or "not an image" in row["error"])
    for f in extra.iterdir():
        (row,) = by_path.pop(str(f))
        assert row["status"] in ("ok", "small_face", "no_face"), (f.name, row)
    (other_end,) = by_path.pop(str(env / "bad" / "loop_b.jpg"))  # the loop's second link
    assert other_end["error"] == "symbolic link loop"
    for name in names:
        (row,) = by_path.pop(str(env / "names" / name))
        assert row["status"] in ("ok", "small_face")
    assert by_path == {}, sorted(by_path)  # nothing else, and nothing missing


@pytest.mark.parametrize("kind", ["pickle", "bomb", "text"])
def test_hostile_checkpoints_through_weights_are_refused_in_one_line(env, tmp_path, kind):
    import zipfile

    import torch

    save_png(picture(1, seed=9), env / "a.png")
    path = tmp_path / f"{kind}.pt"
    marker = tmp_path / "ran"
    if kind == "pickle":
        class Payload:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        torch.save({"w": torch.zeros(1), "x": Payload()}, path)
    elif kind == "bomb":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("b/data.pkl", b"\x80\x02}q\x00.")
            with z.open("b/data/0", "w", force_zip64=True) as fh:
                for _ in range(32):
                    fh.write(bytes(1 << 20))
    else:
        path.write_text("hello")
    r = run("score", env, "--weights", path, "--device", "cpu")
    assert r.exit_code == 2, r.output
    assert "weights_only" not in r.output and not marker.exists()
    assert len([ln for ln in r.output.splitlines() if ln.startswith("Error")]) == 1
