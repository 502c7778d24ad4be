"""The synthesizer's (NSF-)HiFi-GAN decoder: latent frames (and, for pitch models, the f0 track) to audio.

Module and parameter names follow RVC's checkpoints (``dec.ups.0.weight``, ``dec.m_source.l_linear.weight``...).
The decoder renders long input in tiles with their receptive field, so memory stays bounded and every output sample
equals the untiled one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from .synth import SynthConfig

LRELU_SLOPE = 0.1
# Frames of decoder input that influence an output sample (about 11 for RVC's configurations; kept 16).
RECEPTIVE_FRAMES = 16
TILE_FRAMES = 500  # decoder tile: 5 s of audio


# The decoder runs its 1-D convolutions as 2-D ones over [B, C, 1, T] tensors in channels-last layout: oneDNN's
# kernels for that layout are 1.3-2.7x faster on CPU than the [B, C, T] path, with the same sums in another order.
# With ``Decoder.compute_dtype = torch.bfloat16`` (CPUs with native bf16: AVX512-BF16 / AMX) every convolution but
# the output layer takes bf16 inputs and weights and hands back float32; activations, sums and the output layer stay
# float32 (rounding the output layer's input or the residual sums to bf16 is what an ear would notice first).
FP32 = torch.float32


def _w4(m: nn.Conv1d | nn.ConvTranspose1d, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The module's weight as a [O, I, 1, K] channels-last tensor and its bias, in ``dtype`` (cached per dtype)."""
    cache = m.__dict__.setdefault("_w4", {})
    hit = cache.get(dtype)
    if hit is None or hit[0] is not m.weight:
        w = m.weight.detach().unsqueeze(2).to(dtype).contiguous(memory_format=torch.channels_last)
        b = m.bias.detach().to(dtype) if m.bias is not None else None
        hit = cache[dtype] = (m.weight, w, b)
    return hit[1], hit[2]


def conv(m: nn.Conv1d, x: torch.Tensor, dt: torch.dtype = FP32) -> torch.Tensor:
    w, b = _w4(m, dt)
    y = F.conv2d(x.to(dt), w, b, (1, m.stride[0]), (0, m.padding[0]), (1, m.dilation[0]))
    return y if dt == FP32 else y.float()


def conv_t(m: nn.ConvTranspose1d, x: torch.Tensor, dt: torch.dtype = FP32) -> torch.Tensor:
    w, b = _w4(m, dt)
    y = F.conv_transpose2d(x.to(dt), w, b, (1, m.stride[0]), (0, m.padding[0]))
    return y if dt == FP32 else y.float()


_FUSED: dict[str, bool] = {}


def conv_lrelu(m: nn.Conv1d, x: torch.Tensor, dt: torch.dtype = FP32) -> torch.Tensor:
    """``leaky_relu(conv(m, x))``: on CPU one oneDNN call with the activation fused into the convolution (the same
    numbers, one pass over the output less), else the two ops."""
    if _FUSED.get("ok", True) and x.device.type == "cpu":
        w, b = _w4(m, dt)
        try:
            y = torch.ops.mkldnn._convolution_pointwise(
                x.to(dt),
                w,
                b,
                [0, m.padding[0]],
                [1, m.stride[0]],
                [1, m.dilation[0]],
                1,
                "leaky_relu",
                [LRELU_SLOPE],
                "",
            )
            _FUSED["ok"] = True
            return y if dt == FP32 else y.float()
        except (AttributeError, RuntimeError, NotImplementedError):  # a torch without the op: plain path from now on
            _FUSED["ok"] = False
    return F.leaky_relu_(conv(m, x, dt), LRELU_SLOPE)


def to_cl(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T] -> [B, C, 1, T] channels-last."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


