"""Songs from the web through yt-dlp: YouTube search, and any URL yt-dlp understands (its generic extractor
included: a plain page with an ``<audio>`` tag or a direct file link).

yt-dlp is imported inside methods only. It runs quietly (its messages are collected, never printed). Downloads
are the best audio format as served (singer decodes with ffmpeg later), go to a temporary folder first (held
while the download runs, so a cache prune leaves it alone) and are renamed into
``settings.downloads_path / <extractor>-<id>.<ext>``, so no partial file ever has a final name. A repeated fetch
of the same video id or the same URL reuses the finished file without network access. The downloads are the
cache namespace ``downloads`` (:mod:`singer.workflow.namespaces`), trimmed to SINGER_DOWNLOADS_KEEP_MB after each
download.

A download runs inside :func:`singer.netguard.guarded`, so the URL policy holds for every connection yt-dlp makes
(redirects, playlists and their segments, media a page embeds, retries); :mod:`.ytdlp_safety` keeps yt-dlp where
the policy sees it and holds each download to its size and time limits.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any, ClassVar

from ... import locks
from ...config import Settings
from ...errors import EngineUnavailable, InputError, NetworkUnavailable, SourceError
from ...netguard import guarded
from ...workflow import namespaces
from ...workflow.namespaces import DOWNLOAD_TEMP_PREFIX
from ..base import Candidate, Progress, Source, no_progress
from .urls import check_url
from .ytdlp_errors import first_line, hint_for, is_network_error
from .ytdlp_safety import BYTES_PER_MB, SAFE_DOWNLOAD, DownloadCaps, check_proxy

_PARTIAL_SUFFIXES = {".part", ".ytdl", ".tmp", ".json"}
# extractors whose ids are just a file's base name, so the same id can come from different sites
_URL_NAMED_EXTRACTORS = {"generic", "html5mediaembed"}
_MOST_RESULTS, _SPARE_RESULTS = 50, 3  # asked of one YouTube search; spares for long results skipped
_LIBRARY_HINT = "the local library (SINGER_LIBRARY) is searched instead"
_KEPT_MESSAGES = 200  # yt-dlp messages kept for an error report
# hex digits of a URL's hash naming its record, and in a file name; characters kept of a site's id
_URL_KEY_CHARS, _URL_KEY_IN_NAME, _NAME_CHARS = 16, 12, 64


class _Collector:
    """yt-dlp logger that keeps messages (for error reports) instead of printing them."""

    def __init__(self, keep: int = _KEPT_MESSAGES):
        self.messages: list[str] = []
        self.keep = keep

    def _add(self, msg: str) -> None:
        self.messages.append(msg)
        del self.messages[: -self.keep]

    debug = info = warning = error = _add


def _url_key(url: str) -> str:
    return hashlib.sha256(url.strip().encode("utf-8")).hexdigest()[:_URL_KEY_CHARS]


def _safe(text: str, limit: int = _NAME_CHARS) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:limit]


def _media_key(extractor: str, video_id: str | None, url: str) -> str:
    """``<extractor>-<id>``. Generic ids (a file's base name) are not unique, so those, and id-less results,
    get a hash of the URL too."""
    extractor = _safe(extractor.lower()) or "url"
    vid = _safe(str(video_id)) if video_id else ""
    if not vid or extractor in _URL_NAMED_EXTRACTORS:
        return f"{extractor}-{vid + '-' if vid else ''}{_url_key(url)[:_URL_KEY_IN_NAME]}"
    return f"{extractor}-{vid}"


class YtDlpSource(Source):
    """Search YouTube and download from any site yt-dlp supports."""

    name: ClassVar[str] = "ytdlp"
    kind: ClassVar[str] = "source"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "YouTube search and any URL yt-dlp supports (downloads best audio)."
    #: extra yt-dlp options applied to every call (e.g. {"proxy": ...}); tests use it to simulate a dead network
    extra_params: ClassVar[dict[str, Any]] = {}

    @classmethod
    def check(cls, settings: Settings) -> None:
        if find_spec("yt_dlp") is None:
            raise EngineUnavailable("yt-dlp is not installed.", hint="pip install yt-dlp")

    def __init__(self, settings: Settings, params: dict[str, Any] | None = None):
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
        wanted = min(_MOST_RESULTS, limit + max(_SPARE_RESULTS, limit))  # spare results replace skipped long ones
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
        tmp, held = locks.hold_new(lambda: Path(tempfile.mkdtemp(prefix=DOWNLOAD_TEMP_PREFIX, dir=dest)))
        try:
            return self._download(url, dest, tmp, progress)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            locks.release(held)

    def _cached(self, dest: Path, url: str, key: str | None) -> Path | None:
        """The finished download of ``url`` (or of media ``key``), marked as used now (prune goes oldest first)."""
        alias = dest / ".urls" / f"{_url_key(url)}.json"
        found = None
        try:
            name = json.loads(alias.read_text(encoding="utf-8")).get("file", "")
            path = dest / Path(name).name
            if name and path.is_file() and path.stat().st_size > 0:
                found = path
        except (OSError, ValueError, AttributeError):
            pass
        found = found or (_find_final(dest, key) if key else None)
        if found is not None:
            try:
                os.utime(found)
            except OSError:
                pass
        return found

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
        caps = DownloadCaps(self.settings, url, progress)
        progress(0.0, f"Looking up {url}")
        opts = self._options(
            outtmpl={"default": str(tmp / "media.%(ext)s")},
            noplaylist=True,
            playlist_items="1",
            progress_hooks=[caps.hook],
            overwrites=True,
            max_filesize=caps.cap,
        )
        opts.update(SAFE_DOWNLOAD)
        check_proxy(self.settings, opts, url)
        try:
            with guarded(self.settings, url):  # any refused connection inside ends the download with its SourceError
                found = self._run(opts, url, dest, caps)
        except SourceError:
            stopped = caps.stopped()
            if stopped:
                raise stopped from None
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
        keep_bytes = int(float(self.settings.downloads_keep_mb) * BYTES_PER_MB)
        namespaces.shrink(self.settings, "downloads", keep_bytes, keep=(final,))
        progress(1.0, f"Downloaded {final.name}")
        return final

    def _run(self, opts: dict[str, Any], url: str, dest: Path, caps: DownloadCaps) -> Path | tuple[str, dict]:
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
                caps.title = info.get("title") or url
                key = _media_key(info.get("extractor_key") or info.get("extractor") or "url", info.get("id"), url)
                existing = _find_final(dest, key)
                if existing:
                    return existing
                return key, ydl.process_ie_result(info, download=True) or info
        except YoutubeDLError as e:
            raise self._error(e, url) from None

    def _error(self, err: BaseException, url: str) -> SourceError:
        if is_network_error(err):
            return NetworkUnavailable(
                f"Cannot download {url}: the network is unreachable ({first_line(err)})",
                hint="Check your connection, or give a local file / search your library (SINGER_LIBRARY).",
            )
        line = first_line(err)
        return SourceError(f"Cannot fetch {url}: {line}", hint=hint_for(line))


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
