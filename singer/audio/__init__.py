"""Audio I/O. The only package that runs ffmpeg/ffprobe.

Internal convention: audio is a float32 numpy array shaped ``(channels, samples)`` plus a sample rate.
Intermediate files between workflow steps are float32 WAV written with soundfile (fast, lossless);
user-facing inputs are decoded and outputs encoded with ffmpeg.

  probe.py     what a file is (ffprobe, demuxer and protocol allow-lists), :class:`AudioInfo`
  codec.py     decode to samples (length held to a limit by decoded samples), encode, WAV read/write, re-key
  resample.py  polyphase resampling of arrays, long signals and files
"""

from .codec import (
    CHUNK_FRAMES,
    FORMATS,
    LIMIT_GRACE_S,
    content_type,
    decode,
    encode,
    file_extension,
    is_silent,
    pitch_shift,
    read_wav,
    stem_info,
    write_wav,
)
from .probe import AUDIO_EXTENSIONS, DEMUXERS, PROBE_TIMEOUT, AudioInfo, demuxer, ffmpeg_bin, probe, sniff
from .resample import resample, resample_file, resample_long

__all__ = [
    "AUDIO_EXTENSIONS",
    "CHUNK_FRAMES",
    "DEMUXERS",
    "FORMATS",
    "LIMIT_GRACE_S",
    "PROBE_TIMEOUT",
    "AudioInfo",
    "content_type",
    "decode",
    "demuxer",
    "encode",
    "ffmpeg_bin",
    "file_extension",
    "is_silent",
    "pitch_shift",
    "probe",
    "read_wav",
    "resample",
    "resample_file",
    "resample_long",
    "sniff",
    "stem_info",
    "write_wav",
]
