"""The embedded worker: runs queued jobs from a :class:`JobStore` in threads of the service or of its worker process.

Bounded on purpose: by default one heavy job at a time (parallel model calls on one box slow every job down and
can exhaust memory), with the models kept warm in one :class:`~singer.api.Singer` between jobs. Identical
requests share their computation through the step cache: the second one finds every step done.

Progress reaches the store as events (step start / progress / end), throttled to a few per second per step.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..config import Settings
from ..errors import error_dict
from .db import Job
from .execute import ProgressHooks, run_job, store_event
from .lifecycle import PLAIN, Views, end_batches, job_ended
from .store import JobStore

IDLE_POLL_S = 1.0  # how often an idle worker looks at the queue (a submission in this process wakes it at once)
CROSS_PROCESS_POLL_S = 0.2  # the worker process: submissions come from the web process, polled
STOP_TIMEOUT_S = 5.0
NICENESS = 10  # the worker process runs below the web process, which answers status calls
PARENT_POLL_S = 1.0


class EmbeddedWorker:
    """``concurrency`` threads taking jobs from ``store`` and running them with one warm ``Singer``."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        concurrency: int = 1,
        singer: Any = None,
        idle_poll: float = IDLE_POLL_S,
        views: Views = PLAIN,
    ):
        from ..api import Singer

        self.settings, self.store, self.idle_poll, self.views = settings, store, idle_poll, views
        self.singer = singer or Singer(settings)
        self.concurrency = max(1, concurrency)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.store.recover()  # jobs a previous process left running run again (their finished steps are cached)
        end_batches(self.settings, self.store, self.views)
        for i in range(self.concurrency):
            t = threading.Thread(target=self._loop, name=f"singer-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
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
        hooks = ProgressHooks(lambda t, d: store_event(self.store, job.id, t, d))
        outcome = run_job(
            self.singer, self.settings, job.id, job.kind, job.request, hooks, batch=job.batch, owner=job.owner
        )
        try:
            if outcome.ok:
                self.store.finish(job.id, outcome.result or {})
            else:
                self.store.fail(job.id, outcome.error or {})
        except Exception as e:  # the result could not be recorded: the job fails, the worker carries on
            self.store.fail(job.id, error_dict(e))
        job_ended(self.settings, self.store, job.id, self.views)


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


def process_main(settings_json: str, parent_pid: int, views: Views = PLAIN) -> None:
    """Entry point of the worker process ``singer serve`` starts: the web process keeps the CPU it needs to answer
    status calls quickly (the jobs run at a lower priority, and never share its interpreter lock)."""
    import os

    from ..config import Settings

    _die_with_parent()
    os.nice(NICENESS)
    settings = Settings.model_validate_json(settings_json)
    store = JobStore(settings.home / "jobs.db")
    EmbeddedWorker(settings, store, settings.workers, idle_poll=CROSS_PROCESS_POLL_S, views=views).start()
    while os.getppid() == parent_pid:  # the fallback where prctl is missing
        time.sleep(PARENT_POLL_S)
    os._exit(0)


class WorkerProcess:
    """Start/stop :func:`process_main` in a spawned child (the service's ``worker_mode="process"``)."""

    def __init__(self, settings: Settings, views: Views = PLAIN):
        self.settings, self.views = settings, views
        self.proc: Any = None

    def start(self) -> None:
        import multiprocessing
        import os

        ctx = multiprocessing.get_context("spawn")
        self.proc = ctx.Process(
            target=process_main,
            args=(self.settings.model_dump_json(), os.getpid(), self.views),
            name="singer-worker",
            daemon=True,
        )
        self.proc.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.terminate()  # a job cut short here is queued again at the next start
            self.proc.join(timeout)
            if self.proc.is_alive():
                self.proc.kill()
