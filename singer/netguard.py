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

The policy itself (public addresses only, the allow-list) is :mod:`singer.netpolicy`.
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
from typing import Any

from .errors import SourceError
from .netpolicy import REFUSAL_MARK, Policy, allow_hint


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
