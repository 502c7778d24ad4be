"""Turn what the user typed (a path, a URL or search words) into candidates, pick one, and fetch it.

Order: an existing file -> ``local``; a URL -> ``ytdlp`` (after the URL policy); anything else is a text search:
the local library (when ``SINGER_LIBRARY`` is set) and YouTube together, good library matches first. When the
network is unreachable the search falls back to the library and every returned candidate carries
``extra['warning']`` saying so.
"""

from __future__ import annotations

from pathlib import Path

from ...config import Settings
from ...errors import EngineUnavailable, InputError, NetworkUnavailable, SourceError
from .. import registry
from ..base import Candidate, Progress, no_progress
from .inputs import InputPolicy, classify
from .urls import check_url

GOOD_LIBRARY_SCORE = 0.75  # library hits at least this good are listed before web results


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


def search(query: str, settings: Settings, limit: int | None = None, use_library: bool = True) -> list[Candidate]:
    """Numbered candidates for a text query (position + 1 is the number to pick), at most ``limit``. ``use_library``:
    include the local music library (when one is set); remote callers get it only if the operator allows."""
    query = " ".join(query.split())
    if not query:
        raise InputError("Empty search query.", hint="Give a song title, e.g. 'artist title'.")
    limit = max(1, int(limit or settings.search_results))
    warnings: list[str] = []
    library: list[Candidate] = []
    use_library = use_library and bool(settings.library_paths)
    if use_library:
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
            where = "the local library (SINGER_LIBRARY) has no match" if use_library else "no local library is set"
            raise NetworkUnavailable(
                f"No song found for '{query}': the network is unreachable and {where}",
                hint="Check your connection, give a file path, or set SINGER_LIBRARY to your music folders.",
            )
        raise SourceError(
            f"No song found for '{query}'",
            hint="Try other words or give a URL"
            + (", a file path, or set SINGER_LIBRARY to search your own music." if use_library else ".")
            + (f" ({'; '.join(warnings)})" if warnings else ""),
        )
    if warnings:
        for cand in found:
            cand.extra["warning"] = " ".join(warnings)
    return found


def resolve(
    query: str,
    settings: Settings,
    pick: int | None = None,
    search_limit: int | None = None,
    policy: InputPolicy | None = None,
) -> tuple[Candidate, list[Candidate]]:
    """The chosen candidate and all candidates for ``query`` (a path, a URL or search words), as ``policy``
    allows (default: local, as the CLI): a remote policy never reaches the local-file source, and the library
    only when it allows that."""
    policy = policy or InputPolicy()
    found = classify(query, local=policy.local)
    if found.kind == "path":
        path = policy.check_file(found.path, found.text)
        candidates = registry.create("source", "local", settings).search(str(path), 1)
        if not candidates:
            raise InputError(
                f"File not found: {found.text}",
                hint="Check the path; to search by name, give words without a file extension.",
            )
    elif found.kind == "url":
        url = check_url(found.url, settings)
        candidates = [Candidate(title=url, source="ytdlp", ref=url, url=url)]
    else:
        candidates = search(found.text, settings, search_limit, use_library=policy.library)
    return choose(candidates, pick, found.text), candidates


def fetch(candidate: Candidate, settings: Settings, progress: Progress = no_progress, namespace: str = "") -> Path:
    """A local media file for ``candidate``, from the source engine that found it. With ``namespace`` (a remote
    caller's id) downloads are kept apart per caller: nobody learns from a fast answer what another one fetched."""
    engine = registry.create("source", candidate.source, settings)
    dest = Path(settings.downloads_path)
    return engine.fetch(candidate, dest / "by-caller" / namespace if namespace else dest, progress)
