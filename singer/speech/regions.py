"""Where the voice is in a voice note.

:func:`speech_span` finds the first and the last sound of a recording, so the voice-note workflow can cut the
silence before and after it. Two detectors vote, and the span runs from the first region either found to the last:

* silero-vad on a 16 kHz mono copy: good at speech, but deaf to much singing and to tonal sounds;
* an energy gate on 50 ms frames: within ``range_db`` of the loudest frame, above an absolute floor, and clearly
  above the recording's own noise floor (so a hiss under the whole note does not count as sound).

Doubt errs towards keeping: when the voice stands less than about 12 dB above a steady hiss, the gate hears sound
everywhere and nothing is cut; when neither detector finds anything, nothing is cut either.

The silero model (the ONNX file shipped in the ``silero-vad`` wheel) is run with onnxruntime directly, never
through the ``silero_vad`` package: importing that package calls ``torch.set_num_threads(1)``, which would leave
every torch engine later in the same process on one thread (and ``torch.set_num_threads`` upsets MKL; see the
spleeter engine). Nothing here imports torch.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import EngineUnavailable

VAD_RATE = 16000
VAD_FRAME = 512  # samples per silero frame at 16 kHz (32 ms)
VAD_CONTEXT = 64  # samples of the previous frame each frame sees
VAD_BLOCK = 512  # frames per ONNX call (~16 s)
VAD_MODEL = "silero_vad_16k_sequence.onnx"


class TrimParams(BaseModel):
    """Parameters of the ``trim`` step."""

    model_config = ConfigDict(extra="forbid")

    pad_s: float = Field(0.15, ge=0.0, le=2.0, description="Silence kept before the first and after the last sound.")
    min_silence_s: float = Field(
        0.25, ge=0.0, le=10.0, description="A lead or tail shorter than this (after padding) is not cut."
    )
    vad: bool = Field(True, description="Use silero-vad with the energy gate; false: the energy gate alone.")


# ------------------------------------------------------------------------------------------------ detectors


@lru_cache(maxsize=1)
def _vad_session():
    """The silero-vad ONNX session, loaded on first use and kept for the life of the process."""
    spec = importlib.util.find_spec("silero_vad")  # finds the package without running its __init__
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = next((Path(f) / "data" / VAD_MODEL for f in folders if (Path(f) / "data" / VAD_MODEL).is_file()), None)
    if path is None:
        raise EngineUnavailable(
            "silero-vad (the speech detector for trimming voice notes) is not installed.",
            hint="pip install silero-vad==6.2.3, or trim by loudness alone: --set trim.vad=false",
        )
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # a small model: one thread, leaving the cores to the converter
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def speech_probabilities(mono16k: np.ndarray) -> np.ndarray:
    """silero-vad's speech probability for each 32 ms frame (512 samples) of 16 kHz mono audio."""
    session = _vad_session()
    x = np.asarray(mono16k, dtype=np.float32).reshape(-1)
    n_frames = -(-x.size // VAD_FRAME)
    h = np.zeros((1, 1, 128), np.float32)
    c = np.zeros((1, 1, 128), np.float32)
    context = np.zeros(VAD_CONTEXT, np.float32)
    probs = []
    for f0 in range(0, n_frames, VAD_BLOCK):
        f1 = min(n_frames, f0 + VAD_BLOCK)
        frames = np.zeros((f1 - f0, VAD_FRAME), np.float32)
        chunk = x[f0 * VAD_FRAME : f1 * VAD_FRAME]
        frames.reshape(-1)[: chunk.size] = chunk
        contexts = np.concatenate([context[None], frames[:-1, -VAD_CONTEXT:]])
        p, h, c = session.run(
            ["speech_probs", "hn", "cn"], {"input": np.concatenate([contexts, frames], axis=1), "h": h, "c": c}
        )
        probs.append(np.asarray(p, np.float32).reshape(-1))
        context = frames[-1, -VAD_CONTEXT:].copy()
    return np.concatenate(probs) if probs else np.zeros(0, np.float32)


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _tidy(regions: list[tuple[int, int]], min_gap: int, min_len: int) -> list[tuple[int, int]]:
    """Join regions closer than ``min_gap``, then drop those shorter than ``min_len``."""
    joined: list[list[int]] = []
    for a, b in sorted(regions):
        if joined and a - joined[-1][1] < min_gap:
            joined[-1][1] = max(joined[-1][1], b)
        else:
            joined.append([a, b])
    return [(a, b) for a, b in joined if b - a >= min_len]


def vad_regions(x: np.ndarray, sr: int, threshold: float = 0.5, release: float = 0.35) -> list[tuple[int, int]]:
    """Speech regions (sample pairs at ``sr``) by silero-vad: frames from a probability >= ``threshold`` on, held
    while it stays >= ``release``; gaps under 150 ms joined, regions under 200 ms dropped."""
    from ..audio import resample_long

    mono = np.asarray(x, np.float32)
    if mono.ndim == 2:
        mono = mono[0] if mono.shape[0] == 1 else mono.mean(axis=0)
    probs = speech_probabilities(resample_long(mono, sr, VAD_RATE))
    held = probs >= release
    regions = [(a, b) for a, b in _runs(held) if probs[a:b].max() >= threshold]
    frame_s = VAD_FRAME / VAD_RATE
    regions = _tidy(regions, min_gap=math.ceil(0.15 / frame_s), min_len=math.ceil(0.2 / frame_s))
    n = mono.shape[-1]
    scale = VAD_FRAME * sr / VAD_RATE
    return [(int(a * scale), min(n, int(math.ceil(b * scale)))) for a, b in regions]


def frame_levels(x: np.ndarray, sr: int, win_s: float = 0.05, hop_s: float = 0.01) -> tuple[np.ndarray, int, int]:
    """Level (dB re full scale, mean over channels) of ``win_s`` frames every ``hop_s``: (levels, hop, win)."""
    x = np.atleast_2d(np.asarray(x, np.float32))
    hop = max(1, round(hop_s * sr))
    k = max(1, round(win_s / hop_s))
    n = x.shape[-1]
    n_hops = -(-n // hop)
    hop_power = np.zeros(n_hops, np.float64)
    step = 1000 * hop  # ten seconds at a time: no full-length temporaries
    for a in range(0, n, step):
        blk = x[:, a : a + step]
        if blk.shape[-1] % hop:
            blk = np.pad(blk, ((0, 0), (0, hop - blk.shape[-1] % hop)))
        hop_power[a // hop : a // hop + blk.shape[-1] // hop] = (
            np.square(blk).reshape(x.shape[0], -1, hop).mean(axis=(0, 2))
        )
    if n_hops >= k:
        csum = np.concatenate([[0.0], np.cumsum(hop_power)])
        win_power = (csum[k:] - csum[:-k]) / k
    else:
        win_power = np.array([hop_power.mean()])
    return 10 * np.log10(win_power + 1e-20), hop, k * hop


def energy_regions(
    x: np.ndarray,
    sr: int,
    range_db: float = 40.0,
    floor_dbfs: float = -60.0,
    margin_db: float = 10.0,
    headroom_db: float = 12.0,
) -> list[tuple[int, int]]:
    """Sound regions (sample pairs) by level: 50 ms frames above ``floor_dbfs``, within ``range_db`` of the loudest
    frame and ``margin_db`` above the noise floor (the 10th percentile of the frame levels). The threshold never
    rises above ``headroom_db`` under the loudest frame: in a recording without quiet parts (a sung line from end
    to end, or steady noise) the 10th percentile is no noise floor, and everything near the peak counts as sound."""
    levels, hop, win = frame_levels(x, sr)
    peak = float(levels.max())
    if peak < floor_dbfs:
        return []
    relative = max(peak - range_db, float(np.percentile(levels, 10)) + margin_db)
    threshold = max(floor_dbfs, min(relative, peak - headroom_db))
    n = np.atleast_2d(x).shape[-1]
    regions = [(a * hop, min(n, (b - 1) * hop + win)) for a, b in _runs(levels >= threshold)]
    return _tidy(regions, min_gap=int(0.2 * sr), min_len=int(0.1 * sr))


def speech_regions(x: np.ndarray, sr: int, vad: bool = True) -> tuple[list[tuple[int, int]], str]:
    """The union of the silero-vad and energy-gate regions, and which of them found any: "vad", "energy",
    "vad+energy" or "none"."""
    found_vad = vad_regions(x, sr) if vad else []
    found_energy = energy_regions(x, sr)
    method = "+".join(name for name, r in (("vad", found_vad), ("energy", found_energy)) if r) or "none"
    return _tidy(found_vad + found_energy, min_gap=1, min_len=0), method


def speech_span(
    x: np.ndarray, sr: int, pad_s: float = 0.15, min_silence_s: float = 0.25, min_keep_s: float = 0.3, vad: bool = True
) -> tuple[int, int, dict]:
    """``(start, end, info)``: the samples ``x[..., start:end]`` to keep, from ``pad_s`` before the first sound to
    ``pad_s`` after the last. A lead or tail shorter than ``min_silence_s`` is kept; at least ``min_keep_s`` is
    kept; when nothing is found the whole recording is. ``x`` is (channels, samples) or (samples,).

    ``info``: lead_trimmed_s, tail_trimmed_s, speech_s (seconds of sound found), method ("vad", "energy",
    "vad+energy" or "none")."""
    n = np.asarray(x).shape[-1]
    regions, method = speech_regions(x, sr, vad=vad) if n else ([], "none")
    if regions:
        pad, keep = int(round(pad_s * sr)), min(n, int(round(min_keep_s * sr)))
        start, end = max(0, regions[0][0] - pad), min(n, regions[-1][1] + pad)
        if start < min_silence_s * sr:
            start = 0
        if n - end < min_silence_s * sr:
            end = n
        if end - start < keep:  # widen around the middle, inside the recording
            start = min(max(0, (start + end - keep) // 2), n - keep)
            end = start + keep
    else:
        start, end = 0, n
    info = {
        "lead_trimmed_s": round(start / sr, 3),
        "tail_trimmed_s": round((n - end) / sr, 3),
        "speech_s": round(sum(b - a for a, b in regions) / sr, 3),
        "method": method,
    }
    return start, end, info


# ------------------------------------------------------------------------------------------------ denoising
