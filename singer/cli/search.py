"""`singer search`: numbered candidates."""

from __future__ import annotations

import typer

from . import _common as c


def _render(res: dict) -> None:
    if res.get("warning"):
        c.err_console.print(f"[yellow]warning:[/] {res['warning']}")
    if not res["candidates"]:
        c.out_console.print("no results")
    for i, cand in enumerate(res["candidates"], start=1):
        dur = cand.get("duration")
        d = f"{int(dur) // 60}:{int(dur) % 60:02d}" if dur else "?:??"
        who = f" — {cand['artist']}" if cand.get("artist") else ""
        c.out_console.print(f"{i:>2}. {cand['title']}{who} [dim]({d}, {cand['source']})[/]")


def search(
    query: str = typer.Argument(..., help="What to look for: title, artist, words."),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1, max=50, help="How many candidates."),
    as_json: bool = c.JsonOpt,
) -> None:
    """Search the web (yt-dlp) and the local library; print numbered candidates for --pick."""

    def work():
        from ..api import Singer

        cands = Singer(c.settings()).search(query, limit)
        warning = next((x.extra.get("warning") for x in cands if x.extra.get("warning")), "")
        return {"query": query, "candidates": [x.to_dict() for x in cands], "warning": warning}

    c.run(work, as_json, _render)
