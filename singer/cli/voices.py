"""`singer voices list | show | create | add | import | verify | preview | merge | remove`."""

from __future__ import annotations

import typer

from . import _common as c

app = typer.Typer(help="Manage voices: bundled profiles, your own, merges.", no_args_is_help=True)


def _singer():
    from ..api import Singer

    return Singer(c.settings())


def _render_one(res: dict) -> None:
    v = res["voice"]
    c.out_console.print(
        f"[bold]{v['name']}[/] ({v['kind']}{', bundled' if v['bundled'] else ''}) {v.get('description', '')}"
    )
    reg = v.get("register")
    if reg:
        sing, speak = reg["singing"], reg["speaking"]
        c.out_console.print(
            f"  singing range: {sing['range']} ({sing['low_hz']:.0f}-{sing['high_hz']:.0f} Hz), {sing['from']}"
        )
        c.out_console.print(f"  speaking pitch: {speak['pitch']} ({speak['hz']:.0f} Hz), {speak['from']}")
        c.out_console.print(f"  recordings: {reg['recorded']}")
    elif v.get("range"):
        c.out_console.print(f"  range: {v['range']}")
    else:
        c.out_console.print("  range: not known (--key auto needs one: re-add with --range, --sample or --gender)")
    if v.get("licence"):
        c.out_console.print(f"  licence: {v['licence'].splitlines()[0][:200]}")
    if v["kind"] == "rvc":
        extra = ", ".join(f"{k} {v[k]}" for k in ("vocoder", "embedder_model") if v.get(k))
        c.out_console.print(f"  model: {_model(v)}{', ' + extra if extra else ''}, {_size(v.get('bytes'))}")
        src = v.get("source") or {}
        if src.get("url") or src.get("file"):
            c.out_console.print(f"  from: {src.get('url') or src.get('file')} ({src.get('kind', '')})")
        for f, digest in (v.get("sha256") or {}).items():
            c.out_console.print(f"  sha256 {f}: {digest}")
        for note in src.get("notes", []):
            c.out_console.print(f"  note: {note}")


def _model(v: dict) -> str:
    if v.get("kind") != "rvc":
        return ""
    sr = v.get("sample_rate")
    return f"RVC {v.get('version', '?')} {sr // 1000 if sr else '?'}k{'' if v.get('f0', True) else ' no-f0'}"


def _size(n) -> str:
    from ..files import human_bytes

    return human_bytes(n) if n else ""


@app.command("list")
def list_(as_json: bool = c.JsonOpt) -> None:
    """List voices you can use with --voice."""

    def render(res):
        from rich.table import Table

        t = Table("name", "kind", "origin", "model", "range", "size", "licence", "source / sha256", "description")
        for v in res["voices"]:
            reg, src = v.get("register"), v.get("source") or {}
            sha = ", ".join(d[:12] for d in (v.get("sha256") or {}).values())
            t.add_row(
                v["name"],
                v["kind"],
                "bundled" if v["bundled"] else "yours",
                _model(v),
                reg["singing"]["range"] if reg else "",
                _size(v.get("bytes")),
                (v.get("licence") or "").split("\n")[0][:40],
                " ".join(x for x in (src.get("url") or src.get("file") or "", sha) if x),
                v.get("description", ""),
            )
        c.out_console.print(t)

    c.run(lambda: {"voices": [v.to_dict() for v in _singer().list_voices()]}, as_json, render)


@app.command("show")
def show(name: str, as_json: bool = c.JsonOpt) -> None:
    """Show one voice with its provenance."""
    c.run(lambda: {"voice": _singer().voices.get(name).to_dict()}, as_json, _render_one)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="New voice name (letters, digits, - and _)."),
    samples: list[str] = typer.Option(..., "--from", help="Reference recording(s) of the voice; repeatable."),
    as_json: bool = c.JsonOpt,
) -> None:
    """Learn a voice profile from reference recordings."""
    c.run(lambda: {"voice": _singer().create_voice(name, samples).to_dict()}, as_json, _render_one)


_RangeOpt = typer.Option(None, "--range", help="The voice's singing range, e.g. A3-E5 (for --key auto).")
_SampleOpt = typer.Option([], "--sample", help="Recording(s) of the voice to measure its range; repeatable.")
_SampleKindOpt = typer.Option(
    "auto",
    "--sample-kind",
    help="What the --sample recordings are: sung (measures the singing range), spoken "
    "(measures the speaking pitch) or auto (told from their pitch).",
)
_GenderOpt = typer.Option("", "--gender", help="female / male (a typical range when none is given).")
_DescriptionOpt = typer.Option("", "--description", help="Free text shown in voices list (default: its readme).")
_LicenceOpt = typer.Option("", "--licence", help="Licence / permission of the voice (default: its licence file).")
_OverwriteOpt = typer.Option(False, "--overwrite", help="Replace a voice of yours with the same name.")


