"""Voices over HTTP (issue 15): operator keys (SINGER_ADMIN_KEYS) add, merge and remove; ordinary keys list, show and
use. A voice added by link through the API is used by the next job; uploads work the same; no answer carries a
server path."""

from __future__ import annotations

import time

import pytest

from tests import media
from tests.rvcvoice import install_content_model, write_voice_files
from tests.voicehost import VoiceHost, make_zip

pytestmark = pytest.mark.timeout(300)
USER = {"X-API-Key": "k-one"}
OP = {"X-API-Key": "op-key"}


@pytest.fixture(scope="module")
def voice_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("v")
    pth, index = write_voice_files(d, "api", seed=3)
    return pth, index, make_zip(d / "api.zip", {"api/api.pth": pth, "api/added_IVF1_Flat_api_v2.index": index})


@pytest.fixture
def host(voice_files):
    with VoiceHost({"/v/x/api.pth": voice_files[0], "/v/x/api.index": voice_files[1]}) as h:
        yield h


@pytest.fixture
def app_settings(settings, host):
    install_content_model(settings)
    return settings.model_copy(
        update={
            "api_keys": "k-one",
            "admin_keys": "op-key",
            "rate_limit": 1000,
            "url_allow": f"127.0.0.1:{host.port}",
            "network_timeout": 5.0,
        }
    )


