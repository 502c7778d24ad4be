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
from .wavio import _expand_gate, _gate_frames, _read_mono, _write_gated  # noqa: F401  (re-exported for tests)

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
        from .precision import for_settings

        map_large_buffers()  # long songs: activations go back to the OS between chunks (peak RSS flat)
        self.settings = settings
        self.path = for_settings(settings)  # device, precision, threads (shown by `singer engines`, /metrics)

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

            net, index = ck.load(rv.pth).build(self.device()), None
            if rv.index is not None:
                from .index import RetrievalIndex

                index = RetrievalIndex.load(rv.index)
            return net, index

        import torch

        where = (str(Path(rv.pth).resolve()), self.device())
        net, index = warm.get("rvc", rv.name, where, load, stamp=warm.file_stamp(rv.pth, rv.index))
        net.dec.compute_dtype = torch.bfloat16 if self.path.decoder == "bf16" else torch.float32
        return Converter(net, self.encoder(), index, content_precision=self.path.content)

    @classmethod
    def run_path(cls, settings: Any) -> dict:
        from .precision import for_settings

        return for_settings(settings).to_dict()

    def device(self) -> str:
        """Where the synthesizer runs: Settings.device when torch can reach it, else the CPU (said in ``path``).
        The content model and the pitch trackers run on the CPU."""
        if self.path.device.startswith("cpu"):
            return "cpu"
        import torch

        kind = self.path.device.split(":")[0]
        ok = getattr(torch, kind, None) is not None and getattr(torch, kind).is_available()
        if not ok:
            from dataclasses import replace

            from .precision import resolve

            cpu = resolve(self.path.requested, "cpu", self.path.threads)
            self.path = replace(cpu, reason=f"device {self.path.device} is not available to torch here; {cpu.reason}")
            return "cpu"
        return self.path.device

    # -- the workflow's two steps: features (voice-independent, cached across voices) and convert (synthesize) ------
    @classmethod
    def path_params(cls, settings: Any) -> dict:
        from .precision import for_settings

        path = for_settings(settings)
        return {"precision": f"{path.content}/{path.decoder}"}

    @classmethod
    def features_bind(cls, settings: Any, voice: Any, params: dict) -> tuple[dict, dict[str, Path]] | None:
        from .hubert import find_content_model
        from .precision import for_settings

        meta = getattr(voice, "meta", {}) or {}
        if meta.get("version") not in ("v1", "v2") or "f0" not in meta:
            return None  # an older manifest: the convert step does both halves
        p = cls.Params(**{k: v for k, v in params.items() if k in cls.Params.model_fields})
        pitch = bool(meta["f0"])
        bound = {
            "engine": cls.name,
            "version": meta["version"],
            "pitch": pitch,
            "f0_method": p.f0_method if pitch else None,
            "filter_radius": p.filter_radius if pitch and p.f0_method == "harvest" else None,
            "content_precision": for_settings(settings).content,
        }
        model = find_content_model(Path(settings.models_path))
        files = {f"content_{f.name}": f for f in sorted(model.iterdir()) if f.is_file()} if model.is_dir() else {}
        files = files or {"content": model}
        if pitch and p.f0_method == "rmvpe":
            files["rmvpe"] = Path(settings.models_path) / "rmvpe.pt"
        return bound, files

    def features(self, src: Path, dst: Path, params: dict, progress: Progress = no_progress) -> dict:
        """The content features and pitch track of ``src`` for voices of ``params["version"]`` (see
        :mod:`.features`), saved to ``dst``."""
        from ....audio import resample_long
        from .features import extract

        started = time.perf_counter()
        mono, sr, _ = _read_mono(Path(src))
        progress(0.0, "content features and pitch")
        x16 = resample_long(mono, sr, 16000)
        del mono
        feats = extract(
            self.encoder(),
            x16,
            params["version"],
            pitch=bool(params["pitch"]),
            f0_method=params.get("f0_method") or "fcpe",
            filter_radius=int(params.get("filter_radius") or 3),
            models_path=Path(self.settings.models_path),
            precision=params.get("content_precision", "fp32"),
            progress=lambda f: progress(0.02 + 0.96 * f, "content features and pitch"),
        )
        feats.save(Path(dst))
        return {
            **{k: params.get(k) for k in ("version", "pitch", "f0_method", "filter_radius", "content_precision")},
            "frames": int(len(feats.units)),
            "seconds": round(time.perf_counter() - started, 3),
        }

    # -- conversion ----------------------------------------------------------------------------------------------
    def convert(
        self,
        src: Path,
        dst: Path,
        voice: Any,
        params: dict,
        progress: Progress = no_progress,
        features: Path | None = None,
    ) -> dict:
        """Convert ``src``; with ``features`` (the features step's file, when it fits this voice and params) only the
        voice-dependent half runs."""
        from ....audio import resample_long

        started = time.perf_counter()
        p = self._params(params)
        if not self.accepts(voice):
            raise _not_rvc(voice)
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
        chooser = _KeyChooser(p, rv)
        s = _pipeline_settings(p)
        feats, why = _usable_features(features, conv, p, self.path.content)
        if feats is None:
            x16 = resample_long(mono, sr, 16000)
            feats = conv.features(
                x16, s, Path(self.settings.models_path), lambda f: progress(0.05 + 0.25 * f, "content features")
            )
            del x16
        del mono
        y = conv.synthesize(feats, s, chooser, lambda f: progress(0.3 + 0.65 * f, "synthesizing"))
        del feats
        y = resample_long(y, conv.tgt_sr, sr)
        _write_gated(Path(dst), np.pad(y, (0, max(0, n - len(y))))[:n], sr, rms, gate)
        progress(1.0, "done")
        return _convert_meta(p, s, conv, chooser, rv, why, self.path.to_dict(), started)

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


