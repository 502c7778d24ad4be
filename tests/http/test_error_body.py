"""HTTP error bodies come from the one builder (singer.errors.error_dict): an engine error keeps its per-backend
reasons."""

from __future__ import annotations

from fastapi.testclient import TestClient

from singer.errors import EngineUnavailable, error_dict
from singer.http.app import create_app


def test_engine_error_keeps_its_reasons(settings):
    cfg = settings.model_copy(update={"api_keys": "k", "rate_limit": 1000})
    app = create_app(cfg, run_worker=False)
    with TestClient(app, raise_server_exceptions=False) as c:

        def unavailable(q, limit=None, **kw):
            raise EngineUnavailable(
                "No source works.", hint="Install yt-dlp.", reasons={"ytdlp": "gone", "library": "empty"}
            )

        app.state.service.singer.search = unavailable
        r = c.get("/v1/search", params={"q": "song"}, headers={"X-API-Key": "k"})
        assert r.status_code == 503, r.text
        assert r.json() == error_dict(
            EngineUnavailable("No source works.", hint="Install yt-dlp.", reasons={"ytdlp": "gone", "library": "empty"})
        )
