"""`singer serve` as users run it: a real uvicorn process with its worker in a child process, then killed with -9
while jobs wait, restarted, and every accepted job finishes."""

from __future__ import annotations

import os
import signal
import sqlite3

import httpx
import pytest

from tests import media
from tests.procs import children, free_port, job_done, spawn_singer, wait_for

pytestmark = pytest.mark.timeout(300)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the worker process")
def test_kill_9_with_queued_jobs_then_restart_finishes_them_all(tmp_path):
    env = {"SINGER_HOME": str(tmp_path / "home"), "SINGER_API_KEYS": "k", "SINGER_MAX_JOBS_PER_KEY": "20"}
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    server = spawn_singer(["serve", "--port", str(port)], env, log)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": "k"}, timeout=10)
    try:
        wait_for(lambda: client.get("/healthz").status_code == 200, 60, "singer serve")
        note = media.voice_wav(tmp_path / "note.wav", seconds=3.0).read_bytes()
        ids = []
        for i in range(6):  # different content each time: no job finds another's steps in the cache
            r = client.post(
                "/v1/conversions",
                files={"file": ("n.wav", note + bytes(i), "audio/wav")},
                data={"voice": "ayana", "key": str(i)},
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["job_id"])
        db = sqlite3.connect(tmp_path / "home" / "jobs.db")
        wait_for(
            lambda: db.execute("SELECT COUNT(*) FROM jobs WHERE state='running'").fetchone()[0] == 1,
            60,
            "a running job",
        )
        worker = children(server.pid)
        assert worker, "the service runs its jobs in a child process"
        server.send_signal(signal.SIGKILL)
        server.wait()
        wait_for(
            lambda: (
                not any(
                    os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().split()[2]
                    for p in worker
                )
            ),
            10,
            "the orphaned worker to die with the service",
        )
        states = [r[0] for r in db.execute("SELECT state FROM jobs ORDER BY created")]
        assert "queued" in states and "done" not in states[-1:]
        server = spawn_singer(["serve", "--port", str(port)], env, log)  # the restart
        wait_for(lambda: client.get("/healthz").status_code == 200, 60, "the restarted service")
        jobs = [wait_for(lambda i=i: job_done(client, i), 180, f"job {i}") for i in ids]
        assert [j["state"] for j in jobs] == ["done"] * 6
        attempts = [r[0] for r in db.execute("SELECT attempts FROM jobs")]
        assert max(attempts) == 2  # the interrupted one ran again; queued ones ran once
    finally:
        server.kill()
        server.wait()
        log.close()
