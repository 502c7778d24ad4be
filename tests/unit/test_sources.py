"""Song sources: local files, the tag-indexed library, yt-dlp (through a loopback HTTP server), URL policy and
resolve(). No real site is ever contacted: network failures are simulated with a proxy on a closed port."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pytest

from singer import audio
from singer.config import Settings
from singer.engines import registry
from singer.engines.base import Candidate
from singer.engines.sources import library as library_mod
from singer.engines.sources import resolve as rs
from singer.engines.sources import urls
from singer.engines.sources.library import LibrarySource, score
from singer.engines.sources.local import LocalFileSource
from singer.engines.sources.ytdlp import YtDlpSource
from singer.engines.sources.ytdlp_errors import first_line, hint_for
from singer.errors import InputError, NetworkUnavailable, SourceError

pytestmark = pytest.mark.timeout(120)


# ---- fixtures -------------------------------------------------------------------------------------------------


def _tone(path: Path, seconds: float = 2.0, freq: float = 440.0, tags: dict | None = None) -> Path:
    sr = 22050
    t = np.arange(int(sr * seconds)) / sr
    wav = path.with_name(path.name + ".src.wav")
    audio.write_wav(wav, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    audio.encode(wav, path, tags=tags)
    wav.unlink()
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("site")
    _tone(d / "my song.mp3", tags={"title": "Loopback Tone", "artist": "Test Band"})
    (d / "page.html").write_text(
        '<html><head><title>A song page</title></head><body><audio controls src="my%20song.mp3"></audio></body></html>',
        encoding="utf-8",
    )
    (d / "nomedia.html").write_text("<html><head><title>Nothing</title></head><body>hi</body></html>", "utf-8")
    return d


@pytest.fixture(scope="module")
def server(media: Path):
    """Loopback HTTP server over ``media``; ``requests`` lists every request path it answered."""
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def do_HEAD(self) -> None:
            requests.append("HEAD " + self.path)
            super().do_HEAD()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(media)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", library="", allow_private_urls=True, network_timeout=5)


@pytest.fixture
def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small library: names only, tags only, unicode names, a sub-folder, and a broken file."""
    d = tmp_path_factory.mktemp("music")
    (d / "Queen").mkdir()
    _tone(d / "Queen" / "Queen - Bohemian Rhapsody.mp3", 1.0)
    _tone(d / "track01.mp3", 1.5, 330, tags={"title": "Yesterday", "artist": "The Beatles", "album": "Help!"})
    _tone(d / "Café del Mar – Ñandú.flac", 1.0, 550)
    (d / "broken.mp3").write_bytes(b"not really audio" * 10)
    (d / "cover.jpg").write_bytes(b"\xff\xd8")
    return d


def _no_network(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setattr(YtDlpSource, "extra_params", {"proxy": f"http://127.0.0.1:{port}"})


class FakeYDL:
    """Stands in for yt_dlp.YoutubeDL in search tests; ``entries`` is what the search returns."""

    entries: ClassVar[list[dict]] = []
    queries: ClassVar[list[str]] = []

    def __init__(self, opts: dict):
        self.opts = opts

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def extract_info(self, url: str, download: bool = False) -> dict:
        FakeYDL.queries.append(url)
        return {"_type": "playlist", "entries": [dict(e) for e in FakeYDL.entries]}


def _entry(vid: str, title: str, duration: float | None, channel: str = "Chan") -> dict:
    return {
        "_type": "url",
        "ie_key": "Youtube",
        "id": vid,
        "title": title,
        "duration": duration,
        "channel": channel,
        "url": f"https://www.youtube.com/watch?v={vid}",
    }


@pytest.fixture
def fake_ydl(monkeypatch: pytest.MonkeyPatch):
    import yt_dlp

    FakeYDL.entries, FakeYDL.queries = [], []
    monkeypatch.setattr(yt_dlp, "YoutubeDL", FakeYDL)
    return FakeYDL


# ---- URL policy -----------------------------------------------------------------------------------------------


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch):
    table = {
        "songs.example.com": ["93.184.216.34", "2606:2800:220:1::1"],
        "localhost": ["127.0.0.1"],
        "sneaky.example.com": ["93.184.216.34", "10.1.2.3"],
    }

    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]
        ]

    monkeypatch.setattr(urls.socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://songs.example.com/a.mp3",
        "http://127.0.0.1:8000/song.mp3",
        "http://10.0.0.1/song",
        "http://192.168.1.20/song",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/song",
        "http://[::ffff:127.0.0.1]/song",
        "http://[fe80::1]/song",
        "http://0.0.0.0/song",
        "http://localhost/song",
        "http://sneaky.example.com/song",
    ],
)
def test_url_policy_refuses(url: str, fake_dns: None) -> None:
    with pytest.raises(SourceError) as e:
        urls.check_url(url, allow_private=False)
    assert not isinstance(e.value, NetworkUnavailable)
    assert url in e.value.user_message
    if url.startswith("http"):
        assert "SINGER_ALLOW_PRIVATE_URLS" in e.value.hint


