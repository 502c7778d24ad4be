"""``world``: the default offline converter (pyworld/WORLD vocoder, CPU only, no model download).

What it does to a vocal WAV:
  * pitch: every voiced frame's f0 is multiplied by 2**(key/12) exactly; ``auto_octave`` may add one whole octave
    toward the voice's register (never a fraction, so the song stays in tune with its accompaniment), comparing
    like with like: a sung vocal with the voice's singing range, speech with its speaking pitch
    (:func:`singer.register.choose_octave`; the choice and its reason are in the step's ``octave`` meta);
  * formants: the spectral envelope is warped by (voice formant scale / source formant scale) ** ``formant``,
    times ``formant_shift`` semitones, so a male singer moved to a female voice does not sound like a chipmunk;
  * timbre: the smoothed long-term average envelope is moved toward the voice profile by ``strength``
    (within the voice's recorded band, at most 9 dB, loudness preserved);
  * aperiodicity (breath) is kept, or moved toward the voice by ``breathiness``;
  * loudness: each segment keeps its input level (WORLD's resynthesis level drifts by a dB or two).

Output: float32 WAV, same sample rate, channel count and exact length as the input. The vocal is processed as one
mono mid signal and written back to every channel with that channel's level ratio, so panned stereo vocals keep
their balance. Silences (below max(-60 dBFS, peak - 50 dB)) are written as digital silence and never analysed.

Speed: analysis/synthesis run at ``analysis_rate`` (22.05 kHz default) with the original band above it added back,
on segments cut at silences and processed by a thread pool (pyworld releases the GIL); memory stays flat because
segments are read from and written to disk in order.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ....config import Settings
from ....errors import EngineUnavailable, InputError
from ...base import Converter, Progress, no_progress
from . import dsp

WINDOWS_FOR_SOURCE_PROFILE = 8
WINDOW_SECONDS = 1.5


class WorldConverter(Converter):
    name: ClassVar[str] = "world"
    kind: ClassVar[str] = "converter"
    voice_kinds: ClassVar[tuple[str, ...]] = ("profile",)
    version: ClassVar[str] = (
        "3"  # 2: reports key / instrumental_key; 3: octave choice by singing range / speaking pitch
    )
    description: ClassVar[str] = (
        "WORLD vocoder: exact key shift, formant warp and timbre toward a voice profile (CPU, offline)"
    )

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        key: Annotated[float, Field(ge=-36, le=36)] | Literal["auto"] = Field(
            0.0, description="Pitch shift in semitones (exact); 'auto' = key 0 with auto_octave."
        )
        formant: float = Field(
            1.0, ge=0, le=1, description="How far formants move toward the voice (0 = keep the singer's)."
        )
        formant_shift: float = Field(0.0, ge=-12, le=12, description="Extra formant shift in semitones, voice or not.")
        strength: float = Field(0.5, ge=0, le=1, description="How far the average timbre moves toward the voice.")
        breathiness: float = Field(0.0, ge=0, le=1, description="How far aperiodicity (breath) moves toward the voice.")
        auto_octave: bool = Field(
            False,
            description="Add at most one octave that brings the vocal into the voice's register "
            "(singing range for singing, speaking pitch for speech).",
        )
        air: float = Field(1.0, ge=0, le=2, description="Level of the original band above the analysis Nyquist rate.")
        analysis_rate: int = Field(
            22050, ge=0, le=96000, description="WORLD analysis rate in Hz; 0 = the input's rate."
        )
        frame_period: float = Field(10.0, ge=2.0, le=20.0, description="WORLD frame period in ms (5 = finer, slower).")

        @field_validator("analysis_rate")
        @classmethod
        def _rate(cls, v: int) -> int:
            if v and not 8000 <= v <= 96000:
                raise ValueError("must be 0 (the input's rate) or between 8000 and 96000 Hz")
            return v

    @classmethod
    def check(cls, settings: Settings) -> None:
        if find_spec("pyworld") is None:
            raise EngineUnavailable(
                "The world converter needs pyworld.",
                hint="pip install pyworld",
                reasons={"world": "python package pyworld is not installed"},
            )

    def __init__(self, settings: Settings):
        self.settings = settings
        import scipy.signal  # noqa: F401  heavy imports (about 1 s) belong to construction, not to convert()

        from . import vocoder

        vocoder.pyworld()

    def convert(self, src: Path, dst: Path, voice: Any, params: dict, progress: Progress = no_progress) -> dict:
        started = time.perf_counter()
        src, dst = Path(src), Path(dst)
        p = self._params(params)
        sr, channels, n = _wav_shape(src)
        hop = round(sr * dsp.HOP_SECONDS)
        frame_db, gains = _levels(src, hop, channels)
        segments = dsp.plan_segments(frame_db, hop, n, sr)
        if n == 0 or not segments:
            raise InputError(
                f"No singing or speech found in {src.name}: it is silent (or only clicks).",
                hint="Check that the vocal stem is not empty (try another separator or source).",
            )
        if p.key == "auto":  # world fits the register by whole octaves only: the song stays in its key
            p = p.model_copy(update={"key": 0.0, "auto_octave": True})
        proc_sr = min(sr, p.analysis_rate) if p.analysis_rate else sr
        profile = _voice_profile(voice)
        source = _source_profile(src, frame_db, hop, sr, proc_sr, p.breathiness > 0) if profile is not None else None
        choice = _octave_choice(p, profile, source, voice)
        transform = dsp.plan_transform(
            p.key + (choice.shift if choice else 0.0),
            profile,
            source,
            formant=p.formant,
            formant_shift=p.formant_shift,
            strength=p.strength,
            breathiness=p.breathiness,
            air=p.air,
            analysis_rate=proc_sr,
        )
        xf = int(dsp.CROSSFADE_SECONDS * sr / 2) * 2  # overlap of crossfaded neighbours, as planned
        job = _SegmentJob(src, n, sr, proc_sr, transform, p.frame_period, gains.mix, xf)
        f0s_in, f0s_out = self._render(job, segments, dst, channels, gains.out, progress)
        return _metadata(
            p,
            transform,
            profile,
            source,
            choice,
            segments,
            sr,
            channels,
            n,
            f0s_in,
            f0s_out,
            time.perf_counter() - started,
        )

    def _params(self, params: dict | None) -> Any:
        try:
            return self.Params(**(params or {}))
        except ValidationError as e:
            raise InputError(
                f"Bad world converter parameters: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}",
                hint="See `singer engines` for the parameters and their ranges.",
            ) from None

    def _render(
        self, job: _SegmentJob, segments: list, dst: Path, channels: int, out_gains: np.ndarray, progress: Progress
    ) -> tuple[list, list]:
        """Process the segments in a thread pool and write them in order to ``dst`` (atomically); the f0 tracks in
        and out, per segment."""
        import soundfile as sf

        sr, total = job.sr, sum(s.end - s.start for s in segments)
        done, f0s_in, f0s_out = 0, [], []
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
        workers = max(1, int(getattr(self.settings, "threads", 0) or os.cpu_count() or 1))
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            with sf.SoundFile(str(tmp), "w", sr, channels, subtype="FLOAT", format="WAV") as out:
                writer = _OrderedWriter(out, out_gains, job.xf)
                for seg, (y, f0_in, f0_out) in zip(segments, pool.map(job, segments)):
                    writer.add(seg, y)
                    f0s_in.append(f0_in)
                    f0s_out.append(f0_out)
                    done += seg.end - seg.start
                    progress(done / total, f"world: {done / sr:.0f}/{total / sr:.0f} s")
                writer.finish(job.n)
            os.replace(tmp, dst)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # on error or cancel, queued segments are dropped
            tmp.unlink(missing_ok=True)
        return f0s_in, f0s_out


def _wav_shape(src: Path) -> tuple[int, int, int]:
    """Sample rate, channels and frames of a WAV stem."""
    import soundfile as sf

    try:
        info = sf.info(str(src))
    except (RuntimeError, sf.LibsndfileError) as e:
        raise InputError(
            f"Cannot read {src.name} as a WAV file: {e}", hint="The converter expects a WAV vocal stem."
        ) from None
    return info.samplerate, info.channels, info.frames


@dataclass
class _SegmentJob:
    """One segment's work, run in a pool thread: read it (with context) from the stem, transform, fade its edges."""

    src: Path
    n: int
    sr: int
    proc_sr: int
    transform: dsp.Transform
    frame_period: float
    mix: np.ndarray
    xf: int

    def __call__(self, seg: dsp.Segment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import soundfile as sf

        ctx, edge = int(dsp.CONTEXT_SECONDS * self.sr), int(0.01 * self.sr)
        a, b = max(0, seg.start - ctx), min(self.n, seg.end + ctx)
        with sf.SoundFile(str(self.src)) as f:
            f.seek(a)
            x = f.read(b - a, dtype="float32", always_2d=True) @ self.mix
        y, f0_in, f0_out = dsp.process_segment(x, self.sr, self.proc_sr, self.transform, self.frame_period)
        y = y[seg.start - a : seg.start - a + seg.end - seg.start]
        # crossfade against a neighbour, or a 10 ms guard fade where the segment meets silence
        head = self.xf if seg.fade_in else min(edge, len(y) // 2)
        tail = self.xf if seg.fade_out else min(edge, len(y) // 2)
        y[:head] *= np.sin(0.5 * np.pi * (np.arange(head) + 0.5) / max(head, 1)) ** 2
        y[len(y) - tail :] *= np.cos(0.5 * np.pi * (np.arange(tail) + 0.5) / max(tail, 1)) ** 2
        return y, f0_in, f0_out


class _Gains:
    def __init__(self, mix: np.ndarray, out: np.ndarray):
        self.mix, self.out = mix, out  # (channels,) mixdown weights; (channels,) output level per channel


def _levels(src: Path, hop: int, channels: int) -> tuple[np.ndarray, _Gains]:
    """One streaming pass: mid-signal level per 10 ms frame (dBFS) and per-channel energy for the output balance."""
    import soundfile as sf

    dbs, ch_energy, mid_energy = [], np.zeros(channels), 0.0
    mix = np.full(channels, 1.0 / channels, dtype=np.float32)
    for block in sf.blocks(str(src), blocksize=hop * 1000, dtype="float32", always_2d=True):
        mid = block @ mix
        ch_energy += np.einsum("nc,nc->c", block, block, dtype=np.float64)
        mid_energy += float(np.dot(mid, mid))
        frames = len(mid) // hop
        ms = (mid[: frames * hop].reshape(frames, hop).astype(np.float64) ** 2).mean(axis=1)
        if len(mid) > frames * hop:
            ms = np.append(ms, float(np.mean(mid[frames * hop :].astype(np.float64) ** 2)))
        dbs.append(10 * np.log10(ms + 1e-20))
    frame_db = np.concatenate(dbs) if dbs else np.zeros(0)
    if (
        channels > 1 and mid_energy < 0.01 * ch_energy.mean()
    ):  # channels cancel in the mid (out of phase): use the loudest
        mix = np.eye(channels, dtype=np.float32)[int(np.argmax(ch_energy))]
        mid_energy = float(ch_energy.max())
    out = np.sqrt(ch_energy / mid_energy) if mid_energy > 0 else np.ones(channels)
    return frame_db, _Gains(mix, out.astype(np.float32))


class _OrderedWriter:
    """Writes segments in order into an open SoundFile, zero-filling gaps and summing crossfade overlaps."""

    def __init__(self, out: Any, gains: np.ndarray, xf: int):
        self.out, self.gains, self.xf = out, gains, xf
        self.pos, self.tail = 0, np.zeros(0, dtype=np.float32)

    def _write(self, mono: np.ndarray) -> None:
        if len(mono):
            self.out.write(mono[:, None] * self.gains[None, :])
            self.pos += len(mono)

    def add(self, seg: dsp.Segment, y: np.ndarray) -> None:
        if len(self.tail):  # this segment starts xf before the previous one's written end
            y = y.copy()
            y[: len(self.tail)] += self.tail
            self.tail = np.zeros(0, dtype=np.float32)
        else:
            self._write(np.zeros(seg.start - self.pos, dtype=np.float32))
        if seg.fade_out:
            self._write(y[: -self.xf])
            self.tail = y[-self.xf :]
        else:
            self._write(y)

    def finish(self, n: int) -> None:
        self._write(self.tail)
        while self.pos < n:
            self._write(np.zeros(min(n - self.pos, 1 << 20), dtype=np.float32))


def _voice_profile(voice: Any) -> Any:
    if voice is None or hasattr(voice, "formant_scale"):
        return voice
    if hasattr(voice, "kind") and not WorldConverter.accepts(voice):
        from ...registry import converter_for

        other = converter_for(voice.kind)
        raise InputError(
            f"Voice '{voice.name}' is a {voice.kind} voice; the world converter needs a profile voice.",
            hint=f"Use the {other} converter for it, or pick a profile voice." if other else "Pick a profile voice.",
        )
    return voice.load()


def _source_profile(src: Path, frame_db: np.ndarray, hop: int, sr: int, proc_sr: int, aperiodicity: bool) -> Any:
    """Profile of the singer from up to 8 loud 1.5 s windows spread over the song; None if too little is voiced."""
    import soundfile as sf

    from .profile import learn_profile

    active = np.flatnonzero(frame_db > max(dsp.SILENCE_FLOOR_DB, float(frame_db.max()) - 30.0))
    half = int(WINDOW_SECONDS * sr / 2)
    pieces = []
    with sf.SoundFile(str(src)) as f:
        for part in np.array_split(active, min(WINDOWS_FOR_SOURCE_PROFILE, len(active))):
            centre = int(part[np.argmax(frame_db[part])]) * hop
            f.seek(max(0, centre - half))
            pieces.append(f.read(2 * half, dtype="float32", always_2d=True).mean(axis=1))
    x = dsp.resample(np.concatenate(pieces).astype(np.float64), sr, proc_sr)
    try:
        return learn_profile(
            x,
            proc_sr,
            band_hz=0.45 * proc_sr,
            min_voiced_seconds=0.5,
            provenance={"name": src.name},
            aperiodicity=aperiodicity,
        )
    except InputError:
        return None


def _octave_choice(p: Any, profile: Any, source: Any, voice: Any) -> Any:
    """The whole octaves ``auto_octave`` adds (:func:`singer.register.choose_octave`), or None when it is off or the
    vocal has too little voiced sound to measure."""
    from ....register import Delivery, choose_octave

    if not p.auto_octave or profile is None or source is None or not source.pitch:
        return None
    delivery = Delivery.from_dict(source.delivery) if source.delivery else None
    name = getattr(voice, "name", None) or profile.provenance.get("name") or "the voice"
    return choose_octave(source.pitch, delivery, profile.register(), base=float(p.key), voice_name=name)


def _metadata(
    p: Any,
    t: dsp.Transform,
    profile: Any,
    source: Any,
    choice: Any,
    segments: list,
    sr: int,
    channels: int,
    n: int,
    f0s_in: list,
    f0s_out: list,
    seconds: float,
) -> dict:
    def stats(arrs: list) -> dict | None:
        v = np.concatenate(arrs) if arrs else np.zeros(0)
        if not len(v):
            return None
        p5, p50, p95 = np.exp(np.percentile(np.log(v), [5, 50, 95]))
        return {"median_hz": round(float(p50), 2), "p5_hz": round(float(p5), 2), "p95_hz": round(float(p95), 2)}

    return {
        "engine": "world",
        "sample_rate": sr,
        "channels": channels,
        "duration": round(n / sr, 3),
        "segments": len(segments),
        "processed_seconds": round(sum(s.end - s.start for s in segments) / sr, 2),
        "semitones": round(t.semitones, 4),
        "key": round(t.semitones, 4),
        "instrumental_key": float(p.key),
        "formant_ratio": round(t.formant_ratio, 4),
        "timbre_mapped": t.env_db is not None,
        "voice_formant_scale": getattr(profile, "formant_scale", None),
        "source_formant_scale": getattr(source, "formant_scale", None),
        "source_f0": stats(f0s_in),
        "output_f0": stats(f0s_out),
        "seconds": round(seconds, 2),
        "octave": choice.to_dict() if choice else None,
        "voice_register": profile.register().to_dict() if profile is not None else None,
        "params": p.model_dump(),
    }
