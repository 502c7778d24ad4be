"""Builders for real-format test media (mp3, opus, video, broken files) from synthetic signals.

Tests may run ffmpeg directly to *make* fixtures; library code goes through singer.audio only.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from singer.audio import encode, write_wav
from tests.synth import make_synthetic_song


def song_wav(path: Path, seconds: float = 6.0, seed: int = 0) -> Path:
    mix, _, _ = make_synthetic_song(seconds, sr=44100, seed=seed)
    write_wav(path, mix, 44100)
    return path


def voice_wav(path: Path, seconds: float = 4.0, sr: int = 44100, channels: int = 1, seed: int = 0) -> Path:
    from singer.audio import resample

    _, vocals, _ = make_synthetic_song(seconds, sr=44100, seed=seed)
    v = resample(vocals[:channels], 44100, sr) if sr != 44100 else vocals[:channels]
    write_wav(path, v, sr)
    return path


def encoded(src_wav: Path, dst: Path, fmt: str | None = None) -> Path:
    return encode(src_wav, dst, fmt)


def video_with_audio(src_wav: Path, dst: Path) -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=10",
            "-i",
            str(src_wav),
            "-shortest",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            str(dst),
        ],
        check=True,
    )
    return dst


def truncated(src: Path, dst: Path, keep: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def silence_wav(path: Path, seconds: float = 3.0, sr: int = 44100) -> Path:
    write_wav(path, np.zeros((1, int(seconds * sr)), np.float32), sr)
    return path


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on a loopback port, quietly; yields the base URL (http://127.0.0.1:PORT)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(folder), **k)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()


def lying_mp3(path: Path, seconds: float = 1800.0, claims_frames: int = 25) -> Path:
    """An 8 kbps mono MP3 of ``seconds`` whose Xing/Info header claims ``claims_frames`` frames (25 frames at
    8 kHz: 1.8 s). ffprobe believes the header; the decoder decodes every frame."""
    import struct

    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"sine=f=300:d={seconds}",
            "-ac",
            "1",
            "-ar",
            "8000",
            "-b:a",
            "8k",
            str(path),
        ],
        check=True,
    )
    data = bytearray(path.read_bytes())
    at = max(data.find(b"Info"), data.find(b"Xing"))
    assert at > 0 and struct.unpack(">I", data[at + 4 : at + 8])[0] & 1, "no Xing/Info frame count to rewrite"
    data[at + 8 : at + 12] = struct.pack(">I", claims_frames)
    path.write_bytes(bytes(data))
    return path


def indirection_files(target: Path) -> dict[str, bytes]:
    """Small files whose demuxers open OTHER files or addresses, each naming ``target`` (a server file): what an
    attacker uploads to make ffmpeg read the server's disk."""
    t = str(target)
    return {
        "hls.mp3": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{t}\n#EXT-X-ENDLIST\n".encode(),
        "hls-file-proto.ogg": f"#EXTM3U\n#EXTINF:10,\nfile:{t}\n#EXT-X-ENDLIST\n".encode(),
        "hls-subfile.m4a": f"#EXTM3U\n#EXTINF:10,\nsubfile,,start,0,end,0,,:{t}\n#EXT-X-ENDLIST\n".encode(),
        "ffconcat.wav": f"ffconcat version 1.0\nfile '{t}'\n".encode(),
        "dash.webm": (
            f'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
            f'mediaPresentationDuration="PT10S"><Period><AdaptationSet mimeType="audio/mp4"><Representation '
            f'id="a" bandwidth="1"><BaseURL>file:{t}</BaseURL></Representation></AdaptationSet></Period>'
            f"</MPD>"
        ).encode(),
        "sdp.flac": b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 5004 RTP/AVP 0\r\n",
    }