def test_url_policy_allows_public_and_private_when_enabled(fake_dns: None) -> None:
    assert urls.check_url("https://songs.example.com/watch?v=1") == "https://songs.example.com/watch?v=1"
    assert urls.check_url("http://93.184.216.34/a.mp3")
    assert urls.check_url("http://127.0.0.1:9/x", allow_private=True)
    with pytest.raises(SourceError, match="scheme"):
        urls.check_url("file:///etc/passwd", allow_private=True)
    with pytest.raises(NetworkUnavailable, match="nowhere.invalid"):
        urls.check_url("https://nowhere.invalid/x")


def test_looks_like_url() -> None:
    assert urls.looks_like_url("https://youtu.be/abc")
    assert urls.looks_like_url("youtu.be/abc") and urls.normalize_url("youtu.be/abc") == "https://youtu.be/abc"
    assert urls.looks_like_url("www.example.com")
    assert urls.looks_like_url("ftp://x.org/a")
    assert not urls.looks_like_url("queen bohemian rhapsody")
    assert not urls.looks_like_url("AC/DC")


# ---- yt-dlp through the loopback server ----------------------------------------------------------------------


@pytest.mark.network
def test_generic_page_download_is_cached(server, settings: Settings, capfd: pytest.CaptureFixture) -> None:
    base, requests = server
    url = f"{base}/page.html"
    seen: list[float] = []
    src = YtDlpSource(settings)
    path = src.fetch(url, progress=lambda f, m: seen.append(f))
    assert path.parent == settings.downloads_path and path.suffix == ".mp3"
    assert abs(audio.probe(path).duration - 2.0) < 0.2
    assert seen and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)
    leftovers = [
        p.name for p in settings.downloads_path.iterdir() if p.name.startswith(".download-") or ".part" in p.name
    ]
    assert leftovers == []
    n = len(requests)
    assert YtDlpSource(settings).fetch(url) == path
    assert len(requests) == n, "second fetch must not touch the network"
    assert capfd.readouterr() == ("", ""), "yt-dlp must not print"


@pytest.mark.network
def test_direct_link_through_resolve(server, settings: Settings) -> None:
    base, requests = server
    url = f"{base}/my%20song.mp3"
    chosen, cands = rs.resolve(url, settings)
    assert chosen.source == "ytdlp" and cands == [chosen]
    path = rs.fetch(chosen, settings)
    assert path.is_file() and audio.probe(path).tags.get("title") == "Loopback Tone"
    n = len(requests)
    assert rs.fetch(chosen, settings) == path
    assert len(requests) == n
    # the same URL is refused once private hosts are not allowed, cached or not, without any request
    strict = settings.model_copy(update={"allow_private_urls": False})
    for call in (lambda: rs.resolve(url, strict), lambda: rs.fetch(chosen, strict)):
        with pytest.raises(SourceError) as e:
            call()
        assert url in e.value.user_message and "SINGER_ALLOW_PRIVATE_URLS" in e.value.hint
    assert len(requests) == n


@pytest.mark.network
def test_download_errors_are_translated(server, settings: Settings, closed_port: int) -> None:
    base, _ = server
    src = YtDlpSource(settings)
    with pytest.raises(SourceError) as e:
        src.fetch(f"{base}/nomedia.html")
    assert not isinstance(e.value, NetworkUnavailable)
    assert "Unsupported URL" in e.value.user_message and "nomedia.html" in e.value.user_message
    with pytest.raises(SourceError) as e:
        src.fetch(f"{base}/missing.mp3")
    assert "404" in e.value.user_message and not isinstance(e.value, NetworkUnavailable)
    with pytest.raises(NetworkUnavailable, match="unreachable"):
        src.fetch(f"http://127.0.0.1:{closed_port}/song.mp3")
    assert list(settings.downloads_path.glob("*.mp3")) == []
    assert [p for p in settings.downloads_path.iterdir() if p.name.startswith(".download-")] == []


