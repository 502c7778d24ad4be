"""Frame pools: the ``knn`` converter's picture of a voice, every analysed moment of its recordings.

A pool holds, for up to :data:`MAX_FRAMES` active frames (voiced and unvoiced, silence left out) of a voice's
recordings, analysed with WORLD at :data:`ANALYSIS_RATE`:
  * the spectral envelope in dB on the fixed log-frequency grid of :mod:`..world.vocoder` (96 points);
  * the aperiodicity in dB on every :data:`AP_STEP`-th grid point (breath, noise in the voice);
  * whether the frame is voiced, and its group: a merged voice keeps each parent's frames as one group with the
    parent's weight, so the converter can match within each parent and blend the results by weight.

Stored as one float16 matrix in a ``.npy`` gzipped without a timestamp (``<voice>.pool.npy.gz``, a few MB; the
same sources give identical bytes), beside the voice's JSON manifest, which records the groups, weights, bands
and the file's sha256 under ``"pool"``.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ....errors import InputError
from ....files import atomic_path, sha256_file
from ..world import vocoder

FORMAT = 1
ANALYSIS_RATE = 16000
MAX_FRAMES = 10000
AP_STEP = 4
AP_IDX = np.arange(0, vocoder.GRID_N, AP_STEP)
ACTIVE_BELOW_PEAK_DB = 40.0
CHUNK_SECONDS = 30.0
MAX_LEARN_SECONDS = 900.0
SUFFIX = ".pool.npy.gz"


@dataclass
class FramePool:
    env: np.ndarray  # (frames, GRID_N) envelope, dB
    ap: np.ndarray  # (frames, len(AP_IDX)) aperiodicity, dB (<= 0)
    voiced: np.ndarray  # (frames,) bool
    group: np.ndarray  # (frames,) int
    groups: list[dict]  # per group: {"name", "weight", "band_hz", "frames"}

    @property
    def band_hz(self) -> float:
        return float(min(g["band_hz"] for g in self.groups))

    def matrix(self) -> np.ndarray:
        cols = [self.env, self.ap, self.voiced[:, None], self.group[:, None]]
        return np.concatenate([np.asarray(c, dtype=np.float32) for c in cols], axis=1).astype(np.float16)

    @classmethod
    def from_matrix(cls, m: np.ndarray, groups: list[dict]) -> FramePool:
        n_ap = len(AP_IDX)
        if m.ndim != 2 or m.shape[1] != vocoder.GRID_N + n_ap + 2:
            raise ValueError(f"pool matrix has shape {m.shape}, expected (frames, {vocoder.GRID_N + n_ap + 2})")
        m = m.astype(np.float32)
        g = m[:, -1].astype(int)
        if len(g) and (g.min() < 0 or g.max() >= len(groups)):
            raise ValueError("pool frames name a group the manifest does not list")
        env, ap = m[:, : vocoder.GRID_N], m[:, vocoder.GRID_N : vocoder.GRID_N + n_ap]
        return cls(env=env, ap=ap, voiced=m[:, -2] > 0.5, group=g, groups=groups)

    def meta(self) -> dict:
        return {"format": FORMAT, "frames": len(self.env), "analysis_rate": ANALYSIS_RATE, "groups": self.groups}


def pool_file(manifest_path: Path) -> Path:
    """Where a voice's pool lives: beside its manifest, ``<name>.pool.npy.gz``."""
    return manifest_path.with_name(manifest_path.stem + SUFFIX)


