"""Band-limited polyphase resampling (scipy): whole arrays, long signals a block at a time, files streamed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


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
