"""Lazy engine registry: name -> "module:Class". Nothing heavy is imported until an engine is chosen.

Like audio-separator's architecture map and yt-dlp's extractor list, the table is plain data; the import
happens in :func:`get_class`. A new engine is one entry here and one folder under its kind.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings
from ..errors import EngineUnavailable, UsageError

ENGINES: dict[str, dict[str, str]] = {
    "source": {
        "local": "singer.engines.sources.local:LocalFileSource",
        "library": "singer.engines.sources.library:LibrarySource",
        "ytdlp": "singer.engines.sources.ytdlp:YtDlpSource",
    },
    "separator": {
        "spleeter": "singer.engines.separators.spleeter.engine:SpleeterSeparator",
        "uvr": "singer.engines.separators.uvr.engine:UVRSeparator",
    },
    "converter": {
        "world": "singer.engines.converters.world.engine:WorldConverter",
        "knn": "singer.engines.converters.knn.engine:KnnConverter",
        "rvc": "singer.engines.converters.rvc.engine:RVCConverter",
    },
}

DEFAULTS = {"separator": "spleeter", "converter": "world"}


@dataclass
class EngineStatus:
    kind: str
    name: str
    available: bool
    reason: str
    description: str
    version: str
    path: dict = field(default_factory=dict)  # how it runs here (device, precision, threads), where it chooses

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def names(kind: str) -> list[str]:
    return list(ENGINES.get(kind, {}))


def get_class(kind: str, name: str) -> Any:
    table = ENGINES.get(kind)
    if table is None:
        raise UsageError(f"Unknown engine kind '{kind}'", hint=f"Kinds: {', '.join(ENGINES)}.")
    if name not in table:
        raise UsageError(
            f"Unknown {kind} engine '{name}'", hint=f"Choose one of: {', '.join(table)} (see `singer engines`)."
        )
    module, _, cls = table[name].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise EngineUnavailable(
            f"The {kind} engine '{name}' cannot be loaded: {e}",
            hint="Install singer with its dependencies (make install).",
        ) from e


def converter_for(voice_kind: str) -> str | None:
    """The converter that sings voices of ``voice_kind`` when none is named: the first whose class declares the kind
    in its ``voice_kinds`` (:class:`~singer.engines.base.Converter`); None when no loadable converter does."""
    for name in ENGINES["converter"]:
        try:
            cls = get_class("converter", name)
        except EngineUnavailable:
            continue
        if voice_kind in cls.voice_kinds:
            return name
    return None


def create(kind: str, name: str, settings: Settings, **kwargs: Any) -> Any:
    from . import warm

    cls = get_class(kind, name)
    cls.check(settings)
    warm.configure(settings)  # the engine's models are kept by the process's one warm-model cache
    return cls(settings, **kwargs)


def status(settings: Settings) -> list[EngineStatus]:
    out = []
    for kind, table in ENGINES.items():
        for name in table:
            try:
                cls = get_class(kind, name)
            except Exception as e:  # report, never hide: a broken engine is listed with its reason
                out.append(EngineStatus(kind, name, False, getattr(e, "user_message", str(e)), "", ""))
                continue
            try:
                cls.check(settings)
                ok, reason = True, ""
            except EngineUnavailable as e:
                ok, reason = False, str(e)
            run_path = getattr(cls, "run_path", None)
            path = run_path(settings) if run_path is not None else {}
            out.append(
                EngineStatus(kind, name, ok, reason, getattr(cls, "description", ""), getattr(cls, "version", ""), path)
            )
    return out


def prometheus_paths(settings: Any) -> list[str]:
    """/metrics lines: how each engine that chooses a path (device, precision, threads) would run here."""
    lines = ["# TYPE singer_engine_path gauge"]
    for kind, table in ENGINES.items():
        for name in table:
            try:
                cls = get_class(kind, name)
                path = cls.run_path(settings) if hasattr(cls, "run_path") else {}
            except Exception:  # an engine that cannot load has no path to show
                continue
            if path:
                labels = ",".join(
                    f'{k}="{path[k]}"' for k in ("device", "content", "decoder", "threads", "isa") if k in path
                )
                lines.append(f'singer_engine_path{{engine="{name}",{labels}}} 1')
    return lines
