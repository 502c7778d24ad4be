"""Uploads: a client's file streamed to a name of ours, checked (size, audio by content, length), or removed.

A client's file name never reaches the file system: the stored file gets a random name, and :func:`safe_name`
makes the name a batch reports and mirrors (its last component, odd characters replaced).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from fastapi import UploadFile

from ..config import Settings
from ..errors import InputError
from .deps import http_error

CHUNK = 1 << 16  # bytes read from an upload at a time
NAME_MAX = 100  # characters of a client's file name kept (its extension besides)
SUFFIX_MAX = 12  # a longer "extension" is part of the name
_UNSAFE = re.compile(r"[^\w .,()+=@&'-]+")  # what a client's file name keeps (unicode letters included)


def safe_name(name: str | None) -> str:
    """A client's file name as we may use it in paths: its last component, odd characters replaced, no leading
    dot, at most :data:`NAME_MAX` characters with its extension kept."""
    base = _UNSAFE.sub("_", re.split(r"[\\/]", name or "")[-1]).strip(" .") or "upload"
    dot = base.rfind(".")
    stem, suffix = (base[:dot], base[dot:]) if 0 < dot and len(base) - dot <= SUFFIX_MAX else (base, "")
    return (stem[:NAME_MAX].rstrip(" .") or "upload") + suffix


def stream_upload(file: UploadFile, folder: Path, limit: int, too_large: str, hint: str) -> Path:
    """Stream an upload to a random name in ``folder`` (nothing from the request reaches the file system); past
    ``limit`` bytes a 413 with ``too_large`` and ``hint``. A refused upload leaves nothing behind."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / uuid.uuid4().hex
    try:
        with open(path, "wb") as out:
            size = 0
            while chunk := file.file.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise http_error(413, "too_large", too_large, hint)
                out.write(chunk)
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def save_upload(settings: Settings, file: UploadFile, folder: Path, label: str | None = None) -> Path:
    """Stream an upload into ``folder`` and check it: at most ``max_upload_mb`` (413), audio by content (ffprobe;
    InputError otherwise), at most ``max_upload_duration`` seconds (InputError). Returns its path; a refused upload
    leaves nothing behind. With ``label``, error messages call the upload that instead of by our file name."""
    from .. import audio

    limit = int(settings.max_upload_mb * 1e6)
    path = stream_upload(
        file, folder, limit, f"The upload is over {settings.max_upload_mb:g} MB.", "Send a shorter note."
    )
    try:
        try:
            info = audio.probe(path)  # content sniffing: InputError when there is no audio stream
        except InputError as e:
            if label:  # ffprobe's words name the file by its full path
                e.user_message = e.user_message.replace(str(path), label).replace(path.name, label)
                e.hint = e.hint and e.hint.replace(str(path), label).replace(path.name, label)
            raise
        if info.duration > settings.max_upload_duration:
            raise InputError(
                f"The voice note is {info.duration:.0f} s long; the limit is {settings.max_upload_duration:.0f} s.",
                hint="Send a shorter note.",
            )
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise
