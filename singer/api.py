"""The library facade. The CLI, the HTTP service and the batch runner call only this.

    from singer import Singer, CoverRequest
    s = Singer()
    result = s.cover(CoverRequest(input="./song.flac", voice="ayana", key=2, format="ogg", out="./out/"))
    print(result.output)

Requests are one pydantic model (:class:`CoverRequest`) rather than dozens of keyword arguments, so every entry
point validates the same way. The facade never prints and never exits; it raises :mod:`singer.errors`.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from . import locks
from .config import Settings
from .engines.separators.uvr.catalog import STAGES
from .errors import InputError, UsageError
from .progress import Hooks, NullHooks


class CoverRequest(BaseModel):
    """Everything a cover or a conversion needs. Unset fields take the workflow's defaults."""

    input: str = Field(..., description="Search text, URL or path of a local file.")
    voice: str | None = Field(None, description="Voice name (see `singer voices list`).")
    workflow: str = Field("cover", description="Workflow name (workflows/*.toml) or path.")
    key: float | Literal["auto"] | None = Field(
        None, description="Key shift in semitones (-24..24), or 'auto' to fit the voice's range."
    )
    format: str | None = Field(None, description="Output format: mp3, wav, flac, ogg, opus, m4a.")
    pick: int | None = Field(None, ge=1, description="Take search candidate N instead of the best match.")
    separator: str | None = None
    converter: str | None = None
    separate: bool | None = Field(None, description="voice_note workflow: separate the voice from background first.")
    trim: bool | None = Field(
        None, description="voice_note workflow: cut the silence before and after the voice (on by default)."
    )
    denoise: bool | None = Field(
        None, description="voice_note workflow: lower steady background noise (off by default)."
    )
    target_lufs: float | None = Field(None, ge=-40, le=-5)
    preset: str | None = Field(None, description="UVR model or preset for the vocals stage (implies separator uvr).")
    stages: list[str] | None = Field(None, description="Separation stages: vocals (always), karaoke, dereverb.")
    convert_parts: list[str] | None = Field(
        None, description="Sung in the voice: lead (always), backing (needs karaoke)."
    )
    step_params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="step id -> params overrides.")
    recompute: list[str] = Field(default_factory=list, description="Steps to compute again even when cached.")
    no_cache: bool = False
    out: str | None = Field(None, description="Output file or folder (default: current folder).")

    @field_validator("format")
    @classmethod
    def _fmt(cls, v: str | None) -> str | None:
        return v.lower().lstrip(".") if v else v

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, v: Any) -> Any:
        """The one key rule (:func:`singer.keys.parse_key`); a bad key raises UsageError before any step runs."""
        from .keys import parse_key

        return parse_key(v, "key")

    @field_validator("step_params")
    @classmethod
    def _step_keys(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """A key given as a step parameter (--set convert.key=...) obeys the same rule as ``key``; a numeric one is
        obeyed exactly (no automatic octave unless that step's auto_octave is set too)."""
        from .keys import parse_key

        for step, params in v.items():
            if isinstance(params, dict) and "key" in params:
                params["key"] = parse_key(params["key"], f"--set {step}.key")
        return v

    @model_validator(mode="after")
    def _stages(self) -> CoverRequest:
        bad = set(self.stages or ()) - set(STAGES)
        if bad:
            raise ValueError(f"unknown stage {', '.join(sorted(bad))}; stages are {', '.join(STAGES)}")
        bad = set(self.convert_parts or ()) - {"lead", "backing"}
        if bad:
            raise ValueError(f"cannot convert {', '.join(sorted(bad))}; choose lead and/or backing")
        if "backing" in (self.convert_parts or ()) and "karaoke" not in (self.stages or ()):
            raise ValueError("converting the backing vocals needs the karaoke stage (--steps vocals,karaoke)")
        if self.preset and self.separator not in (None, "uvr"):
            raise ValueError(f"a preset picks a UVR model; it does not apply to the {self.separator} separator")
        return self

    def variables(self) -> dict:
        """Workflow variables. A numeric key is obeyed exactly: it turns the converter's automatic octave off
        (``auto_octave``); with no key the workflow's default (key 0, auto_octave on) applies, and ``auto`` lets the
        converter choose (:mod:`singer.register`)."""
        v = {
            "input": self.input,
            "voice": self.voice,
            "key": self.key,
            "format": self.format,
            "pick": self.pick,
            "separator": "uvr" if self.preset and not self.separator else self.separator,
            "converter": self.converter,
            "separate": self.separate,
            "trim": self.trim,
            "denoise": self.denoise,
            "target_lufs": self.target_lufs,
        }
        if self.stages is not None:
            v.update(karaoke="karaoke" in self.stages, dereverb="dereverb" in self.stages)
        if self.convert_parts is not None:
            v["convert_backing"] = "backing" in self.convert_parts
        if isinstance(self.key, float):
            v["auto_octave"] = False
        return {k: x for k, x in v.items() if x is not None}


@dataclass
class CoverResult:
    output: Path
    title: str
    voice: str
    format: str
    duration: float
    run: Any  # RunResult
    pitch: dict | None = None  # the lead conversion's shift and why (see pitch_summary)

    def to_dict(self) -> dict:
        return {
            "output": str(self.output),
            "title": self.title,
            "voice": self.voice,
            "format": self.format,
            "duration": self.duration,
            "pitch": self.pitch,
            "run": self.run.to_dict(),
        }


def pitch_summary(meta: dict) -> dict | None:
    """What a convert step did to the pitch: the vocal's shift in semitones, the backing's, and, when the converter
    chose octaves or a key itself, the choice with its reason (:class:`singer.register.OctaveChoice`)."""
    if not meta or "key" not in meta:
        return None
    return {"key": meta.get("key"), "instrumental_key": meta.get("instrumental_key"), "octave": meta.get("octave")}


_PREVIEW_RATE = 44100  # the demo excerpt a voice preview sings, Hz


def _new_file(path: Path) -> Path:
    """``path`` created empty, to be held (:func:`singer.locks.hold_new`) while it is written."""
    path.touch()
    return path


def _safe_name(text: str) -> str:
    text = re.sub(r"[\\/:*?\"<>|\x00-\x1f]+", " ", text).strip(" .")
    text = re.sub(r"\s+", " ", text).encode("utf-8")[:150].decode("utf-8", "ignore")  # file names count bytes (255)
    return text.strip(" .") or "cover"


class Singer:
    def __init__(self, settings: Settings | None = None, hooks: Hooks | None = None):
        self.settings = settings or Settings()
        self.hooks = hooks or NullHooks()

    # ---- lazily built parts -----------------------------------------------------------------------------------
    @cached_property
    def store(self):
        from .workflow.store import Store

        return Store(self.settings.cache_path)

    @cached_property
    def voices(self):
        from .voices import VoiceStore

        return VoiceStore(self.settings)

    @cached_property
    def models(self):
        from .modelstore import ModelStore

        return ModelStore(self.settings)

    @cached_property
    def pool(self):
        from .workflow.runner import EnginePool

        return EnginePool(self.settings)

    def runner(self, hooks: Hooks | None = None, policy: Any = None):
        from .workflow.runner import RunContext, Runner

        ctx = RunContext(self.settings, self.pool, self.voices, policy, getattr(policy, "namespace", ""))
        return Runner(self.settings, self.store, ctx, hooks or self.hooks)

    # ---- songs ------------------------------------------------------------------------------------------------
    def search(self, query: str, limit: int | None = None, library: bool = True) -> list:
        """Numbered song candidates for search text; ``library=False`` leaves the local music library out (the
        HTTP service does unless SINGER_HTTP_LIBRARY is set)."""
        from .engines.sources import resolve

        return resolve.search(query, self.settings, limit or self.settings.search_results, use_library=library)

    def cover(self, request: CoverRequest, hooks: Hooks | None = None, policy: Any = None) -> CoverResult:
        """Run the request's workflow and place the result at ``request.out``. Nothing is written there on error.
        ``policy``: which inputs the run may read (an :class:`~singer.engines.sources.inputs.InputPolicy`; default
        any local file, as the CLI; the HTTP service passes its remote one)."""
        from .audio import file_extension
        from .workflow import spec as wspec

        spec = wspec.load(request.workflow, self.settings)
        variables = request.variables()
        engines = {}
        overrides = {k: dict(v) for k, v in request.step_params.items()}
        for step in spec.steps:  # let --separator/--converter reach steps that name an engine literally
            main = step.op == "separate" and step.params.get("stage", "vocals") == "vocals"  # not karaoke/dereverb
            if main and request.separator:
                engines[step.id] = request.separator
            if main and request.preset:
                overrides.setdefault(step.id, {}).setdefault("model", request.preset)
            if step.op in ("convert", "features") and request.converter:
                engines[step.id] = request.converter
            if step.op == "convert" and isinstance(overrides.get(step.id, {}).get("key"), float):
                overrides[step.id].setdefault("auto_octave", False)  # a numeric key is obeyed exactly
        _features_follow_convert(spec, overrides)
        target = self._target_path(request, spec)  # validate the output place before any work
        result = self.runner(hooks, policy).run(
            spec,
            variables,
            overrides=overrides,
            engines=engines,
            recompute=set(request.recompute),
            no_cache=request.no_cache,
            label=Path(request.input).stem if os.path.exists(request.input) else request.input,
        )
        enc = result.steps[-1].meta
        src = result.step("source").meta if "source" in spec.step_ids else {}
        title = src.get("title") or "cover"
        voice = variables.get("voice", spec.vars.get("voice", ""))
        fmt = enc.get("format") or variables.get("format") or spec.vars.get("format", "mp3")
        if target is None or target.is_dir() or str(request.out or "").endswith(os.sep):
            folder = target or Path.cwd()
            folder.mkdir(parents=True, exist_ok=True)
            suffix = "cover" if spec.name == "cover" else "voice"
            target = folder / f"{_safe_name(title)} ({voice} {suffix}).{file_extension(fmt)}"
        with locks.held_new(
            partial(_new_file, target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.part"))
        ) as tmp:  # held: a cache prune leaves it alone
            try:
                shutil.copyfile(result.output, tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        conv: dict = next((st.meta for st in result.steps if st.op == "convert" and not st.skipped and st.meta), {})
        return CoverResult(target, title, voice, fmt, float(enc.get("duration", 0.0)), result, pitch_summary(conv))

    def convert(self, request: CoverRequest, hooks: Hooks | None = None, policy: Any = None) -> CoverResult:
        """A voice note (or any speech/singing without backing) in the voice; workflow voice_note by default."""
        if request.workflow == "cover":
            request = request.model_copy(update={"workflow": "voice_note"})
        return self.cover(request, hooks, policy)

    def _target_path(self, request: CoverRequest, spec) -> Path | None:
        if not request.out:
            return None
        out = Path(request.out).expanduser()
        if out.is_dir() or request.out.endswith(("/", os.sep)):
            return out
        if not out.parent.exists():
            raise InputError(f"Output folder does not exist: {out.parent}", hint="Create it or choose another --out.")
        fmt = request.format or spec.vars.get("format")
        ext = out.suffix.lower().lstrip(".")
        if ext and fmt and ext != fmt and not (fmt == "opus" and ext == "ogg"):
            raise UsageError(
                f"--out {out.name} does not match --format {fmt}", hint=f"Use a .{fmt} name or drop --format."
            )
        return out

    # ---- engines, voices, cache ---------------------------------------------------------------------------------
    def engines(self) -> list:
        from .engines import registry

        return registry.status(self.settings)

    def list_voices(self) -> list:
        return self.voices.list()

    def create_voice(self, name: str, samples: list[str | Path], **meta: Any):
        return self.voices.create(name, [Path(s) for s in samples], **meta)

    def merge_voices(self, names: list[str], weights: list[float], new_name: str):
        return self.voices.merge(names, weights, new_name)

    def add_voice(self, name: str, source: str | Path, index: str | Path | None = None, **kw: Any):
        """Add an RVC voice ``name`` from ``source``: a .pth, a zip, another tool's voice folder or an http(s) link
        (+ its .index when apart); checked, copied into the store with sha256 recorded. Keywords:
        :meth:`singer.voices.VoiceStore.add_rvc` (``sha256`` pins the download, ``vocal_range``, ``gender``...)."""
        return self.voices.add_rvc(name, source, index, **kw)

    def verify_voice(self, name: str) -> dict:
        return self.voices.verify(name)

    def preview_voice(
        self, name: str, out: str | Path | None = None, seconds: float = 12.0, hooks: Hooks | None = None
    ) -> CoverResult:
        """Sing the first ``seconds`` of the bundled demo song with voice ``name`` (a quick listen after a merge)."""
        from . import audio
        from .config import PACKAGE_DIR
        from .workflow.namespaces import folder

        demo = PACKAGE_DIR / "data" / "demo" / "demo_song.mp3"
        self.store.tmp.mkdir(parents=True, exist_ok=True)
        excerpt = self.store.tmp / f"preview-{uuid.uuid4().hex[:8]}.wav"
        with locks.held_new(partial(_new_file, excerpt)):  # held in the store's tmp/ while the preview runs
            try:
                rate = _PREVIEW_RATE
                audio.write_wav(excerpt, audio.decode(demo, rate, 2)[:, : int(seconds * rate)], rate)
                target = Path(out) if out else folder(self.settings, "previews") / f"{name}.ogg"
                target.parent.mkdir(parents=True, exist_ok=True)
                req = CoverRequest(input=str(excerpt), voice=name, format="ogg", out=str(target))
                return self.cover(req, hooks)
            finally:
                excerpt.unlink(missing_ok=True)

    def remove_voice(self, name: str) -> None:
        self.voices.remove(name)

    def cache_entries(self) -> list:
        return self.store.entries()

    def cache_usage(self) -> dict[str, dict]:
        """``{namespace: {"path", "about", "bytes", "entries"}}``: the step store (``steps``) and each side cache."""
        from .workflow import namespaces

        return namespaces.usage(self.settings, self.store)

    def cache_size(self) -> int:
        return sum(u["bytes"] for u in self.cache_usage().values())

    def prune_cache(self, max_bytes: int | None = None, older_than_s: float | None = None, dry_run: bool = False):
        """Shrink the step store and the side caches, least recently used first, never what is in use: an
        :class:`~singer.workflow.store.Eviction` (what went, what was held)."""
        from .workflow import namespaces

        return namespaces.prune(self.settings, self.store, max_bytes, older_than_s, dry_run)


def _features_follow_convert(spec: Any, overrides: dict[str, dict]) -> None:
    """The features step tracks pitch as the convert step it feeds is told to (--f0, --set convert.f0_method=...):
    its cache entry then fits, instead of the convert step computing the features again."""
    feeds = {
        ref[0].split(".")[0]: step.id
        for step in spec.steps
        if step.op == "convert"
        for ref in [step.inputs.get("features")]
        if isinstance(ref, list) and ref
    }
    for feat, conv in feeds.items():
        for name in ("f0_method", "filter_radius"):
            if name in overrides.get(conv, {}):
                overrides.setdefault(feat, {}).setdefault(name, overrides[conv][name])
