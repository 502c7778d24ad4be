"""Batches: the folder run of ``singer batch`` as one HTTP request, on the service's ordinary job queue.

A batch is a row of its own (owner, request, output folder, size) and each of its files is an ordinary job with
the batch id and priority 1, so workers take every interactive job (priority 0) first. The batch and all its jobs
are written in one transaction: a batch is never half accepted. A file refused at submission (an upload that is
not audio) is a job created ``failed`` with its user message, as the CLI records a bad file and carries on.

Outputs go to ``<home>/batches/<id>/out/`` (:func:`singer.jobs.paths.batch_out`) mirroring the input tree;
:func:`write_zip` packs them with the same ``batch-summary.json`` / ``.csv`` the CLI writes. A batch has ended
when none of its jobs is queued or running; :meth:`BatchStore.end` marks that once (its webhook is called once).
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from .db import BATCH, STATES, Database, Job, insert_job, job_from_row


@dataclass
class BatchItem:
    """One file of a batch as :meth:`BatchStore.create` takes it."""

    rel: str  # the input's path relative to the batch folder (an upload: its sanitized file name)
    kind: str  # "convert" | "cover"
    request: dict  # the job's request, "out" included (set by the server, never by a client)
    error: dict | None = None  # refused at submission: the job is created failed with this error


@dataclass
class Batch:
    id: str
    owner: str
    created: float
    request: dict  # {"workflow", "voice", "format", "key", "folder"}
    out: str  # the output folder (server side)
    total: int
    callback_url: str | None = None
    ended: float | None = None  # when its last job ended (set once, by :meth:`BatchStore.end`)
    webhook: dict | None = None  # the outcome of the end-of-batch webhook


def new_id() -> str:
    return uuid.uuid4().hex


def _batch(row: Any) -> Batch:
    d = dict(row)
    d["request"] = json.loads(d["request"])
    d["webhook"] = json.loads(d["webhook"]) if d["webhook"] else None
    return Batch(**d)


_ACTIVE_JOB = "SELECT 1 FROM jobs WHERE jobs.batch = batches.id AND jobs.state IN ('queued', 'running')"


class BatchStore:
    """Batch rows on the jobs database (use ``store.batches``); ``wake`` tells this process's workers that jobs
    were queued."""

    def __init__(self, db: Database, wake: Callable[[], None]):
        self.db, self.wake = db, wake

    def create(
        self,
        batch_id: str,
        owner: str,
        request: dict,
        out: Path | str,
        items: list[BatchItem],
        callback_url: str | None = None,
        max_active: int | None = None,
    ) -> Batch | None:
        """Insert the batch and one job per item (priority :data:`~singer.jobs.db.BATCH`) in one transaction; with
        ``max_active``, only if ``owner`` has fewer unfinished batches (else None, nothing written)."""
        now = time.time()
        batch = Batch(batch_id, owner, now, dict(request), str(out), len(items), callback_url)
        with self.db.transaction() as db:
            if max_active is not None and self.active(owner) >= max_active:
                return None
            db.execute(
                "INSERT INTO batches (id, owner, created, request, out, total, callback_url) VALUES (?,?,?,?,?,?,?)",
                (batch_id, owner, now, json.dumps(batch.request), batch.out, batch.total, callback_url),
            )
            for i, item in enumerate(items):
                created = now + i * 1e-6  # claimed in the order given
                job = Job(
                    uuid.uuid4().hex,
                    owner,
                    item.kind,
                    {**item.request, "rel": item.rel},
                    state="failed" if item.error else "queued",
                    error=item.error,
                    created=created,
                    updated=created,
                    batch=batch_id,
                    priority=BATCH,
                )
                insert_job(db, job)
        self.wake()
        return batch

    def get(self, batch_id: str, owner: str | None = None) -> Batch | None:
        """The batch, or None when it does not exist or belongs to another owner (the two look the same)."""
        row = self.db.conn().execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        batch = _batch(row) if row else None
        return batch if batch and (owner is None or batch.owner == owner) else None

    def jobs(self, batch_id: str) -> list[Job]:
        """The batch's jobs in submission order."""
        rows = (
            self.db.conn().execute("SELECT * FROM jobs WHERE batch = ? ORDER BY created, rowid", (batch_id,)).fetchall()
        )
        return [job_from_row(r) for r in rows]

    def active(self, owner: str) -> int:
        """``owner``'s batches with a job still queued or running (for ``max_batches_per_key``)."""
        return (
            self.db.conn()
            .execute(f"SELECT COUNT(*) FROM batches WHERE owner = ? AND EXISTS ({_ACTIVE_JOB})", (owner,))
            .fetchone()[0]
        )

    def end(self, batch_id: str) -> Batch | None:
        """Mark the batch ended if none of its jobs is queued or running; the batch only to the one caller that
        marked it (atomic), None otherwise."""
        row = (
            self.db.conn()
            .execute(
                f"UPDATE batches SET ended = ? WHERE id = ? AND ended IS NULL AND NOT EXISTS ({_ACTIVE_JOB}) RETURNING *",
                (time.time(), batch_id),
            )
            .fetchone()
        )
        return _batch(row) if row else None

    def unended(self) -> list[str]:
        """Batches whose jobs all ended but that were never marked (the process died in between)."""
        rows = (
            self.db.conn()
            .execute(f"SELECT id FROM batches WHERE ended IS NULL AND NOT EXISTS ({_ACTIVE_JOB})")
            .fetchall()
        )
        return [r[0] for r in rows]

    def set_webhook(self, batch_id: str, outcome: dict) -> None:
        self.db.conn().execute("UPDATE batches SET webhook = ? WHERE id = ?", (json.dumps(outcome), batch_id))


