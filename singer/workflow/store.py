"""Content-addressed step cache.

Layout under ``root``::

    objects/ab/abcdef.../   one finished step: its output files + manifest.json (+ .used, touched on each hit)
    tmp/                    steps being computed (each held by its writer); renamed into objects/ when complete
    locks/                  one lock file per key (single-flight across processes)

A step is done only when its folder exists under objects/ with a manifest. Outputs are written in a temp folder,
the manifest is written last, and the folder is renamed into place in one atomic step, so ``kill -9`` at any
moment leaves either nothing or a complete entry. Two processes needing the same key serialise on its lock and
the second finds the first one's result.

A run holds a shared lock (:mod:`singer.locks`) on the manifest of every entry it used until it ends
(:class:`Pins`), and :meth:`Store.prune` removes only entries nobody holds. The side caches that live beside the
store (downloads, job outputs, ...) are pruned with the same :func:`evict` (see :mod:`singer.workflow.namespaces`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from filelock import FileLock

from .. import locks
from .hashing import file_digest

MANIFEST = "manifest.json"


@dataclass
class Entry:
    key: str
    path: Path
    manifest: dict

    @property
    def outputs(self) -> dict[str, Path]:
        return {name: self.path / o["file"] for name, o in self.manifest.get("outputs", {}).items()}

    @property
    def output_digests(self) -> dict[str, str]:
        return {name: o["digest"] for name, o in self.manifest.get("outputs", {}).items()}

    @property
    def meta(self) -> dict:
        return self.manifest.get("meta", {})

    def size(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def last_used(self) -> float:
        used = self.path / ".used"
        return used.stat().st_mtime if used.exists() else (self.path / MANIFEST).stat().st_mtime


# compute(tmp_dir) -> (outputs {name: path inside tmp_dir}, meta)
ComputeFn = Callable[[Path], tuple[dict[str, Path], dict]]


@dataclass
class Item:
    """One thing prune may remove: a step entry or an entry of a side cache."""

    namespace: str
    name: str  # the step key, or the path relative to the namespace's folder
    path: Path
    size: int
    last_used: float
    in_use: Callable[[], bool]  # someone holds it now
    remove: Callable[[], bool]  # remove it unless it is in use; False when it was
    age_only: bool = False  # removed by age only, never to meet a size (a job's output its client may fetch)
    entry: Entry | None = None


@dataclass
class Eviction:
    removed: list[Item]
    in_use: list[Item]  # what prune wanted to remove but someone holds


def evict(
    items: list[Item], max_bytes: int | None = None, older_than_s: float | None = None, dry_run: bool = False
) -> Eviction:
    """Remove least recently used ``items`` until they total at most ``max_bytes``, and those unused for
    ``older_than_s``; never one in use. ``dry_run``: only say what would go."""
    now = time.time()
    out = Eviction([], [])
    total = sum(i.size for i in items)
    for item in sorted(items, key=lambda i: i.last_used):
        too_old = older_than_s is not None and now - item.last_used > older_than_s
        too_big = max_bytes is not None and total > max_bytes and not item.age_only
        if not (too_old or too_big):
            continue
        gone = not item.in_use() if dry_run else item.remove()
        if gone:
            total -= item.size
            out.removed.append(item)
        else:
            out.in_use.append(item)
    return out


class Pins:
    """The entries a run uses, each held with a shared lock until :meth:`release`: prune leaves them alone."""

    def __init__(self) -> None:
        self._fds: list[int] = []

    def add(self, fd: int | None) -> bool:
        if fd is None:
            return False
        self._fds.append(fd)
        return True

    def release(self) -> None:
        while self._fds:
            locks.release(self._fds.pop())


class Store:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        self.locks = self.root / "locks"

    def _dir(self, key: str) -> Path:
        return self.objects / key[:2] / key

    def lookup(self, key: str, pins: Pins | None = None) -> Entry | None:
        """The finished entry of ``key``, or None; with ``pins`` it is held until they are released."""
        d = self._dir(key)
        m = d / MANIFEST
        if not m.is_file() or (pins is not None and not pins.add(locks.hold_shared(m))):
            return None
        try:
            manifest = json.loads(m.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        entry = Entry(key, d, manifest)
        if not all(p.is_file() for p in entry.outputs.values()):
            return None  # someone deleted an output by hand: treat as missing, recompute
        (d / ".used").touch()
        return entry

    def lock(self, key: str) -> FileLock:
        self.locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.locks / f"{key}.lock"))

    def compute(
        self, key: str, fn: ComputeFn, describe: dict, force: bool = False, pins: Pins | None = None
    ) -> tuple[Entry, bool]:
        """Return (entry, cached). Runs ``fn`` at most once per key across processes unless ``force``. With ``pins``
        the entry is held until they are released."""
        with self.lock(key):
            if not force:
                hit = self.lookup(key, pins)
                if hit:
                    return hit, True
            self.tmp.mkdir(parents=True, exist_ok=True)
            work, held = locks.hold_new(lambda: Path(tempfile.mkdtemp(prefix=f"{key}-", dir=self.tmp)))
            try:
                t0 = time.perf_counter()
                outputs, meta = fn(work)
                seconds = time.perf_counter() - t0
                files = {}
                for name, p in outputs.items():
                    p = Path(p)
                    if p.parent.resolve() != work.resolve():
                        dst = work / p.name
                        shutil.copyfile(p, dst)  # inputs passed through unchanged, external downloads
                        p = dst
                    files[name] = {"file": p.name, "digest": file_digest(p), "bytes": p.stat().st_size}
                manifest = {
                    **describe,
                    "key": key,
                    "outputs": files,
                    "meta": meta,
                    "seconds": round(seconds, 3),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                tmp_m = work / (MANIFEST + ".part")
                tmp_m.write_text(json.dumps(manifest, indent=2, sort_keys=True))
                os.replace(tmp_m, work / MANIFEST)
                if pins is not None:  # held before it is in place: no prune can take it in between
                    pins.add(locks.hold_shared(work / MANIFEST))
                final = self._dir(key)
                final.parent.mkdir(parents=True, exist_ok=True)
                if final.exists():
                    trash = self.tmp / f"old-{key}-{uuid.uuid4().hex[:8]}"
                    os.rename(final, trash)
                    shutil.rmtree(trash, ignore_errors=True)
                os.rename(work, final)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            finally:
                locks.release(held)
            entry = Entry(key, final, manifest)
            (final / ".used").touch()
            return entry, False

    # ---- maintenance -------------------------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        out: list[Entry] = []
        if not self.objects.exists():
            return out
        for sub in sorted(self.objects.iterdir()):
            for d in sorted(sub.iterdir()):
                m = d / MANIFEST
                if m.is_file():
                    try:
                        out.append(Entry(d.name, d, json.loads(m.read_text())))
                    except (OSError, json.JSONDecodeError):
                        continue
        return out

    def total_size(self) -> int:
        return sum(e.size() for e in self.entries())

    def items(self) -> list[Item]:
        """The entries as prune sees them (namespace ``steps``)."""
        return [
            Item(
                "steps",
                e.key,
                e.path,
                e.size(),
                e.last_used(),
                partial(self._in_use, e.key),
                partial(self.remove, e.key),
                entry=e,
            )
            for e in self.entries()
        ]

    def _in_use(self, key: str) -> bool:
        with locks.claimed(self._dir(key) / MANIFEST) as free:
            return not free

    def remove(self, key: str) -> bool:
        """Remove entry ``key`` unless a run holds it; False when one does."""
        d = self._dir(key)
        with locks.claimed(d / MANIFEST) as free:
            if not free:
                return not d.exists()
            trash = self.tmp / f"del-{key}-{uuid.uuid4().hex[:8]}"
            self.tmp.mkdir(parents=True, exist_ok=True)
            os.rename(d, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def prune(
        self, max_bytes: int | None = None, older_than_s: float | None = None, dry_run: bool = False
    ) -> list[Entry]:
        """Evict least-recently-used entries until under ``max_bytes``, and entries unused for ``older_than_s``;
        never one a run holds."""
        removed = evict(self.items(), max_bytes, older_than_s, dry_run).removed
        if not dry_run:
            self.clean_tmp()
        return [i.entry for i in removed if i.entry is not None]

    def clean_tmp(self) -> None:
        """Delete temp folders left by killed processes: those no writer holds (a live one holds its own)."""
        if not self.tmp.exists():
            return
        for d in self.tmp.iterdir():
            with locks.claimed(d) as free:
                if free and d.is_dir():
                    shutil.rmtree(d, ignore_errors=True)
                elif free:
                    d.unlink(missing_ok=True)
