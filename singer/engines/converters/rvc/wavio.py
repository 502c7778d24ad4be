"""Reading a vocal stem as mono (with each channel's level) and writing the converted mono back to every channel,
gated, a block at a time (long songs never hold a second full-length copy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ....errors import InputError


def _write_gated(dst: Path, y: np.ndarray, sr: int, rms: np.ndarray, gate: np.ndarray) -> None:
    """Write the mono result to every channel at the input's level ratio per channel, gated, atomically."""
    import soundfile as sf

    gains = (rms / max(float(rms.mean()), 1e-12)).astype(np.float32)
    tmp = dst.with_name(dst.name + ".tmp.wav")
    try:
        with sf.SoundFile(str(tmp), "w", sr, len(rms), subtype="FLOAT", format="WAV") as f:
            for a in range(0, len(y), BLOCK):
                b = min(len(y), a + BLOCK)
                f.write((y[a:b] * _expand_gate(gate, sr, a, b))[:, None] * gains[None, :])
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)


BLOCK = 1 << 20  # samples per block when reading/writing long stems


def _read_mono(src: Path) -> tuple[np.ndarray, int, np.ndarray]:
    """Mono mix of a WAV (float32), its rate and each channel's RMS, read a block at a time."""
    import soundfile as sf

    try:
        info = sf.info(str(src))
        mono = np.empty(info.frames, dtype=np.float32)
        energy, pos = np.zeros(info.channels), 0
        for block in sf.blocks(str(src), blocksize=BLOCK, dtype="float32", always_2d=True):
            mono[pos : pos + len(block)] = block.mean(axis=1)
            energy += np.einsum("nc,nc->c", block, block, dtype=np.float64)
            pos += len(block)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise InputError(
            f"Cannot read {src.name} as a WAV file: {e}", hint="The converter expects a WAV vocal stem."
        ) from None
    return mono[:pos], info.samplerate, np.sqrt(energy / max(pos, 1))


def _gate_frames(x: np.ndarray, sr: int, gate_db: float) -> np.ndarray:
    """Per 10 ms frame: 1 where the input is above ``gate_db`` (with a 50 ms hold either side), else 0."""
    hop = max(1, sr // 100)
    frames = -(-len(x) // hop)
    e = np.array([float(np.sqrt(np.mean(x[i * hop : (i + 1) * hop].astype(np.float64) ** 2))) for i in range(frames)])
    on = (e > 10 ** (gate_db / 20)).astype(float)
    return (np.convolve(on, np.ones(11), mode="same") > 0).astype(np.float32)


def _expand_gate(frames: np.ndarray, sr: int, a: int, b: int) -> np.ndarray:
    """Samples a..b of the frame gate, with 10 ms linear ramps at its edges."""
    hop = max(1, sr // 100)
    t = (np.arange(a, b) + 0.5) / hop - 0.5  # frame centres at (i + 0.5) * hop
    return np.interp(t, np.arange(len(frames)), frames).astype(np.float32)
