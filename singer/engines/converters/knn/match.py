"""Matching a singer's frames to a voice's own frames (the idea of kNN-VC, on WORLD envelopes).

Features: the envelope on the log-frequency grid between :data:`LO_HZ` and the band both recordings cover, level
removed (each frame's mean dB), turned into :data:`N_CEP` cepstral coefficients (a DCT along log frequency, c0
left out), then normalised per speaker (mean and spread of each coefficient over that speaker's frames), so the
nearest frames are the ones that say the same thing, not the ones with the same vocal tract. Every source frame
takes the mean of its ``k`` nearest frames of the voice (voiced frames among voiced ones, unvoiced among
unvoiced), per group of a merged pool, and the groups are blended by weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..world import vocoder
from .pool import AP_IDX, FramePool

LO_HZ = 100.0
N_CEP = 24
ROWS_PER_BLOCK = 512


@lru_cache(maxsize=8)
def _dct(n_points: int, n_cep: int) -> np.ndarray:
    """Orthonormal DCT-II rows 1..n_cep (c0, the level, left out) over ``n_points`` samples."""
    k = np.arange(1, n_cep + 1)[:, None]
    i = np.arange(n_points)[None, :]
    return (np.sqrt(2.0 / n_points) * np.cos(np.pi * k * (2 * i + 1) / (2 * n_points))).astype(np.float32)


def band_points(band_hz: float) -> np.ndarray:
    return (vocoder.GRID_HZ >= LO_HZ) & (vocoder.GRID_HZ <= band_hz)


def features(env_db: np.ndarray, band_hz: float) -> np.ndarray:
    """Cepstral features (frames, N_CEP) of envelopes in dB on the grid, within [LO_HZ, band_hz], level removed."""
    sel = band_points(band_hz)
    e = np.asarray(env_db, dtype=np.float32)[:, sel]
    e = e - e.mean(axis=1, keepdims=True)
    return e @ _dct(int(sel.sum()), min(N_CEP, int(sel.sum()) - 1)).T


@dataclass
class Norm:
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, f: np.ndarray) -> Norm:
        return cls(f.mean(axis=0), np.maximum(f.std(axis=0), 1e-3))

    def __call__(self, f: np.ndarray) -> np.ndarray:
        return ((f - self.mean) / self.std).astype(np.float32)


@dataclass
class _Index:
    """One group's frames of one voicing class, ready to search: normalised features, squared norms, outputs."""

    feats: np.ndarray
    sq: np.ndarray
    env: np.ndarray
    ap: np.ndarray