# ---- what clients see ------------------------------------------------------------------------------------------------
def _out_rel(batch: Batch, job: Job) -> str:
    return Path(job.request["out"]).relative_to(batch.out).as_posix()


def status(batch: Batch, jobs: list[Job]) -> dict:
    """The batch as clients see it (its status answer and its webhook): no owner, no server paths. The HTTP layer
    adds the links to the results."""
    counts = {s: sum(j.state == s for j in jobs) for s in STATES}
    ended = counts["done"] + counts["failed"]
    total = len(jobs)
    state = "done" if ended == total else "running" if any(j.attempts for j in jobs) else "queued"
    progress = (ended + sum(j.progress for j in jobs if j.state == "running")) / max(total, 1)
    items = [
        {
            "input": j.request.get("rel", ""),
            "job_id": j.id,
            "state": j.state,
            "error": j.error,
        }
        for j in jobs
    ]
    return {
        "batch_id": batch.id,
        "state": state,
        "workflow": batch.request.get("workflow", "voice_note"),
        "voice": batch.request.get("voice"),
        "created": batch.created,
        "updated": max([batch.created, *(j.updated for j in jobs)]),
        "counts": {"total": total, **counts},
        "progress": round(min(max(progress, 0.0), 1.0), 4),
        "items": items,
    }


def summary_items(batch: Batch, jobs: list[Job]) -> list:
    """The jobs as :class:`singer.batch.Item` rows (outputs relative to the result zip)."""
    from ..batch import Item

    items = []
    for j in jobs:
        result, error = j.result or {}, j.error or {}
        item = Item(
            j.request.get("rel", ""),
            status=j.state,
            message=error.get("message", ""),
            seconds=float(result.get("seconds", 0.0)),
            duration=float(result.get("duration", 0.0)),
        )
        item.run_id = result.get("run_id", "")  # the run that made the output (singer report RUN_ID)
        if j.state == "done":
            if Path(result.get("output", "")).is_file():
                item.output = _out_rel(batch, j)
            else:
                item.status, item.message = "failed", "The output file was removed."
        items.append(item)
    return items


def summary(batch: Batch, jobs: list[Job]) -> dict:
    """The summary ``singer batch`` would write, with outputs relative to the result zip."""
    from ..batch import summarize

    seconds = max([batch.created, *(j.updated for j in jobs)]) - batch.created
    return summarize(batch.request.get("folder") or "", ".", summary_items(batch, jobs), seconds)


def write_zip(batch: Batch, jobs: list[Job], dest: Path, settings: Settings | None = None) -> None:
    """The finished outputs mirroring the input tree, plus ``batch-summary.json`` and ``batch-summary.csv`` as
    ``singer batch`` writes them, and (with ``settings``) ``batch-report.html`` playing the outputs beside it."""
    from ..batch import write_summary

    info = summary(batch, jobs)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp, zipfile.ZipFile(dest, "w") as zf:
        write_summary(Path(tmp), info)
        for job, item in zip(jobs, info["items"], strict=True):
            if item["output"]:  # audio is compressed already: stored as is
                zf.write((job.result or {})["output"], item["output"], compress_type=zipfile.ZIP_STORED)
        for name in ("batch-summary.json", "batch-summary.csv"):
            zf.write(Path(tmp) / name, name, compress_type=zipfile.ZIP_DEFLATED)
        if settings is not None:
            from ..report import batch_html

            zf.writestr("batch-report.html", batch_html(settings, info, Path(".")), zipfile.ZIP_DEFLATED)
