"""Figures a report shows for one audio file: loudness (BS.1770 integrated, true peak), level, duration; a pitch
track; a small encoded copy for the page's audio player."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import audio
from ..loudness import integrated_loudness, true_peak_db

FRAME_MS = 10.0


@dataclass
class Clip:
    path: Path
    x: np.ndarray  # float32 (channels, samples), at most 2 channels
    sr: int
    codec: str

    @property
    def seconds(self) -> float:
        return self.x.shape[1] / self.sr if self.sr else 0.0


def load(path: Path) -> Clip:
    info = audio.probe(path)
    channels = max(1, min(2, info.channels or 1))
    x = audio.decode(path, int(info.sample_rate or 44100), channels, info=info)
    return Clip(path, x, int(info.sample_rate or 44100), info.codec)


def figures(clip: Clip) -> dict:
    """Loudness and level figures (LUFS, dBTP, dBFS)."""
    x = clip.x
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    lufs = integrated_loudness(x, clip.sr) if clip.seconds >= 0.4 else float("-inf")
    return {
        "duration_s": round(clip.seconds, 2),
        "sample_rate": clip.sr,
        "channels": int(x.shape[0]),
        "codec": clip.codec,
        "integrated_lufs": _round(lufs),
        "true_peak_dbtp": _round(true_peak_db(x)),
        "rms_dbfs": _round(20 * np.log10(rms) if rms > 0 else float("-inf")),
    }


def _round(v: float) -> float | None:
    return round(float(v), 1) if np.isfinite(v) else None


def pitch(clip: Clip) -> np.ndarray:
    """f0 in Hz per 10 ms frame (0 where unvoiced), WORLD's DIO + StoneMask on a 16 kHz downmix."""
    from ..engines.converters.world.vocoder import pyworld as _pyworld

    pyworld = _pyworld()
    x = audio.resample(clip.x.mean(axis=0, keepdims=True), clip.sr, 16000)[0].astype(np.float64)
    if len(x) < 1600:
        return np.zeros(0)
    f0, t = pyworld.dio(x, 16000, f0_floor=60.0, f0_ceil=1100.0, frame_period=FRAME_MS)
    return pyworld.stonemask(x, f0, t, 16000)


def preview(path: Path, fmt: str | None = None) -> tuple[bytes, str]:
    """Bytes and MIME type for an <audio> player: the file itself when browsers play it and it is small, else an
    MP3 (128 kbit/s) made by ffmpeg."""
    ext = (fmt or path.suffix.lstrip(".")).lower()
    if ext in audio.FORMATS and ext != "wav" and path.stat().st_size < 12 << 20:
        return path.read_bytes(), audio.content_type(ext)
    cmd = [
        audio.ffmpeg_bin(),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        str(path),
        "-vn",
        "-ac",
        "2",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "128k",
        "-f",
        "mp3",
        "pipe:",
    ]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        return b"", ""
    return proc.stdout, "audio/mpeg"
