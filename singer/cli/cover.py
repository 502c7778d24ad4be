"""`singer cover` and `singer convert`: one request model, built once from the options."""

from __future__ import annotations

import typer

from . import _common as c


def parse_sets(items: list[str]) -> dict[str, dict]:
    """--set convert.strength=0.8 -> {"convert": {"strength": 0.8}} (values parsed as TOML scalars)."""
    import tomllib

    from ..errors import UsageError

    out: dict[str, dict] = {}
    for item in items:
        target, eq, value = item.partition("=")
        step, dot, name = target.partition(".")
        if not (eq and dot and step and name):
            raise UsageError(
                f"Cannot read --set '{item}'", hint="Write it as STEP.PARAM=VALUE, e.g. --set mix.vocal_gain_db=2"
            )
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value
        out.setdefault(step, {})[name] = parsed
    return out


def parse_key(key: str | None) -> float | str | None:
    """--key as the one key rule reads it (:func:`singer.keys.parse_key`), named as the user typed it."""
    from ..keys import parse_key as rule

    return rule(key, "--key")


def engine_sets(f0: str | None, index_rate: float | None, protect: float | None) -> list[str]:
    """RVC options as convert-step parameters (--set convert.NAME=VALUE)."""
    pairs = {"f0_method": f'"{f0}"' if f0 else None, "index_rate": index_rate, "protect": protect}
    return [f"convert.{k}={v}" for k, v in pairs.items() if v is not None]


def _csv(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip().lower() for t in text.split(",") if t.strip()]


def _render(res: dict) -> None:
    run = res["run"]
    ran = [s for s in run["steps"] if not s["skipped"]]
    hits = sum(1 for s in ran if s["cached"])
    c.out_console.print(f"[green]done[/] {res['output']}")
    c.out_console.print(
        f"[dim]{res['title']} · voice {res['voice']} · {res['duration']:.1f}s · "
        f"{run['seconds']:.1f}s ({hits}/{len(ran)} steps cached) · run {run['run_id']}[/]"
    )
    pitch = res.get("pitch") or {}
    if pitch.get("octave"):
        c.out_console.print(f"[dim]pitch {pitch['key']:+g} st: {pitch['octave']['reason']}[/]")


def _go(request_kwargs: dict, sets: list[str], as_json: bool, quiet: bool, method: str) -> None:
    def work():
        from pydantic import ValidationError

        from ..api import CoverRequest, Singer
        from ..errors import UsageError
        from .progress import RichHooks

        kwargs = dict(request_kwargs, key=parse_key(request_kwargs.get("key")))
        try:
            req = CoverRequest(**kwargs, step_params=parse_sets(sets))
        except ValidationError as e:
            err = e.errors()[0]
            where = f"{err['loc'][0]}: " if err["loc"] else ""
            raise UsageError(f"Invalid option: {where}{err['msg'].removeprefix('Value error, ')}") from None
        hooks = RichHooks(enabled=not (as_json or quiet))
        singer = Singer(c.settings(), hooks)
        return getattr(singer, method)(req).to_dict()

    c.run(work, as_json, _render)


def cover(
    query: str = typer.Argument(..., help="Search text, URL, or path of a local audio/video file."),
    voice: str | None = typer.Option(None, "--voice", "-v", help="Voice name (singer voices list)."),
    key: str | None = typer.Option(
        None, "--key", "-k", help="Key shift in semitones, e.g. +2 (the backing follows), or auto."
    ),
    fmt: str | None = typer.Option(None, "--format", "-f", help="mp3 (default), wav, flac, ogg, opus, m4a."),
    out: str | None = typer.Option(None, "--out", "-o", help="Output file or folder (default: current folder)."),
    pick: int | None = typer.Option(None, "--pick", min=1, help="Use search candidate N (see singer search)."),
    separator: str | None = typer.Option(
        None, "--separator", help="Separator engine: spleeter (offline default), uvr."
    ),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="UVR model for the vocals: best-vocals, fast-cpu, or a model "
        "name (singer models list --kind separator); implies --separator uvr.",
    ),
    stages: str | None = typer.Option(None, "--steps", help="Separation stages, e.g. vocals,karaoke,dereverb (uvr)."),
    parts: str | None = typer.Option(None, "--convert", help="What the voice sings: lead (default) or lead,backing."),
    converter: str | None = typer.Option(None, "--engine", "--converter", help="Converter engine (singer engines)."),
    f0: str | None = c.F0Opt,
    index_rate: float | None = c.IndexRateOpt,
    protect: float | None = c.ProtectOpt,
    workflow: str = typer.Option("cover", "--workflow", "-w", help="Workflow name or .toml path."),
    sets: list[str] = c.SetOpt,
    recompute: list[str] = c.RecomputeOpt,
    no_cache: bool = c.NoCacheOpt,
    quiet: bool = c.QuietOpt,
    as_json: bool = c.JsonOpt,
) -> None:
    """Make a cover: find the song, separate, sing it again in VOICE, remix."""
    _go(
        dict(
            input=query,
            voice=voice,
            key=key,
            format=fmt,
            out=out,
            pick=pick,
            separator=separator,
            preset=preset,
            stages=_csv(stages),
            convert_parts=_csv(parts),
            converter=converter,
            workflow=workflow,
            recompute=recompute,
            no_cache=no_cache,
        ),
        engine_sets(f0, index_rate, protect) + sets,
        as_json,
        quiet,
        "cover",
    )


def convert(
    path: str = typer.Argument(..., help="Voice note or any recording (file path or URL)."),
    voice: str | None = typer.Option(None, "--voice", "-v", help="Voice name (singer voices list)."),
    key: str | None = typer.Option(None, "--key", "-k", help="Pitch shift in semitones, or auto."),
    fmt: str | None = typer.Option(None, "--format", "-f", help="ogg (voice note, default), mp3, wav, flac, m4a."),
    out: str | None = typer.Option(None, "--out", "-o", help="Output file or folder."),
    separate: bool = typer.Option(False, "--separate/--no-separate", help="Remove background music/noise first."),
    trim: bool | None = typer.Option(
        None, "--trim/--no-trim", help="Cut the silence before and after the voice (default on)."
    ),
    denoise: bool | None = typer.Option(
        None, "--denoise/--no-denoise", help="Lower steady background noise (default off)."
    ),
    converter: str | None = typer.Option(None, "--engine", "--converter", help="Converter engine."),
    f0: str | None = c.F0Opt,
    index_rate: float | None = c.IndexRateOpt,
    protect: float | None = c.ProtectOpt,
    workflow: str = typer.Option("voice_note", "--workflow", "-w", help="Workflow name or .toml path."),
    sets: list[str] = c.SetOpt,
    recompute: list[str] = c.RecomputeOpt,
    no_cache: bool = c.NoCacheOpt,
    quiet: bool = c.QuietOpt,
    as_json: bool = c.JsonOpt,
) -> None:
    """Convert a voice note (no separation by default) into VOICE."""
    _go(
        dict(
            input=path,
            voice=voice,
            key=key,
            format=fmt,
            out=out,
            separate=separate or None,
            trim=trim,
            denoise=denoise,
            converter=converter,
            workflow=workflow,
            recompute=recompute,
            no_cache=no_cache,
        ),
        engine_sets(f0, index_rate, protect) + sets,
        as_json,
        quiet,
        "convert",
    )
