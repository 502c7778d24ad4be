"""Pitch tracks in MIDI numbers, and whether a recording is sung or spoken.

Sung or spoken
--------------
:func:`classify` tells singing from speech by its pitch track. Singing holds notes: after averaging out vibrato
(a 150 ms moving mean), a sung line stays within +-0.3 semitone for a quarter of a second or longer, note after
note, at several pitches; speech glides through every syllable. A voiced frame is *held* when it lies in a 250 ms
stretch whose smoothed pitch spans at most 0.6 semitone. A recording is sung when half or more of its voiced
frames are held, or a quarter or more are held and the held notes spread over 3 semitones or more (the
10th..90th percentile of their pitches): a sung voice note counts as singing, a monotone reading does not. On the
recordings this was tuned on (benchmarks/bench_octave.py lists them), real speech holds 0-9 % of its voiced frames,
a diphone synthesiser's monotone speech up to 37 % (over a 1.6 semitone spread), singing 43-100 %.

"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

HELD_SMOOTH_S = 0.15  # moving mean that averages out vibrato (one cycle at 5.5-7 Hz)
HELD_MIN_S = 0.25  # a held note lasts this long ...
HELD_TOLERANCE = 0.6  # ... within this many semitones (smoothed pitch, max - min)
SUNG_HELD = 0.5  # sung: this share of voiced frames held ...
SUNG_HELD_WITH_SPREAD = 0.25  # ... or this share, with the held notes
SUNG_SPREAD = 3.0  # ... spread over this many semitones
MIN_VOICED_S = 0.5


def hz_to_midi(hz: float) -> float:
    return 69.0 + 12.0 * math.log2(max(float(hz), 1e-6) / 440.0)


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((float(midi) - 69.0) / 12.0)


def note(midi: float) -> str:
    """Nearest equal-tempered note name, e.g. 57 -> 'A3'."""
    m = round(midi)
    return ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"][m % 12] + str(m // 12 - 1)


def _tracks(f0: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(f0, np.ndarray) and f0.ndim == 1:
        return [np.asarray(f0, dtype=np.float64)]
    return [np.asarray(t, dtype=np.float64).ravel() for t in f0]


def _voiced(t: np.ndarray) -> np.ndarray:
    return np.isfinite(t) & (t > 0)


def pitch_stats(
    f0: np.ndarray | Sequence[np.ndarray], frame_s: float = 0.01, *, min_voiced_s: float = MIN_VOICED_S
) -> dict | None:
    """{"p10", "median", "p90"} of the voiced frames (MIDI) and "voiced_seconds"; None when too little is voiced.
    ``f0``: one track or several (Hz per frame, 0 = unvoiced)."""
    voiced = np.concatenate([t[_voiced(t)] for t in _tracks(f0)] or [np.zeros(0)])
    if voiced.size * frame_s < min_voiced_s:
        return None
    midi = 69 + 12 * np.log2(voiced / 440.0)
    p10, median, p90 = np.percentile(midi, [10, 50, 90])
    return {
        "p10": float(p10),
        "median": float(median),
        "p90": float(p90),
        "voiced_seconds": round(voiced.size * frame_s, 2),
    }


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def held_notes(f0: np.ndarray | Sequence[np.ndarray], frame_s: float = 0.01) -> tuple[int, int, list[float]]:
    """(held voiced frames, voiced frames, mean pitch of each held stretch) of one or several pitch tracks."""
    from numpy.lib.stride_tricks import sliding_window_view

    k = max(1, round(HELD_SMOOTH_S / frame_s))
    length = max(2, round(HELD_MIN_S / frame_s))
    held_total, voiced_total, pitches = 0, 0, []
    for t in _tracks(f0):
        v = _voiced(t)
        voiced_total += int(v.sum())
        for a, b in _runs(v):
            if b - a < max(k, length):
                continue
            m = 69 + 12 * np.log2(t[a:b] / 440.0)
            sm = np.convolve(np.pad(m, (k // 2, k - 1 - k // 2), mode="edge"), np.ones(k) / k, mode="valid")
            win = sliding_window_view(sm, length)
            ok = np.flatnonzero(win.max(axis=1) - win.min(axis=1) <= HELD_TOLERANCE)
            if not len(ok):
                continue
            cover = np.zeros(len(sm) + 1, np.int32)  # difference array: +1 at each window start, -1 after its end
            np.add.at(cover, ok, 1)
            np.add.at(cover, ok + length, -1)
            held = np.cumsum(cover[:-1]) > 0
            held_total += int(held.sum())
            pitches += [float(sm[c:e].mean()) for c, e in _runs(held)]
    return held_total, voiced_total, pitches


@dataclass(frozen=True)
class Delivery:
    """Whether a recording is sung or spoken, and the evidence."""

    kind: str  # "sung" | "spoken"
    held_fraction: float
    held_spread: float  # semitones between the 10th and 90th percentile of the held notes' pitches
    held_notes: int
    voiced_seconds: float

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "held_fraction": round(self.held_fraction, 3),
            "held_spread": round(self.held_spread, 2),
            "held_notes": self.held_notes,
            "voiced_seconds": round(self.voiced_seconds, 2),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Delivery:
        return cls(
            str(d["kind"]),
            float(d.get("held_fraction", 0.0)),
            float(d.get("held_spread", 0.0)),
            int(d.get("held_notes", 0)),
            float(d.get("voiced_seconds", 0.0)),
        )


def classify(f0: np.ndarray | Sequence[np.ndarray], frame_s: float = 0.01) -> Delivery | None:
    """Sung or spoken, from one or several pitch tracks (Hz per frame, 0 = unvoiced); None when under 0.5 s is voiced."""
    held, voiced, pitches = held_notes(f0, frame_s)
    if voiced * frame_s < MIN_VOICED_S:
        return None
    fraction = held / voiced
    spread = float(np.percentile(pitches, 90) - np.percentile(pitches, 10)) if len(pitches) >= 2 else 0.0
    sung = fraction >= SUNG_HELD or (fraction >= SUNG_HELD_WITH_SPREAD and spread >= SUNG_SPREAD)
    return Delivery("sung" if sung else "spoken", fraction, spread, len(pitches), voiced * frame_s)
