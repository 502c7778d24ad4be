"""URL recognition and the URL policy for song sources, checked at the door.

Only ``http(s)`` links are fetched. Hosts that resolve to loopback, private, link-local or otherwise non-public
addresses (IPv6 forms that carry an IPv4 address judged by that address) are refused unless
``settings.allow_private_urls`` (``SINGER_ALLOW_PRIVATE_URLS=1``) is set or the host is in ``settings.url_allow``
(``SINGER_URL_ALLOW``), so a server running singer cannot be pointed at its own network. Every address a host name
resolves to is checked. This is the early check with a clear message; :mod:`singer.netguard` applies the same
policy to every connection a download then makes (redirects, segments, embedded media, a name that resolves
differently the second time).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any
from urllib.parse import urlsplit

from ...errors import NetworkUnavailable, SourceError
from ...netpolicy import Policy, allow_hint

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# "youtu.be/abc", "www.example.com/page": a dotted host name with a TLD, then a path; no spaces.
_BARE_HOST = re.compile(r"^(?:www\.)?[\w\-]+(?:\.[\w\-]+)*\.[A-Za-z]{2,}(?::\d+)?/\S*\Z")


def looks_like_url(text: str) -> bool:
    """True for ``scheme://...`` strings and bare ``host.tld/path`` links (no spaces)."""
    text = text.strip()
    if not text or any(c.isspace() for c in text):
        return False
    return bool(_SCHEME.match(text) or _BARE_HOST.match(text) or text.lower().startswith("www."))


def normalize_url(text: str) -> str:
    """Strip whitespace and add ``https://`` to bare ``host/path`` links."""
    text = text.strip()
    return text if _SCHEME.match(text) else "https://" + text


def _addresses(host: str, port: int, url: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise NetworkUnavailable(
            f"Cannot resolve the host name '{host}' in {url}: the network is unreachable or the name does not exist",
            hint=f"Check the link and your connection ({e.strerror or e}). Text searches use the local "
            "library (SINGER_LIBRARY) when the network is down.",
        ) from None
    except (UnicodeError, OSError) as e:
        raise SourceError(f"Invalid host name '{host}' in {url}", hint=f"Check the link ({e}).") from None
    return [str(info[4][0]) for info in infos]


def check_url(url: str, allow_private: Any = False, allow: str | None = None) -> str:
    """Apply the URL policy to ``url``; return it unchanged or raise :class:`SourceError`.

    ``allow_private`` is the settings (``allow_private_urls`` and ``url_allow``), a
    :class:`~singer.netpolicy.Policy`, or a bool; with a bool the allow-list is ``allow`` or else
    ``SINGER_URL_ALLOW`` from the environment. Raises :class:`NetworkUnavailable` when the host name cannot be
    resolved.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise SourceError(f"Malformed URL: {url}", hint=f"Check the link ({e}).") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise SourceError(
            f"Unsupported URL scheme '{scheme}:' in {url}",
            hint="Only http:// and https:// links can be fetched; for a file on this machine give its path instead.",
        )
    host = parts.hostname
    if not host:
        raise SourceError(f"The URL has no host name: {url}", hint="Give a full link such as https://example.com/song.")
    policy = Policy.of(allow_private, allow)
    if policy.allow_private:
        return url
    port = port or (443 if scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host.split("%", 1)[0])]
    except ValueError:
        if policy.allow.host_port(host, port) is not False:  # listed by name: whatever it resolves to
            return url
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in _addresses(host, port, url)]
    for ip in addresses:
        problem = policy.problem(ip, port)
        if problem:
            raise SourceError(
                f"Refusing to fetch {url}: host '{host}' is {problem} ({ip}); loopback/private/link-local and "
                "other non-public addresses are refused",
                hint=allow_hint(host, parts.port) + ".",
            )
    return url
