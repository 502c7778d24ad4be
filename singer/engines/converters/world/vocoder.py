"""Thin helpers around pyworld (WORLD vocoder) shared by voice profiles and the ``world`` converter.

Everything here works on float64 mono numpy arrays at an analysis rate (default 22.05 kHz), with a fixed
frame period. Spectral envelopes are summarised on one fixed log-frequency grid (:data:`GRID_HZ`) so that
profiles learned from recordings at different sample rates are comparable and a formant shift is a plain
translation along the grid.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

ANALYSIS_RATE = 22050
FRAME_PERIOD = 10.0  # ms
F0_FLOOR = 50.0
F0_CEIL = 1100.0
GRID_LO, GRID_HI, GRID_N = 50.0, 11025.0, 96
GRID_HZ = np.geomspace(GRID_LO, GRID_HI, GRID_N)
GRID_STEP_OCT = float(np.log2(GRID_HI / GRID_LO) / (GRID_N - 1))


@lru_cache(maxsize=1)
def pyworld() -> Any:
    """Import pyworld once, silencing its ``pkg_resources`` deprecation warning (the library never prints)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyworld as pw
    return pw


@dataclass
class Analysis:
    """WORLD parameters of one chunk: f0 (Hz, 0 = unvoiced), envelope ``sp`` and aperiodicity ``ap`` (frames, bins)."""

    f0: np.ndarray
    sp: np.ndarray
    ap: np.ndarray | None
    sr: int
    frame_period: float


def track_f0(x: np.ndarray, sr: int, frame_period: float = FRAME_PERIOD) -> tuple[np.ndarray, np.ndarray]:
    """DIO + StoneMask f0 track with short voiced blips (< 3 frames) removed. Returns (f0, frame times).

    DIO runs at half resolution (``speed=2``) from 16 kHz up: twice as fast, and after StoneMask refinement the
    track differs from full resolution in well under 1 % of frames.
    """
    pw = pyworld()
    speed = 2 if sr >= 16000 else 1
    f0, t = pw.dio(x, sr, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=frame_period, speed=speed)
    f0 = pw.stonemask(x, f0, t, sr)
    voiced = f0 > 0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], voiced.view(np.int8), [0]))))
    for a, b in zip(edges[::2], edges[1::2]):
        if b - a < 3:
            f0[a:b] = 0.0
    return f0, t


def analyze(
    x: np.ndarray, sr: int, frame_period: float = FRAME_PERIOD, aperiodicity: bool = True, ap_stride: int = 3
) -> Analysis:
    """Full WORLD analysis. D4C (the slowest step) runs on every ``ap_stride``-th frame and is interpolated."""
    pw = pyworld()
    x = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = track_f0(x, sr, frame_period)
    sp = pw.cheaptrick(x, f0, t, sr)
    ap = None
    if aperiodicity:
        if ap_stride > 1 and len(t) > 2 * ap_stride:
            # every ap_stride-th frame plus voicing edges, so each interpolated voiced frame has voiced neighbours
            v = f0 > 0
            edge = v & ~(np.roll(v, 1) & np.roll(v, -1))
            keep = np.zeros(len(t), bool)
            keep[::ap_stride] = True
            keep[[0, -1]] = True
            idx = np.flatnonzero(keep | edge)
            coarse = pw.d4c(x, np.ascontiguousarray(f0[idx]), np.ascontiguousarray(t[idx]), sr)
            frames = np.arange(len(t))
            j = np.clip(np.searchsorted(idx, frames, side="right") - 1, 0, len(idx) - 2)
            w = ((frames - idx[j]) / (idx[j + 1] - idx[j]))[:, None]
            ap = coarse[j] * (1 - w) + coarse[j + 1] * w
            ap[~v] = 1.0 - 1e-12
        else:
            ap = pw.d4c(x, f0, t, sr)
    return Analysis(f0=f0, sp=sp, ap=ap, sr=sr, frame_period=frame_period)


def synthesize(f0: np.ndarray, sp: np.ndarray, ap: np.ndarray, sr: int, frame_period: float, length: int) -> np.ndarray:
    """WORLD synthesis, cut or zero-padded to exactly ``length`` samples.

    Envelopes finer than 30 Hz per bin are decimated to every other bin first: synthesis cost is one FFT per
    pulse, so this halves it, and a 23 ms impulse response (512 points at 22.05 kHz) is ample for a voice.
    """
    pw = pyworld()
    if sr / (2 * (sp.shape[1] - 1)) < 30.0 and sp.shape[1] % 2 == 1:
        sp, ap = sp[:, ::2], ap[:, ::2]
    y = pw.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp), np.ascontiguousarray(ap), sr, frame_period)
    if len(y) >= length:
        return y[:length]
    return np.pad(y, (0, length - len(y)))


