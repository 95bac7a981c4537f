"""What the product writes: filter decisions, safe file transfers, CSV/JSON reports, the HTML report.
"""

from __future__ import annotations

from faceiqa._util import lazy_getattr

_LAZY = {
    "CsvReportWriter": "reports",
    "Decision": "decisions",
    "Policy": "decisions",
    "ReportRow": "reports",
    "Status": "reports",
    "ThumbnailSource": "html",
    "Transfer": "fileops",
    "TransferMode": "fileops",
    "Transferer": "fileops",
    "check_policy": "decisions",
    "check_threshold": "decisions",
    "decide": "decisions",
    "error_row": "reports",
    "face_thumbnail": "html",
    "group_by_photo": "decisions",
    "no_face_row": "reports",
    "read_csv": "reports",
    "render_html": "html",
    "write_csv": "reports",
    "write_html": "html",
    "write_json": "reports",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
