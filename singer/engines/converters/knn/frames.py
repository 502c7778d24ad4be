"""Per-segment work of the ``knn`` converter: analyse a segment of the singer, then resynthesise it from the voice's
own frames. Segments, crossfades and silence come from the world engine's planning (:mod:`..world.dsp`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..world import dsp, vocoder
from . import match
from .pool import AP_IDX


@dataclass
class Plan:
    """What is done to every segment, fixed for the whole song."""

    semitones: float
    vt_ratio: float  # voice / singer formant scale: the singer's envelope is moved by it before matching
    out_shift: float  # formant move applied to the output envelope (``formant`` < 1, ``formant_shift``)
    strength: float
    breathiness: float
    air: float
    band_hz: float  # band the voice's frames are trusted in (and the source covers)


@dataclass
class Analysed:
    f0: np.ndarray  # (frames,) Hz, 0 = unvoiced
    env: np.ndarray  # (frames, GRID_N) dB
    ap: np.ndarray | None  # (frames, len(AP_IDX)) dB, only when breathiness < 1
    n_proc: int  # samples at the analysis rate
    n_bins: int  # CheapTrick's envelope bins at that rate


@dataclass
class Reader:
    """Reads a segment (with context) of the stem as one mono signal."""

    src: Path
    n: int
    sr: int
    mix: np.ndarray

    def read(self, seg: dsp.Segment) -> tuple[np.ndarray, int]:
        import soundfile as sf

        ctx = int(dsp.CONTEXT_SECONDS * self.sr)
        a, b = max(0, seg.start - ctx), min(self.n, seg.end + ctx)
        with sf.SoundFile(str(self.src)) as f:
            f.seek(a)
            return f.read(b - a, dtype="float32", always_2d=True) @ self.mix, a


def analyse(x: np.ndarray, sr: int, proc_sr: int, frame_period: float, with_ap: bool) -> Analysed:
    """f0 (DIO + StoneMask) and the CheapTrick envelope on the grid; D4C only when the singer's breath is kept."""
    pw = vocoder.pyworld()
    xp = np.ascontiguousarray(dsp.resample(x.astype(np.float64), sr, proc_sr))
    f0, t = vocoder.track_f0(xp, proc_sr, frame_period)
    sp = pw.cheaptrick(xp, f0, t, proc_sr)
    env = vocoder.envelope_to_grid(sp, proc_sr).astype(np.float32)
    ap = None
    if with_ap:
        a = pw.d4c(xp, f0, t, proc_sr)
        ap = vocoder.envelope_to_grid(np.maximum(a, 1e-6) ** 2, proc_sr)[:, AP_IDX].astype(np.float32)
    return Analysed(f0=f0, env=env, ap=ap, n_proc=len(xp), n_bins=sp.shape[1])


def source_features(seg: Analysed, plan: Plan) -> np.ndarray:
    return match.features(match.shift_grid(seg.env, plan.vt_ratio), plan.band_hz)


def render(
    x: np.ndarray, sr: int, proc_sr: int, seg: Analysed, z: np.ndarray, matcher: match.Matcher, plan: Plan, fp: float
) -> tuple[np.ndarray, np.ndarray]:
    """The converted segment (same length as ``x``, input rate) and its output f0 track."""
    voiced = seg.f0 > 0
    tgt_env, tgt_ap = matcher.blend(z, voiced)
    src = match.shift_grid(seg.env, plan.vt_ratio)
    env = match.compose(src, match.smooth_time(tgt_env), plan.band_hz, plan.strength)
    env = match.shift_grid(env, plan.out_shift)
    ap_db = match.smooth_time(tgt_ap)
    if seg.ap is not None:
        ap_db = plan.breathiness * ap_db + (1 - plan.breathiness) * seg.ap
    n_bins = seg.n_bins
    sp = 10.0 ** (match.grid_to_bins(env, n_bins, proc_sr) / 10.0)
    ap = np.clip(10.0 ** (match.grid_to_bins(ap_db, n_bins, proc_sr, AP_IDX) / 20.0), 0.0, 1.0 - 1e-12)
    ap[~voiced] = 1.0 - 1e-12
    f0 = seg.f0 * 2.0 ** (plan.semitones / 12.0)
    f0 = np.where(f0 < 0.45 * proc_sr, f0, 0.0)
    y = vocoder.synthesize(f0, sp.astype(np.float64), ap.astype(np.float64), proc_sr, fp, seg.n_proc)
    xp = dsp.resample(x.astype(np.float64), sr, proc_sr)
    e_in, e_out = float(np.dot(xp, xp)), float(np.dot(y, y))
    if e_in > 0 and e_out > 0:  # keep the segment's level (WORLD's resynthesis level drifts)
        y *= float(np.clip(np.sqrt(e_in / e_out), 0.25, 4.0))
    y = dsp.resample(y, proc_sr, sr)
    y = y[: len(x)] if len(y) >= len(x) else np.pad(y, (0, len(x) - len(y)))
    if proc_sr < sr and plan.air > 0:
        y += plan.air * dsp.high_band(x.astype(np.float64), sr, 0.45 * proc_sr)
    return y.astype(np.float32), f0


def fade(y: np.ndarray, seg: dsp.Segment, sr: int, xf: int) -> np.ndarray:
    """Crossfade edges against a neighbour, or a 10 ms guard fade where the segment meets silence."""
    edge = int(0.01 * sr)
    head = xf if seg.fade_in else min(edge, len(y) // 2)
    tail = xf if seg.fade_out else min(edge, len(y) // 2)
    y[:head] *= np.sin(0.5 * np.pi * (np.arange(head) + 0.5) / max(head, 1)) ** 2
    y[len(y) - tail :] *= np.cos(0.5 * np.pi * (np.arange(tail) + 0.5) / max(tail, 1)) ** 2
    return y
