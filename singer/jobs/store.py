"""Durable job store: jobs and their progress events in one SQLite file (WAL), safe across threads and processes.

A job is accepted only once its row is committed, so a crash (even kill -9) after the answer loses nothing:
:meth:`JobStore.recover` puts jobs that were running back in the queue, and the workflow's step cache means the
steps they had finished are not computed again. Workers take jobs with :meth:`JobStore.claim`, an atomic
``UPDATE ... RETURNING`` on the queued job with the lowest ``priority`` (0 = interactive, 1 = batch), oldest
first, so two workers never run the same job and a single voice note never waits behind a 200-file batch.

Batches (:class:`~singer.jobs.batches.BatchStore`, reached as ``store.batches``) are rows of their own whose files
are ordinary jobs carrying the batch id. The schema, its migrations and the job-row insert are in
:mod:`singer.jobs.db`.

Events (step start / progress / end, done, failed) are rows with a per-job sequence number: the HTTP service
streams them as Server-Sent Events and a client that reconnects resumes from its last event id.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import time
import uuid
from functools import cached_property
from pathlib import Path
from typing import Any

from ..redact import redact
from .batches import BatchStore
from .db import STATES, Database, Job, get_job, insert_job, job_from_row, public_result

LIST_LIMIT = 100  # jobs a listing returns unless told
EVENT_WRITE_TRIES = 5  # two writers may pick the same next event number: the loser tries again


class JobStore:
    def __init__(self, path: Path):
        self.db = Database(path)
        self.path = self.db.path
        self._changed = threading.Condition()

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
        with self.db.transaction() as db:
            if max_active is not None and self.active(owner) >= max_active:
                return None
            insert_job(db, job)
        self.wake()
        return job

    def get(self, job_id: str, owner: str | None = None) -> Job | None:
        job = get_job(self.db.conn(), job_id)
        return job if job and (owner is None or job.owner == owner) else None

    def list(
        self, owner: str | None = None, states: tuple[str, ...] = STATES, limit: int = LIST_LIMIT
    ) -> builtins.list[Job]:
        marks = ",".join("?" * len(states))
        sql, args = f"SELECT * FROM jobs WHERE state IN ({marks})", list(states)
        if owner is not None:
            sql, args = sql + " AND owner = ?", [*args, owner]
        rows = self.db.conn().execute(sql + " ORDER BY created LIMIT ?", (*args, limit)).fetchall()
        return [job_from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Jobs per state (all owners)."""
        rows = self.db.conn().execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {s: 0 for s in STATES} | {r[0]: r[1] for r in rows}

    def cpu_seconds_by_step(self) -> dict[str, float]:
        """CPU-seconds spent per step id over every finished job still in the store (all owners), for /metrics."""
        rows = (
            self.db.conn()
            .execute(
                "SELECT s.key, SUM(s.value) FROM jobs, json_each(jobs.result, '$.cost.steps_cpu_seconds') AS s "
                "WHERE jobs.state = 'done' AND json_valid(jobs.result) GROUP BY s.key"
            )
            .fetchall()
        )
        return {str(r[0]): float(r[1] or 0.0) for r in rows}

    def active(self, owner: str) -> int:
        """Queued + running jobs of ``owner`` outside batches (for the per-key concurrency limit; batches have
        their own, ``store.batches.active``)."""
        return (
            self.db.conn()
            .execute(
                "SELECT COUNT(*) FROM jobs WHERE owner = ? AND state IN ('queued', 'running') AND batch IS NULL",
                (owner,),
            )
            .fetchone()[0]
        )

    @cached_property
    def batches(self) -> BatchStore:
        """Batch persistence on this store's database."""
        return BatchStore(self.db, self.wake)

    def claim(self) -> Job | None:
        """Take the queued job with the lowest priority, oldest first (atomically: one worker gets it) and mark it
        running."""
        row = (
            self.db.conn()
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
        job = job_from_row(row)
        self.add_event(job.id, "running", {"state": "running", "attempt": job.attempts})
        return job

    def progress(self, job_id: str, step: str, fraction: float) -> None:
        self.db.conn().execute(
            "UPDATE jobs SET step = ?, progress = ?, updated = ? WHERE id = ?",
            (step, float(fraction), time.time(), job_id),
        )

    def finish(self, job_id: str, result: dict) -> None:
        self._end(job_id, "done", result=result)

    def fail(self, job_id: str, error: dict) -> None:
        self._end(job_id, "failed", error=error)

    def _end(self, job_id: str, state: str, result: dict | None = None, error: dict | None = None) -> None:
        error = redact(error) if error is not None else None  # clients see it: no server paths
        self.db.conn().execute(
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
                **({"result": public_result(result)} if result else {}),
                **({"error": error} if error else {}),
            },
        )

    def recover(self) -> int:
        """After a crash: jobs left running go back to the queue (they resume from the step cache)."""
        cur = self.db.conn().execute(
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
        db = self.db.conn()
        for _ in range(EVENT_WRITE_TRIES):  # the primary key refuses a taken seq: count again
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

    def events(self, job_id: str, after: int = 0) -> builtins.list[tuple[int, str, dict]]:
        rows = (
            self.db.conn()
            .execute("SELECT seq, type, data FROM events WHERE job_id = ? AND seq > ? ORDER BY seq", (job_id, after))
            .fetchall()
        )
        return [(r[0], r[1], json.loads(r[2])) for r in rows]
