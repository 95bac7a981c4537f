"""``faceiqa score | filter | rank | report``: the everyday commands."""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from faceiqa._util import atomic_write
from faceiqa.cli._common import check_device_option, fail, make_assessor, model_options, plural, write_failed
from faceiqa.errors import FaceIQAError, InvalidArgumentError
from faceiqa.images import expand_inputs, read_image
from faceiqa.output.decisions import Policy
from faceiqa.output.fileops import Transferer, TransferMode
from faceiqa.output.html import face_thumbnail, write_html
from faceiqa.output.reports import (
    REPORT_COLUMNS,
    CsvReportWriter,
    ReportRow,
    Status,
    display_text,
    excel_safe,
    read_csv,
    safe_text,
    write_json,
)

log = logging.getLogger("faceiqa.cli")

T = TypeVar("T")

_PAST = {"copy": "copied", "move": "moved", "link": "linked"}


def _inside(path: Path, folder: Path) -> bool:
    """True when ``path`` lies in ``folder`` or below it (links and ``..`` of its folder resolved)."""
    try:
        where = os.path.join(os.path.realpath(path.parent), path.name)
        return where.startswith(os.path.join(os.path.realpath(folder), ""))
    except (OSError, ValueError):
        return False


def _inputs(paths: tuple[str, ...], hidden: bool, exclude: Path | None = None) -> list[Path]:
    try:
        files = expand_inputs(list(paths), include_hidden=hidden)
    except InvalidArgumentError as exc:
        raise click.UsageError(str(exc)) from None
    if exclude is not None:
        files = [f for f in files if not _inside(f, exclude)]
    if not files:
        raise click.ClickException("no images found in " + ", ".join(paths))
    return files


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_new(path: str | None, overwrite: bool, option: str) -> Path | None:
    """A report file to create: refuse one that exists (unless --overwrite) or cannot be made."""
    if path is None:
        return None
    p = Path(path)
    if os.path.lexists(p) and not overwrite:
        raise click.UsageError(f"{option} {p} already exists; pass --overwrite to replace it")
    if p.is_dir():
        raise click.UsageError(f"{option} {p} is a folder, not a file")
    parent = Path(os.path.abspath(p)).parent
    if not parent.is_dir():
        what = "is not a folder" if os.path.lexists(parent) else "does not exist"
        raise click.UsageError(f"{option} {p} cannot be created: {parent} {what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise click.UsageError(f"{option} {p} cannot be created: {parent} is not writable")
    return p


def _guard_reports(files: list[Path], *reports: tuple[Path | None, str]) -> None:
    """Never let a report file replace one of the input images."""
    inputs = {os.path.realpath(f) for f in files}
    for report, option in reports:
        if report is not None and os.path.realpath(report) in inputs:
            raise click.UsageError(f"{option} {report} is one of the input images; choose another file")


def _check_out(out: Path, dry_run: bool) -> None:
    """Fail before any photo is processed when --out cannot be written.

    In a real run the folder is created here (and a probe file written and removed); a dry
    run creates nothing and only checks that the nearest existing parent is a folder.
    """
    if dry_run:
        parent = _nearest_existing(out)
        if not parent.is_dir():
            raise click.BadParameter(f"{out} cannot be created: {parent} is not a folder", param_hint="--out")
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".faceiqa-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise click.BadParameter(
            f"{out} cannot be written ({exc.strerror or exc}); no photo was touched", param_hint="--out"
        ) from None


