"""The key rule over HTTP: NaN, infinities and out-of-range shifts are refused at submission with the same
message as everywhere (singer.keys.parse_key), before any job is queued."""

from __future__ import annotations

import pytest

from tests import media

KEY = {"X-API-Key": "k-one"}


@pytest.fixture
def app_settings(settings):
    return settings.model_copy(update={"api_keys": "k-one", "max_jobs_per_key": 50, "rate_limit": 1000})


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e308", "30", "-24.5", '"up"', "true"])
def test_cover_refuses_bad_keys(idle, raw):
    body = '{"query": "some song", "voice": "ayana", "key": ' + raw + "}"
    r = idle.post("/v1/covers", content=body, headers={**KEY, "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    data = r.json()
    assert data["message"].startswith("key: ") and data["error"] == "usage" and "-24 to 24" in data["hint"], data
    assert idle.get("/healthz").json().get("queued", 0) == 0


@pytest.mark.parametrize("key", [-24, 24, 0, 2.5, "auto", None])
def test_cover_accepts_good_keys(idle, key):
    r = idle.post("/v1/covers", json={"query": "some song", "voice": "ayana", "key": key}, headers=KEY)
    assert r.status_code == 202, r.text


@pytest.mark.parametrize("key", ["nan", "inf", "-Infinity", "1e308", "25", "up"])
def test_batch_refuses_bad_keys(idle, tmp_path, key):
    wav = media.voice_wav(tmp_path / "n.wav", seconds=0.5).read_bytes()
    r = idle.post("/v1/batches", files=[("files", ("n.wav", wav, "audio/wav"))], data={"key": key}, headers=KEY)
    assert r.status_code == 400 and r.json()["error"] == "usage" and "key" in r.json()["message"], r.text
    assert r.json()["hint"]
