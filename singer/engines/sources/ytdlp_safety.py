"""What keeps a yt-dlp download inside the URL policy and its limits.

:data:`SAFE_DOWNLOAD` keeps yt-dlp in this thread and this process (one fragment at a time, its native HLS/DASH
downloaders, no external downloader, no ffmpeg fix-ups, only formats served over http(s)), so
:func:`singer.netguard.guarded` sees every connection it makes. :func:`check_proxy` refuses a proxy the allow-list
does not name. :class:`DownloadCaps` stops a download by what arrives (SINGER_MAX_DOWNLOAD_MB) and by time
(SINGER_DOWNLOAD_TIMEOUT), not by what the server announces.
"""

from __future__ import annotations

import ipaddress
import time
import urllib.parse
import urllib.request
from typing import Any

from ...config import Settings
from ...errors import SourceError
from ...netpolicy import REFUSAL_MARK, Policy
from ..base import Progress

BYTES_PER_MB = 1_000_000
DEFAULT_HTTP_PORT = 80
# progress of a download: looked up, then the bytes (a share of the bar), then finished
LOOKED_UP, DOWNLOAD_SHARE, FINISHED = 0.05, 0.9, 0.95
# protocols yt-dlp downloads itself over http(s); rtmp, rtsp, mms, f4m, websockets... are never chosen
_HTTP_PROTOCOLS = "protocol~='^(https?|m3u8(_native)?|http_dash_segments)$'"
#: options that keep a download in this thread and this process, where the URL policy sees every connection;
#: applied after any extra parameters
SAFE_DOWNLOAD: dict[str, Any] = {
    "format": f"bestaudio[{_HTTP_PROTOCOLS}]/best[{_HTTP_PROTOCOLS}]",
    "concurrent_fragment_downloads": 1,
    "hls_prefer_native": True,
    "external_downloader": {"default": "native"},
    "fixup": "never",
    "postprocessors": [],
    "skip_unavailable_fragments": False,
    "enable_file_urls": False,
}


class DownloadCaps:
    """The size and time limits of one download, checked on each of yt-dlp's progress reports (:meth:`hook`),
    which also reports progress under the title found (``title``, filled in once the page is read)."""

    def __init__(self, settings: Settings, url: str, progress: Progress):
        self.url = url
        self.title = url
        self.progress = progress
        self.cap = int(float(settings.max_download_mb) * BYTES_PER_MB)
        self.timeout = float(settings.download_timeout)
        self.deadline = time.monotonic() + self.timeout
        self.why: tuple[str, str] | None = None  # (what happened, hint) once the download was stopped

    def hook(self, d: dict) -> None:
        from yt_dlp.utils import DownloadCancelled

        if d.get("status") == "finished":
            self.progress(FINISHED, f"Downloaded {self.title}")
        if d.get("status") != "downloading":
            return
        total = d.get("total_bytes") or d.get("total_bytes_estimate")
        done = d.get("downloaded_bytes") or 0
        if done > self.cap or (total and total > self.cap):  # counted, not announced: a stream without a length too
            self.why = (
                f"the download of {self.url} is over {self.cap / BYTES_PER_MB:.0f} MB",
                "Give a shorter song (the operator's limit is SINGER_MAX_DOWNLOAD_MB).",
            )
            raise DownloadCancelled(self.why[0])
        if time.monotonic() > self.deadline:
            self.why = (
                f"the download of {self.url} took over {self.timeout:.0f} s",
                "Try again later or give another link (SINGER_DOWNLOAD_TIMEOUT).",
            )
            raise DownloadCancelled(self.why[0])
        if total:
            frac = min(1.0, done / total)
            self.progress(LOOKED_UP + DOWNLOAD_SHARE * frac, f"Downloading {self.title}: {frac:.0%}")
        else:
            self.progress(LOOKED_UP, f"Downloading {self.title}: {done / BYTES_PER_MB:.1f} MB")

    def stopped(self) -> SourceError | None:
        """The error to raise when a limit stopped the download (yt-dlp's own error says less)."""
        if self.why is None:
            return None
        what, hint = self.why
        return SourceError(what[0].upper() + what[1:] + "; it was stopped.", hint=hint)


def check_proxy(settings: Settings, opts: dict[str, Any], url: str) -> None:
    """Refuse a download through a proxy the allow-list does not name: the proxy, not singer, resolves and
    connects to every address behind it, so only one the operator trusts may be used."""
    policy = Policy.of(settings)
    if policy.allow_private:
        return
    if opts.get("proxy") is not None:
        proxies = [opts["proxy"]] if opts["proxy"] else []
    else:  # yt-dlp falls back to the *_proxy environment variables
        proxies = [v for k, v in urllib.request.getproxies().items() if k in ("http", "https", "all") and v]
    for proxy in proxies:
        try:
            parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
            host, port = parts.hostname or "", parts.port or DEFAULT_HTTP_PORT
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
