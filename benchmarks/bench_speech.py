#!/usr/bin/env python3
"""Benchmark singer.speech: trim boundaries, denoise SNR gain, speed and memory.

    python benchmarks/bench_speech.py [--notes 20] [--seed 0]

* trim: ``--notes`` generated notes (speech-like and sung, 2-5 s; tests/unit/test_speech.py) between random leads
  and tails of 0.3-3 s, over digital silence or white noise at -70..-45 dBFS. The error is the distance between
  the span found (with ``pad_s=0, min_silence_s=0``) and the first/last sounding sample, in seconds.
* denoise: speech-like notes (1 s of silence each side) plus white noise at 0, 5 and 10 dB SNR (noise power
  relative to the note's mean power); the gain is SNR(out) - SNR(in) in dB, at the default strength (0.5) and at 1.
* speed: seconds per minute of 44.1 kHz mono audio for speech_span and denoise on a 60 s note (after a warm-up
  call; ``vad_load_s`` is the first call's model load), and denoise's peak traced memory on 5 minutes of stereo.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def trim_errors(n_notes: int, seed: int) -> dict:
    from singer import speech
    from tests.unit.test_speech import SR, padded_note

    rng = np.random.default_rng(seed)
    lead_err, tail_err, by_kind = [], [], {"speech": [], "sung": []}
    for i in range(n_notes):
        kind = "sung" if i % 4 == 3 else "speech"
        noise = None if rng.random() < 0.3 else float(rng.uniform(-70, -45))
        x, a, b = padded_note(
            kind,
            float(rng.uniform(0.3, 3)),
            float(rng.uniform(0.3, 3)),
            noise,
            seed=seed * 1000 + i,
            seconds=float(rng.uniform(2, 5)),
        )
        start, end, _ = speech.speech_span(x, SR, pad_s=0.0, min_silence_s=0.0)
        lead_err.append(abs(start - a) / SR)
        tail_err.append(abs(end - b) / SR)
        by_kind[kind] += [lead_err[-1], tail_err[-1]]
    both = lead_err + tail_err
    r = lambda v: round(float(v), 3)  # noqa: E731
    return {
        "notes": n_notes,
        "error_mean_s": r(np.mean(both)),
        "error_max_s": r(np.max(both)),
        "lead_error_mean_s": r(np.mean(lead_err)),
        "tail_error_mean_s": r(np.mean(tail_err)),
        **{f"{k}_error_max_s": r(np.max(v)) for k, v in by_kind.items() if v},
    }


def denoise_gains(seed: int, notes: int = 4) -> dict:
    from singer import speech
    from tests.unit.test_speech import SR, padded_note, snr_db, with_noise

    out = {}
    for snr in (0, 5, 10):
        gains = {0.5: [], 1.0: []}
        for i in range(notes):
            clean, _, _ = padded_note("speech", 1.0, 1.0, seed=seed * 100 + i, seconds=4.0)
            noisy = with_noise(clean, snr, seed=i)
            for strength in gains:
                y, _ = speech.denoise(noisy, SR, strength=strength)
                gains[strength].append(snr_db(clean, y) - snr_db(clean, noisy))
        out[f"{snr}dB"] = {
            "snr_gain_db": round(float(np.mean(gains[0.5])), 2),
            "snr_gain_db_min": round(float(np.min(gains[0.5])), 2),
            "snr_gain_db_strength_1": round(float(np.mean(gains[1.0])), 2),
        }
    return out


def long_note(seconds: float, sr: int, seed: int) -> np.ndarray:
    from tests.unit.test_speech import speech_like

    parts, total, i = [], 0, 0
    while total < seconds * sr:
        x, _, _ = speech_like(8.0, sr, seed + i)
        parts += [x, np.zeros(int(0.6 * sr), np.float32)]
        total += x.size + int(0.6 * sr)
        i += 1
    x = np.concatenate(parts)[: int(seconds * sr)]
    return (x + 0.003 * np.random.default_rng(seed).standard_normal(x.size)).astype(np.float32)[None]


def speed(seed: int) -> dict:
    from singer import speech

    sr = 44100
    speech.regions._vad_session.cache_clear()
    t0 = time.perf_counter()
    speech.speech_span(np.zeros((1, sr), np.float32) + np.float32(1e-3), sr)  # loads the silero model
    load = time.perf_counter() - t0
    x = long_note(60.0, sr, seed)
    t0 = time.perf_counter()
    speech.speech_span(x, sr)
    span = time.perf_counter() - t0
    t0 = time.perf_counter()
    speech.denoise(x, sr)
    den = time.perf_counter() - t0
    long = np.repeat(long_note(300.0, sr, seed + 1), 2, axis=0)
    tracemalloc.start()
    speech.denoise(long, sr)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "vad_load_s": round(load, 3),
        "trim_s_per_min": round(span, 3),
        "denoise_s_per_min": round(den, 3),
        "denoise_5min_stereo_peak_mb": round(peak / 2**20, 1),
        "input_5min_stereo_mb": round(long.nbytes / 2**20, 1),
        "cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    result = {
        "trim": trim_errors(args.notes, args.seed),
        "denoise": denoise_gains(args.seed),
        "speed": speed(args.seed),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
