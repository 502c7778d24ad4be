"""What the routes share: the :class:`Service`, the caller's identity (``Caller``), and the error responses.

Errors are JSON ``{"error": code, "message": ..., "hint": ...}`` with a status that matches the cause:
:func:`status_for` maps the library's errors, :func:`http_error` builds the service's own refusals.
"""

from __future__ import annotations

import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request

from ..config import Settings
from ..errors import EngineUnavailable, InputError, NetworkUnavailable, SingerError, UsageError, VoiceNotFound
from ..jobs.lifecycle import Views
from ..jobs.store import JobStore
from .links import LINKED
from .schemas import ErrorOut
from .security import KeyRing, RateLimiter

ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorOut} for s in (400, 401, 404, 422, 429)
}  # documented answers of every keyed route
MAX_ID_LENGTH = 64  # longer job or batch ids are not looked up (and are cut to this in messages)
RETRY_JOBS_S = 10  # Retry-After when a key has its most jobs queued or running
RETRY_BATCHES_S = 30
CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "not_ready",
    413: "too_large",
    429: "rate_limited",
}


@dataclass
class Service:
    """What the routes share: settings, job store, worker, the warm Singer, keys, limits, counters, and the
    views webhooks send."""

    settings: Settings
    store: JobStore
    singer: Any
    keys: KeyRing
    limiter: RateLimiter
    views: Views = LINKED  # webhook bodies, with the links a receiver follows
    worker: Any = None
    requests: Counter = field(default_factory=Counter)  # (route, status) -> count, for /metrics
    streams: Counter = field(default_factory=Counter)  # owner -> open event streams
    admitting: Counter = field(default_factory=Counter)  # (owner, what) -> submissions being checked right now
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def admit(self, owner: str, what: str, active: int, limit: int, refusal: Exception):
        """Hold one of ``owner``'s ``limit`` slots while a submission is checked (uploads copied and probed), so
        parallel requests cannot all pass the count before any of them is stored: past the limit, ``refusal``."""
        with self.lock:
            if active + self.admitting[(owner, what)] >= limit:
                raise refusal
            self.admitting[(owner, what)] += 1
        try:
            yield
        finally:
            with self.lock:
                self.admitting[(owner, what)] -= 1
                if self.admitting[(owner, what)] <= 0:
                    del self.admitting[(owner, what)]


def http_error(status: int, code: str, message: str, hint: str, retry_after: float | None = None) -> HTTPException:
    """A refusal in the service's error shape; ``retry_after`` seconds become a Retry-After header."""
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return HTTPException(status, {"error": code, "message": message, "hint": hint}, headers=headers)


def status_for(e: SingerError) -> int:
    if isinstance(e, VoiceNotFound):
        return 404
    if isinstance(e, NetworkUnavailable):
        return 503
    if isinstance(e, UsageError):
        return 400
    if isinstance(e, InputError):  # SourceError included
        return 422
    if isinstance(e, EngineUnavailable):
        return 503
    return 500


def too_many_jobs(service: Service) -> HTTPException:
    limit = service.settings.max_jobs_per_key
    return http_error(
        429,
        "too_many_jobs",
        f"This API key already has {limit} jobs queued or running.",
        "Wait for one to finish.",
        RETRY_JOBS_S,
    )


def too_many_batches(service: Service) -> HTTPException:
    limit = service.settings.max_batches_per_key
    return http_error(
        429,
        "too_many_batches",
        f"This API key already has {limit} batches queued or running.",
        "Wait for one to finish (GET /v1/batches/{id}).",
        RETRY_BATCHES_S,
    )


async def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


async def caller(service: ServiceDep, x_api_key: Annotated[str | None, Header()] = None) -> str:
    """The owner id of a valid API key (401 otherwise), within its rate limit (429 otherwise)."""
    owner = service.keys.owner(x_api_key)
    if owner is None:
        raise http_error(401, "unauthorized", "Missing or unknown API key.", "Send your key in the X-API-Key header.")
    ok, wait = service.limiter.allow(owner)
    if not ok:
        raise http_error(
            429, "rate_limited", "Too many requests for this API key.", f"Retry in {wait:.1f} s.", retry_after=wait
        )
    return owner


Caller = Annotated[str, Depends(caller)]
