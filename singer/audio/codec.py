"""Decode media to float32 samples and encode WAV to the output formats, through ffmpeg (run with the demuxer
and protocol allow-lists of :mod:`.probe`); WAV intermediates through soundfile."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EngineUnavailable, InputError, StepFailed
from ..files import atomic_path
from .probe import _SAFE_INPUT, AudioInfo, _file_url, _tool_message, demuxer, ffmpeg_bin, probe

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


CHUNK_FRAMES = 1 << 16
LIMIT_GRACE_S = 1.0


def decode(
    path: str | os.PathLike,
    sample_rate: int = 44100,
    channels: int = 2,
    max_duration: float | None = None,
    info: AudioInfo | None = None,
) -> np.ndarray:
    """Decode a media file to float32 ``(channels, samples)`` at ``sample_rate``.

    Only allow-listed containers are read, with the probed demuxer forced. With ``max_duration`` the DECODED length
    is what counts, not what the header claims: ffmpeg stops just past the limit, samples are counted as they
    arrive, and a longer input raises InputError; memory never exceeds the limit's worth of samples (the buffer is
    reserved up front and only what is written is ever resident). ``info``: the file's :func:`probe` result when the
    caller already has it (saves a second ffprobe run)."""
    path = Path(path)
    info = info or probe(path)
    # a file of exactly the limit's length decodes a few ms longer (encoder delay, padding): 1 s of grace
    max_duration = max_duration or None  # 0 or None: no limit
    limit = int((max_duration + LIMIT_GRACE_S) * sample_rate) if max_duration is not None else None
    if max_duration is not None and info.duration > max_duration + LIMIT_GRACE_S:
        raise _too_long(path, info.duration, max_duration)
    # room for what the header announces (+5 % and 10 s for headers that round); the limit when there is one
    cap = limit + 1 if limit is not None else int((info.duration * 1.05 + 10) * sample_rate)
    cmd = _decode_cmd(path, info, sample_rate, channels, max_duration)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        try:
            assert proc.stdout is not None  # stdout=PIPE
            out, n = _read_samples(proc.stdout, channels, cap, grow=limit is None)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            over = limit is not None and n > limit
            if over and proc.poll() is None:
                proc.kill()
            code = proc.wait()
        if over and max_duration is not None:
            raise _too_long(path, None, max_duration)
        err.seek(0)
        said = err.read()
    if code != 0 and n == 0:
        raise InputError(f"Could not decode {path.name}", hint=_tool_message(said, path) + ". Is the file complete?")
    if n == 0:
        raise InputError(
            f"{path.name} decoded to no audio at all.", hint="The file is truncated or has an empty audio track."
        )
    return out[:, :n]  # rows stay contiguous; the reserved tail was never touched


def _decode_cmd(path: Path, info: AudioInfo, sample_rate: int, channels: int, max_duration: float | None) -> list:
    """ffmpeg reading ``path`` with the probed demuxer forced, writing interleaved float32 to stdout."""
    cmd = [ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error", *_SAFE_INPUT]
    cmd += ["-f", demuxer(info), "-i", _file_url(path), "-vn", "-sn", "-dn"]
    cmd += ["-ac", str(channels), "-ar", str(sample_rate)]
    if max_duration is not None:
        cmd += ["-t", f"{max_duration + 2 * LIMIT_GRACE_S:.3f}"]  # past the limit, so "longer" can be seen
    return cmd + ["-f", "f32le", "-acodec", "pcm_f32le", "pipe:"]


def _too_long(path: Path, seconds: float | None, limit: float) -> InputError:
    if seconds:
        return InputError(
            f"{path.name} is {_span(seconds)} long; the limit is {_span(limit)}.",
            hint="Send a shorter file (or, as the operator, raise SINGER_MAX_DURATION / SINGER_MAX_UPLOAD_DURATION).",
        )
    return InputError(
        f"{path.name} decodes to more than the limit of {_span(limit)} (its header claims less).",
        hint="Send a shorter file (or, as the operator, raise SINGER_MAX_DURATION / SINGER_MAX_UPLOAD_DURATION).",
    )


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _read_samples(pipe, channels: int, cap: int, grow: bool) -> tuple[np.ndarray, int]:
    """Interleaved float32 frames from ``pipe`` into a ``(channels, cap)`` array, a chunk at a time; stops after
    ``cap`` frames (the caller sees n == cap + ... as "over the limit") unless ``grow`` lets the array grow."""
    out = np.empty((channels, max(cap, 1)), dtype=np.float32)
    frame = 4 * channels
    buf = bytearray(CHUNK_FRAMES * frame)
    view = memoryview(buf)
    have, n = 0, 0
    while True:
        got = pipe.readinto(view[have:])
        if not got:
            break
        have += got
        k = have // frame
        if k == 0:
            continue
        if n + k > out.shape[1]:
            if not grow:
                return out, n + k  # over the limit: the caller stops ffmpeg
            bigger = np.empty((channels, max(n + k, int(out.shape[1] * 1.5))), dtype=np.float32)
            bigger[:, :n] = out[:, :n]
            out = bigger
        chunk = np.frombuffer(buf, dtype="<f4", count=k * channels)
        np.nan_to_num(chunk, copy=False)  # here, a chunk at a time: no full-length temporaries later
        out[:, n : n + k] = chunk.reshape(k, channels).T
        n += k
        rest = have - k * frame
        buf[:rest] = buf[k * frame : have]
        have = rest
    return out, n


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an intermediate WAV written by :func:`write_wav`: float32 (channels, samples), rate."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), sr


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    audio = np.atleast_2d(audio)
    sf.write(str(path), audio.T, sample_rate, subtype="FLOAT", format="WAV")


def encode(
    src_wav: str | os.PathLike, dst: str | os.PathLike, fmt: str | None = None, tags: dict | None = None
) -> Path:
    """Encode a WAV to ``dst`` in ``fmt`` (default: from dst's extension). Writes atomically."""
    import ffmpeg

    dst = Path(dst)
    fmt = (fmt or dst.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise InputError(f"Unknown output format '{fmt}'", hint=f"Choose one of: {', '.join(sorted(FORMATS))}.")
    container, args, _ = FORMATS[fmt]
    kwargs = dict(args)
    kwargs["format"] = container
    if tags:
        kwargs.update({f"metadata:g:{i}": f"{k}={v}" for i, (k, v) in enumerate(tags.items())})
    with atomic_path(dst, "part") as tmp:
        stream = ffmpeg.input(str(src_wav)).output(str(tmp), **kwargs)
        cmd = [ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *ffmpeg.get_args(stream)]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            said = proc.stderr.decode("utf-8", "replace").strip()[-300:]
            raise StepFailed(f"ffmpeg could not encode {fmt}: {said}")
    return dst


def file_extension(fmt: str) -> str:
    """The file extension an output format is written with (opus goes in an .ogg file)."""
    return "ogg" if fmt == "opus" else fmt


def content_type(fmt: str) -> str:
    return FORMATS.get(fmt, ("", {}, "application/octet-stream"))[2]


def is_silent(audio: np.ndarray, threshold_db: float = -60.0) -> bool:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return peak <= 10 ** (threshold_db / 20)


def pitch_shift(src: str | os.PathLike, dst: str | os.PathLike, semitones: float) -> Path:
    """Re-key ``src`` by ``semitones`` keeping tempo (ffmpeg's rubberband filter); output length == input length
    (padded/trimmed to the exact sample count in the same ffmpeg pass)."""
    import ffmpeg
    import soundfile as sf

    info = sf.info(str(src))
    ratio = 2.0 ** (semitones / 12.0)
    dst = Path(dst)
    stream = (
        ffmpeg.input(str(src))
        .filter("rubberband", pitch=ratio, pitchq="quality", channels="together")
        .filter("apad", whole_len=info.frames)
        .filter("atrim", end_sample=info.frames)
    )
    stream = stream.output(str(dst), acodec="pcm_f32le", ar=info.samplerate, format="wav")
    cmd = [ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *ffmpeg.get_args(stream)]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise EngineUnavailable(
            "ffmpeg could not re-key the instrumental (rubberband filter).",
            hint="Install an ffmpeg built with librubberband (Debian's is), or use --key 0. "
            + proc.stderr.decode("utf-8", "replace").strip()[-200:],
        )
    return dst


def stem_info(src: Path, engine: str, channels: tuple[int, ...] = (1, 2)) -> Any:
    """soundfile's info of a WAV stem an engine is given; InputError when it is unreadable, empty, or has a
    channel count outside ``channels`` (engines take what the decode step writes)."""
    import soundfile as sf

    try:
        info = sf.info(str(src))
    except (RuntimeError, sf.LibsndfileError) as e:
        raise InputError(
            f"Cannot read {src.name} as WAV: {e}", hint="Decode the input with singer.audio first."
        ) from None
    if info.frames == 0:
        raise InputError(f"{src.name} contains no audio.", hint="Give a non-empty recording.")
    if info.channels not in channels:
        raise InputError(
            f"{src.name} has {info.channels} channels; the {engine} engine takes mono or stereo.",
            hint="Decode it to stereo first (singer.audio.decode(..., channels=2)).",
        )
    return info