@contextmanager
def _progress(total: int, quiet: bool) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr that moves once per photo (call what this yields); none with
    --quiet or when stderr is not a terminal (the summary line at the end says what was done)."""
    from tqdm import tqdm

    shown = not quiet and sys.stderr.isatty()
    with tqdm(total=total, unit="photo", disable=not shown, file=sys.stderr, dynamic_ncols=True, smoothing=0.1) as bar:
        yield lambda: bar.update(1)


def _run(assessor: Any, files: list[Path], quiet: bool) -> Iterator[ReportRow]:
    """Assess files with a progress bar; yields report rows in input order."""
    with _progress(len(files), quiet) as tick:
        for assessment in assessor.assess_many(files, progress=tick):
            yield from assessment.rows()


def _summary(rows: list[ReportRow], quiet: bool) -> None:
    images = len({r.path for r in rows})
    faces = sum(r.has_score for r in rows)
    errors = sum(r.status is Status.ERROR for r in rows)
    noface = sum(r.status is Status.NO_FACE for r in rows)
    if not quiet:
        click.echo(
            f"faceiqa: {plural(images, 'image')}, {plural(faces, 'face')} scored, {noface} without a face, "
            f"{plural(errors, 'error')}",
            err=True,
        )
    if images and errors == images:
        raise click.ClickException("no image could be processed (see the report's error column)")


class _Thumbnails:
    """Face thumbnails for the HTML report, read from the photos the rows name.

    A relative path is tried as given (from the current folder) and then from
    ``report_dir`` (the CSV's folder). :attr:`missing` collects the photos found in neither.
    """

    def __init__(self, report_dir: Path | None) -> None:
        self.report_dir = report_dir
        self.missing: list[str] = []
        self._path = ""
        self._image: Any = None

    def __call__(self, row: ReportRow) -> bytes | None:
        if row.path != self._path:  # rows arrive grouped by image: keep one decoded image
            self._path, self._image = row.path, None
            candidates = [Path(row.path)]
            if self.report_dir is not None and not Path(row.path).is_absolute():
                candidates.append(self.report_dir / row.path)
            for cand in candidates:
                try:
                    self._image = read_image(cand)
                    break
                except FaceIQAError:
                    continue
            if self._image is None and row.has_score and row.path not in self.missing:
                self.missing.append(row.path)
        if self._image is None or math.isnan(row.x1):
            return None
        return face_thumbnail(self._image, (row.x1, row.y1, row.x2, row.y2))


def _html(rows: list[ReportRow], path: Path, threshold: float | None, report_dir: Path | None = None, *, replace: bool = False) -> list[str]:
    """Write the HTML report; returns the photos whose previews could not be found."""
    thumbnails = _Thumbnails(report_dir)
    write_html(rows, path, threshold=threshold, thumbnail=thumbnails, replace=replace)
    return thumbnails.missing


@contextmanager
def _report_errors(option: str, path: Path) -> Iterator[None]:
    """Writing a report: a failure, or another run taking the name first, is a one-line error (exit 1)."""
    try:
        yield
    except FileExistsError as exc:
        raise click.ClickException(f"{option} {path}: another run created it meanwhile; not replaced ({exc})") from None
    except OSError as exc:
        raise write_failed(option, path, exc) from None


def _open_csv(path: Path, option: str, replace: bool, excel_safe: bool) -> CsvReportWriter:
    with _report_errors(option, path):
        return CsvReportWriter(path, replace=replace, excel_safe=excel_safe)


def _write_reports(
    rows: list[ReportRow], json_path: Path | None, html_path: Path | None, threshold: float | None, replace: bool
) -> None:
    """Write the JSON and HTML reports (after the run); a failure is a clear error, exit 1."""
    if json_path is not None:
        with _report_errors("--json", json_path):
            write_json(rows, json_path, replace=replace)
    if html_path is not None:
        with _report_errors("--html", html_path):
            _html(rows, html_path, threshold, replace=replace)


@click.command("score")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write the CSV report here (default: standard output).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the report as JSON.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write a visual HTML report.")
@click.option("--overwrite", is_flag=True, help="Replace report files that already exist.")
@model_options
def score_cmd(paths: tuple[str, ...], csv_path: str | None, json_path: str | None, html_path: str | None, overwrite: bool, **opts: Any) -> None:
    """Score every face in PATHS (image files and folders, walked recursively).

    One CSV row per face, one row for an image without a face or with an error.
    """
    csv_file = _check_new(csv_path, overwrite, "--csv")
    json_file = _check_new(json_path, overwrite, "--json")
    html_file = _check_new(html_path, overwrite, "--html")
    check_device_option(opts["device"])
    files = _inputs(paths, opts["hidden"])
    _guard_reports(files, (csv_file, "--csv"), (json_file, "--json"), (html_file, "--html"))
    assessor = make_assessor(opts)
    rows: list[ReportRow] = []
    if csv_file is not None:
        with _report_errors("--csv", csv_file), _open_csv(csv_file, "--csv", overwrite, opts["excel_safe"]) as writer:
            for row in _run(assessor, files, opts["quiet"]):
                writer.write(row)
                rows.append(row)
    else:
        out = csv.writer(sys.stdout)
        out.writerow(REPORT_COLUMNS)
        for row in _run(assessor, files, opts["quiet"]):
            out.writerow(row.to_cells(excel_safe=opts["excel_safe"]))
            rows.append(row)
        sys.stdout.flush()
    _write_reports(rows, json_file, html_file, None, overwrite)
    _summary(rows, opts["quiet"])


@click.command("filter")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--min", "min_score", type=click.FloatRange(0.0, 1.0), required=True, help="Keep photos scoring at least this (0..1).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Copy (or move / link) the photos that pass here, keeping sub-folders.")
@click.option("--mode", type=click.Choice([m.value for m in TransferMode]), default="copy", show_default=True, help="How passing photos reach --out.")
@click.option("--policy", type=click.Choice([p.value for p in Policy]), default="best", show_default=True, help="Which faces must pass: the best, all, or the largest.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Write the CSV report here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the report as JSON.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write a visual HTML report.")
@click.option("--relative-links", is_flag=True, help="With --mode link: link to paths relative to each link's folder (default: absolute).")
@click.option("--keep-empty-folders", is_flag=True, help="With --mode move: keep the source folders a move emptied (default: remove them).")
@click.option("--dry-run", is_flag=True, help="Change no photo: print what would be done.")
@click.option("--overwrite", is_flag=True, help="Replace report files that already exist.")
@model_options
def filter_cmd(
    folder: str,
    min_score: float,
    out_dir: str | None,
    mode: str,
    policy: str,
    report_path: str | None,
    json_path: str | None,
    html_path: str | None,
    relative_links: bool,
    keep_empty_folders: bool,
    dry_run: bool,
    overwrite: bool,
    **opts: Any,
) -> None:
    """Keep the photos in FOLDER whose faces score at least --min.

    Prints one line per photo (PASS/FAIL and why, and where it went). With --out the
    passing photos are copied (default), moved or linked there under their relative
    paths; existing files are never overwritten (a _1, _2... suffix is added). In move
    mode a source is deleted only after its copy is complete and flushed. Photos without
    a face or that cannot be read never pass. Report files are written even in a dry run.

    --out may lie inside FOLDER (it is not scanned) but may not be FOLDER itself; it is
    created, and checked to be writable, before any photo is processed. Exit code 1 when
    some passing photos could not be transferred (they stay where they were).
    """
    report_file = _check_new(report_path, overwrite, "--report")
    json_file = _check_new(json_path, overwrite, "--json")
    html_file = _check_new(html_path, overwrite, "--html")
    check_device_option(opts["device"])
    root = Path(folder)
    out = Path(out_dir) if out_dir else None
    if out is not None and out.exists() and not out.is_dir():
        raise click.UsageError(f"--out {out} exists and is not a folder")
    if out is not None and os.path.realpath(out) == os.path.realpath(root):
        raise click.BadParameter("is the input folder; choose another folder", param_hint="--out")
    files = _inputs((folder,), opts["hidden"], exclude=out)
    _guard_reports(files, (report_file, "--report"), (json_file, "--json"), (html_file, "--html"))
    if out is not None:
        _check_out(out, dry_run)  # before the model loads: a bad --out fails at once
    assessor = make_assessor(opts)
    transferer = Transferer(out, mode, dry_run=dry_run, relative_links=relative_links) if out is not None else None
    rows: list[ReportRow] = []
    writer = _open_csv(report_file, "--report", overwrite, opts["excel_safe"]) if report_file is not None else None
    n_images = n_pass = n_done = 0
    failures: list[str] = []
    try:
        with _progress(len(files), opts["quiet"]) as tick:
            for assessment, d in assessor.decisions(files, min_score, policy, progress=tick):
                n_images += 1
                for row in assessment.rows():
                    rows.append(row)
                    if writer is not None:
                        writer.write(row)
                line = f"{'PASS' if d.passed else 'FAIL'}\t{display_text(d.path)}\t{display_text(d.reason)}"
                if d.passed:
                    n_pass += 1
                    if transferer is not None:
                        t = transferer.transfer(d.path, root)
                        verb = t.mode.value
                        if dry_run:
                            line += f"\twould {verb} to {display_text(str(t.destination))}" + (" (already there)" if t.reused else "")
                        elif t.done:
                            n_done += 1
                            line += f"\t{verb} -> {display_text(str(t.destination))}" + (" (already there)" if t.reused else "")
                        else:
                            failures.append(f"{display_text(d.path)}: {display_text(t.error)}")
                            line += f"\t{verb} FAILED: {display_text(t.error)}"
                click.echo(line)
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise
    if writer is not None:
        with _report_errors("--report", report_file):
            writer.close()
    if transferer is not None and mode == "move" and not dry_run and not keep_empty_folders:
        pruned = transferer.prune_empty_folders(root)
        if pruned and not opts["quiet"]:
            click.echo(f"faceiqa: removed {plural(len(pruned), 'empty source folder')}", err=True)
    _write_reports(rows, json_file, html_file, min_score, overwrite)
    if not opts["quiet"]:
        msg = f"faceiqa: {n_pass} of {n_images} photos pass --min {min_score:g} (policy {policy})"
        if transferer is not None and not dry_run:
            msg += f"; {n_done} {_PAST[mode]} to {out}"
        click.echo(msg, err=True)
    if failures:
        raise click.ClickException(
            f"{len(failures)} of {n_pass} passing photos could not be {_PAST[mode]} (first: {failures[0]}); "
            "their sources are still in place"
        )
    _summary(rows, True)


@click.command("rank")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--top", type=click.IntRange(min=1), default=None, help="Show only the K best.")
@click.option("--per-folder", is_flag=True, help="Pick the best photo of each sub-folder (one identity per folder).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the ranking as CSV.")
@click.option("--overwrite", is_flag=True, help="Replace the CSV if it exists.")
@model_options
def rank_cmd(folder: str, top: int | None, per_folder: bool, csv_path: str | None, overwrite: bool, **opts: Any) -> None:
    """List the faces in FOLDER best first.

    With --per-folder, list the best photo of each sub-folder (one identity per folder, for
    enrolment), best first; folders in which no face was scored are named on stderr.
    """
    csv_file = _check_new(csv_path, overwrite, "--csv")
    check_device_option(opts["device"])
    root = Path(folder)
    files = _inputs((folder,), opts["hidden"])
    _guard_reports(files, (csv_file, "--csv"))
    assessor = make_assessor(opts)
    rows = list(_run(assessor, files, opts["quiet"]))
    scored = [r for r in rows if r.has_score]
    if per_folder:
        best: dict[str, ReportRow] = {}
        for r in scored:
            key = _folder_key(r.path, root)
            if key not in best or r.score > best[key].score:
                best[key] = r
        header = ["folder", "score", "path", "face"]
        ranked = sorted(best.items(), key=lambda kv: (-kv[1].score, kv[0]))
        table = [[k, f"{r.score:.4f}", r.path, str(r.face)] for k, r in ranked]
        empty = sorted({_folder_key(r.path, root) for r in rows} - set(best))
        if empty and not opts["quiet"]:
            click.echo(f"faceiqa: no face scored in {len(empty)} folder(s): {', '.join(empty)}", err=True)
    else:
        ordered = sorted(scored, key=lambda r: (-r.score, r.path, r.face or 0))
        header = ["rank", "score", "path", "face"]
        table = [[str(i + 1), f"{r.score:.4f}", r.path, str(r.face)] for i, r in enumerate(ordered)]
    if top is not None:
        table = table[:top]
    click.echo("\t".join(header))
    for line in table:
        click.echo("\t".join(display_text(cell) for cell in line))
    if csv_file is not None:
        def write(fh: Any) -> None:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows([[excel_safe(c) if opts["excel_safe"] else safe_text(c) for c in row] for row in table])

        with _report_errors("--csv", csv_file):
            atomic_write(csv_file, write, replace=overwrite)
    _summary(rows, opts["quiet"])


def _folder_key(path: str, root: Path) -> str:
    """The photo's folder relative to ``root`` (POSIX style, ``.`` for ``root`` itself)."""
    parent = Path(path).parent
    try:
        return parent.relative_to(root).as_posix()
    except ValueError:
        return parent.as_posix()


@click.command("report")
@click.argument("report_csv", type=click.Path(exists=True, dir_okay=False))
@click.option("--html", "html_path", type=click.Path(dir_okay=False), required=True, help="Write the visual report here.")
@click.option("--min", "min_score", type=click.FloatRange(0.0, 1.0), default=None, help="Draw this threshold.")
@click.option("--overwrite", is_flag=True, help="Replace the HTML file if it exists.")
def report_cmd(report_csv: str, html_path: str, min_score: float | None, overwrite: bool) -> None:
    """Turn a CSV report into a single self-contained HTML page."""
    html_file = Path(html_path)
    _check_new(html_path, overwrite, "--html")
    if os.path.realpath(html_file) == os.path.realpath(report_csv):
        raise click.UsageError(f"--html {html_file} is the report itself; choose another file")
    try:
        rows = read_csv(report_csv)
    except InvalidArgumentError as exc:
        raise fail(exc) from None
    try:
        missing = _html(rows, html_file, min_score, Path(report_csv).parent, replace=overwrite)
    except OSError as exc:
        raise write_failed("--html", html_file, exc) from None
    if missing:
        click.echo(
            f"faceiqa: warning: no preview for {plural(len(missing), 'photo')} (first: {display_text(missing[0])}): not "
            f"found from this folder nor from the report's; run `faceiqa report` from the folder `faceiqa score` ran in",
            err=True,
        )


def register(main: click.Group) -> None:
    for cmd in (score_cmd, filter_cmd, rank_cmd, report_cmd):
        main.add_command(cmd)
