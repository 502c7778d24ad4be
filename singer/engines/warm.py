"""One warm-model policy for the process: a bounded least-recently-used cache of loaded models.

Every model an engine loads goes through :func:`get`: spleeter's two networks, a UVR model, an RVC voice (synthesizer
and index), the HuBERT/ContentVec content encoder, a pitch tracker (fcpe, crepe, rmvpe). An entry is keyed by
``(kind, name, identity)``: ``kind`` says what it is (``"uvr"``, ``"hubert"``...), ``name`` is what :func:`stats`
shows (a model or file name, never a path), ``identity`` tells models of the same name apart (a resolved path). Each
entry also keeps the ``stamp`` of its files (:func:`file_stamp`: modification times and sizes): a file that changed
loads afresh in place of the stale model.

At most ``limit`` models stay loaded (``Settings.max_warm_models``, ``SINGER_MAX_WARM_MODELS``); the least recently
used goes first. Engines keep no model of their own between calls, so the limit is what the process holds; the
engine pool keeps only the engine objects (one per registry name). :func:`configure` applies a Settings' limit; the
registry calls it whenever it builds an engine. Before that, the limit is read from the environment on first use.

Thread-safe (the HTTP service runs jobs in threads): two threads asking for the same model load it once, different
models load side by side, and a model in use stays valid after eviction (it is freed when its user lets go).
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from ..config import Settings

T = TypeVar("T")


class WarmModels:
    """A bounded LRU of loaded models with hit/miss/eviction counts (see the module docstring)."""

    def __init__(self, limit: int | None = None):
        self._limit = limit
        self._items: OrderedDict[tuple[str, str, Hashable], tuple[Hashable, Any]] = (
            OrderedDict()
        )  # key -> (stamp, model)
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str, Hashable], threading.Lock] = {}
        self.hits = self.misses = self.evictions = 0

    @property
    def limit(self) -> int:
        if self._limit is None:
            from ..config import Settings

            self._limit = int(Settings().max_warm_models)
        return self._limit

    def resize(self, limit: int) -> None:
        """Keep at most ``limit`` (>= 1) models; the least recently used beyond it are dropped now."""
        if limit < 1:
            raise ValueError("max_warm_models must be at least 1")
        with self._lock:
            self._limit = int(limit)
            dropped = self._evict()
        if dropped:
            gc.collect()

    def get(self, kind: str, name: str, identity: Hashable, load: Callable[[], T], stamp: Hashable = None) -> T:
        """The model for ``(kind, name, identity)``: the warm one while its ``stamp`` is unchanged, else ``load()``'s
        result, kept warm (a stale one is replaced: counted as an eviction)."""
        key = (kind, name, identity)
        with self._lock:
            if self._fresh(key, stamp):
                return self._hit(key)
            gate = self._loading.setdefault(key, threading.Lock())
        try:
            with gate:  # one loader per key; the others wait for its model
                with self._lock:
                    if self._fresh(key, stamp):
                        return self._hit(key)
                model = load()  # outside the cache lock: other models load meanwhile
                with self._lock:
                    self.misses += 1
                    dropped = [key] if self._items.pop(key, None) is not None else []  # its file changed
                    self.evictions += len(dropped)
                    self._items[key] = (stamp, model)
                    dropped += self._evict()
        finally:
            with self._lock:
                self._loading.pop(key, None)
        if dropped:
            gc.collect()  # large models hold reference cycles (torch modules): free them now, not at some later GC
        return model

    def _fresh(self, key: tuple, stamp: Hashable) -> bool:
        return key in self._items and self._items[key][0] == stamp

    def _hit(self, key: tuple) -> Any:
        self._items.move_to_end(key)
        self.hits += 1
        return self._items[key][1]

    def _evict(self) -> list:
        dropped = []
        while len(self._items) > self.limit:
            dropped.append(self._items.popitem(last=False)[0])
            self.evictions += 1
        return dropped

    def warm(self, kind: str) -> list[tuple[str, Hashable]]:
        """``(name, identity)`` of the warm models of ``kind``, least recently used first."""
        with self._lock:
            return [(n, i) for k, n, i in self._items if k == kind]

    def forget(self, kind: str | None = None) -> None:
        """Drop the warm models of ``kind`` (all when None); they load again on next use. Not counted as evictions."""
        with self._lock:
            for key in [k for k in self._items if kind is None or k[0] == kind]:
                del self._items[key]
        gc.collect()

    def stats(self) -> dict:
        """What is warm (least recently used first) and how the cache has done since the process started."""
        with self._lock:
            return {
                "models": [{"kind": k, "name": n} for k, n, _ in self._items],
                "size": len(self._items),
                "limit": self.limit,
                "hits": self.hits,
                "misses": self.misses,
                "evictions": self.evictions,
            }


MODELS = WarmModels()  # the process's cache: every engine's models


def get(kind: str, name: str, identity: Hashable, load: Callable[[], T], stamp: Hashable = None) -> T:
    return MODELS.get(kind, name, identity, load, stamp)


def configure(settings: Settings) -> None:
    """Size the process's cache from ``settings.max_warm_models``."""
    MODELS.resize(int(settings.max_warm_models))


def stats() -> dict:
    return MODELS.stats()


def prometheus() -> list[str]:
    """:func:`stats` as Prometheus text lines, for the service's ``/metrics``."""
    w = stats()

    def label(value: str) -> str:  # backslash, double quote and newline escaped
        return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    lines = ["# TYPE singer_warm_models gauge", f"singer_warm_models {w['size']}", "# TYPE singer_warm_model gauge"]
    lines += [f'singer_warm_model{{kind="{label(m["kind"])}",name="{label(m["name"])}"}} 1' for m in w["models"]]
    lines += ["# TYPE singer_warm_models_limit gauge", f"singer_warm_models_limit {w['limit']}"]
    for counter in ("hits", "misses", "evictions"):
        lines += [
            f"# TYPE singer_warm_model_{counter}_total counter",
            f"singer_warm_model_{counter}_total {w[counter]}",
        ]
    return lines


def file_stamp(*paths: Any) -> tuple:
    """The stamp of model files (a folder: the files in it): each one's name, modification time and size; None and
    missing files are skipped."""
    from pathlib import Path

    out = []
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
        for f in files:
            if f.exists():
                st = f.stat()
                out.append((f.name, st.st_mtime_ns, st.st_size))
    return tuple(out)
