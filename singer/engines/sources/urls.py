"""URL recognition and the URL policy for song sources.

Only ``http(s)`` links are fetched. Hosts that resolve to loopback, private, link-local or otherwise non-public
addresses are refused unless ``settings.allow_private_urls`` (``SINGER_ALLOW_PRIVATE_URLS=1``) is set, so a
server running singer cannot be pointed at its own network. Every address a host name resolves to is checked.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from ...errors import NetworkUnavailable, SourceError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# "youtu.be/abc", "www.example.com/page": a dotted host name with a TLD, then a path; no spaces.
_BARE_HOST = re.compile(r"^(?:www\.)?[\w\-]+(?:\.[\w\-]+)*\.[A-Za-z]{2,}(?::\d+)?/\S*$")

_SETTING_HINT = "set SINGER_ALLOW_PRIVATE_URLS=1 (settings.allow_private_urls) to allow hosts on your own network"


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


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    blocked = (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )
    return not blocked


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
    return [info[4][0] for info in infos]


def check_url(url: str, allow_private: bool = False) -> str:
    """Apply the URL policy to ``url``; return it unchanged or raise :class:`SourceError`.

    Raises :class:`NetworkUnavailable` when the host name cannot be resolved.
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
    if allow_private:
        return url
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0])
        addresses = [str(literal)]
    except ValueError:
        addresses = _addresses(host, port or (443 if scheme == "https" else 80), url)
    for addr in addresses:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
        if not _is_public(ip):
            raise SourceError(
                f"Refusing to fetch {url}: host '{host}' is a loopback/private/link-local address ({ip})",
                hint=_SETTING_HINT + ".",
            )
    return url
