"""Audio I/O. The only module that runs ffmpeg/ffprobe (through ffmpeg-python).

Internal convention: audio is a float32 numpy array shaped ``(channels, samples)`` plus a sample rate.
Intermediate files between workflow steps are float32 WAV written with soundfile (fast, lossless);
user-facing inputs are decoded and outputs encoded with ffmpeg.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EngineUnavailable, InputError, StepFailed
from .redact import redact_text

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
    ".wav",
    ".flac",
    ".mp3",
    ".m4a",
    ".aac",
    ".ogg",
    ".oga",
    ".opus",
    ".webm",
    ".mka",
    ".wma",
    ".aif",
    ".aiff",
    ".mp4",
    ".mkv",
    ".mov",
    ".avi",
    ".3gp",
    ".amr",
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
            f"{name} is not installed.",
            hint="Install it (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg).",
        )
    return exe


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"Input file not found: {path}", hint="Check the path and try again.")
    if path.is_dir():
        raise InputError(f"Input is a folder, not an audio file: {path}", hint="Give a single audio or video file.")
    if path.stat().st_size == 0:
        raise InputError(
            f"Input file is empty (0 bytes): {path}", hint="The file was probably not fully downloaded or saved."
        )


# Media lies: only these demuxers (ffmpeg names) ever read an input. Playlists and indirection formats (hls, dash,
# concat, ffconcat, image2 patterns, webm_dash_manifest, ...) open other files or URLs and are never on it; ffmpeg
# and ffprobe also run with a protocol whitelist of "file" (and "pipe"), so no demuxer can reach data:, subfile:,
# concat:, http: or any other protocol.
DEMUXERS = (
    "aac",
    "ac3",
    "aiff",
    "amr",
    "amrnb",
    "amrwb",
    "ape",
    "asf",
    "au",
    "avi",
    "caf",
    "dsf",
    "dts",
    "dtshd",
    "eac3",
    "flac",
    "flv",
    "loas",
    "matroska",
    "mlp",
    "mov",
    "mp3",
    "mpc",
    "mpc8",
    "mpeg",
    "mpegts",
    "ogg",
    "oma",
    "rm",
    "shn",
    "tak",
    "truehd",
    "tta",
    "voc",
    "w64",
    "wav",
    "wv",
    "xwma",
)
_SAFE_INPUT = ["-protocol_whitelist", "file,pipe", "-format_whitelist", ",".join(DEMUXERS)]
_FORMAT_HINT = "Send a plain audio or video file (mp3, m4a, ogg/opus, wav, flac, webm, mp4...)."
PROBE_TIMEOUT = 60.0

_PROBED: dict[tuple, AudioInfo] = {}  # (path, inode, size, mtime) -> info: resolving, fetching and decoding a local
# file all ask, and each ffprobe run costs ~0.1 s (a voice note's whole conversion is ~1 s)


def probe(path: str | os.PathLike) -> AudioInfo:
    """Describe a media file; raises InputError if it has no decodable audio stream or its container is not on the
    allow-list (:data:`DEMUXERS`). Remembered while the file is unchanged (same inode, size and modification time).
    ``duration`` is 0.0 when the file does not say: treat that as unknown, never as short."""
    path = Path(path)
    _check_readable(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _PROBED:
        if len(_PROBED) >= 256:
            _PROBED.pop(next(iter(_PROBED)))
        _PROBED[key] = _probe(path)
    return _PROBED[key]


def _file_url(path: Path) -> str:
    """``path`` as ffmpeg's file protocol names it: a name like ``data:x`` or ``subfile,...`` stays a file name."""
    return "file:" + str(path.resolve())


def _tool_message(stderr: bytes, path: Path) -> str:
    """The last line ffmpeg/ffprobe said, with the server's path of the file replaced by its name."""
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    text = lines[-1] if lines else "unknown error"
    for form in (_file_url(path), str(path.resolve()), str(path)):
        text = text.replace(form, path.name)
    return redact_text(text)  # any other absolute path: its last component only


