"""A song given as a file on this machine."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

from ...config import Settings
from ...errors import EngineUnavailable, InputError
from ..base import Candidate, Progress, Source, no_progress


def as_path(query: str) -> Path:
    """``query`` as a path: surrounding whitespace and quotes removed, ``~`` expanded."""
    text = query.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return Path(text).expanduser()


class LocalFileSource(Source):
    """Any audio or video file ffmpeg can read, given by path (names with spaces and unicode are fine)."""

    name: ClassVar[str] = "local"
    kind: ClassVar[str] = "source"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "A local audio/video file given by path."

    @classmethod
    def check(cls, settings: Settings) -> None:
        if not shutil.which("ffprobe"):
            raise EngineUnavailable(
                "ffprobe is not installed.", hint="Install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg)."
            )

    def __init__(self, settings: Settings):
        self.settings = settings

    def search(self, query: str, limit: int = 1) -> list[Candidate]:
        """One candidate when ``query`` names an existing file, else none. Never reads the network."""
        try:
            path = as_path(query)
            if not path.is_file():
                return []
        except (OSError, ValueError):  # e.g. a name too long for the file system
            return []
        path = path.resolve()
        cand = Candidate(title=path.stem, source=self.name, ref=str(path))
        try:
            from ...audio import probe

            info = probe(path)
        except InputError:
            return [cand]  # fetch() reports what is wrong with the file
        cand.duration = info.duration or None
        cand.title = info.tags.get("title") or path.stem
        cand.artist = info.tags.get("artist") or info.tags.get("album_artist") or ""
        return [cand]

    def fetch(self, candidate: Candidate, dest_dir: Path | None = None, progress: Progress = no_progress) -> Path:
        """Return the file itself after checking it holds decodable audio (raises InputError otherwise)."""
        from ...audio import probe

        path = as_path(candidate.ref)
        probe(path)
        progress(1.0, f"Using local file {path.name}")
        return path
