"""The embedded worker: runs queued jobs from a :class:`JobStore` in background threads of the serving process.

Bounded on purpose: by default one heavy job at a time (parallel model calls on one box slow every job down and
can exhaust memory), with the models kept warm in one :class:`~singer.api.Singer` between jobs. Identical
requests share their computation through the step cache: the second one finds every step done.

Progress reaches the store as events (step start / progress / end), throttled to a few per second per step.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from ..errors import SingerError
from .store import Job, JobStore


class StoreHooks:
    """Workflow progress hooks that write job events (throttled) and the job's current step/fraction."""

    def __init__(self, store: JobStore, job_id: str, min_interval: float = 0.25):
        self.store, self.job_id, self.min_interval = store, job_id, min_interval
        self._last = 0.0
        self.steps: list[str] = []
        self.done = 0

    def _overall(self, fraction: float) -> float:
        return (self.done + fraction) / max(len(self.steps), 1)

    def on_run_start(self, run_id: str, workflow: str, steps: list[str]) -> None:
        self.steps, self.done = list(steps), 0
        self.store.add_event(self.job_id, "run_start", {"workflow": workflow, "steps": list(steps)})

    def on_step_start(self, step: str, cached: bool) -> None:
        self.store.progress(self.job_id, step, self._overall(0.0))
        self.store.add_event(self.job_id, "step_start", {"step": step, "cached": cached})

    def on_step_progress(self, step: str, fraction: float, message: str | None) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval and fraction < 1.0:
            return
        self._last = now
        overall = round(self._overall(fraction), 4)
        self.store.progress(self.job_id, step, overall)
        self.store.add_event(self.job_id, "step_progress",
                             {"step": step, "fraction": round(fraction, 4), "progress": overall, "message": message})

    def on_step_end(self, step: str, cached: bool, seconds: float) -> None:
        self.done += 1
        self.store.progress(self.job_id, step, self._overall(0.0))
        self.store.add_event(self.job_id, "step_end", {"step": step, "cached": cached, "seconds": round(seconds, 3)})

    def on_run_end(self, run_id: str, ok: bool) -> None:
        return None


def error_dict(e: BaseException) -> dict:
    """What a client sees of a failure: the user message and hint, never a stack trace."""
    if isinstance(e, SingerError):
        return {"error": e.code, "message": e.user_message, "hint": e.hint or ""}
    return {"error": "internal", "message": f"Internal error ({type(e).__name__}); the job was not finished.",
            "hint": "Try again; if it keeps failing, report it with the job id."}


class EmbeddedWorker:
    """``concurrency`` threads taking jobs from ``store`` and running them with one warm ``Singer``."""

    def __init__(self, settings: Any, store: JobStore, concurrency: int = 1, singer: Any = None):
        from ..api import Singer

        self.settings, self.store = settings, store
        self.singer = singer or Singer(settings)
        self.concurrency = max(1, concurrency)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.store.recover()  # jobs a previous process left running run again (their finished steps are cached)
        for i in range(self.concurrency):
            t = threading.Thread(target=self._loop, name=f"singer-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.store._notify()
        for t in self._threads:
            t.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.store.claim()
            if job is None:
                self.store.wait(1.0)
                continue
            self.run(job)

    def run(self, job: Job) -> None:
        """Run one claimed job to done/failed (never raises)."""
        from ..api import CoverRequest

        try:
            out = self.job_dir(job)
            req = CoverRequest(**{**job.request, "out": str(out) + "/"})
            method = self.singer.convert if job.kind == "convert" else self.singer.cover
            res = method(req, StoreHooks(self.store, job.id))
            from ..audio import content_type

            self.store.finish(job.id, {"output": str(res.output), "title": res.title, "voice": res.voice,
                                       "format": res.format, "duration": res.duration,
                                       "content_type": content_type(res.format), "run_id": res.run.run_id})
        except Exception as e:  # every failure becomes the job's error; the worker carries on
            self.store.fail(job.id, error_dict(e))
        if job.callback_url:
            threading.Thread(target=self._notify, args=(job.id,), name=f"webhook-{job.id[:8]}", daemon=True).start()

    def _notify(self, job_id: str) -> None:
        """Webhook for a finished job (its own thread: a slow receiver never holds up the queue)."""
        from .webhook import deliver

        job = self.store.get(job_id)
        outcome = deliver(job.callback_url, f"job.{job.state}", job.public(), self.settings.webhook_secret,
                          allow_private=self.settings.allow_private_urls)
        self.store.add_event(job_id, "webhook", outcome)

    def job_dir(self, job: Job) -> Path:
        d = Path(self.settings.home) / "jobs" / job.id
        d.mkdir(parents=True, exist_ok=True)
        return d
