#!/usr/bin/env python3
"""Benchmark the ``world`` converter: wall time on a 180 s vocal, peak RSS on a 600 s one.

    python benchmarks/bench_world.py [--seconds 180] [--long-seconds 600] [--voice ayana] [--songgen]

The vocal is a synthetic sung line (numpy): a melody of notes with vibrato and glides through moving vowel
formants, noise consonants and breaths between phrases, 44.1 kHz stereo float32. With ``--songgen`` the 180 s
vocal is instead ``vocals.wav`` from ``benchmarks/songgen.py`` (Festival-sung; needs festival and fluidsynth).
The conversion uses a bundled voice with default parameters plus key +3, in a thread pool of all cores.
The 600 s run happens in a fresh process so its peak RSS (ru_maxrss) is its own.

Prints one JSON object: seconds, convert_s (wall), cpu_s (all threads), realtime_factor, load_avg_1m (other work
on the machine skews wall time), segments, cores, long_seconds, long_convert_s, long_peak_rss_mb, baseline_rss_mb
(peak RSS of that process after imports and voice loading, before converting).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SR = 44100


def sung_vocal(seconds: float, seed: int = 0, sr: int = SR) -> np.ndarray:
    """Deterministic synthetic singing, float32 (2, n): phrases of 4-8 notes separated by short breaths."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    f0 = np.zeros(n)
    amp = np.zeros(n)
    vowel = np.zeros(n, dtype=int)
    t = 0
    while t < n:
        for _ in range(int(rng.integers(4, 9))):
            dur = int(sr * rng.choice([0.25, 0.5, 0.75, 1.0]))
            note = 57 + int(rng.choice([0, 2, 4, 5, 7, 9, 12]))
            f0[t : t + dur] = 440.0 * 2 ** ((note - 69) / 12)
            amp[t : t + dur] = 1.0
            vowel[t : t + dur] = int(rng.integers(0, 4))
            t += dur
        t += int(sr * rng.uniform(0.3, 1.2))  # breath / rest
    f0 = np.where(f0 > 0, f0, 220.0)[:n]
    glide = np.convolve(np.log(f0), np.ones(2205) / 2205, mode="same")
    tt = np.arange(n) / sr
    f = np.exp(glide) * 2 ** (0.25 / 12 * np.sin(2 * np.pi * 5.5 * tt))
    phase = 2 * np.pi * np.cumsum(f) / sr
    formants = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480]], dtype=float)
    fm = formants[vowel]  # (n, 3)
    y = np.zeros(n)
    for k in range(1, 40):
        fk = k * f
        gain = sum(1.0 / (1.0 + ((fk - fm[:, i]) / (60 + 30 * i)) ** 2) for i in range(3)) / np.sqrt(k)
        y += np.where(fk < 0.45 * sr, gain, 0.0) * np.sin(k * phase)
    env = np.convolve(amp[:n], np.ones(441) / 441, mode="same")
    noise = rng.standard_normal(n) * 0.02 * (np.abs(np.diff(env, prepend=0)) > 0).astype(float)
    y = y * env + np.convolve(noise, np.ones(400) / 400, mode="same")
    y *= 0.3 / np.max(np.abs(y))
    return np.stack([y, 0.8 * y]).astype(np.float32)


def write_vocal(path: Path, seconds: float, seed: int = 0) -> None:
    """Write the synthetic vocal in 60 s pieces, so even 600 s needs little memory."""
    import soundfile as sf

    with sf.SoundFile(str(path), "w", SR, 2, subtype="FLOAT", format="WAV") as f:
        for i, start in enumerate(np.arange(0.0, seconds, 60.0)):
            f.write(sung_vocal(min(60.0, seconds - start), seed=seed * 1000 + i).T)


def make_vocal(path: Path, seconds: float, songgen: bool) -> None:
    if songgen:
        sys.path.insert(0, str(REPO / "benchmarks"))
        import songgen

        paths = songgen.make_song(path.parent / "song", seconds=seconds)
        os.replace(paths["vocals"], path)
        return
    write_vocal(path, seconds)


def run_once(src: Path, voice: str, out: Path) -> dict:
    from singer.config import Settings
    from singer.engines.converters.world.engine import WorldConverter
    from singer.voices import VoiceStore

    settings = Settings(home=out.parent / "home")
    v = VoiceStore(settings).get(voice)
    conv = WorldConverter(settings)
    rss0 = peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    meta = conv.convert(src, out, v, {"key": 3})
    return {
        "convert_s": round(time.perf_counter() - t0, 2),
        "cpu_s": round(time.process_time() - c0, 2),
        "segments": meta["segments"],
        "baseline_rss_mb": rss0,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; unlike ru_maxrss it is not inherited from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--long-seconds", type=float, default=600.0)
    ap.add_argument("--voice", default="ayana")
    ap.add_argument("--songgen", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(run_once(Path(a.child[0]), a.voice, Path(a.child[1]))))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        src = tmp_path / "vocals.wav"
        make_vocal(src, a.seconds, a.songgen)
        short = run_once(src, a.voice, tmp_path / "out.wav")
        result = {
            "seconds": a.seconds,
            "convert_s": short["convert_s"],
            "cpu_s": short["cpu_s"],
            "realtime_factor": round(a.seconds / short["convert_s"], 1),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "segments": short["segments"],
            "cores": os.cpu_count(),
            "long_seconds": None,
            "long_convert_s": None,
            "long_peak_rss_mb": None,
            "baseline_rss_mb": None,
        }
        if a.long_seconds:
            long_src = tmp_path / "long.wav"
            write_vocal(long_src, a.long_seconds, seed=1)
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--voice",
                    a.voice,
                    "--child",
                    str(long_src),
                    str(tmp_path / "long_out.wav"),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            child = json.loads(proc.stdout.strip().splitlines()[-1])
            result.update(
                long_seconds=a.long_seconds,
                long_convert_s=child["convert_s"],
                long_peak_rss_mb=child["peak_rss_mb"],
                baseline_rss_mb=child["baseline_rss_mb"],
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