class ResBlock1(nn.Module):
    def __init__(self, ch: int, k: int, dilations: tuple):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(ch, ch, k, dilation=d, padding=(k * d - d) // 2) for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(ch, ch, k, padding=(k - 1) // 2) for _ in dilations)

    def forward(self, x: torch.Tensor, dt: torch.dtype = FP32, xa: torch.Tensor | None = None) -> torch.Tensor:
        """``xa``: ``leaky_relu(x)`` when the caller has it (the blocks of a stage share their input)."""
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = conv_lrelu(c1, F.leaky_relu(x, LRELU_SLOPE) if xa is None else xa, dt)
            xa = None
            x = conv(c2, xt, dt).add_(x)
        return x


class ResBlock2(nn.Module):
    def __init__(self, ch: int, k: int, dilations: tuple):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(ch, ch, k, dilation=d, padding=(k * d - d) // 2) for d in dilations)

    def forward(self, x: torch.Tensor, dt: torch.dtype = FP32, xa: torch.Tensor | None = None) -> torch.Tensor:
        for c in self.convs:
            x = conv(c, F.leaky_relu(x, LRELU_SLOPE) if xa is None else xa, dt).add_(x)
            xa = None
        return x


class SineSource(nn.Module):
    """NSF harmonic source: a sine at f0 (noise where unvoiced), merged by ``l_linear`` + tanh."""

    def __init__(self, sr: int, sine_amp: float = 0.1, noise_std: float = 0.003):
        super().__init__()
        self.sr, self.sine_amp, self.noise_std = sr, sine_amp, noise_std
        self.l_linear = nn.Linear(1, 1)

    def forward(self, f0: torch.Tensor, upp: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """f0 [B, T] in Hz -> source [B, 1, T*upp]."""
        f0 = f0.unsqueeze(-1)  # [B, T, 1]
        rad = (f0 / self.sr) % 1
        rand_ini = torch.rand(f0.shape[0], 1, generator=generator).to(f0.device)  # drawn (and zeroed) as RVC does
        rand_ini[:, 0] = 0
        rad[:, 0, :] = rad[:, 0, :] + rand_ini
        wrap = torch.cumsum(rad, 1) * upp
        wrap = F.interpolate(
            wrap.transpose(2, 1), scale_factor=float(upp), mode="linear", align_corners=True
        ).transpose(2, 1)
        rad = F.interpolate(rad.transpose(2, 1), scale_factor=float(upp), mode="nearest").transpose(2, 1)
        wrap = wrap % 1
        shift = torch.zeros_like(rad)
        shift[:, 1:, :] = ((wrap[:, 1:, :] - wrap[:, :-1, :]) < 0) * -1.0
        sine = torch.sin(torch.cumsum(rad + shift, dim=1) * 2 * math.pi) * self.sine_amp
        uv = F.interpolate((f0 > 0).to(f0.dtype).transpose(2, 1), scale_factor=float(upp), mode="nearest").transpose(
            2, 1
        )
        noise = (uv * self.noise_std + (1 - uv) * self.sine_amp / 3) * torch.randn(sine.shape, generator=generator).to(
            sine.device
        )
        sine = sine * uv + noise
        return torch.tanh(self.l_linear(sine)).transpose(1, 2)


class Decoder(nn.Module):
    """HiFi-GAN generator; with ``nsf`` it adds the harmonic source at every upsampling stage (NSF-HiFiGAN)."""

    def __init__(self, cfg: SynthConfig, nsf: bool):
        super().__init__()
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.upp = cfg.hop
        c0 = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.inter_channels, c0, 7, 1, padding=3)
        block = ResBlock1 if cfg.resblock == "1" else ResBlock2
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        if nsf:
            self.m_source = SineSource(cfg.sr)
            self.noise_convs = nn.ModuleList()
        rates = cfg.upsample_rates
        for i, (u, k) in enumerate(zip(rates, cfg.upsample_kernel_sizes)):
            ch = c0 // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(c0 // 2**i, ch, k, u, padding=(k - u) // 2))
            if nsf:
                s = math.prod(rates[i + 1 :])
                self.noise_convs.append(
                    nn.Conv1d(1, ch, s * 2, s, padding=s // 2) if i + 1 < len(rates) else nn.Conv1d(1, ch, 1)
                )
            for kk, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                self.resblocks.append(block(ch, kk, d))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=False)
        if cfg.gin_channels:
            self.cond = nn.Conv1d(cfg.gin_channels, c0, 1)
        self.compute_dtype = torch.float32  # torch.bfloat16: see the note above conv()

    def forward(
        self,
        x: torch.Tensor,
        f0: torch.Tensor | None,
        g: torch.Tensor | None,
        generator: torch.Generator | None = None,
        keep: tuple[int, int] = (0, 0),
    ) -> torch.Tensor:
        """Render ``x`` [B, C, T]; ``keep=(l, r)`` drops l/r output samples, rendering only the frames (plus the
        receptive field) that the rest depends on. The source is drawn for the whole input either way."""
        src = self.m_source(f0, self.upp, generator) if f0 is not None else None
        t, upp, r = x.shape[-1], self.upp, RECEPTIVE_FRAMES
        first, last = keep[0] // upp, t - keep[1] // upp  # frames whose output is (partly) kept
        pieces = []
        for s in range(first, last, TILE_FRAMES):  # tiles with their receptive field: bounded memory, same samples
            e = min(last, s + TILE_FRAMES)
            a, b = max(0, s - r), min(t, e + r)
            y = self._render(x[..., a:b], src[..., a * upp : b * upp] if src is not None else None, g)
            pieces.append(y[..., (s - a) * upp : (e - a) * upp])
        y = torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]
        lo = keep[0] - first * upp
        return y[..., lo : lo + t * upp - keep[0] - keep[1]]

    def _render(self, x: torch.Tensor, src: torch.Tensor | None, g: torch.Tensor | None) -> torch.Tensor:
        dt = self.compute_dtype
        x = conv(self.conv_pre, to_cl(x), dt)
        if g is not None:
            x = x + conv(self.cond, to_cl(g), dt)
        src = to_cl(src) if src is not None else None
        for i, up in enumerate(self.ups):
            x = conv_t(up, F.leaky_relu(x, LRELU_SLOPE), dt)
            if src is not None:
                x = x.add_(conv(self.noise_convs[i], src, dt))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xa = F.leaky_relu(x, LRELU_SLOPE)  # every block's first convolution reads it
            xs = blocks[0](x, dt, xa)
            for blk in blocks[1:]:
                xs = xs.add_(blk(x, dt, xa))
            del xa
            x = xs.div_(self.num_kernels)
        return torch.tanh(conv(self.conv_post, F.leaky_relu_(x))).squeeze(2)
