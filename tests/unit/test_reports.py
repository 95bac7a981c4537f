"""The CSV/JSON report contract and the HTML visual report."""

from __future__ import annotations

import csv
import json
import math
from html.parser import HTMLParser

import numpy as np
import pytest

from faceiqa.errors import InvalidArgumentError
from faceiqa.output.html import face_thumbnail, render_html, write_html
from faceiqa.output.reports import (
    REPORT_COLUMNS,
    CsvReportWriter,
    ReportRow,
    Status,
    error_row,
    no_face_row,
    read_csv,
    write_csv,
    write_json,
)


def _rows() -> list[ReportRow]:
    return [
        ReportRow("a.jpg", 0, 0.8123456789012345, 61.3, 0.999, 10, 20, 110, 140, 42.5, Status.OK),
        ReportRow("a.jpg", 1, 0.2, 20.0, 0.95, 200, 20, 230, 60, 12.0, Status.SMALL_FACE),
        no_face_row("b.png"),
        error_row("c.jpg", "truncated image\nfile"),
    ]


def test_columns_are_the_documented_contract():
    assert REPORT_COLUMNS == (
        "path", "face", "score", "raw_score", "det_prob", "x1", "y1", "x2", "y2", "eye_distance", "status", "error",
    )


def test_csv_round_trip_keeps_scores_bit_exact(tmp_path):
    path = tmp_path / "r.csv"
    write_csv(_rows(), path)
    with open(path, newline="") as fh:
        raw = list(csv.reader(fh))
    assert tuple(raw[0]) == REPORT_COLUMNS
    assert raw[3][REPORT_COLUMNS.index("face")] == ""  # no face: empty index
    assert raw[3][REPORT_COLUMNS.index("status")] == "no_face"
    assert raw[4][REPORT_COLUMNS.index("error")] == "truncated image file"  # one line
    back = read_csv(path)
    assert back[0].score == 0.8123456789012345
    assert back[1].status is Status.SMALL_FACE and back[1].face == 1
    assert back[2].face is None and math.isnan(back[2].score)


def test_streaming_writer_flushes_each_row_and_publishes_on_close(tmp_path):
    path = tmp_path / "s.csv"
    with CsvReportWriter(path) as writer:
        writer.write(_rows()[0])
        assert len(writer.partial.read_text().splitlines()) == 2  # on disk before close
        assert writer.partial.parent == tmp_path and writer.partial.name.startswith(".s.csv.")
        assert not path.exists()  # nobody sees a half-written report
        writer.write(_rows()[2])
    assert [r.path for r in read_csv(path)] == ["a.jpg", "b.png"] and not writer.partial.exists()


def test_an_interrupted_writer_keeps_its_rows_and_publishes_nothing(tmp_path):
    path = tmp_path / "s.csv"
    with pytest.raises(KeyboardInterrupt), CsvReportWriter(path) as writer:
        writer.write(_rows()[0])
        raise KeyboardInterrupt
    assert not path.exists() and len(writer.partial.read_text().splitlines()) == 2


def test_a_second_writer_of_the_same_report_fails_and_the_first_stays_whole(tmp_path):
    path = tmp_path / "s.csv"
    first, second = CsvReportWriter(path), CsvReportWriter(path)
    for row in _rows():
        first.write(row)
    second.write(_rows()[0])
    first.close()
    with pytest.raises(FileExistsError, match="another writer") as info:
        second.close()
    assert [r.path for r in read_csv(path)] == [r.path for r in _rows()]
    assert str(second.partial) in str(info.value) and second.partial.exists()