def test_first_line_and_hints() -> None:
    err = Exception("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable\nmore detail")
    assert first_line(err) == "Video unavailable"
    assert "another" in hint_for("Video unavailable")
    err = Exception("ERROR: Unsupported URL: https://example.com/x; please report this issue on https://...")
    assert first_line(err) == "Unsupported URL: https://example.com/x"


# ---- search, network down, duration filter -------------------------------------------------------------------


def test_search_network_unreachable(settings: Settings, closed_port: int) -> None:
    src = YtDlpSource(settings, params={"proxy": f"http://127.0.0.1:{closed_port}"})
    t0 = time.monotonic()
    with pytest.raises(NetworkUnavailable) as e:
        src.search("some song", 3)
    assert time.monotonic() - t0 < 30
    assert "network is unreachable" in e.value.user_message and "SINGER_LIBRARY" in e.value.user_message


def test_resolve_falls_back_to_library(settings: Settings, music: Path, closed_port: int, monkeypatch) -> None:
    _no_network(monkeypatch, closed_port)
    lib = settings.model_copy(update={"library": str(music)})
    chosen, _ = rs.resolve("bohemian rhapsody", lib)
    assert chosen.source == "library" and "Bohemian" in chosen.title
    assert "unreachable" in chosen.extra["warning"]
    with pytest.raises(NetworkUnavailable, match="no local library"):
        rs.resolve("bohemian rhapsody", settings)
    with pytest.raises(NetworkUnavailable, match="no match"):
        rs.resolve("zzzz qqqq", lib)


def test_duration_filter(settings: Settings, fake_ydl) -> None:
    fake_ydl.entries = [
        _entry("a1", "Short", 200),
        _entry("b2", "Very long mix", 3 * 3600),
        _entry("c3", "No length", None),
        _entry("d4", "Also short", 300.5),
    ]
    cands = YtDlpSource(settings).search("song", 5)
    assert [c.title for c in cands] == ["Short", "No length", "Also short"]
    assert all(c.extra["skipped_long"] == 1 and c.source == "ytdlp" for c in cands)
    assert cands[0].url == "https://www.youtube.com/watch?v=a1" and cands[0].artist == "Chan"
    assert cands[0].extra["extractor"] == "youtube" and cands[0].extra["id"] == "a1"
    assert fake_ydl.queries[-1].startswith("ytsearch") and fake_ydl.queries[-1].endswith(":song")
    assert len(YtDlpSource(settings).search("song", 2)) == 2
    fake_ydl.entries = [_entry("b2", "Very long mix", 3 * 3600)]
    with pytest.raises(SourceError, match="longer than 15 min") as e:
        YtDlpSource(settings).search("song", 5)
    assert "SINGER_SEARCH_MAX_DURATION" in e.value.hint


def test_search_ranks_good_library_hits_first(settings: Settings, music: Path, fake_ydl) -> None:
    fake_ydl.entries = [_entry("y1", "Yesterday (cover)", 180), _entry("y2", "Yesterday live", 200)]
    lib = settings.model_copy(update={"library": str(music)})
    cands = rs.search("beatles yesterday", lib, 5)
    assert [c.source for c in cands] == ["library", "ytdlp", "ytdlp"]
    assert cands[0].ref.endswith("track01.mp3") and cands[0].duration == pytest.approx(1.5, abs=0.1)
    assert all("warning" not in c.extra for c in cands)
    chosen, _ = rs.resolve("beatles yesterday", lib, pick=2)
    assert chosen.extra["id"] == "y1"
    with pytest.raises(InputError, match="3 candidates"):
        rs.resolve("beatles yesterday", lib, pick=4)
    with pytest.raises(InputError, match="out of range"):
        rs.resolve("beatles yesterday", lib, pick=0)


def test_no_song_found(settings: Settings, music: Path, fake_ydl) -> None:
    lib = settings.model_copy(update={"library": str(music)})
    with pytest.raises(SourceError, match="No song found for 'qqqq zzzz'") as e:
        rs.resolve("qqqq zzzz", lib)
    assert "SINGER_LIBRARY" in e.value.hint
    with pytest.raises(InputError):
        rs.resolve("   ", lib)


