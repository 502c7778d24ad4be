"""Renders workflow progress events as rich progress bars on stderr."""

from __future__ import annotations

from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

from ._common import err_console


class RichHooks:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("[dim]{task.fields[note]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
            disable=not enabled,
        )
        self.tasks: dict[str, TaskID] = {}

    def on_run_start(self, run_id, workflow, steps):
        self.progress.start()
        for s in steps:
            self.tasks[s] = self.progress.add_task(s, total=1.0, note="", start=False)

    def on_step_start(self, step, cached):
        tid = self.tasks.get(step)
        if tid is not None:
            self.progress.start_task(tid)
            self.progress.update(tid, note="cached" if cached else "")

    def on_step_progress(self, step, fraction, message):
        tid = self.tasks.get(step)
        if tid is not None:
            self.progress.update(tid, completed=fraction, note=(message or "")[:40])

    def on_step_end(self, step, cached, seconds):
        tid = self.tasks.get(step)
        if tid is not None:
            note = self.progress.tasks[tid].fields.get("note", "") if tid < len(self.progress.tasks) else ""
            if not str(note).startswith("skipped"):
                note = "cached" if cached else f"{seconds:.1f}s"
            self.progress.update(tid, completed=1.0, note=note)
            self.progress.stop_task(tid)

    def on_run_end(self, run_id, ok):
        self.progress.stop()
