"""The self-contained HTML visual report: thumbnails by score, the threshold, a histogram, the errors.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from faceiqa._util import atomic_write
from faceiqa.errors import InvalidArgumentError
from faceiqa.output.reports import ReportRow, Status, safe_text

# --------------------------------------------------------------------------- HTML report

ThumbnailSource = Callable[[ReportRow], bytes | None]


def face_thumbnail(image: np.ndarray, box: Sequence[float], size: int = 96, margin: float = 0.2) -> bytes:
    """A square JPEG thumbnail of one face cut from an (H, W, 3) uint8 RGB image.

    The box is enlarged by ``margin`` (fraction of its size) on each side and clamped to
    the image.
    """
    from PIL import Image

    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(max(0, round(cx - side / 2))), int(max(0, round(cy - side / 2)))
    right, bottom = int(min(w, round(cx + side / 2))), int(min(h, round(cy + side / 2)))
    if right <= left or bottom <= top:
        left, top, right, bottom = 0, 0, w, h
    crop = Image.fromarray(image[top:bottom, left:right])
    crop.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    crop.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _fmt(v: float, span: float) -> str:
    return f"{v:.2f}" if span >= 0.2 else f"{v:.3f}" if span >= 0.02 else f"{v:.4f}"


def _histogram_svg(
    scores: np.ndarray, threshold: float | None, *, lo: float = 0.0, hi: float = 1.0, bins: int = 20, of: str = "faces"
) -> str:
    """One histogram: bars with their counts, the score axis, the count scale, the threshold."""
    width, height, pad, left = 600, 150, 26, 40
    counts, edges = np.histogram(np.clip(scores, lo, hi), bins=bins, range=(lo, hi))
    top = max(int(counts.max()) if counts.size else 0, 1)
    span = hi - lo
    plot_w = width - left - pad
    bar_w = plot_w / bins
    zoom = " (zoomed to where the scores are)" if (lo, hi) != (0.0, 1.0) else ""
    parts = [
        f'<svg class="histogram" data-of="{of}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height + 2 * pad + 14}" role="img" aria-label="score histogram of {of}{zoom}">',
        f'<text x="{left}" y="12" font-size="12">{len(scores)} {of}{zoom}; bar heights are counts</text>',
        f'<line x1="{left}" y1="{pad}" x2="{left}" y2="{pad + height}" stroke="#555"/>',
        f'<text x="{left - 4}" y="{pad + 4}" font-size="10" text-anchor="end">{top}</text>',
        f'<text x="{left - 4}" y="{pad + height}" font-size="10" text-anchor="end">0</text>',
        f'<line x1="{left}" y1="{pad + height}" x2="{left + plot_w}" y2="{pad + height}" stroke="#555"/>',
    ]
    for i, c in enumerate(counts):
        bh = height * c / top
        x = left + i * bar_w
        b0, b1 = edges[i], edges[i + 1]
        parts.append(
            f'<rect class="bar" data-bin="{_fmt(b0, span)}" data-count="{int(c)}" x="{x:.1f}" y="{pad + height - bh:.1f}" '
            f'width="{bar_w - 1:.1f}" height="{bh:.1f}" fill="#6a8caf"><title>{_fmt(b0, span)}-{_fmt(b1, span)}: {int(c)}</title></rect>'
        )
        if c:
            parts.append(
                f'<text class="count" x="{x + bar_w / 2:.1f}" y="{pad + height - bh - 2:.1f}" font-size="9" '
                f'text-anchor="middle">{int(c)}</text>'
            )
    for k in range(5):
        tick = lo + span * k / 4
        x = left + plot_w * k / 4
        parts.append(f'<text x="{x:.1f}" y="{height + 2 * pad - 8}" font-size="11" text-anchor="middle">{_fmt(tick, span)}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height + 2 * pad + 10}" font-size="11" text-anchor="middle">score</text>')
    if threshold is not None and lo <= threshold <= hi:
        x = left + plot_w * (threshold - lo) / span
        parts.append(
            f'<line class="threshold" data-threshold="{threshold:g}" x1="{x:.1f}" y1="{pad - 8}" x2="{x:.1f}" '
            f'y2="{pad + height}" stroke="#c0392b" stroke-width="2"><title>threshold {threshold:g}</title></line>'
        )
    parts.append("</svg>")
    return "".join(parts)


def zoom_range(scores: np.ndarray) -> tuple[float, float] | None:
    """Where to zoom when the scores cluster: the 1st-99th percentile range widened by a tenth,
    when the middle 90 % of the scores spans less than 0.2; None otherwise (or too few scores)."""
    if len(scores) < 5:
        return None
    p1, p5, p95, p99 = np.percentile(scores, [1, 5, 95, 99])
    if p95 - p5 >= 0.2:
        return None
    margin = max(0.1 * (p99 - p1), 0.005)
    lo, hi = max(0.0, float(p1) - margin), min(1.0, float(p99) + margin)
    return (lo, hi) if hi - lo >= 0.01 else (max(0.0, hi - 0.01), hi) if hi - 0.01 >= 0.0 else (0.0, 0.01)


def _histograms(rows: Sequence[ReportRow], threshold: float | None) -> list[str]:
    """Histograms of the face scores and of the photo scores (each photo's best face), each
    with a zoomed view when the scores cluster."""
    faces = np.array([r.score for r in rows if r.has_score], dtype=np.float64)
    best: dict[str, float] = {}
    for r in rows:
        if r.has_score:
            best[r.path] = max(best.get(r.path, -1.0), r.score)
    photos = np.array(list(best.values()), dtype=np.float64)
    out = []
    for of, values in (("faces", faces), ("photos", photos)):
        out.append(_histogram_svg(values, threshold, of=of))
        zoom = zoom_range(values)
        if zoom is not None:
            out.append(_histogram_svg(values, threshold, lo=zoom[0], hi=zoom[1], of=f"{of}"))
    return out


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em} .summary span{margin-right:1.5em}
.faces{display:flex;flex-wrap:wrap;gap:6px}
.face{width:104px;font-size:11px;text-align:center;border:2px solid #2e8b57;border-radius:4px;padding:2px}
.face.fail{border-color:#c0392b;opacity:.75}
.face img{width:96px;height:96px;object-fit:cover;display:block;margin:auto}
.face .name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.threshold-line{flex-basis:100%;border-top:3px dashed #c0392b;margin:6px 0;font-size:12px;color:#c0392b}
table.errors td{padding:2px 8px;font-size:12px}
"""


def render_html(
    rows: Sequence[ReportRow],
    *,
    threshold: float | None = None,
    thumbnail: ThumbnailSource | None = None,
    title: str = "faceiqa report",
    max_faces: int = 3000,
) -> str:
    """Render a single self-contained HTML page.

    Faces are shown best first as thumbnails (embedded as data URIs), with a dashed line
    where the threshold falls; a histogram of the scores and the list of images without a
    face or with an error follow. When there are more than ``max_faces`` scored faces, an
    evenly spaced sample of them (always including the best and the worst) is shown and
    the page says so.

    Args:
        rows: report rows.
        threshold: the decision threshold in [0, 1], or None.
        thumbnail: returns JPEG bytes for a row (or None when unavailable).
        max_faces: how many thumbnails at most.
    """
    if threshold is not None and not (0.0 <= threshold <= 1.0):
        raise InvalidArgumentError(f"threshold must be in [0, 1], got {threshold}")
    scored = sorted((r for r in rows if r.has_score), key=lambda r: (-r.score, r.path, r.face or 0))
    others = [r for r in rows if not r.has_score]
    shown = scored
    if len(scored) > max_faces:
        idx = np.unique(np.linspace(0, len(scored) - 1, max_faces).round().astype(int))
        shown = [scored[i] for i in idx]
    scores = np.array([r.score for r in scored], dtype=float)
    n_pass = int((scores >= threshold).sum()) if threshold is not None else len(scored)
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        '<p class="summary">',
        f'<span>faces scored: <b id="n-faces">{len(scored)}</b></span>',
        f'<span>images without a face: <b id="n-noface">{sum(r.status == Status.NO_FACE for r in others)}</b></span>',
        f'<span>errors: <b id="n-errors">{sum(r.status == Status.ERROR for r in others)}</b></span>',
    ]
    if threshold is not None:
        out.append(f'<span>threshold: <b id="threshold">{threshold:g}</b> (faces at or above it: {n_pass})</span>')
    out.append("</p>")
    out.append("<h2>Score histograms</h2>")
    out.extend(_histograms(rows, threshold))
    out.append("<h2>Faces, best first</h2>")
    if len(shown) < len(scored):
        out.append(f'<p class="sampled">Showing {len(shown)} of {len(scored)} faces, evenly spaced by rank.</p>')
    out.append('<div class="faces">')
    line_drawn = threshold is None
    for row in shown:
        if not line_drawn and row.score < threshold:
            out.append(f'<div class="threshold-line">threshold {threshold:g}: faces below are dropped</div>')
            line_drawn = True
        passed = threshold is None or row.score >= threshold
        data = thumbnail(row) if thumbnail is not None else None
        img = (
            f'<img alt="face" src="data:image/jpeg;base64,{base64.b64encode(data).decode("ascii")}">'
            if data
            else '<div class="noimg">(no preview)</div>'
        )
        name = safe_text(Path(row.path).name)
        out.append(
            f'<div class="face{"" if passed else " fail"}" data-path="{esc(safe_text(row.path))}" data-face="{row.face}" '
            f'data-score="{row.score!r}" data-status="{row.status.value}" title="{esc(safe_text(row.path))}">'
            f'{img}<div class="score">{row.score:.3f}</div><div class="name">{esc(name)}#{row.face}</div></div>'
        )
    if not line_drawn:
        out.append(f'<div class="threshold-line">threshold {threshold:g}: faces below are dropped</div>')
    out.append("</div>")
    out.append("<h2>Images without a score</h2>")
    if others:
        out.append('<table class="errors"><tr><th>path</th><th>status</th><th>reason</th></tr>')
        for row in others:
            out.append(
                f'<tr class="problem" data-status="{row.status.value}"><td>{esc(safe_text(row.path))}</td>'
                f"<td>{row.status.value}</td><td>{esc(safe_text(row.error))}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p>None.</p>")
    out.append("</body></html>")
    return "\n".join(out)


def write_html(rows: Sequence[ReportRow], path: str | os.PathLike[str], *, replace: bool = True, **kwargs: object) -> None:
    """Render :func:`render_html` and write it atomically (``replace``: see :func:`faceiqa._util.publish`)."""
    page = render_html(rows, **kwargs)  # type: ignore[arg-type]
    atomic_write(path, lambda fh: fh.write(page), replace=replace)
