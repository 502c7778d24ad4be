"""The address policy for every connection singer's downloads make, enforced at the socket.

Checking the URL a user gives is not enough: yt-dlp follows redirects, HLS segments and a page's ``<audio src>``,
urllib follows redirects, and a host name can resolve to a public address when checked and to an internal one a
moment later (DNS rebinding). So the policy is applied where a connection is made::

    with guarded(settings, url):
        ...  # any HTTP client, any number of hops

Inside ``guarded``, in the current thread (and in threads it starts), every ``socket.getaddrinfo`` result and
every ``socket.socket.connect`` / ``connect_ex`` address is checked against the :class:`Policy`; a host name given
straight to ``connect`` is resolved once here and the socket connected to the checked address. Starting programs
(ffmpeg, say, which would connect on its own) is refused there too. A refused connection raises
:class:`AddressRefused` (an ``OSError``, so HTTP clients give up the way they do for a dead host) and is recorded;
leaving the block after any refusal raises a :class:`~singer.errors.SourceError` that names the URL, the host and
the setting that would allow it, whatever the client made of the refusal (a retry, a skipped fragment, a message).

Threads that are not inside ``guarded`` (the Redis broker, the app's own loopback calls) are untouched. The hooks
are installed once per process, the first time ``guarded`` is entered.

The policy: only public addresses. Loopback, private, link-local, multicast, reserved, unspecified and other
non-global addresses are refused; IPv6 forms that carry an IPv4 address (IPv4-mapped and -compatible, 6to4,
NAT64, Teredo) are judged by the IPv4 addresses they carry. ``SINGER_ALLOW_PRIVATE_URLS=1`` allows everything;
``SINGER_URL_ALLOW`` (``settings.url_allow``) allows named hosts and networks (see :func:`parse_allow`).
"""

from __future__ import annotations

import _socket
import ipaddress
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .errors import SourceError, UsageError

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


# ---- the guard -------------------------------------------------------------------------------------------------


class AddressRefused(OSError):
    """A connection the policy refused. An ``OSError`` so HTTP clients treat it as an unreachable address."""

    def __init__(self, host: str, ip: str, port: int, problem: str):
        self.host, self.ip, self.port, self.problem = host, ip, port, problem
        where = f"'{host}' ({ip} port {port})" if host and host != ip else f"{ip} port {port}"
        super().__init__(f"Connection to {where} {REFUSAL_MARK}: {problem}")

    def __reduce__(self):  # picklable, like any exception a worker may hand on
        return type(self), (self.host, self.ip, self.port, self.problem)


class ProgramRefused(PermissionError):
    """A guarded thread tried to start a program (which could connect anywhere without the guard seeing it)."""


@dataclass
class Guard:
    """One ``guarded`` block: its policy, the addresses allowed by host name so far, and the refusals."""

    policy: Policy
    url: str = ""
    refusals: list[AddressRefused] = field(default_factory=list)
    granted: set[tuple[str, int | None]] = field(default_factory=set)

    def vet(self, host: str | None, infos: list) -> list:
        """Check getaddrinfo results for ``host``; an allow-listed host name grants the addresses it resolved to."""
        for info in infos:
            family, sockaddr = info[0], info[4]
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip, port = sockaddr[0], int(sockaddr[1])
            entry_port = self.policy.allow.host_port(host, port) if host else False
            if entry_port is not False:
                self.granted.add((_bare(ip), entry_port))
            else:
                self.check(host or ip, ip, port)
        return infos

    def check(self, host: str, ip: str, port: int) -> None:
        """Raise (and record) :class:`AddressRefused` unless a connection to ``ip``:``port`` is allowed."""
        bare = _bare(ip)
        if (bare, port) in self.granted or (bare, None) in self.granted:
            return
        problem = self.policy.problem(ipaddress.ip_address(bare), port)
        if problem:
            refusal = AddressRefused(host, bare, port, problem)
            self.refusals.append(refusal)
            raise refusal

    def error(self) -> SourceError:
        """The first refusal as the error a user sees."""
        r = self.refusals[0]
        what = f"Refusing to fetch {self.url}: it" if self.url else "Refusing a download: it"
        via = f"'{r.host}' ({r.ip}, port {r.port})" if r.host and r.host != r.ip else f"{r.ip} port {r.port}"
        return SourceError(
            f"{what} led to a connection to {via}, {r.problem} ({REFUSAL_MARK})",
            hint=allow_hint(r.host or r.ip, r.port) + ".",
        )


