"""`singer models list | pull | verify`: the model files heavy engines need (see singer/modelstore/)."""

from __future__ import annotations

import typer

from ..files import human_bytes
from . import _common as c

app = typer.Typer(
    help="List, download and check model files (UVR separators, RVC's HuBERT, RMVPE...).", no_args_is_help=True
)


def _store():
    from ..api import Singer

    return Singer(c.settings()).models


def _row(store, entry) -> dict:
    paths = [store.file_path(entry, f) for f in entry.files]
    on_disk = sum(p.stat().st_size for p in paths if p is not None and p.is_file())
    known = sum(f.size for f in entry.files)
    state = store.state(entry.name)
    return {
        "name": entry.name,
        "kind": entry.kind,
        "engine": entry.engine,
        "state": state,
        "present": state == "present",
        "bytes": on_disk or known or None,
        "path": str(store.path(entry.name)),
        "licence": entry.licence,
        "source": entry.source,
        "urls": [f.url for f in entry.files if f.url],
        "note": entry.note,
        "requires": list(entry.requires),
        **{k: entry.extra[k] for k in ("arch", "stage", "presets", "sdr") if k in entry.extra},
    }


def _sdr(m: dict) -> str:
    """Published figures, e.g. "vocals 12.60 (MUSDB)"; "" when none are published."""
    return ", ".join(
        f"{stem} {v:.2f}{'' if src == 'musdb' else '*'}"
        for src, stems in (m.get("sdr") or {}).items()
        for stem, v in stems.items()
    )


@app.command("list")
def list_(
    kind: str | None = typer.Option(None, "--kind", help="Only this kind: separator, content, pitch, voice, download."),
    as_json: bool = c.JsonOpt,
) -> None:
    """List known model files and whether they are here."""

    def work():
        from ..errors import UsageError
        from ..modelstore import KINDS

        if kind is not None and kind not in (*KINDS, "download"):
            raise UsageError(f"Unknown kind '{kind}'", hint=f"Use one of: {', '.join((*KINDS, 'download'))}.")
        store = _store()
        return {"path": str(store.root), "models": [_row(store, e) for e in store.entries(kind)]}

    def render(res):
        from rich.table import Table

        colour = {"present": "green", "missing": "yellow", "corrupt": "red"}
        uvr = any("stage" in m for m in res["models"])
        cols = ("name", "state", "size", *(("stage", "presets", "SDR dB") if uvr else ("kind", "licence")))
        t = Table(
            *cols,
            title=res["path"],
            title_justify="left",
            caption="SDR: published median over MUSDB18-HQ (audio-separator's scores); * the author's own figure"
            if uvr
            else None,
        )
        for m in res["models"]:
            extra = (
                (m.get("stage", ""), ", ".join(m.get("presets", [])), _sdr(m))
                if uvr
                else (m["kind"], m["licence"][:60])
            )
            t.add_row(
                m["name"],
                f"[{colour[m['state']]}]{m['state']}[/]",
                human_bytes(m["bytes"]) if m["bytes"] else "?",
                *extra,
            )
        c.out_console.print(t)

    c.run(work, as_json, render)


@app.command("pull")
def pull(
    target: str = typer.Argument(..., help="A model name from `singer models list`, or an http(s) URL."),
    sha256: str | None = typer.Option(
        None, "--sha256", help="Expected sha256 of the file; the download fails on a mismatch."
    ),
    as_json: bool = c.JsonOpt,
    quiet: bool = c.QuietOpt,
) -> None:
    """Download a model (resumable, checksum-verified) into the models folder."""

    def work():
        from .progress import RichHooks

        store = _store()
        entry = store.resolve(target)
        path = store.pull(target, sha256=sha256, hooks=RichHooks(enabled=not (as_json or quiet)))
        files = [{"file": f.rel, "sha256": store.checksum(f.rel)} for f in entry.files if entry.source == "url"]
        return {"name": entry.name, "path": str(path), "files": files}

    def render(res):
        c.out_console.print(f"[bold]{res['name']}[/] -> {res['path']}", soft_wrap=True)
        for f in res["files"]:
            c.out_console.print(f"  {f['file']}  sha256 {f['sha256']}", soft_wrap=True)

    c.run(work, as_json, render)


@app.command("verify")
def verify(
    name: str | None = typer.Argument(None, help="Only this model (default: every model that is here)."),
    as_json: bool = c.JsonOpt,
) -> None:
    """Re-hash model files; exit 4 when one is corrupt (or, for a named model, missing)."""

    def work():
        from ..errors import ModelError

        rows = _store().verify(name)
        bad = {
            r["file"]: (
                f"corrupt: expected sha256 {r['expected']}, got {r['actual']}"
                if r["status"] == "corrupt"
                else "missing"
            )
            for r in rows
            if r["status"] == "corrupt" or (name and r["status"] == "missing")
        }
        if bad:
            raise ModelError(
                f"{len(bad)} model file(s) failed verification",
                hint=f"`singer models pull {name or 'NAME'}` downloads them again.",
                reasons=bad,
            )
        return {"files": rows}

    def render(res):
        for r in res["files"]:
            if r["status"] == "present":
                note = "sha256 recorded now (first seen)" if r["recorded"] else "ok" if r["expected"] else "present"
                c.out_console.print(f"[green]{note:<10}[/] {r['model']}: {r['file']}", soft_wrap=True)
            else:
                c.out_console.print(f"[dim]missing    {r['model']}: {r['file']}[/]", soft_wrap=True)

    c.run(work, as_json, render)
