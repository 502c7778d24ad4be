"""Songs from the web through yt-dlp: YouTube search, and any URL yt-dlp understands (its generic extractor
included: a plain page with an ``<audio>`` tag or a direct file link).

yt-dlp is imported inside methods only. It runs quietly (its messages are collected, never printed). Downloads
are the best audio format as served (singer decodes with ffmpeg later), go to a temporary folder first and are
renamed into ``settings.downloads_path / <extractor>-<id>.<ext>``, so no partial file ever has a final name.
A repeated fetch of the same video id or the same URL reuses the finished file without network access.

A download runs inside :func:`singer.netguard.guarded`, so the URL policy holds for every connection yt-dlp makes
(redirects, playlists and their segments, media a page embeds, retries). For that yt-dlp must stay in this thread
and this process: one fragment at a time, its native HLS/DASH downloaders, no external downloader, no ffmpeg
fix-ups, and only formats served over http(s) (:data:`_SAFE_DOWNLOAD`); a configured proxy must be in the
allow-list, since the addresses it reaches cannot be checked here.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.parse
import urllib.request
from importlib.util import find_spec
from pathlib import Path
from typing import Any, ClassVar

from ...errors import EngineUnavailable, InputError, NetworkUnavailable, SourceError
from ...netguard import REFUSAL_MARK, AddressRefused, Policy, ProgramRefused, guarded
from ..base import Candidate, Progress, no_progress
from .urls import check_url

_PARTIAL_SUFFIXES = {".part", ".ytdl", ".tmp", ".json"}
_NETWORK_WORDS = re.compile(
    r"name resolution|name or service not known|nodename nor servname|failed to resolve|getaddrinfo"
    r"|connection refused|network is unreachable|no route to host|timed out|unable to connect to proxy"
    r"|connection reset|temporarily unavailable",
    re.IGNORECASE,
)
# extractors whose ids are just a file's base name, so the same id can come from different sites
_URL_NAMED_EXTRACTORS = {"generic", "html5mediaembed"}
_LIBRARY_HINT = "the local library (SINGER_LIBRARY) is searched instead"
# protocols yt-dlp downloads itself over http(s); rtmp, rtsp, mms, f4m, websockets... are never chosen
_HTTP_PROTOCOLS = "protocol~='^(https?|m3u8(_native)?|http_dash_segments)$'"
#: options that keep a download in this thread and this process, where the URL policy sees every connection;
#: applied after any extra parameters
_SAFE_DOWNLOAD: dict[str, Any] = {
    "format": f"bestaudio[{_HTTP_PROTOCOLS}]/best[{_HTTP_PROTOCOLS}]",
    "concurrent_fragment_downloads": 1,
    "hls_prefer_native": True,
    "external_downloader": {"default": "native"},
    "fixup": "never",
    "postprocessors": [],
    "skip_unavailable_fragments": False,
    "enable_file_urls": False,
}


class _Collector:
    """yt-dlp logger that keeps messages (for error reports) instead of printing them."""

    def __init__(self, keep: int = 200):
        self.messages: list[str] = []
        self.keep = keep

    def _add(self, msg: str) -> None:
        self.messages.append(msg)
        del self.messages[: -self.keep]

    debug = info = warning = error = _add


def _url_key(url: str) -> str:
    return hashlib.sha256(url.strip().encode("utf-8")).hexdigest()[:16]


def _safe(text: str, limit: int = 64) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:limit]


def _media_key(extractor: str, video_id: str | None, url: str) -> str:
    """``<extractor>-<id>``. Generic ids (a file's base name) are not unique, so those, and id-less results,
    get a hash of the URL too."""
    extractor = _safe(extractor.lower()) or "url"
    vid = _safe(str(video_id)) if video_id else ""
    if not vid or extractor in _URL_NAMED_EXTRACTORS:
        return f"{extractor}-{vid + '-' if vid else ''}{_url_key(url)[:12]}"
    return f"{extractor}-{vid}"


def _causes(err: BaseException) -> list[BaseException]:
    """``err`` and everything it wraps (yt-dlp's exc_info/cause, Python's __cause__/__context__)."""
    out: list[BaseException] = []
    stack: list[Any] = [err]
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or any(e is o for o in out):
            continue
        out.append(e)
        exc_info = getattr(e, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1:
            stack.append(exc_info[1])
        stack += [getattr(e, "cause", None), getattr(e, "reason", None), e.__cause__, e.__context__]
    return out


def is_refusal(err: BaseException) -> bool:
    """True when ``err`` is (or wraps, or quotes) a connection or program refused by the URL policy."""
    return any(isinstance(e, (AddressRefused, ProgramRefused)) or REFUSAL_MARK in str(e) for e in _causes(err))


def is_network_error(err: BaseException) -> bool:
    """True when ``err`` means the host could not be reached (DNS, refused, timeout, proxy), not an HTTP error and
    not a refusal by the URL policy."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError

    chain = _causes(err)
    if is_refusal(err) or any(isinstance(e, HTTPError) for e in chain):
        return False
    if any(isinstance(e, (TransportError, socket.gaierror, ConnectionError, TimeoutError)) for e in chain):
        return True
    return bool(_NETWORK_WORDS.search(str(err)))


def first_line(err: BaseException) -> str:
    """The useful part of a yt-dlp error: no ``ERROR:``/``[extractor] id:`` prefix, no bug-report boilerplate."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = lines[0] if lines else type(err).__name__
    text = re.sub(r"^ERROR:\s*", "", text)
    text = re.sub(r"^\[[\w:.-]+\]\s*", "", text)
    text = re.sub(r"^[\w-]{6,}:\s+(?=[A-Z])", "", text)  # "<video id>: Video unavailable"
    text = re.split(r";\s*please report this issue|\s*\(caused by ", text)[0]
    return text.strip() or type(err).__name__


def hint_for(message: str) -> str:
    low = message.lower()
    if "unsupported url" in low:
        return "yt-dlp found no audio or video at that address; give a video page or a direct link to a media file."
    if any(w in low for w in ("unavailable", "private video", "removed", "terminated", "not available")):
        return "The video is private, removed or blocked here; pick another search result (`singer search`)."
    if any(w in low for w in ("sign in", "age", "members-only", "login")):
        return "That video needs a signed-in account; pick another search result."
    if "http error 404" in low or "not found" in low:
        return "The page does not exist; check the link."
    if "http error 403" in low or "forbidden" in low:
        return (
            "The site refused the download; try again later, another result, or update yt-dlp (pip install -U yt-dlp)."
        )
    return "Check the link in a browser, try another result, or update yt-dlp (pip install -U yt-dlp)."


class YtDlpSource:
    """Search YouTube and download from any site yt-dlp supports."""

    name: ClassVar[str] = "ytdlp"
    kind: ClassVar[str] = "source"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "YouTube search and any URL yt-dlp supports (downloads best audio)."
    #: extra yt-dlp options applied to every call (e.g. {"proxy": ...}); tests use it to simulate a dead network
    extra_params: ClassVar[dict[str, Any]] = {}

    @classmethod
    def check(cls, settings: Any) -> None:
        if find_spec("yt_dlp") is None:
            raise EngineUnavailable("yt-dlp is not installed.", hint="pip install yt-dlp")

    def __init__(self, settings: Any, params: dict[str, Any] | None = None):
        self.settings = settings
        self.params = dict(params or {})
        self.log = _Collector()

    def _options(self, **extra: Any) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "no_color": True,
            "logger": self.log,
            "socket_timeout": float(self.settings.network_timeout),
            "cachedir": str(Path(self.settings.cache_path) / "yt-dlp"),
        }
        opts.update(extra)
        opts.update(self.extra_params)
        opts.update(self.params)
        return opts

    # ---- search -------------------------------------------------------------------------------------------

    def search(self, query: str, limit: int | None = None) -> list[Candidate]:
        """YouTube search; candidates longer than ``search_max_duration`` are skipped and counted in
        ``extra['skipped_long']``. Raises NetworkUnavailable when the search host cannot be reached."""
        from yt_dlp import YoutubeDL
        from yt_dlp.utils import YoutubeDLError

        query = " ".join(query.split())
        if not query:
            raise InputError("Empty search query.", hint="Give a song title, e.g. singer search 'artist title'.")
        limit = max(1, int(limit or self.settings.search_results))
        wanted = min(50, limit + max(3, limit))  # a few spare results replace skipped long ones
        opts = self._options(extract_flat=True, skip_download=True, extractor_retries=1)
        try:
            with YoutubeDL(opts) as ydl:
                result = ydl.extract_info(f"ytsearch{wanted}:{query}", download=False) or {}
        except YoutubeDLError as e:
            if is_network_error(e):
                raise NetworkUnavailable(
                    f"Cannot search online for '{query}': the network is unreachable; {_LIBRARY_HINT}",
                    hint="Check your connection, give a local file, or set SINGER_LIBRARY to your music folders.",
                ) from None
            raise SourceError(f"Online search for '{query}' failed: {first_line(e)}", hint=hint_for(str(e))) from None
        max_len = float(self.settings.search_max_duration or 0)
        kept: list[Candidate] = []
        skipped = 0
        for entry in result.get("entries") or []:
            if not entry or entry.get("live_status") in ("is_live", "is_upcoming", "post_live"):
                continue
            duration = entry.get("duration")
            if max_len and duration and float(duration) > max_len:
                skipped += 1
                continue
            if len(kept) < limit:
                kept.append(self._candidate(entry))
        if not kept and skipped:
            raise SourceError(
                f"All {skipped} results for '{query}' are longer than {max_len / 60:.0f} min.",
                hint="Refine the query, or raise SINGER_SEARCH_MAX_DURATION (seconds).",
            )
        for cand in kept:
            cand.extra["skipped_long"] = skipped
        return kept

    def _candidate(self, entry: dict) -> Candidate:
        vid = entry.get("id")
        url = entry.get("webpage_url") or entry.get("url") or ""
        if vid and not url.startswith(("http://", "https://")):
            url = f"https://www.youtube.com/watch?v={vid}"
        duration = entry.get("duration")
        return Candidate(
            title=entry.get("title") or url,
            source=self.name,
            ref=url,
            artist=entry.get("artist") or entry.get("channel") or entry.get("uploader") or "",
            duration=float(duration) if duration else None,
            url=url,
            extra={
                "id": vid,
                "extractor": (entry.get("ie_key") or entry.get("extractor_key") or "youtube").lower(),
                "channel": entry.get("channel") or entry.get("uploader") or "",
                "view_count": entry.get("view_count"),
            },
        )

    # ---- fetch --------------------------------------------------------------------------------------------

    def fetch(self, candidate: Candidate | str, dest_dir: Path | None = None, progress: Progress = no_progress) -> Path:
        """Download ``candidate`` (or a URL) as best audio; return the cached file when it was fetched before."""
        if isinstance(candidate, str):
            candidate = Candidate(title=candidate, source=self.name, ref=candidate, url=candidate)
        url = (candidate.url or candidate.ref).strip()
        dest = Path(dest_dir or self.settings.downloads_path)
        known = None
        if candidate.extra.get("id") and candidate.extra.get("extractor"):
            known = _media_key(candidate.extra["extractor"], candidate.extra["id"], url)
        try:
            check_url(url, self.settings)
        except NetworkUnavailable:
            hit = self._cached(dest, url, known)
            if hit:  # offline, but we have it: the policy was applied when it was downloaded
                return hit
            raise
        hit = self._cached(dest, url, known)
        if hit:
            progress(1.0, f"Using cached download {hit.name}")
            return hit
        dest.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=dest))
        try:
            return self._download(url, dest, tmp, progress)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _cached(self, dest: Path, url: str, key: str | None) -> Path | None:
        alias = dest / ".urls" / f"{_url_key(url)}.json"
        try:
            name = json.loads(alias.read_text(encoding="utf-8")).get("file", "")
            path = dest / Path(name).name
            if name and path.is_file() and path.stat().st_size > 0:
                return path
        except (OSError, ValueError, AttributeError):
            pass
        return _find_final(dest, key) if key else None

    def _remember(self, dest: Path, url: str, path: Path) -> None:
        """Record url -> file so a repeated fetch of the same URL needs no network at all."""
        alias_dir = dest / ".urls"
        try:
            alias_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".alias-", dir=alias_dir)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"url": url, "file": path.name}, f)
            os.replace(tmp, alias_dir / f"{_url_key(url)}.json")
        except OSError:
            pass  # only costs a metadata request next time

    def _download(self, url: str, dest: Path, tmp: Path, progress: Progress) -> Path:
        from yt_dlp.utils import DownloadCancelled

        title = {"text": url}
        cap = int(float(self.settings.max_download_mb) * 1e6)
        deadline = time.monotonic() + float(self.settings.download_timeout)
        stopped: dict[str, str] = {}

        def hook(d: dict) -> None:
            if d.get("status") == "downloading":
                total = d.get("total_bytes") or d.get("total_bytes_estimate")
                done = d.get("downloaded_bytes") or 0
                if done > cap or (total and total > cap):  # counted, not announced: a stream without a length too
                    stopped["why"] = (
                        f"the download of {url} is over {cap / 1e6:.0f} MB",
                        "Give a shorter song (the operator's limit is SINGER_MAX_DOWNLOAD_MB).",
                    )
                    raise DownloadCancelled(stopped["why"][0])
                if time.monotonic() > deadline:
                    stopped["why"] = (
                        f"the download of {url} took over {self.settings.download_timeout:.0f} s",
                        "Try again later or give another link (SINGER_DOWNLOAD_TIMEOUT).",
                    )
                    raise DownloadCancelled(stopped["why"][0])
                if total:
                    frac = min(1.0, done / total)
                    progress(0.05 + 0.9 * frac, f"Downloading {title['text']}: {frac:.0%}")
                else:
                    progress(0.05, f"Downloading {title['text']}: {done / 1e6:.1f} MB")
            elif d.get("status") == "finished":
                progress(0.95, f"Downloaded {title['text']}")

        progress(0.0, f"Looking up {url}")
        opts = self._options(
            outtmpl={"default": str(tmp / "media.%(ext)s")},
            noplaylist=True,
            playlist_items="1",
            progress_hooks=[hook],
            overwrites=True,
            max_filesize=cap,
        )
        opts.update(_SAFE_DOWNLOAD)
        self._check_proxy(opts, url)
        try:
            with guarded(self.settings, url):  # any refused connection inside ends the download with its SourceError
                found = self._run(opts, url, dest, title)
        except SourceError:
            if stopped:
                what, hint = stopped["why"]
                raise SourceError(what[0].upper() + what[1:] + "; it was stopped.", hint=hint) from None
            raise
        if isinstance(found, Path):
            self._remember(dest, url, found)
            progress(1.0, f"Using cached download {found.name}")
            return found
        key, done = found
        src = _downloaded_file(done, tmp)
        if src is None:
            raise SourceError(f"yt-dlp finished but wrote no file for {url}", hint=hint_for(""))
        final = dest / f"{key}{src.suffix.lower()}"
        os.replace(src, final)
        self._remember(dest, url, final)
        prune(Path(self.settings.downloads_path), int(float(self.settings.downloads_keep_mb) * 1e6), keep=final)
        progress(1.0, f"Downloaded {final.name}")
        return final

    def _run(self, opts: dict[str, Any], url: str, dest: Path, title: dict) -> Path | tuple[str, dict]:
        """Look ``url`` up and download it: a finished file already here, or (media key, yt-dlp's result)."""
        from yt_dlp import YoutubeDL
        from yt_dlp.utils import YoutubeDLError

        try:
            with YoutubeDL(opts) as ydl:
                info = ydl.extract_info(url, download=False) or {}
                if info.get("_type") == "playlist":
                    entries = [e for e in info.get("entries") or [] if e]
                    if not entries:
                        raise SourceError(
                            f"The playlist at {url} has no playable entries.", hint="Give a single video link."
                        )
                    info = entries[0]
                if info.get("is_live"):
                    raise SourceError(
                        f"{url} is a live stream; singer needs a finished recording.",
                        hint="Give the link of a recorded video or an audio file.",
                    )
                limit = float(self.settings.max_duration or 0)
                if limit and float(info.get("duration") or 0) > limit + 1:
                    raise SourceError(
                        f"{url} is {float(info['duration']) / 60:.1f} min long; the limit is {limit / 60:.1f} min.",
                        hint="Give a shorter song (SINGER_MAX_DURATION).",
                    )
                title["text"] = info.get("title") or url
                key = _media_key(info.get("extractor_key") or info.get("extractor") or "url", info.get("id"), url)
                existing = _find_final(dest, key)
                if existing:
                    return existing
                return key, ydl.process_ie_result(info, download=True) or info
        except YoutubeDLError as e:
            raise self._error(e, url) from None

    def _check_proxy(self, opts: dict[str, Any], url: str) -> None:
        """Refuse a download through a proxy the allow-list does not name: the proxy, not singer, resolves and
        connects to every address behind it, so only one the operator trusts may be used."""
        policy = Policy.of(self.settings)
        if policy.allow_private:
            return
        if opts.get("proxy") is not None:
            proxies = [opts["proxy"]] if opts["proxy"] else []
        else:  # yt-dlp falls back to the *_proxy environment variables
            proxies = [v for k, v in urllib.request.getproxies().items() if k in ("http", "https", "all") and v]
        for proxy in proxies:
            try:
                parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
                host, port = parts.hostname or "", parts.port or 80
            except ValueError:
                host, port = "", 0
            listed = bool(host) and policy.allow.host_port(host, port) is not False
            try:
                listed = listed or policy.allow.has_address(ipaddress.ip_address(host), port)
            except ValueError:
                pass
            if not listed:
                raise SourceError(
                    f"Refusing to fetch {url} through the proxy '{host or proxy}': a proxy reaches addresses "
                    f"singer cannot check, so it must be in the allow-list ({REFUSAL_MARK})",
                    hint=f"Add '{host or proxy}:{port}' to SINGER_URL_ALLOW (settings.url_allow) to use this proxy, "
                    "or remove it (the proxy option, or HTTP(S)_PROXY / ALL_PROXY in the environment).",
                )

    def _error(self, err: BaseException, url: str) -> SourceError:
        if is_network_error(err):
            return NetworkUnavailable(
                f"Cannot download {url}: the network is unreachable ({first_line(err)})",
                hint="Check your connection, or give a local file / search your library (SINGER_LIBRARY).",
            )
        line = first_line(err)
        return SourceError(f"Cannot fetch {url}: {line}", hint=hint_for(line))


def prune(root: Path, keep_bytes: int, keep: Path | None = None) -> int:
    """Remove the oldest finished downloads under ``root`` until they total at most ``keep_bytes`` (``keep`` is
    never removed). Returns the bytes removed. Downloads are a cache: a removed one is fetched again if asked."""
    files = []
    for p in root.rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        if p.is_file() and not p.is_symlink() and p.parent.name != ".urls":
            files.append((st.st_mtime, st.st_size, p))
    total, removed = sum(f[1] for f in files), 0
    for _, size, p in sorted(files, key=lambda f: f[0]):
        if total <= keep_bytes:
            break
        if keep is not None and p == keep:
            continue
        try:
            p.unlink()
        except OSError:
            continue
        total, removed = total - size, removed + size
    return removed


def _find_final(dest: Path, key: str) -> Path | None:
    """A finished download named ``<key>.<ext>`` in ``dest`` (temp and partial files never have such names)."""
    try:
        for p in dest.iterdir():
            if p.stem == key and p.suffix.lower() not in _PARTIAL_SUFFIXES and p.is_file() and p.stat().st_size > 0:
                return p
    except OSError:
        return None
    return None


def _downloaded_file(info: dict, tmp: Path) -> Path | None:
    for req in info.get("requested_downloads") or []:
        fp = req.get("filepath") or req.get("_filename")
        if fp and Path(fp).is_file():
            return Path(fp)
    files = [p for p in tmp.iterdir() if p.is_file() and p.suffix.lower() not in _PARTIAL_SUFFIXES]
    return max(files, key=lambda p: p.stat().st_size) if files else None
