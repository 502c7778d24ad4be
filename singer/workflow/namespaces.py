"""The cache folder's namespaces: the step store and the side caches beside it, which ``singer cache du`` reports
and ``singer cache prune`` shrinks with one :func:`~singer.workflow.store.evict`, oldest first.

Each side cache is a row of :data:`NAMESPACES`: where it lives and how its entries are listed. What is in use is
never removed, and every rule is a lock or a record someone holds, never a guess from a file's age:

* steps: a running workflow holds a shared lock on each entry it used (:class:`~singer.workflow.store.Pins`);
* downloads: a download in progress holds its ``.download-*`` temp folder (yt-dlp's ``.part`` files are inside).
  A finished download is not held: the step that fetched it copies it into the step store at once (a prune
  removing it in that instant fails that step, which a rerun fetches again), it is the newest download (pruned
  last), and the download itself keeps it when it trims the folder (:func:`shrink`);
* library index: a derived file, rebuilt by the next library search; its writer holds its temp file;
* jobs: an HTTP job's folder is in use while the job store lists the job queued or running; a finished job's
  output stays while its client may fetch it, unless prune is asked for files older than it (age, never size);
* previews: a preview being written holds its ``.part`` file.

Everything else a killed process left (a temp folder no one holds) is free to go.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from .. import locks
from ..config import Settings
from ..engines.sources.library import INDEX_NAME, TEMP_PREFIX
from .store import Eviction, Item, Store, evict

DOWNLOAD_TEMP_PREFIX = ".download-"
_ALIASES = ".urls"  # url -> file records of the downloads (yt-dlp's source)


def _stats(path: Path) -> list[os.stat_result]:
    """``path`` and, for a folder, the files inside it (what vanishes meanwhile is left out)."""
    inside = path.rglob("*") if path.is_dir() else ()
    out = []
    for p in (path, *inside):
        try:
            st = p.lstat()
        except OSError:
            continue
        if p == path or stat.S_ISREG(st.st_mode):
            out.append(st)
    return out


def _size(path: Path) -> int:
    return sum(st.st_size for st in _stats(path) if stat.S_ISREG(st.st_mode))


def _newest(path: Path) -> float:
    """When ``path`` (a file, or the newest file inside a folder; an empty folder itself) was last written."""
    found = _stats(path)
    inside = found[1:] if len(found) > 1 else found
    return max((st.st_mtime for st in inside), default=0.0)


def _in_use(path: Path) -> bool:
    with locks.claimed(path) as free:
        return not free and path.exists()


def _remove(path: Path, also: tuple[Path, ...] = ()) -> bool:
    """Remove ``path`` (and ``also``) unless someone holds it; False when someone does (or it cannot be removed)."""
    with locks.claimed(path) as free:
        if not free:
            return not path.exists()
        try:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            for p in also:
                p.unlink(missing_ok=True)
        except OSError:
            pass
        return not path.exists()


def _item(ns: str, root: Path, path: Path, also: tuple[Path, ...] = (), **kw: Any) -> Item:
    return Item(
        ns,
        str(path.relative_to(root)) if path != root else path.name,
        path,
        _size(path) + sum(_size(p) for p in also if p.exists()),
        kw.pop("last_used", None) or _newest(path),
        kw.pop("in_use", None) or partial(_in_use, path),
        kw.pop("remove", None) or partial(_remove, path, also),
        **kw,
    )


def _aliases(folder: Path) -> dict[str, list[Path]]:
    """The download's file name -> the url records that point at it, in one downloads folder."""
    out: dict[str, list[Path]] = {}
    for rec in sorted((folder / _ALIASES).glob("*.json")):
        try:
            name = str(json.loads(rec.read_text(encoding="utf-8")).get("file", ""))
        except (OSError, ValueError, AttributeError):
            name = ""
        out.setdefault(Path(name).name, []).append(rec)
    return out


def _download_items(ns: str, root: Path, settings: Settings) -> list[Item]:
    items: list[Item] = []
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        aliases = _aliases(folder)
        for d in [d for d in dirnames if d.startswith(DOWNLOAD_TEMP_PREFIX)]:
            items.append(_item(ns, root, folder / d))  # held by its download while it runs
        dirnames[:] = [d for d in dirnames if d != _ALIASES and not d.startswith(DOWNLOAD_TEMP_PREFIX)]
        for name in filenames:
            items.append(_item(ns, root, folder / name, tuple(aliases.pop(name, ()))))
        for recs in aliases.values():  # records of a download that is gone
            items += [_item(ns, root, rec) for rec in recs]
    return items


