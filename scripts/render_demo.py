#!/usr/bin/env python3
"""Re-render the bundled demo song into singer/data/demo/ from the shipped score (score.json).

    python scripts/render_demo.py [--out singer/data/demo] [--png /tmp/demo_spectrogram.png] [--keep-stems DIR]

The melody is sung by Festival's singing mode (diphone voice kal_diphone) and the backing is rendered by FluidSynth
with the FluidR3 GM soundfont, through benchmarks/songgen.py (form "demo", seed 0; tempo, key, voice and vocal level
from score.json's "demo" entry). Needs the Debian packages fluidsynth fluid-soundfont-gm festival
festvox-kallpc16k, and ffmpeg with libmp3lame; `make demo` does NOT need them: the rendered files are committed.
Writes:

* demo_song.mp3      the song (MP3 128 kbit/s, 44.1 kHz stereo, ~34 s): sung vocal + backing
* demo_song.json     summary (title, length, key, tempo, voice, loudness) plus sections, chords and every sung
                     note with its time (no run times in it, so a re-render gives the same file)
* demo_vocals.xml    the vocal line as one festival singing-mode score (what the voice sings)
* demo_backing.mid   the backing exactly as FluidSynth rendered it

score.json and LICENSE.md are hand-written. The render is deterministic (same samples with the same
festival/fluidsynth/soundfont versions); the MP3 is encoded with ffmpeg's bit-exact flags.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import songgen  # noqa: E402

MAX_BYTES = 600 * 1024


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Minimal RGB PNG writer (no imaging library needed)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def spectrogram_rgb(x: np.ndarray, sr: int, fmax: float = 11025.0, height: int = 220) -> np.ndarray:
    from scipy.signal import stft

    f, _, z = stft(x, sr, nperseg=2048, noverlap=2048 - sr // 100)
    s = 20 * np.log10(np.abs(z[f <= fmax]) + 1e-9)
    s = np.clip((s - (s.max() - 80)) / 80, 0, 1)[::-1]
    s = s[np.linspace(0, s.shape[0] - 1, height).astype(int)]
    r, g = np.clip(3 * s - 1, 0, 1), np.clip(3 * s - 2, 0, 1) * 0.8 + 0.2 * s
    b = np.clip(1.5 * s, 0, 1) * (1 - np.clip(3 * s - 2, 0, 1))
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def encode_mp3(wav: Path, dst: Path, title: str, bitrate: str = "128k") -> None:
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise SystemExit("ffmpeg is needed to encode the demo")
    tmp = dst.with_name(dst.stem + ".part" + dst.suffix)
    cmd = [
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(wav),
        "-map_metadata",
        "-1",
        "-c:a",
        "libmp3lame",
        "-b:a",
        bitrate,
        "-ar",
        str(songgen.SR),
        "-ac",
        "2",
        "-metadata",
        f"title={title}",
        "-metadata",
        "artist=the singer project",
        "-metadata",
        "copyright=CC0-1.0, see LICENSE.md",
        "-fflags",
        "+bitexact",
        "-flags:a",
        "+bitexact",
        str(tmp),
    ]
    subprocess.run(cmd, check=True)
    tmp.replace(dst)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Render the singer demo song.")
    ap.add_argument("--out", default=str(REPO / "singer" / "data" / "demo"))
    ap.add_argument("--png", default="/tmp/demo_spectrogram.png", help="spectrogram of mix/vocals/backing ('' = none)")
    ap.add_argument("--keep-stems", default="", help="also keep mix/vocals/instrumental WAVs in this folder")
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    score = songgen.load_score()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="singer-demo-") as tmp:
        res = songgen.make_song(
            tmp, seconds=None, seed=0, form="demo", vocal_gain_db=float(score.get("demo", {}).get("vocal_gain_db", 0.0))
        )
        render_s = time.perf_counter() - t0
        meta = res["meta"]
        song = out / "demo_song.mp3"
        encode_mp3(Path(res["mix"]), song, score.get("title", "singer demo"))
        shutil.copyfile(Path(tmp) / "backing.mid", out / "demo_backing.mid")
        shutil.copyfile(Path(tmp) / "vocals.xml", out / "demo_vocals.xml")

        from singer.audio import decode, read_wav
        from singer.loudness import true_peak_db
        from singer.mix import stem_loudness

        info = {
            "title": meta.get("title"),
            "file": song.name,
            "seconds": round(meta["seconds"], 3),
            "key": meta["key"],
            "tempo": meta["tempo"],
            "festival_voice": meta["voice"],
            "lufs": {n: round(stem_loudness(res[n]), 2) for n in ("mix", "vocals", "instrumental")},
            "rendered_by": "scripts/render_demo.py (benchmarks/songgen.py form=demo seed=0)",
            **{k: v for k, v in meta.items() if k not in ("timings", "title", "seconds", "key", "tempo", "voice")},
        }
        (out / "demo_song.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")

        vocals, sr = read_wav(res["vocals"])
        inst, _ = read_wav(res["instrumental"])
        mix, _ = read_wav(res["mix"])
        if args.keep_stems:
            keep = Path(args.keep_stems)
            keep.mkdir(parents=True, exist_ok=True)
            for name in ("mix", "vocals", "instrumental"):
                shutil.copyfile(res[name], keep / f"{name}.wav")
    decoded = decode(song, sample_rate=sr, channels=2)

    sung = np.max(np.abs(vocals), axis=0) > 10 ** (-50 / 20)
    rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))  # noqa: E731
    db = lambda v: 20 * np.log10(max(v, 1e-12))  # noqa: E731
    report = {
        "file": str(song),
        "bytes": song.stat().st_size,
        "seconds": round(mix.shape[1] / sr, 2),
        "decoded_seconds": round(decoded.shape[1] / sr, 2),
        "sample_rate": sr,
        "channels": mix.shape[0],
        "tempo": meta["tempo"],
        "key": meta["key"],
        "voice": meta["voice"],
        "notes": len(meta["notes"]),
        "lufs": info["lufs"],
        "mix_peak_dbfs": round(db(float(np.abs(mix).max())), 2),
        "mp3_peak_dbfs": round(db(float(np.abs(decoded).max())), 2),
        "mp3_true_peak_dbtp": round(float(true_peak_db(decoded)), 2),
        "clipped_samples_mp3": int(np.sum(np.abs(decoded) >= 0.999)),
        "vocal_vs_backing_db_where_sung": round(db(rms(vocals[:, sung])) - db(rms(inst[:, sung])), 2),
        "vocal_fraction_of_time": round(float(np.mean(sung)), 3),
        "render_s": round(render_s, 1),
        "timings": meta["timings"],
    }
    if args.png:
        rows = []
        for x in (mix, vocals, inst):
            rows += [
                spectrogram_rgb(x.mean(axis=0), sr),
                np.full((4, rows[0].shape[1] if rows else 1, 3), 255, np.uint8),
            ]
        width = rows[0].shape[1]
        rows = [r if r.shape[1] == width else np.full((4, width, 3), 255, np.uint8) for r in rows]
        write_png(Path(args.png), np.concatenate(rows[:-1], axis=0))
        report["png"] = args.png
    print(json.dumps(report, indent=1))
    problems = []
    if report["bytes"] > MAX_BYTES:
        problems.append(f"{song.name} is {report['bytes']} bytes (> {MAX_BYTES})")
    if report["mp3_peak_dbfs"] > -1.0:
        problems.append(f"decoded peak {report['mp3_peak_dbfs']} dBFS > -1 dBFS")
    if not 25 <= report["seconds"] <= 36:
        problems.append(f"length {report['seconds']} s outside 25-36 s")
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
