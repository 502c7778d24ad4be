"""``knn``: sings with the voice's own sounds (CPU, offline, no model download).

For every 10 ms frame of the vocal, the voice's frame pool (:mod:`.pool`: every analysed moment of the voice's
recordings) is searched for the ``k`` frames nearest in a speaker-normalised cepstral space (:mod:`.match`), i.e.
the voice saying the same thing; their mean envelope and aperiodicity replace the singer's within the band the
voice was recorded in, at the singer's level, and WORLD resynthesises with the singer's pitch (shifted by ``key``
and ``auto_octave`` exactly as the world engine does) and timing. The output's formants are the voice's own;
``formant`` < 1 moves them back toward the singer's, ``formant_shift`` moves them further.

Two passes over segments cut at silences (:func:`..world.dsp.plan_segments`, silences stay digital silence):
analysis (f0 and envelope, kept as 96 numbers a frame), then the speaker statistics of the whole vocal, then
matching and resynthesis, written in order to disk. Memory grows by about 0.5 MB per minute of vocal.
A profile voice made before frame pools existed (no ``pool`` in its manifest) is sung by the world engine's method
instead, and the metadata says so (``method: world``); re-create the voice to give it a pool.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ....config import Settings
from ....errors import EngineUnavailable, InputError, ModelError
from ....progress import scaled_progress
from ...base import Converter, Progress, no_progress
from ..world import dsp
from ..world import engine as world
from . import frames, match
from .pool import FramePool, voice_pool


class KnnConverter(Converter):
    name: ClassVar[str] = "knn"
    kind: ClassVar[str] = "converter"
    voice_kinds: ClassVar[tuple[str, ...]] = ("profile",)
    version: ClassVar[str] = "1"
    description: ClassVar[str] = (
        "Frame matching: each moment of the vocal sung with the voice's own nearest sounds, WORLD resynthesis "
        "(CPU, offline)"
    )

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        key: Annotated[float, Field(ge=-36, le=36)] | Literal["auto"] = Field(
            0.0, description="Pitch shift in semitones (exact); 'auto' = key 0 with auto_octave."
        )
        auto_octave: bool = Field(
            False, description="Add at most one octave that brings the vocal into the voice's register."
        )
        formant: float = Field(
            1.0, ge=0, le=1, description="1 = the voice's own formants, 0 = moved back to the singer's."
        )
        formant_shift: float = Field(0.0, ge=-12, le=12, description="Extra formant shift in semitones.")
        strength: float = Field(1.0, ge=0, le=1, description="How far the sound moves to the voice's own frames.")
        breathiness: float = Field(
            1.0, ge=0, le=1, description="Aperiodicity (breath): 1 = the voice's, 0 = the singer's."
        )
        k: int = Field(4, ge=1, le=32, description="Voice frames blended for each frame of the vocal.")
        air: float = Field(1.0, ge=0, le=2, description="Level of the original band above the analysis Nyquist rate.")
        analysis_rate: int = Field(
            0,
            ge=0,
            le=48000,
            description="WORLD analysis rate in Hz; 0 = the input's rate over a whole number, near 20 kHz.",
        )
        frame_period: float = Field(10.0, ge=5.0, le=20.0, description="WORLD frame period in ms.")

    @classmethod
    def check(cls, settings: Settings) -> None:
        if find_spec("pyworld") is None:
            raise EngineUnavailable(
                "The knn converter needs pyworld.",
                hint="pip install pyworld",
                reasons={"knn": "python package pyworld is not installed"},
            )

    def __init__(self, settings: Settings):
        self.settings = settings
        import scipy.signal  # noqa: F401  heavy imports belong to construction, not to convert()

        from ..world import vocoder

        vocoder.pyworld()

    def _params(self, params: dict | None) -> Any:
        try:
            return self.Params(**(params or {}))
        except ValidationError as e:
            raise InputError(
                f"Bad knn converter parameters: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}",
                hint="See `singer engines` for the parameters and their ranges.",
            ) from None

    def convert(self, src: Path, dst: Path, voice: Any, params: dict, progress: Progress = no_progress) -> dict:
        started = time.perf_counter()
        src, dst = Path(src), Path(dst)
        p = self._params(params)
        profile, pool = _voice(voice)
        if pool is None:
            return self._as_world(src, dst, voice, p, progress)
        sr, channels, n = world._wav_shape(src)
        hop = round(sr * dsp.HOP_SECONDS)
        frame_db, gains = world._levels(src, hop, channels)
        segments = dsp.plan_segments(frame_db, hop, n, sr)
        if n == 0 or not segments:
            raise InputError(
                f"No singing or speech found in {src.name}: it is silent (or only clicks).",
                hint="Check that the vocal stem is not empty (try another separator or source).",
            )
        if p.key == "auto":  # like world: whole octaves only, the song stays in its key
            p = p.model_copy(update={"key": 0.0, "auto_octave": True})
        proc_sr = min(sr, p.analysis_rate) if p.analysis_rate else sr // max(1, round(sr / 20000))
        source = world._source_profile(src, frame_db, hop, sr, proc_sr, False)
        choice = world._octave_choice(p, profile, source, voice)
        plan = _plan(p, profile, source, choice, pool, proc_sr)
        reader = frames.Reader(src, n, sr, gains.mix)
        f0s_in, f0s_out = self._run(reader, segments, proc_sr, plan, pool, p, dst, channels, gains.out, progress)
        meta = world._metadata(
            p, dsp.Transform(semitones=plan.semitones, formant_ratio=plan.vt_ratio * plan.out_shift), profile,
            source, choice, segments, sr, channels, n, f0s_in, f0s_out, time.perf_counter() - started,
        )  # fmt: skip
        pool_meta = {"frames": len(pool.env), "groups": [g["name"] for g in pool.groups], "band_hz": plan.band_hz}
        return {**meta, "engine": "knn", "method": "knn", "timbre_mapped": True, "pool": pool_meta}

    def _run(
        self, reader: frames.Reader, segments: list, proc_sr: int, plan: frames.Plan, pool: FramePool, p: Any,
        dst: Path, channels: int, out_gains: np.ndarray, progress: Progress,
    ) -> tuple[list, list]:  # fmt: skip
        """Pass 1 analyses every segment, pass 2 matches and resynthesises them, written in order (atomically)."""
        import soundfile as sf

        sr, fp = reader.sr, p.frame_period
        workers = max(1, int(getattr(self.settings, "threads", 0) or os.cpu_count() or 1))
        xf = int(dsp.CROSSFADE_SECONDS * sr / 2) * 2
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
        pool_ex = ThreadPoolExecutor(max_workers=workers)
        try:
            analyse = scaled_progress(progress, 0.0, 0.4)

            def one(seg: dsp.Segment) -> frames.Analysed:
                return frames.analyse(reader.read(seg)[0], sr, proc_sr, fp, plan.breathiness < 1)

            done: list[frames.Analysed] = []
            for a in pool_ex.map(one, segments):
                done.append(a)
                analyse(len(done) / len(segments), f"knn: analysed {len(done)}/{len(segments)} segments")
            matcher = match.Matcher(pool, plan.band_hz, p.k)
            zs = _normalised(done, plan)

            def two(i: int) -> tuple[np.ndarray, np.ndarray]:
                x, a = reader.read(segments[i])
                y, f0 = frames.render(x, sr, proc_sr, done[i], zs[i], matcher, plan, fp)
                seg = segments[i]
                return frames.fade(y[seg.start - a : seg.end - a], seg, sr, xf), f0

            rendered, f0s_in, f0s_out = scaled_progress(progress, 0.4, 0.6), [], []
            with sf.SoundFile(str(tmp), "w", sr, channels, subtype="FLOAT", format="WAV") as out:
                writer = world._OrderedWriter(out, out_gains, xf)
                for i, (y, f0) in enumerate(pool_ex.map(two, range(len(segments)))):
                    writer.add(segments[i], y)
                    f0s_in.append(done[i].f0[done[i].f0 > 0])
                    f0s_out.append(f0[done[i].f0 > 0])
                    rendered((i + 1) / len(segments), f"knn: {segments[i].end / sr:.0f}/{reader.n / sr:.0f} s")
                writer.finish(reader.n)
            os.replace(tmp, dst)
        finally:
            pool_ex.shutdown(wait=True, cancel_futures=True)
            tmp.unlink(missing_ok=True)
        return f0s_in, f0s_out

    def _as_world(self, src: Path, dst: Path, voice: Any, p: Any, progress: Progress) -> dict:
        """A voice without a frame pool (made by an older singer): the world engine's method, said in the metadata."""
        keep = ("key", "auto_octave", "formant", "formant_shift", "air")
        meta = world.WorldConverter(self.settings).convert(src, dst, voice, {k: getattr(p, k) for k in keep}, progress)
        return {
            **meta,
            "engine": "knn",
            "method": "world",
            "note": "this voice has no frame pool (made by an older singer); re-create it to sing with its own sounds",
        }