def _add(name: str, source: str | None, index: str | None, as_json: bool, **kw) -> None:
    def work():
        from ..errors import UsageError
        from .progress import RichHooks

        if not source:
            raise UsageError("Give the voice once: as SOURCE or as --pth.", hint="singer voices add NAME ./voice.zip")
        hooks = RichHooks(enabled=not as_json)
        return {"voice": _singer().add_voice(name, source, index, hooks=hooks, **kw).to_dict()}

    c.run(work, as_json, _render_one)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="New voice name (letters, digits, - and _)."),
    source: str | None = typer.Argument(
        None,
        help="The voice: an RVC .pth, a zip holding one, a folder RVC WebUI / Applio / ultimate-rvc left, or an "
        "http(s) link to one (Hugging Face file or repo, pixeldrain, any direct link).",
    ),
    pth: str | None = typer.Option(None, "--pth", help="The RVC model file (the same as SOURCE)."),
    index: str | None = typer.Option(None, "--index", help="Its retrieval index (.index file or link), if apart."),
    sha256: str | None = typer.Option(None, "--sha256", help="The sha256 SOURCE must have (pins a download)."),
    vocal_range: str | None = _RangeOpt,
    samples: list[str] = _SampleOpt,
    sample_kind: str = _SampleKindOpt,
    gender: str = _GenderOpt,
    description: str = _DescriptionOpt,
    licence: str = _LicenceOpt,
    overwrite: bool = _OverwriteOpt,
    as_json: bool = c.JsonOpt,
) -> None:
    """Add an RVC voice (v1/v2) from a file, a zip, a tool's folder or a link: checked, copied into the voice
    store, sha256 recorded."""
    _add(
        name,
        None if source and pth else source or pth,
        index,
        as_json,
        sha256=sha256,
        vocal_range=vocal_range,
        samples=samples,
        sample_kind=sample_kind,
        gender=gender,
        description=description,
        licence=licence,
        overwrite=overwrite,
    )


@app.command("import")
def import_(
    folder: str = typer.Argument(..., help="A voice's folder from RVC WebUI, Applio or ultimate-rvc (or any)."),
    name: str | None = typer.Option(None, "--name", help="Voice name (default: the folder's name)."),
    vocal_range: str | None = _RangeOpt,
    samples: list[str] = _SampleOpt,
    sample_kind: str = _SampleKindOpt,
    gender: str = _GenderOpt,
    description: str = _DescriptionOpt,
    licence: str = _LicenceOpt,
    overwrite: bool = _OverwriteOpt,
    as_json: bool = c.JsonOpt,
) -> None:
    """Import a voice another tool trained or downloaded (Applio logs/NAME, RVC WebUI, ultimate-rvc folders)."""
    from pathlib import Path

    _add(
        name or Path(folder).expanduser().resolve().name.lower(),
        folder,
        None,
        as_json,
        vocal_range=vocal_range,
        samples=samples,
        sample_kind=sample_kind,
        gender=gender,
        description=description,
        licence=licence,
        overwrite=overwrite,
    )


@app.command("verify")
def verify(name: str, as_json: bool = c.JsonOpt) -> None:
    """Check a voice's files against the sha256 recorded when it was added."""
    c.run(
        lambda: {"voice": name, "files": _singer().verify_voice(name)},
        as_json,
        lambda r: c.out_console.print(f"[green]ok[/] {r['voice']}: {', '.join(r['files'])}"),
    )


@app.command("preview")
def preview(
    name: str,
    out: str | None = typer.Option(None, "--out", "-o", help="Preview file (.ogg)."),
    quiet: bool = c.QuietOpt,
    as_json: bool = c.JsonOpt,
) -> None:
    """Sing a short phrase of the bundled demo song with a voice."""
    c.run(
        lambda: {"preview": _preview(name, out, not (as_json or quiet))},
        as_json,
        lambda r: c.out_console.print(f"preview: {r['preview']['output']}"),
    )


def _preview(name: str, out: str | None, bars: bool) -> dict:
    from .progress import RichHooks

    res = _singer().preview_voice(name, out, hooks=RichHooks(enabled=bars))
    return {"output": str(res.output), "duration": res.duration}


@app.command("merge")
def merge(
    names: list[str] = typer.Argument(..., help="Voices to merge."),
    weights: str | None = typer.Option(
        None, "--weights", help="Comma-separated weights, e.g. 0.6,0.4 (default equal)."
    ),
    new_name: str = typer.Option(..., "--name", help="Name of the merged voice."),
    preview: bool = typer.Option(False, "--preview", help="Then sing a short phrase with the merged voice."),
    as_json: bool = c.JsonOpt,
) -> None:
    """Merge voices by weights into a new voice."""

    def work():
        from ..errors import UsageError

        if len(names) < 2:
            raise UsageError(
                "Merging needs at least two voices.", hint="singer voices merge A B --weights 0.6,0.4 --name C"
            )
        try:
            w = [float(x) for x in weights.split(",")] if weights else [1.0] * len(names)
        except ValueError:
            raise UsageError(
                f"Cannot read --weights '{weights}'", hint="Write numbers separated by commas: 0.6,0.4"
            ) from None
        if len(w) != len(names):
            raise UsageError(f"{len(names)} voices but {len(w)} weights", hint="Give one weight per voice.")
        res = {"voice": _singer().merge_voices(names, w, new_name).to_dict()}
        if preview:
            res["preview"] = _preview(new_name, None, not as_json)
        return res

    def render(res):
        _render_one(res)
        if "preview" in res:
            c.out_console.print(f"preview: {res['preview']['output']}")

    c.run(work, as_json, render)


@app.command("remove")
def remove(name: str, as_json: bool = c.JsonOpt) -> None:
    """Remove one of your voices (bundled voices stay)."""

    def work():
        _singer().remove_voice(name)
        return {"removed": name}

    c.run(work, as_json, lambda r: c.out_console.print(f"removed {r['removed']}"))