def _bare(ip: str) -> str:
    return str(ipaddress.ip_address(ip.split("%", 1)[0]))


_local = threading.local()
_install_lock = threading.Lock()
_connect = _socket.socket.connect
_connect_ex = _socket.socket.connect_ex
_thread_start = threading.Thread.start
_execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]


def current() -> Guard | None:
    """The guard of the current thread, if it is inside ``guarded``."""
    return getattr(_local, "guard", None)


def _system_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - socket's own names
    """The system resolver (as ``socket.getaddrinfo``, without the guard); tests replace it to fake DNS."""
    out = []
    for af, kind, pr, canon, sa in _socket.getaddrinfo(host, port, family, type, proto, flags):
        out.append((_enum(af, socket.AddressFamily), _enum(kind, socket.SocketKind), pr, canon, sa))
    return out


def _enum(value: int, kind: Any) -> Any:
    try:
        return kind(value)
    except ValueError:
        return value


def _guarded_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
    infos = _system_getaddrinfo(host, port, family, type, proto, flags)
    guard = current()
    if guard is None:
        return infos
    name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    return guard.vet(name, infos)


def _pin(sock: socket.socket, address: Any) -> Any:
    """The checked address to connect ``sock`` to; a host name is resolved once, here, and pinned."""
    guard = current()
    if guard is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return address
    host, port = address[0], int(address[1])
    host = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:  # a name: resolve it once and connect to what was checked
        infos = guard.vet(host, _system_getaddrinfo(host, port, sock.family, sock.type))
        if not infos:
            raise socket.gaierror(socket.EAI_NONAME, f"No address for {host}") from None
        sockaddr = infos[0][4]
        guard.check(host, sockaddr[0], port)
        return sockaddr
    guard.check(host, host, port)
    return address


def _guarded_connect(self, address):
    return _connect(self, _pin(self, address))


def _guarded_connect_ex(self, address):
    return _connect_ex(self, _pin(self, address))


def _guarded_start(self, *args, **kwargs):
    guard = current()
    if guard is not None:  # a thread started inside the guard stays inside it
        run = self.run

        def run_guarded() -> None:
            _local.guard = guard
            try:
                run()
            finally:
                _local.guard = None

        self.run = run_guarded
    return _thread_start(self, *args, **kwargs)


def _guarded_execute_child(self, args, *rest, **kwargs):
    if current() is not None:
        program = args if isinstance(args, (str, bytes)) else (list(args) or ["?"])[0]
        raise ProgramRefused(
            f"Starting '{os.fsdecode(program)}' during a guarded download is {REFUSAL_MARK}: "
            "a program would connect where the guard cannot check"
        )
    return _execute_child(self, args, *rest, **kwargs)


def _stock_getaddrinfo(fn: Any) -> bool:
    return getattr(fn, "__module__", None) == "socket" and getattr(fn, "__name__", None) == "getaddrinfo"


def install() -> None:
    """Wrap the resolver, socket connects, thread starts and program starts, once; again if the stock function was
    put back. A replacement someone else made (a test's fake resolver) is left alone: the connect check still holds.
    The wrappers act only in threads inside ``guarded``."""
    with _install_lock:
        if _stock_getaddrinfo(socket.getaddrinfo):
            socket.getaddrinfo = _guarded_getaddrinfo
        for owner, name, stock, wrapper in (
            (socket.socket, "connect", _connect, _guarded_connect),
            (socket.socket, "connect_ex", _connect_ex, _guarded_connect_ex),
            (threading.Thread, "start", _thread_start, _guarded_start),
            (subprocess.Popen, "_execute_child", _execute_child, _guarded_execute_child),
        ):
            if getattr(owner, name) is stock:
                setattr(owner, name, wrapper)


@contextmanager
def guarded(policy: Any, url: str = "") -> Iterator[Guard]:
    """Apply the policy of ``policy`` (a :class:`Policy`, settings, or a bool, see :meth:`Policy.of`) to every
    connection the current thread makes inside the block. If any was refused, leaving the block raises the
    refusal as a :class:`SourceError` about ``url``, replacing whatever the HTTP client raised or returned."""
    install()
    guard = Guard(Policy.of(policy), url)
    outer = current()
    _local.guard = guard
    try:
        yield guard
    except Exception:
        if guard.refusals:
            raise guard.error() from None
        raise
    finally:
        _local.guard = outer
    if guard.refusals:
        raise guard.error()
