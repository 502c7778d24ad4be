"""A job's output lives in the cache's ``jobs`` namespace: a size prune leaves a finished job's output its client may
still fetch, an age prune past it removes it, and fetching it then answers 410 ``expired``, never a 500."""

from __future__ import annotations

import os
import time

import pytest

from singer.api import Singer
from singer.jobs.paths import job_dir

KEY = {"X-API-Key": "k-one"}


@pytest.fixture
def app_settings(settings):
    return settings.model_copy(update={"api_keys": "k-one", "rate_limit": 1000})


def test_a_pruned_result_answers_410_expired(idle, app_settings):
    service = idle.app.state.service
    job_id = idle.post("/v1/covers", json={"query": "some song"}, headers=KEY).json()["job_id"]
    running = service.store.claim()
    out = job_dir(app_settings, job_id) / "song.mp3"
    out.write_bytes(b"ID3" + b"\0" * 500)
    os.utime(out, (time.time() - 60, time.time() - 60))
    singer = Singer(app_settings)
    assert not singer.prune_cache(max_bytes=0, older_than_s=0).removed  # running: in use
    service.store.finish(running.id, {"output": str(out), "content_type": "audio/mpeg", "format": "mp3"})

    assert not singer.prune_cache(max_bytes=0).removed  # its client may still fetch it: not taken for size
    assert idle.get(f"/v1/jobs/{job_id}/result", headers=KEY).status_code == 200

    gone = singer.prune_cache(older_than_s=0).removed
    assert [(i.namespace, i.name) for i in gone] == [("jobs", job_id)] and not out.exists()
    r = idle.get(f"/v1/jobs/{job_id}/result", headers=KEY)
    assert r.status_code == 410 and r.json()["error"] == "expired" and "expired" in r.json()["message"]
    assert str(app_settings.cache_path) not in r.text
