"""Durable job store: jobs and their progress events in one SQLite file (WAL), safe across threads and processes.

A job is accepted only once its row is committed, so a crash (even kill -9) after the answer loses nothing:
:meth:`JobStore.recover` puts jobs that were running back in the queue, and the workflow's step cache means the
steps they had finished are not computed again. Workers take jobs with :meth:`JobStore.claim`, an atomic
``UPDATE ... RETURNING`` on the queued job with the lowest ``priority`` (0 = interactive, 1 = batch), oldest
first, so two workers never run the same job and a single voice note never waits behind a 200-file batch.

Batches (``singer/jobs/batches.py``, reached as ``store.batches``) are rows of their own whose files are ordinary
jobs carrying the batch id. Older database files gain the new columns when first opened (:func:`_migrate`).

Events (step start / progress / end, done, failed) are rows with a per-job sequence number: the HTTP service
streams them as Server-Sent Events and a client that reconnects resumes from its last event id.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..redact import redact

STATES = ("queued", "running", "done", "failed")
ACTIVE = ("queued", "running")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, kind TEXT NOT NULL, request TEXT NOT NULL,
    state TEXT NOT NULL, step TEXT NOT NULL DEFAULT '', progress REAL NOT NULL DEFAULT 0,
    error TEXT, result TEXT, callback_url TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL, updated REAL NOT NULL, batch TEXT, priority INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, state);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, created REAL NOT NULL, request TEXT NOT NULL, out TEXT NOT NULL,
    total INTEGER NOT NULL, callback_url TEXT, ended REAL, webhook TEXT
);
CREATE INDEX IF NOT EXISTS batches_owner ON batches (owner, ended)
"""
# Columns added after the first release: (table, column, declaration); files made before get them on open.
_COLUMNS = [("jobs", "batch", "TEXT"), ("jobs", "priority", "INTEGER NOT NULL DEFAULT 0")]
# Indexes on those columns (created after the columns exist); jobs_queue (state, created) is replaced by jobs_claim.
_INDEXES = """
DROP INDEX IF EXISTS jobs_queue;
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (state, priority, created);
CREATE INDEX IF NOT EXISTS jobs_batch ON jobs (batch, state)
"""


