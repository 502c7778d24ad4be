"""The HTTP service a chat bot calls: ``create_app(settings)`` builds everything; nothing happens at import time.

Jobs are accepted into the durable :class:`~singer.jobs.store.JobStore` (SQLite) and run by the bounded
:class:`~singer.jobs.worker.EmbeddedWorker` in this process, with warm models; a restart re-queues interrupted
jobs. Errors are JSON ``{"error": code, "message": ..., "hint": ...}`` with a status that matches the cause.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import Settings
from ..errors import SingerError, error_dict
from ..jobs.store import JobStore
from ..redact import redact
from ..version import __version__
from . import batches, routes, voices
from .deps import CODES, Service, status_for
from .guard import Guard
from .security import KeyRing, RateLimiter


def create_app(settings: Settings | None = None, *, run_worker: bool = True, worker_mode: str = "thread") -> FastAPI:
    """The FastAPI app. ``run_worker=False`` accepts jobs without running them. ``worker_mode``: "thread" runs jobs in
    this process (tests, embedding), "process" in a child process at lower priority (``singer serve``: status calls
    stay fast while a job runs); with ``settings.broker`` jobs go to Celery workers instead."""
    from ..api import Singer

    settings = settings or Settings()
    service = Service(
        settings,
        JobStore(settings.home / "jobs.db"),
        Singer(settings),
        KeyRing(",".join((settings.api_keys, settings.admin_keys))),  # operator keys are keys too
        RateLimiter(settings.rate_limit),
    )
    app = FastAPI(
        title="singer",
        version=__version__,
        lifespan=_lifespan(service, run_worker, worker_mode),
        description="Song covers and voice notes in a character's voice, as jobs: submit, follow, fetch.",
    )
    app.state.service = service
    _error_handlers(app)

    @app.middleware("http")
    async def _count(request: Request, call_next):
        response = await call_next(request)
        route = request.scope.get("route")
        service.requests[(getattr(route, "path", "unmatched"), response.status_code)] += 1
        return response

    app.include_router(routes.router)
    app.include_router(batches.router)
    app.include_router(voices.router)
    app.add_middleware(Guard, settings=settings, keys=service.keys)  # outermost of ours: before any body is read
    return app


def _worker(service: Service, worker_mode: str):
    """What runs the jobs: Celery workers on other machines (``settings.broker``), a child process, or threads."""
    from ..jobs.worker import EmbeddedWorker, WorkerProcess

    settings = service.settings
    if settings.broker:
        from ..jobs.celery_app import CeleryDispatcher

        return CeleryDispatcher(settings, service.store, views=service.views)
    if worker_mode == "process":
        return WorkerProcess(settings, service.views)
    return EmbeddedWorker(settings, service.store, settings.workers, singer=service.singer, views=service.views)


def _lifespan(service: Service, run_worker: bool, worker_mode: str):
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if run_worker:
            service.worker = _worker(service, worker_mode)
            service.worker.start()
        try:
            yield
        finally:
            if service.worker is not None:
                service.worker.stop()

    return lifespan


def _error_handlers(app: FastAPI) -> None:
    """Every error answers in the service's shape: the library's errors, HTTP refusals, invalid requests."""

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


def _code(status: int) -> str:
    return CODES.get(status, "http_error")
