"""The jobs database: schema, migrations, one connection per thread, transactions, and the one job-row insert.

One SQLite file (WAL) holds jobs, their events and batches; :class:`~singer.jobs.store.JobStore` and
:class:`~singer.jobs.batches.BatchStore` both work on a :class:`Database`. A job row is written only by
:func:`insert_job`, whether a single submission or a batch files it. Files made by an older release gain the
columns added since when first opened (:func:`migrate`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..redact import redact

STATES = ("queued", "running", "done", "failed")
ACTIVE = ("queued", "running")  # a job in these states may still write its folder
INTERACTIVE, BATCH = 0, 1  # job priorities: claimed lowest first
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another's lock before sqlite gives up

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
    batch: str | None = None  # the batch it belongs to, if any
    priority: int = INTERACTIVE

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def to_dict(self) -> dict:
        return asdict(self)

    def public(self) -> dict:
        """What clients see (API answers, webhooks): no owner, no request, no server paths. The HTTP layer adds
        the link to the result."""
        return {
            "job_id": self.id,
            "kind": self.kind,
            "state": self.state,
            "step": self.step,
            "progress": min(max(self.progress, 0.0), 1.0),
            "error": self.error,
            "result": public_result(self.result) if self.result else None,
            "batch": self.batch,
            "created": self.created,
            "updated": self.updated,
        }


def public_result(r: dict) -> dict:
    """A job's result as clients see it: never the server's path or run id."""
    return {
        "content_type": r.get("content_type", "application/octet-stream"),
        "format": r.get("format", ""),
        "duration": r.get("duration", 0.0),
        "title": r.get("title", ""),
        "voice": r.get("voice", ""),
        "pitch": r.get("pitch"),
        "cost": r.get("cost"),  # CPU-seconds, per step
    }


def job_from_row(row: sqlite3.Row) -> Job:
    d = dict(row)
    for k in ("request", "error", "result"):
        d[k] = json.loads(d[k]) if d[k] else ({} if k == "request" else None)
    return Job(**d)


def migrate(db: sqlite3.Connection) -> None:
    """Create the tables, add missing columns to an older file, create the indexes: one transaction, so two
    processes opening the same file at once cannot both add a column."""
    with transaction(db):
        for stmt in filter(str.strip, _SCHEMA.split(";")):
            db.execute(stmt)
        for table, column, decl in _COLUMNS:
            if column not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        for stmt in filter(str.strip, _INDEXES.split(";")):
            db.execute(stmt)


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (the write lock is taken at once, so a count checked inside holds until the commit);
    committed when the block ends, rolled back when it raises or when it rolled back itself."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        if db.in_transaction:
            db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class Database:
    """The jobs database file: one connection per thread (sqlite3 objects must not cross threads), autocommit
    outside :func:`transaction`, WAL, a busy timeout. Migrated when opened."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        migrate(self.conn())

    def conn(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def transaction(self):
        return transaction(self.conn())


def get_job(db: sqlite3.Connection, job_id: str) -> Job | None:
    row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return job_from_row(row) if row else None


def insert_job(db: sqlite3.Connection, job: Job) -> None:
    """Write a new job row and its first event (sequence 1: its state, with its error if it was refused at
    submission). Call it inside a transaction: the job and its event are stored together or not at all."""
    db.execute(
        "INSERT INTO jobs (id, owner, kind, request, state, error, callback_url, created, updated, batch, priority) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            job.id,
            job.owner,
            job.kind,
            json.dumps(job.request),
            job.state,
            json.dumps(job.error) if job.error else None,
            job.callback_url,
            job.created,
            job.updated,
            job.batch,
            job.priority,
        ),
    )
    data = redact({"state": job.state, **({"error": job.error} if job.error else {})})
    db.execute(
        "INSERT INTO events (job_id, seq, type, data, at) VALUES (?,1,?,?,?)",
        (job.id, job.state, json.dumps(data), time.time()),
    )
