"""Effects on WAV files, streamed in blocks so long songs need little memory.

``reverb`` renders the wet signal of a plate-like reverb (no dry signal): the song's own reverb is taken off the
lead before conversion (the de-reverb stage; it carries the original singer's voice), and the converted lead gets
this one instead, mixed at the loudness of the separated reverb so the song keeps its wet/dry balance.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

BLOCK_S = 10.0


class ReverbParams(BaseModel):
    rt60: float = Field(1.2, ge=0.1, le=6.0, description="Decay time to -60 dB, seconds.")
    predelay_ms: float = Field(20.0, ge=0.0, le=200.0, description="Gap before the reverb starts.")
    damping_hz: float = Field(6000.0, ge=500.0, le=20000.0, description="High frequencies decay faster above this.")
    seed: int = 0


def impulse_response(rate: int, channels: int, p: ReverbParams) -> np.ndarray:
    """(channels, n) decaying noise, decorrelated between channels, low-passed, unit energy per channel."""
    from scipy.signal import lfilter

    n = int(p.rt60 * rate)
    t = np.arange(n) / rate
    noise = np.random.default_rng(p.seed).standard_normal((channels, n))
    ir = noise * np.exp(-6.907755 * t / p.rt60)  # -60 dB at rt60
    a = np.exp(-2 * np.pi * p.damping_hz / rate)  # one-pole low-pass
    ir = lfilter([1 - a], [1, -a], ir, axis=1)
    ir = np.concatenate([np.zeros((channels, int(p.predelay_ms * rate / 1000))), ir], axis=1)
    return (ir / np.sqrt((ir**2).sum(axis=1, keepdims=True))).astype(np.float32)


def reverb(src: Path, dst: Path, p: ReverbParams) -> None:
    """Write the wet signal of ``src`` (same rate, channels, length) to ``dst`` as a float WAV."""
    import soundfile as sf
    from scipy.signal import oaconvolve

    info = sf.info(str(src))
    ir = impulse_response(info.samplerate, info.channels, p)
    tail = np.zeros((info.channels, ir.shape[1] - 1), np.float32)
    part = dst.with_name(dst.name + ".part")
    with sf.SoundFile(str(part), "w", info.samplerate, info.channels, subtype="FLOAT", format="WAV") as out:
        for blk in sf.blocks(str(src), blocksize=int(BLOCK_S * info.samplerate), dtype="float32", always_2d=True):
            x = blk.T
            y = oaconvolve(x, ir, axes=1).astype(np.float32)  # len(x) + len(ir) - 1
            y[:, : tail.shape[1]] += tail  # the previous blocks' reverb that reaches into this one
            out.write(y[:, : x.shape[1]].T)
            tail = y[:, x.shape[1] :]
    os.replace(part, dst)
