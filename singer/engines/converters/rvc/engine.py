"""``rvc``: singer's own RVC v1/v2 inference (no fairseq, no rvc-python), for voices of kind ``rvc``.

Needs a content model in the models folder (``singer models pull hubert``: RVC's ``hubert_base.pt`` or a
HF-format HuBERT/ContentVec folder) and, for ``f0_method = "rmvpe"``, ``rmvpe.pt``; fcpe (default), crepe,
harvest and pm need nothing more. The vocal is mixed to mono, resampled to 16 kHz, converted by
:mod:`.pipeline` (RVC's numerics), resampled back and written to every channel at the input's level
ratio per channel, with the input's exact rate and length. Loaded models stay warm in the process between calls
(:mod:`singer.engines.warm`).

``key = "auto"`` measures the vocal (its pitch track: range, and whether it is sung or spoken,
:func:`singer.register.classify`) against the voice's register, like with like: singing against the voice's
singing range, speech against its speaking pitch, and picks the shift (:func:`singer.register.choose_key`: none
when the vocal fits, else an octave when one fits, else the best semitone shift, at most 12). ``auto_octave`` with a
numeric key adds at most one octave the same way (:func:`singer.register.choose_octave`). The step reports ``key``
(applied), ``instrumental_key`` (the same pitch class moved by at most a tritone, so the backing follows with the
least re-keying) and ``octave`` (the choice and its reason).
"""

from __future__ import annotations

import time
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ....errors import EngineUnavailable, InputError, ModelError
from ...base import Converter, Progress, no_progress

F0Method = Literal["fcpe", "crepe", "crepe-tiny", "rmvpe", "harvest", "pm"]


def instrumental_key(key: float) -> float:
    """The backing's shift for a vocal shift: same pitch class, within a tritone (whole octaves cost nothing)."""
    return float(key - 12 * round(key / 12))


