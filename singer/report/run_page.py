"""The page of one run (see :func:`singer.report.run_report`)."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from .. import audio
from . import analysis, page, plots

SOURCE_COLOR, CONVERTED_COLOR = "#2f6fd0", "#e0542a"


def _stages(record: dict) -> list[tuple[str, Path]]:
    """(label "step.output", file) for every audio file the run's steps produced, in workflow order;
    a file passed through unchanged is shown once."""
    seen, out = set(), []
    for step in record.get("steps", []):
        if step.get("skipped"):
            continue
        for name, path in step.get("outputs", {}).items():
            p = Path(path)
            if p.suffix.lower() in audio.AUDIO_EXTENSIONS and p not in seen:
                seen.add(p)
                out.append((f"{step['id']}.{name}", p))
    return out


def _pitch_pairs(record: dict) -> list[tuple[str, Path, Path, dict]]:
    """(convert step id, its source file, its converted file, its step record) for every conversion step."""
    files = {f"{s['id']}.{n}": Path(p) for s in record.get("steps", []) for n, p in s.get("outputs", {}).items()}
    pairs = []
    for s in record.get("steps", []):
        if s.get("op") == "convert" and not s.get("skipped") and "audio" in s.get("outputs", {}):
            src = files.get(s.get("inputs", {}).get("audio", ""))
            if src is not None:
                pairs.append((s["id"], src, Path(s["outputs"]["audio"]), s))
    return pairs


def render(record: dict, assets: page.Assets) -> str:
    steps = record.get("steps", [])
    var = record.get("variables", {})
    computed = sum(1 for s in steps if not s.get("skipped") and not s.get("cached"))
    hits = sum(1 for s in steps if s.get("cached"))
    title = next((s["meta"].get("title") for s in steps if s.get("op") == "source" and s.get("meta")), "") or ""
    status = page.badge("finished", "done") if record.get("ok") else page.badge("failed", "failed")
    body = [
        f"<h1>{escape(record.get('workflow', ''))} run {status}</h1>",
        f'<p class="muted">Run <code>{escape(record.get("run_id", ""))}</code> started '
        f"{escape(record.get('started', ''))} &middot; input <b>{escape(title or str(var.get('input', '')))}"
        f"</b> &middot; voice <b>{escape(str(var.get('voice', '')))}</b></p>",
    ]
    if record.get("error"):
        err = record["error"]
        where = f"step <b>{escape(err['step'])}</b>: " if err.get("step") else ""
        body.append(
            f'<p class="err failure">{where}{escape(err.get("message", ""))} '
            f'<span class="muted">{escape(err.get("hint", ""))}</span></p>'
        )
    stages = _stages(record)
    figures: dict[Path, dict] = {}
    pairs = _pitch_pairs(record)
    pitch_of = {p for pair in pairs for p in pair[1:3]}
    pitches: dict[Path, object] = {}
    sections = []
    for label, path in stages:
        sections.append(_stage(label, path, assets, figures, pitches if path in pitch_of else None))
    out_fig = figures.get(stages[-1][1]) if stages and record.get("ok") else None
    body.append(
        page.cards(
            [
                ("total time", f"{record.get('seconds', 0):.1f} s"),
                ("CPU time", f"{record.get('cpu_seconds', 0):.1f} s" if "cpu_seconds" in record else "-"),
                ("steps computed", str(computed)),
                ("cache hits", str(hits)),
                ("output loudness", page.fmt(out_fig.get("integrated_lufs"), " LUFS") if out_fig else "-"),
                ("output true peak", page.fmt(out_fig.get("true_peak_dbtp"), " dBTP") if out_fig else "-"),
                ("output length", page.fmt(out_fig.get("duration_s"), " s") if out_fig else "-"),
            ]
        )
    )
    body.append("<h2>Workflow</h2>" + _steps_table(steps))
    if pairs:
        body.append("<h2>Pitch: source vs converted vocals</h2>")
        for step_id, src, dst, step in pairs:
            body.append(_pitch(step_id, pitches.get(src), pitches.get(dst), step))
    body.append("<h2>Stages</h2>" + "".join(sections))
    return page.document(f"singer run {record.get('run_id', '')}", "".join(body))


def _steps_table(steps: list[dict]) -> str:
    longest = max((s.get("seconds", 0.0) for s in steps), default=0.0) or 1.0
    rows = []
    for n, s in enumerate(steps, 1):
        if s.get("skipped"):
            cache = page.badge(f"skipped ({s.get('meta', {}).get('skipped', '')})", "skip")
        else:
            cache = page.badge("cache hit", "hit") if s.get("cached") else page.badge("computed", "miss")
        sec = s.get("seconds", 0.0)
        bar = f'<div class="bar" style="width:{100 * sec / longest:.1f}%"></div>'
        rows.append(
            [
                str(n),
                f"<b>{escape(s['id'])}</b>",
                escape(s.get("op", "")),
                escape(s.get("engine", "") or s.get("meta", {}).get("engine", "") or ""),
                page.params(s.get("params", {})),
                cache,
                f"{sec:.2f} s{bar}",
                f"{s['cpu_seconds']:.2f} s" if "cpu_seconds" in s else "-",
            ]
        )
    heads = ["#", "step", "op", "engine", "parameters", "cache", "time", "CPU time"]
    return page.table(heads, rows, num={0}, cls="steps")


def _stage(label: str, path: Path, assets: page.Assets, figures: dict, pitches: dict | None) -> str:
    head = f'<div class="stage" data-stage="{escape(label)}"><h3>{escape(label)}</h3>'
    if not path.is_file():
        return head + '<p class="muted">This file is no longer in the cache (pruned); run again to see it.</p></div>'
    try:
        clip = analysis.load(path)
    except Exception as e:  # a report shows what it can
        return head + f'<p class="err">Could not read {escape(path.name)}: {escape(str(e))}</p></div>'
    fig = analysis.figures(clip)
    figures[path] = fig
    if pitches is not None:
        pitches[path] = analysis.pitch(clip)
    heads = ["length", "sample rate", "channels", "codec", "integrated loudness", "true peak", "RMS level"]
    units = [" s", " Hz", "", "", " LUFS", " dBTP", " dBFS"]
    row = [
        page.fmt(v, u) if v is None or isinstance(v, float) else escape(f"{v}{u}") for v, u in zip(fig.values(), units)
    ]
    spec = assets.url(plots.spectrogram_png(clip.x, clip.sr), "image/png", f"{label}.png")
    sound, mime = analysis.preview(path)
    player = (
        f'<audio controls preload="metadata" src="{assets.url(sound, mime, label + _ext(mime))}"></audio>'
        if sound
        else '<p class="muted">No preview could be encoded.</p>'
    )
    return (
        head
        + page.table(heads, [row], cls="figures")
        + plots.waveform_svg(clip.x, clip.sr)
        + page.spectrogram(spec, clip.sr)
        + player
        + "</div>"
    )


def _ext(mime: str) -> str:
    return next((f".{ext}" for ext, (_, _, m) in audio.FORMATS.items() if m == mime), ".bin")


def _pitch(step_id: str, f0_src, f0_out, step: dict) -> str:
    import numpy as np

    if f0_src is None or f0_out is None:
        return f'<p class="muted">{escape(step_id)}: its files are no longer in the cache.</p>'
    svg = plots.pitch_svg(
        [("source vocals", f0_src, SOURCE_COLOR), ("converted vocals", f0_out, CONVERTED_COLOR)], analysis.FRAME_MS
    )

    def median(f0):
        v = f0[f0 > 0]
        return float(np.exp(np.median(np.log(v)))) if len(v) else float("nan")

    a, b = median(f0_src), median(f0_out)
    shift = 12 * math.log2(b / a) if a > 0 and b > 0 else float("nan")
    both = (f0_src[: len(f0_out)] > 0) & (f0_out[: len(f0_src)] > 0)
    meta = step.get("meta", {})
    rows = [
        ["median pitch, source", page.fmt(a, " Hz")],
        ["median pitch, converted", page.fmt(b, " Hz")],
        ["measured shift", page.fmt(shift, " st")],
        ["requested shift", page.fmt(meta.get("semitones", meta.get("key")), " st")],
        ["frames voiced in both", f"{100 * both.mean():.0f} %" if both.size else "-"],
    ]
    choice = meta.get("octave")
    if choice:  # the converter chose octaves (or a key) itself: say what it compared and why
        rows += [
            [
                "chosen shift",
                page.fmt(choice.get("shift"), " st")
                + escape(f" ({choice.get('source_delivery', '?')} vs the voice's {choice.get('compared_with', '?')})"),
            ],
            ["why", escape(str(choice.get("reason", "")))],
        ]
    return (
        f'<div class="stage pitch-block" data-step="{escape(step_id)}"><h3>{escape(step_id)}</h3>{svg}'
        + page.table(["figure", "value"], rows, num={1}, cls="figures")
        + "</div>"
    )
