"""`singer serve`: the HTTP service for chat bots, with its embedded job queue and worker."""

from __future__ import annotations

import typer

from . import _common as c


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, "--port", help="Port."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Jobs run at once (default SINGER_WORKERS, 1)."),
) -> None:
    """Serve the HTTP API (jobs persisted in SQLite under SINGER_HOME; API keys from SINGER_API_KEYS)."""

    def work():
        import uvicorn

        from ..errors import UsageError
        from ..http.app import create_app

        settings = c.settings()
        if workers:
            settings = settings.model_copy(update={"workers": workers})
        if not settings.api_keys.strip():
            raise UsageError("No API keys configured: every request would be refused.",
                             hint="Set SINGER_API_KEYS=key1,key2 (clients send one in the X-API-Key header).")
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
        return {"stopped": True}

    c.run(work, False, lambda res: None)