class RVCConverter(Converter):
    name: ClassVar[str] = "rvc"
    kind: ClassVar[str] = "converter"
    voice_kinds: ClassVar[tuple[str, ...]] = ("rvc",)
    version: ClassVar[str] = "2"  # 2: key auto / auto_octave compare singing with singing, speech with speech
    description: ClassVar[str] = (
        "RVC v1/v2 voice models (own inference; HuBERT/ContentVec content, fcpe/crepe/rmvpe pitch, faiss index)"
    )

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        key: Annotated[float, Field(ge=-36, le=36)] | Literal["auto"] = Field(
            0.0, description="Pitch shift in semitones, or 'auto' to fit the song into the voice's range."
        )
        f0_method: F0Method = Field(
            "fcpe", description="Pitch tracker: fcpe, crepe, crepe-tiny, rmvpe (needs rmvpe.pt), harvest, pm."
        )
        index_rate: float = Field(
            0.75, ge=0, le=1, description="How much retrieved voice features replace the singer's."
        )
        filter_radius: int = Field(3, ge=0, le=7, description="Median filter on harvest pitch when >= 3.")
        rms_mix_rate: float = Field(
            0.25, ge=0, le=1, description="1 = keep the model's loudness envelope, 0 = the singer's."
        )
        protect: float = Field(
            0.33, ge=0, le=0.5, description="Keep unvoiced consonants/breaths unconverted (0.5 = off)."
        )
        auto_octave: bool = Field(
            False,
            description="Add at most one octave that brings the vocal into the voice's register "
            "(singing range for singing, speaking pitch for speech).",
        )
        sid: int = Field(0, ge=0, description="Speaker id inside the model.")
        seed: int = Field(0, description="Seed of the model's random draws (same seed, same output).")
        gate_db: float = Field(
            -60.0, ge=-120, le=0, description="Input below this level (dBFS, 10 ms) is written as silence."
        )
        crossfade_ms: float = Field(
            20.0, ge=0, le=500, description="Crossfade where long vocals are cut into chunks (0 = RVC's hard cut)."
        )

    @classmethod
    def check(cls, settings: Any) -> None:
        missing = [m for m in ("torch", "transformers", "faiss", "torchfcpe") if find_spec(m) is None]
        if missing:
            raise EngineUnavailable(
                f"The rvc converter needs {', '.join(missing)}.",
                hint="Reinstall singer (make install).",
                reasons={"rvc": f"python packages missing: {', '.join(missing)}"},
            )
        from .hubert import find_content_model

        try:
            find_content_model(Path(settings.models_path))
        except ModelError as e:
            raise EngineUnavailable(e.user_message, hint=e.hint, reasons={"rvc": e.user_message}) from None

    def __init__(self, settings: Any):
        from ....memory import map_large_buffers

        map_large_buffers()  # long songs: activations go back to the OS between chunks (peak RSS flat)
        self.settings = settings

    # -- warm models (kept by the process's cache, :mod:`singer.engines.warm`; the engine holds none) ---------------
    def encoder(self):
        from .hubert import ContentEncoder, find_content_model

        return ContentEncoder.load(find_content_model(Path(self.settings.models_path)))

    def converter(self, rv: Any):
        """The voice's synthesizer and index (warm while its files are unchanged) with the content encoder."""
        from ... import warm
        from .pipeline import Converter

        def load() -> tuple:
            from . import checkpoint as ck

            net, index = ck.load(rv.pth).build(), None
            if rv.index is not None:
                from .index import RetrievalIndex

                index = RetrievalIndex.load(rv.index)
            return net, index

        where = str(Path(rv.pth).resolve())
        net, index = warm.get("rvc", rv.name, where, load, stamp=warm.file_stamp(rv.pth, rv.index))
        return Converter(net, self.encoder(), index)

    # -- conversion ----------------------------------------------------------------------------------------------
    def convert(self, src: Path, dst: Path, voice: Any, params: dict, progress: Progress = no_progress) -> dict:
        from ....audio import resample_long

        started = time.perf_counter()
        p = self._params(params)
        if not self.accepts(voice):
            from ...registry import converter_for

            raise InputError(
                f"Voice '{getattr(voice, 'name', voice)}' is a {getattr(voice, 'kind', '?')} voice; the rvc engine sings RVC models.",
                hint=f"Pick an RVC voice (singer voices list) or use --engine "
                f"{converter_for(getattr(voice, 'kind', '')) or 'world'}.",
            )
        rv = voice.load()
        mono, sr, rms = _read_mono(Path(src))
        n = len(mono)
        if n == 0 or rms.max() < 10 ** (p.gate_db / 20):
            raise InputError(
                f"No singing or speech found in {Path(src).name}: it is silent.",
                hint="Check that the vocal stem is not empty (try another separator or source).",
            )
        progress(0.0, "loading voice")
        conv = self.converter(rv)
        gate = _gate_frames(mono, sr, p.gate_db)
        x16 = resample_long(mono, sr, 16000)
        del mono
        chooser = _KeyChooser(p, rv)
        s = _pipeline_settings(p)
        y = conv(
            x16,
            s,
            models_path=Path(self.settings.models_path),
            choose_key=chooser,
            progress=lambda f: progress(0.05 + 0.9 * f, "converting"),
        )
        del x16
        y = resample_long(y, conv.tgt_sr, sr)
        _write_gated(Path(dst), np.pad(y, (0, max(0, n - len(y))))[:n], sr, rms, gate)
        progress(1.0, "done")
        key = chooser.chosen.get("key", s.key)
        follow = (
            instrumental_key(key) if p.key == "auto" else float(p.key)
        )  # octaves added by auto_octave stay vocal-only
        return {
            "engine": "rvc",
            "key": key,
            "instrumental_key": follow,
            "f0_method": p.f0_method,
            "model": {
                "version": conv.version,
                "sample_rate": conv.tgt_sr,
                "f0": conv.f0,
                "index": conv.index is not None,
            },
            "source_range": chooser.chosen.get("source_range"),
            "octave": chooser.chosen.get("octave"),
            "voice_register": rv.register.to_dict() if rv.register is not None else None,
            "seconds": round(time.perf_counter() - started, 3),
        }

    def _params(self, params: dict | None) -> Any:
        try:
            return self.Params(**(params or {}))
        except ValidationError as e:
            err = e.errors()[0]
            raise InputError(
                f"Bad rvc converter parameter {err['loc'][0] if err['loc'] else ''}: {err['msg']}",
                hint="See `singer engines` for the parameters and their ranges.",
            ) from None