def save_pool(path: Path, pool: FramePool) -> dict:
    """Write the pool (atomically, byte-reproducibly); returns the manifest's ``"pool"`` entry."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(pool.matrix()), allow_pickle=False)
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
            gz.write(buf.getvalue())
    return {**pool.meta(), "file": path.name, "sha256": sha256_file(path)}


def load_pool(path: Path, meta: dict) -> FramePool:
    """Read a pool written by :func:`save_pool`; ValueError when it is not one."""
    if meta.get("format") != FORMAT:
        raise ValueError(f"unsupported frame pool format {meta.get('format')!r}")
    try:
        with gzip.open(path, "rb") as f:
            m = np.load(io.BytesIO(f.read()), allow_pickle=False)
    except (OSError, EOFError) as e:
        raise ValueError(f"cannot read frame pool {path.name}: {e}") from None
    return FramePool.from_matrix(m, list(meta["groups"]))


def voice_pool(voice: Any) -> FramePool | None:
    """The frame pool of a stored voice (:class:`singer.voices.Voice`), None when it has none (made before pools).
    ValueError when the manifest names a pool that is missing or unreadable."""
    meta = getattr(voice, "manifest", {}).get("pool")
    if not meta:
        return None
    path = next((f for f in voice.files if f.name == meta.get("file")), None)
    if path is None or not path.is_file():
        raise ValueError(f"its frame pool {meta.get('file')!r} is missing")
    return load_pool(path, meta)


def analyse_frames(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Envelope dB on the grid, aperiodicity dB on :data:`AP_IDX` and voicing of the active frames of ``x``."""
    envs, aps, voiced, power = [], [], [], []
    step = int(CHUNK_SECONDS * sr)
    for i in range(0, len(x), step):
        chunk = np.ascontiguousarray(x[i : i + step], dtype=np.float64)
        if len(chunk) < sr // 10:
            continue
        a = vocoder.analyze(chunk, sr)
        assert a.ap is not None
        envs.append(vocoder.envelope_to_grid(a.sp, sr).astype(np.float32))
        aps.append(vocoder.envelope_to_grid(np.maximum(a.ap, 1e-6) ** 2, sr)[:, AP_IDX].astype(np.float32))
        voiced.append(a.f0 > 0)
        power.append(10 * np.log10(np.maximum(a.sp.sum(axis=1), 1e-20)))
    if not envs:
        return np.zeros((0, vocoder.GRID_N)), np.zeros((0, len(AP_IDX))), np.zeros(0, bool)
    p = np.concatenate(power)
    keep = p > p.max() - ACTIVE_BELOW_PEAK_DB
    return np.concatenate(envs)[keep], np.concatenate(aps)[keep], np.concatenate(voiced)[keep]


def learn_pool(sources: Sequence[str | os.PathLike], *, name: str = "", min_voiced_seconds: float = 1.0) -> FramePool:
    """A pool from recordings (any format ffmpeg reads), decoded to mono at :data:`ANALYSIS_RATE` (at most 15 min)."""
    from .... import audio

    sr, decoded, total, rates = ANALYSIS_RATE, [], 0.0, []
    for p in [Path(s) for s in sources]:
        x = audio.decode(p, sample_rate=sr, channels=1)[0][: int((MAX_LEARN_SECONDS - total) * sr)]
        rates.append(audio.probe(p).sample_rate or sr)
        decoded.append(x)
        total += len(x) / sr
        if total >= MAX_LEARN_SECONDS:
            break
    if not decoded:
        raise InputError("No sample files given.", hint="Give one or more recordings of the voice.")
    env, ap, voiced = analyse_frames(np.concatenate(decoded), sr)
    band = min(0.45 * min(min(rates), sr), vocoder.GRID_HI)
    return pool_from_frames(env, ap, voiced, name=name, band_hz=band, min_voiced_seconds=min_voiced_seconds)


def pool_from_frames(
    env: np.ndarray, ap: np.ndarray, voiced: np.ndarray, *, name: str, band_hz: float, min_voiced_seconds: float = 1.0
) -> FramePool:
    """Keep at most :data:`MAX_FRAMES` frames, evenly spread over the recordings, as one group."""
    if voiced.sum() * vocoder.FRAME_PERIOD / 1000.0 < min_voiced_seconds:
        raise InputError(
            f"Too little voiced sound for a frame pool: {voiced.sum() / 100:.1f} s.",
            hint="Give longer recordings of clear singing or speech.",
        )
    if len(env) > MAX_FRAMES:
        idx = np.unique(np.linspace(0, len(env) - 1, MAX_FRAMES).round().astype(int))
        env, ap, voiced = env[idx], ap[idx], voiced[idx]
    group = {"name": name, "weight": 1.0, "band_hz": round(float(band_hz), 1), "frames": len(env)}
    return FramePool(env=env, ap=ap, voiced=voiced, group=np.zeros(len(env), int), groups=[group])


def merge_pools(items: Sequence[tuple[FramePool, float]], names: Sequence[str] | None = None) -> FramePool:
    """One pool holding every parent's groups, with weights multiplied by the parent's (normalised) weight."""
    w = np.array([float(wt) for _, wt in items])
    if not len(w) or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise InputError(f"Bad merge weights {w.tolist()}.", hint="Weights must be >= 0 and not all zero.")
    w = w / w.sum()
    envs, aps, voiced, group = [], [], [], []
    groups: list[dict] = []
    for i, (p, _) in enumerate(items):
        if w[i] == 0:
            continue
        for j, g in enumerate(p.groups):
            sel = p.group == j
            name = g["name"] if len(p.groups) > 1 or not names else names[i]
            group.append(np.full(int(sel.sum()), len(groups)))
            groups.append({**g, "name": name, "weight": round(float(w[i] * g["weight"]), 6)})
            envs.append(p.env[sel])
            aps.append(p.ap[sel])
            voiced.append(p.voiced[sel])
    cat: Any = np.concatenate
    return FramePool(env=cat(envs), ap=cat(aps), voiced=cat(voiced), group=cat(group), groups=groups)