# ---- library --------------------------------------------------------------------------------------------------


def test_library_search_by_name_and_tags(settings: Settings, music: Path) -> None:
    src = LibrarySource(settings.model_copy(update={"library": str(music)}))
    by_name = src.search("queen bohemian", 5)
    assert by_name and by_name[0].ref.endswith("Queen - Bohemian Rhapsody.mp3")
    by_tag = src.search("Beatles - Yesterday", 5)
    assert by_tag and by_tag[0].title == "Yesterday" and by_tag[0].artist == "The Beatles"
    assert by_tag[0].extra["album"] == "Help!" and by_tag[0].extra["score"] >= 0.75
    accents = src.search("cafe del mar nandu", 5)
    assert accents and "Ñandú" in accents[0].ref
    assert src.search("yesterdy", 5)[0].title == "Yesterday"  # a typo still finds it
    assert src.search("completely unrelated words", 5) == []
    assert all("broken" not in c.ref for c in src.search("broken", 5))
    assert src.fetch(by_tag[0]) == Path(by_tag[0].ref)


def test_library_index_is_cached(settings: Settings, music: Path, tmp_path: Path, monkeypatch) -> None:
    lib_dir = tmp_path / "lib"
    shutil.copytree(music, lib_dir)
    src = LibrarySource(settings.model_copy(update={"library": str(lib_dir)}))
    assert src.search("yesterday", 3)
    index = settings.cache_path / library_mod.INDEX_NAME
    assert index.is_file()

    calls: list[str] = []
    real_probe = audio.probe

    def counting_probe(path):  # type: ignore[no-untyped-def]
        calls.append(str(path))
        return real_probe(path)

    monkeypatch.setattr(audio, "probe", counting_probe)
    assert src.search("yesterday", 3)
    assert calls == [], "unchanged files must not be probed again"
    changed = lib_dir / "track01.mp3"
    _tone(changed, 1.0, tags={"title": "Tomorrow", "artist": "The Beatles"})
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert src.search("tomorrow beatles", 3)[0].title == "Tomorrow"
    assert calls == [str(changed)]


def test_library_missing_folder(settings: Settings, tmp_path: Path) -> None:
    src = LibrarySource(settings.model_copy(update={"library": str(tmp_path / "nope")}))
    with pytest.raises(SourceError, match="nope") as e:
        src.search("x", 3)
    assert "SINGER_LIBRARY" in e.value.hint


def test_score() -> None:
    assert score("bohemian rhapsody", ["Queen - Bohemian Rhapsody"]) > 0.75
    assert score("rhapsody bohemian", ["Queen - Bohemian Rhapsody"]) > 0.7
    assert score("abc", ["something else"]) < 0.5
    assert score("", ["x"]) == 0


# ---- local files ----------------------------------------------------------------------------------------------


def test_local_file_with_spaces_and_unicode(settings: Settings, tmp_path: Path) -> None:
    song = _tone(tmp_path / "my sóng – ü.mp3", 1.0)
    chosen, cands = rs.resolve(str(song), settings)
    assert chosen.source == "local" and cands == [chosen] and chosen.duration == pytest.approx(1.0, abs=0.1)
    assert rs.fetch(chosen, settings) == song
    quoted, _ = rs.resolve(f"'{song}'", settings)
    assert quoted.ref == str(song)
    with pytest.raises(InputError, match="1 candidate"):
        rs.resolve(str(song), settings, pick=2)


def test_local_file_home_and_errors(settings: Settings, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    song = _tone(tmp_path / "tilde.mp3", 1.0)
    assert LocalFileSource(settings).search("~/tilde.mp3")[0].ref == str(song)
    with pytest.raises(InputError, match="File not found"):
        rs.resolve(str(tmp_path / "missing.mp3"), settings)
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    chosen, _ = rs.resolve(str(text), settings)
    with pytest.raises(InputError, match="notes.txt"):
        rs.fetch(chosen, settings)


def test_registry_creates_sources(settings: Settings) -> None:
    for name in ("local", "library", "ytdlp"):
        engine = registry.create("source", name, settings)
        assert engine.name == name and engine.kind == "source" and engine.version and engine.description
    assert isinstance(Candidate(title="t", source="local", ref="x").to_dict(), dict)
