"""`singer report RUN | OUTPUT FILE | BATCH FOLDER`: write (and optionally open) an HTML report."""

from __future__ import annotations

import typer

from . import _common as c


def report(
    ref: str = typer.Argument(
        ..., help="A run id (or its first characters), a file singer wrote, or a batch's --out folder."
    ),
    out: str | None = typer.Option(
        None, "--out", "-o", help="Where to write the page (default: in the run or batch folder)."
    ),
    runs: bool = typer.Option(False, "--runs", help="Batch: also write each file's run report (linked from its row)."),
    beside: bool = typer.Option(
        False,
        "--beside",
        help="Images and audio as files in NAME_files/ beside the page "
        "instead of inside it (smaller page for long songs).",
    ),
    open_: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    as_json: bool = c.JsonOpt,
) -> None:
    """Write a self-contained HTML report: steps, cache, timing, loudness, plots and players for every stage."""
    from pathlib import Path

    def work():
        from .. import report as rep

        folder = Path(ref).expanduser()
        if folder.is_dir() and (folder / "batch-summary.json").is_file():
            page = rep.batch_report(c.settings(), folder, out, runs=runs, embed=not beside)
            return {"report": str(page), "kind": "batch"}
        return {"report": str(rep.run_report(c.settings(), ref, out, embed=not beside)), "kind": "run"}

    def render(res):
        c.out_console.print(f"{res['kind']} report -> [bold]{res['report']}[/]")
        if open_:
            import webbrowser

            webbrowser.open(Path(res["report"]).resolve().as_uri())

    c.run(work, as_json, render)
