"""The embedded worker: runs queued jobs from a :class:`JobStore` in threads of the service or of its worker process.

Bounded on purpose: by default one heavy job at a time (parallel model calls on one box slow every job down and
can exhaust memory), with the models kept warm in one :class:`~singer.api.Singer` between jobs. Identical
requests share their computation through the step cache: the second one finds every step done.

Progress reaches the store as events (step start / progress / end), throttled to a few per second per step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import error_dict  # noqa: F401 - re-exported: the one builder, singer.errors.error_dict
from .store import Job, JobStore


class ProgressHooks:
    """Workflow progress hooks that emit job events (progress throttled to a few per second per step).

    ``emit(type, data)`` goes to the job store here (:func:`store_event`) or, on a Celery worker, to Redis, from
    where the service copies it into its store: one event format either way."""

    def __init__(self, emit: Callable[[str, dict], None], min_interval: float = 0.25):
        self.emit, self.min_interval = emit, min_interval
        self._last = 0.0
        self.steps: list[str] = []
        self.done = 0

    def _overall(self, fraction: float) -> float:
        return round((self.done + fraction) / max(len(self.steps), 1), 4)

    def on_run_start(self, run_id: str, workflow: str, steps: list[str]) -> None:
        self.steps, self.done = list(steps), 0
        self.emit("run_start", {"workflow": workflow, "steps": list(steps)})

    def on_step_start(self, step: str, cached: bool) -> None:
        self.emit("step_start", {"step": step, "cached": cached, "progress": self._overall(0.0)})

    def on_step_progress(self, step: str, fraction: float, message: str | None) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval and fraction < 1.0:
            return
        self._last = now
        self.emit(
            "step_progress",
            {"step": step, "fraction": round(fraction, 4), "progress": self._overall(fraction), "message": message},
        )

    def on_step_end(self, step: str, cached: bool, seconds: float) -> None:
        self.done += 1
        self.emit(
            "step_end", {"step": step, "cached": cached, "seconds": round(seconds, 3), "progress": self._overall(0.0)}
        )

    def on_run_end(self, run_id: str, ok: bool) -> None:
        return None


def store_event(store: JobStore, job_id: str, type_: str, data: dict) -> None:
    """Record a progress event and move the job's step/progress along with it."""
    if "step" in data and "progress" in data:
        store.progress(job_id, data["step"], data["progress"])
    store.add_event(job_id, type_, data)


def run_request(
    singer: Any,
    settings: Any,
    job_id: str,
    kind: str,
    request: dict,
    hooks: Any,
    batch: str | None = None,
    owner: str = "",
) -> dict:
    """Run one job's request with ``singer``; the result as the store keeps it. Raises on failure.

    The output goes to the job's own folder, except for a job of ``batch`` whose request names an ``out`` inside
    that batch's output folder (the server sets it; see :func:`batch_target`)."""
    from ..api import CoverRequest
    from ..audio import content_type

    fields = {k: v for k, v in request.items() if k not in ("out", "rel")}
    target = batch_target(settings, batch, request)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
    out = str(target) if target is not None else str(job_dir(settings, job_id)) + "/"
    t0 = time.perf_counter()
    res = (singer.convert if kind == "convert" else singer.cover)(
        CoverRequest(**fields, out=out), hooks, remote_policy(settings, owner)
    )
    return {
        "output": str(res.output),
        "title": res.title,
        "voice": res.voice,
        "format": res.format,
        "duration": res.duration,
        "content_type": content_type(res.format),
        "run_id": res.run.run_id,
        "pitch": res.pitch,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def remote_policy(settings: Any, owner: str = ""):
    """What a job of the service may read: its own upload (uploads folder), files under SINGER_BATCH_ROOTS, URLs
    and search text; never another file of this machine. Uploads are held to SINGER_MAX_UPLOAD_DURATION of decoded
    audio."""
    from ..engines.sources.inputs import InputPolicy

    return InputPolicy.remote(settings, tuple(settings.batch_root_paths), uploads_dir(settings), owner)


def batch_target(settings: Any, batch: str | None, request: dict) -> Path | None:
    """The output file a batch job's request names, honoured only for a job of a batch and only inside that
    batch's output folder; None otherwise (the job's own folder is used)."""
    from .batches import batch_out

    if not batch or not request.get("out"):
        return None
    target, root = Path(str(request["out"])).resolve(), batch_out(settings, batch).resolve()
    return target if target != root and target.is_relative_to(root) else None


def place_output(settings: Any, job: Job, result: dict) -> dict:
    """Move a batch job's output that was made elsewhere (a Celery worker writes to its job folder in the shared
    cache) to its place in the batch's output tree; the result with the new path. Other jobs: unchanged."""
    import os
    import shutil

    target = batch_target(settings, job.batch, job.request)
    src = Path(result.get("output", ""))
    if target is None or src == target:
        return result
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{job.id[:8]}.part")
    shutil.move(src, tmp)  # across file systems too; then an atomic rename into place
    os.replace(tmp, target)
    return {**result, "output": str(target)}


def job_dir(settings: Any, job_id: str) -> Path:
    """Where a job's file goes: under the cache folder, which Celery workers and the service share."""
    from ..workflow.namespaces import folder

    d = folder(settings, "jobs") / job_id
    d.mkdir(parents=True, exist_ok=True)
    return d


def uploads_dir(settings: Any) -> Path:
    """Uploaded voice notes wait here for their job: under the cache folder, shared with Celery workers."""
    return Path(settings.cache_path) / "uploads"


def batch_uploads_dir(settings: Any, batch_id: str) -> Path:
    """A batch's uploads: a sub-folder of their own, removed when the batch ends."""
    return uploads_dir(settings) / batch_id


def job_ended(settings: Any, store: JobStore, job_id: str) -> None:
    """A job ended: remove its upload, call its webhook, if any, in a thread of its own (a slow receiver holds
    up nothing), and end its batch if it was the batch's last job."""
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
            job.public,
            "job",
            lambda outcome: store.add_event(job_id, "webhook", outcome),
        )
    if job.batch:
        batch_ended(settings, store, job.batch)


