"""Search the user's own music folders (``SINGER_LIBRARY``) by file name and tags.

Tags (title/artist/album) and durations come from ffprobe. They are cached in
``settings.cache_path / "library-index.json"``, keyed by path and checked against mtime and size, so only new or
changed files are probed again.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, ClassVar

from ...config import Settings
from ...errors import InputError, SourceError
from ..base import Candidate, Progress, Source, no_progress

INDEX_NAME = "library-index.json"
TEMP_PREFIX = ".library-index-"  # the index being written (held by its writer: see singer.locks)
INDEX_VERSION = 1
MIN_SCORE = 0.5  # below this a file is not a match at all
_PROBE_WORKERS = 4
_WORD = re.compile(r"[^\w]+")


def normalize(text: str) -> str:
    """Lower-case, strip accents, and turn punctuation/underscores into single spaces."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return " ".join(_WORD.sub(" ", text.replace("_", " ")).split())


def _token_match(token: str, words: list[str]) -> float:
    """1 for an exact word, 0.9 for a prefix (3+ letters), else the best close spelling (>= 0.8) or 0."""
    if token in words:
        return 1.0
    if len(token) >= 3 and any(w.startswith(token) for w in words):
        return 0.9
    best = max((SequenceMatcher(None, token, w).ratio() for w in words), default=0.0)
    return best if best >= 0.8 and len(token) >= 4 else 0.0


def score(query: str, texts: list[str]) -> float:
    """How well ``query`` matches the best of ``texts``: 0..1, mostly word overlap plus a whole-string ratio."""
    q = normalize(query)
    q_words = q.split()
    if not q_words:
        return 0.0
    best = 0.0
    for text in texts:
        t = normalize(text)
        if not t:
            continue
        words = t.split()
        overlap = sum(_token_match(w, words) for w in q_words) / len(q_words)
        ratio = SequenceMatcher(None, q, t).ratio()
        best = max(best, 0.75 * overlap + 0.25 * ratio)
    return round(best, 4)


def _walk(root: Path) -> Iterator[Path]:
    """Audio files under ``root``, following symlinked folders once, skipping hidden ones."""
    from ...audio import AUDIO_EXTENSIONS

    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                yield Path(dirpath) / name


def _probe_entry(path: Path, stat: os.stat_result) -> dict:
    from ...audio import probe

    entry: dict[str, Any] = {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size}
    try:
        info = probe(path)
    except InputError as e:
        entry["error"] = e.user_message
        return entry
    tags = info.tags
    entry.update(
        title=tags.get("title", ""),
        artist=tags.get("artist") or tags.get("album_artist") or "",
        album=tags.get("album", ""),
        duration=info.duration or None,
    )
    return entry


class LibraryIndex:
    """The cached tag index: ``{path: {mtime_ns, size, title, artist, album, duration | error}}``."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if (
            not isinstance(data, dict)
            or data.get("version") != INDEX_VERSION
            or not isinstance(data.get("files"), dict)
        ):
            return {}
        return data["files"]

    def save(self, files: dict[str, dict]) -> None:
        """Write atomically (temp file + rename); a failure to write only costs speed next time. The temp file is
        held while it is written, so a cache prune leaves it alone."""
        from ... import locks

        def temp() -> Path:
            fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".tmp", dir=self.path.parent)
            os.close(fd)
            return Path(name)

        tmp: Path | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with locks.held_new(temp) as tmp:
                with tmp.open("w", encoding="utf-8") as f:
                    json.dump({"version": INDEX_VERSION, "files": files}, f, ensure_ascii=False)
                os.replace(tmp, self.path)
        except OSError:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def scan(self, roots: list[Path]) -> dict[str, dict]:
        """Entries for every audio file under ``roots``; probes only new or changed files."""
        cached = self.load()
        current: dict[str, dict] = {}
        todo: list[tuple[Path, os.stat_result]] = []
        for root in roots:
            for path in _walk(root):
                key = str(path)
                try:
                    st = path.stat()
                except OSError:
                    continue
                old = cached.get(key)
                if old and old.get("mtime_ns") == st.st_mtime_ns and old.get("size") == st.st_size:
                    current[key] = old
                else:
                    todo.append((path, st))
        if todo:
            with ThreadPoolExecutor(max_workers=min(_PROBE_WORKERS, len(todo))) as pool:
                for (path, _), entry in zip(todo, pool.map(lambda a: _probe_entry(*a), todo)):
                    current[str(path)] = entry
        root_strs = [str(r) for r in roots]
        # keep entries of other libraries (another SINGER_LIBRARY); drop vanished files under these roots
        kept = {k: v for k, v in cached.items() if not any(k.startswith(r + os.sep) for r in root_strs)}
        merged = {**kept, **current}
        if todo or len(merged) != len(cached):
            self.save(merged)
        return current


class LibrarySource(Source):
    """Local music folders from SINGER_LIBRARY, searched by file name and title/artist/album tags."""

    name: ClassVar[str] = "library"
    kind: ClassVar[str] = "source"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Your own music folders (SINGER_LIBRARY), searched by file name and tags."

    @classmethod
    def check(cls, settings: Settings) -> None:
        return None  # with no folders configured, search() simply finds nothing

    def __init__(self, settings: Settings):
        self.settings = settings
        self.index = LibraryIndex(Path(settings.cache_path) / INDEX_NAME)

    def roots(self) -> list[Path]:
        """Configured folders that exist; SourceError when folders are configured but none exists."""
        paths = list(self.settings.library_paths)
        roots = [p.resolve() for p in paths if p.is_dir()]
        if paths and not roots:
            raise SourceError(
                f"Library folder not found: {os.pathsep.join(str(p) for p in paths)}",
                hint=f"Set SINGER_LIBRARY to existing music folders (separated by '{os.pathsep}'), or unset it.",
            )
        return roots

    def search(self, query: str, limit: int | None = None) -> list[Candidate]:
        """Best matches first, each with ``extra['score']`` (0..1); at most ``limit`` (default search_results)."""
        limit = limit or self.settings.search_results
        hits: list[tuple[float, str, dict]] = []
        for key, entry in self.index.scan(self.roots()).items():
            if entry.get("error"):
                continue
            path = Path(key)
            title, artist, album = entry.get("title", ""), entry.get("artist", ""), entry.get("album", "")
            texts = [path.stem, f"{artist} {title}", f"{artist} {album} {title}", f"{path.parent.name} {path.stem}"]
            s = score(query, [t for t in texts if t.strip()])
            if s >= MIN_SCORE:
                hits.append((s, key, entry))
        hits.sort(key=lambda h: (-h[0], h[1]))
        out = []
        for s, key, entry in hits[:limit]:
            path = Path(key)
            out.append(
                Candidate(
                    title=entry.get("title") or path.stem,
                    source=self.name,
                    ref=key,
                    artist=entry.get("artist", ""),
                    duration=entry.get("duration"),
                    extra={"score": s, "album": entry.get("album", ""), "path": key},
                )
            )
        return out

    def fetch(self, candidate: Candidate, dest_dir: Path | None = None, progress: Progress = no_progress) -> Path:
        """Return the library file itself after checking it is still readable media."""
        from ...audio import probe

        path = Path(candidate.ref)
        probe(path)
        progress(1.0, f"Using library file {path.name}")
        return path
