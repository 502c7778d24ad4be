"""Voice profiles: a few statistics of a voice, learned from reference recordings, that the ``world`` converter
moves a singer towards.

A profile holds, on the fixed log-frequency grid of :mod:`singer.engines.converters.world.vocoder`:
  * ``env_mean``/``env_std``: long-term average (and spread) of the WORLD spectral envelope in dB (timbre);
  * ``ap_mean``: average aperiodicity in dB (breathiness);
and scalars: the f0 median and 5th/95th percentiles (the voice's register), ``formant_scale`` (geometric mean
of F1..F3 relative to :data:`NEUTRAL_FORMANT_HZ`, an average adult male under this estimator: about 1.0 for men,
1.1-1.2 for women), ``band_hz`` (upper edge of the recordings' bandwidth; the envelope is only trusted below it)
``provenance`` (sources with sha256, licence, parents of a merge, creation date, tool version), and, for profiles
made since singer tells singing from speech, ``delivery`` (whether the recordings were sung or spoken, with the
evidence: :func:`singer.register.classify`) and ``pitch`` (10th/50th/90th percentile in MIDI numbers).
:meth:`VoiceProfile.register` turns these into the voice's singing range and speaking pitch
(:mod:`singer.register`). Stored as one small JSON file (a few KB); files without the newer fields still load.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ....errors import InputError
from ....files import sha256_file
from ....register import Register, classify, hz_to_midi, midi_to_hz, note, pitch_stats
from ....version import __version__
from . import vocoder

FORMAT = 1
NEUTRAL_FORMANT_HZ = 1400.0
CHUNK_SECONDS = 30.0
MAX_LEARN_SECONDS = 600.0
_ARRAYS = ("env_mean", "env_std", "ap_mean")


@dataclass
class VoiceProfile:
    env_mean: np.ndarray
    env_std: np.ndarray
    ap_mean: np.ndarray
    f0_median: float
    f0_p5: float
    f0_p95: float
    formant_scale: float
    band_hz: float
    voiced_seconds: float
    provenance: dict = field(default_factory=dict)
    delivery: dict | None = None  # Delivery.to_dict() of the recordings; None: not known (older profiles)
    pitch: dict | None = None  # {"p10", "median", "p90"} MIDI of the voiced frames; None in older profiles

    def to_dict(self) -> dict:
        d: dict[str, Any] = {
            "format": FORMAT,
            "grid": {"lo_hz": vocoder.GRID_LO, "hi_hz": vocoder.GRID_HI, "n": vocoder.GRID_N},
        }
        for k in _ARRAYS:
            d[k] = [round(float(v), 3) for v in getattr(self, k)]
        for k in ("f0_median", "f0_p5", "f0_p95", "formant_scale", "band_hz", "voiced_seconds"):
            d[k] = round(float(getattr(self, k)), 4)
        if self.delivery is not None:
            d["delivery"] = self.delivery
        if self.pitch is not None:
            d["pitch"] = {k: round(float(v), 3) for k, v in self.pitch.items()}
        d["provenance"] = self.provenance
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VoiceProfile:
        grid = d.get("grid", {})
        if d.get("format") != FORMAT or grid.get("n") != vocoder.GRID_N:
            raise ValueError(f"unsupported voice profile format {d.get('format')!r} (grid {grid})")
        arrays = {k: np.asarray(d[k], dtype=np.float64) for k in _ARRAYS}
        scalars = {
            k: float(d[k]) for k in ("f0_median", "f0_p5", "f0_p95", "formant_scale", "band_hz", "voiced_seconds")
        }
        return cls(
            **arrays,  # type: ignore[arg-type]
            **scalars,  # type: ignore[arg-type]
            provenance=d.get("provenance", {}),
            delivery=d.get("delivery"),
            pitch=d.get("pitch"),
        )

    @property
    def recorded(self) -> str:
        """ "sung" or "spoken" (what the recordings were), or "" when not known (profiles from older versions)."""
        return str((self.delivery or {}).get("kind", ""))

    def register(self) -> Register:
        """Singing range and speaking pitch: measured where the recordings show them, else by the rule
        (:mod:`singer.register`): speech gives the speaking pitch, singing the singing range."""
        if self.recorded == "sung":
            if self.pitch:
                lo, med, hi = self.pitch["p10"], self.pitch["median"], self.pitch["p90"]
                how = "10th-90th percentile"
            else:
                lo, med, hi = hz_to_midi(self.f0_p5), hz_to_midi(self.f0_median), hz_to_midi(self.f0_p95)
                how = "5th-95th percentile"
            return Register.from_singing(lo, med, hi, f"measured from the sung recordings ({how} of their pitch)")
        if self.recorded == "spoken":
            return Register.from_speaking(
                hz_to_midi(self.f0_median), "measured from the spoken recordings (median pitch)"
            )
        return Register.from_speaking(
            hz_to_midi(self.f0_median),
            "measured from the recordings (median pitch), taken as speech: the profile "
            "predates singer telling singing from speech",
            recorded="",
        )

    def summary(self) -> dict:
        """Human-facing figures: pitch range of the recordings as note names, singing range and speaking pitch,
        formant scale, bandwidth."""
        reg = self.register()
        return {
            "range": f"{note_name(self.f0_p5)}-{note_name(self.f0_p95)}",
            "f0_median_hz": round(self.f0_median, 1),
            "recorded": self.recorded or "not known",
            "singing_range": reg.to_dict()["singing"]["range"],
            "speaking_pitch": f"{note(reg.speaking)} ({midi_to_hz(reg.speaking):.0f} Hz)",
            "formant_scale": round(self.formant_scale, 3),
            "band_hz": round(self.band_hz),
        }


def note_name(hz: float) -> str:
    """Nearest equal-tempered note name, e.g. 220 -> 'A3'."""
    midi = round(69 + 12 * np.log2(max(hz, 1e-3) / 440.0))
    return ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"][midi % 12] + str(midi // 12 - 1)


class _Accumulator:
    """Running sums over the voiced, non-quiet frames of every analysed chunk."""

    def __init__(self, aperiodicity: bool = True) -> None:
        self.aperiodicity = aperiodicity
        self.n = 0
        self.env = np.zeros(vocoder.GRID_N)
        self.env_sq = np.zeros(vocoder.GRID_N)
        self.ap = np.zeros(vocoder.GRID_N)
        self.log_f0: list[np.ndarray] = []
        self.log_formants: list[np.ndarray] = []
        self.tracks: list[np.ndarray] = []  # every chunk's f0 track (0 = unvoiced), to tell singing from speech

    def add(self, x: np.ndarray, sr: int) -> None:
        a = vocoder.analyze(x, sr, aperiodicity=self.aperiodicity)
        grid = vocoder.envelope_to_grid(a.sp, sr)
        power = 10 * np.log10(np.maximum(a.sp.sum(axis=1), 1e-20))
        keep = (a.f0 > 0) & (power > power.max() - 40.0)
        self.tracks.append(np.where(keep, a.f0, 0.0).astype(np.float32))
        if not keep.any():
            return
        g = grid[keep]
        self.n += len(g)
        self.env += g.sum(axis=0)
        self.env_sq += (g**2).sum(axis=0)
        if a.ap is not None:
            self.ap += vocoder.envelope_to_grid(np.maximum(a.ap[keep], 1e-6) ** 2, sr).sum(axis=0)
        self.log_f0.append(np.log(a.f0[keep]))
        self.log_formants.append(np.log(vocoder.formant_tracks(a.sp[keep], sr, g.mean(axis=0))))

    def finish(self, band_hz: float, frame_period: float, provenance: dict) -> VoiceProfile:
        mean = self.env / self.n
        std = np.sqrt(np.maximum(self.env_sq / self.n - mean**2, 0.0))
        mean -= mean[(vocoder.GRID_HZ >= 300) & (vocoder.GRID_HZ <= band_hz)].mean()  # shape only, not level
        lf0 = np.concatenate(self.log_f0)
        fm = np.concatenate(self.log_formants)
        with warnings.catch_warnings():  # a formant never found gives an all-NaN column
            warnings.simplefilter("ignore", RuntimeWarning)
            per_formant = np.nanmean(fm, axis=0)
        found = per_formant[np.isfinite(per_formant)]
        scale = float(np.exp(found.mean()) / NEUTRAL_FORMANT_HZ) if len(found) else 1.0
        p5, p50, p95 = np.exp(np.percentile(lf0, [5, 50, 95]))
        frame_s = frame_period / 1000.0
        delivery = classify(self.tracks, frame_s)
        stats = pitch_stats(self.tracks, frame_s, min_voiced_s=0.0)
        return VoiceProfile(
            env_mean=mean,
            env_std=std,
            ap_mean=self.ap / self.n,
            f0_median=float(p50),
            f0_p5=float(p5),
            f0_p95=float(p95),
            formant_scale=scale,
            band_hz=band_hz,
            voiced_seconds=self.n * frame_s,
            provenance=provenance,
            delivery=delivery.to_dict() if delivery else None,
            pitch={k: stats[k] for k in ("p10", "median", "p90")} if stats else None,
        )


def learn_profile(
    sources: Sequence[str | os.PathLike] | np.ndarray,
    sample_rate: int | None = None,
    *,
    band_hz: float | None = None,
    min_voiced_seconds: float = 1.0,
    provenance: dict | None = None,
    created: str | None = None,
    aperiodicity: bool = True,
) -> VoiceProfile:
    """Learn a profile from audio files (decoded with ffmpeg) or from one array ``(samples,)``/``(ch, samples)``.

    Files are decoded to mono at the analysis rate, concatenated and analysed in 30 s chunks (at most 10 min).
    Raises InputError when a file is silent or when there is too little voiced sound overall.
    ``aperiodicity=False`` skips the (slow) D4C step and leaves ``ap_mean`` at 0 dB.
    """
    from .... import audio

    sr = vocoder.ANALYSIS_RATE
    prov = dict(provenance or {})
    if isinstance(sources, np.ndarray):
        if not sample_rate:
            raise ValueError("sample_rate is required when learning from an array")
        x = np.atleast_2d(sources).mean(axis=0)[: int(MAX_LEARN_SECONDS * sample_rate)]
        sr = int(sample_rate)
        label = "the given audio"
        bw = band_hz or 0.45 * sr
    else:
        paths = [Path(p) for p in sources]
        if not paths:
            raise InputError("No sample files given.", hint="Give one or more recordings of the voice.")
        decoded, rates, total = [], [], 0.0
        for p in paths:
            x = audio.decode(p, sample_rate=sr, channels=1)[0]
            if audio.is_silent(x, -50.0):
                raise InputError(f"Sample {p.name} is silent.", hint="Give a recording where the voice is audible.")
            rates.append(audio.probe(p).sample_rate or sr)
            decoded.append(x[: int((MAX_LEARN_SECONDS - total) * sr)])
            total += len(decoded[-1]) / sr
            if total >= MAX_LEARN_SECONDS:
                break
        x = np.concatenate(decoded)
        label = ", ".join(p.name for p in paths[:3]) + (" ..." if len(paths) > 3 else "")
        bw = band_hz or 0.45 * min(min(rates), sr)
        prov.setdefault("sources", [{"file": p.name, "sha256": sha256_file(p)} for p in paths[: len(decoded)]])
    acc = _Accumulator(aperiodicity)
    step = int(CHUNK_SECONDS * sr)
    for i in range(0, len(x), step):
        if len(x[i : i + step]) >= sr // 10:
            acc.add(x[i : i + step].astype(np.float64), sr)
    voiced = acc.n * vocoder.FRAME_PERIOD / 1000.0
    if voiced < min_voiced_seconds:
        raise InputError(
            f"Too little voiced sound in {label}: {voiced:.1f} s (need at least {min_voiced_seconds:.0f} s).",
            hint="Give longer recordings of clear singing or speech.",
        )
    prov.setdefault("created", created or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    prov.setdefault("tool", f"singer {__version__} profile v{FORMAT}")
    return acc.finish(min(bw, vocoder.GRID_HI), vocoder.FRAME_PERIOD, prov)


def merge_profiles(
    items: Sequence[tuple[VoiceProfile, float]], names: Sequence[str] | None = None, created: str | None = None
) -> VoiceProfile:
    """Weighted average of profiles in the log domain; weights are normalised to sum to 1.

    Envelope points above a parent's ``band_hz`` are averaged over the parents that cover them only, so merging a
    telephone-band voice with a full-band one keeps the full band. Provenance lists the parents and weights.
    """
    if not items:
        raise InputError("Nothing to merge.", hint="Give at least one voice.")
    w = np.array([float(wt) for _, wt in items])
    if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise InputError(f"Bad merge weights {w.tolist()}.", hint="Weights must be >= 0 and not all zero.")
    w = w / w.sum()
    profs = [p for p, _ in items]
    used = [i for i in range(len(profs)) if w[i] > 0]
    cover = np.array([vocoder.GRID_HZ <= profs[i].band_hz for i in used], dtype=float) * w[used][:, None]
    cover[:, cover.sum(axis=0) == 0] = w[used][:, None]  # nobody covers: plain weights
    cover /= cover.sum(axis=0)

    def grid_avg(attr: str) -> np.ndarray:
        return (cover * np.array([getattr(profs[i], attr) for i in used])).sum(axis=0)

    def log_avg(attr: str) -> float:
        return float(np.exp(sum(w[i] * np.log(getattr(profs[i], attr)) for i in used)))

    parents = [
        {
            "name": (names[i] if names else profs[i].provenance.get("name", f"parent{i}")),
            "weight": round(float(w[i]), 6),
            "provenance": profs[i].provenance,
        }
        for i in range(len(profs))
    ]
    prov = {
        "merged_from": parents,
        "created": created or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tool": f"singer {__version__} profile v{FORMAT}",
    }
    kinds = {profs[i].recorded for i in used}
    delivery = {"kind": kinds.pop(), "merged": True} if len(kinds) == 1 and "" not in kinds else None
    pitch = None
    if all(profs[i].pitch for i in used):  # MIDI numbers are already logarithmic: a plain weighted mean
        pitch = {k: float(sum(w[i] * (profs[i].pitch or {})[k] for i in used)) for k in ("p10", "median", "p90")}
    return VoiceProfile(
        env_mean=grid_avg("env_mean"),
        env_std=grid_avg("env_std"),
        ap_mean=grid_avg("ap_mean"),
        f0_median=log_avg("f0_median"),
        f0_p5=log_avg("f0_p5"),
        f0_p95=log_avg("f0_p95"),
        formant_scale=log_avg("formant_scale"),
        band_hz=max(profs[i].band_hz for i in used),
        voiced_seconds=float(sum(profs[i].voiced_seconds for i in used)),
        provenance=prov,
        delivery=delivery,
        pitch=pitch,
    )
