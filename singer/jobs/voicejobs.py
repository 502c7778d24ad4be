"""Voice changes as jobs: ``voice_add`` (from a link or an upload) and ``voice_merge``, run by
:func:`singer.jobs.execute.run_job` like covers, on the embedded worker or on Celery.

A request is built by the service; the worker still trusts none of it: a link goes through the URL policy,
an upload must be a file in the service's uploads folder (no other path of this machine is read), and the
uploads are removed when the job ends, whatever happened.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import InputError
from .paths import uploads_dir

VOICE_KINDS = ("voice_add", "voice_merge")
VOICE_RESULT_TYPE = "application/vnd.singer.voice+json"  # a voice job's result is a voice, not a file
_ADD_FIELDS = ("vocal_range", "gender", "description", "licence", "overwrite", "sha256")


def _upload(settings: Any, value: Any) -> Path:
    """An upload's path, only if it is a plain file directly in the uploads folder."""
    folder = uploads_dir(settings).resolve()
    path = Path(str(value))
    if path.parent.resolve() != folder or path.is_symlink() or not path.is_file():
        raise InputError("The uploaded voice is gone or is not an upload.", hint="Upload it again.")
    return path


def _add(singer: Any, settings: Any, request: dict, hooks: Any):
    kw = {k: request[k] for k in _ADD_FIELDS if request.get(k) not in (None, "")}
    if request.get("url"):
        return singer.add_voice(
            request["name"], request["url"], request.get("index_url"), local=False, hooks=hooks, **kw
        )
    source = _upload(settings, request.get("upload"))
    index = _upload(settings, request["index_upload"]) if request.get("index_upload") else None
    return singer.add_voice(request["name"], source, index, hooks=hooks, **kw)


def result_of(voice: Any, seconds: float) -> dict:
    """A voice job's result as the job store keeps it (no paths)."""
    meta = voice.meta
    return {
        "voice": voice.name,
        "title": str(meta.get("description", ""))[:200],
        "content_type": VOICE_RESULT_TYPE,
        "format": "",
        "duration": 0.0,
        "seconds": seconds,
    }


def run_voice_job(singer: Any, settings: Any, kind: str, request: dict, hooks: Any) -> dict:
    """Run a voice job; its result (as :func:`result_of`). Raises what stopped it; the uploads go either way."""
    t0 = time.perf_counter()
    try:
        if kind == "voice_merge":
            voice = singer.voices.merge(
                list(request["names"]),
                request.get("weights"),
                request["name"],
                overwrite=bool(request.get("overwrite")),
            )
        else:
            voice = _add(singer, settings, request, hooks)
    finally:
        for key in ("upload", "index_upload"):
            if request.get(key):
                try:
                    _upload(settings, request[key]).unlink()
                except (InputError, OSError):
                    pass
    return result_of(voice, round(time.perf_counter() - t0, 3))
