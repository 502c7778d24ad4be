"""What a yt-dlp error means: unreachable network, a refusal by the URL policy, or a message for the user with a
hint that says what to try."""

from __future__ import annotations

import re
import socket
from typing import Any

from ...netguard import AddressRefused, ProgramRefused
from ...netpolicy import REFUSAL_MARK

_NETWORK_WORDS = re.compile(
    r"name resolution|name or service not known|nodename nor servname|failed to resolve|getaddrinfo"
    r"|connection refused|network is unreachable|no route to host|timed out|unable to connect to proxy"
    r"|connection reset|temporarily unavailable",
    re.IGNORECASE,
)


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
