"""`singer cache ls | du | prune`."""

from __future__ import annotations

import time

import typer

from ..files import human_bytes
from . import _common as c

SECONDS_PER_DAY = 86400

app = typer.Typer(help="Inspect and trim the cache: the step store and its side caches.", no_args_is_help=True)


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
                human_bytes(r["bytes"]),
                f"{r['seconds'] or 0:.1f}",
                r["last_used"],
                r["title"],
            )
        c.out_console.print(t)

    c.run(work, as_json, render)


@app.command("du")
def du(as_json: bool = c.JsonOpt) -> None:
    """Size of the cache: the step store per step, and each side cache (downloads, library index, job outputs,
    previews) with its entries."""

    def work():
        s = _singer()
        per: dict[str, int] = {}
        for e in s.cache_entries():
            per[e.manifest.get("op", "?")] = per.get(e.manifest.get("op", "?"), 0) + e.size()
        spaces = s.cache_usage()
        total = sum(u["bytes"] for u in spaces.values())
        return {"path": str(s.settings.cache_path), "bytes": total, "by_op": per, "namespaces": spaces}

    def render(res):
        c.out_console.print(f"{human_bytes(res['bytes'])}  {res['path']}")
        for name, u in res["namespaces"].items():
            c.out_console.print(f"  {name:<14} {human_bytes(u['bytes']):>10}  {u['entries']:>6} entries  {u['about']}")
            if name == "steps":
                for op, n in sorted(res["by_op"].items(), key=lambda kv: -kv[1]):
                    c.out_console.print(f"    {op:<12} {human_bytes(n):>10}")

    c.run(work, as_json, render)


@app.command("prune")
def prune(
    max_size: str | None = typer.Option(
        None, "--max-size", help="Evict least recently used entries down to this, e.g. 5GB (all namespaces together)."
    ),
    older_than: float | None = typer.Option(None, "--older-than-days", help="Evict entries unused this many days."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would go."),
    as_json: bool = c.JsonOpt,
) -> None:
    """Evict cache entries by size (LRU) and/or age, in the step store and the side caches; never one in use (a
    step a running workflow holds, a download or preview being written, an HTTP job's outputs while it runs). A
    finished job's output its client may still fetch goes by age only."""

    def work():
        from ..errors import UsageError

        if max_size is None and older_than is None:
            raise UsageError("Nothing to prune by.", hint="Give --max-size 5GB and/or --older-than-days 30.")
        s = _singer()
        before = s.cache_size()
        done = s.prune_cache(
            c.parse_size(max_size) if max_size else None,
            older_than * SECONDS_PER_DAY if older_than is not None else None,
            dry_run,
        )
        freed = sum(i.size for i in done.removed) if dry_run else before - s.cache_size()
        by_ns: dict[str, list[str]] = {}
        for i in done.removed:
            by_ns.setdefault(i.namespace, []).append(i.name)
        return {
            "removed": by_ns.get("steps", []),
            "removed_by_namespace": by_ns,
            "in_use": [f"{i.namespace}/{i.name}" for i in done.in_use],
            "freed_bytes": freed,
            "bytes_now": before - freed,
            "dry_run": dry_run,
        }

    def render(res):
        verb = "would remove" if res["dry_run"] else "removed"
        count = sum(len(v) for v in res["removed_by_namespace"].values())
        c.out_console.print(f"{verb} {count} entries; cache now {human_bytes(res['bytes_now'])}")
        for name, gone in res["removed_by_namespace"].items():
            c.out_console.print(f"  {name:<14} {len(gone)}")
        if res["in_use"]:
            c.out_console.print(f"kept {len(res['in_use'])} in use")

    c.run(work, as_json, render)
