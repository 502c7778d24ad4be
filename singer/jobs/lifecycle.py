"""What happens when a job ends, whichever runner ran it (the embedded worker or the Celery dispatcher).

Its upload is removed, its webhook is called in a thread of its own (a slow receiver holds up nothing), and its
batch ends with it if it was the batch's last job. What a webhook sends is a :class:`Views` payload: the jobs
layer's view has no links; the HTTP service passes one that adds them (:class:`singer.http.links.LinkedViews`).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from ..config import Settings
from .batches import Batch, status
from .db import Job
from .paths import batch_target, batch_uploads_dir, uploads_dir
from .store import JobStore


class Views:
    """What clients see of a job and of a batch (the bodies of their webhooks)."""

    def job(self, job: Job) -> dict:
        return job.public()

    def batch(self, batch: Batch, jobs: list[Job]) -> dict:
        return status(batch, jobs)


PLAIN = Views()


def job_ended(settings: Settings, store: JobStore, job_id: str, views: Views = PLAIN) -> None:
    """A job ended: remove its upload, call its webhook, if any, and end its batch if it was the batch's last
    job."""
    job = store.get(job_id)
    if job is None:
        return
    src = Path(str(job.request.get("input", "")))
    if (job.kind == "convert" and src.parent == uploads_dir(settings)) or (
        job.batch and src.parent == batch_uploads_dir(settings, job.batch)
    ):
        src.unlink(missing_ok=True)
    if job.callback_url:
        _notify(
            settings,
            job.callback_url,
            f"job.{job.state}",
            lambda: views.job(job),
            "job",
            lambda outcome: store.add_event(job_id, "webhook", outcome),
        )
    if job.batch:
        batch_ended(settings, store, job.batch, views)


def batch_ended(settings: Settings, store: JobStore, batch_id: str, views: Views = PLAIN) -> bool:
    """If none of the batch's jobs is left to run: mark it ended (once, whoever calls first), remove its uploads
    folder and call its webhook (event ``batch.done``, the batch's status as the payload). True if it ended now."""
    batch = store.batches.end(batch_id)
    if batch is None:
        return False
    shutil.rmtree(batch_uploads_dir(settings, batch_id), ignore_errors=True)
    if batch.callback_url:
        _notify(
            settings,
            batch.callback_url,
            "batch.done",
            lambda: views.batch(batch, store.batches.jobs(batch_id)),
            "batch",
            lambda outcome: store.batches.set_webhook(batch_id, outcome),
        )
    return True


def end_batches(settings: Settings, store: JobStore, views: Views = PLAIN) -> None:
    """At start: batches whose last job ended just before a crash are ended now (webhook included)."""
    for batch_id in store.batches.unended():
        batch_ended(settings, store, batch_id, views)


def _notify(
    settings: Settings, url: str, event: str, payload: Callable[[], dict], key: str, record: Callable[[dict], object]
) -> None:
    """Call a webhook in a thread of its own (a slow receiver holds up nothing) and ``record`` its outcome."""

    def call() -> None:
        from .webhook import deliver

        record(deliver(url, event, payload(), settings.webhook_secret, allow_private=settings, key=key))

    threading.Thread(target=call, name=f"webhook-{event}", daemon=True).start()


def place_output(settings: Settings, job: Job, result: dict) -> dict:
    """Move a batch job's output that was made elsewhere (a Celery worker writes to its job folder in the shared
    cache) to its place in the batch's output tree; the result with the new path. Other jobs: unchanged."""
    target = batch_target(settings, job.batch, job.request)
    src = Path(result.get("output", ""))
    if target is None or src == target:
        return result
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{job.id[:8]}.part")
    shutil.move(src, tmp)  # across file systems too; then an atomic rename into place
    os.replace(tmp, target)
    return {**result, "output": str(target)}