def _index_items(ns: str, root: Path, settings: Settings) -> list[Item]:
    found = [root] if root.is_file() else []
    return [_item(ns, root.parent, p) for p in found + sorted(root.parent.glob(TEMP_PREFIX + "*"))]


def _file_items(ns: str, root: Path, settings: Settings) -> list[Item]:
    if not root.is_dir():
        return []
    return [_item(ns, root, p) for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()]


def _job_items(ns: str, root: Path, settings: Settings) -> list[Item]:
    if not root.is_dir():
        return []
    jobs = _job_store(settings)
    items = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        job = jobs.get(d.name) if jobs else None
        output = Path(str((job.result or {}).get("output", ""))) if job and job.state == "done" else None
        active = partial(_job_active, jobs, d.name)
        items.append(
            _item(
                ns,
                root,
                d,
                in_use=active,
                remove=partial(_remove_job, active, d),
                age_only=output is not None and output.parent == d,
            )
        )
    return items


class _Jobs:
    """The HTTP service's jobs database, read only through :mod:`singer.jobs.db` (the cache layer knows nothing of
    the job store above it)."""

    def __init__(self, path: Path):
        from ..jobs.db import Database

        self.db = Database(path)

    def get(self, job_id: str) -> Any:
        from ..jobs.db import get_job

        return get_job(self.db.conn(), job_id)


def _job_store(settings: Settings) -> _Jobs | None:
    """The HTTP service's jobs database, when this home has one (never created here)."""
    path = Path(settings.home) / "jobs.db"
    return _Jobs(path) if path.is_file() else None


def _job_active(jobs: _Jobs | None, job_id: str) -> bool:
    from ..jobs.db import ACTIVE

    job = jobs.get(job_id) if jobs else None
    return job is not None and job.state in ACTIVE


def _remove_job(active: Callable[[], bool], folder: Path) -> bool:
    if active():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


@dataclass(frozen=True)
class Namespace:
    name: str
    about: str
    path: Callable[[Any], Path]  # settings -> its folder (or file) under the cache folder
    items: Callable[[str, Path, Any], list[Item]]  # (name, path, settings) -> its entries


NAMESPACES: dict[str, Namespace] = {
    ns.name: ns
    for ns in (
        Namespace("downloads", "songs fetched with yt-dlp", lambda s: Path(s.downloads_path), _download_items),
        Namespace(
            "library-index", "tags of the music library (rebuilt)", lambda s: s.cache_path / INDEX_NAME, _index_items
        ),
        Namespace("jobs", "outputs of the HTTP service's jobs", lambda s: s.cache_path / "jobs", _job_items),
        Namespace("previews", "voice previews", lambda s: s.cache_path / "previews", _file_items),
    )
}


def folder(settings: Settings, name: str) -> Path:
    """Where namespace ``name`` lives for ``settings``."""
    return NAMESPACES[name].path(settings)


def items(settings: Settings, name: str) -> list[Item]:
    ns = NAMESPACES[name]
    return ns.items(name, ns.path(settings), settings)


def usage(settings: Settings, store: Store) -> dict[str, dict]:
    """``{namespace: {"path", "about", "bytes", "entries"}}``, the step store (``steps``) first."""
    out = {"steps": _usage(store.root, "finished workflow steps", store.items())}
    for name, ns in NAMESPACES.items():
        out[name] = _usage(folder(settings, name), ns.about, items(settings, name))
    return out


def _usage(path: Path, about: str, found: list[Item]) -> dict:
    return {"path": str(path), "about": about, "bytes": sum(i.size for i in found), "entries": len(found)}


def prune(
    settings: Settings,
    store: Store,
    max_bytes: int | None = None,
    older_than_s: float | None = None,
    dry_run: bool = False,
) -> Eviction:
    """Shrink the step store and every side cache together, least recently used first, to ``max_bytes`` in all
    and/or by age; never what is in use."""
    every = store.items() + [i for name in NAMESPACES for i in items(settings, name)]
    done = evict(every, max_bytes, older_than_s, dry_run)
    if not dry_run:
        store.clean_tmp()
    return done


def shrink(settings: Settings, name: str, max_bytes: int, keep: tuple[Path, ...] = ()) -> Eviction:
    """Trim one namespace to ``max_bytes``, oldest first; ``keep`` counts as in use (a download just written)."""
    found = items(settings, name)
    for i in found:
        if i.path in keep:
            i.in_use = i.remove = lambda: False
    return evict(found, max_bytes)