def batch_ended(settings: Any, store: JobStore, batch_id: str) -> bool:
    """If none of the batch's jobs is left to run: mark it ended (once, whoever calls first), remove its uploads
    folder and call its webhook (event ``batch.done``, the batch's status as the payload). True if it ended now."""
    import shutil

    from .batches import status

    batch = store.batches.end(batch_id)
    if batch is None:
        return False
    shutil.rmtree(batch_uploads_dir(settings, batch_id), ignore_errors=True)
    if batch.callback_url:
        _notify(
            settings,
            batch.callback_url,
            "batch.done",
            lambda: status(batch, store.batches.jobs(batch_id)),
            "batch",
            lambda outcome: store.batches.set_webhook(batch_id, outcome),
        )
    return True


def _notify(
    settings: Any, url: str, event: str, payload: Callable[[], dict], key: str, record: Callable[[dict], None]
) -> None:
    """Call a webhook in a thread of its own (a slow receiver holds up nothing) and ``record`` its outcome."""

    def call() -> None:
        from .webhook import deliver

        record(deliver(url, event, payload(), settings.webhook_secret, allow_private=settings, key=key))

    threading.Thread(target=call, name=f"webhook-{event}", daemon=True).start()


def end_batches(settings: Any, store: JobStore) -> None:
    """At start: batches whose last job ended just before a crash are ended now (webhook included)."""
    for batch_id in store.batches.unended():
        batch_ended(settings, store, batch_id)


class EmbeddedWorker:
    """``concurrency`` threads taking jobs from ``store`` and running them with one warm ``Singer``."""

    def __init__(
        self, settings: Any, store: JobStore, concurrency: int = 1, singer: Any = None, idle_poll: float = 1.0
    ):
        from ..api import Singer

        self.settings, self.store, self.idle_poll = settings, store, idle_poll
        self.singer = singer or Singer(settings)
        self.concurrency = max(1, concurrency)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.store.recover()  # jobs a previous process left running run again (their finished steps are cached)
        end_batches(self.settings, self.store)
        for i in range(self.concurrency):
            t = threading.Thread(target=self._loop, name=f"singer-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.store.wake()
        for t in self._threads:
            t.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.store.claim()
            if job is None:
                self.store.wait(self.idle_poll)  # woken at once by a submission in this process
                continue
            self.run(job)

    def run(self, job: Job) -> None:
        """Run one claimed job to done/failed (never raises)."""
        try:
            hooks = ProgressHooks(lambda t, d: store_event(self.store, job.id, t, d))
            self.store.finish(
                job.id,
                run_request(
                    self.singer, self.settings, job.id, job.kind, job.request, hooks, batch=job.batch, owner=job.owner
                ),
            )
        except Exception as e:  # every failure becomes the job's error; the worker carries on
            self.store.fail(job.id, error_dict(e))
        job_ended(self.settings, self.store, job.id)


# ---- the worker as a child process of the service -------------------------------------------------------------------
def _die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent dies (a service killed with -9 leaves no worker
    behind to race the next one's)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def process_main(settings_json: str, parent_pid: int) -> None:
    """Entry point of the worker process ``singer serve`` starts: the web process keeps the CPU it needs to answer
    status calls quickly (the jobs run at a lower priority, and never share its interpreter lock)."""
    import os

    from ..config import Settings

    _die_with_parent()
    os.nice(10)
    settings = Settings.model_validate_json(settings_json)
    worker = EmbeddedWorker(
        settings, JobStore(settings.home / "jobs.db"), concurrency=settings.workers, idle_poll=0.2
    )  # submissions come from another process: poll the queue
    worker.start()
    while os.getppid() == parent_pid:  # the fallback where prctl is missing
        time.sleep(1.0)
    os._exit(0)


class WorkerProcess:
    """Start/stop :func:`process_main` in a spawned child (the service's ``worker_mode="process"``)."""

    def __init__(self, settings: Any):
        self.settings = settings
        self.proc: Any = None

    def start(self) -> None:
        import multiprocessing
        import os

        ctx = multiprocessing.get_context("spawn")
        self.proc = ctx.Process(
            target=process_main, args=(self.settings.model_dump_json(), os.getpid()), name="singer-worker", daemon=True
        )
        self.proc.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.terminate()  # a job cut short here is queued again at the next start
            self.proc.join(timeout)
            if self.proc.is_alive():
                self.proc.kill()
