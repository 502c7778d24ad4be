"""The converter's step ops: ``features`` (the voice-independent stage, when the converter has one) and ``convert``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engines import registry
from ..errors import UsageError
from ..keys import APPLIED_KEY_LIMIT, parse_key
from .opbase import Bound, Op, _engine_params


def _converter(ctx: Any, params: dict, engine: str | None) -> tuple[str, Any, Any, Any]:
    """(voice name, voice, engine name, engine class) for a convert or features step; ``params`` loses "voice"."""
    name = params.pop("voice", None)
    if not name:
        raise UsageError("No voice chosen.", hint="Pass --voice NAME (see `singer voices list`).")
    voice = ctx.voices.get(name)
    if not engine or engine == "auto":  # the voice's kind picks the engine: RVC models -> rvc, profiles -> world
        engine = registry.converter_for(voice.kind) or registry.DEFAULTS["converter"]
    cls = registry.get_class("converter", engine)
    if not cls.accepts(voice):
        other = registry.converter_for(voice.kind) or registry.DEFAULTS["converter"]
        raise UsageError(
            f"The {engine} converter cannot sing voice '{name}' (a {voice.kind} voice).",
            hint=f"Use --engine {other} or pick another voice.",
        )
    return name, voice, engine, cls


class FeaturesOp(Op):
    """The voice-independent stage of a converter that has one (RVC: content features + pitch track). Its key holds
    no voice, only what the stage depends on, so the same vocal in another voice of that kind is a cache hit. For a
    converter without such a stage (world) the step is a no-op and the convert step does everything."""

    name = "features"
    version = "1"

    def bind(self, ctx, params, engine):
        params = dict(params)
        _, voice, engine, cls = _converter(ctx, params, engine)
        got = cls.features_bind(ctx.settings, voice, params)
        if got is None:
            return Bound({"engine": engine, "none": True})
        p, files = got
        return Bound({"engine_version": cls.version, **p, "engine": engine}, files=files)

    def is_noop(self, bound):
        return bool(bound.params.get("none"))

    def run(self, ctx, work, inputs, bound, progress):
        conv = ctx.engine("converter", bound.params["engine"])
        out = work / "features.npz"
        meta = conv.features(inputs["audio"], out, bound.params, progress) or {}
        return {"features": out}, meta


class ConvertOp(Op):
    name = "convert"
    version = "1"

    def bind(self, ctx, params, engine):
        params = dict(params)
        name, voice, engine, cls = _converter(ctx, params, engine)
        if "key" in params:  # the user's key (checked at -24..24 by CoverRequest), or for convert_backing the shift
            # the lead's conversion applied, whole octaves included: hence the wider limit here
            params["key"] = parse_key(params["key"], "key", limit=APPLIED_KEY_LIMIT)
        files = {f"voice_{i}": Path(f) for i, f in enumerate(voice.files)}
        bound = {
            "engine": engine,
            "engine_version": cls.version,
            "voice": name,
            **_engine_params("converter", engine, params),
        }
        path = cls.path_params(ctx.settings)  # a precision: part of the key, not an engine parameter
        return Bound({**bound, **({"path": path} if path else {})}, files=files, state={"voice": voice})

    def run(self, ctx, work, inputs, bound, progress):
        conv = ctx.engine("converter", bound.params["engine"])
        p = {k: v for k, v in bound.params.items() if k not in ("engine", "engine_version", "voice", "path")}
        out = work / "converted.wav"
        extra = {"features": inputs["features"]} if "features" in inputs else {}
        meta = conv.convert(inputs["audio"], out, bound.state["voice"], p, progress, **extra) or {}
        return {"audio": out}, {"voice": bound.params["voice"], **meta}
