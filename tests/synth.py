"""Synthetic signals for tests (pure numpy, no external programs), in the spirit of pedalboard's tests/utils.py.

make_synthetic_song(seconds, sr, seed) -> (mix, vocals, instrumental), float32 (2, n), mix == vocals + instrumental.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def generate_sine(freq: float, sr: int = 44100, seconds: float = 1.0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return np.repeat((amp * np.sin(2 * np.pi * freq * t))[None], channels, axis=0).astype(np.float32)


def _voice(f0: np.ndarray, sr: int, formants=(700, 1200, 2600)) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0) / sr
    out = np.zeros_like(f0)
    for h in range(1, 40):
        fh = h * f0
        amp = sum(np.exp(-0.5 * ((fh - fc) / (80 + 0.08 * fc)) ** 2) for fc in formants) + 0.02 / h
        out += np.where(fh < sr / 2 - 500, amp * np.sin(h * phase), 0.0)
    return out


@lru_cache(maxsize=8)
def _song(seconds: float, sr: int, seed: int):
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    beat = 0.5  # 120 bpm
    notes = 220 * 2 ** (rng.choice([0, 2, 4, 5, 7, 9], size=int(seconds / beat) + 2) / 12)
    idx = np.minimum((t / beat).astype(int), len(notes) - 1)
    f0 = notes[idx] * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    syll = np.clip(np.sin(np.pi * ((t / beat) % 1.0)) * 1.5, 0, 1) ** 0.5
    gaps = (rng.random(len(notes)) > 0.15)[idx]
    voice = _voice(f0, sr) * syll * gaps
    voice = 0.15 * voice / (np.abs(voice).max() + 1e-9)
    bass = 0.25 * np.sin(2 * np.pi * (notes[idx] / 4) * t)
    chord = sum(0.05 * np.sin(2 * np.pi * notes[idx] / 2 * r * t) for r in (1.0, 1.26, 1.5))
    kick_env = np.exp(-((t % beat) / 0.03))
    kick = 0.4 * kick_env * np.sin(2 * np.pi * 60 * t)
    hat = 0.03 * rng.standard_normal(n) * np.exp(-(((t + beat / 2) % beat) / 0.01))
    inst = bass + chord + kick + hat
    vocals = np.stack([voice * 1.0, voice * 0.9]).astype(np.float32)
    instrumental = np.stack([inst, inst * 0.95 + 0.01 * rng.standard_normal(n)]).astype(np.float32)
    return vocals + instrumental, vocals, instrumental


def make_synthetic_song(seconds: float = 5.0, sr: int = 44100, seed: int = 0):
    mix, vocals, inst = _song(float(seconds), int(sr), int(seed))
    return mix.copy(), vocals.copy(), inst.copy()
