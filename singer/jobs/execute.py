"""One way to run a request: :func:`execute` ``(singer, request, hooks) -> Outcome``.

``singer batch``'s worker processes, the service's embedded worker and the Celery task all run a request through
:func:`execute` and read the same :class:`Outcome`: ``done`` with the result the job store keeps, or ``failed``
with the error's user message. The service's jobs reach it through :func:`run_job`, which places the output and
applies the policy of what a remote caller may read. :class:`ProgressHooks` turns the workflow's progress into
job events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..config import Settings
from ..errors import error_dict
from .paths import batch_target, job_dir, uploads_dir
from .voicejobs import VOICE_KINDS, run_voice_job

PROGRESS_INTERVAL_S = 0.25  # at most one step_progress event per step this often (the last one always goes)


@dataclass
class Outcome:
    """How one request ended. ``result``: output, title, voice, format, duration, content_type, run_id, pitch and
    seconds (done); ``error``: :func:`~singer.errors.error_dict` of what stopped it (failed)."""

    state: str  # "done" | "failed"
    result: dict | None = None
    error: dict | None = None
    seconds: float = 0.0
    run_id: str = ""  # the run that made the output, or that failed (singer report RUN_ID)

    @property
    def ok(self) -> bool:
        return self.state == "done"

    @classmethod
    def failed(cls, e: BaseException, seconds: float = 0.0) -> Outcome:
        return cls("failed", error=error_dict(e), seconds=seconds, run_id=getattr(e, "run_id", "") or "")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Outcome:
        return cls(**{k: d[k] for k in ("state", "result", "error", "seconds", "run_id") if k in d})


def execute(
    singer: Any,
    request: Any,
    hooks: Any = None,
    *,
    kind: str = "cover",
    policy: Any = None,
    reraise: tuple[type[BaseException], ...] = (),
) -> Outcome:
    """Run ``request`` (a :class:`~singer.api.CoverRequest` or its fields) with ``singer``: ``kind`` "convert"
    runs :meth:`Singer.convert`, anything else :meth:`Singer.cover`. Never raises, except the exceptions in
    ``reraise`` (a Celery task retries on a lost broker connection): every other failure is a failed outcome."""
    from ..api import CoverRequest

    t0 = time.perf_counter()
    try:
        req = request if isinstance(request, CoverRequest) else CoverRequest(**request)
        res = (singer.convert if kind == "convert" else singer.cover)(req, hooks, policy)
    except reraise:
        raise
    except Exception as e:  # a user error or a bug: either is the request's answer
        return Outcome.failed(e, round(time.perf_counter() - t0, 3))
    seconds = round(time.perf_counter() - t0, 3)
    return Outcome("done", result_of(res, seconds), seconds=seconds, run_id=res.run.run_id)


def result_of(res: Any, seconds: float) -> dict:
    """A :class:`~singer.api.CoverResult` as the job store keeps it."""
    from ..audio import content_type

    return {
        "output": str(res.output),
        "title": res.title,
        "voice": res.voice,
        "format": res.format,
        "duration": res.duration,
        "content_type": content_type(res.format),
        "run_id": res.run.run_id,
        "pitch": res.pitch,
        "seconds": seconds,
        "cost": cost_of(res.run),
    }


def cost_of(run: Any) -> dict:
    """What the request cost: CPU-seconds of the whole run and of each step that ran (a cached step costs ~0)."""
    steps = {s.id: round(s.cpu_seconds, 3) for s in run.steps if not s.skipped}
    return {"cpu_seconds": round(sum(steps.values()), 3), "steps_cpu_seconds": steps}


def run_job(
    singer: Any,
    settings: Settings,
    job_id: str,
    kind: str,
    request: dict,
    hooks: Any,
    *,
    batch: str | None = None,
    owner: str = "",
    reraise: tuple[type[BaseException], ...] = (),
) -> Outcome:
    """Run a service job: its output goes to the job's own folder, except for a job of ``batch`` whose request
    names an ``out`` inside that batch's output folder (the server sets it; see
    :func:`~singer.jobs.paths.batch_target`). It may read what :func:`remote_policy` allows ``owner``."""
    if kind in VOICE_KINDS:
        t0 = time.perf_counter()
        try:
            result = run_voice_job(singer, settings, kind, request, hooks)
        except reraise:
            raise
        except Exception as e:  # a user error or a bug: either is the request's answer
            return Outcome.failed(e, round(time.perf_counter() - t0, 3))
        return Outcome("done", result, seconds=result["seconds"])
    try:
        fields = {k: v for k, v in request.items() if k not in ("out", "rel")}
        target = batch_target(settings, batch, request)
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
        out = str(target) if target is not None else str(job_dir(settings, job_id)) + "/"
        policy = remote_policy(settings, owner)
    except Exception as e:
        return Outcome.failed(e)
    return execute(singer, {**fields, "out": out}, hooks, kind=kind, policy=policy, reraise=reraise)


def remote_policy(settings: Settings, owner: str = ""):
    """What a job of the service may read: its own upload (uploads folder), files under SINGER_BATCH_ROOTS, URLs
    and search text; never another file of this machine. Uploads are held to SINGER_MAX_UPLOAD_DURATION of decoded
    audio."""
    from ..engines.sources.inputs import InputPolicy

    return InputPolicy.remote(settings, tuple(settings.batch_root_paths), uploads_dir(settings), owner)


class ProgressHooks:
    """Workflow progress hooks that emit job events (progress throttled to a few per second per step).

    ``emit(type, data)`` goes to the job store (:func:`store_event`) or, on a Celery worker, to Redis, from where
    the service copies it into its store: one event format either way."""

    def __init__(self, emit: Callable[[str, dict], None], min_interval: float = PROGRESS_INTERVAL_S):
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


def store_event(store: Any, job_id: str, type_: str, data: dict) -> None:
    """Record a progress event in the job store and move the job's step/progress along with it."""
    if "step" in data and "progress" in data:
        store.progress(job_id, data["step"], data["progress"])
    store.add_event(job_id, type_, data)
