"""The HTTP service through FastAPI's TestClient: one app per test, a real embedded worker where jobs must run."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from singer.http.app import create_app
from tests import media

KEY = {"X-API-Key": "k-one"}
OTHER = {"X-API-Key": "k-two"}


@pytest.fixture
def app_settings(settings):
    return settings.model_copy(
        update={"api_keys": "k-one,k-two", "max_jobs_per_key": 3, "rate_limit": 1000, "webhook_secret": "hook-secret"}
    )


def _wait(client, job_id, headers=KEY, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_keys_are_required_except_for_healthz(idle):
    assert idle.get("/healthz").json()["ok"] is True
    for method, url in [("get", "/v1/voices"), ("get", "/v1/jobs/x"), ("post", "/v1/covers"), ("get", "/metrics")]:
        r = getattr(idle, method)(url, headers={"X-API-Key": "wrong"})
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"


def test_cover_is_accepted_and_only_its_key_sees_it(idle):
    r = idle.post("/v1/covers", json={"query": "some song", "voice": "ayana", "key": "auto"}, headers=KEY)
    assert r.status_code == 202
    job_id = r.json()["job_id"]
    job = idle.get(f"/v1/jobs/{job_id}", headers=KEY).json()
    assert job["state"] == "queued" and job["kind"] == "cover" and job["progress"] == 0
    assert idle.get(f"/v1/jobs/{job_id}", headers=OTHER).status_code == 404
    assert idle.get(f"/v1/jobs/{job_id}/result", headers=KEY).json()["error"] == "not_ready"


@pytest.mark.parametrize(
    "body,status,needle",
    [
        ({"query": "/etc/passwd"}, 422, "file path"),
        ({"query": "file:///etc/passwd"}, 422, "file: link"),
        ({"query": "song", "callback_url": "http://127.0.0.1:9/hook"}, 422, "loopback"),
        ({"query": "song", "format": "exe"}, 422, "format"),
        ({"query": ""}, 422, "query"),
        ({"query": "song", "extra": 1}, 422, "extra"),
    ],
)
def test_bad_submissions_are_refused_with_json_errors(idle, body, status, needle):
    r = idle.post("/v1/covers", json=body, headers=KEY)
    assert r.status_code == status and needle in r.json()["message"] and r.json()["error"]


def test_per_key_job_limit_and_rate_limit(app_settings):
    with TestClient(create_app(app_settings.model_copy(update={"rate_limit": 5}), run_worker=False)) as c:
        codes = [c.post("/v1/covers", json={"query": f"song {i}"}, headers=KEY).status_code for i in range(5)]
        assert codes == [202, 202, 202, 429, 429]  # 3 jobs per key, then the per-key limit
        r = c.get("/v1/voices", headers=KEY)
        assert r.status_code == 429 and r.json()["error"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
        assert c.get("/v1/voices", headers=OTHER).status_code == 200  # the other key has its own budget


def test_voice_note_roundtrip_with_events_and_range(live, tmp_path):
    note = media.encoded(media.voice_wav(tmp_path / "n.wav", seconds=2.0), tmp_path / "note.ogg", "ogg")
    with open(note, "rb") as f:
        r = live.post(
            "/v1/conversions",
            files={"file": ("whatever.bin", f, "application/octet-stream")},
            data={"voice": "ayana"},
            headers=KEY,
        )
    assert r.status_code == 202, r.text
    job = _wait(live, r.json()["job_id"])
    assert job["state"] == "done", job
    assert job["result"]["content_type"] == "audio/ogg" and job["result"]["duration"] == pytest.approx(2.0, abs=0.1)
    assert "key" in job["result"]["pitch"] and job["result"]["pitch"]["octave"]["reason"]  # the shift and why
    body = live.get(job["result"]["url"], headers=KEY)
    assert body.status_code == 200 and body.headers["content-type"] == "audio/ogg" and body.content[:4] == b"OggS"
    part = live.get(job["result"]["url"], headers={**KEY, "Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    events = live.get(f"/v1/jobs/{job['job_id']}/events", headers=KEY).text
    kinds = [ln.split(": ", 1)[1] for ln in events.splitlines() if ln.startswith("event: ")]
    assert kinds[0] == "queued" and "step_end" in kinds and kinds[-1] == "done"
    resumed = live.get(f"/v1/jobs/{job['job_id']}/events", headers={**KEY, "Last-Event-ID": "2"}).text
    assert "event: queued" not in resumed and "event: done" in resumed
    cost = job["result"]["cost"]
    assert cost["cpu_seconds"] > 0 and cost["steps_cpu_seconds"]["convert"] > 0
    metrics = live.get("/metrics", headers=KEY).text
    assert 'singer_jobs{state="done"} 1' in metrics and "singer_http_requests_total" in metrics
    assert 'singer_step_cpu_seconds_total{step="convert"}' in metrics and 'singer_engine_path{engine="rvc"' in metrics
    assert not list((live.app.state.service.settings.cache_path / "uploads").iterdir())  # the upload went with its job


def test_uploads_are_sniffed_and_capped(app_settings, tmp_path):
    with TestClient(create_app(app_settings.model_copy(update={"max_upload_mb": 0.01}), run_worker=False)) as c:
        r = c.post("/v1/conversions", files={"file": ("note.ogg", b"not audio at all", "audio/ogg")}, headers=KEY)
        assert r.status_code == 422 and r.json()["error"] == "bad_input"
        r = c.post("/v1/conversions", files={"file": ("note.ogg", b"\0" * 20_000, "audio/ogg")}, headers=KEY)
        assert r.status_code == 413 and r.json()["error"] == "too_large"
        assert not list((app_settings.cache_path / "uploads").iterdir())  # nothing left behind


def test_failed_job_reports_a_user_message(live):
    assert live.post("/v1/covers", json={"query": "song", "voice": "nobody"}, headers=KEY).status_code == 404
    r = live.post("/v1/covers", json={"query": "https://nonexistent.invalid/x.mp3", "voice": "ayana"}, headers=KEY)
    job = _wait(live, r.json()["job_id"])
    assert job["state"] == "failed" and job["error"]["message"] and "Traceback" not in job["error"]["message"]


def test_openapi_is_complete_with_examples(idle):
    spec = idle.get("/openapi.json").json()
    assert {
        "/v1/covers",
        "/v1/conversions",
        "/v1/search",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/events",
        "/v1/jobs/{job_id}/result",
        "/v1/voices",
        "/healthz",
        "/metrics",
    } <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert schemas["CoverIn"].get("examples") and schemas["JobOut"].get("examples")
    assert "429" in spec["paths"]["/v1/covers"]["post"]["responses"]


def test_identical_submissions_share_one_computation(app_settings, tmp_path):
    """20 identical voice notes: the first computes every step, the other 19 find them all in the step cache."""
    note = media.voice_wav(tmp_path / "n.wav", seconds=1.0).read_bytes()
    with TestClient(create_app(app_settings.model_copy(update={"max_jobs_per_key": 50}))) as c:
        ids = [
            c.post(
                "/v1/conversions", files={"file": ("n.wav", note, "audio/wav")}, data={"voice": "ayana"}, headers=KEY
            ).json()["job_id"]
            for _ in range(20)
        ]
        jobs = [_wait(c, i) for i in ids]
        store = c.app.state.service.store
    assert all(j["state"] == "done" for j in jobs)
    computed = [i for i in ids if any(t == "step_end" and not d["cached"] for _, t, d in store.events(i))]
    assert len(computed) == 1


def test_failed_keys_behind_a_trusted_proxy_are_counted_by_the_proxys_entry(settings):
    """The proxy appends the client's address as the last X-Forwarded-For entry (maybe on a header line of its
    own): what the client wrote before it cannot rotate the throttled address."""
    cfg = settings.model_copy(update={"api_keys": "k", "trusted_proxies": "testclient", "auth_failures_per_minute": 3})
    with TestClient(create_app(cfg, run_worker=False)) as c:
        codes = []
        for i in range(5):
            headers = [("X-API-Key", "wrong"), ("X-Forwarded-For", f"10.0.0.{i}"), ("X-Forwarded-For", "203.0.113.9")]
            codes.append(c.get("/v1/voices", headers=headers).status_code)
        assert codes == [401, 401, 401, 429, 429]
        other = [("X-API-Key", "k"), ("X-Forwarded-For", "203.0.113.10")]  # another client: not throttled
        assert c.get("/v1/voices", headers=other).status_code == 200


def test_parallel_uploads_from_one_key_hold_slots_before_any_is_probed(idle, tmp_path, monkeypatch):
    """A key at its job limit cannot make the service copy and probe more uploads by sending them all at once."""
    import threading

    from singer.http import routes

    probed, real = [], routes.save_upload

    def slow_save(*a, **k):
        probed.append(1)
        time.sleep(0.3)  # every request overlaps every other
        return real(*a, **k)

    monkeypatch.setattr(routes, "save_upload", slow_save)
    note = media.voice_wav(tmp_path / "n.wav", seconds=0.5).read_bytes()
    codes = []

    def post(i):
        r = idle.post(
            "/v1/conversions",
            files={"file": ("n.wav", note + bytes(i), "audio/wav")},
            data={"voice": "ayana"},
            headers=KEY,
        )
        codes.append(r.status_code)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [202] * 3 + [429] * 5 and len(probed) == 3  # max_jobs_per_key is 3 here


def test_a_stream_resumed_past_the_end_of_a_finished_job_ends_at_once(idle):
    service = idle.app.state.service
    job = service.store.submit(service.keys.owner("k-one"), "convert", {"input": "x"}, None)
    service.store.fail(job.id, {"error": "bad_input", "message": "no", "hint": ""})
    t0 = time.time()
    r = idle.get(f"/v1/jobs/{job.id}/events", headers={**KEY, "Last-Event-ID": "999"})
    assert r.status_code == 200 and time.time() - t0 < 5 and not service.streams
