"""Turn what the user typed (a path, a URL or search words) into candidates, pick one, and fetch it.

Order: an existing file -> ``local``; a URL -> ``ytdlp`` (after the URL policy); anything else is a text search:
the local library (when ``SINGER_LIBRARY`` is set) and YouTube together, good library matches first. When the
network is unreachable the search falls back to the library and every returned candidate carries
``extra['warning']`` saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import EngineUnavailable, InputError, NetworkUnavailable, SourceError
from .. import registry
from ..base import Candidate, Progress, no_progress
from .local import as_path
from .urls import check_url, looks_like_url, normalize_url

GOOD_LIBRARY_SCORE = 0.75  # library hits at least this good are listed before web results


def _looks_like_path(text: str) -> bool:
    from ...audio import AUDIO_EXTENSIONS

    if text.startswith(("/", "./", "../", "~", ".\\", "..\\")):
        return True
    try:
        return as_path(text).suffix.lower() in AUDIO_EXTENSIONS
    except ValueError:
        return False


def choose(candidates: list[Candidate], pick: int | None, query: str) -> Candidate:
    """``candidates[pick - 1]`` (``pick`` is 1-based, default 1); InputError naming the count when out of range."""
    n = len(candidates)
    index = 1 if pick is None else pick
    if not 1 <= index <= n:
        raise InputError(
            f"Pick {index} is out of range: there {'is' if n == 1 else 'are'} {n} candidate{'s' if n != 1 else ''} "
            f"for '{query}'",
            hint=f"Choose a number from 1 to {n} (list them with `singer search`)." if n else "Try other words.",
        )
    return candidates[index - 1]


def search(query: str, settings: Any, limit: int | None = None) -> list[Candidate]:
    """Numbered candidates for a text query (position + 1 is the number to pick), at most ``limit``."""
    query = " ".join(query.split())
    if not query:
        raise InputError("Empty search query.", hint="Give a song title, e.g. 'artist title'.")
    limit = max(1, int(limit or settings.search_results))
    warnings: list[str] = []
    library: list[Candidate] = []
    if settings.library_paths:
        try:
            library = registry.create("source", "library", settings).search(query, limit)
        except SourceError as e:
            warnings.append(str(e))
    web: list[Candidate] = []
    offline: SourceError | None = None
    try:
        web = registry.create("source", "ytdlp", settings).search(query, limit)
    except NetworkUnavailable as e:
        offline = e
        warnings.append(e.user_message if settings.library_paths else "The network is unreachable.")
    except (EngineUnavailable, SourceError) as e:
        if not library:
            raise
        warnings.append(str(e))
    good = [c for c in library if c.extra.get("score", 0) >= GOOD_LIBRARY_SCORE]
    weak = [c for c in library if c.extra.get("score", 0) < GOOD_LIBRARY_SCORE]
    found = (good + web + weak)[:limit]
    if not found:
        if offline is not None:
            where = (
                "the local library (SINGER_LIBRARY) has no match"
                if settings.library_paths
                else "no local library is set"
            )
            raise NetworkUnavailable(
                f"No song found for '{query}': the network is unreachable and {where}",
                hint="Check your connection, give a file path, or set SINGER_LIBRARY to your music folders.",
            )
        raise SourceError(
            f"No song found for '{query}'",
            hint="Try other words, give a file path or URL, or set SINGER_LIBRARY to search your own music."
            + (f" ({'; '.join(warnings)})" if warnings else ""),
        )
    if warnings:
        for cand in found:
            cand.extra["warning"] = " ".join(warnings)
    return found


def resolve(
    query: str, settings: Any, pick: int | None = None, search_limit: int | None = None
) -> tuple[Candidate, list[Candidate]]:
    """The chosen candidate and all candidates for ``query`` (a path, a URL or search words)."""
    text = query.strip()
    if not text:
        raise InputError("No song given.", hint="Give a file path, a URL, or search words such as 'artist title'.")
    candidates = registry.create("source", "local", settings).search(text, 1)
    if not candidates:
        if looks_like_url(text):
            url = check_url(normalize_url(text), bool(settings.allow_private_urls))
            candidates = [Candidate(title=url, source="ytdlp", ref=url, url=url)]
        elif _looks_like_path(text):
            raise InputError(
                f"File not found: {text}",
                hint="Check the path; to search by name, give words without a file extension.",
            )
        else:
            candidates = search(text, settings, search_limit)
    return choose(candidates, pick, text), candidates


def fetch(candidate: Candidate, settings: Any, progress: Progress = no_progress) -> Path:
    """A local media file for ``candidate``, from the source engine that found it."""
    engine = registry.create("source", candidate.source, settings)
    return engine.fetch(candidate, Path(settings.downloads_path), progress)
