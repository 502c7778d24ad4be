""":func:`denoise` is a stationary spectral gate with a Wiener-style gain. The noise power spectrum ``N`` is measured on
the frames the detectors call silent (the quietest tenth of the frames when there are too few of those), and each
STFT bin ``X`` is scaled by ``max(1 - over_subtraction * N / |X|^2, floor)``. The gain is smoothed over time and
frequency, so that the noise left over does not turn into "musical" warbles, and it is the same on every channel.
Where the gain is 1 the output is the input (the STFT reconstructs exactly). Spectra are computed a block at a
time: a five-minute note needs its samples, the output and a few tens of MB.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .regions import speech_regions


class DenoiseParams(BaseModel):
    """Parameters of the ``denoise`` step."""

    model_config = ConfigDict(extra="forbid")

    strength: float = Field(
        0.5, ge=0.0, le=1.0, description="0: off; 0.5: noise lowered by up to 20 dB; 1: by up to 40 dB."
    )


class _Stft:
    """Hann-windowed STFT with hop ``size / 4``, taken and put back a block of frames at a time.

    Frame ``k`` covers samples ``[k * hop - (size - hop), k * hop + hop)``, so every sample lies in exactly four
    frames; the squared windows of four frames sum to 1.5, and synthesis (window again, overlap-add, / 1.5)
    returns the input exactly when the spectra are left alone."""

    def __init__(self, sr: int, n: int):
        from scipy.signal import get_window

        self.size = 2 ** max(8, round(math.log2(2048 * sr / 44100)))  # 2048 at 44.1/48 kHz, 1024 at 16-32 kHz
        self.hop = self.size // 4
        self.lead = self.size - self.hop
        self.n = n
        self.count = (self.lead + n - 1) // self.hop + 1 if n else 0
        self.window = get_window("hann", self.size).astype(np.float32)  # periodic

    def start(self, k: Any) -> Any:
        """The first sample of frame ``k`` (an int or an array of frame numbers)."""
        return k * self.hop - self.lead

    def inside(self) -> np.ndarray:
        """Which frames lie wholly inside the signal (no zero padding)."""
        starts = self.start(np.arange(self.count))
        return (starts >= 0) & (starts + self.size <= self.n)

    def spectra(self, x: np.ndarray, k0: int, k1: int) -> np.ndarray:
        """Complex spectra of frames ``[k0, k1)``: (channels, frames, size // 2 + 1), complex64."""
        from numpy.lib.stride_tricks import sliding_window_view
        from scipy.fft import rfft

        a, b = self.start(k0), self.start(k1 - 1) + self.size
        seg = np.zeros((x.shape[0], b - a), np.float32)
        lo, hi = max(a, 0), min(b, self.n)
        if hi > lo:
            seg[:, lo - a : hi - a] = x[:, lo:hi]
        frames = sliding_window_view(seg, self.size, axis=-1)[:, :: self.hop]
        return rfft(frames * self.window, axis=-1)

    def add(self, y: np.ndarray, k0: int, spectra: np.ndarray) -> None:
        """Overlap-add the frames ``spectra`` (starting at frame ``k0``) into ``y`` (channels, n)."""
        from scipy.fft import irfft

        frames = irfft(spectra, n=self.size, axis=-1).astype(np.float32) * (self.window / 1.5)
        c, f = frames.shape[:2]
        acc = np.zeros((c, f + 3, self.hop), np.float32)
        parts = frames.reshape(c, f, 4, self.hop)
        for q in range(4):
            acc[:, q : q + f] += parts[:, :, q]
        acc = acc.reshape(c, -1)
        a = self.start(k0)
        lo, hi = max(a, 0), min(a + acc.shape[1], self.n)
        if hi > lo:
            y[:, lo:hi] += acc[:, lo - a : hi - a]


def _bin_weights(size: int) -> np.ndarray:
    """Parseval weights of rfft bins: DC and Nyquist once, the others twice."""
    w = np.full(size // 2 + 1, 2.0)
    w[0] = w[-1] = 1.0
    return w


def floor_db(strength: float) -> float:
    """The lowest gain :func:`denoise` applies, in dB: 0 at strength 0, -20 dB at 0.5, -40 dB at 1."""
    return -40.0 * float(strength)


def _speech_frames(stft: _Stft, regions: list[tuple[int, int]], guard: int) -> np.ndarray:
    """Which frames touch a speech region (widened by ``guard`` samples)."""
    mask = np.zeros(stft.count, bool)
    for a, b in regions:
        k0 = max(0, (a - guard + stft.lead - stft.size) // stft.hop + 1)
        k1 = min(stft.count, (b + guard + stft.lead - 1) // stft.hop + 1)
        mask[k0:k1] = True
    return mask


def _noise_psd(x: np.ndarray, stft: _Stft, noise: np.ndarray, max_frames: int = 3000) -> np.ndarray:
    """Mean power spectrum (over channels) of the frames ``noise`` (indices), leaving out frames more than 3 dB
    above their median level (speech or a knock the detectors missed). At most ``max_frames``, evenly spread."""
    from scipy.fft import rfft

    if noise.size > max_frames:
        noise = noise[np.linspace(0, noise.size - 1, max_frames).round().astype(int)]
    parts = []
    for i in range(0, noise.size, 256):
        idx = noise[i : i + 256]
        frames = np.stack([x[:, s : s + stft.size] for s in stft.start(idx)], axis=1)  # (c, f, size)
        parts.append((np.abs(rfft(frames * stft.window, axis=-1)) ** 2).mean(axis=0))
    power = np.concatenate(parts)
    level = power.sum(axis=1)
    keep = level <= np.median(level) * 10**0.3
    return power[keep].mean(axis=0)


_NOTHING_DONE = {"noise_floor_dbfs": None, "reduction_db": 0.0, "noise_reduction_db": 0.0, "noise_frames": "none"}
SPEECH_GUARD_S = 0.05  # frames this close to speech are not measured as noise
MIN_NOISE_S = 0.25  # less silence than this: the noise is measured on the quietest tenth of the frames instead
GAIN_CONTEXT = 3  # frames of context each side of a block: the gain smoothing reaches 3 frames


def denoise(
    x: np.ndarray,
    sr: int,
    strength: float = 0.5,
    over_subtraction: float = 1.5,
    speech: list[tuple[int, int]] | None = None,
    vad: bool = True,
    block_frames: int = 512,
) -> tuple[np.ndarray, dict]:
    """Lower steady background noise; returns ``(y, info)`` with ``y`` shaped and typed like ``x`` (float32).

    ``strength`` (0..1) sets the gain floor (:func:`floor_db`); ``speech`` gives the speech regions (sample
    pairs) when the caller has them, else :func:`speech_regions` finds them (``vad``: with silero-vad).
    ``info``: noise_floor_dbfs (the noise measured, RMS), reduction_db (level drop over the whole recording),
    noise_reduction_db (level drop outside speech), noise_frames ("silence" or "quietest" -- where the noise
    was measured)."""
    mono = np.asarray(x).ndim == 1
    x = np.atleast_2d(np.asarray(x, np.float32))
    stft = _Stft(sr, x.shape[-1])
    inside = stft.inside()
    if strength <= 0 or not inside.any():  # off, or shorter than one STFT frame (~46 ms): nothing to measure
        return (x[0] if mono else x).copy(), dict(_NOTHING_DONE)
    if speech is None:
        speech = speech_regions(x, sr, vad=vad)[0]
    is_speech = _speech_frames(stft, speech, guard=int(SPEECH_GUARD_S * sr))
    noise, where = _noise_frames(x, sr, stft, inside, is_speech)
    noise_psd = _noise_psd(x, stft, noise)
    weights = _bin_weights(stft.size)
    noise_power = float(weights @ noise_psd) / (stft.size * float(np.square(stft.window).sum()))
    gain_floor = 10 ** (floor_db(strength) / 20)
    y, (energy_in, energy_out, noise_in, noise_out) = _apply(
        x, stft, noise_psd, is_speech, over_subtraction, gain_floor, block_frames
    )
    info = {
        "noise_floor_dbfs": round(max(-120.0, 10 * math.log10(noise_power + 1e-20)), 2),
        "reduction_db": _drop_db(energy_in, energy_out),
        "noise_reduction_db": _drop_db(noise_in, noise_out),
        "noise_frames": where,
    }
    return (y[0] if mono else y), info


def _noise_frames(
    x: np.ndarray, sr: int, stft: _Stft, inside: np.ndarray, is_speech: np.ndarray
) -> tuple[np.ndarray, str]:
    """The frames to measure the noise on, and which they are: "silence", or "quietest" when there is too little
    silence to measure (or no speech found at all) and the quietest tenth of the frames stands in."""
    noise = np.flatnonzero(inside & ~is_speech)
    if noise.size >= max(8, MIN_NOISE_S * sr / stft.hop) and is_speech.any():
        return noise, "silence"
    candidates = np.flatnonzero(inside)
    energy = np.array([float(np.square(x[:, s : s + stft.size]).sum()) for s in stft.start(candidates)])
    return np.sort(candidates[np.argsort(energy, kind="stable")[: max(1, candidates.size // 10)]]), "quietest"


def _apply(
    x: np.ndarray,
    stft: _Stft,
    noise_psd: np.ndarray,
    is_speech: np.ndarray,
    over_subtraction: float,
    gain_floor: float,
    block_frames: int,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The gated signal, a block of frames at a time, and its energy tally (in, out; outside speech: in, out)."""
    weights = _bin_weights(stft.size)
    y = np.zeros_like(x)
    energy_in = energy_out = noise_in = noise_out = 0.0
    for k0 in range(0, stft.count, block_frames):
        k1 = min(stft.count, k0 + block_frames)
        e0, e1 = max(0, k0 - GAIN_CONTEXT), min(stft.count, k1 + GAIN_CONTEXT)
        spec = stft.spectra(x, e0, e1)
        power = (spec.real**2 + spec.imag**2).mean(axis=0)  # (frames, bins), all channels alike
        gain = _gain(power, noise_psd, over_subtraction, gain_floor)[k0 - e0 : k1 - e0]
        stft.add(y, k0, spec[:, k0 - e0 : k1 - e0] * gain)
        p_in = power[k0 - e0 : k1 - e0] @ weights
        p_out = ((gain**2) * power[k0 - e0 : k1 - e0]) @ weights
        energy_in += float(p_in.sum())
        energy_out += float(p_out.sum())
        quiet = ~is_speech[k0:k1]
        noise_in += float(p_in[quiet].sum())
        noise_out += float(p_out[quiet].sum())
    return y, (energy_in, energy_out, noise_in, noise_out)


def _drop_db(before: float, after: float) -> float:
    return round(10 * math.log10((before + 1e-20) / (after + 1e-20)), 2) if before > 0 else 0.0


def _gain(power: np.ndarray, noise_psd: np.ndarray, over_subtraction: float, floor: float) -> np.ndarray:
    """Wiener-style gain per (frame, bin): the power smoothed over 3 frames x 3 bins, the gain
    ``max(1 - a * N / P, floor)`` smoothed again over 5 frames x 5 bins (triangular)."""
    from scipy.ndimage import convolve1d

    tri3 = np.array([1.0, 2.0, 1.0]) / 4
    tri5 = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9
    p = convolve1d(convolve1d(power, tri3, axis=0, mode="nearest"), tri3, axis=1, mode="nearest")
    g = np.clip(1.0 - over_subtraction * noise_psd / (p + 1e-20), floor, 1.0)
    g = convolve1d(convolve1d(g, tri5, axis=0, mode="nearest"), tri5, axis=1, mode="nearest")
    return g.astype(np.float32)