def _probe(path: Path) -> AudioInfo:
    exe = _ffmpeg_bin("ffprobe")
    cmd = [exe, "-v", "error", *_SAFE_INPUT, "-show_format", "-show_streams", "-of", "json", _file_url(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise InputError(f"Reading {path.name} took over {PROBE_TIMEOUT:.0f} s.", hint=_FORMAT_HINT) from None
    if proc.returncode != 0:
        said = _tool_message(proc.stderr, path)
        refused = re.search(r"\[(\w+) @[^\]]*\] Format not on whitelist", proc.stderr.decode("utf-8", "replace"))
        if refused:
            raise InputError(
                f"{path.name} is a '{refused.group(1)}' file (a playlist, or a reference to other files "
                "or addresses), which singer does not read.",
                hint=_FORMAT_HINT,
            )
        raise InputError(
            f"Not a readable audio or video file: {path.name}",
            hint=f"ffprobe said: {said}. Convert it to mp3, wav or flac first.",
        )
    try:
        meta = json.loads(proc.stdout or b"{}")
    except ValueError:
        raise InputError(f"Not a readable audio or video file: {path.name}", hint=_FORMAT_HINT) from None
    streams = meta.get("streams", [])
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not audio:
        raise InputError(f"No audio stream in {path.name}", hint="The file has no sound track; give a file with audio.")
    a = audio[0]
    fmt = meta.get("format", {})
    tags = {k.lower(): v for k, v in (fmt.get("tags") or {}).items()}
    tags.update({k.lower(): v for k, v in (a.get("tags") or {}).items() if k.lower() not in tags})
    return AudioInfo(
        path=str(path),
        duration=_seconds(a.get("duration")) or _seconds(fmt.get("duration")),
        sample_rate=int(_seconds(a.get("sample_rate"))),
        channels=int(_seconds(a.get("channels"))),
        codec=str(a.get("codec_name", "")),
        format=str(fmt.get("format_name", "")),
        has_video=any(
            s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic") for s in streams
        ),
        tags=tags,
    )


def _seconds(value) -> float:
    """A number ffprobe printed, or 0.0 when it is missing, junk, negative or not finite ("unknown")."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return 0.0
    return x if math.isfinite(x) and x > 0 else 0.0


def demuxer(info: AudioInfo) -> str:
    """The allow-listed demuxer that read ``info``'s file (forced when decoding it: no second guess by content)."""
    for name in info.format.split(","):
        if name in DEMUXERS:
            return name
    raise InputError(
        f"{Path(info.path).name} is a '{info.format}' file, which singer does not read.", hint=_FORMAT_HINT
    )


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
    limit = int((max_duration + LIMIT_GRACE_S) * sample_rate) if max_duration else None
    if limit is not None and info.duration > max_duration + LIMIT_GRACE_S:
        raise _too_long(path, info.duration, max_duration)
    # room for what the header announces (+5 % and 10 s for headers that round); the limit when there is one
    cap = limit + 1 if limit is not None else int((info.duration * 1.05 + 10) * sample_rate)
    cmd = [
        _ffmpeg_bin(),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        *_SAFE_INPUT,
        "-f",
        demuxer(info),
        "-i",
        _file_url(path),
        "-vn",
        "-sn",
        "-dn",
        "-ac",
        str(channels),
        "-ar",
        str(sample_rate),
    ]
    if limit is not None:
        cmd += ["-t", f"{max_duration + 2 * LIMIT_GRACE_S:.3f}"]  # past the limit, so "longer" can be seen
    cmd += ["-f", "f32le", "-acodec", "pcm_f32le", "pipe:"]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        try:
            out, n = _read_samples(proc.stdout, channels, cap, grow=limit is None)
        finally:
            proc.stdout.close()
            over = limit is not None and n > limit
            if over and proc.poll() is None:
                proc.kill()
            code = proc.wait()
        if over:
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
        out[o0:o1] = y[skip : skip + o1 - o0]
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
    stream = (
        ffmpeg.input(str(src))
        .filter("rubberband", pitch=ratio, pitchq="quality", channels="together")
        .filter("apad", whole_len=info.frames)
        .filter("atrim", end_sample=info.frames)
    )
    stream = stream.output(str(dst), acodec="pcm_f32le", ar=info.samplerate, format="wav")
    cmd = [_ffmpeg_bin(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *ffmpeg.get_args(stream)]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise EngineUnavailable(
            "ffmpeg could not re-key the instrumental (rubberband filter).",
            hint="Install an ffmpeg built with librubberband (Debian's is), or use --key 0. "
            + proc.stderr.decode("utf-8", "replace").strip()[-200:],
        )
    return dst
