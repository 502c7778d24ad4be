"""The door: what every request passes before any route reads a byte of its body.

A pure ASGI middleware (it sees the request before FastAPI parses a form or JSON body):

- **Key first.** Routes that need an API key answer 401 before the body is read, so a 200 MB upload without a
  key costs the server nothing. Failed key checks are counted per client address: past
  ``SINGER_AUTH_FAILURES_PER_MINUTE`` the address gets 429 with Retry-After, key or not, until it cools down.
  Routes that change voices answer 403 to a key that is not an operator key (SINGER_ADMIN_KEYS), also unread.
- **Size.** A body larger than its route allows is refused with 413: at once when Content-Length says so, and
  while streaming when it does not (chunked) or lies. Limits: uploads ``SINGER_MAX_UPLOAD_MB``, batches
  ``SINGER_MAX_BATCH_UPLOAD_MB``, everything else ``SINGER_MAX_BODY_MB``.
- **Time.** A body that stalls longer than ``SINGER_BODY_TIMEOUT`` between chunks is answered 408.
- **Headers.** A malformed ``Content-Length`` is a 400, not a 500 (``Last-Event-ID`` is checked by its route).

Refusals are the service's JSON error shape (``error``, ``message``, ``hint``).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import Settings
from .security import KeyRing

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

OPEN = ("/healthz", "/docs", "/redoc", "/openapi.json", "/favicon.ico")  # no key needed (and no body read)
MULTIPART_SLACK = 1 << 20  # form boundaries and the other fields beside an upload's bytes
MIN_BODY_RATE = 32_000  # bytes/s a body must average (a 25 MB voice note: 13 min at the least)


def changes_voices(method: str, path: str) -> bool:
    """The routes only operator keys (SINGER_ADMIN_KEYS) may call: add, upload, merge and remove voices."""
    path = path.rstrip("/")
    if method == "POST":
        return path in ("/v1/voices", "/v1/voices/upload", "/v1/voices/merge")
    return method == "DELETE" and path.startswith("/v1/voices/")


Refusal = tuple[int, bytes, dict[str, str]]


def _refusal(status: int, code: str, message: str, hint: str, headers: dict[str, str] | None = None) -> Refusal:
    return (*error_body(status, code, message, hint), headers or {})


class TooMuch(Exception):
    """The body went past its route's limit while streaming."""


class Stalled(Exception):
    """The body stopped arriving."""


