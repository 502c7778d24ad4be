"""SSRF after the first hop: the URL policy holds for every connection a download makes, not only the URL given.

Two real loopback servers: A, which the operator allows (``SINGER_URL_ALLOW=127.0.0.1:<port A>``), and B, an
"internal host" that must never receive a connection. yt-dlp (the real source), webhooks and a name that resolves
elsewhere the second time (DNS rebinding) are driven at A; B's request counter must stay at zero.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from singer import audio, netguard, netpolicy
from singer.config import Settings
from singer.engines.sources.ytdlp import YtDlpSource
from singer.errors import NetworkUnavailable, SourceError
from singer.jobs.webhook import deliver

pytestmark = [pytest.mark.network, pytest.mark.timeout(120)]

Route = Callable[[http.server.BaseHTTPRequestHandler], None]


class Site:
    """A loopback HTTP server. ``routes`` maps a path to (status, headers, body); ``hits`` counts every request
    and every connection, so "never contacted" means exactly zero."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: list[str] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def setup(self):
                site.hits.append("connection")
                super().setup()

            def _answer(self, body_too: bool = True):
                site.hits.append(self.path)
                status, headers, body = site.routes.get(self.path, (404, {}, b"not here"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body_too:
                    self.wfile.write(body)

            def do_GET(self):
                self._answer()

            def do_HEAD(self):
                self._answer(body_too=False)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

        self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.host, self.port = host, self.httpd.server_address[1]
        self.base = f"http://{host}:{self.port}"

    def add(
        self, path: str, body: bytes, ctype: str = "application/octet-stream", status: int = 200, **headers: str
    ) -> str:
        self.routes[path] = (status, {"Content-Type": ctype, **headers}, body)
        return self.base + path

    def redirect(self, path: str, to: str) -> str:
        return self.add(path, b"", "text/plain", 302, Location=to)

    def requests(self) -> list[str]:
        return [h for h in self.hits if h != "connection"]


@contextmanager
def serving(host: str = "127.0.0.1", port: int = 0) -> Iterator[Site]:
    site = Site(host, port)
    threading.Thread(target=site.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield site
    finally:
        site.httpd.shutdown()
        site.httpd.server_close()


@pytest.fixture
def a() -> Iterator[Site]:
    with serving() as site:
        yield site


@pytest.fixture
def b() -> Iterator[Site]:
    with serving() as site:
        yield site


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of a 440 Hz sine as mp3, made by ffmpeg."""
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    out = tmp_path_factory.mktemp("tone") / "x.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=1", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def hls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-second HLS stream (a media playlist and its MPEG-TS segments), made by ffmpeg."""
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    d = tmp_path_factory.mktemp("hls")
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=f=330:d=2",
            "-c:a",
            "aac",
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_list_size",
            "0",
            "-hls_segment_filename",
            str(d / "seg%d.ts"),
            str(d / "list.m3u8"),
        ],
        check=True,
    )
    return d


def only(site: Site, tmp_path: Path, **extra) -> Settings:
    """Settings that allow exactly ``site`` (its address and port) and nothing else private."""
    return Settings(
        home=tmp_path / "home",
        library="",
        allow_private_urls=False,
        network_timeout=5,
        url_allow=f"{site.host}:{site.port}",
        **extra,
    )


def refused(call: Callable[[], object]) -> SourceError:
    with pytest.raises(SourceError) as e:
        call()
    assert not isinstance(e.value, NetworkUnavailable), e.value.user_message
    assert netpolicy.REFUSAL_MARK in e.value.user_message or "Refusing" in e.value.user_message
    assert "SINGER_URL_ALLOW" in e.value.hint and "SINGER_ALLOW_PRIVATE_URLS" in e.value.hint
    return e.value


# ---- yt-dlp -------------------------------------------------------------------------------------------------


def test_allowed_server_downloads_through_ytdlp(a: Site, tone: Path, tmp_path: Path) -> None:
    url = a.add("/x.mp3", tone.read_bytes(), "audio/mpeg")
    path = YtDlpSource(only(a, tmp_path)).fetch(url)
    assert path.is_file() and abs(audio.probe(path).duration - 1.0) < 0.2
    assert "/x.mp3" in a.requests()


def test_allowed_page_with_audio_tag_downloads(a: Site, tone: Path, tmp_path: Path) -> None:
    a.add("/x.mp3", tone.read_bytes(), "audio/mpeg")
    page = a.add(
        "/page.html",
        b'<html><head><title>Song</title></head><body><audio src="x.mp3"></audio></body></html>',
        "text/html",
    )
    path = YtDlpSource(only(a, tmp_path)).fetch(page)
    assert abs(audio.probe(path).duration - 1.0) < 0.2


def test_the_internal_host_itself_is_refused_at_the_door(a: Site, b: Site, tone: Path, tmp_path: Path) -> None:
    url = b.add("/x.mp3", tone.read_bytes(), "audio/mpeg")
    err = refused(lambda: YtDlpSource(only(a, tmp_path)).fetch(url))
    assert url in err.user_message and f"127.0.0.1:{b.port}" in err.hint
    assert b.hits == []


def test_redirect_to_internal_host_is_refused(a: Site, b: Site, tone: Path, tmp_path: Path) -> None:
    b.add("/x.mp3", tone.read_bytes(), "audio/mpeg")
    url = a.redirect("/go.mp3", f"{b.base}/x.mp3")
    err = refused(lambda: YtDlpSource(only(a, tmp_path)).fetch(url))
    assert url in err.user_message and str(b.port) in err.user_message
    assert "/go.mp3" in a.requests() and b.hits == []
    assert not list((tmp_path / "home").rglob("*.mp3")), "nothing may be kept from a refused download"


def test_audio_tag_pointing_at_internal_host_is_refused(a: Site, b: Site, tone: Path, tmp_path: Path) -> None:
    b.add("/x.mp3", tone.read_bytes(), "audio/mpeg")
    page = a.add(
        "/page.html",
        f'<html><head><title>Song</title></head><body><audio src="{b.base}/x.mp3"></audio></body></html>'.encode(),
        "text/html",
    )
    refused(lambda: YtDlpSource(only(a, tmp_path)).fetch(page))
    assert "/page.html" in a.requests() and b.hits == []


def test_allowed_hls_downloads_natively(a: Site, hls: Path, tmp_path: Path) -> None:
    for f in hls.iterdir():
        a.add(f"/{f.name}", f.read_bytes(), "application/vnd.apple.mpegurl" if f.suffix == ".m3u8" else "video/mp2t")
    path = YtDlpSource(only(a, tmp_path)).fetch(f"{a.base}/list.m3u8")
    assert path.stat().st_size > 1000 and abs(audio.probe(path).duration - 2.0) < 0.3
    assert {"/list.m3u8", "/seg0.ts", "/seg1.ts"} <= set(a.requests())


def test_hls_segments_on_internal_host_are_refused(a: Site, b: Site, hls: Path, tmp_path: Path) -> None:
    playlist = (hls / "list.m3u8").read_text()
    for f in hls.glob("*.ts"):
        b.add(f"/{f.name}", f.read_bytes(), "video/mp2t")
        playlist = playlist.replace(f"\n{f.name}", f"\n{b.base}/{f.name}")
    assert b.base in playlist
    url = a.add("/list.m3u8", playlist.encode(), "application/vnd.apple.mpegurl")
    refused(lambda: YtDlpSource(only(a, tmp_path)).fetch(url))
    assert "/list.m3u8" in a.requests() and b.hits == []


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, list[str]], None]:
    """``rebind(name, answers)``: the name resolves to answers[0] the first time, then to answers[1]..., the last
    one from then on; other names resolve as usual."""
    netguard.install()
    real = netguard._system_getaddrinfo
    plans: dict[str, list[str]] = {}

    def fake(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        name = host.decode() if isinstance(host, bytes) else host
        if name not in plans:
            return real(host, port, family, type, proto, flags)
        answers = plans[name]
        ip = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port or 0)))]

    monkeypatch.setattr(netguard, "_system_getaddrinfo", fake)
    return lambda name, answers: plans.__setitem__(name, list(answers))


