"""RVC voice conversion of a 16 kHz mono signal, numerically as RVC's ``Pipeline.pipeline`` (CPU settings).

Steps: 48 Hz high-pass (5th-order Butterworth, zero phase) -> pitch of the whole signal (padded by ``x_pad`` s of
reflection) -> cut into chunks of at most ``x_max`` s at the quietest 10 ms near every ``x_center`` s -> per
chunk: content features (v1 layer 9 + projection / v2 layer 12), retrieval blend (``index_rate``), 2x frame
upsampling, consonant protection (``protect``), synthesis -> chunks joined without their padding -> loudness
envelope mixed toward the input's (``rms_mix_rate``).

Where it differs from the reference, the numbers do not change:
- random draws come from a private generator seeded per call (deterministic output, global RNG untouched);
- the decoder renders only the part of each chunk that is kept, plus its receptive field (the prior noise and the
  NSF source are still drawn for the whole chunk, so the kept samples are the same);
- the retrieval index is loaded once per voice, not per call; quiet-point search touches only the query windows.
With ``crossfade_ms`` > 0 (the engine's default) neighbouring chunks overlap that much around each cut and are
crossfaded instead of butted together; only those few milliseconds differ from RVC.
Output is float32 at the model's sample rate (the reference rounds to int16).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ....memory import release_memory

SR = 16000
WINDOW = 160  # samples per content/pitch frame at 16 kHz


@dataclass(frozen=True)
class Chunking:
    """RVC's chunking in seconds (its CPU/fp32 defaults)."""

    x_pad: int = 1
    x_query: int = 6
    x_center: int = 38
    x_max: int = 41


@dataclass(frozen=True)
class Settings:
    key: float = 0.0
    f0_method: str = "fcpe"
    index_rate: float = 0.75
    filter_radius: int = 3
    rms_mix_rate: float = 0.25
    protect: float = 0.33
    sid: int = 0
    seed: int = 0
    crossfade_ms: float = 0.0  # > 0: chunks overlap this much around each cut and are crossfaded (RVC: hard cut)


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


def _interp(env: np.ndarray, size: int, a: int, b: int) -> np.ndarray:
    """torch's linear interpolation of ``env`` to ``size`` points (align_corners=False), points a..b only."""
    pos = np.maximum((np.arange(a, b) + 0.5) * (len(env) / size) - 0.5, 0.0)
    i0 = np.minimum(pos.astype(np.int64), len(env) - 1)
    i1 = np.minimum(i0 + 1, len(env) - 1)
    lam = pos - i0
    return (1 - lam) * env[i0] + lam * env[i1]


def mix_rms(
    src: np.ndarray | None,
    out: np.ndarray,
    out_sr: int,
    rate: float,
    block: int = 1 << 20,
    src_env: np.ndarray | None = None,
) -> np.ndarray:
    """Move the output's loudness envelope toward the input's: env_in**(1-rate) * env_out**(rate-1), in place,
    a block at a time (RVC's change_rms without full-length temporaries). ``src_env``: the input's envelope."""
    r1 = src_env if src_env is not None else rms_envelope(src, SR)
    r2 = rms_envelope(out, out_sr)
    n = len(out)
    for a in range(0, n, block):
        b = min(n, a + block)
        g = _interp(r1, n, a, b) ** (1 - rate) * np.maximum(_interp(r2, n, a, b), 1e-6) ** (rate - 1)
        out[a:b] *= g.astype(np.float32)
    return out


