"""Scale-out end to end: a real redis-server on loopback, a real `singer worker` (Celery) process and a real
`singer serve --broker` (uvicorn) process, talked to over HTTP. The worker and the service share only the broker
and the cache folder, as two machines would."""

from __future__ import annotations

import shutil
import socket
import subprocess

import httpx
import pytest

from tests import media
from tests.procs import free_port, job_done, spawn_singer, wait_for

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def redis_url(tmp_path):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (scripts/install-system.sh installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=0.5).close() or True, 20, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


def test_jobs_run_on_a_celery_worker_process(redis_url, tmp_path):
    shared = tmp_path / "shared-cache"
    base = {"SINGER_CACHE_DIR": str(shared)}
    worker_env = {**base, "SINGER_HOME": str(tmp_path / "worker-home")}
    server_env = {**base, "SINGER_HOME": str(tmp_path / "server-home"), "SINGER_API_KEYS": "k"}
    port = free_port()
    logs = [open(tmp_path / "worker.log", "wb"), open(tmp_path / "server.log", "wb")]
    procs = [
        spawn_singer(["worker", "--broker", redis_url], worker_env, logs[0]),
        spawn_singer(["serve", "--port", str(port), "--broker", redis_url], server_env, logs[1]),
    ]
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": "k"}, timeout=10)
        wait_for(lambda: client.get("/healthz").status_code == 200, 60, "singer serve")
        note = media.voice_wav(tmp_path / "note.wav", seconds=2.0)
        with open(note, "rb") as f:
            r = client.post("/v1/conversions", files={"file": ("n.wav", f, "audio/wav")}, data={"voice": "ayana"})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        job = wait_for(lambda: job_done(client, job_id), 180, "the job")
        assert job["state"] == "done", (job, (tmp_path / "worker.log").read_text()[-2000:])
        body = client.get(job["result"]["url"])
        assert body.status_code == 200 and body.content[:4] == b"OggS"
        events = client.get(f"/v1/jobs/{job_id}/events").text
        assert "event: step_end" in events and "event: done" in events  # progress came back through Redis
        assert (shared / "jobs" / job_id).is_dir() and not (tmp_path / "server-home" / "cache").exists()
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for f in logs:
            f.close()
