"""One guarded, resumable, size-capped HTTP download: :func:`download`, used by the model store and by voices.

The file goes to ``part``; a ``part`` already there is continued with a Range request (a server that ignores the
range, or answers another one, starts it again). The sha256 of the whole file is computed while it arrives. Every
connection (redirects and retries included) is held to the URL policy (:func:`singer.netguard.guarded`) and every
redirect target is checked by :func:`singer.engines.sources.urls.check_url` before it is followed, so a refusal
names the URL. ``max_bytes`` cuts a transfer off as soon as the bytes that arrived (or the length the server
announces) pass it; ``resumes`` lets one call continue a transfer that broke off that many times.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError

from ..engines.sources.urls import check_url
from ..errors import InputError, NetworkUnavailable, SingerError, SourceError
from ..files import human_bytes, sha256_file
from ..netguard import guarded
from ..progress import Hooks, NullHooks

CHUNK = 1 << 18


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Applies the URL check to every redirect target, so a refused redirect names its URL (the guard around the
    download would refuse its connection anyway)."""

    def __init__(self, check: Callable[[str], str]):
        self.check = check

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.check(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Broken(Exception):
    """The transfer broke off; ``why`` in words."""


def download(
    settings: Any,
    url: str,
    part: Path,
    *,
    label: str,
    offline: Callable[[str], SingerError],
    hooks: Hooks | None = None,
    size: int = 0,
    max_bytes: int | None = None,
    resumes: int = 0,
    agent: str = "singer",
) -> str:
    """Download ``url`` into ``part`` (continuing what is there); return the whole file's sha256.

    ``label`` names the file in messages and is the progress step; ``offline(why)`` builds the error for a network
    failure (its hint says what to copy where); ``size`` is the expected size when known (for progress).
    """

    def check(u: str) -> str:
        try:
            return check_url(u, settings)
        except NetworkUnavailable as e:
            raise offline(e.user_message) from None

    check(url)
    with guarded(settings, url):
        for attempt in range(resumes + 1):
            try:
                return _transfer(settings, url, part, label, check, hooks or NullHooks(), size, max_bytes, agent)
            except _Broken as e:
                if attempt == resumes:
                    raise offline(str(e)) from None
    raise AssertionError("unreachable")


def _too_big(label: str, url: str, max_bytes: int, what: str) -> InputError:
    return InputError(
        f"{label} from {url} {what}; at most {human_bytes(max_bytes)} is allowed.",
        hint="Ask the operator to raise the limit (SINGER_MAX_VOICE_MB) if the file is what you expect.",
    )


def _open(opener, url: str, part: Path, label: str, check, timeout: float, agent: str):
    """The response for ``url`` from where ``part`` ends; None when ``part`` is already the whole file."""
    for _ in range(3):
        offset = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": agent, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            resp = opener.open(urllib.request.Request(check(url), headers=headers), timeout=timeout)
        except HTTPError as e:
            if e.code == 416 and offset:
                if e.headers.get("Content-Range", "") == f"bytes */{offset}":  # the .part is already whole
                    return None, offset
                part.unlink()  # longer than the file: start again
                continue
            raise SourceError(
                f"Download of {label} failed: the server answered HTTP {e.code} {e.reason} for {url}",
                hint="Check the URL; the file may have moved.",
            ) from None
        except (URLError, OSError, http.client.HTTPException) as e:
            raise _Broken(str(getattr(e, "reason", e))) from None
        m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
        resuming = resp.status == 206 and offset > 0 and m is not None and int(m.group(1)) == offset
        if resp.status == 206 and not resuming:  # a range we did not ask for: start again without one
            resp.close()
            part.unlink(missing_ok=True)
            continue
        return resp, offset if resuming else 0
    raise SourceError(
        f"Download of {label} failed: the server will not continue {part.name}",
        hint=f"Delete {part.name} and try again.",
    )


def _transfer(settings, url, part, label, check, hooks, size, max_bytes, agent) -> str:
    opener = urllib.request.build_opener(_CheckedRedirects(check))
    part.parent.mkdir(parents=True, exist_ok=True)
    resp, offset = _open(opener, url, part, label, check, settings.network_timeout, agent)
    if resp is None:
        return sha256_file(part)
    with resp:
        h = hashlib.sha256()
        if offset:
            with open(part, "rb") as old:
                while chunk := old.read(1 << 20):
                    h.update(chunk)
        length = resp.headers.get("Content-Length", "")
        done, total = offset, offset + int(length) if length.isdigit() else size
        if max_bytes is not None and total > max_bytes:
            part.unlink(missing_ok=True)
            raise _too_big(label, url, max_bytes, f"is {human_bytes(total)}")
        try:
            with open(part, "ab" if offset else "wb") as out:
                while chunk := resp.read(CHUNK):
                    done += len(chunk)
                    if max_bytes is not None and done > max_bytes:
                        raise _too_big(label, url, max_bytes, "is larger than announced")
                    out.write(chunk)
                    h.update(chunk)
                    hooks.on_step_progress(
                        label,
                        min(done / total, 1.0) if total else 0.0,
                        f"{human_bytes(done)} / {human_bytes(total)}" if total else human_bytes(done),
                    )
        except InputError:
            part.unlink(missing_ok=True)
            raise
        except (OSError, http.client.HTTPException) as e:
            raise _Broken(f"the transfer broke off at {done} bytes ({e})") from None
        if total and done != total:
            raise _Broken(f"the transfer broke off at {done} of {total} bytes")
        return h.hexdigest()