def _usable_features(path: Path | None, conv: Any, p: Any, content_precision: str) -> tuple[Any, str]:
    """The features step's file when it was made for this voice's version and pitch use, pitch method and content
    precision; else (None, why) and the convert step computes them itself."""
    if path is None:
        return None, "computed in this step (no features step)"
    from .features import Features

    try:
        feats = Features.load(Path(path))
    except (OSError, ValueError, KeyError) as e:
        return None, f"computed in this step (features file unreadable: {e})"
    wanted = (conv.version, p.f0_method if conv.f0 else "", content_precision)
    if (feats.version, feats.f0_method, feats.precision) != wanted or (conv.f0 and feats.f0 is None):
        got = f"{feats.version}, pitch {feats.f0_method or 'none'}, {feats.precision}"
        return None, f"computed in this step (the features step's are {got}; this voice needs {', '.join(wanted)})"
    return feats, "from the features step"


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


def _not_rvc(voice: Any) -> InputError:
    from ...registry import converter_for

    return InputError(
        f"Voice '{getattr(voice, 'name', voice)}' is a {getattr(voice, 'kind', '?')} voice; the rvc engine sings RVC "
        "models.",
        hint=f"Pick an RVC voice (singer voices list) or use --engine "
        f"{converter_for(getattr(voice, 'kind', '')) or 'world'}.",
    )


def _convert_meta(p: Any, s: Any, conv: Any, chooser: Any, rv: Any, why: Any, path: dict, started: float) -> dict:
    """The convert step's manifest meta: the key sung and the one the backing follows, the model, the octave."""
    key = chooser.chosen.get("key", s.key)
    follow = instrumental_key(key) if p.key == "auto" else float(p.key)  # octaves added by auto_octave stay vocal-only
    return {
        "engine": "rvc",
        "key": key,
        "instrumental_key": follow,
        "f0_method": p.f0_method,
        "model": {"version": conv.version, "sample_rate": conv.tgt_sr, "f0": conv.f0, "index": conv.index is not None},
        "source_range": chooser.chosen.get("source_range"),
        "octave": chooser.chosen.get("octave"),
        "voice_register": rv.register.to_dict() if rv.register is not None else None,
        "features": why,
        "path": path,
        "seconds": round(time.perf_counter() - started, 3),
    }
