"""Scale-out on Celery with a Redis broker: ``singer serve --broker URL`` + ``singer worker --broker URL``.

The service stays the source of truth: jobs are accepted into its SQLite store exactly as with the embedded
worker. A dispatcher thread sends each queued job to Celery (task id = job id) and follows it: workers push
progress events onto a Redis list per job, the dispatcher copies them into the store (so SSE and polling work
unchanged) and records the task's outcome. Delivery is at-least-once: ``acks_late`` with
``reject_on_worker_lost`` gives a job back to the queue when a worker dies, the broker's visibility timeout is
longer than the longest job, and a re-run finds its finished steps in the shared step cache (SINGER_CACHE_DIR must
be the same path on every machine; two runs of one step wait for each other on its lock).

Priorities survive the trip: a job's ``priority`` (0 interactive, 1 batch) is the task's Redis priority (0 is
taken first), so a voice note sent after a 200-file batch does not wait behind it in the broker. Batch jobs run
on the worker like any job (their output lands in the job's folder in the shared cache) and the dispatcher moves
each output into its batch's tree on the service's disk.
"""

from __future__ import annotations

import json
import threading
import time
from functools import lru_cache
from typing import Any

from ..config import Settings
from ..errors import SingerError, error_dict
from .db import Job
from .execute import Outcome, ProgressHooks, run_job, store_event
from .lifecycle import PLAIN, Views, end_batches, job_ended, place_output
from .store import JobStore
from .worker import STOP_TIMEOUT_S

TASK = "singer.run_job"
EVENTS = "singer:events:{}"  # a Redis list per job
EVENTS_TTL = 7 * 24 * 3600  # seconds the broker keeps a job's events and its task result
MAX_PRIORITY = 9  # Redis priorities 0..9, 0 taken first
TASK_RETRIES, RETRY_DELAY_S = 3, 10  # a task that lost its broker connection
BROKER_RETRY_S = 2.0  # the dispatcher's pause while the broker cannot be reached
FOLLOW_LIMIT = 10_000  # running jobs the dispatcher follows per round


@lru_cache(maxsize=4)
def make_celery(broker: str, job_timeout: float, concurrency: int = 1) -> Any:
    from celery import Celery

    app = Celery("singer", broker=broker, backend=broker)
    # visibility: longer than any job, no second delivery mid-run; priority_steps: a list per priority 0..9 (the
    # default steps [0, 3, 6, 9] would file batch jobs' 1 with the interactive 0)
    visibility = {"visibility_timeout": int(job_timeout * 2)}
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={**visibility, "priority_steps": list(range(MAX_PRIORITY + 1))},
        result_backend_transport_options=visibility,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=EVENTS_TTL,
        task_time_limit=int(job_timeout),
        worker_concurrency=concurrency,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    app.task(name=TASK, bind=True, max_retries=TASK_RETRIES, default_retry_delay=RETRY_DELAY_S)(_run_job)
    return app


@lru_cache(maxsize=1)
def _worker_singer() -> tuple[Any, Any]:
    """One Singer per worker process: its models stay warm from job to job."""
    from ..api import Singer
    from ..config import Settings

    settings = Settings()
    return settings, Singer(settings)


def _run_job(task: Any, job_id: str, kind: str, request: dict, owner: str = "") -> dict:
    """The Celery task: run the job, push events to Redis, return its :class:`Outcome` as a dict.
    A user error is an answer (failed), not a retry; an infrastructure error (lost connection) is retried."""
    import redis

    settings, singer = _worker_singer()
    r = redis.Redis.from_url(task.app.conf.broker_url)
    key = EVENTS.format(job_id)

    def emit(type_: str, data: dict) -> None:
        r.rpush(key, json.dumps({"type": type_, "data": data}))
        r.expire(key, EVENTS_TTL)

    lost = (ConnectionError, redis.ConnectionError)
    try:
        outcome = run_job(singer, settings, job_id, kind, request, ProgressHooks(emit), owner=owner, reraise=lost)
    except lost as e:
        raise task.retry(exc=e) from e
    return outcome.to_dict()


class CeleryDispatcher:
    """The service's side: sends queued jobs to Celery and mirrors their progress and outcome into the store."""

    def __init__(self, settings: Settings, store: JobStore, poll: float = 0.25, views: Views = PLAIN):
        import redis

        self.settings, self.store, self.poll, self.views = settings, store, poll, views
        self.app = make_celery(settings.broker, settings.job_timeout, settings.workers)
        self.redis = redis.Redis.from_url(settings.broker)
        self._seen: dict[str, int] = {}  # job id -> events copied so far
        self.last_error = ""  # shown by /healthz while the broker cannot be reached
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.store.recover()  # sent before a restart: sent again (same task id); a finished step is not redone
        end_batches(self.settings, self.store, self.views)
        self._thread = threading.Thread(target=self._loop, name="singer-celery-dispatch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                while (job := self.store.claim()) is not None:
                    self._send(job)
                for job in self.store.list(states=("running",), limit=FOLLOW_LIMIT):
                    self._follow(job)
                self.last_error = ""
            except Exception as e:  # the broker is down: the jobs stay in the store; try again
                self.last_error = f"{type(e).__name__}: {e}"
                time.sleep(BROKER_RETRY_S)
            self._stop.wait(self.poll)

    def _send(self, job: Job) -> None:
        self._seen.setdefault(job.id, self.redis.llen(EVENTS.format(job.id)))  # a re-sent job: skip old events
        request = {k: v for k, v in job.request.items() if k != "out"}  # the worker's disk is not the service's
        self.app.send_task(
            TASK, args=[job.id, job.kind, request, job.owner], task_id=job.id, priority=min(job.priority, MAX_PRIORITY)
        )

    def _follow(self, job: Job) -> None:
        key = EVENTS.format(job.id)
        start = self._seen.get(job.id, 0)
        for raw in self.redis.lrange(key, start, -1):
            event = json.loads(raw)
            store_event(self.store, job.id, event["type"], event["data"])
            start += 1
        self._seen[job.id] = start
        res = self.app.AsyncResult(job.id)
        if not res.ready():
            return
        if res.successful() and isinstance(res.result, dict):
            outcome = Outcome.from_dict(res.result)
        else:
            failure = res.result if isinstance(res.result, BaseException) else RuntimeError("the worker gave no result")
            outcome = Outcome.failed(failure)
        if outcome.ok:
            try:
                self.store.finish(job.id, place_output(self.settings, job, outcome.result or {}))
            except OSError:  # the worker's file is not where the service looks: the cache is not shared
                self.store.fail(
                    job.id,
                    error_dict(
                        SingerError(
                            "The worker's output file is not reachable from the service.",
                            hint="SINGER_CACHE_DIR must be one shared path on every machine.",
                        )
                    ),
                )
        else:
            self.store.fail(job.id, outcome.error or error_dict(RuntimeError("unknown")))
        self._seen.pop(job.id, None)
        job_ended(self.settings, self.store, job.id, self.views)


def run_worker(settings: Settings) -> None:
    """``singer worker``: a Celery worker for ``settings.broker`` (blocks)."""
    app = make_celery(settings.broker, settings.job_timeout, settings.workers)
    app.worker_main(
        [
            "worker",
            "--loglevel=WARNING",
            f"--concurrency={settings.workers}",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            "celery",
        ]
    )
