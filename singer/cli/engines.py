"""`singer engines`: every engine, available or not, and why not."""

from __future__ import annotations

from . import _common as c


def _render(res: dict) -> None:
    from rich.table import Table

    t = Table("kind", "name", "ok", "version", "description / why not")
    for e in res["engines"]:
        t.add_row(
            e["kind"],
            e["name"],
            "[green]yes[/]" if e["available"] else "[red]no[/]",
            e["version"],
            _described(e) if e["available"] else f"[red]{e['reason']}[/]",
        )
    c.out_console.print(t)


def _described(e: dict) -> str:
    p = e.get("path") or {}
    if not p:
        return e["description"]
    path = (
        f"runs on {p['device']} · content {p['content']} · decoder {p['decoder']} · {p['threads']} threads · {p['isa']}"
    )
    return f"{e['description']}\n[cyan]{path}[/] [dim]({p['reason']})[/]"


def engines(as_json: bool = c.JsonOpt) -> None:
    """List engines and whether they can run here."""

    def work():
        from ..api import Singer

        return {"engines": [e.to_dict() for e in Singer(c.settings()).engines()]}

    c.run(work, as_json, _render)