def _voice(voice: Any) -> tuple[Any, FramePool | None]:
    """The voice's profile (register, formant scale) and frame pool (None when it has none)."""
    if voice is None:
        raise InputError("The knn converter needs a voice.", hint="Pick a voice: `singer voices list`.")
    if hasattr(voice, "kind") and not KnnConverter.accepts(voice):
        from ...registry import converter_for

        other = converter_for(voice.kind)
        raise InputError(
            f"Voice '{voice.name}' is a {voice.kind} voice; the knn converter needs a profile voice.",
            hint=f"Use the {other} converter for it, or pick a profile voice." if other else "Pick a profile voice.",
        )
    if not hasattr(voice, "manifest"):  # a bare VoiceProfile: no pool
        return voice, None
    try:
        return voice.load(), voice_pool(voice)
    except (KeyError, ValueError) as e:
        raise ModelError(
            f"Voice '{voice.name}' is damaged: {e}", hint=f"Re-create it or delete {voice.files[0]}."
        ) from None


def _plan(p: Any, profile: Any, source: Any, choice: Any, pool: FramePool, proc_sr: int) -> frames.Plan:
    vt = 1.0
    if source is not None and profile is not None:
        vt = float(np.clip(profile.formant_scale / source.formant_scale, 0.8, 1.25))
    return frames.Plan(
        semitones=float(p.key) + (choice.shift if choice else 0.0),
        vt_ratio=vt,
        out_shift=float((1.0 / vt) ** (1.0 - p.formant) * 2.0 ** (p.formant_shift / 12.0)),
        strength=p.strength,
        breathiness=p.breathiness,
        air=p.air,
        band_hz=float(min(pool.band_hz, 0.45 * proc_sr)),
    )


def _normalised(done: list[frames.Analysed], plan: frames.Plan) -> list[np.ndarray]:
    """Source features of every segment, normalised by the statistics of the vocal's active frames."""
    feats = [frames.source_features(a, plan) for a in done]
    level = np.concatenate([a.env[:, match.band_points(plan.band_hz)].mean(axis=1) for a in done])
    allf = np.concatenate(feats)
    active = level > level.max() - 40.0
    norm = match.Norm.of(allf[active] if active.sum() > 10 else allf)
    return [norm(f) for f in feats]
