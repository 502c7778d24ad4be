"""singer.netguard: which addresses are public (IPv6 transition forms judged by the IPv4 they carry), the
SINGER_URL_ALLOW allow-list, the door check (check_url) and the socket-level guard on real loopback sockets."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from singer import netguard
from singer.config import Settings
from singer.engines.sources import urls
from singer.engines.sources.ytdlp_errors import is_network_error
from singer.errors import NetworkUnavailable, SourceError, UsageError
from singer.netguard import AddressRefused, guarded
from singer.netpolicy import Policy, address_problem, parse_allow

pytestmark = pytest.mark.timeout(60)


# ---- which addresses are public ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # shared address space (carrier-grade NAT)
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("ff02::1", False),
        # IPv4-mapped ::ffff:a.b.c.d
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::ffff:8.8.8.8", True),
        # IPv4-compatible ::a.b.c.d (deprecated)
        ("::127.0.0.1", False),
        ("::10.0.0.1", False),
        ("::8.8.8.8", True),
        # 6to4 2002:AABB:CCDD::/48
        ("2002:7f00:1::1", False),
        ("2002:a00:1::", False),
        ("2002:a9fe:a9fe::1", False),
        ("2002:808:808::1", True),
        # NAT64, well-known prefix 64:ff9b::/96
        ("64:ff9b::7f00:1", False),
        ("64:ff9b::a00:1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("64:ff9b::808:808", True),
        # NAT64, local-use prefix 64:ff9b:1::/48: the IPv4's place depends on the prefix length, every one must be public
        ("64:ff9b:1::7f00:1", False),
        ("64:ff9b:1::808:808", False),
        ("64:ff9b:1:808:8:800::", False),  # 8.8.8.8 at /48, but 0.0.0.0 at /96
        # Teredo 2001::/32: server and (obfuscated) client address
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # client 192.0.2.45 (documentation range)
        ("2001:0:808:808::f7ff:fffe", True),  # server 8.8.8.8, client ~0xf7fffffe = 8.0.0.1
        ("2001:0:808:808::80ff:fffe", False),  # client 127.0.0.1
        ("2001:0:7f00:1::f7f7:f7f7", False),  # server 127.0.0.1
    ],
)
def test_transition_forms_are_judged_by_their_ipv4(address: str, public: bool) -> None:
    problem = address_problem(address)
    assert (problem is None) == public, problem
    if not public and ":" in address and not address.startswith(("::1", "fe80", "fd00", "ff02")) and address != "::":
        assert "form of" in problem


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:127.0.0.1]/x",
        "http://[::127.0.0.1]/x",
        "http://[2002:7f00:1::1]/x",
        "http://[64:ff9b::7f00:1]/x",
        "http://[64:ff9b:1::a00:1]/x",
        "http://[2001:0:808:808::80ff:fffe]/x",
    ],
)
def test_door_refuses_transition_forms(url: str) -> None:
    with pytest.raises(SourceError) as e:
        urls.check_url(url, allow_private=False, allow="")
    assert url in e.value.user_message and "form of" in e.value.user_message
    assert "SINGER_URL_ALLOW" in e.value.hint and "SINGER_ALLOW_PRIVATE_URLS" in e.value.hint


# ---- the allow-list ----------------------------------------------------------------------------------------


def test_parse_allow() -> None:
    al = parse_allow(" music.lan:8080 , 10.0.0.0/24,Files.Example., 192.168.1.5:80, [fd00::7]:443, fd01::/16 ")
    assert al.hosts == (("music.lan", 8080), ("files.example", None))
    assert al.host_port("MUSIC.lan.", 8080) == 8080 and al.host_port("music.lan", 80) is False
    assert al.host_port("files.example", 1234) is None
    import ipaddress as ip

    assert al.has_address(ip.ip_address("10.0.0.200"), 1) and not al.has_address(ip.ip_address("10.0.1.1"), 1)
    assert al.has_address(ip.ip_address("192.168.1.5"), 80) and not al.has_address(ip.ip_address("192.168.1.5"), 81)
    assert al.has_address(ip.ip_address("::ffff:192.168.1.5"), 80)
    assert al.has_address(ip.ip_address("fd00::7"), 443) and al.has_address(ip.ip_address("fd01::1"), 5)
    assert parse_allow("") == parse_allow(" , ")


@pytest.mark.parametrize(
    "bad", ["music.lan:http", "10.0.0.0/33", "host:0", "host:70000", "[fd00::1", "a b", "[fd00::1]x"]
)
def test_parse_allow_names_the_bad_entry(bad: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_allow(bad)
    assert bad in e.value.user_message and "SINGER_URL_ALLOW" in e.value.user_message


def test_policy_of_settings_bool_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    s = Settings(home=tmp_path, url_allow="10.0.0.0/8")
    assert Policy.of(s).allow.networks and not Policy.of(s).allow_private
    assert Policy.of(s.model_copy(update={"allow_private_urls": True})).allow_private
    monkeypatch.setenv("SINGER_URL_ALLOW", "music.lan")
    assert Policy.of(False).allow.hosts == (("music.lan", None),)
    assert Settings(home=tmp_path).url_allow == "music.lan"
    assert Policy.of(True, allow="").allow.hosts == ()


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names in the returned dict resolve to their address (through the guard's resolver and socket's)."""
    netguard.install()
    table: dict[str, str] = {}
    real = netguard._system_getaddrinfo

    def fake(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        name = host.decode() if isinstance(host, bytes) else host
        if name in table:
            af = socket.AF_INET6 if ":" in table[name] else socket.AF_INET
            sa = (table[name], int(port or 0)) + ((0, 0) if af == socket.AF_INET6 else ())
            return [(af, socket.SOCK_STREAM, 6, "", sa)]
        return real(host, port, family, type, proto, flags)

    monkeypatch.setattr(netguard, "_system_getaddrinfo", fake)
    return table


def test_door_with_allow_list(fake_dns: dict[str, str]) -> None:
    fake_dns.update({"music.lan": "10.0.0.5", "nas.lan": "192.168.1.9"})
    allow = "music.lan:8080,192.168.1.0/24:445"
    assert urls.check_url("http://music.lan:8080/a.mp3", allow=allow)
    assert urls.check_url("http://10.0.0.5/a.mp3", allow="10.0.0.0/24")
    assert urls.check_url("http://nas.lan:445/a.mp3", allow=allow)
    for url in (
        "http://music.lan/a.mp3",
        "http://10.0.0.5:8080/a.mp3",
        "http://nas.lan/a.mp3",
        "http://127.0.0.1:8080/a.mp3",
    ):
        with pytest.raises(SourceError) as e:
            urls.check_url(url, allow=allow)
        assert url in e.value.user_message
    with pytest.raises(UsageError):
        urls.check_url("http://music.lan/", allow="music.lan:x")


# ---- the guard on real sockets -----------------------------------------------------------------------------


class Listener:
    """A loopback TCP port that counts accepted connections."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.bind((host, port))
        self.sock.listen()
        self.host, self.port = host, self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def a() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture
def b() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


def _connect(host: str, port: int, ex: bool = False) -> int | None:
    with socket.socket() as s:
        s.settimeout(5)
        return s.connect_ex((host, port)) if ex else s.connect((host, port))


def _settle() -> None:
    import time

    time.sleep(0.1)  # let the accept threads count


def test_guard_allows_listed_and_refuses_the_rest(a: Listener, b: Listener) -> None:
    with pytest.raises(SourceError) as e, guarded(Policy.of(False, allow=f"127.0.0.1:{a.port}"), "http://x/") as g:
        _connect("127.0.0.1", a.port)
        with pytest.raises(AddressRefused):
            _connect("127.0.0.1", b.port)
        with pytest.raises(AddressRefused):
            _connect("127.0.0.1", b.port, ex=True)
        with pytest.raises(AddressRefused):
            socket.create_connection(("127.0.0.1", b.port), timeout=5)
    assert len(g.refusals) == 3 and "http://x/" in e.value.user_message and str(b.port) in e.value.user_message
    _settle()
    assert a.accepted == 1 and b.accepted == 0


def test_leaving_the_guard_after_a_refusal_raises_even_if_the_client_swallowed_it(b: Listener) -> None:
    with pytest.raises(SourceError, match="loopback"), guarded(False):
        try:
            _connect("127.0.0.1", b.port)
        except OSError:
            pass  # as an HTTP client's retry loop or a skipped fragment would
    assert b.accepted == 0


def test_unguarded_threads_are_untouched(b: Listener) -> None:
    done: list[str] = []

    def elsewhere() -> None:  # started before the guard: not inside it
        gate.wait(5)
        _connect("127.0.0.1", b.port)
        done.append("ok")

    gate = threading.Event()
    t = threading.Thread(target=elsewhere)
    t.start()
    with guarded(False):
        gate.set()
        t.join(10)
    _connect("127.0.0.1", b.port)  # and after the guard, this thread is free again
    _settle()
    assert done == ["ok"] and b.accepted == 2


def test_threads_started_inside_the_guard_stay_inside(b: Listener) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            _connect("127.0.0.1", b.port)
        except OSError as e:
            errors.append(e)

    with pytest.raises(SourceError), guarded(False):
        t = threading.Thread(target=worker)
        t.start()
        t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], AddressRefused) and b.accepted == 0


def test_programs_are_not_started_inside_the_guard() -> None:
    with guarded(True):  # even when every address is allowed: a program's connections cannot be seen
        with pytest.raises(netguard.ProgramRefused):
            subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert subprocess.run([sys.executable, "-c", "pass"]).returncode == 0


def test_a_name_given_to_connect_is_resolved_once_and_pinned(
    a: Listener, fake_dns: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """socket.connect(("name", port)) resolves in C, out of the guard's sight; the guard resolves it itself and
    connects to the address it checked."""
    fake_dns["music.lan"] = "127.0.0.1"
    seen: list[tuple] = []
    real_connect, real_connect_ex = netguard._connect, netguard._connect_ex

    def spy(real):
        def connect(sock, address):
            seen.append(address)
            return real(sock, address)

        return connect

    policy = Policy.of(False, allow=f"music.lan:{a.port}")
    monkeypatch.setattr(netguard, "_connect", spy(real_connect))
    monkeypatch.setattr(netguard, "_connect_ex", spy(real_connect_ex))
    with guarded(policy):
        _connect("music.lan", a.port)
    fake_dns["music.lan"] = "127.0.0.2"  # rebound: the allow-list names the name, so this is still allowed...
    with guarded(policy):
        _connect("music.lan", a.port, ex=True)  # (nothing listens there: connect_ex answers an errno)
    fake_dns["evil.test"] = "127.0.0.1"  # ...but another name leading to the same place is not
    with pytest.raises(SourceError, match="evil.test"), guarded(policy):
        _connect("evil.test", a.port)
    assert seen == [("127.0.0.1", a.port), ("127.0.0.2", a.port)]


def test_host_entry_allows_what_the_name_resolved_to_on_its_port(
    a: Listener, b: Listener, fake_dns: dict[str, str]
) -> None:
    fake_dns["music.lan"] = "127.0.0.1"
    policy = Policy.of(False, allow=f"music.lan:{a.port}")
    with guarded(policy):
        socket.create_connection(("music.lan", a.port), timeout=5).close()
    with pytest.raises(SourceError), guarded(policy):
        socket.create_connection(("music.lan", b.port), timeout=5)  # the entry names a.port only
    with pytest.raises(SourceError), guarded(policy):
        socket.create_connection(("127.0.0.1", a.port), timeout=5)  # by address, without the name: not listed
    _settle()
    assert a.accepted == 1 and b.accepted == 0


def test_getaddrinfo_results_are_checked(fake_dns: dict[str, str]) -> None:
    fake_dns["rebind.test"] = "10.0.0.1"
    with pytest.raises(SourceError, match="private"), guarded(False):
        socket.getaddrinfo("rebind.test", 80)
    assert socket.getaddrinfo("rebind.test", 80)  # unguarded: plain resolution


def test_everything_allowed_when_private_urls_are(b: Listener) -> None:
    with guarded(Settings(allow_private_urls=True)):
        _connect("127.0.0.1", b.port)
    _settle()
    assert b.accepted == 1


def test_a_refusal_is_not_a_network_error() -> None:
    import urllib.error

    refusal = AddressRefused("x.test", "10.0.0.1", 80, "a private address")
    wrapped = urllib.error.URLError(refusal)
    assert not is_network_error(wrapped)
    assert not is_network_error(Exception(f"Unable to download webpage: <urlopen error {refusal}>"))
    assert is_network_error(urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")))


def test_unresolvable_name_is_still_network_unavailable(fake_dns: dict[str, str]) -> None:
    with pytest.raises(NetworkUnavailable):
        urls.check_url("https://nowhere.invalid/x")