class Matcher:
    """Built once per conversion for one pool and the band shared with the source; thread-safe to query."""

    def __init__(self, pool: FramePool, band_hz: float, k: int = 4):
        self.k, self.band_hz = k, band_hz
        self.groups: list[tuple[float, dict[bool, _Index]]] = []
        for j, g in enumerate(pool.groups):
            sel = pool.group == j
            if not sel.any() or g["weight"] <= 0:
                continue
            f = features(pool.env[sel], band_hz)
            z = Norm.of(f)(f)
            v = pool.voiced[sel]
            by_class = {}
            for cls in (True, False):
                m = v == cls if (v == cls).sum() >= k else np.ones(len(v), bool)  # too few: search them all
                by_class[cls] = _Index(z[m], (z[m] ** 2).sum(axis=1), pool.env[sel][m], pool.ap[sel][m])
            self.groups.append((float(g["weight"]), by_class))
        total = sum(w for w, _ in self.groups)
        self.groups = [(w / total, idx) for w, idx in self.groups]

    def blend(self, z: np.ndarray, voiced: np.ndarray, stride: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """For normalised source features ``z`` (frames, d): the weighted mean envelope and aperiodicity (dB) of
        each frame's k nearest voice frames. Every ``stride``-th frame is searched (20 ms, kNN-VC's frame rate)
        and the frames between are interpolated: half the search time, and the envelope moves smoothly."""
        idx = np.unique(np.r_[np.arange(0, len(z), stride), len(z) - 1]) if len(z) else np.zeros(0, int)
        env, ap = self._blend(z[idx], voiced[idx])
        if len(idx) == len(z):
            return env, ap
        frames = np.arange(len(z))
        j = np.clip(np.searchsorted(idx, frames, side="right") - 1, 0, max(len(idx) - 2, 0))
        if len(idx) < 2:
            return np.repeat(env, len(z), axis=0), np.repeat(ap, len(z), axis=0)
        w = ((frames - idx[j]) / (idx[j + 1] - idx[j]))[:, None].astype(np.float32)
        return env[j] * (1 - w) + env[j + 1] * w, ap[j] * (1 - w) + ap[j + 1] * w

    def _blend(self, z: np.ndarray, voiced: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        env = np.zeros((len(z), vocoder.GRID_N), np.float32)
        ap = np.zeros((len(z), len(AP_IDX)), np.float32)
        for w, by_class in self.groups:
            for cls in (True, False):
                rows = np.flatnonzero(voiced == cls)
                for a in range(0, len(rows), ROWS_PER_BLOCK):
                    r = rows[a : a + ROWS_PER_BLOCK]
                    e, p = self._nearest(z[r], by_class[cls])
                    env[r] += w * e
                    ap[r] += w * p
        return env, ap

    def _nearest(self, q: np.ndarray, idx: _Index) -> tuple[np.ndarray, np.ndarray]:
        k = min(self.k, len(idx.feats))
        d = idx.sq[None, :] - 2.0 * (q @ idx.feats.T)  # + |q|^2, the same for every candidate
        nn = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.broadcast_to(np.arange(k), d.shape)
        return idx.env[nn].mean(axis=1), idx.ap[nn].mean(axis=1)


def shift_grid(env_db: np.ndarray, ratio: float) -> np.ndarray:
    """Move an envelope on the log-frequency grid by a frequency ratio (>1 = formants up): a plain translation."""
    if abs(ratio - 1.0) < 1e-4:
        return env_db
    pos = np.clip(np.arange(vocoder.GRID_N) - np.log2(ratio) / vocoder.GRID_STEP_OCT, 0, vocoder.GRID_N - 1.000001)
    lo = np.floor(pos).astype(int)
    w = (pos - lo).astype(np.float32)
    return env_db[:, lo] * (1 - w) + env_db[:, lo + 1] * w


def smooth_time(x: np.ndarray) -> np.ndarray:
    """[1/4, 1/2, 1/4] along frames (edges kept): neighbours chosen independently frame by frame do not flicker."""
    if len(x) < 3:
        return x
    y = x.copy()
    y[1:-1] = 0.25 * x[:-2] + 0.5 * x[1:-1] + 0.25 * x[2:]
    return y


def compose(src_db: np.ndarray, tgt_db: np.ndarray, band_hz: float, strength: float) -> np.ndarray:
    """The output envelope: the voice's own envelope within its band, at each source frame's level; the source's
    above it (a recording band-limited to 4 kHz cannot say what is above); ``strength`` < 1 mixes the source back."""
    sel = band_points(band_hz)
    level = src_db[:, sel].mean(axis=1, keepdims=True) - tgt_db[:, sel].mean(axis=1, keepdims=True)
    m = vocoder.band_mask(vocoder.GRID_LO, band_hz).astype(np.float32)
    out = m * (tgt_db + level) + (1 - m) * src_db
    return out if strength >= 1 else strength * out + (1 - strength) * src_db


@lru_cache(maxsize=8)
def _bin_weights(n_bins: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    freqs = np.arange(n_bins) * sr / (2 * (n_bins - 1))
    pos = np.interp(np.log(np.maximum(freqs, vocoder.GRID_LO)), np.log(vocoder.GRID_HZ), np.arange(vocoder.GRID_N))
    lo = np.minimum(np.floor(pos).astype(int), vocoder.GRID_N - 2)
    return lo, (pos - lo).astype(np.float32)


@lru_cache(maxsize=4)
def _coarse_to_grid(points: tuple[int, ...]) -> np.ndarray:
    """Linear interpolation matrix (len(points), GRID_N) from a few grid points onto every grid point."""
    eye = np.eye(len(points), dtype=np.float32)
    return np.stack([np.interp(np.arange(vocoder.GRID_N), points, row) for row in eye]).astype(np.float32)


def grid_to_bins(values: np.ndarray, n_bins: int, sr: int, points: np.ndarray | None = None) -> np.ndarray:
    """Curves on the grid (frames, points) -> FFT bins (frames, n_bins); ``points``: grid indices of the columns."""
    if points is not None:  # a coarse curve (aperiodicity): onto the full grid first
        values = values @ _coarse_to_grid(tuple(int(p) for p in points))
    lo, w = _bin_weights(n_bins, sr)
    return values[:, lo] * (1 - w) + values[:, lo + 1] * w
