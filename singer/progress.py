"""Progress as events. Core code calls a :class:`Hooks` object; the CLI renders it with rich, the HTTP service
streams it as SSE, the batch runner aggregates it. No UI object ever enters core code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Hooks(Protocol):
    def on_run_start(self, run_id: str, workflow: str, steps: list[str]) -> None: ...
    def on_step_start(self, step: str, cached: bool) -> None: ...
    def on_step_progress(self, step: str, fraction: float, message: str | None) -> None: ...
    def on_step_end(self, step: str, cached: bool, seconds: float) -> None: ...
    def on_run_end(self, run_id: str, ok: bool) -> None: ...


class NullHooks:
    def on_run_start(self, run_id: str, workflow: str, steps: list[str]) -> None:
        pass

    def on_step_start(self, step: str, cached: bool) -> None:
        pass

    def on_step_progress(self, step: str, fraction: float, message: str | None) -> None:
        pass

    def on_step_end(self, step: str, cached: bool, seconds: float) -> None:
        pass

    def on_run_end(self, run_id: str, ok: bool) -> None:
        pass


class RecordingHooks(NullHooks):
    """Keeps every event as a tuple; used by tests and by job stores."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_run_start(self, run_id, workflow, steps):
        self.events.append(("run_start", run_id, workflow, tuple(steps)))

    def on_step_start(self, step, cached):
        self.events.append(("step_start", step, cached))

    def on_step_progress(self, step, fraction, message):
        self.events.append(("step_progress", step, round(fraction, 4), message))

    def on_step_end(self, step, cached, seconds):
        self.events.append(("step_end", step, cached))

    def on_run_end(self, run_id, ok):
        self.events.append(("run_end", run_id, ok))

    def steps(self, kind: str) -> list[str]:
        return [e[1] for e in self.events if e[0] == kind]


# What an engine gets: ``progress(fraction, message)``; the workflow step turns it into Hooks events.
Progress = Callable[[float, str | None], None]


def no_progress(fraction: float, message: str | None = None) -> None:
    return None


def scaled_progress(progress: Progress, start: float, span: float) -> Progress:
    """``progress`` for a part of a task: the part's 0..1 lands on ``start``..``start + span`` of the whole."""

    def part(fraction: float, message: str | None = None) -> None:
        progress(start + span * fraction, message)

    return part
