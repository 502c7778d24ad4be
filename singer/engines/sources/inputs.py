"""What an input IS, decided once: a local path, a URL, or search text; and who may use which.

Every way in classifies what the user typed with :func:`classify`. The CLI and the Python API may name files on
this machine (``InputPolicy.local()``). The HTTP service may not (``InputPolicy.remote(...)``): a query there is a
URL or search text, anything path-like is refused before a job exists, and the worker that runs the job enforces
the same policy again, so a request that slipped past the door still cannot reach the server's files. The only
server files a remote job reads are its own uploads (and batch folders under ``SINGER_BATCH_ROOTS``); the local
music library is searched for remote callers only when the operator sets ``SINGER_HTTP_LIBRARY=1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ...config import Settings
from ...errors import InputError
from .urls import looks_like_url, normalize_url

Kind = Literal["path", "url", "search"]
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_FILE_SCHEME = re.compile(r"^file:", re.IGNORECASE)
_REMOTE_HINT = (
    "Give a search text or an http(s) link; to convert your own file, upload it (POST /v1/conversions "
    "or POST /v1/batches)."
)


@dataclass(frozen=True)
class Input:
    kind: Kind
    text: str  # what was typed, whitespace-trimmed
    path: Path | None = None  # kind "path": quotes removed, ~ expanded
    url: str = ""  # kind "url": normalised (https:// added to bare host/path links)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].strip()
    return text


def path_like(text: str) -> bool:
    """Whether ``text`` is written like a file path: quoted, ``~``, absolute (``/``, ``\\``, ``C:\\``), ``file:``,
    or relative with a path separator (``./x``, ``a/b.mp3``, ``..\\x``)."""
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return True
    return bool(
        t.startswith(("~", "/", "\\"))
        or t in (".", "..")
        or _DRIVE.match(t)
        or _FILE_SCHEME.match(t)
        or "/" in t
        or "\\" in t
        or "\x00" in t
    )


def classify(text: str, *, local: bool = True) -> Input:
    """Classify what the user typed. ``local=False`` (the HTTP service): path-like text is refused (InputError,
    a 4xx); ``local=True``: an existing file is a path even without a separator (``song.mp3`` in the current
    folder), path-like text is a path whether it exists or not (the source step says it is missing), and
    ``AC/DC``-style words that name no file stay search text."""
    t = text.strip()
    if not t:
        raise InputError(
            "No song given.",
            hint="Give a search text such as 'artist title', or a URL" + (", or a file path." if local else "."),
        )
    if _FILE_SCHEME.match(t):
        if not local:
            raise InputError("The query is a file: link; file paths are not accepted here.", hint=_REMOTE_HINT)
        return Input("path", t, path=Path(re.sub(r"^file:(//)?", "", t, flags=re.IGNORECASE)).expanduser())
    p = _as_path(t) if local else None
    if p is not None and _is_file(p):
        return Input("path", t, path=p)  # an existing file wins, even when its name looks like a link
    if looks_like_url(t):
        if "://" in t and not t.lower().startswith(("http://", "https://")):
            raise InputError(f"Unsupported link '{t[:80]}'", hint="Only http:// and https:// links are fetched.")
        return Input("url", t, url=normalize_url(t))
    if not path_like(t):
        return Input("search", " ".join(t.split()))
    if not local:
        raise InputError(
            "The query is written like a file path (quoted, ~, absolute, or with / or \\); file paths "
            "are not accepted here.",
            hint=_REMOTE_HINT + " A song title with a '/' in it: write it with a space instead.",
        )
    if p is not None and not p.exists() and _words(t):
        return Input("search", " ".join(t.split()))  # "AC/DC": words, not a file
    if p is None:
        raise InputError(f"'{t[:80]}' is not a usable file path.", hint="Check the path.")
    return Input("path", t, path=p)


def _words(text: str) -> bool:
    """Text with a '/' that reads as words ("AC/DC", "Simon/Garfunkel live"): no leading path marker, no
    backslash, no file extension at the end."""
    return not (
        text.startswith(("/", ".", "~", "\\", "'", '"'))
        or "\\" in text
        or _DRIVE.match(text)
        or re.search(r"\.\w{1,5}$", text)
    )


def _is_file(p: Path) -> bool:
    try:
        return p.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _as_path(text: str) -> Path | None:
    try:
        return Path(_unquote(text)).expanduser()
    except (ValueError, RuntimeError):  # e.g. ~user that does not exist
        return None


@dataclass(frozen=True)
class InputPolicy:
    """Which inputs a run may read. ``local``: any file on this machine (CLI, Python API). Otherwise only files
    inside ``roots`` (a remote job's uploads, batch roots) and, with ``library``, the local music library."""

    local: bool = True
    roots: tuple[Path, ...] = field(default_factory=tuple)
    library: bool = True
    upload_roots: tuple[Path, ...] = field(default_factory=tuple)  # inputs here get upload_seconds as their limit
    upload_seconds: float | None = None
    namespace: str = ""  # a remote caller's id: its runs share cache entries with no other caller's

    @classmethod
    def remote(
        cls, settings: Settings, roots: tuple[Path, ...] = (), uploads: Path | None = None, owner: str = ""
    ) -> InputPolicy:
        """The HTTP service's policy: files only inside ``uploads`` and ``roots``; uploads limited to
        ``max_upload_duration`` of decoded audio; the library only with ``SINGER_HTTP_LIBRARY=1``; the step cache
        kept apart per ``owner`` (a caller must not learn from cache hits what another one sang)."""
        ups = (uploads,) if uploads is not None else ()
        return cls(
            local=False,
            roots=tuple(roots) + ups,
            library=bool(getattr(settings, "http_library", False)),
            upload_roots=ups,
            upload_seconds=float(settings.max_upload_duration),
            namespace=owner,
        )

    def own_file(self, text: str) -> Path | None:
        """``text`` as a file inside ``roots`` when it is an absolute path there (how the service names a remote
        job's upload), else None. Never true for text a caller wrote: the door refuses paths."""
        if self.local or not text.startswith("/"):
            return None
        try:
            return self.check_file(Path(text), text)
        except (InputError, OSError, ValueError):
            return None

    def check_file(self, path: Path | None, shown: str) -> Path:
        """``path`` resolved (links and ``..`` followed) if this policy may read it; InputError otherwise, naming
        the input as the caller gave it (``shown``), never the server's path."""
        if path is None:
            raise InputError(f"No file named in '{shown}'.", hint="Give the path of an audio or video file.")
        real = path.resolve()
        if self.local:
            return real
        for root in self.roots:
            try:
                if real.is_relative_to(root.resolve()):
                    return real
            except OSError:
                continue
        raise InputError(
            "The input is a file path outside this service's uploads; file paths are not accepted here.",
            hint=_REMOTE_HINT,
        )

    def seconds_for(self, path: Path, default: float) -> float:
        """The decoded-length limit for ``path``: the upload limit for an upload, else ``default``."""
        real = path.resolve()
        for root in self.upload_roots:
            if real.is_relative_to(root.resolve()) and self.upload_seconds:
                return min(self.upload_seconds, default)
        return default
