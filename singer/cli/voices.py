"""`singer voices list | show | create | merge | remove`."""

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
        c.out_console.print(f"  licence: {v['licence']}")


@app.command("list")
def list_(as_json: bool = c.JsonOpt) -> None:
    """List voices you can use with --voice."""

    def render(res):
        from rich.table import Table

        t = Table("name", "kind", "origin", "description")
        for v in res["voices"]:
            t.add_row(v["name"], v["kind"], "bundled" if v["bundled"] else "yours", v.get("description", ""))
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


@app.command("add")
def add(
    name: str = typer.Argument(..., help="New voice name (letters, digits, - and _)."),
    pth: str = typer.Option(..., "--pth", help="RVC model file (.pth, v1 or v2)."),
    index: str | None = typer.Option(None, "--index", help="Its retrieval index (.index), if any."),
    vocal_range: str | None = typer.Option(
        None, "--range", help="The voice's singing range, e.g. A3-E5 (for --key auto)."
    ),
    samples: list[str] = typer.Option(
        [], "--sample", help="Recording(s) of the voice to measure its range; repeatable."
    ),
    sample_kind: str = typer.Option(
        "auto",
        "--sample-kind",
        help="What the --sample recordings are: sung (measures the singing range), spoken "
        "(measures the speaking pitch) or auto (told from their pitch).",
    ),
    gender: str = typer.Option("", "--gender", help="female / male (a typical range when none is given)."),
    description: str = typer.Option("", "--description", help="Free text shown in voices list."),
    licence: str = typer.Option("", "--licence", help="Licence / permission of the voice."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a voice of yours with the same name."),
    as_json: bool = c.JsonOpt,
) -> None:
    """Add an RVC voice model: copied into the voice store, sha256 recorded."""
    c.run(
        lambda: {
            "voice": _singer()
            .add_voice(
                name,
                pth,
                index,
                vocal_range=vocal_range,
                samples=samples,
                sample_kind=sample_kind,
                gender=gender,
                description=description,
                licence=licence,
                overwrite=overwrite,
            )
            .to_dict()
        },
        as_json,
        _render_one,
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