@pytest.fixture
def twin(a: Site) -> Iterator[Site]:
    """The internal host at 127.0.0.2 on A's port: what a rebound name leads to."""
    try:
        with serving("127.0.0.2", a.port) as site:
            yield site
    except OSError as e:
        pytest.skip(f"cannot listen on 127.0.0.2:{a.port} ({e})")


def test_dns_rebinding_is_refused(a: Site, twin: Site, tone: Path, tmp_path: Path, rebinding) -> None:
    """The name resolves to the allowed A when checked at the door, then to the internal host: the guard checks
    the address actually connected to."""
    a.add("/x.mp3", tone.read_bytes(), "audio/mpeg")
    twin.add("/x.mp3", tone.read_bytes(), "audio/mpeg")
    rebinding("songs.rebind.test", ["127.0.0.1", "127.0.0.2"])
    url = f"http://songs.rebind.test:{a.port}/x.mp3"
    err = refused(lambda: YtDlpSource(only(a, tmp_path)).fetch(url))
    assert "127.0.0.2" in err.user_message and url in err.user_message
    assert twin.hits == []


def test_the_same_name_that_stays_put_downloads(a: Site, tone: Path, tmp_path: Path, rebinding) -> None:
    url = a.add("/x.mp3", tone.read_bytes(), "audio/mpeg").replace("127.0.0.1", "songs.steady.test")
    rebinding("songs.steady.test", ["127.0.0.1"])
    assert YtDlpSource(only(a, tmp_path)).fetch(url).is_file()


def test_allowed_host_name_redirecting_to_refused_one(a: Site, b: Site, tone: Path, tmp_path: Path, rebinding) -> None:
    """A host-name entry (music.lan:<port>) allows what that name resolves to, on that port; its redirect to the
    internal host is still refused."""
    rebinding("music.lan", ["127.0.0.1"])
    settings = Settings(home=tmp_path / "home", library="", network_timeout=5, url_allow=f"music.lan:{a.port}")
    a.add("/x.mp3", tone.read_bytes(), "audio/mpeg")
    assert YtDlpSource(settings).fetch(f"http://music.lan:{a.port}/x.mp3").is_file()
    b.add("/y.mp3", tone.read_bytes(), "audio/mpeg")
    a.redirect("/go.mp3", f"{b.base}/y.mp3")
    refused(lambda: YtDlpSource(settings).fetch(f"http://music.lan:{a.port}/go.mp3"))
    refused(lambda: YtDlpSource(settings).fetch(f"{a.base}/x.mp3?by-address"))  # the name is listed, not the IP
    assert b.hits == []