class Converter:
    """One loaded voice: synthesizer + optional retrieval index + the content encoder."""

    def __init__(self, net, encoder, index=None, chunking: Chunking = Chunking()):
        self.net, self.encoder, self.index, self.ch = net, encoder, index, chunking
        self.version, self.f0 = net.version, net.f0
        self.tgt_sr = net.cfg.sr

    def __call__(
        self,
        audio: np.ndarray,
        s: Settings,
        models_path=None,
        choose_key: Callable[[np.ndarray], float] | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> np.ndarray:
        """``audio``: mono float 16 kHz -> float32 at ``self.tgt_sr`` (length = len(audio) * tgt_sr / 16000).

        ``choose_key(f0)`` (optional) sees the pitch track before the shift and returns the key to apply."""
        import torch

        ch = self.ch
        t_pad, t_pad_tgt = SR * ch.x_pad, self.tgt_sr * ch.x_pad
        audio = highpass(np.asarray(audio, dtype=np.float64))
        cuts = cut_points(audio, ch)
        env_in = rms_envelope(audio, SR) if s.rms_mix_rate != 1 else None
        audio_pad = np.pad(audio, (t_pad, t_pad), mode="reflect")
        del audio  # long songs: keep one copy
        p_len = audio_pad.shape[0] // WINDOW
        pitch, pitchf = self._pitch(audio_pad, p_len, s, models_path, choose_key) if self.f0 else (None, None)
        gen = torch.Generator().manual_seed(int(s.seed))
        start, pos = 0, 0
        out = np.empty((len(audio_pad) - 2 * t_pad) * self.tgt_sr // SR + self.tgt_sr, dtype=np.float32)
        bounds = [c // WINDOW * WINDOW for c in cuts]
        h = min(t_pad_tgt, int(s.crossfade_ms / 2000 * self.tgt_sr)) if bounds else 0
        for i, t in enumerate([*bounds, None]):
            end = None if t is None else t + 2 * t_pad + WINDOW
            fs, fe = start // WINDOW, None if t is None else (t + 2 * t_pad) // WINDOW
            keep = (t_pad_tgt - (h if i else 0), t_pad_tgt - (h if t is not None else 0))
            y = self._chunk(
                audio_pad[start:end],
                None if pitch is None else pitch[:, fs:fe],
                None if pitchf is None else pitchf[:, fs:fe],
                s,
                gen,
                keep,
            )
            if i and h:  # the previous chunk ran h past the cut, this one starts h before it: fade across 2h
                n = min(2 * h, pos, len(y))
                fade = np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n).astype(np.float32) ** 2
                out[pos - n : pos] = out[pos - n : pos] * (1 - fade) + y[:n] * fade
                y = y[n:]
            out[pos : pos + len(y)] = y
            pos += len(y)
            release_memory()
            if t is not None:
                start = t
            if progress:
                progress((i + 1) / (len(bounds) + 1))
        out = out[:pos]
        if s.rms_mix_rate != 1:
            out = mix_rms(None, out, self.tgt_sr, s.rms_mix_rate, src_env=env_in)
        return out.astype(np.float32, copy=False)

    def _pitch(self, audio_pad: np.ndarray, p_len: int, s: Settings, models_path, choose_key) -> tuple:
        """Coarse pitch (long) and pitch in Hz, [1, p_len] tensors, after the key shift (``choose_key(f0)`` or
        ``s.key``)."""
        import torch

        from .f0 import coarse_f0, extract_f0

        f0 = extract_f0(audio_pad, p_len, s.f0_method, filter_radius=s.filter_radius, models_path=models_path)
        f0 = np.asarray(f0)[:p_len]
        key = choose_key(f0) if choose_key is not None else s.key
        f0 = f0 * pow(2, key / 12)
        pitch = torch.from_numpy(coarse_f0(f0).astype(np.int64)).unsqueeze(0)
        pitchf = torch.from_numpy(f0.astype(np.float32)).unsqueeze(0)
        return pitch, pitchf

    def _chunk(self, x: np.ndarray, pitch, pitchf, s: Settings, gen, keep: tuple[int, int]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        feats = self.encoder.features(torch.from_numpy(x).float(), self.version)  # [1, frames, dim]
        protect = s.protect < 0.5 and pitch is not None
        feats0 = feats.clone() if protect else None
        if self.index is not None and s.index_rate != 0:
            blended = self.index.blend(feats[0].numpy(), s.index_rate)
            feats = torch.from_numpy(np.ascontiguousarray(blended, dtype=np.float32)).unsqueeze(0)
        feats = F.interpolate(feats.permute(0, 2, 1), scale_factor=2).permute(0, 2, 1)
        if protect:
            feats0 = F.interpolate(feats0.permute(0, 2, 1), scale_factor=2).permute(0, 2, 1)
        p_len = min(x.shape[0] // WINDOW, feats.shape[1])
        feats = feats[:, :p_len]
        if pitch is not None:
            pitch, pitchf = pitch[:, :p_len], pitchf[:, :p_len]
        if protect:
            mask = pitchf.clone()
            mask[pitchf > 0] = 1
            mask[pitchf < 1] = s.protect
            mask = mask.unsqueeze(-1)
            feats = (feats * mask + feats0[:, :p_len] * (1 - mask)).to(feats0.dtype)
        with torch.inference_mode():
            y = self.net.infer(feats, pitch, pitchf, s.sid, generator=gen, keep=keep)
        y = y[0, 0].numpy()
        return y
