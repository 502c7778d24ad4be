"""`singer cache ls | du | prune`."""

from __future__ import annotations

import time

import typer

from . import _common as c

app = typer.Typer(help="Inspect and trim the step cache.", no_args_is_help=True)


def _singer():
    from ..api import Singer

    return Singer(c.settings())


@app.command("ls")
def ls(as_json: bool = c.JsonOpt) -> None:
    """List cached step results, most recently used first."""

    def work():
        rows = []
        for e in sorted(_singer().cache_entries(), key=lambda e: -e.last_used()):
            m = e.manifest
            rows.append(
                {
                    "key": e.key,
                    "step": m.get("step"),
                    "op": m.get("op"),
                    "bytes": e.size(),
                    "seconds": m.get("seconds"),
                    "created": m.get("created"),
                    "last_used": time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used())),
                    "title": (m.get("meta") or {}).get("title", ""),
                }
            )
        return {"entries": rows}

    def render(res):
        from rich.table import Table

        t = Table("key", "step", "size", "compute s", "last used", "title")
        for r in res["entries"]:
            t.add_row(
                r["key"][:12],
                r["step"],
                c.human_bytes(r["bytes"]),
                f"{r['seconds'] or 0:.1f}",
                r["last_used"],
                r["title"],
            )
        c.out_console.print(t)

    c.run(work, as_json, render)


@app.command("du")
def du(as_json: bool = c.JsonOpt) -> None:
    """Total size of the cache, per step."""

    def work():
        s = _singer()
        per: dict[str, int] = {}
        for e in s.cache_entries():
            per[e.manifest.get("op", "?")] = per.get(e.manifest.get("op", "?"), 0) + e.size()
        return {"path": str(s.settings.cache_path), "bytes": sum(per.values()), "by_op": per}

    def render(res):
        c.out_console.print(f"{c.human_bytes(res['bytes'])}  {res['path']}")
        for op, n in sorted(res["by_op"].items(), key=lambda kv: -kv[1]):
            c.out_console.print(f"  {op:<12} {c.human_bytes(n)}")

    c.run(work, as_json, render)


@app.command("prune")
def prune(
    max_size: str | None = typer.Option(
        None, "--max-size", help="Evict least recently used entries down to this, e.g. 5GB."
    ),
    older_than: float | None = typer.Option(None, "--older-than-days", help="Evict entries unused this many days."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would go."),
    as_json: bool = c.JsonOpt,
) -> None:
    """Evict cache entries by size (LRU) and/or age."""

    def work():
        from ..errors import UsageError

        if max_size is None and older_than is None:
            raise UsageError("Nothing to prune by.", hint="Give --max-size 5GB and/or --older-than-days 30.")
        s = _singer()
        before = s.cache_size()
        removed = s.prune_cache(
            c.parse_size(max_size) if max_size else None,
            older_than * 86400 if older_than is not None else None,
            dry_run,
        )
        freed = sum(e.size() for e in removed) if dry_run else before - s.cache_size()
        return {
            "removed": [e.key for e in removed],
            "freed_bytes": freed,
            "bytes_now": before - freed,
            "dry_run": dry_run,
        }

    def render(res):
        verb = "would remove" if res["dry_run"] else "removed"
        c.out_console.print(f"{verb} {len(res['removed'])} entries; cache now {c.human_bytes(res['bytes_now'])}")

    c.run(work, as_json, render)
