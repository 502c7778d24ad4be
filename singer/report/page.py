"""HTML building blocks of the reports: one stylesheet, escaped fragments, and :class:`Assets`, which puts images
and audio inside the page (data: URIs, one self-contained file) or beside it (a ``<name>_files/`` folder)."""

from __future__ import annotations

import base64
import math
import re
import time
from html import escape
from pathlib import Path

from ..version import __version__

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2230;background:#fff}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e3e6ee;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.muted{color:#6b7385}code{font-size:12px;background:#f2f4f8;padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef3;vertical-align:top}
th{background:#f6f7fb;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.steps td:last-child{white-space:nowrap;min-width:90px}
table.items td:last-child{min-width:280px}table.items audio{margin:0}
.badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600}
.hit{background:#dff3e4;color:#1b6b35}.miss{background:#fde9d7;color:#8a4510}.skip{background:#eceef3;color:#5b6275}
.done{background:#dff3e4;color:#1b6b35}.failed{background:#fbe0e0;color:#9b1c1c}.skipped{background:#eceef3;color:#5b6275}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}.card{border:1px solid #e3e6ee;border-radius:8px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:18px}.bar{height:8px;background:#3b6fd8;border-radius:4px;min-width:1px}
.stage{border:1px solid #e3e6ee;border-radius:8px;padding:10px 14px;margin:14px 0}
.spec{position:relative}.spec img{width:100%;display:block;image-rendering:auto}
.spec span{position:absolute;left:4px;font-size:10px;color:#fff;text-shadow:0 0 2px #000}
audio{width:100%;margin-top:6px}.err{color:#9b1c1c}
"""


class Assets:
    """Embed bytes in the page, or write them beside it and link them relatively."""

    def __init__(self, html_path: Path, embed: bool = True):
        self.html_path, self.embed = Path(html_path), embed
        self.folder = self.html_path.with_name(self.html_path.stem + "_files")
        self._n = 0

    def url(self, data: bytes, mime: str, name: str) -> str:
        if self.embed:
            return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        self._n += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        fname = f"{self._n:02d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}"
        (self.folder / fname).write_bytes(data)
        return f"{self.folder.name}/{fname}"


def document(title: str, body: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
        f'<body><main>{body}<p class="muted" style="margin-top:32px">Written by singer {__version__} on {stamp}. '
        f"Everything this page shows is inside it or beside it; it needs no network.</p></main></body></html>"
    )


def table(
    headers: list[str], rows: list[list[str]], num: set[int] | frozenset[int] = frozenset(), cls: str = ""
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def cards(items: list[tuple[str, str]]) -> str:
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{escape(v)}</b><span class="muted">{escape(k)}</span></div>' for k, v in items)
        + "</div>"
    )


def badge(text: str, cls: str) -> str:
    return f'<span class="badge {cls}">{escape(text)}</span>'


def params(p: dict) -> str:
    """A step's parameters as compact key=value code chips (long values shortened)."""
    if not p:
        return '<span class="muted">-</span>'
    out = []
    for k, v in p.items():
        text = v if isinstance(v, str) else repr(v)
        text = text if len(text) <= 60 else text[:57] + "..."
        out.append(f"<code>{escape(str(k))}={escape(text)}</code>")
    return " ".join(out)


def fmt(v, unit: str = "", digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}{unit}" if isinstance(v, (int, float)) else escape(str(v))


def spectrogram(url: str, sr: int, fmin: float = 40.0) -> str:
    """The spectrogram image with frequency labels laid over its left edge (log axis fmin .. sr/2)."""
    top, span = math.log(sr / 2), math.log(sr / 2) - math.log(fmin)
    labels = "".join(
        f'<span style="top:calc({(top - math.log(f)) / span * 100:.1f}% - 7px)">'
        f"{f if f < 1000 else f'{f // 1000}k'}</span>"
        for f in (100, 300, 1000, 3000, 10000)
        if f < sr / 2
    )
    return f'<div class="spec"><img alt="spectrogram" src="{url}">{labels}</div>'
