"""Downloads are bounded by what arrives, not by what the server announces: an endless stream with no length is
cut off at SINGER_MAX_DOWNLOAD_MB, a slow one at SINGER_DOWNLOAD_TIMEOUT, and nothing partial is kept; finished
downloads are pruned to SINGER_DOWNLOADS_KEEP_MB, and each remote caller has its own."""

from __future__ import annotations

import http.server
import os
import threading
import time
from pathlib import Path

import pytest

from singer.engines.base import Candidate
from singer.engines.sources import resolve
from singer.engines.sources.ytdlp import YtDlpSource
from singer.errors import SourceError
from singer.workflow.namespaces import shrink
from tests import media


@pytest.fixture
def endless(tmp_path):
    """A loopback server: /endless.mp3 sends MP3 frames forever (no Content-Length), /slow.mp3 a trickle."""
    frame_src = media.encoded(media.voice_wav(tmp_path / "v.wav", seconds=2.0), tmp_path / "v.mp3")
    chunk = frame_src.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.end_headers()
            t0 = time.monotonic()
            try:
                while time.monotonic() - t0 < 30:
                    self.wfile.write(chunk)
                    if self.path.startswith("/slow"):
                        time.sleep(0.5)
            except OSError:
                pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", srv.server_address[1]
    srv.shutdown()


def test_an_endless_stream_is_cut_off_and_nothing_is_kept(settings, endless):
    base, port = endless
    s = settings.model_copy(update={"url_allow": f"127.0.0.1:{port}", "max_download_mb": 1.0})
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="over 1 MB"):
        YtDlpSource(s).fetch(Candidate(title="x", source="ytdlp", ref=base + "/endless.mp3", url=base + "/endless.mp3"))
    assert time.monotonic() - t0 < 20
    left = [p for p in Path(s.downloads_path).rglob("*") if p.is_file()]
    assert left == [], left


def test_a_slow_download_meets_its_deadline(settings, endless):
    base, port = endless
    s = settings.model_copy(update={"url_allow": f"127.0.0.1:{port}", "download_timeout": 2.0})
    with pytest.raises(SourceError, match="took over 2 s"):
        YtDlpSource(s).fetch(Candidate(title="x", source="ytdlp", ref=base + "/slow.mp3", url=base + "/slow.mp3"))


def test_downloads_are_pruned_oldest_first(settings):
    root = settings.downloads_path
    (root / "by-caller" / "a").mkdir(parents=True)
    files = []
    for i in range(5):
        p = (root / "by-caller" / "a" if i % 2 else root) / f"f{i}.mp3"
        p.write_bytes(b"x" * 1000)
        os.utime(p, (1000 + i, 1000 + i))
        files.append(p)
    assert sum(i.size for i in shrink(settings, "downloads", 2500, keep=(files[0],)).removed) == 3000
    assert [p.exists() for p in files] == [True, False, False, False, True]  # the oldest went, but the kept one


def test_each_remote_caller_downloads_into_its_own_folder(settings, tmp_path):
    seen = []

    class Fake:
        def fetch(self, candidate, dest, progress):
            seen.append(dest)
            return dest / "x.mp3"

    from singer.engines import registry

    orig = registry.create
    registry.create = lambda kind, name, st: Fake()
    try:
        cand = Candidate(title="t", source="ytdlp", ref="https://example.com/a", url="https://example.com/a")
        resolve.fetch(cand, settings, namespace="owner1")
        resolve.fetch(cand, settings, namespace="owner2")
        resolve.fetch(cand, settings)
    finally:
        registry.create = orig
    base = Path(settings.downloads_path)
    assert seen == [base / "by-caller" / "owner1", base / "by-caller" / "owner2", base]
