"""Property-based run of the whole API from its OpenAPI document (schemathesis): no input makes a server error,
and every answer matches the documented schema. Operations are driven with hypothesis directly (schemathesis's
pytest plugin does not load with this pytest)."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given  # noqa: E402
from hypothesis import settings as hsettings  # noqa: E402

from singer.engines.base import Candidate  # noqa: E402
from singer.http.app import create_app  # noqa: E402


@pytest.fixture
def api_schema(settings):
    cfg = settings.model_copy(update={"api_keys": "k", "rate_limit": 1_000_000, "max_jobs_per_key": 1_000_000})
    app = create_app(cfg, run_worker=False)  # jobs are accepted, not run
    # song search goes to yt-dlp (the network): the HTTP layer is under test here, so it answers from a stub
    app.state.service.singer.search = lambda q, limit=None, **kw: [
        Candidate(title=f"{q} (live)", source="library", ref="x")
    ]
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_server_errors_and_answers_match_the_schema(api_schema):
    operations = [r.ok() for r in api_schema.get_all_operations()]
    assert len(operations) >= 9
    failures = []
    for op in operations:

        @given(case=op.as_strategy())
        @hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.headers = {**(case.headers or {}), "X-API-Key": "k"}
            response = case.call()
            case.validate_response(
                response,
                checks=(
                    schemathesis.checks.not_a_server_error,
                    schemathesis.checks.response_schema_conformance,
                    schemathesis.checks.status_code_conformance,
                    schemathesis.checks.content_type_conformance,
                ),
            )

        try:
            check()
        except Exception as e:  # collect every operation's failure, not only the first
            failures.append(f"{op.method.upper()} {op.path}: {e}")
    assert not failures, "\n\n".join(failures)
