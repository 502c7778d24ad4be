"""The durable job store and the embedded worker: atomic claims, events, crash recovery, failures as user errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from singer.jobs.store import JobStore
from singer.jobs.worker import EmbeddedWorker, error_dict
from tests import media


@pytest.fixture
def store(tmp_path):
    return JobStore(tmp_path / "jobs.db")


def test_submit_claim_finish_and_events(store):
    job = store.submit("key1", "cover", {"input": "x", "voice": "ayana"}, callback_url=None)
    assert store.get(job.id).state == "queued" and store.get(job.id, owner="other") is None
    claimed = store.claim()
    assert claimed.id == job.id and claimed.state == "running" and claimed.attempts == 1
    assert store.claim() is None
    store.progress(job.id, "separate", 0.4)
    assert store.get(job.id).step == "separate" and store.get(job.id).progress == pytest.approx(0.4)
    store.finish(job.id, {"output": "/x.ogg", "duration": 3.0})
    done = store.get(job.id)
    assert done.state == "done" and done.progress == 1.0 and done.result["duration"] == 3.0
    types = [t for _, t, _ in store.events(job.id)]
    assert types == ["queued", "running", "done"]
    seqs = [s for s, _, _ in store.events(job.id)]
    assert seqs == [1, 2, 3] and [s for s, _, _ in store.events(job.id, after=2)] == [3]


def test_claims_are_atomic_across_threads(store):
    ids = {store.submit("k", "cover", {"input": str(i)}).id for i in range(40)}
    got: list[str] = []
    lock = threading.Lock()

    def take():
        s = JobStore(store.path)  # its own connection, as another worker would have
        while (job := s.claim()) is not None:
            with lock:
                got.append(job.id)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(ids)  # every job once, none twice


def test_recover_requeues_running_jobs(store):
    a = store.submit("k", "cover", {"input": "a"})
    store.claim()
    assert JobStore(store.path).recover() == 1
    assert store.get(a.id).state == "queued" and store.events(a.id)[-1][1] == "requeued"


def test_active_counts_per_owner(store):
    for _ in range(3):
        store.submit("k1", "cover", {})
    store.submit("k2", "cover", {})
    store.finish(store.claim().id, {})
    assert store.active("k1") == 2 and store.active("k2") == 1


def test_errors_reach_the_client_without_internals():
    from singer.errors import InputError

    assert error_dict(InputError("No such song", hint="Check the title")) == {
        "error": InputError.code, "message": "No such song", "hint": "Check the title"}
    e = error_dict(KeyError("secret/path"))
    assert e["error"] == "internal" and "secret" not in e["message"]


def test_worker_runs_a_voice_note_and_reports_progress(settings, tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    note = media.voice_wav(tmp_path / "note.wav", seconds=2.0)
    bad = store.submit("k", "convert", {"input": str(tmp_path / "missing.wav"), "voice": "ayana"})
    job = store.submit("k", "convert", {"input": str(note), "voice": "ayana", "format": "ogg"})
    worker = EmbeddedWorker(settings, store)
    worker.start()
    try:
        deadline = time.time() + 120
        while not (store.get(job.id).finished and store.get(bad.id).finished) and time.time() < deadline:
            time.sleep(0.2)
    finally:
        worker.stop()
    failed, done = store.get(bad.id), store.get(job.id)
    assert failed.state == "failed" and failed.error["error"] != "internal" and "missing.wav" in failed.error["message"]
    assert done.state == "done", done.error
    assert done.result["content_type"] == "audio/ogg" and done.result["duration"] == pytest.approx(2.0, abs=0.1)
    assert os.path.isfile(done.result["output"])
    types = [t for _, t, _ in store.events(job.id)]
    assert types[:3] == ["queued", "running", "run_start"] and "step_end" in types and types[-1] == "done"


_CRASHY = textwrap.dedent("""
    import sys, time
    from singer.config import Settings
    from singer.jobs.store import JobStore
    from singer.jobs.worker import EmbeddedWorker
    settings = Settings(home=sys.argv[2])
    store = JobStore(sys.argv[1])
    class Slow(EmbeddedWorker):
        def run(self, job):
            print("running", job.id, flush=True)
            time.sleep(60)  # killed here, mid-job
    Slow(settings, store).start()
    time.sleep(60)
""")


def test_kill_9_loses_no_accepted_job(settings, tmp_path):
    """A server killed while one job runs and others wait: after a restart every job finishes."""
    db = tmp_path / "jobs.db"
    store = JobStore(db)
    note = media.voice_wav(tmp_path / "note.wav", seconds=1.0)
    ids = [store.submit("k", "convert", {"input": str(note), "voice": "ayana", "format": "wav"}).id for _ in range(3)]
    proc = subprocess.Popen([sys.executable, "-c", _CRASHY, str(db), str(settings.home)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert proc.stdout.readline().startswith("running")
        assert [store.get(i).state for i in ids].count("running") == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    worker = EmbeddedWorker(settings, JobStore(db))
    worker.start()  # the restarted service: the interrupted job goes back to the queue
    try:
        deadline = time.time() + 120
        while not all(store.get(i).finished for i in ids) and time.time() < deadline:
            time.sleep(0.2)
    finally:
        worker.stop()
    assert [store.get(i).state for i in ids] == ["done"] * 3
    assert max(store.get(i).attempts for i in ids) == 2


class _Hooks:
    """A loopback receiver: answers with the next status in ``codes`` and keeps what it got."""

    def __init__(self, codes):
        import http.server

        self.codes, self.got = list(codes), []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append((dict(self.headers), body))
                self.send_response(outer.codes.pop(0) if outer.codes else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()


def test_webhook_is_signed_and_retried():
    import hashlib
    import hmac
    import json

    from singer.jobs.webhook import deliver

    hooks = _Hooks([500, 503, 200])
    try:
        out = deliver(hooks.url, "job.done", {"job_id": "j1"}, "s3cret", allow_private=True, backoff=0.01)
        assert out == {"delivered": True, "attempts": 3, "status": 200, "reason": ""}
        headers, body = hooks.got[-1]
        expect = hmac.new(b"s3cret", headers["X-Singer-Timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
        assert headers["X-Singer-Signature"] == f"sha256={expect}" and json.loads(body)["job"]["job_id"] == "j1"
        refused = deliver(hooks.url, "job.done", {}, "s", allow_private=False)  # loopback: the SSRF policy says no
        assert not refused["delivered"] and refused["attempts"] == 1 and len(hooks.got) == 3
    finally:
        hooks.close()


def test_worker_calls_the_webhook_when_a_job_ends(settings, tmp_path):
    hooks = _Hooks([])
    settings = settings.model_copy(update={"allow_private_urls": True, "webhook_secret": "k"})
    store = JobStore(tmp_path / "jobs.db")
    job = store.submit("k", "convert", {"input": str(tmp_path / "missing.wav"), "voice": "ayana"}, callback_url=hooks.url)
    worker = EmbeddedWorker(settings, store)
    worker.start()
    try:
        deadline = time.time() + 30
        while "webhook" not in [t for _, t, _ in store.events(job.id)] and time.time() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
        hooks.close()
    assert store.events(job.id)[-1][2]["delivered"] is True
    payload = __import__("json").loads(hooks.got[0][1])
    assert payload["event"] == "job.failed" and payload["job"]["error"]["message"] and "owner" not in payload["job"]
