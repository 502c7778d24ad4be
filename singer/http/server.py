"""Run the app under uvicorn with the limits a server facing the internet needs.

- at most ``SINGER_MAX_CONNECTIONS`` connections and requests at once (uvicorn answers more with 503);
- request headers must arrive within ``SINGER_HEADER_TIMEOUT`` seconds of the connection (or of the previous
  response on a kept-alive connection): a client that trickles headers (slowloris) is disconnected;
- at most 16 KB of headers; idle kept-alive connections are closed after 5 s.

Body size and body stalls are the :mod:`~singer.http.guard` middleware's job.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..config import Settings

MAX_HEADER_BYTES = 16 * 1024


def protocol(header_timeout: float) -> type:
    """uvicorn's h11 protocol with a deadline for each request's headers."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _armed_for: Any = None

        def _arm(self) -> None:
            self._disarm()
            self._armed_for = self.cycle  # a new request replaces self.cycle when its headers are complete
            self._deadline = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if self.cycle is self._armed_for and not self.transport.is_closing():
                self.transport.close()  # no complete request line and headers in time

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not self._armed_for:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadline


def serve(app: Any, host: str, port: int, settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        http=protocol(settings.header_timeout),
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