def test_replacing_a_report_replaces_a_symlink_and_never_writes_through_it(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    with CsvReportWriter(link, replace=True) as writer:
        writer.write(_rows()[0])
    assert target.read_text() == "keep me" and not link.is_symlink() and read_csv(link)[0].path == "a.jpg"
    json_link = tmp_path / "link.json"
    json_link.symlink_to(target)
    write_json(_rows(), json_link)
    assert target.read_text() == "keep me" and not json_link.is_symlink()
    with pytest.raises(FileExistsError):
        write_json(_rows(), tmp_path / "link.json", replace=False)


def test_json_holds_the_same_records(tmp_path):
    path = tmp_path / "r.json"
    write_json(_rows(), path)
    records = json.loads(path.read_text())
    assert [list(r) for r in records] == [list(REPORT_COLUMNS)] * 4
    assert records[2]["score"] is None and records[2]["status"] == "no_face"
    assert records[0]["score"] == 0.8123456789012345


def test_reports_get_ordinary_file_permissions(tmp_path):
    """Atomic writes go through a private temp file; the report itself follows the umask."""
    import os
    import stat

    old = os.umask(0o027)
    try:
        write_json(_rows(), tmp_path / "r.json")
        write_html(_rows(), tmp_path / "r.html")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    expected = stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
    assert expected == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "r.json").st_mode) == expected
    assert stat.S_IMODE(os.stat(tmp_path / "r.html").st_mode) == expected
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_read_csv_rejects_other_files(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidArgumentError, match="missing columns"):
        read_csv(bad)
    with pytest.raises(InvalidArgumentError, match="cannot read"):
        read_csv(tmp_path / "missing.csv")


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.faces, self.problems, self.bars, self.lines, self.imgs = [], [], [], [], 0
        self.threshold_divs = 0
        self.histograms: dict[str, list[int]] = {}
        self._hist = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class", "")
        if tag == "div" and cls in ("face", "face fail"):
            self.faces.append(a)
        if tag == "div" and cls == "threshold-line":
            self.threshold_divs += 1
        if tag == "tr" and cls == "problem":
            self.problems.append(a)
        if tag == "svg" and cls == "histogram":
            self._hist = a["aria-label"]
            self.histograms[self._hist] = []
        if tag == "rect" and cls == "bar":
            self.bars.append(int(a["data-count"]))
            self.histograms[self._hist].append(int(a["data-count"]))
        if tag == "line" and cls == "threshold":
            self.lines.append(float(a["data-threshold"]))
        if tag == "img" and a.get("src", "").startswith("data:image/jpeg;base64,"):
            self.imgs += 1


def test_html_report_sorted_with_threshold_histogram_and_errors():
    rng = np.random.default_rng(0)
    rows = [ReportRow(f"p{i}.jpg", 0, float(s), 0.0, 0.99, 0, 0, 50, 50, 20.0) for i, s in enumerate(rng.random(30))]
    rows += _rows()[2:]
    image = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)
    page = render_html(rows, threshold=0.5, thumbnail=lambda r: face_thumbnail(image, (r.x1, r.y1, r.x2, r.y2)))
    p = _Collect()
    p.feed(page)
    scores = [float(f["data-score"]) for f in p.faces]
    assert len(scores) == 30 and scores == sorted(scores, reverse=True)
    assert p.imgs == 30
    faces, photos = p.histograms["score histogram of faces"], p.histograms["score histogram of photos"]
    assert sum(faces) == 30 and len(faces) == 20 and sum(photos) == 30  # one face per photo here
    assert len(p.histograms) == 2  # spread-out scores: no zoomed view
    assert p.lines == [0.5, 0.5] and p.threshold_divs == 1
    assert [f["class"] for f in p.faces].count("face fail") == sum(s < 0.5 for s in scores)
    assert sorted(x["data-status"] for x in p.problems) == ["error", "no_face"]


def test_html_samples_large_reports_and_rejects_bad_threshold():
    rows = [ReportRow(f"p{i}.jpg", 0, i / 999, 0.0) for i in range(1000)]
    p = _Collect()
    p.feed(render_html(rows, max_faces=50))
    scores = [float(f["data-score"]) for f in p.faces]
    assert len(scores) == 50 and scores[0] == 1.0 and scores[-1] == 0.0
    with pytest.raises(InvalidArgumentError):
        render_html(rows, threshold=1.5)


def test_clustered_scores_get_a_zoomed_histogram_with_counts_and_photos_use_their_best_face():
    from faceiqa.output.html import zoom_range

    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):  # 40 photos, 2 faces each, all between 0.985 and 0.999
        for face in range(2):
            rows.append(ReportRow(f"p{i}.jpg", face, float(rng.uniform(0.985, 0.999)), 0.0, 0.99, 0, 0, 50, 50, 20.0))
    page = render_html(rows, threshold=0.99)
    p = _Collect()
    p.feed(page)
    zoomed = {k: v for k, v in p.histograms.items() if "zoomed" in k}
    assert set(zoomed) == {
        "score histogram of faces (zoomed to where the scores are)",
        "score histogram of photos (zoomed to where the scores are)",
    }
    assert sum(zoomed["score histogram of faces (zoomed to where the scores are)"]) == 80
    assert sum(zoomed["score histogram of photos (zoomed to where the scores are)"]) == 40
    assert max(zoomed["score histogram of faces (zoomed to where the scores are)"]) < 80  # spread over several bars
    assert p.lines.count(0.99) == 4  # the threshold is drawn in every view it falls in
    assert 'class="count"' in page and ">score<" in page
    lo, hi = zoom_range(np.array([r.score for r in rows]))
    assert 0.97 < lo < 0.986 and 0.998 < hi <= 1.0
    assert zoom_range(np.linspace(0, 1, 50)) is None and zoom_range(np.array([0.5, 0.5])) is None
