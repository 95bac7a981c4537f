"""A local HTTP file server with Range support and fault injection, and a test manifest for it.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import threading
from pathlib import Path

PAYLOAD = os.urandom(300_000)


PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class FileServer:
    """HTTP server on 127.0.0.1 serving in-memory files, with Range support and fault injection.

    ``files`` maps a path (``/name``) to bytes; ``cut_after`` makes the next response for a
    path stop after that many bytes; ``html`` serves a web page for a path; every request's
    path and Range header are recorded in ``log``; paths in ``no_range`` ignore Range headers.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, int] = {}
        self.html: dict[str, str] = {}
        self.no_range: set[str] = set()
        self.log: list[tuple[str, str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                path = self.path
                server.log.append((path, self.headers.get("Range", "")))
                route = path.split("?")[0]
                if route in server.html:
                    body = server.html[route].encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data = server.files.get(route)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if m and route not in server.no_range:
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut_after.pop(route, None)
                self.wfile.write(body if cut is None else body[:cut])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_manifest(path: Path, urls: list[str], *, name="tiny-test", size=None, sha=PAYLOAD_SHA, default=None) -> Path:
    entry = {
        "name": name,
        "file": "tiny_test.bin",
        "size": len(PAYLOAD) if size is None else size,
        "sha256": sha,
        "urls": urls,
        "kind": "quality",
        "architecture": "hyperiqa-resnet50",
        "layout": "hyperiqa-official",
        "backbone": "resnet50",
        "input": {"size": 224, "template": "hyperiqa-224", "normalize": "imagenet", "grid": 5},
        "score": {"raw_name": "x", "raw_range": [0, 1], "mapping": {"kind": "identity"}},
        "licence": "MIT",
        "citation": "none",
        "description": "test payload",
    }
    path.write_text(json.dumps({"format": 1, "default": default, "weights": [entry]}))
    return path
