"""The voice-independent half of RVC: content features and pitch of a vocal, computed once and kept by the cache.

:func:`extract` runs what depends only on the audio, the content model (and its v1/v2 layer), the pitch method and
the precision: the 48 Hz high-pass, the chunk cuts, the input's loudness envelope, the content model's output for
every chunk and the pitch track of the whole (reflection-padded) signal, before any key shift. The voice-dependent
half (retrieval blend, key, protection, synthesis) is :meth:`.pipeline.Converter.synthesize`. The workflow runs them
as two steps (``features`` and ``convert``), so the same vocal sung by another voice reuses the first step's file.

The file is an uncompressed ``.npz`` (:meth:`Features.save` / :meth:`Features.load`), written atomically by the
workflow store. Its numbers are the very ones the one-call path computes: splitting changes no output sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ....memory import release_memory

SR = 16000
WINDOW = 160  # samples per content/pitch frame at 16 kHz
FORMAT = 1  # bumped when the file layout changes


@dataclass(frozen=True)
class Chunking:
    """RVC's chunking in seconds (its CPU/fp32 defaults)."""

    x_pad: int = 1
    x_query: int = 6
    x_center: int = 38
    x_max: int = 41


@dataclass
class Features:
    """Content features and pitch of one vocal (16 kHz, high-passed, padded by ``x_pad`` s of reflection)."""

    units: np.ndarray  # [rows, 256|768] float32: every chunk's content features, chunk after chunk
    rows: np.ndarray  # int64 [chunks + 1]: chunk i is units[rows[i]:rows[i + 1]]
    bounds: np.ndarray  # int64 [chunks - 1]: where each chunk after the first starts (padded-signal samples)
    n_pad: int  # samples of the padded signal
    env: np.ndarray  # RMS envelope of the high-passed input (half-second frames), for rms_mix_rate
    f0: np.ndarray | None  # Hz per 10 ms frame of the padded signal (n_pad // WINDOW), before any key shift
    version: str  # "v1" | "v2": which layer of the content model
    f0_method: str = ""  # how f0 was tracked ("" without pitch)
    precision: str = "fp32"  # the content model's number format

    def chunk_units(self, i: int) -> np.ndarray:
        return self.units[self.rows[i] : self.rows[i + 1]]

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {
            "units": self.units,
            "rows": self.rows,
            "bounds": self.bounds,
            "env": self.env,
            "scalars": np.array([FORMAT, self.n_pad, 1 if self.version == "v1" else 2], dtype=np.int64),
            "labels": np.array([self.f0_method, self.precision]),
        }
        if self.f0 is not None:
            arrays["f0"] = self.f0
        with open(path, "wb") as f:  # a file object: numpy would append ".npz" to a name
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: Path) -> Features:
        with np.load(str(path), allow_pickle=False) as z:
            fmt, n_pad, v = (int(x) for x in z["scalars"])
            if fmt != FORMAT:
                raise ValueError(f"features file format {fmt}, expected {FORMAT}")
            f0 = z["f0"] if "f0" in z.files else None
            method, precision = (str(x) for x in z["labels"])
            version = "v1" if v == 1 else "v2"
            return cls(z["units"], z["rows"], z["bounds"], n_pad, z["env"], f0, version, method, precision)


def highpass(audio: np.ndarray) -> np.ndarray:
    from scipy import signal

    bh, ah = signal.butter(N=5, Wn=48, btype="high", fs=SR)
    return signal.filtfilt(bh, ah, audio)


def cut_points(audio: np.ndarray, ch: Chunking) -> list[int]:
    """Chunk boundaries (samples of the high-passed signal) at the quietest 10 ms window near each centre."""
    t_query, t_center, t_max = SR * ch.x_query, SR * ch.x_center, SR * ch.x_max
    pad = np.pad(audio, (WINDOW // 2, WINDOW // 2), mode="reflect")
    if pad.shape[0] <= t_max:
        return []
    out = []
    for t in range(t_center, audio.shape[0], t_center):
        a, b = t - t_query, min(t + t_query, audio.shape[0])
        s = np.zeros(b - a, dtype=audio.dtype)
        for i in range(WINDOW):  # same summation order as the reference
            s += np.abs(pad[a + i : b + i])
        out.append(a + int(np.where(s == s.min())[0][0]))
    return out


def rms_envelope(x: np.ndarray, sr: int) -> np.ndarray:
    """Frame RMS with half-second frames and hops, centred with zero padding (librosa.feature.rms's defaults),
    from sums over hop-sized blocks (a frame is two blocks), so no frame matrix is ever built."""
    hop = sr // 2
    frame = 2 * hop
    n = 1 + len(x) // hop  # frames of the padded signal, as librosa counts them
    blocks = np.zeros(n + 1)
    for j in range(n + 1):  # block j covers padded samples [j*hop, (j+1)*hop) = x[(j-1)*hop : j*hop]
        a, b = max(0, (j - 1) * hop), min(len(x), j * hop)
        if b > a:
            seg = x[a:b].astype(np.float64)
            blocks[j] = float(np.dot(seg, seg))
    return np.sqrt((blocks[:-1] + blocks[1:]) / frame)


def chunk_spans(bounds: np.ndarray, n_pad: int, t_pad: int) -> list[tuple[int, int]]:
    """(start, end) of every chunk in the padded signal: chunk i runs from the previous cut to 2 pads past its own."""
    starts = [0, *(int(b) for b in bounds)]
    ends = [int(b) + 2 * t_pad + WINDOW for b in bounds] + [n_pad]
    return [(a, min(b, n_pad)) for a, b in zip(starts, ends)]


def extract(
    encoder,
    audio: np.ndarray,
    version: str,
    *,
    pitch: bool,
    f0_method: str = "fcpe",
    filter_radius: int = 3,
    models_path=None,
    chunking: Chunking = Chunking(),
    precision: str = "fp32",
    progress: Callable[[float], None] | None = None,
) -> Features:
    """``audio``: mono float 16 kHz -> the :class:`Features` every voice of ``version`` converts from.
    ``precision``: the content model's (fp32, bf16, int8; :mod:`.precision`)."""
    import torch

    t_pad = SR * chunking.x_pad
    audio = highpass(np.asarray(audio, dtype=np.float64))
    bounds = np.array([c // WINDOW * WINDOW for c in cut_points(audio, chunking)], dtype=np.int64)
    env = rms_envelope(audio, SR)
    audio_pad = np.pad(audio, (t_pad, t_pad), mode="reflect")
    del audio  # long songs: keep one copy
    f0 = None
    if pitch:
        from .f0 import extract_f0

        p_len = audio_pad.shape[0] // WINDOW
        f0 = extract_f0(audio_pad, p_len, f0_method, filter_radius=filter_radius, models_path=models_path)
        f0 = np.asarray(f0, dtype=np.float32)[:p_len]
    if progress:
        progress(0.3)
    parts: list[np.ndarray] = []
    spans = chunk_spans(bounds, len(audio_pad), t_pad)
    for i, (a, b) in enumerate(spans):
        feats = encoder.features(torch.from_numpy(audio_pad[a:b]).float(), version, precision)  # [1, frames, dim]
        parts.append(feats[0].float().numpy())
        release_memory()
        if progress:
            progress(0.3 + 0.7 * (i + 1) / len(spans))
    rows = np.cumsum([0, *(len(p) for p in parts)]).astype(np.int64)
    units = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return Features(units, rows, bounds, len(audio_pad), env, f0, version, f0_method if pitch else "", precision)
