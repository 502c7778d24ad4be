"""Step operations: what a workflow step named ``op = "..."`` does.

Each op has a ``version`` (part of the cache key), ``bind()`` which turns user params into canonical params and
declares extra input files hashed by content (a local song, a voice's files), and ``run()`` which writes outputs
into the step's temp folder. Ops are thin: the real work lives in engines, :mod:`singer.mix` and
:mod:`singer.audio`. A new op is a class here, listed in :data:`OPS`.
"""

from __future__ import annotations

from pathlib import Path

from .. import audio
from ..engines import registry
from ..errors import InputError, UsageError
from ..keys import parse_key
from ..progress import scaled_progress
from .convert_ops import ConvertOp, FeaturesOp
from .opbase import Bound, Op, _engine_params, _validated, param_problem

__all__ = ["OPS", "Bound", "Op", "get", "param_problem"]


class SourceOp(Op):
    """Resolve the input (local file, URL, search text), fetch it and decode to a float WAV."""

    name = "source"
    version = "1"

    def bind(self, ctx, params, engine):
        from ..engines.sources.inputs import InputPolicy, classify

        query = str(params.get("query", "")).strip()
        rate, channels = int(params.get("sample_rate", 44100)), int(params.get("channels", 2))
        if not query:
            raise InputError(
                "Nothing to sing: the song query is empty.", hint="Give a search text, a URL or a file path."
            )
        policy = ctx.inputs or InputPolicy()
        path = policy.own_file(query)  # a remote job's upload (or batch-root file), named by the server
        found = None if path else classify(query, local=policy.local)
        if path or (found is not None and found.kind == "path"):  # a file is keyed by its content, never its name
            path = path or policy.check_file(found.path if found else None, found.text if found else query)
            if not path.is_file():
                shown = found.text if found else Path(query).name
                raise InputError(
                    f"File not found: {shown}",
                    hint="Check the path; to search by name, give words without a file extension.",
                )
            return Bound({"sample_rate": rate, "channels": channels}, files={"media": path}, state={"name": path.stem})
        return Bound(
            {"query": query, "pick": int(params.get("pick") or 0) or None, "sample_rate": rate, "channels": channels}
        )

    def run(self, ctx, work, inputs, bound, progress):
        from ..engines.sources.inputs import InputPolicy

        policy = ctx.inputs or InputPolicy()
        meta: dict = {}
        media = inputs.get("media")
        if media is None:
            from ..engines.sources import resolve

            cand, _ = resolve.resolve(bound.params["query"], ctx.settings, pick=bound.params.get("pick"), policy=policy)
            progress(0.05, f"fetching {cand.title}")
            media = resolve.fetch(cand, ctx.settings, scaled_progress(progress, 0.05, 0.8), namespace=policy.namespace)
            meta.update(
                title=cand.title,
                artist=cand.artist,
                origin=cand.url or cand.ref,
                source=cand.source,
                warning=cand.extra.get("warning", ""),
            )
        info = audio.probe(media)
        meta.setdefault("title", info.tags.get("title") or bound.state.get("name") or Path(media).stem)
        meta.setdefault("artist", info.tags.get("artist", ""))
        progress(0.9, "decoding")
        limit = policy.seconds_for(Path(media), float(ctx.settings.max_duration))
        data = audio.decode(media, bound.params["sample_rate"], bound.params["channels"], limit, info=info)
        if audio.is_silent(data):
            raise InputError(f"'{meta['title']}' is silent.", hint="Give a recording with audible sound.")
        out = work / "audio.wav"
        audio.write_wav(out, data, bound.params["sample_rate"])
        duration = data.shape[1] / bound.params["sample_rate"]
        meta.update(
            duration=round(duration, 3),
            input_codec=info.codec,
            input_sample_rate=info.sample_rate,
            input_channels=info.channels,
        )
        if info.duration - duration > 0.5:
            meta["warning"] = (
                f"only {duration:.1f} s of the announced {info.duration:.1f} s could be decoded; "
                "the file looks truncated"
            )
        return {"audio": out}, meta


class TrimOp(Op):
    """Cut the silence before the first and after the last sound (silero-vad and an energy gate, padded)."""

    name = "trim"
    version = "1"

    def bind(self, ctx, params, engine):
        from ..speech import TrimParams

        return _validated(TrimParams, params, "trim")

    def run(self, ctx, work, inputs, bound, progress):
        from ..speech import speech_span

        x, sr = audio.read_wav(inputs["audio"])
        progress(0.1, "finding speech")
        start, end, info = speech_span(x, sr, **bound.params)
        out = work / "audio.wav"
        audio.write_wav(out, x[:, start:end], sr)
        return {"audio": out}, {
            **info,
            "duration_in": round(x.shape[1] / sr, 3),
            "duration_out": round((end - start) / sr, 3),
        }


class DenoiseOp(Op):
    """Lower steady background noise (spectral gating measured on the silent frames)."""

    name = "denoise"
    version = "1"

    def bind(self, ctx, params, engine):
        from ..speech import DenoiseParams

        return _validated(DenoiseParams, params, "denoise")

    def is_noop(self, bound):
        return bound.params["strength"] == 0

    def run(self, ctx, work, inputs, bound, progress):
        from ..speech import denoise

        x, sr = audio.read_wav(inputs["audio"])
        progress(0.1, "measuring noise")
        y, info = denoise(x, sr, strength=bound.params["strength"])
        out = work / "audio.wav"
        audio.write_wav(out, y, sr)
        return {"audio": out}, {"strength": bound.params["strength"], **info}


