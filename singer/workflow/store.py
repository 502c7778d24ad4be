"""Content-addressed step cache.

Layout under ``root``::

    objects/ab/abcdef.../   one finished step: its output files + manifest.json (+ .used, touched on each hit)
    tmp/                    steps being computed; renamed into objects/ when complete
    locks/                  one lock file per key (single-flight across processes)

A step is done only when its folder exists under objects/ with a manifest. Outputs are written in a temp folder,
the manifest is written last, and the folder is renamed into place in one atomic step, so ``kill -9`` at any
moment leaves either nothing or a complete entry. Two processes needing the same key serialise on its lock and
the second finds the first one's result.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

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


class Store:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        self.locks = self.root / "locks"

    def _dir(self, key: str) -> Path:
        return self.objects / key[:2] / key

    def lookup(self, key: str) -> Entry | None:
        d = self._dir(key)
        m = d / MANIFEST
        if not m.is_file():
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

    def compute(self, key: str, fn: ComputeFn, describe: dict, force: bool = False) -> tuple[Entry, bool]:
        """Return (entry, cached). Runs ``fn`` at most once per key across processes unless ``force``."""
        with self.lock(key):
            if not force:
                hit = self.lookup(key)
                if hit:
                    return hit, True
            self.tmp.mkdir(parents=True, exist_ok=True)
            work = self.tmp / f"{key}-{uuid.uuid4().hex[:8]}"
            work.mkdir()
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
            entry = Entry(key, final, manifest)
            (final / ".used").touch()
            return entry, False

    # ---- maintenance -------------------------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        out = []
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

    def remove(self, key: str) -> None:
        d = self._dir(key)
        if d.exists():
            trash = self.tmp / f"del-{key}-{uuid.uuid4().hex[:8]}"
            self.tmp.mkdir(parents=True, exist_ok=True)
            os.rename(d, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def prune(
        self, max_bytes: int | None = None, older_than_s: float | None = None, dry_run: bool = False
    ) -> list[Entry]:
        """Evict least-recently-used entries until under ``max_bytes``, and entries unused for ``older_than_s``."""
        entries = sorted(self.entries(), key=lambda e: e.last_used())
        now = time.time()
        removed: list[Entry] = []
        total = sum(e.size() for e in entries)
        for e in entries:
            too_old = older_than_s is not None and now - e.last_used() > older_than_s
            too_big = max_bytes is not None and total > max_bytes
            if too_old or too_big:
                total -= e.size()
                removed.append(e)
                if not dry_run:
                    self.remove(e.key)
        if not dry_run:
            self.clean_tmp()
        return removed

    def clean_tmp(self, min_age_s: float = 3600) -> None:
        """Delete temp folders left by killed processes (older than ``min_age_s``)."""
        if not self.tmp.exists():
            return
        now = time.time()
        for d in self.tmp.iterdir():
            try:
                if now - d.stat().st_mtime > min_age_s:
                    shutil.rmtree(d, ignore_errors=True)
            except FileNotFoundError:
                continue
