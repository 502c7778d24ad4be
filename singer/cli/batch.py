"""`singer batch FOLDER`: every voice note (or song) in a folder, resumable, with a summary."""

from __future__ import annotations

import os

import typer

from . import _common as c


def batch(
    folder: str = typer.Argument(..., help="Folder of voice notes or songs (searched recursively)."),
    voice: str | None = typer.Option(None, "--voice", "-v", help="Voice name (singer voices list)."),
    out: str = typer.Option(..., "--out", "-o", help="Output folder; it mirrors the input tree."),
    workflow: str = typer.Option("voice_note", "--workflow", "-w", help="voice_note (default) or cover."),
    fmt: str | None = typer.Option(
        None, "--format", "-f", help="Output format (default: the input's own, else ogg/mp3)."
    ),
    key: str | None = typer.Option(None, "--key", "-k", help="Pitch shift in semitones, or auto."),
    trim: bool | None = typer.Option(
        None, "--trim/--no-trim", help="voice_note: cut the silence around the voice (default on)."
    ),
    denoise: bool | None = typer.Option(
        None, "--denoise/--no-denoise", help="voice_note: lower steady background noise."
    ),
    workers: int = typer.Option(
        max(1, min(2, (os.cpu_count() or 1))), "--workers", min=1, help="Files converted at once, one process each."
    ),
    quiet: bool = c.QuietOpt,
    as_json: bool = c.JsonOpt,
) -> None:
    """Convert a whole folder. Reruns skip finished files; bad files are recorded, not fatal (exit 3 if any)."""
    from pathlib import Path

    from .cover import parse_key

    def work():
        from ..batch import Batch, shared_request

        request = shared_request(workflow, voice or None, parse_key(key) if key is not None else None, trim, denoise)
        b = Batch(c.settings(), Path(folder), Path(out), request, workers=workers, fmt=fmt)
        return _run_with_bar(b, disable=as_json or quiet)

    c.run(work, as_json, _render, exit_code=lambda res: 3 if res["failed"] else 0)


def _run_with_bar(b, disable: bool) -> dict:
    """Run the batch with a progress bar on stderr: files done of all, failures so far or the current file."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    failed = [0]
    with Progress(
        TextColumn("[bold]batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=c.err_console,
        disable=disable,
    ) as bar:
        task = bar.add_task("files", total=None, info="")

        def on_item(item, done, total):
            failed[0] += item.status == "failed"
            bar.update(task, total=total, completed=done, info=f"{failed[0]} failed" if failed[0] else item.rel[-40:])

        return b.run(on_item)


def _render(res: dict) -> None:
    c.out_console.print(
        f"[green]{res['done']} converted[/], {res['skipped']} already done, "
        f"[{'red' if res['failed'] else 'green'}]{res['failed']} failed[/] in {res['seconds']:.1f}s"
        f" -> {res['out']}/batch-summary.json"
    )
    if res.get("report"):
        c.out_console.print(f"report: {res['report']}  (per-file reports: singer report {res['out']} --runs)")
    for item in res["items"]:
        if item["status"] == "failed":
            c.out_console.print(f"  [red]failed[/] {item['rel']}: {item['message']}", soft_wrap=True)