def _wait(client, job_id, headers, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_only_operator_keys_change_voices(idle):
    changes = [
        ("post", "/v1/voices", {"json": {"name": "x", "url": "https://example.com/x.pth"}}),
        ("post", "/v1/voices/merge", {"json": {"names": ["ayana", "kenji"], "name": "y"}}),
        ("post", "/v1/voices/upload", {"data": {"name": "x"}, "files": {"file": ("x.pth", b"x")}}),
        ("delete", "/v1/voices/ayana", {}),
    ]
    for method, url, kw in changes:
        r = getattr(idle, method)(url, headers=USER, **kw)
        assert r.status_code == 403, (url, r.text)
        assert r.json()["error"] == "forbidden" and "SINGER_ADMIN_KEYS" in r.json()["hint"]
        assert getattr(idle, method)(url, headers={"X-API-Key": "nope"}, **kw).status_code == 401
    assert idle.get("/v1/voices/ayana", headers=USER).json()["kind"] == "profile"  # showing is for every key
    assert idle.get("/v1/voices/nobody", headers=USER).status_code == 404
    assert idle.get("/v1/voices", headers=OP).status_code == 200  # an operator key is a key too


@pytest.mark.parametrize(
    "body,status,needle",
    [
        ({"name": "Bad Name", "url": "https://example.com/a.pth"}, 422, "Invalid voice name"),
        ({"name": "ayana", "url": "https://example.com/a.pth"}, 422, "bundled"),
        ({"name": "x", "url": "/etc/passwd"}, 422, "http(s) link"),
        ({"name": "x", "url": "http://127.0.0.1:9/a.pth"}, 422, "loopback"),
        ({"name": "x", "url": "https://mega.nz/file/abc"}, 400, "MEGA"),
        ({"name": "x", "url": "https://example.com/a.pth", "range": "Q9-Z"}, 422, "Cannot read"),
        ({"name": "x", "url": "https://example.com/a.pth", "sha256": "z" * 64}, 400, "not a sha256"),
    ],
)
def test_bad_adds_are_refused_at_the_door(idle, body, status, needle):
    r = idle.post("/v1/voices", json=body, headers=OP)
    assert r.status_code == status and needle in r.json()["message"], r.text


def test_voice_added_by_link_is_used_by_the_next_job_then_removed(live, host, tmp_path, app_settings):
    r = live.post(
        "/v1/voices",
        json={
            "name": "api",
            "url": f"{host.base}/v/x/api.pth",
            "index_url": f"{host.base}/v/x/api.index",
            "range": "A3-E5",
        },
        headers=OP,
    )
    assert r.status_code == 202, r.text
    job = _wait(live, r.json()["job_id"], OP)
    assert job["state"] == "done", job
    assert job["kind"] == "voice_add" and job["result"]["url"] == "/v1/voices/api"
    assert live.get(f"/v1/jobs/{job['job_id']}/result", headers=OP).status_code == 404  # a voice, not a file
    shown = live.get("/v1/voices/api", headers=USER)
    v = shown.json()
    assert v["version"] == "v2" and v["sample_rate"] == 40000 and v["f0"] is True and v["range"] == "A3-E5"
    assert v["source"] == f"{host.base}/v/x/api.pth" and set(v["sha256"]) == {"api.pth", "api.index"}
    assert str(app_settings.home) not in shown.text

    note = media.encoded(media.voice_wav(tmp_path / "n.wav", seconds=2.0), tmp_path / "note.ogg", "ogg")
    with open(note, "rb") as f:
        r = live.post(
            "/v1/conversions", files={"file": ("note.ogg", f, "audio/ogg")}, data={"voice": "api"}, headers=USER
        )
    assert r.status_code == 202, r.text
    job = _wait(live, r.json()["job_id"], USER)
    assert job["state"] == "done" and job["result"]["voice"] == "api", job

    assert live.delete("/v1/voices/api", headers=OP).json() == {"removed": "api"}
    assert live.get("/v1/voices/api", headers=USER).status_code == 404


def test_upload_and_merge_as_jobs(live, voice_files, app_settings):
    with open(voice_files[2], "rb") as f:
        r = live.post(
            "/v1/voices/upload", files={"file": ("api.zip", f)}, data={"name": "up", "gender": "female"}, headers=OP
        )
    assert r.status_code == 202, r.text
    assert _wait(live, r.json()["job_id"], OP)["state"] == "done"
    with open(voice_files[0], "rb") as f:
        r = live.post("/v1/voices/upload", files={"file": ("x.pth", f)}, data={"name": "up2"}, headers=OP)
    assert _wait(live, r.json()["job_id"], OP)["state"] == "done"
    assert list((app_settings.home).rglob("uploads/*")) == []  # uploads go when their job ends
    r = live.post("/v1/voices/merge", json={"names": ["up", "up2"], "weights": [0.6, 0.4], "name": "mix"}, headers=OP)
    job = _wait(live, r.json()["job_id"], OP)
    assert job["state"] == "done" and live.get("/v1/voices/mix", headers=USER).json()["kind"] == "rvc"

    with open(voice_files[1], "rb") as f:  # an index is not a voice: a failed job with a clear message
        r = live.post("/v1/voices/upload", files={"file": ("v.pth", f)}, data={"name": "bad"}, headers=OP)
    job = _wait(live, r.json()["job_id"], OP)
    assert job["state"] == "failed" and "not an RVC voice model" in job["error"]["message"], job
    assert str(app_settings.home) not in str(job["error"])


def test_an_ordinary_key_is_refused_before_its_voice_upload_is_read(idle):
    """An ordinary key may not make the server read (and spool to disk) a voice upload of up to 2 x
    SINGER_MAX_VOICE_MB only to be told 403 afterwards: the door refuses it before a byte of the body."""
    import asyncio

    app = idle.app
    sent = {"bytes": 0}
    chunk = b"\0" * (1 << 20)

    async def receive():
        sent["bytes"] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": sent["bytes"] < 50 * len(chunk)}

    answer: list[dict] = []

    async def send(message):
        answer.append(message)

    for method, path in (("POST", "/v1/voices/upload"), ("POST", "/v1/voices"), ("DELETE", "/v1/voices/ayana")):
        sent["bytes"], answer[:] = 0, []
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [
                (b"x-api-key", USER["X-API-Key"].encode()),
                (b"content-type", b"multipart/form-data; boundary=x"),
                (b"content-length", str(50 << 20).encode()),
            ],
            "client": ("127.0.0.1", 5000),
            "server": ("testserver", 80),
            "scheme": "http",
            "http_version": "1.1",
            "root_path": "",
        }
        asyncio.run(app(scope, receive, send))
        assert answer[0]["status"] == 403, (path, answer)
        assert sent["bytes"] == 0, f"{path}: read {sent['bytes']} bytes of the body before refusing the key"
