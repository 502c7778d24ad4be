"""`singer serve`: the HTTP service for chat bots, with its embedded job queue and worker."""

from __future__ import annotations

import typer

from . import _common as c


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, "--port", help="Port."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Jobs run at once (default SINGER_WORKERS, 1)."),
    broker: str | None = typer.Option(
        None,
        "--broker",
        help="Celery broker (redis://host:6379/0): jobs run on `singer worker` processes instead of in this one.",
    ),
) -> None:
    """Serve the HTTP API (jobs persisted in SQLite under SINGER_HOME; API keys from SINGER_API_KEYS)."""

    def work():
        from ..errors import UsageError
        from ..http.app import create_app
        from ..http.server import serve as serve_app

        settings = _with(c.settings(), workers=workers, broker=broker)
        if not settings.api_keys.strip():
            raise UsageError(
                "No API keys configured: every request would be refused.",
                hint="Set SINGER_API_KEYS=key1,key2 (clients send one in the X-API-Key header).",
            )
        serve_app(create_app(settings, worker_mode="process"), host, port, settings)
        return {"stopped": True}

    c.run(work, False, lambda res: None)


def worker(
    broker: str | None = typer.Option(None, "--broker", help="Celery broker, as given to `singer serve --broker`."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Jobs run at once on this machine (default 1)."),
) -> None:
    """Run jobs for `singer serve --broker` (Celery worker). SINGER_CACHE_DIR must be the shared path."""

    def work():
        from ..errors import UsageError
        from ..jobs.celery_app import run_worker

        settings = _with(c.settings(), workers=workers, broker=broker)
        if not settings.broker:
            raise UsageError("No broker given.", hint="Pass --broker redis://host:6379/0 (or set SINGER_BROKER).")
        run_worker(settings)
        return {"stopped": True}

    c.run(work, False, lambda res: None)


def _with(settings, **values):
    return settings.model_copy(update={k: v for k, v in values.items() if v})