class SeparateOp(Op):
    name = "separate"
    version = "1"

    def bind(self, ctx, params, engine):
        engine = engine or registry.DEFAULTS["separator"]
        cls = registry.get_class("separator", engine)
        p, files = cls.bind(ctx.settings, _engine_params("separator", engine, params))  # model files: by content
        return Bound({"engine": engine, "engine_version": cls.version, **p}, files=files)

    def run(self, ctx, work, inputs, bound, progress):
        from ..mix import estimated_vocal_loudness, stem_meter

        sep = ctx.engine("separator", bound.params["engine"])
        p = {k: v for k, v in bound.params.items() if k not in ("engine", "engine_version")}
        outs = sep.separate(inputs["audio"], work, progress, p)
        # measured once here, reused by every mix of these stems (stereo, as they sound in a stereo mix)
        meters = {name: stem_meter(Path(p), 2) for name, p in {**outs, "mixture": inputs["audio"]}.items()}
        lufs = {name: round(m.integrated, 3) for name, m in meters.items()}
        if "vocals" in meters and "instrumental" in meters:
            lufs["vocals_estimated"] = round(estimated_vocal_loudness(meters["mixture"], meters["instrumental"]), 3)
        return outs, {"stems": sorted(outs), "lufs_stereo": lufs}


class PitchShiftOp(Op):
    """Re-key a stem (the instrumental follows the vocal key shift)."""

    name = "pitch_shift"
    version = "1"

    def bind(self, ctx, params, engine):
        semis = parse_key(params.get("semitones", 0), "semitones", allow_auto=False)
        if semis is None:  # "" from a step that did not report the shift: re-keying by nothing would hide it
            raise UsageError("semitones: no key shift was given.", hint="Give a number of semitones.")
        return Bound({"semitones": semis})

    def is_noop(self, bound):
        return bound.params["semitones"] == 0

    def run(self, ctx, work, inputs, bound, progress):
        out = work / "audio.wav"
        audio.pitch_shift(inputs["audio"], out, bound.params["semitones"])
        return {"audio": out}, {"semitones": bound.params["semitones"]}


class ReverbOp(Op):
    """The wet signal of a reverb on a stem (the converted lead gets the reverb its original had taken off)."""

    name = "reverb"
    version = "1"

    def bind(self, ctx, params, engine):
        from ..effects import ReverbParams

        return _validated(ReverbParams, params, "reverb")

    def run(self, ctx, work, inputs, bound, progress):
        from ..effects import ReverbParams, reverb

        out = work / "wet.wav"
        reverb(inputs["audio"], out, ReverbParams(**bound.params))
        return {"audio": out}, dict(bound.params)


class MixOp(Op):
    name = "mix"
    version = "2"  # 2: backing vocals and a reverb (optional stems) join the mix loudness-matched

    def bind(self, ctx, params, engine):
        from ..mix import MixParams

        return _validated(MixParams, params, "mix")

    def run(self, ctx, work, inputs, bound, progress):
        from ..mix import MixParams, mix

        out = work / "mix.wav"
        known = {}
        for name in ("instrumental", "reference_vocals", "reference_backing", "reference_reverb"):
            meta, output = bound.state.get("input_meta", {}).get(name, ({}, ""))
            if output in meta.get("lufs_stereo", {}):
                known[name] = meta["lufs_stereo"][output]
        sep_meta, output = bound.state.get("input_meta", {}).get("reference_vocals", ({}, ""))
        if f"{output}_estimated" in sep_meta.get("lufs_stereo", {}):
            known["reference_vocals_estimated"] = sep_meta["lufs_stereo"][f"{output}_estimated"]
        figures = mix(
            inputs["vocals"],
            out,
            MixParams(**bound.params),
            instrumental=inputs.get("instrumental"),
            reference_vocals=inputs.get("reference_vocals"),
            known_lufs=known,
            backing=inputs.get("backing"),
            reference_backing=inputs.get("reference_backing"),
            reverb=inputs.get("reverb"),
            reference_reverb=inputs.get("reference_reverb"),
        )
        return {"audio": out}, figures


class EncodeOp(Op):
    name = "encode"
    version = "1"

    def bind(self, ctx, params, engine):
        fmt = str(params.get("format", "mp3")).lower().lstrip(".")
        if fmt not in audio.FORMATS:
            raise UsageError(
                f"Unknown output format '{fmt}'", hint=f"Choose one of: {', '.join(sorted(audio.FORMATS))}."
            )
        return Bound({"format": fmt, "title": str(params.get("title", ""))})

    def run(self, ctx, work, inputs, bound, progress):
        fmt = bound.params["format"]
        out = work / f"output.{audio.file_extension(fmt)}"
        tags = {"title": bound.params["title"]} if bound.params["title"] else None
        audio.encode(inputs["audio"], out, fmt, tags=tags)
        try:
            import soundfile as sf

            duration = sf.info(str(inputs["audio"])).duration  # the encoded length, without an ffprobe run
        except RuntimeError:  # an input soundfile cannot read (a custom workflow's): ask ffprobe
            duration = audio.probe(out).duration
        return {"audio": out}, {"format": fmt, "duration": round(duration, 3), "content_type": audio.content_type(fmt)}


OPS: dict[str, Op] = {
    op.name: op
    for op in (
        SourceOp(),
        TrimOp(),
        DenoiseOp(),
        SeparateOp(),
        FeaturesOp(),
        ConvertOp(),
        PitchShiftOp(),
        ReverbOp(),
        MixOp(),
        EncodeOp(),
    )
}


def get(name: str) -> Op:
    if name not in OPS:
        raise InputError(f"Unknown step op '{name}'", hint=f"Ops: {', '.join(OPS)}.")
    return OPS[name]
