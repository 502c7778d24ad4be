"""Keep the server's file system out of what clients see.

Messages are written for people and often name a file (``ffmpeg could not read /srv/singer/cache/uploads/ab12``);
a remote caller must learn neither the layout of the server's disk nor the names of other tenants' files. Every
error, event and webhook the service sends passes through :func:`redact`, which keeps a path's last component
only. API routes (``/v1/...``) named in hints are left as they are.
"""

from __future__ import annotations

import re
from typing import Any

# an absolute POSIX path (optionally file:), not part of a URL (no ':', '/' or word character right before it)
_PATH = re.compile(r"(?<![\w:/.~-])(?:file:(?://)?)?(/(?:[^\s/'\"`<>|:;,()\[\]{}]+/)+)(?=[^\s/'\"`<>|]*)")
_ROUTES = ("/v1/", "/docs", "/healthz", "/metrics", "/openapi")


def _keep_last(match: re.Match) -> str:
    whole = match.group(0)
    return whole if whole.startswith(_ROUTES) else ""


def redact_text(text: str) -> str:
    """``text`` with every absolute directory part removed (``/srv/x/uploads/ab12`` -> ``ab12``)."""
    return _PATH.sub(_keep_last, text) if "/" in text else text


def redact(obj: Any) -> Any:
    """:func:`redact_text` applied to every string in a JSON-like value (dicts, lists, strings)."""
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, dict):
        return {k: redact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj
