"""Where the service keeps its files: each job's output folder, uploads waiting for their job, batch folders.

Job folders and uploads are under the cache folder (SINGER_CACHE_DIR), which Celery workers and the service share;
batch outputs are under the service's home.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings


def job_dir(settings: Settings, job_id: str) -> Path:
    """Where a job's file goes (created): the cache's "jobs" namespace, which Celery workers and the service share
    and ``singer cache prune`` manages."""
    from ..workflow.namespaces import folder

    d = folder(settings, "jobs") / job_id
    d.mkdir(parents=True, exist_ok=True)
    return d


def uploads_dir(settings: Settings) -> Path:
    """Uploaded voice notes wait here for their job."""
    return Path(settings.cache_path) / "uploads"


def batch_uploads_dir(settings: Settings, batch_id: str) -> Path:
    """A batch's uploads: a sub-folder of their own, removed when the batch ends."""
    return uploads_dir(settings) / batch_id


def batch_dir(settings: Settings, batch_id: str) -> Path:
    return Path(settings.home) / "batches" / batch_id


def batch_out(settings: Settings, batch_id: str) -> Path:
    """Where a batch's outputs go, mirroring its input tree."""
    return batch_dir(settings, batch_id) / "out"


def batch_target(settings: Settings, batch: str | None, request: dict) -> Path | None:
    """The output file a batch job's request names, honoured only for a job of a batch and only inside that
    batch's output folder; None otherwise (the job's own folder is used)."""
    if not batch or not request.get("out"):
        return None
    target, root = Path(str(request["out"])).resolve(), batch_out(settings, batch).resolve()
    return target if target != root and target.is_relative_to(root) else None
