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
from .features import SR, WINDOW, Chunking, Features, chunk_spans, cut_points, extract, highpass, rms_envelope

__all__ = ["SR", "WINDOW", "Chunking", "Converter", "Features", "Settings", "cut_points", "highpass", "mix_rms"]


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
    if src_env is not None:
        r1 = src_env
    elif src is not None:
        r1 = rms_envelope(src, SR)
    else:
        raise ValueError("change_rms needs the input or its envelope")
    r2 = rms_envelope(out, out_sr)
    n = len(out)
    for a in range(0, n, block):
        b = min(n, a + block)
        g = _interp(r1, n, a, b) ** (1 - rate) * np.maximum(_interp(r2, n, a, b), 1e-6) ** (rate - 1)
        out[a:b] *= g.astype(np.float32)
    return out


class Converter:
    """One loaded voice: synthesizer + optional retrieval index + the content encoder."""

    def __init__(self, net, encoder, index=None, chunking: Chunking = Chunking(), content_precision: str = "fp32"):
        self.net, self.encoder, self.index, self.ch = net, encoder, index, chunking
        self.content_precision = content_precision
        self.version, self.f0 = net.version, net.f0
        self.tgt_sr = net.cfg.sr
        self.device = next(net.parameters()).device

    def __call__(
        self,
        audio: np.ndarray,
        s: Settings,
        models_path=None,
        choose_key: Callable[[np.ndarray], float] | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> np.ndarray:
        """``audio``: mono float 16 kHz -> float32 at ``self.tgt_sr`` (length = len(audio) * tgt_sr / 16000):
        :meth:`features` then :meth:`synthesize`.

        ``choose_key(f0)`` (optional) sees the pitch track before the shift and returns the key to apply."""
        part = (lambda f: progress(0.3 * f)) if progress else None
        feats = self.features(audio, s, models_path, part)
        rest = (lambda f: progress(0.3 + 0.7 * f)) if progress else None
        return self.synthesize(feats, s, choose_key, rest)

    def features(self, audio: np.ndarray, s: Settings, models_path=None, progress=None) -> Features:
        """The voice-independent half (content features and pitch), for this voice's version and pitch use."""
        return extract(
            self.encoder,
            audio,
            self.version,
            pitch=bool(self.f0),
            f0_method=s.f0_method,
            filter_radius=s.filter_radius,
            models_path=models_path,
            chunking=self.ch,
            precision=self.content_precision,
            progress=progress,
        )

    def synthesize(
        self,
        feats: Features,
        s: Settings,
        choose_key: Callable[[np.ndarray], float] | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> np.ndarray:
        """The voice-dependent half: retrieval blend, key, protection, synthesis, chunks joined, loudness mixed."""
        import torch

        if feats.version != self.version or (self.f0 and feats.f0 is None):
            raise ValueError(f"features for a {feats.version} voice cannot drive this {self.version} voice")
        t_pad, t_pad_tgt = SR * self.ch.x_pad, self.tgt_sr * self.ch.x_pad
        pitch, pitchf = self._pitch(feats.f0, s, choose_key) if self.f0 and feats.f0 is not None else (None, None)
        gen = torch.Generator().manual_seed(int(s.seed))
        spans = chunk_spans(feats.bounds, feats.n_pad, t_pad)
        out = np.empty((feats.n_pad - 2 * t_pad) * self.tgt_sr // SR + self.tgt_sr, dtype=np.float32)
        h = min(t_pad_tgt, int(s.crossfade_ms / 2000 * self.tgt_sr)) if len(spans) > 1 else 0
        pos = 0
        for i, (a, b) in enumerate(spans):
            last = i == len(spans) - 1
            fs, fe = a // WINDOW, None if last else (int(feats.bounds[i]) + 2 * t_pad) // WINDOW
            keep = (t_pad_tgt - (h if i else 0), t_pad_tgt - (0 if last else h))
            y = self._chunk(
                feats.chunk_units(i),
                b - a,
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
            if progress:
                progress((i + 1) / len(spans))
        out = out[:pos]
        if s.rms_mix_rate != 1:
            out = mix_rms(None, out, self.tgt_sr, s.rms_mix_rate, src_env=feats.env)
        return out.astype(np.float32, copy=False)

    @staticmethod
    def _pitch(f0: np.ndarray, s: Settings, choose_key) -> tuple:
        """Coarse pitch (long) and pitch in Hz, [1, p_len] tensors, after the key shift (``choose_key(f0)`` or
        ``s.key``)."""
        import torch

        from .f0 import coarse_f0

        key = choose_key(f0) if choose_key is not None else s.key
        f0 = f0 * pow(2, key / 12)
        pitch = torch.from_numpy(coarse_f0(f0).astype(np.int64)).unsqueeze(0)
        pitchf = torch.from_numpy(f0.astype(np.float32)).unsqueeze(0)
        return pitch, pitchf

    def _chunk(self, units: np.ndarray, n: int, pitch, pitchf, s: Settings, gen, keep: tuple[int, int]) -> np.ndarray:
        """One chunk of ``n`` input samples: its content ``units`` [frames, dim] -> audio, less ``keep`` samples."""
        import torch
        import torch.nn.functional as F

        feats = torch.from_numpy(np.ascontiguousarray(units, dtype=np.float32)).unsqueeze(0)
        protect = s.protect < 0.5 and pitch is not None
        feats0 = feats.clone() if protect else None
        if self.index is not None and s.index_rate != 0:
            blended = self.index.blend(feats[0].numpy(), s.index_rate)
            feats = torch.from_numpy(np.ascontiguousarray(blended, dtype=np.float32)).unsqueeze(0)
        feats = F.interpolate(feats.permute(0, 2, 1), scale_factor=2).permute(0, 2, 1)
        if feats0 is not None:
            feats0 = F.interpolate(feats0.permute(0, 2, 1), scale_factor=2).permute(0, 2, 1)
        p_len = min(n // WINDOW, feats.shape[1])
        feats = feats[:, :p_len]
        if pitch is not None:
            pitch, pitchf = pitch[:, :p_len], pitchf[:, :p_len]
        if protect and feats0 is not None:
            mask = pitchf.clone()
            mask[pitchf > 0] = 1
            mask[pitchf < 1] = s.protect
            mask = mask.unsqueeze(-1)
            feats = (feats * mask + feats0[:, :p_len] * (1 - mask)).to(feats0.dtype)
        dev = self.device
        if dev.type != "cpu":  # a GPU synthesizer (Settings.device): inputs there, audio back
            feats = feats.to(dev)
            pitch, pitchf = (None, None) if pitch is None else (pitch.to(dev), pitchf.to(dev))
        with torch.inference_mode():
            y = self.net.infer(feats, pitch, pitchf, s.sid, generator=gen, keep=keep)
        return y[0, 0].float().cpu().numpy()
