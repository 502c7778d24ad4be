"""Small protocols every engine implements.

Engines are file-to-file: they read WAV/media files and write WAV files, so long songs can be streamed with flat
memory and so heavy engines wrapping other tools (audio-separator, RVC) fit the same shape. Progress goes
through a plain callable ``progress(fraction, message)``; engines never print.

Every engine class has:
  name       registry name (``spleeter``, ``world``, ...)
  kind       "source" | "separator" | "converter"
  version    bumped when output for the same input changes; part of every cache key
  check(settings) -> None    raise EngineUnavailable(reasons...) when it cannot run here, cheaply
                             (no heavy imports: find_spec and file checks only)
  __init__(self, settings)   construction may load models (heavy imports go here or later, never at module top)
  Params     optional nested pydantic BaseModel of user-tunable parameters with defaults; the workflow
             validates step params with it and hashes its canonical JSON into the cache key

Every optional hook a kind of engine may offer is declared on its protocol below, with its default; engines
subclass their protocol (``class UVRSeparator(Separator)``) to inherit the defaults, and the workflow calls the
hooks directly, never probing with ``hasattr``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..config import Settings
from ..progress import Progress, no_progress


@runtime_checkable
class Engine(Protocol):
    name: ClassVar[str]
    kind: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str]

    @classmethod
    def check(cls, settings: Settings) -> None: ...

    @classmethod
    def run_path(cls, settings: Any) -> dict:
        """How the engine would run here (device, number format, threads, instruction set, why), for `singer engines`
        and /metrics; {} when there is nothing to choose. Must not load models or import torch."""
        return {}


@runtime_checkable
class Separator(Engine, Protocol):
    """Splits a song into stems. ``stems`` names what :meth:`separate` returns with default params.
    Stem names may depend on params (a uvr karaoke stage gives lead/backing)."""

    stems: ClassVar[tuple[str, ...]]

    @classmethod
    def bind(cls, settings: Settings, params: dict) -> tuple[dict, dict[str, Path]]:
        """Canonical params and ``{name: file}`` whose content joins the step's cache key (the model files a step
        uses). Default: the params unchanged, no files."""
        return dict(params), {}

    def separate(
        self, src: Path, out_dir: Path, progress: Progress = no_progress, params: dict | None = None
    ) -> dict[str, Path]:
        """Write one WAV per stem into ``out_dir``; same sample rate, length and channels as ``src``."""
        ...


@runtime_checkable
class Converter(Engine, Protocol):
    """Sings/speaks ``src`` again in ``voice``. Output WAV has the same sample rate and length as ``src``.

    ``voice_kinds`` names the voice kinds (:attr:`singer.voices.Voice.kind`) the converter sings; the registry
    derives from it which converter a voice gets when none is named (:func:`registry.converter_for`)."""

    voice_kinds: ClassVar[tuple[str, ...]]

    @classmethod
    def accepts(cls, voice: Any) -> bool:
        """Whether this converter can sing ``voice``. Default: its kind is one of :attr:`voice_kinds`."""
        return getattr(voice, "kind", None) in cls.voice_kinds

    def convert(self, src: Path, dst: Path, voice: Any, params: dict, progress: Progress = no_progress) -> dict:
        """Write ``dst``; return metadata (e.g. measured pitch range) for the step manifest. A converter with a
        features stage (:meth:`features_bind`) also takes ``features=`` (the file that stage wrote, or None)."""
        ...

    @classmethod
    def path_params(cls, settings: Any) -> dict:
        """Settings that change the output (a number format), joined to the convert step's cache key. Default: none."""
        return {}

    @classmethod
    def features_bind(cls, settings: Any, voice: Any, params: dict) -> tuple[dict, dict[str, Path]] | None:
        """For converters whose work splits into a voice-independent stage (content features, pitch) and a
        voice-dependent one: the features step's canonical params (no voice in them: another voice of the same
        kind hits the same cache entry) and its model files, for ``params`` (the convert step's own keys that
        the stage uses). None (default): no features stage; the convert step does everything."""
        return None

    def features(self, src: Path, dst: Path, params: dict, progress: Progress = no_progress) -> dict:
        """Write the voice-independent stage of ``src`` to ``dst`` (params: as :meth:`features_bind` gave)."""
        del src, dst, params, progress  # a converter without a features stage is never asked for one
        raise NotImplementedError(f"the {self.name} converter has no features stage")


@dataclass
class Candidate:
    """One search hit or resolved input, shown to the user as a numbered line."""

    title: str
    source: str  # engine name: local | library | ytdlp
    ref: str  # what fetch() needs: a path, a URL, a video id
    artist: str = ""
    duration: float | None = None
    url: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class Source(Engine, Protocol):
    """Finds songs and fetches them into local files."""

    def search(self, query: str, limit: int) -> list[Candidate]: ...

    def fetch(self, candidate: Candidate, dest_dir: Path, progress: Progress = no_progress) -> Path:
        """Return a local media file for ``candidate`` (may be cached; never modified)."""
        ...
