"""The HTTP service a chat bot calls: ``create_app(settings)`` builds everything; nothing happens at import time.

Jobs are accepted into the durable :class:`~singer.jobs.store.JobStore` (SQLite) and run by the bounded
:class:`~singer.jobs.worker.EmbeddedWorker` in this process, with warm models; a restart re-queues interrupted
jobs. Errors are JSON ``{"error": code, "message": ..., "hint": ...}`` with a status that matches the cause.
"""

from __future__ import annotations

import threading
from collections import Counter
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..config import Settings
from ..errors import (
    EngineUnavailable,
    InputError,
    NetworkUnavailable,
    SingerError,
    UsageError,
    VoiceNotFound,
)
from ..jobs.store import JobStore
from ..jobs.worker import error_dict
from ..redact import redact
from .guard import Guard
from .security import KeyRing, RateLimiter


@dataclass
class Service:
    """What the routes share: settings, job store, worker, the warm Singer, keys, limits, counters."""

    settings: Settings
    store: JobStore
    singer: Any
    keys: KeyRing
    limiter: RateLimiter
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


def create_app(settings: Settings | None = None, *, run_worker: bool = True, worker_mode: str = "thread") -> FastAPI:
    """The FastAPI app. ``run_worker=False`` accepts jobs without running them. ``worker_mode``: "thread" runs jobs in
    this process (tests, embedding), "process" in a child process at lower priority (``singer serve``: status calls
    stay fast while a job runs); with ``settings.broker`` jobs go to Celery workers instead."""
    from ..api import Singer
    from ..jobs.worker import EmbeddedWorker, WorkerProcess
    from . import batches, routes

    settings = settings or Settings()
    singer = Singer(settings)
    service = Service(
        settings,
        JobStore(settings.home / "jobs.db"),
        singer,
        KeyRing(settings.api_keys),
        RateLimiter(settings.rate_limit),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if run_worker and settings.broker:  # scale-out: Celery workers on other machines run the jobs
            from ..jobs.celery_app import CeleryDispatcher

            service.worker = CeleryDispatcher(settings, service.store)
            service.worker.start()
        elif run_worker and worker_mode == "process":
            service.worker = WorkerProcess(settings)
            service.worker.start()
        elif run_worker:
            service.worker = EmbeddedWorker(settings, service.store, concurrency=settings.workers, singer=singer)
            service.worker.start()
        try:
            yield
        finally:
            if service.worker is not None:
                service.worker.stop()

    app = FastAPI(
        title="singer",
        version=__version__,
        lifespan=lifespan,
        description="Song covers and voice notes in a character's voice, as jobs: submit, follow, fetch.",
    )
    app.state.service = service

    @app.exception_handler(SingerError)
    async def _singer_error(request: Request, e: SingerError):
        return JSONResponse(redact(error_dict(e)), status_code=status_for(e))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        detail = e.detail if isinstance(e.detail, dict) else {"error": _code(e.status_code), "message": str(e.detail)}
        return JSONResponse({"hint": "", **detail}, status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse(
            {
                "error": "invalid_request",
                "message": f"{where}: {first.get('msg', 'invalid')}".strip(": "),
                "hint": "See the API document at /docs.",
            },
            status_code=422,
        )

    @app.middleware("http")
    async def _count(request: Request, call_next):
        response = await call_next(request)
        route = request.scope.get("route")
        service.requests[(getattr(route, "path", "unmatched"), response.status_code)] += 1
        return response

    app.include_router(routes.router)
    app.include_router(batches.router)
    app.add_middleware(Guard, settings=settings, keys=service.keys)  # outermost of ours: before any body is read
    return app


def _code(status: int) -> str:
    return {
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "not_ready",
        413: "too_large",
        429: "rate_limited",
    }.get(status, "http_error")
