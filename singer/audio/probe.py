"""What a media file is, read by ffprobe with allow-lists: only known audio/video demuxers, only the file and pipe
protocols, so a playlist or a reference to other files or addresses is refused before anything is read."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import EngineUnavailable, InputError
from ..redact import redact_text

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


def ffmpeg_bin(name: str = "ffmpeg") -> str:
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
    exe = ffmpeg_bin("ffprobe")
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


def sniff(path: str | os.PathLike) -> bool:
    """True when ffprobe finds an audio stream (content, not file name)."""
    try:
        probe(path)
        return True
    except InputError:
        return False