def _interp_weights(freqs: np.ndarray, n_bins: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    fft_size = 2 * (n_bins - 1)
    pos = np.clip(freqs * fft_size / sr, 0, n_bins - 1.000001)
    lo = np.floor(pos).astype(int)
    return lo, pos - lo


def envelope_to_grid(sp: np.ndarray, sr: int) -> np.ndarray:
    """Spectral envelopes (frames, bins) -> log power in dB on :data:`GRID_HZ` (frames, GRID_N)."""
    lo, w = _interp_weights(GRID_HZ, sp.shape[1], sr)
    lin = sp[:, lo] * (1 - w) + sp[:, lo + 1] * w
    return 10.0 * np.log10(np.maximum(lin, 1e-20))


def grid_to_bins(values: np.ndarray, n_bins: int, sr: int) -> np.ndarray:
    """Interpolate a curve on :data:`GRID_HZ` onto linear FFT bins (held constant outside the grid)."""
    freqs = np.arange(n_bins) * sr / (2 * (n_bins - 1))
    return np.interp(np.log(np.maximum(freqs, GRID_LO)), np.log(GRID_HZ), values)


def warp_envelope(sp: np.ndarray, ratio: float, sr: int) -> np.ndarray:
    """Move formants by ``ratio`` (>1 = up): new(f) = old(f / ratio), linear interpolation across bins."""
    if abs(ratio - 1.0) < 1e-4:
        return sp
    n_bins = sp.shape[1]
    freqs = np.arange(n_bins) * sr / (2 * (n_bins - 1))
    lo, w = _interp_weights(freqs / ratio, n_bins, sr)
    return sp[:, lo] * (1 - w) + sp[:, lo + 1] * w


def band_mask(lo_hz: float, hi_hz: float, taper_oct: float = 0.3) -> np.ndarray:
    """Weights on the grid: 1 inside [lo_hz, hi_hz], raised-cosine taper to 0 over ``taper_oct`` outside."""
    g = np.log2(GRID_HZ)
    d = np.maximum(np.log2(lo_hz) - g, g - np.log2(hi_hz))
    return np.where(d <= 0, 1.0, np.where(d >= taper_oct, 0.0, 0.5 * (1 + np.cos(np.pi * d / taper_oct))))


def smooth_grid(values: np.ndarray, width_oct: float) -> np.ndarray:
    """Moving average along :data:`GRID_HZ` over ``width_oct`` octaves (edges use the available points)."""
    half = max(1, round(width_oct / GRID_STEP_OCT / 2))
    padded = np.pad(values, half, mode="edge")
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    return np.convolve(padded, kernel, mode="valid")


def formant_tracks(sp: np.ndarray, sr: int, ltas_db: np.ndarray, fmax: float = 4000.0, order: int = 10) -> np.ndarray:
    """First three formant frequencies (Hz; NaN where not found) of each envelope frame, by LPC.

    The envelope is first divided by its recording's smoothed long-term average (``ltas_db`` on the grid),
    which removes microphone/channel colouring and glottal tilt that otherwise bias the poles; only 0..fmax
    is used, so band-limited (8 kHz telephone) recordings and full-band ones are measured alike.
    """
    n_bins = sp.shape[1]
    norm = 10.0 ** (grid_to_bins(smooth_grid(ltas_db, 1.5), n_bins, sr) / 10.0)
    kmax = min(n_bins - 1, int(fmax * 2 * (n_bins - 1) / sr))
    r = np.fft.irfft(sp[:, : kmax + 1] / norm[: kmax + 1], axis=1)[:, : order + 1]
    a = np.zeros((len(r), order + 1))
    a[:, 0] = 1.0
    err = r[:, 0].copy() + 1e-30
    for i in range(1, order + 1):  # Levinson-Durbin, vectorised over frames
        k = -(r[:, i] + np.einsum("fj,fj->f", a[:, 1:i], r[:, i - 1 : 0 : -1])) / err
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1 : 0 : -1]
        a[:, i] = k
        err = err * (1.0 - k * k) + 1e-30
    companion = np.zeros((len(a), order, order))
    companion[:, 0, :] = -a[:, 1:]
    companion[:, np.arange(1, order), np.arange(order - 1)] = 1.0
    roots = np.linalg.eigvals(companion)
    fs = 2.0 * kmax * sr / (2 * (n_bins - 1))
    freq = np.angle(roots) * fs / (2 * np.pi)
    bw = -np.log(np.maximum(np.abs(roots), 1e-12)) * fs / np.pi
    ok = (np.imag(roots) > 0) & (bw < 500) & (freq > 180) & (freq < fmax - 100)
    freq = np.where(ok, freq, np.inf)
    freq.sort(axis=1)
    out = freq[:, :3]
    out[~np.isfinite(out)] = np.nan
    return out
