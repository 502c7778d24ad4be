"""Headers a hostile client controls (Range, Last-Event-ID, Content-Length, X-API-Key), fuzzed with hypothesis
against every kind of route: whatever they hold, the answer is never a 5xx and is the service's JSON error shape
when it is an error."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from singer.http.app import create_app

KEY = {"X-API-Key": "k"}
LATIN1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=40)
NUMBERISH = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True).map(str),
    LATIN1,
    st.sampled_from(["", " ", "0", "-0", "1e308", "NaN", "Infinity", "0x10", "١٢", "²", "9" * 40]),
)
RANGES = st.one_of(
    NUMBERISH.map(lambda v: f"bytes={v}"),
    st.tuples(NUMBERISH, NUMBERISH).map(lambda ab: f"bytes={ab[0]}-{ab[1]}"),
    st.lists(st.tuples(st.integers(-5, 10**20), st.integers(-5, 10**20)), min_size=1, max_size=30).map(
        lambda rs: "bytes=" + ",".join(f"{a}-{b}" for a, b in rs)
    ),
    LATIN1,
)


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory):
    from singer.config import Settings

    home = tmp_path_factory.mktemp("fuzz")
    settings = Settings(home=home, api_keys="k", rate_limit=10**6, auth_failures_per_minute=10**6)
    app = create_app(settings, run_worker=False)
    store = app.state.service.store
    out = home / "result.ogg"
    out.write_bytes(bytes(range(256)) * 40)
    job = store.submit(app.state.service.keys.owner("k"), "convert", {"input": "x"}, None)
    store.finish(job.id, {"output": str(out), "content_type": "audio/ogg", "format": "ogg", "duration": 1.0})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, job.id


def _check(r):
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        body = r.json()
        assert body["error"] and "message" in body


FUZZ = hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@FUZZ
@given(value=RANGES)
def test_range_headers_never_make_a_server_error(fuzz_client, value):
    client, job_id = fuzz_client
    r = client.get(f"/v1/jobs/{job_id}/result", headers={**KEY, "Range": value.encode("utf-8")})
    assert r.status_code in (200, 206, 416, 400), r.status_code
    _check(r) if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json") else None


@FUZZ
@given(value=NUMBERISH)
def test_last_event_id_never_makes_a_server_error(fuzz_client, value):
    client, job_id = fuzz_client
    with client.stream(
        "GET", f"/v1/jobs/{job_id}/events", headers={**KEY, "Last-Event-ID": value.encode("utf-8")}
    ) as r:
        assert r.status_code in (200, 400), r.status_code
        if r.status_code == 400:
            r.read()
            _check(r)


@FUZZ
@given(value=NUMBERISH, route=st.sampled_from(["/v1/covers", "/v1/conversions", "/v1/batches", "/v1/voices"]))
def test_content_length_never_makes_a_server_error(fuzz_client, value, route):
    client, _ = fuzz_client
    body = b'{"query": "a song"}'
    r = client.post(
        route,
        content=body,
        headers={**KEY, "Content-Type": "application/json", "Content-Length": value.encode("utf-8")},
    )
    _check(r)


@FUZZ
@given(value=LATIN1)
def test_api_keys_never_make_a_server_error(fuzz_client, value):
    client, job_id = fuzz_client
    r = client.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": value.encode("utf-8")})
    assert r.status_code in (200, 401), r.status_code
    _check(r)
