"""The durable job store and the embedded worker: atomic claims, events, crash recovery, failures as user errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from singer.errors import error_dict
from singer.jobs.paths import uploads_dir
from singer.jobs.store import JobStore
from singer.jobs.worker import EmbeddedWorker
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
        "error": InputError.code,
        "message": "No such song",
        "hint": "Check the title",
    }
    e = error_dict(KeyError("secret/path"))
    assert e["error"] == "internal_error" and "secret" not in e["message"] + e["hint"]


def test_worker_runs_a_voice_note_and_reports_progress(settings, tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    uploads = uploads_dir(settings)  # a job reads only its upload (the service's remote input policy)
    uploads.mkdir(parents=True)
    note = media.voice_wav(uploads / "note.wav", seconds=2.0)
    bad = store.submit("k", "convert", {"input": str(uploads / "missing.wav"), "voice": "ayana"})
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
    assert (
        failed.state == "failed"
        and failed.error["error"] != "internal_error"
        and "missing.wav" in failed.error["message"]
    )
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
    uploads_dir(settings).mkdir(parents=True)
    note = media.voice_wav(uploads_dir(settings) / "note.wav", seconds=1.0)
    notes = [note] + [
        Path(shutil.copy(note, note.with_name(f"note{i}.wav"))) for i in (1, 2)
    ]  # a job removes its upload
    ids = [store.submit("k", "convert", {"input": str(n), "voice": "ayana", "format": "wav"}).id for n in notes]
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHY, str(db), str(settings.home)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
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
    job = store.submit(
        "k", "convert", {"input": str(tmp_path / "missing.wav"), "voice": "ayana"}, callback_url=hooks.url
    )
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


# ---- batches ---------------------------------------------------------------------------------------------------------
def _items(n, **request):
    from singer.jobs.batches import BatchItem

    return [
        BatchItem(f"{i}.wav", "convert", {"input": f"/in/{i}.wav", "out": f"/out/{i}.ogg", **request}) for i in range(n)
    ]


def test_interactive_jobs_are_claimed_before_batch_jobs(store):
    """A 200-file batch queued first does not hold up a voice note queued after it."""
    first = store.submit("k", "convert", {"input": "early"})
    batch = store.batches.create("b1", "k", {"workflow": "voice_note"}, "/out", _items(200))
    single = store.submit("k", "convert", {"input": "late"})
    assert store.claim().id == first.id and store.claim().id == single.id  # priority 0, oldest first
    batch_jobs = store.batches.jobs(batch.id)
    assert [store.claim().id for _ in range(200)] == [j.id for j in batch_jobs]  # then the batch, in order
    assert {j.priority for j in batch_jobs} == {1} and store.claim() is None


def test_batch_and_its_jobs_are_one_transaction(store):
    from singer.jobs.batches import BatchItem

    items = [*_items(2), BatchItem("x.wav", "convert", {"input": object()})]  # the third cannot be written
    with pytest.raises(TypeError):
        store.batches.create("b1", "k", {}, "/out", items)
    assert store.batches.get("b1") is None and store.counts()["queued"] == 0  # nothing of it stays
    refused = BatchItem("bad.txt", "convert", {"input": ""}, error={"error": "bad_input", "message": "not audio"})
    batch = store.batches.create("b2", "k", {}, "/out", [*_items(2), refused])
    jobs = store.batches.jobs(batch.id)
    assert [j.state for j in jobs] == ["queued", "queued", "failed"] and jobs[2].error["message"] == "not audio"
    assert [j.request["rel"] for j in jobs] == ["0.wav", "1.wav", "bad.txt"]
    assert [t for _, t, _ in store.events(jobs[2].id)] == ["failed"]
    assert store.batches.get("b2", owner="someone else") is None and store.batches.get("b2", owner="k").total == 3


def test_batch_limits_and_end(store):
    assert store.batches.create("b1", "k", {}, "/out", _items(2), max_active=1) is not None
    assert store.batches.create("b2", "k", {}, "/out", _items(1), max_active=1) is None  # one unfinished batch
    assert store.batches.get("b2") is None and store.batches.active("k") == 1 and store.batches.active("j") == 0
    assert store.active("k") == 0  # batch jobs are not counted against the per-key job limit
    first = store.claim()
    store.finish(first.id, {})
    assert store.batches.end("b1") is None  # a job is still queued
    store.fail(store.claim().id, {"error": "x", "message": "y"})
    assert store.batches.unended() == ["b1"]
    assert store.batches.end("b1").id == "b1" and store.batches.end("b1") is None  # ended once
    assert store.batches.active("k") == 0 and store.batches.unended() == []


def test_old_job_files_are_migrated(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "jobs.db")
    db.executescript("""
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY, owner TEXT NOT NULL, kind TEXT NOT NULL, request TEXT NOT NULL,
            state TEXT NOT NULL, step TEXT NOT NULL DEFAULT '', progress REAL NOT NULL DEFAULT 0,
            error TEXT, result TEXT, callback_url TEXT, attempts INTEGER NOT NULL DEFAULT 0,
            created REAL NOT NULL, updated REAL NOT NULL);
        CREATE INDEX jobs_queue ON jobs (state, created);
        INSERT INTO jobs (id, owner, kind, request, state, created, updated)
            VALUES ('old', 'k', 'cover', '{"input": "x"}', 'queued', 1.0, 1.0);
    """)
    db.close()
    store = JobStore(tmp_path / "jobs.db")
    JobStore(tmp_path / "jobs.db")  # a second opening finds nothing left to do
    old = store.get("old")
    assert old.batch is None and old.priority == 0 and old.request == {"input": "x"}
    store.batches.create("b", "k", {}, "/out", _items(1))
    assert store.claim().id == "old"
    indexes = {r[0] for r in store.db.conn().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"jobs_claim", "jobs_batch"} <= indexes and "jobs_queue" not in indexes


def test_only_a_batch_job_may_name_its_output_and_only_inside_its_batch(settings):
    from singer.jobs.paths import batch_out, batch_target

    out = batch_out(settings, "b1")
    assert batch_target(settings, "b1", {"out": str(out / "sub" / "a.ogg")}) == (out / "sub" / "a.ogg").resolve()
    for batch, target in [
        (None, out / "a.ogg"),
        ("b1", out),
        ("b1", out / ".." / "a.ogg"),
        ("b1", "/etc/x.ogg"),
        ("b2", out / "a.ogg"),
    ]:
        assert batch_target(settings, batch, {"out": str(target)}) is None, (batch, target)


def test_a_batch_calls_its_webhook_once_when_its_last_job_ends(settings, tmp_path):
    from singer.jobs.batches import BatchItem
    from singer.jobs.paths import batch_out

    hooks = _Hooks([])
    settings = settings.model_copy(update={"allow_private_urls": True, "webhook_secret": "k"})
    store = JobStore(tmp_path / "jobs.db")
    out = batch_out(settings, "b1")
    uploads = settings.cache_path / "uploads" / "b1"
    uploads.mkdir(parents=True)
    note = media.voice_wav(uploads / "f00d", seconds=1.0)  # an upload of the batch, under our name
    items = [
        BatchItem(
            "a.wav",
            "convert",
            {"input": str(note), "voice": "ayana", "format": "wav", "out": str(out / "day" / "a.wav")},
        ),
        BatchItem(
            "gone.wav",
            "convert",
            {"input": str(tmp_path / "missing.wav"), "voice": "ayana", "out": str(out / "gone.ogg")},
        ),
    ]
    store.batches.create("b1", "k", {"workflow": "voice_note"}, out, items, callback_url=hooks.url)
    worker = EmbeddedWorker(settings, store)
    worker.start()
    try:
        deadline = time.time() + 120
        while store.batches.get("b1").webhook is None and time.time() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
        hooks.close()
    assert store.batches.get("b1").webhook["delivered"] is True and len(hooks.got) == 1
    payload = __import__("json").loads(hooks.got[0][1])
    assert payload["event"] == "batch.done" and payload["batch"]["batch_id"] == "b1"
    assert payload["batch"]["counts"] == {"total": 2, "queued": 0, "running": 0, "done": 1, "failed": 1}
    done = store.batches.jobs("b1")[0]
    assert done.result["output"] == str((out / "day" / "a.wav").resolve()) and (out / "day" / "a.wav").is_file()
    assert not uploads.exists()  # the batch's uploads went with it