def test_unlisted_proxy_is_refused(a: Site, tone: Path, tmp_path: Path) -> None:
    url = a.add("/x.mp3", tone.read_bytes(), "audio/mpeg")
    src = YtDlpSource(only(a, tmp_path), params={"proxy": "http://proxy.example.net:3128"})
    with pytest.raises(SourceError) as e:
        src.fetch(url)
    assert "proxy.example.net" in e.value.user_message and url in e.value.user_message
    assert "'proxy.example.net:3128' to SINGER_URL_ALLOW" in e.value.hint and a.requests() == []
    proxied = YtDlpSource(only(a, tmp_path), params={"proxy": a.base})  # a listed proxy is used: A is listed
    with pytest.raises(SourceError):  # (A is no proxy: it answers 404 to the proxy request it gets)
        proxied.fetch(url)
    assert a.requests() and a.requests()[0].startswith("http://"), "the request went through the proxy"


# ---- webhooks ------------------------------------------------------------------------------------------------


def test_webhook_redirect_is_not_followed(a: Site, b: Site) -> None:
    url = a.redirect("/hook", f"{b.base}/hook")
    out = deliver(url, "job.done", {"job_id": "j"}, "k", allow=f"127.0.0.1:{a.port}", attempts=2, backoff=0.01)
    assert out["delivered"] is False and out["status"] == 302
    assert a.requests() == ["/hook", "/hook"] and b.hits == []


def test_webhook_to_internal_host_is_refused(a: Site, b: Site) -> None:
    out = deliver(f"{b.base}/hook", "job.done", {}, "k", allow=f"127.0.0.1:{a.port}", backoff=0.01)
    assert out == {"delivered": False, "attempts": 1, "status": None, "reason": out["reason"]}
    assert "loopback" in out["reason"] and b.hits == []


def test_webhook_dns_rebinding_is_refused(a: Site, twin: Site, rebinding) -> None:
    a.add("/hook", b"ok", "text/plain")
    twin.add("/hook", b"ok", "text/plain")
    rebinding("hooks.rebind.test", ["127.0.0.1", "127.0.0.2"])
    out = deliver(
        f"http://hooks.rebind.test:{a.port}/hook", "job.done", {}, "k", allow=f"127.0.0.1:{a.port}", backoff=0.01
    )
    assert out["delivered"] is False and out["attempts"] == 1 and "127.0.0.2" in out["reason"]
    assert twin.hits == []


def test_webhook_is_delivered_to_an_allowed_host(a: Site) -> None:
    url = a.add("/hook", b"ok", "text/plain")
    out = deliver(url, "job.done", {"job_id": "j"}, "k", allow=f"127.0.0.1:{a.port}")
    assert out == {"delivered": True, "attempts": 1, "status": 200, "reason": ""}


@pytest.fixture
def garbage() -> Iterator[int]:
    """A loopback port that answers every connection with bytes that are not HTTP (http.client raises)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"\x00\x01 this is not HTTP\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        srv.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda p: "http://[::1",  # unclosed bracket: urlsplit raises ValueError
        lambda p: f"http://127.0.0.1:{p}/hook with space",  # passes the policy; http.client raises InvalidURL
        lambda p: "http://127.0.0.1:99999/hook",  # port out of range
        lambda p: "http://127.0.0.1:0/hook",  # port 0: nothing can listen there
        lambda p: f"http://127.0.0.1:{p}/hook",  # a server that answers with garbage: BadStatusLine
        lambda p: "http://exa mple.com/hook",  # no such name
        lambda p: "ftp://example.com/hook",
    ],
)
def test_webhook_to_a_broken_url_is_a_failed_delivery(garbage: int, make) -> None:
    url = make(garbage)
    out = deliver(
        url, "job.done", {}, "k", allow=f"127.0.0.1:{garbage},127.0.0.1:0", attempts=2, backoff=0.01, timeout=2
    )
    assert out["delivered"] is False and out["reason"], out
    assert set(out) == {"delivered", "attempts", "status", "reason"}


def test_webhook_thread_never_raises(garbage: int) -> None:
    """The worker runs ``deliver`` in a thread and records its outcome; an exception would lose the record."""
    outcomes: list[dict] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            outcomes.append(
                deliver(f"http://127.0.0.1:{garbage}/x y", "job.done", {}, "k", allow_private=True, attempts=1)
            )
        except BaseException as e:  # noqa: BLE001 - the test is that nothing gets here
            errors.append(e)

    t = threading.Thread(target=call)
    t.start()
    t.join(30)
    assert errors == [] and outcomes and outcomes[0]["delivered"] is False