class _KeyChooser:
    """The pipeline's ``choose_key`` hook: given the vocal's pitch track, the key to apply (``key = "auto"``, or a
    numeric key plus the octave ``auto_octave`` adds). What it measured and chose is kept in :attr:`chosen`."""

    def __init__(self, p: Any, rv: Any):
        self.p, self.rv = p, rv
        self.chosen: dict = {}

    def __call__(self, f0: np.ndarray) -> float:
        from ....register import choose_key, choose_octave, classify
        from .f0 import FRAME_S, pitch_stats

        p, rv, reg = self.p, self.rv, self.rv.register
        src_stats = pitch_stats(f0)
        delivery = classify(f0, FRAME_S)
        self.chosen["source_range"] = src_stats
        choice = None
        if p.key != "auto":
            key = float(p.key)
            if p.auto_octave and reg is not None and src_stats:
                choice = choose_octave(src_stats, delivery, reg, base=key, voice_name=rv.name)
                key += choice.shift
        elif reg is None:
            raise InputError(
                f"Voice '{rv.name}' has no recorded range, so --key auto cannot fit the song to it.",
                hint="Give a key (--key -3), or re-add the voice with --range C3-C5, --sample recordings or --gender.",
            )
        else:
            choice = choose_key(src_stats, delivery, reg, voice_name=rv.name) if src_stats else None
            key = choice.shift if choice else 0.0
        self.chosen["key"], self.chosen["octave"] = key, choice.to_dict() if choice else None
        return key


def _pipeline_settings(p: Any) -> Any:
    """The pipeline's settings for the step's params (``key = "auto"`` starts from 0; the chooser decides)."""
    from .pipeline import Settings

    return Settings(
        key=0.0 if p.key == "auto" else float(p.key),
        f0_method=p.f0_method,
        index_rate=p.index_rate,
        filter_radius=p.filter_radius,
        rms_mix_rate=p.rms_mix_rate,
        protect=p.protect,
        sid=p.sid,
        seed=p.seed,
        crossfade_ms=p.crossfade_ms,
    )


def _write_gated(dst: Path, y: np.ndarray, sr: int, rms: np.ndarray, gate: np.ndarray) -> None:
    """Write the mono result to every channel at the input's level ratio per channel, gated, atomically."""
    import soundfile as sf

    gains = (rms / max(float(rms.mean()), 1e-12)).astype(np.float32)
    tmp = dst.with_name(dst.name + ".tmp.wav")
    try:
        with sf.SoundFile(str(tmp), "w", sr, len(rms), subtype="FLOAT", format="WAV") as f:
            for a in range(0, len(y), BLOCK):
                b = min(len(y), a + BLOCK)
                f.write((y[a:b] * _expand_gate(gate, sr, a, b))[:, None] * gains[None, :])
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)


BLOCK = 1 << 20  # samples per block when reading/writing long stems


def _read_mono(src: Path) -> tuple[np.ndarray, int, np.ndarray]:
    """Mono mix of a WAV (float32), its rate and each channel's RMS, read a block at a time."""
    import soundfile as sf

    try:
        info = sf.info(str(src))
        mono = np.empty(info.frames, dtype=np.float32)
        energy, pos = np.zeros(info.channels), 0
        for block in sf.blocks(str(src), blocksize=BLOCK, dtype="float32", always_2d=True):
            mono[pos : pos + len(block)] = block.mean(axis=1)
            energy += np.einsum("nc,nc->c", block, block, dtype=np.float64)
            pos += len(block)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise InputError(
            f"Cannot read {src.name} as a WAV file: {e}", hint="The converter expects a WAV vocal stem."
        ) from None
    return mono[:pos], info.samplerate, np.sqrt(energy / max(pos, 1))


def _gate_frames(x: np.ndarray, sr: int, gate_db: float) -> np.ndarray:
    """Per 10 ms frame: 1 where the input is above ``gate_db`` (with a 50 ms hold either side), else 0."""
    hop = max(1, sr // 100)
    frames = -(-len(x) // hop)
    e = np.array([float(np.sqrt(np.mean(x[i * hop : (i + 1) * hop].astype(np.float64) ** 2))) for i in range(frames)])
    on = (e > 10 ** (gate_db / 20)).astype(float)
    return (np.convolve(on, np.ones(11), mode="same") > 0).astype(np.float32)


def _expand_gate(frames: np.ndarray, sr: int, a: int, b: int) -> np.ndarray:
    """Samples a..b of the frame gate, with 10 ms linear ramps at its edges."""
    hop = max(1, sr // 100)
    t = (np.arange(a, b) + 0.5) / hop - 0.5  # frame centres at (i + 0.5) * hop
    return np.interp(t, np.arange(len(frames)), frames).astype(np.float32)
