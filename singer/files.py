"""File helpers every layer shares: atomic writes, content digests, human-readable sizes.

Atomic means: the data goes to a temp file in the destination's folder, then ``os.replace`` puts it in place, so
a reader sees the old file or the new one, never half of one, and a crash leaves at most a stray temp file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_BLOCK = 1 << 20
# A JSON list of plain numbers written by indent=1 takes a line per number; put it back on one line.
_NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][-0-9.eE,\s]*?)\s*\]")


def temp_name(dst: Path, tag: str = "tmp") -> Path:
    """A temp path beside ``dst`` that no other process or attempt shares."""
    return dst.with_name(f".{dst.name}.{os.getpid()}.{tag}")


@contextlib.contextmanager
def atomic_path(dst: str | os.PathLike, tag: str = "tmp") -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces ``dst``, on error it is removed and ``dst`` untouched."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(dst, tag)
    try:
        yield tmp
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, data: Any, *, compact_numbers: bool = True, **dumps: Any) -> None:
    """Write ``data`` as JSON atomically. Indented one space; lists of numbers kept on one line (pitch tracks,
    envelopes) unless ``compact_numbers`` is off. Extra keyword arguments go to ``json.dumps``."""
    dumps.setdefault("indent", 1)
    text = json.dumps(data, **dumps)
    if compact_numbers:
        text = _NUMBER_LIST.sub(lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text)
    atomic_write_text(path, text + "\n")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as disks and downloads are sold)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"
