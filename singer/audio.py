"""Audio I/O. The only module that runs ffmpeg/ffprobe (through ffmpeg-python).

Internal convention: audio is a float32 numpy array shaped ``(channels, samples)`` plus a sample rate.
Intermediate files between workflow steps are float32 WAV written with soundfile (fast, lossless);
user-facing inputs are decoded and outputs encoded with ffmpeg.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EngineUnavailable, InputError, StepFailed

# Output formats: extension -> (ffmpeg format, codec args, content type)
FORMATS: dict[str, tuple[str, dict, str]] = {
    "wav": ("wav", {"acodec": "pcm_s16le"}, "audio/wav"),
    "flac": ("flac", {"acodec": "flac"}, "audio/flac"),
    "mp3": ("mp3", {"acodec": "libmp3lame", "audio_bitrate": "192k"}, "audio/mpeg"),
    # Voice-note ready: Opus in Ogg, mono 48 kHz, as WhatsApp/Telegram voice notes are.
    "ogg": ("ogg", {"acodec": "libopus", "audio_bitrate": "64k", "ac": 1, "ar": 48000}, "audio/ogg"),
    "opus": ("ogg", {"acodec": "libopus", "audio_bitrate": "64k", "ac": 1, "ar": 48000}, "audio/ogg"),
    "m4a": ("ipod", {"acodec": "aac", "audio_bitrate": "192k"}, "audio/mp4"),
}

AUDIO_EXTENSIONS = {
    ".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".webm", ".mka", ".wma", ".aif",
    ".aiff", ".mp4", ".mkv", ".mov", ".avi", ".3gp", ".amr",
}


@dataclass(frozen=True)
class AudioInfo:
    path: str
    duration: float
    sample_rate: int
    channels: int
    codec: str
    format: str
    has_video: bool
    tags: dict

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _ffmpeg_bin(name: str = "ffmpeg") -> str:
    exe = shutil.which(name)
    if not exe:
        raise EngineUnavailable(
            f"{name} is not installed.", hint="Install it (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg)."
        )
    return exe


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"Input file not found: {path}", hint="Check the path and try again.")
    if path.is_dir():
        raise InputError(f"Input is a folder, not an audio file: {path}", hint="Give a single audio or video file.")
    if path.stat().st_size == 0:
        raise InputError(f"Input file is empty (0 bytes): {path}", hint="The file was probably not fully downloaded or saved.")


_PROBED: dict[tuple, AudioInfo] = {}  # (path, inode, size, mtime) -> info: resolving, fetching and decoding a local
# file all ask, and each ffprobe run costs ~0.1 s (a voice note's whole conversion is ~1 s)


def probe(path: str | os.PathLike) -> AudioInfo:
    """Describe a media file; raises InputError if it has no decodable audio stream. Remembered while the file
    is unchanged (same inode, size and modification time)."""
    path = Path(path)
    _check_readable(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _PROBED:
        if len(_PROBED) >= 256:
            _PROBED.pop(next(iter(_PROBED)))
        _PROBED[key] = _probe(path)
    return _PROBED[key]


def _probe(path: Path) -> AudioInfo:
    import ffmpeg

    _ffmpeg_bin("ffprobe")
    try:
        meta = ffmpeg.probe(str(path))
    except ffmpeg.Error as e:
        detail = (e.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise InputError(
            f"Not a readable audio or video file: {path.name}",
            hint=f"ffprobe said: {detail[-1] if detail else 'unknown error'}. Convert it to mp3, wav or flac first.",
        ) from None
    streams = meta.get("streams", [])
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not audio:
        raise InputError(f"No audio stream in {path.name}", hint="The file has no sound track; give a file with audio.")
    a = audio[0]
    fmt = meta.get("format", {})
    duration = float(a.get("duration") or fmt.get("duration") or 0.0)
    tags = {k.lower(): v for k, v in (fmt.get("tags") or {}).items()}
    tags.update({k.lower(): v for k, v in (a.get("tags") or {}).items() if k.lower() not in tags})
    return AudioInfo(
        path=str(path),
        duration=duration,
        sample_rate=int(a.get("sample_rate") or 0),
        channels=int(a.get("channels") or 0),
        codec=a.get("codec_name", ""),
        format=fmt.get("format_name", ""),
        has_video=any(s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic") for s in streams),
        tags=tags,
    )


def decode(path: str | os.PathLike, sample_rate: int = 44100, channels: int = 2, max_duration: float | None = None,
           info: AudioInfo | None = None) -> np.ndarray:
    """Decode any media file ffmpeg understands to float32 ``(channels, samples)`` at ``sample_rate``.

    ``info`` is the file's :func:`probe` result when the caller already has it (saves a second ffprobe run)."""
    import ffmpeg

    path = Path(path)
    info = info or probe(path)
    if max_duration and info.duration > max_duration:
        raise InputError(
            f"{path.name} is {info.duration / 60:.1f} min long; the limit is {max_duration / 60:.1f} min.",
            hint="Trim the file, or raise SINGER_MAX_DURATION.",
        )
    stream = ffmpeg.input(str(path)).output("pipe:", format="f32le", acodec="pcm_f32le", ac=channels, ar=sample_rate, vn=None)
    cmd = [_ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error", *ffmpeg.get_args(stream)]
    proc = subprocess.run(cmd, capture_output=True)
    raw = proc.stdout
    if proc.returncode != 0 and not raw:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(f"Could not decode {path.name}", hint=(msg[-1] if msg else "ffmpeg failed") + ". Is the file complete?")
    data = np.frombuffer(raw[: len(raw) - len(raw) % (4 * channels)], dtype="<f4")
    if data.size == 0:
        raise InputError(f"{path.name} decoded to no audio at all.", hint="The file is truncated or has an empty audio track.")
    out = data.reshape(-1, channels).T.copy()
    np.nan_to_num(out, copy=False)
    return out


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an intermediate WAV written by :func:`write_wav`: float32 (channels, samples), rate."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), sr


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    audio = np.atleast_2d(audio)
    sf.write(str(path), audio.T, sample_rate, subtype="FLOAT", format="WAV")


def encode(src_wav: str | os.PathLike, dst: str | os.PathLike, fmt: str | None = None, tags: dict | None = None) -> Path:
    """Encode a WAV to ``dst`` in ``fmt`` (default: from dst's extension). Writes atomically."""
    import ffmpeg

    dst = Path(dst)
    fmt = (fmt or dst.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise InputError(f"Unknown output format '{fmt}'", hint=f"Choose one of: {', '.join(sorted(FORMATS))}.")
    container, args, _ = FORMATS[fmt]
    tmp = dst.with_name(f".{dst.name}.part")
    kwargs = dict(args)
    kwargs["format"] = container
    if tags:
        kwargs.update({f"metadata:g:{i}": f"{k}={v}" for i, (k, v) in enumerate(tags.items())})
    stream = ffmpeg.input(str(src_wav)).output(str(tmp), **kwargs)
    cmd = [_ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *ffmpeg.get_args(stream)]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise StepFailed(f"ffmpeg could not encode {fmt}: {proc.stderr.decode('utf-8', 'replace').strip()[-300:]}")
    os.replace(tmp, dst)
    return dst


def file_extension(fmt: str) -> str:
    """The file extension an output format is written with (opus goes in an .ogg file)."""
    return "ogg" if fmt == "opus" else fmt


def content_type(fmt: str) -> str:
    return FORMATS.get(fmt, ("", {}, "application/octet-stream"))[2]


def is_silent(audio: np.ndarray, threshold_db: float = -60.0) -> bool:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return peak <= 10 ** (threshold_db / 20)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited polyphase resampling (scipy)."""
    if sr_in == sr_out:
        return audio
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(audio, sr_out // g, sr_in // g, axis=-1).astype(np.float32)


def resample_long(x: np.ndarray, sr_in: int, sr_out: int, block_s: float = 20.0, context_s: float = 0.05) -> np.ndarray:
    """:func:`resample` of a long mono signal a block at a time (each with ``context_s`` of its neighbours, cut off
    again), into one float32 array: the same samples within float rounding, without full-length float64 copies."""
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    n_out = -(-len(x) * sr_out // sr_in)  # resample_poly's length: ceil(n * up / down)
    out = np.empty(n_out, dtype=np.float32)
    step = max(1, int(block_s * sr_in) // sr_in * sr_in)  # whole seconds: block edges land on exact output samples
    ctx = int(context_s * sr_in)
    for a in range(0, len(x), step):
        b = min(len(x), a + step)
        lo, hi = max(0, a - ctx), min(len(x), b + ctx)
        y = resample(x[lo:hi], sr_in, sr_out)
        o0, o1 = a * sr_out // sr_in, min(n_out, -(-b * sr_out // sr_in))
        skip = (a - lo) * sr_out // sr_in
        out[o0:o1] = y[skip:skip + o1 - o0]
    return out


def resample_file(src: Path, dst: Path, sr_out: int, n_out: int | None = None, block: int = 1 << 18) -> int:
    """Stream ``src`` to a float WAV at ``sr_out``; identical to one ``resample_poly`` over the whole file.

    Blocks start on multiples of the decimation factor and read enough context on both sides for the
    polyphase filter, so block edges leave no trace. Returns the number of output samples written.
    """
    import soundfile as sf
    from scipy.signal import resample_poly

    with sf.SoundFile(str(src)) as f:
        sr_in, channels, n = f.samplerate, f.channels, f.frames
        g = math.gcd(sr_in, sr_out)
        up, down = sr_out // g, sr_in // g
        total = -(-n * up // down) if n_out is None else n_out
        ctx = down * math.ceil((10 * max(up, down) / up + 2) / down)  # >= the filter's half length (input)
        block = down * max(1, block // down)
        written = 0
        with sf.SoundFile(str(dst), "w", sr_out, channels, subtype="FLOAT", format="WAV") as out:
            s = 0
            while written < total:
                lo = max(0, s - ctx)
                f.seek(min(lo, n))
                x = f.read(max(0, min(n, s + block + ctx) - lo), dtype="float32", always_2d=True)
                seg = np.zeros((block + 2 * ctx, channels), dtype=np.float32)
                seg[lo - (s - ctx) : lo - (s - ctx) + len(x)] = x
                y = resample_poly(seg, up, down, axis=0)
                first = ctx * up // down
                y = y[first : first + min(block * up // down, total - written)]
                out.write(y.astype(np.float32, copy=False))
                written += len(y)
                s += block
    return written


def sniff(path: str | os.PathLike) -> bool:
    """True when ffprobe finds an audio stream (content, not file name)."""
    try:
        probe(path)
        return True
    except InputError:
        return False


def pitch_shift(src: str | os.PathLike, dst: str | os.PathLike, semitones: float) -> Path:
    """Re-key ``src`` by ``semitones`` keeping tempo (ffmpeg's rubberband filter); output length == input length
    (padded/trimmed to the exact sample count in the same ffmpeg pass)."""
    import ffmpeg
    import soundfile as sf

    info = sf.info(str(src))
    ratio = 2.0 ** (semitones / 12.0)
    dst = Path(dst)
    stream = (ffmpeg.input(str(src))
              .filter("rubberband", pitch=ratio, pitchq="quality", channels="together")
              .filter("apad", whole_len=info.frames)
              .filter("atrim", end_sample=info.frames))
    stream = stream.output(str(dst), acodec="pcm_f32le", ar=info.samplerate, format="wav")
    cmd = [_ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *ffmpeg.get_args(stream)]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise EngineUnavailable("ffmpeg could not re-key the instrumental (rubberband filter).",
                                hint="Install an ffmpeg built with librubberband (Debian's is), or use --key 0. "
                                + proc.stderr.decode("utf-8", "replace").strip()[-200:])
    return dst