def _migrate(db: sqlite3.Connection) -> None:
    """Create the tables, add missing columns to an older file, create the indexes: one transaction, so two
    processes opening the same file at once cannot both add a column."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for stmt in filter(str.strip, _SCHEMA.split(";")):
            db.execute(stmt)
        for table, column, decl in _COLUMNS:
            if column not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        for stmt in filter(str.strip, _INDEXES.split(";")):
            db.execute(stmt)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


@dataclass
class Job:
    id: str
    owner: str  # the API key's id: jobs are visible to their owner only
    kind: str  # "cover" | "convert"
    request: dict
    state: str = "queued"
    step: str = ""
    progress: float = 0.0
    error: dict | None = None  # {"error": code, "message": ..., "hint": ...}
    result: dict | None = None  # {"output": path, "format", "duration", "content_type", "title", ...}
    callback_url: str | None = None
    attempts: int = 0
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    batch: str | None = None  # the batch it belongs to (POST /v1/batches), if any
    priority: int = 0  # claimed lowest first: 0 interactive, 1 batch

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def to_dict(self) -> dict:
        return asdict(self)

    def public(self) -> dict:
        """What clients see (API answers, webhooks): no owner, no request, no server paths."""
        result = public_result(self.id, self.result) if self.result else None
        return {
            "job_id": self.id,
            "kind": self.kind,
            "state": self.state,
            "step": self.step,
            "progress": min(max(self.progress, 0.0), 1.0),
            "error": self.error,
            "result": result,
            "batch": self.batch,
            "created": self.created,
            "updated": self.updated,
        }


def public_result(job_id: str, r: dict) -> dict:
    """A job's result as clients see it: a link to the file, never the server's path or run id."""
    return {
        "url": f"/v1/jobs/{job_id}/result",
        "content_type": r.get("content_type", "application/octet-stream"),
        "format": r.get("format", ""),
        "duration": r.get("duration", 0.0),
        "title": r.get("title", ""),
        "voice": r.get("voice", ""),
        "pitch": r.get("pitch"),
    }


def _job(row: sqlite3.Row) -> Job:
    d = dict(row)
    for k in ("request", "error", "result"):
        d[k] = json.loads(d[k]) if d[k] else ({} if k == "request" else None)
    return Job(**d)


class JobStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._changed = threading.Condition()
        _migrate(self._db())

    def _db(self) -> sqlite3.Connection:
        """One connection per thread (sqlite3 objects must not cross threads); autocommit, WAL, busy timeout."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def wake(self) -> None:
        """Wake whoever waits in :meth:`wait` in this process (a submission, an event, a stop)."""
        with self._changed:
            self._changed.notify_all()

    def wait(self, timeout: float) -> None:
        """Block until something changes in this process's store (or ``timeout``): workers and event streams."""
        with self._changed:
            self._changed.wait(timeout)

    # ---- jobs -----------------------------------------------------------------------------------------------------
    def submit(
        self, owner: str, kind: str, request: dict, callback_url: str | None = None, max_active: int | None = None
    ) -> Job | None:
        """Queue a job; with ``max_active``, only if ``owner`` has fewer queued + running jobs (else None). The
        count and the insert are one transaction, so concurrent submissions cannot overshoot the limit."""
        job = Job(uuid.uuid4().hex, owner, kind, request, callback_url=callback_url)
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            if max_active is not None and self.active(owner) >= max_active:
                db.execute("ROLLBACK")
                return None
            db.execute(
                "INSERT INTO jobs (id, owner, kind, request, state, callback_url, created, updated) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (job.id, owner, kind, json.dumps(request), "queued", callback_url, job.created, job.updated),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.add_event(job.id, "queued", {"state": "queued"})
        return job

    def get(self, job_id: str, owner: str | None = None) -> Job | None:
        row = self._db().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        job = _job(row) if row else None
        return job if job and (owner is None or job.owner == owner) else None

    def list(self, owner: str | None = None, states: tuple[str, ...] = STATES, limit: int = 100) -> list[Job]:
        marks = ",".join("?" * len(states))
        sql, args = f"SELECT * FROM jobs WHERE state IN ({marks})", list(states)
        if owner is not None:
            sql, args = sql + " AND owner = ?", [*args, owner]
        rows = self._db().execute(sql + " ORDER BY created LIMIT ?", (*args, limit)).fetchall()
        return [_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Jobs per state (all owners)."""
        rows = self._db().execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {s: 0 for s in STATES} | {r[0]: r[1] for r in rows}

    def active(self, owner: str) -> int:
        """Queued + running jobs of ``owner`` outside batches (for the per-key concurrency limit; batches have
        their own, ``store.batches.active``)."""
        return (
            self._db()
            .execute(
                "SELECT COUNT(*) FROM jobs WHERE owner = ? AND state IN ('queued', 'running') AND batch IS NULL",
                (owner,),
            )
            .fetchone()[0]
        )

    @cached_property
    def batches(self):
        """Batch persistence on this store's database (:class:`~singer.jobs.batches.BatchStore`)."""
        from .batches import BatchStore

        return BatchStore(self)

    def claim(self) -> Job | None:
        """Take the queued job with the lowest priority, oldest first (atomically: one worker gets it) and mark it
        running."""
        row = (
            self._db()
            .execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, updated = ? WHERE id = "
                "(SELECT id FROM jobs WHERE state = 'queued' ORDER BY priority, created LIMIT 1) AND state = 'queued' "
                "RETURNING *",
                (time.time(),),
            )
            .fetchone()
        )
        if row is None:
            return None
        job = _job(row)
        self.add_event(job.id, "running", {"state": "running", "attempt": job.attempts})
        return job

    def progress(self, job_id: str, step: str, fraction: float) -> None:
        self._db().execute(
            "UPDATE jobs SET step = ?, progress = ?, updated = ? WHERE id = ?",
            (step, float(fraction), time.time(), job_id),
        )

    def finish(self, job_id: str, result: dict) -> None:
        self._end(job_id, "done", result=result)

    def fail(self, job_id: str, error: dict) -> None:
        self._end(job_id, "failed", error=error)

    def _end(self, job_id: str, state: str, result: dict | None = None, error: dict | None = None) -> None:
        error = redact(error) if error is not None else None  # clients see it: no server paths
        self._db().execute(
            "UPDATE jobs SET state = ?, result = ?, error = ?, updated = ?, "
            "progress = CASE WHEN ? = 'done' THEN 1.0 ELSE progress END WHERE id = ?",
            (
                state,
                json.dumps(result) if result is not None else None,
                json.dumps(error) if error is not None else None,
                time.time(),
                state,
                job_id,
            ),
        )
        self.add_event(
            job_id,
            state,
            {
                "state": state,
                **({"result": public_result(job_id, result)} if result else {}),
                **({"error": error} if error else {}),
            },
        )

    def recover(self) -> int:
        """After a crash: jobs left running go back to the queue (they resume from the step cache)."""
        cur = self._db().execute(
            "UPDATE jobs SET state = 'queued', updated = ? WHERE state = 'running' RETURNING id", (time.time(),)
        )
        ids = [r[0] for r in cur.fetchall()]
        for job_id in ids:
            self.add_event(job_id, "requeued", {"state": "queued", "reason": "the service restarted"})
        return len(ids)

    # ---- events ---------------------------------------------------------------------------------------------------
    def add_event(self, job_id: str, type_: str, data: dict[str, Any]) -> int:
        """Append an event (clients read it: server paths are removed from its strings)."""
        data = redact(data)
        db = self._db()
        for _ in range(5):  # two writers may pick the same next seq: the primary key refuses one, it retries
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE job_id = ?", (job_id,)).fetchone()[0]
            try:
                db.execute(
                    "INSERT INTO events (job_id, seq, type, data, at) VALUES (?,?,?,?,?)",
                    (job_id, seq, type_, json.dumps(data), time.time()),
                )
                break
            except sqlite3.IntegrityError:
                continue
        self.wake()
        return seq

    def events(self, job_id: str, after: int = 0) -> list[tuple[int, str, dict]]:
        rows = (
            self._db()
            .execute("SELECT seq, type, data FROM events WHERE job_id = ? AND seq > ? ORDER BY seq", (job_id, after))
            .fetchall()
        )
        return [(r[0], r[1], json.loads(r[2])) for r in rows]
