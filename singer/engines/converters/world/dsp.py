"""Signal processing behind the ``world`` converter: segment planning, the voice transform and per-segment work.

A song is cut at silences into segments (long passages are cut at their quietest 10 ms frame and crossfaded),
silent stretches are never analysed, and each segment is processed independently: resampled to the analysis
rate, analysed with WORLD, pitch-shifted, formant-warped, envelope-mapped, resynthesised, resampled back, and
given back the original's band above the analysis Nyquist frequency ("air": breaths, sibilance).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np

from . import vocoder
from .profile import VoiceProfile

HOP_SECONDS = 0.01
MAX_SEGMENT_SECONDS = 10.0
CONTEXT_SECONDS = 0.15
CROSSFADE_SECONDS = 0.04
SILENCE_FLOOR_DB = -60.0
SILENCE_BELOW_PEAK_DB = 50.0


@dataclass
class Segment:
    start: int  # samples at the input rate, output range [start, end)
    end: int
    fade_in: bool = False  # starts with a crossfade against the previous segment
    fade_out: bool = False


@dataclass
class Transform:
    semitones: float = 0.0
    formant_ratio: float = 1.0
    env_db: np.ndarray | None = None  # correction on the vocoder grid, dB (includes level compensation)
    ap_db: np.ndarray | None = None  # aperiodicity change on the grid, dB
    air: float = 1.0


def plan_segments(frame_db: np.ndarray, hop: int, n: int, sr: int) -> list[Segment]:
    """Cut at silences; frames quieter than max(-60 dBFS, peak - 50 dB) for 0.3 s or more are skipped."""
    if not len(frame_db):
        return []
    active = frame_db > max(SILENCE_FLOOR_DB, float(frame_db.max()) - SILENCE_BELOW_PEAK_DB)
    runs = _runs(active)
    runs = [(a, b) for a, b in runs if b - a >= 3]  # drop clicks shorter than 30 ms
    pad, gap = 10, 30  # frames: 100 ms hangover, merge gaps under 300 ms
    merged: list[list[int]] = []
    for a, b in runs:
        a, b = max(0, a - pad), min(len(frame_db), b + pad)
        if merged and a - merged[-1][1] < gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    max_frames = int(MAX_SEGMENT_SECONDS / HOP_SECONDS)
    half_xf = int(CROSSFADE_SECONDS * sr / 2)
    out: list[Segment] = []
    for a, b in merged:
        cuts = [a]
        while b - cuts[-1] > max_frames:
            lo = cuts[-1] + int(0.6 * max_frames)
            hi = min(cuts[-1] + max_frames, b - 100)  # never leave a sliver (< 1 s) after the cut
            cuts.append(lo + int(np.argmin(frame_db[lo:hi])))
        cuts.append(b)
        for i in range(len(cuts) - 1):
            s = cuts[i] * hop - (half_xf if i > 0 else 0)
            e = min(cuts[i + 1] * hop + (half_xf if i < len(cuts) - 2 else 0), n)
            out.append(Segment(max(0, s), e, fade_in=i > 0, fade_out=i < len(cuts) - 2))
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def plan_transform(
    key: float,
    voice: VoiceProfile | None,
    source: VoiceProfile | None,
    *,
    formant: float,
    formant_shift: float,
    strength: float,
    breathiness: float,
    air: float,
    analysis_rate: int,
) -> Transform:
    """Turn user parameters plus the voice and source profiles into one fixed transform for the whole song.
    ``key``: the shift applied, octaves chosen by ``auto_octave`` included (see world.py)."""
    t = Transform(semitones=float(key), air=air)
    if voice is not None and source is not None:
        ratio = (voice.formant_scale / source.formant_scale) ** formant
        t.formant_ratio = float(np.clip(ratio, 0.8, 1.25))
    t.formant_ratio *= 2.0 ** (formant_shift / 12.0)
    if voice is not None and source is not None and (strength > 0 or abs(t.formant_ratio - 1) > 1e-4):
        g = np.log2(vocoder.GRID_HZ)
        warped = np.interp(g - np.log2(t.formant_ratio), g, source.env_mean)  # source LTAS after the warp
        hi = min(voice.band_hz, source.band_hz, 0.45 * analysis_rate)
        w = vocoder.band_mask(300.0, hi)
        diff = vocoder.smooth_grid(voice.env_mean - warped, 0.5)
        diff -= (diff * w).sum() / max(w.sum(), 1e-9)  # shape only
        corr = strength * np.clip(diff, -9.0, 9.0) * w
        lin = vocoder.GRID_HZ * np.log(2) * vocoder.GRID_STEP_OCT  # Hz per grid point: power integrates over f
        before = np.sum(10 ** (source.env_mean / 10) * lin)
        after = np.sum(10 ** ((warped + corr) / 10) * lin)
        t.env_db = corr + 10 * np.log10(before / after)
        if breathiness > 0:
            t.ap_db = breathiness * np.clip(voice.ap_mean - source.ap_mean, -12.0, 12.0) * w
    return t


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(x, sr_out // g, sr_in // g)


def high_band(x: np.ndarray, sr: int, cutoff: float) -> np.ndarray:
    """Zero-phase brick-wall high-pass by FFT (content above ``cutoff`` Hz)."""
    from scipy.fft import irfft, next_fast_len, rfft

    n = next_fast_len(len(x), real=True)
    spec = rfft(x, n)
    spec[: int(np.ceil(cutoff * n / sr))] = 0
    return irfft(spec, n)[: len(x)]


def process_segment(
    x: np.ndarray, sr: int, proc_sr: int, t: Transform, frame_period: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Convert one mono chunk (float, input rate). Returns (output of the same length, f0 in, f0 out), f0 voiced only."""
    xp = resample(x.astype(np.float64), sr, proc_sr)
    a = vocoder.analyze(xp, proc_sr, frame_period)
    voiced = a.f0 > 0
    f0 = a.f0 * 2.0 ** (t.semitones / 12.0)
    f0 = np.where(f0 < 0.45 * proc_sr, f0, 0.0)
    sp = vocoder.warp_envelope(a.sp, t.formant_ratio, proc_sr)
    if t.env_db is not None:
        sp = sp * 10.0 ** (vocoder.grid_to_bins(t.env_db, sp.shape[1], proc_sr) / 10.0)
    ap = a.ap
    if ap is None:
        raise ValueError("the analysis has no aperiodicity (analyse with it to synthesize)")
    if t.ap_db is not None:
        ap = np.clip(ap * 10.0 ** (vocoder.grid_to_bins(t.ap_db, ap.shape[1], proc_sr) / 20.0), 0.0, 1.0 - 1e-12)
    y = vocoder.synthesize(f0, sp, ap, proc_sr, frame_period, len(xp))
    # WORLD's resynthesis level drifts by a dB or two; keep each segment's level (within +-6 dB)
    e_in, e_out = float(np.dot(xp, xp)), float(np.dot(y, y))
    if e_in > 0 and e_out > 0:
        y *= float(np.clip(np.sqrt(e_in / e_out), 0.5, 2.0))
    y = resample(y, proc_sr, sr)
    y = y[: len(x)] if len(y) >= len(x) else np.pad(y, (0, len(x) - len(y)))
    if proc_sr < sr and t.air > 0:
        y += t.air * high_band(x.astype(np.float64), sr, 0.45 * proc_sr)
    return y.astype(np.float32), a.f0[voiced], f0[voiced]
