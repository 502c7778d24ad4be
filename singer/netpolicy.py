"""Which addresses singer's downloads may connect to (enforced at the socket by :mod:`singer.netguard`).

The policy: only public addresses. Loopback, private, link-local, multicast, reserved, unspecified and other
non-global addresses are refused; IPv6 forms that carry an IPv4 address (IPv4-mapped and -compatible, 6to4,
NAT64, Teredo) are judged by the IPv4 addresses they carry. ``SINGER_ALLOW_PRIVATE_URLS=1`` allows everything;
``SINGER_URL_ALLOW`` (``settings.url_allow``) allows named hosts and networks (see :func:`parse_allow`).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .errors import UsageError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: words every refusal message carries, so a refusal is recognised even after a client turned it into text
REFUSAL_MARK = "refused by singer's URL policy"
ALLOW_ENV = "SINGER_URL_ALLOW"
PRIVATE_ENV = "SINGER_ALLOW_PRIVATE_URLS"

_PLAIN_CHECKS = (
    ("is_loopback", "loopback"),
    ("is_unspecified", "unspecified"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_private", "private"),
    ("is_reserved", "reserved"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
# RFC 6052: where the IPv4 address sits in a NAT64 address, for each prefix length a /48 local prefix allows
_NAT64_LAYOUTS = {
    48: (slice(6, 8), slice(9, 11)),
    56: (slice(7, 8), slice(9, 12)),
    64: (slice(9, 13),),
    96: (slice(12, 16),),
}


# ---- which addresses are public ------------------------------------------------------------------------------------


# special-purpose ranges refused whatever this Python's ipaddress tables say (they differ between versions)
_SPECIAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "::/8",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)


def _plain_problem(ip: IPAddress) -> str | None:
    for attr, name in _PLAIN_CHECKS:
        if getattr(ip, attr):
            return f"{'an' if name[0] in 'aeiou' else 'a'} {name} address"
    if any(ip.version == net.version and ip in net for net in _SPECIAL):
        return "a special-purpose address"
    return None if ip.is_global else "a non-global address"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]] | None:
    """The IPv4 addresses an IPv6 transition address carries, with the form's name; None for other addresses."""
    n = int(ip)
    if ip.ipv4_mapped is not None:
        return [("IPv4-mapped", ip.ipv4_mapped)]
    if n >> 32 == 0:
        return [("IPv4-compatible", ipaddress.IPv4Address(n & 0xFFFFFFFF))]
    if ip.sixtofour is not None:
        return [("6to4", ip.sixtofour)]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [("Teredo server", server), ("Teredo client", client)]
    if ip in _NAT64:
        return [("NAT64", ipaddress.IPv4Address(n & 0xFFFFFFFF))]
    if ip in _NAT64_LOCAL:  # the operator's prefix length is unknown: every possible position must be public
        packed = ip.packed
        return [
            (f"NAT64 (local /{bits})", ipaddress.IPv4Address(b"".join(packed[s] for s in layout)))
            for bits, layout in _NAT64_LAYOUTS.items()
        ]
    return None


def address_problem(ip: IPAddress | str) -> str | None:
    """Why ``ip`` is not a public address ("a loopback address", "the 6to4 form of 127.0.0.1, a loopback
    address"...); None when it is public."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and not (ip.is_loopback or ip.is_unspecified):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            for form, v4 in embedded:
                problem = _plain_problem(v4)
                if problem:
                    return f"the {form} form of {v4}, {problem}"
            return None
    return _plain_problem(ip)


# ---- the allow-list --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowList:
    """Operator exceptions: host names (by name, as resolved in the guarded thread) and networks, each with an
    optional port (None: any port)."""

    hosts: tuple[tuple[str, int | None], ...] = ()
    networks: tuple[tuple[IPNetwork, int | None], ...] = ()

    def host_port(self, host: str, port: int) -> int | None | bool:
        """The entry's port (None: any) when ``host`` on ``port`` is listed by name; False when it is not."""
        name = _host_key(host)
        for h, p in self.hosts:
            if h == name and (p is None or p == port):
                return p
        return False

    def has_address(self, ip: IPAddress, port: int) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net and (p is None or p == port) for net, p in self.networks)


def _host_key(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise _bad_entry(entry, f"'{text}' is not a port")
    return int(text)


def _bad_entry(entry: str, why: str) -> UsageError:
    return UsageError(
        f"{ALLOW_ENV} entry '{entry}' is invalid: {why}",
        hint=f"{ALLOW_ENV} (settings.url_allow) takes comma-separated host[:port], IP[:port], "
        "[IPv6]:port or CIDR entries, e.g. music.lan:8080,10.0.0.0/24.",
    )


@lru_cache(maxsize=32)
def parse_allow(text: str) -> AllowList:
    """Parse ``SINGER_URL_ALLOW``: comma-separated ``host[:port]``, ``IP[:port]``, ``[IPv6][:port]`` or CIDR
    (``10.0.0.0/24``) entries. Raises :class:`UsageError` naming a bad entry."""
    hosts: list[tuple[str, int | None]] = []
    networks: list[tuple[IPNetwork, int | None]] = []
    for raw in (text or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        addr, port = entry, None
        if entry.startswith("["):  # [IPv6] or [IPv6]:port
            addr, sep, rest = entry[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise _bad_entry(entry, "an IPv6 address in brackets needs ']' (then ':port')")
            port = _port(rest[1:], entry) if rest else None
        elif entry.count(":") == 1:
            addr, text_port = entry.split(":")
            port = _port(text_port, entry)
        try:
            networks.append((ipaddress.ip_network(addr, strict=False), port))
            continue
        except ValueError:
            if "/" in addr or entry.count(":") > 1:
                raise _bad_entry(entry, "not an IP address or CIDR network") from None
        if not addr or any(c.isspace() or c in "/@?#[]" for c in addr):
            raise _bad_entry(entry, "not a host name")
        hosts.append((_host_key(addr), port))
    return AllowList(tuple(hosts), tuple(networks))


# ---- the policy ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """Public addresses only, unless ``allow_private`` (everything) or listed in ``allow``."""

    allow_private: bool = False
    allow: AllowList = field(default_factory=AllowList)

    @classmethod
    def of(cls, source: Any = False, allow: str | None = None) -> Policy:
        """The policy of a :class:`Policy`, a settings object (``allow_private_urls``, ``url_allow``), or a bool
        (``allow_private``; the allow-list then comes from ``allow`` or ``SINGER_URL_ALLOW`` in the environment)."""
        if isinstance(source, Policy):
            return source
        if hasattr(source, "allow_private_urls"):
            text = getattr(source, "url_allow", "") if allow is None else allow
            return cls(bool(source.allow_private_urls), parse_allow(text or ""))
        text = os.environ.get(ALLOW_ENV, "") if allow is None else allow
        return cls(bool(source), parse_allow(text))

    def problem(self, ip: IPAddress, port: int) -> str | None:
        """Why a connection to ``ip``:``port`` is refused, or None when it is allowed."""
        if self.allow_private or self.allow.has_address(ip, port):
            return None
        return address_problem(ip)


def allow_hint(host: str, port: int | None) -> str:
    """How to allow ``host`` (on ``port``): the allow-list entry to add, or the switch that allows everything."""
    shown = f"[{host}]" if ":" in host else host
    entry = f"{shown}:{port}" if port else shown
    return (
        f"Only public addresses are fetched. To allow this host add '{entry}' to {ALLOW_ENV} "
        f"(settings.url_allow: comma-separated host[:port] or CIDR entries); {PRIVATE_ENV}=1 "
        "(settings.allow_private_urls) allows hosts on your own network"
    )
