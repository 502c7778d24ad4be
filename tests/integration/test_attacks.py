"""The service attacked as issue 12 found it attackable: a real `singer serve` on loopback, a second loopback server
playing the attacker's host (the only one SINGER_URL_ALLOW lets through) and a third one playing an internal host
that must never be connected to. Each hole class is tried with several variants; every one is refused, nothing of
the server's disk is read (the "server file" is a FIFO: a reader opening it would release a waiting writer), no
connection reaches the internal host, and the worker's memory stays bounded."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests import media
from tests.procs import children, free_port, job_done, spawn_singer, wait_for

pytestmark = [pytest.mark.timeout(600), pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")]
KEY = {"X-API-Key": "k"}


class Internal:
    """A TCP listener that only counts connections: the internal host nobody outside may reach."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def attacker_server(folder: Path, internal: int) -> tuple[http.server.ThreadingHTTPServer, int]:
    """The attacker's host: files from ``folder``, plus /redirect (302 to the internal host) and /redirect-self."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(folder), **k)

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            if self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{internal}/song.mp3")
                self.end_headers()
                return
            super().do_GET()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


class Fifo:
    """A 'server file' that tells whether anything opened it for reading."""

    def __init__(self, path: Path):
        self.path = path
        os.mkfifo(path, 0o644)
        self.opened = threading.Event()
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self):
        with open(self.path, "wb") as f:  # blocks until a reader opens the FIFO
            self.opened.set()
            try:
                f.write(b"ID3" + bytes(1000))
            except OSError:
                pass

    def release(self):
        if not self.opened.is_set():
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            time.sleep(0.1)
            os.close(fd)


def _peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attacks")
    internal = Internal()
    site = tmp / "site"
    site.mkdir()
    fifo = Fifo(tmp / "server-secret.mp3")
    for name, data in media.indirection_files(fifo.path).items():
        (site / name).write_bytes(data)
    (site / "page.html").write_text(
        f'<html><body><audio src="http://127.0.0.1:{internal.port}/song.mp3"></audio></body></html>'
    )
    (site / "list.m3u8").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:5,\nhttp://127.0.0.1:{internal.port}/seg0.ts\n#EXT-X-ENDLIST\n"
    )
    media.encoded(media.voice_wav(tmp / "ok.wav", seconds=2.0), site / "ok.mp3")
    media.lying_mp3(site / "liar.mp3", seconds=1800.0)
    srv, port = attacker_server(site, internal.port)
    env = {
        "SINGER_HOME": str(tmp / "home"),
        "SINGER_API_KEYS": "k,k2",
        "SINGER_MAX_JOBS_PER_KEY": "50",
        "SINGER_RATE_LIMIT": "100000",
        "SINGER_URL_ALLOW": f"127.0.0.1:{port}",
        "SINGER_WEBHOOK_SECRET": "s",
        "SINGER_HEADER_TIMEOUT": "1",
        "SINGER_BODY_TIMEOUT": "2",
        "SINGER_MAX_STREAMS_PER_KEY": "2",
        "SINGER_MAX_UPLOAD_DURATION": "120",
        "SINGER_NETWORK_TIMEOUT": "5",
    }
    serve_port = free_port()
    log = open(tmp / "serve.log", "wb")
    server = spawn_singer(["serve", "--port", str(serve_port)], env, log)
    client = httpx.Client(base_url=f"http://127.0.0.1:{serve_port}", headers=KEY, timeout=30)
    try:
        wait_for(lambda: client.get("/healthz").status_code == 200, 60, "singer serve")
        yield {
            "client": client,
            "site": f"http://127.0.0.1:{port}",
            "internal": internal,
            "fifo": fifo,
            "tmp": tmp,
            "server": server,
            "port": serve_port,
            "home": tmp / "home",
            "log": tmp / "serve.log",
        }
    finally:
        server.kill()
        server.wait()
        log.close()
        srv.shutdown()
        fifo.release()
        internal.sock.close()


def _jobs_in_store(home: Path) -> int:
    import sqlite3

    db = sqlite3.connect(home / "jobs.db")
    try:
        return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    finally:
        db.close()


def _finished(client, job_id, timeout=240):
    return wait_for(lambda: job_done(client, job_id), timeout, f"job {job_id}")


# ---- 1. local files through the cover query --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        '"{secret}"',
        "'{secret}'",
        "{secret}",
        "file://{secret}",
        "FILE:{secret}",
        "~/{name}",
        "~root/{name}",
        "../{name}",
        "./{name}",
        "sub/{name}",
        "..\\{name}",
        "C:\\music\\{name}",
        "  {secret}  ",
        "/proc/self/environ",
    ],
)
def test_cover_queries_never_name_server_files(world, query):
    c, fifo = world["client"], world["fifo"]
    before = _jobs_in_store(world["home"])
    text = query.format(secret=fifo.path, name=fifo.path.name)
    for r in (c.post("/v1/covers", json={"query": text, "voice": "ayana"}), c.get("/v1/search", params={"q": text})):
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["error"] == "bad_input" and "file path" in body["message"] or "file: link" in body["message"]
        assert str(world["tmp"]) not in r.text
    assert _jobs_in_store(world["home"]) == before  # refused before a job exists
    assert not fifo.opened.is_set()


def test_the_worker_refuses_server_paths_even_past_the_door(world, settings):
    """Defence in depth: a job whose input names a server file (as if the door had let it through) fails."""
    from singer.api import CoverRequest, Singer
    from singer.errors import InputError
    from singer.jobs.execute import remote_policy

    for text in (str(world["fifo"].path), f'"{world["fifo"].path}"', f"file://{world['fifo'].path}"):
        with pytest.raises(InputError, match="file"):
            Singer(settings).cover(
                CoverRequest(input=text, voice="ayana", out=str(world["tmp"]) + "/"), policy=remote_policy(settings)
            )
    assert not world["fifo"].opened.is_set()


# ---- 2. playlists and indirection in media ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(media.indirection_files(Path("/x"))))
def test_uploads_that_point_elsewhere_are_refused(world, name):
    c, fifo = world["client"], world["fifo"]
    data = media.indirection_files(fifo.path)[name]
    r = c.post("/v1/conversions", files={"file": (name, data, "audio/mpeg")}, data={"voice": "ayana"})
    assert r.status_code == 422, r.text
    assert str(fifo.path.parent) not in r.text and not fifo.opened.is_set()


@pytest.mark.parametrize("name", ["hls.mp3", "ffconcat.wav", "sdp.flac"])
def test_downloads_that_point_elsewhere_are_refused(world, name):
    c, fifo = world["client"], world["fifo"]
    r = c.post("/v1/covers", json={"query": f"{world['site']}/{name}", "voice": "ayana"})
    assert r.status_code == 202, r.text
    job = _finished(c, r.json()["job_id"])
    assert job["state"] == "failed" and job["error"]["error"] in ("bad_input", "source_error"), job
    assert str(world["tmp"]) not in str(job) and not fifo.opened.is_set()


# ---- 3. SSRF after the first hop ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/redirect", "/page.html", "/list.m3u8"])
def test_every_hop_obeys_the_address_policy(world, path):
    c, internal = world["client"], world["internal"]
    before = internal.connections
    r = c.post("/v1/covers", json={"query": world["site"] + path, "voice": "ayana"})
    assert r.status_code == 202, r.text
    job = _finished(c, r.json()["job_id"])
    assert job["state"] == "failed", job
    assert internal.connections == before, "a connection reached the internal host"


def test_the_first_hop_and_callbacks_to_internal_hosts_are_refused_at_the_door(world):
    c, internal = world["client"], world["internal"]
    before = internal.connections
    for url in (
        f"http://127.0.0.1:{internal.port}/x.mp3",
        f"http://[::ffff:127.0.0.1]:{internal.port}/x.mp3",
        f"http://[::ffff:7f00:1]:{internal.port}/",
        "http://0.0.0.0/",
        "http://169.254.169.254/latest/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "http://[::1]/",
        "http://[fec0::1]/",
        "http://100.64.0.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://127.1/",
    ):
        r = c.post("/v1/covers", json={"query": url, "voice": "ayana"})
        assert r.status_code == 422, (url, r.text)
        r = c.post("/v1/covers", json={"query": "a song", "callback_url": url})
        assert r.status_code == 422, (url, r.text)
    assert internal.connections == before


def test_an_allowed_host_still_works(world):
    c = world["client"]
    r = c.post("/v1/covers", json={"query": world["site"] + "/ok.mp3", "voice": "ayana", "format": "wav"})
    assert r.status_code == 202, r.text
    job = _finished(c, r.json()["job_id"])
    assert job["state"] == "done", job


# ---- 4. length limits on decoded samples -------------------------------------------------------------------------
def test_a_header_that_lies_about_length_is_caught_by_decoded_samples(world):
    c = world["client"]
    data = (Path(world["tmp"]) / "site" / "liar.mp3").read_bytes()
    r = c.post("/v1/conversions", files={"file": ("liar.mp3", data, "audio/mpeg")}, data={"voice": "ayana"})
    assert r.status_code == 202, r.text  # the header says 1.8 s: accepted at the door
    job = _finished(c, r.json()["job_id"])
    assert job["state"] == "failed" and "limit" in job["error"]["message"], job
    worker = next(iter(children(world["server"].pid)), None)
    assert worker is not None
    # 30 min decoded at 44.1 kHz stereo float32 would be 635 MB on top of the worker; the 120 s limit is 42 MB
    assert _peak_rss_mb(worker) < 900, _peak_rss_mb(worker)


# ---- 5. bodies and connections ---------------------------------------------------------------------------------------
def _raw(port: int, head: bytes, wait: float = 3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(head)
        s.settimeout(wait)
        try:
            return s.recv(65536)
        except TimeoutError:
            return b""


@pytest.mark.parametrize("key", [None, "wrong"])
def test_unauthenticated_bodies_are_refused_before_they_are_read(world, key):
    head = (
        b"POST /v1/conversions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 200000000\r\n" + (f"X-API-Key: {key}\r\n".encode() if key else b"") + b"\r\n"
    )
    t0 = time.monotonic()
    answer = _raw(world["port"], head)  # no body sent at all: the 401 comes anyway
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert time.monotonic() - t0 < 2.5


def test_oversized_bodies_are_refused_by_their_length_and_while_streaming(world):
    answer = _raw(
        world["port"],
        b"POST /v1/covers HTTP/1.1\r\nHost: x\r\nX-API-Key: k\r\nContent-Type: "
        b"application/json\r\nContent-Length: 300000000\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

    def chunks():
        yield b'{"query": "'
        for _ in range(40):
            yield b"a" * 65536

    r = world["client"].post("/v1/covers", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "too_large"


def test_slow_headers_and_stalled_bodies_are_cut_off(world):
    with socket.create_connection(("127.0.0.1", world["port"])) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        s.settimeout(5)
        t0 = time.monotonic()
        assert s.recv(100) == b""  # the server closed it
        assert time.monotonic() - t0 < 4
    answer = _raw(
        world["port"],
        b"POST /v1/covers HTTP/1.1\r\nHost: x\r\nX-API-Key: k\r\nContent-Type: "
        b"application/json\r\nContent-Length: 100\r\n\r\n{",
        wait=6,
    )
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    # a trickle that never pauses long enough to stall still meets the body's deadline (2 x 2 s + size / rate)
    with socket.create_connection(("127.0.0.1", world["port"])) as s:
        s.sendall(
            b"POST /v1/covers HTTP/1.1\r\nHost: x\r\nX-API-Key: k\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n"
        )
        t0, answer = time.monotonic(), b""
        s.settimeout(1.0)
        while time.monotonic() - t0 < 12 and not answer:
            try:
                s.sendall(b" ")
                answer = s.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
        while answer and b"too slowly" not in answer:  # the body may come in a packet of its own
            try:
                more = s.recv(4096)
            except (TimeoutError, OSError):
                break
            if not more:
                break
            answer += more
        assert answer.startswith(b"HTTP/1.1 408") and b"too slowly" in answer, answer[:300]
        assert time.monotonic() - t0 < 8


def test_event_streams_are_capped_per_key_and_bad_last_event_ids_are_400(world):
    import sqlite3
    import uuid

    from singer.http.security import owner_id

    c = world["client"]
    job_id = uuid.uuid4().hex  # a job that stays running (no worker claims it): its streams never end by themselves
    db = sqlite3.connect(world["home"] / "jobs.db")
    with db:
        db.execute(
            "INSERT INTO jobs (id, owner, kind, request, state, callback_url, created, updated) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (job_id, owner_id("k"), "cover", "{}", "running", None, time.time(), time.time()),
        )
    db.close()
    url = f"{c.base_url}/v1/jobs/{job_id}/events"
    for junk in ("abc", "-1", "99999999999999999999999", "1e9", "١٢".encode(), "²".encode(), "1 2", b"\xff\xfe"):
        r = c.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": junk})
        assert r.status_code == 400, (junk, r.status_code)
    streams = [httpx.stream("GET", url, headers=KEY, timeout=10) for _ in range(2)]
    opened = [s.__enter__() for s in streams]
    try:
        assert all(o.status_code == 200 for o in opened)
        r = c.get(f"/v1/jobs/{job_id}/events")
        assert r.status_code == 429 and r.headers.get("retry-after")
    finally:
        for s in streams:
            s.__exit__(None, None, None)


def test_healthz_says_little_without_a_key(world):
    bare = httpx.get(f"http://127.0.0.1:{world['port']}/healthz").json()
    assert bare == {"ok": True}
    assert "queued" in world["client"].get("/healthz").json()


def test_no_server_path_in_answers_and_events(world):
    c = world["client"]
    r = c.post("/v1/conversions", files={"file": ("x.mp3", b"not audio at all", "audio/mpeg")}, data={"voice": "ayana"})
    assert r.status_code == 422 and str(world["home"]) not in r.text and "/" not in r.json()["message"]
    ok = (Path(world["tmp"]) / "site" / "ok.mp3").read_bytes()
    job_id = c.post(
        "/v1/conversions", files={"file": ("ok.mp3", ok, "audio/mpeg")}, data={"voice": "ayana", "format": "wav"}
    ).json()["job_id"]
    _finished(c, job_id)
    events = c.get(f"/v1/jobs/{job_id}/events", timeout=30).text
    assert str(world["home"]) not in events and str(world["tmp"]) not in events


def test_keys_do_not_learn_about_each_others_uploads(world):
    c = world["client"]
    other = httpx.Client(base_url=c.base_url, headers={"X-API-Key": "k2"}, timeout=30)
    note = media.voice_wav(Path(world["tmp"]) / "shared.wav", seconds=2.0, seed=7).read_bytes()
    first = _finished(
        c,
        c.post(
            "/v1/conversions", files={"file": ("a.wav", note, "audio/wav")}, data={"voice": "ayana", "format": "wav"}
        ).json()["job_id"],
    )
    second_id = other.post(
        "/v1/conversions", files={"file": ("b.wav", note, "audio/wav")}, data={"voice": "ayana", "format": "wav"}
    ).json()["job_id"]
    second = _finished(other, second_id)
    assert first["state"] == second["state"] == "done"

    def cached_steps(client, job_id):
        text = client.get(f"/v1/jobs/{job_id}/events", timeout=30).text
        return {
            json.loads(line[6:])["step"]
            for line in text.splitlines()
            if line.startswith("data: ") and '"step_end"' not in line and '"cached": true' in line
        }

    # the same steps count as cached (the skipped ones) for both: nothing the other key computed is reused
    assert cached_steps(other, second_id) == cached_steps(c, first["job_id"])
    assert second["result"]["title"] != first["result"]["title"]


def test_failed_keys_are_throttled_per_address(tmp_path):
    env = {"SINGER_HOME": str(tmp_path / "home"), "SINGER_API_KEYS": "k", "SINGER_AUTH_FAILURES_PER_MINUTE": "5"}
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    server = spawn_singer(["serve", "--port", str(port)], env, log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(base + "/healthz").status_code == 200, 60, "singer serve")
        codes = [httpx.get(base + "/v1/voices", headers={"X-API-Key": f"guess{i}"}).status_code for i in range(8)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        r = httpx.get(base + "/v1/voices", headers={"X-API-Key": "k"})  # even the right key waits now
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert httpx.get(base + "/healthz", headers={"X-API-Key": "k"}).json() == {"ok": True}
    finally:
        server.kill()
        server.wait()
        log.close()