class FailureThrottle:
    """Failed API-key checks per client address, in a sliding minute."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._seen: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, addr: str, now: float) -> list[float]:
        times = [t for t in self._seen.get(addr, ()) if now - t < 60.0]
        if times:
            self._seen[addr] = times
        else:
            self._seen.pop(addr, None)
        return times

    def blocked(self, addr: str) -> float:
        """Seconds ``addr`` must wait (0 when it may try)."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(addr, now)
            return 60.0 - (now - times[-self.per_minute]) if len(times) >= self.per_minute else 0.0

    def failed(self, addr: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 100_000:  # a flood of addresses: forget the oldest half rather than grow
                for k in list(self._seen)[: len(self._seen) // 2]:
                    del self._seen[k]
            self._seen.setdefault(addr, []).append(now)
            del self._seen[addr][: -self.per_minute]


def error_body(status: int, code: str, message: str, hint: str) -> tuple[int, bytes]:
    return status, json.dumps({"error": code, "message": message, "hint": hint}).encode()


async def respond(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware; see the module's docstring. ``app`` is the FastAPI app it protects."""

    def __init__(self, app: Any, settings: Settings, keys: KeyRing):
        self.app, self.settings, self.keys = app, settings, keys
        self.admins = KeyRing(settings.admin_keys)
        self.throttle = FailureThrottle(settings.auth_failures_per_minute)
        self.proxies = {p.strip() for p in settings.trusted_proxies.split(",") if p.strip()}
        self.busy: Counter = Counter()  # client address -> requests in flight (event streams included)

    def client(self, scope: Scope, headers: dict[str, str]) -> str:
        """The client's address: the peer's, or the last X-Forwarded-For entry when the peer is a trusted proxy."""
        peer = (scope.get("client") or ("?", 0))[0]
        if peer in self.proxies and headers.get("x-forwarded-for"):
            return headers["x-forwarded-for"].split(",")[-1].strip()[:64] or peer
        return peer

    def limit(self, method: str, path: str) -> int:
        """The largest body ``method path`` may send, bytes."""
        s = self.settings
        if method == "POST" and path == "/v1/conversions":
            return int(s.max_upload_mb * 1e6) + MULTIPART_SLACK
        if method == "POST" and path == "/v1/voices/upload":  # a model file and its index
            return 2 * int(s.max_voice_mb * 1e6) + MULTIPART_SLACK
        if method == "POST" and path == "/v1/batches":
            return int(s.max_batch_upload_mb * 1e6) + MULTIPART_SLACK
        return int(s.max_body_mb * 1e6)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers: dict[str, str] = {}
        for k, v in scope.get("headers", ()):
            name = k.decode("latin-1").lower()
            if name == "x-forwarded-for" and name in headers:  # several lines: one list, the proxy's entry last
                headers[name] += "," + v.decode("latin-1")
            else:
                headers.setdefault(name, v.decode("latin-1"))
        refusal = self._refuse(scope, headers)
        if refusal is not None:
            status, body, extra = refusal
            return await respond(send, status, body, extra)
        limit = self.limit(scope["method"], scope["path"])
        addr = self.client(scope, headers)
        if self.busy[addr] >= self.settings.max_requests_per_address:
            return await respond(
                send,
                *error_body(
                    429,
                    "too_many_requests",
                    "Too many requests at once from this address.",
                    "Wait for one to finish (close event streams you no longer read).",
                ),
                {"Retry-After": "5"},
            )
        length = headers.get("content-length")
        wrapped, state = self._metered(receive, limit, int(length) if length else limit)
        started = False
        self.busy[addr] += 1

        async def send_once(message: Message) -> None:
            nonlocal started
            if state["answered"]:
                return  # we already answered 413/408: what the app says after that is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, wrapped, send_once)
        except Exception:
            if not state["answered"]:
                raise
        finally:
            self.busy[addr] -= 1
            if self.busy[addr] <= 0:
                del self.busy[addr]
        if state["answered"] and not started:
            status, body = state["answered"]
            await respond(send, status, body)

    def _refuse(self, scope: Scope, headers: dict[str, str]) -> Refusal | None:
        """A refusal (status, body, headers) decided from the request line and headers alone, or None."""
        path = scope["path"]
        length = headers.get("content-length")
        if length is not None and not re.fullmatch(r"[0-9]{1,15}", length.strip()):
            return _refusal(
                400,
                "invalid_request",
                "The Content-Length header is not a number.",
                "Send the body's size in bytes, or leave the header out.",
            )
        addr = self.client(scope, headers)
        if path.startswith(OPEN) or path == "/":
            self._open_route(scope, headers, addr)
            return None
        refused = self._key_refusal(scope, headers, addr)
        if refused is not None:
            return refused
        limit = self.limit(scope["method"], path)
        if length is not None and int(length) > limit:
            size = f"The request body is {int(length) / 1e6:.1f} MB; this route takes at most {limit / 1e6:.1f} MB."
            return _refusal(413, "too_large", size, "Send a smaller file.")
        return None

    def _open_route(self, scope: Scope, headers: dict[str, str], addr: str) -> None:
        """/healthz says more to a valid key: no free guessing there either. A throttled address's key is not even
        looked at (the route sees none)."""
        if not headers.get("x-api-key"):
            return
        if self.throttle.blocked(addr):
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"x-api-key"]
        elif self.keys.owner(headers["x-api-key"]) is None:
            self.throttle.failed(addr)

    def _key_refusal(self, scope: Scope, headers: dict[str, str], addr: str) -> Refusal | None:
        wait = self.throttle.blocked(addr)
        if wait > 0:
            return _refusal(
                429,
                "too_many_failures",
                "Too many requests with a wrong API key from this address.",
                f"Wait {wait:.0f} s and send a valid key in the X-API-Key header.",
                {"Retry-After": str(max(1, round(wait)))},
            )
        if self.keys.owner(headers.get("x-api-key")) is None:
            self.throttle.failed(addr)
            return _refusal(
                401, "unauthorized", "Missing or unknown API key.", "Send your key in the X-API-Key header."
            )
        if changes_voices(scope["method"], scope["path"]) and self.admins.owner(headers.get("x-api-key")) is None:
            # an ordinary key may not send a voice's upload (up to 2 x SINGER_MAX_VOICE_MB) to be told 403 after
            return _refusal(
                403,
                "forbidden",
                "This API key may list and use voices, not add, merge or remove them.",
                "Voices are changed with an operator key (SINGER_ADMIN_KEYS on the server).",
            )
        return None

    def _metered(self, receive: Receive, limit: int, expected: int) -> tuple[Receive, dict]:
        """``receive`` that counts body bytes against ``limit`` and times out stalls and trickles; past either it
        records the answer (413/408) and tells the app the client left. A body must keep arriving (no pause over
        ``SINGER_BODY_TIMEOUT``) and be complete within twice that plus ``expected`` bytes at MIN_BODY_RATE."""
        state: dict[str, Any] = {"bytes": 0, "answered": None, "complete": False}
        timeout = float(self.settings.body_timeout)
        deadline = time.monotonic() + 2 * timeout + expected / MIN_BODY_RATE

        async def wrapped() -> Message:
            if state["answered"]:
                return {"type": "http.disconnect"}
            if state["complete"]:  # after the body: waiting for a disconnect (SSE) may take as long as it takes
                return await receive()
            left = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, min(timeout, left)))
            except TimeoutError:
                slow = "arrived too slowly" if left < timeout else f"stalled for over {timeout:.0f} s"
                state["answered"] = error_body(
                    408, "timeout", f"The request body {slow}.", "Send the whole body at once; check the connection."
                )
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                state["complete"] = not message.get("more_body", False)
                state["bytes"] += len(message.get("body", b""))
                if state["bytes"] > limit:
                    state["answered"] = error_body(
                        413, "too_large", f"The request body is over {limit / 1e6:.1f} MB.", "Send a smaller file."
                    )
                    return {"type": "http.disconnect"}
            return message

        return wrapped, state
