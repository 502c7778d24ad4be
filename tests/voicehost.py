"""A loopback "file host" for voice tests and benchmarks: plain files with Range answers, redirects, a transfer
that breaks off once, and a Hugging Face lookalike (``/<user>/<repo>/resolve/<rev>/<file>``, ``blob/`` pages and
the API's file list ``/api/models/<user>/<repo>``). Files are bytes or paths (streamed from disk)."""

from __future__ import annotations

import http.server
import json
import re
import threading
import zipfile
from pathlib import Path


class VoiceHost:
    def __init__(self, files: dict[str, bytes | Path] | None = None):
        self.files: dict[str, bytes | Path] = dict(files or {})
        self.redirects: dict[str, str] = {}
        self.repos: dict[str, list[str]] = {}  # "user/repo" -> file names (served under resolve/main/)
        self.cut_after: dict[str, int] = {}  # path -> break off the next full answer after this many bytes
        self.requests: list[tuple[str, str | None]] = []
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                host.requests.append((self.path, self.headers.get("Range")))
                if self.path in host.redirects:
                    self.send_response(302)
                    self.send_header("Location", host.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                m = re.fullmatch(r"/api/models/([^/]+/[^/]+)", self.path)
                if m and m.group(1) in host.repos:
                    body = json.dumps(
                        {"id": m.group(1), "siblings": [{"rfilename": n} for n in host.repos[m.group(1)]]}
                    )
                    return self._send(200, body.encode(), {})
                data = host.files.get(self.path)
                if data is None:
                    return self._send(404, b"not found", {})
                size = data.stat().st_size if isinstance(data, Path) else len(data)
                start, status, headers = 0, 200, {}
                rng = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if rng:
                    start, status = int(rng.group(1)), 206
                    if start >= size:
                        return self._send(416, b"", {"Content-Range": f"bytes */{size}"})
                    headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
                self._stream(
                    data, start, size, status, headers, host.cut_after.pop(self.path, None) if not rng else None
                )

            def _send(self, status, body, headers):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, data, start, size, status, headers, cut):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(size - start))
                self.end_headers()
                left = size - start if cut is None else cut
                if isinstance(data, bytes):
                    self.wfile.write(data[start : start + left])
                else:
                    with open(data, "rb") as f:
                        f.seek(start)
                        while left > 0 and (chunk := f.read(min(1 << 20, left))):
                            self.wfile.write(chunk)
                            left -= len(chunk)
                if cut is not None:
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"

    def add_repo(self, repo: str, files: dict[str, bytes | Path]) -> None:
        self.repos[repo] = list(files)
        for name, data in files.items():
            self.files[f"/{repo}/resolve/main/{name}"] = data

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def make_zip(path: Path, entries: dict[str, bytes | Path], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip of ``entries`` (archive name -> bytes or a file to copy)."""
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in entries.items():
            if isinstance(data, Path):
                z.write(data, name)
            else:
                z.writestr(name, data)
    return path
