"""The service's links: where a client fetches a job's result, follows a batch, downloads its zip and report.

The jobs layer knows no URLs; its public views (:meth:`Job.public`, :func:`singer.jobs.batches.status`) gain
their links here, for the routes' answers, the event streams and the webhooks (:class:`LinkedViews`).
"""

from __future__ import annotations

from ..jobs.batches import Batch, status
from ..jobs.db import Job
from ..jobs.lifecycle import Views
from ..jobs.voicejobs import VOICE_RESULT_TYPE


def job_url(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


def job_result_url(job_id: str) -> str:
    return f"/v1/jobs/{job_id}/result"


def batch_url(batch_id: str) -> str:
    return f"/v1/batches/{batch_id}"


def batch_result_url(batch_id: str) -> str:
    return f"/v1/batches/{batch_id}/result"


def batch_report_url(batch_id: str) -> str:
    return f"/v1/batches/{batch_id}/report"


def voice_url(name: str) -> str:
    return f"/v1/voices/{name}"


def linked_result(job_id: str, result: dict | None) -> dict | None:
    """A job's public result with the link to its file first (a voice job's: to the voice)."""
    if not result:
        return result
    if result.get("content_type") == VOICE_RESULT_TYPE:
        return {"url": voice_url(result.get("voice", "")), **result}
    return {"url": job_result_url(job_id), **result}


def public_job(job: Job) -> dict:
    """A job as clients see it, its result's link included."""
    view = job.public()
    return {**view, "result": linked_result(job.id, view["result"])}


def linked_event(job_id: str, data: dict) -> dict:
    """An event as the stream sends it: a ``done`` event's result gains its link."""
    return {**data, "result": linked_result(job_id, data["result"])} if data.get("result") else data


def batch_status(batch: Batch, jobs: list[Job]) -> dict:
    """A batch as clients see it, with the links to each finished file, the zip and the report once it is done."""
    view = status(batch, jobs)
    done = view["state"] == "done"
    items = [
        {**item, "result_url": job_result_url(item["job_id"]) if item["state"] == "done" else None}
        for item in view["items"]
    ]
    return {
        **{k: v for k, v in view.items() if k != "items"},
        "result_url": batch_result_url(batch.id) if done else None,
        "report_url": batch_report_url(batch.id) if done else None,
        "items": items,
    }


class LinkedViews(Views):
    """Webhook bodies with the links a receiver follows."""

    def job(self, job: Job) -> dict:
        return public_job(job)

    def batch(self, batch: Batch, jobs: list[Job]) -> dict:
        return batch_status(batch, jobs)


LINKED = LinkedViews()
