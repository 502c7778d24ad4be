"""The page of one batch (see :func:`singer.report.batch_report`)."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from urllib.parse import quote

from . import page


def _step_meta(record: dict | None, op: str) -> dict:
    for s in (record or {}).get("steps", []):
        if s.get("op") == op and not s.get("skipped"):
            return s.get("meta", {})
    return {}


def _player(item: dict, base: Path, files: dict[str, Path] | None, assets: page.Assets | None) -> str:
    """An <audio> for the item's output: inside the page (``assets``), or linked relative to ``base``."""
    if item.get("status") not in ("done", "skipped") or not item.get("output"):
        return ""
    out = Path(item["output"])
    if assets is not None and files and item["rel"] in files:
        from .analysis import preview

        data, mime = preview(files[item["rel"]])
        return f'<audio controls preload="none" src="{assets.url(data, mime, out.name)}"></audio>' if data else ""
    if out.is_absolute() and not out.is_file():
        return ""
    rel = os.path.relpath(out, base) if out.is_absolute() else str(out)
    return f'<audio controls preload="none" src="{quote(rel.replace(os.sep, "/"))}"></audio>'


def render(
    summary: dict,
    records: dict[str, dict],
    links: dict[str, str],
    base: Path,
    files: dict[str, Path] | None = None,
    assets: page.Assets | None = None,
) -> str:
    items = summary.get("items", [])
    body = [_header(summary, items), _failures(items)]
    rows = [_row(n, item, records, links, base, files, assets) for n, item in enumerate(items, 1)]
    headings = ["#", "file", "status", "length", "time", "loudness", "silence trimmed", "steps computed / cached"]
    body.append("<h2>Files</h2>" + page.table([*headings, "output"], rows, num={0, 3, 4, 5, 6}, cls="items"))
    return page.document("singer batch report", "".join(body))


def _header(summary: dict, items: list[dict]) -> str:
    audio_s = sum(i.get("duration", 0.0) for i in items if i.get("status") == "done")
    work_s = summary.get("seconds", 0.0)
    failed = summary.get("failed")
    badge = page.badge(f"{failed} failed", "failed") if failed else page.badge("all succeeded", "done")
    figures = [
        ("files", str(summary.get("files", len(items)))),
        ("converted", str(summary.get("done", 0))),
        ("already current", str(summary.get("skipped", 0))),
        ("failed", str(summary.get("failed", 0))),
        ("wall time", f"{work_s:.1f} s"),
        ("audio converted", f"{audio_s:.0f} s"),
        ("speed", f"{audio_s / work_s:.1f}x real time" if work_s > 0 and audio_s else "-"),
    ]
    where = f"{escape(str(summary.get('folder', '')))} &rarr; {escape(str(summary.get('out', '')))}"
    return f'<h1>Batch report {badge}</h1><p class="muted">{where}</p>' + page.cards(figures)


def _failures(items: list[dict]) -> str:
    failed = [i for i in items if i.get("status") == "failed"]
    if not failed:
        return ""
    rows = [[f"<b>{escape(i['rel'])}</b>", f'<span class="err">{escape(i.get("message", ""))}</span>'] for i in failed]
    return "<h2>Failures</h2>" + page.table(["file", "message"], rows, cls="failures")


def _row(
    n: int,
    item: dict,
    records: dict[str, dict],
    links: dict[str, str],
    base: Path,
    files: dict[str, Path] | None,
    assets: page.Assets | None,
) -> list[str]:
    rec = records.get(item["rel"])
    mix, trim = _step_meta(rec, "mix"), _step_meta(rec, "trim")
    steps = (rec or {}).get("steps", [])
    hits = sum(1 for s in steps if s.get("cached"))
    ran = sum(1 for s in steps if not s.get("cached") and not s.get("skipped"))
    link = f'<a href="{quote(links[item["rel"]])}">report</a>' if item["rel"] in links else ""
    message = f'<span class="err">{escape(item.get("message", ""))}</span>' if item.get("message") else ""
    trimmed = (trim.get("lead_trimmed_s", 0.0) + trim.get("tail_trimmed_s", 0.0)) if trim else None
    return [
        str(n),
        f"<b>{escape(item['rel'])}</b>",
        page.badge(item.get("status", ""), item.get("status", "")),
        page.fmt(item.get("duration") or None, " s"),
        page.fmt(item.get("seconds") or None, " s"),
        page.fmt(mix.get("output_lufs"), " LUFS"),
        page.fmt(trimmed, " s"),
        f"{ran} / {hits}" if steps else "-",
        _player(item, base, files, assets) + link + message,
    ]
