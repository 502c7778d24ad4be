"""RVC's synthesizer for inference: text encoder, normalising flow, (NSF-)HiFi-GAN decoder (:mod:`.decoder`),
speaker embedding.

Written for singer; the module and parameter names follow the RVC checkpoint layout (``enc_p.encoder.attn_layers.0
.conv_q.weight``, ``flow.flows.0.enc.in_layers.0.weight``, ``dec.ups.0.weight``, ``emb_g.weight``...) so community
``.pth`` files load as they are. Only the inference path exists (no posterior encoder, no discriminators).

Differences from the training code that keep the numbers but save time and memory:
- weight norm is folded into plain weights once, at load (``checkpoint.fold_weight_norm``);
- relative-position attention works on the 2*window+1 diagonals it uses, not on (T, 2T-1) padded matrices;
- single-utterance inference: no length masks (an all-ones mask multiplies exactly by one).
The random draws (prior noise, source phase, source noise) happen in the training code's order, so with the same
torch seed the output equals RVC's within float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .decoder import LRELU_SLOPE, Decoder

ATTN_ROWS = 512  # text-encoder attention rows per block


@dataclass(frozen=True)
class SynthConfig:
    """The ``config`` list stored in an RVC checkpoint, by name."""

    spec_channels: int
    segment_size: int
    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    p_dropout: float
    resblock: str
    resblock_kernel_sizes: tuple
    resblock_dilation_sizes: tuple
    upsample_rates: tuple
    upsample_initial_channel: int
    upsample_kernel_sizes: tuple
    spk_embed_dim: int
    gin_channels: int
    sr: int

    @classmethod
    def from_list(cls, values: list) -> SynthConfig:
        v = list(values)
        if len(v) != 18:
            raise ValueError(f"config has {len(v)} entries, expected 18")
        sr = v[17]
        if isinstance(sr, str):
            sr = int(sr.rstrip("k")) * 1000
        tup = lambda x: tuple(tuple(i) if isinstance(i, list | tuple) else i for i in x)  # noqa: E731
        return cls(
            int(v[0]),
            int(v[1]),
            int(v[2]),
            int(v[3]),
            int(v[4]),
            int(v[5]),
            int(v[6]),
            int(v[7]),
            float(v[8]),
            str(v[9]),
            tup(v[10]),
            tup(v[11]),
            tup(v[12]),
            int(v[13]),
            tup(v[14]),
            int(v[15]),
            int(v[16]),
            int(sr),
        )

    def to_list(self) -> list:
        lst = lambda x: [list(i) if isinstance(i, tuple) else i for i in x]  # noqa: E731
        return [
            self.spec_channels,
            self.segment_size,
            self.inter_channels,
            self.hidden_channels,
            self.filter_channels,
            self.n_heads,
            self.n_layers,
            self.kernel_size,
            self.p_dropout,
            self.resblock,
            lst(self.resblock_kernel_sizes),
            lst(self.resblock_dilation_sizes),
            lst(self.upsample_rates),
            self.upsample_initial_channel,
            lst(self.upsample_kernel_sizes),
            self.spk_embed_dim,
            self.gin_channels,
            self.sr,
        ]

    @property
    def hop(self) -> int:
        return math.prod(self.upsample_rates)


# --- text encoder -----------------------------------------------------------------------------------------------
class LayerNorm(nn.Module):
    """Layer norm over channels of a [B, C, T] tensor (parameters ``gamma``/``beta``)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels, self.eps = channels, eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class MultiHeadAttention(nn.Module):
    """Self-attention with windowed relative position embeddings (keys and values), heads sharing them."""

    def __init__(self, channels: int, n_heads: int, window: int = 10):
        super().__init__()
        self.n_heads, self.window, self.k_channels = n_heads, window, channels // n_heads
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        self.emb_rel_k = nn.Parameter(torch.zeros(1, 2 * window + 1, self.k_channels))
        self.emb_rel_v = nn.Parameter(torch.zeros(1, 2 * window + 1, self.k_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        h, d = self.n_heads, self.k_channels
        q = self.conv_q(x).view(b, h, d, t).transpose(2, 3) / math.sqrt(d)
        k = self.conv_k(x).view(b, h, d, t).transpose(2, 3)
        v = self.conv_v(x).view(b, h, d, t).transpose(2, 3)
        # Rows (queries) in blocks: softmax is per row, so the result is the same and memory is block x t, not t x t.
        out = torch.cat([self._rows(q[:, :, r : r + ATTN_ROWS], k, v, r) for r in range(0, t, ATTN_ROWS)], dim=2)
        return self.conv_o(out.transpose(2, 3).contiguous().view(b, c, t))

    def _rows(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, r0: int) -> torch.Tensor:
        """Attention output for query rows r0.. (q already scaled) against all t keys."""
        w, t, n = self.window, k.shape[2], q.shape[2]
        scores = torch.matmul(q, k.transpose(-2, -1))  # [b, h, n, t]
        rel = torch.matmul(q, self.emb_rel_k.unsqueeze(0).transpose(-2, -1))  # [b, h, n, 2w+1]
        rows, cols, offs = _band_index(r0, n, t, w)  # (i, i+o) for every row i and |o| <= w inside the matrix
        scores[:, :, rows, cols] += rel[:, :, rows, offs]
        p = torch.softmax(scores, dim=-1)
        band = q.new_zeros(*q.shape[:3], 2 * w + 1)
        band[:, :, rows, offs] = p[:, :, rows, cols]
        return torch.matmul(p, v) + torch.matmul(band, self.emb_rel_v.unsqueeze(0))


def _band_index(r0: int, n: int, t: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Local row, column and offset slot of every in-range (row i, column i+o) pair, rows r0..r0+n, |o| <= w."""
    i = torch.arange(r0, r0 + n).unsqueeze(1)
    o = torch.arange(-w, w + 1).unsqueeze(0)
    ok = ((i + o) >= 0) & ((i + o) < t)
    rows, offs = torch.nonzero(ok, as_tuple=True)
    return rows, rows + r0 + offs - w, offs


class FFN(nn.Module):
    def __init__(self, channels: int, filter_channels: int, kernel_size: int):
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(F.pad(x, self.pad)))
        return self.conv_2(F.pad(x, self.pad))


class Encoder(nn.Module):
    def __init__(self, hidden: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int):
        super().__init__()
        self.attn_layers = nn.ModuleList(MultiHeadAttention(hidden, n_heads) for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(LayerNorm(hidden) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(FFN(hidden, filter_channels, kernel_size) for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(LayerNorm(hidden) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, n1, ffn, n2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = n1(x + attn(x))
            x = n2(x + ffn(x))
        return x


class TextEncoder(nn.Module):
    """Content features (+ coarse pitch) -> prior mean and log-scale."""

    def __init__(self, in_dim: int, cfg: SynthConfig, f0: bool):
        super().__init__()
        self.hidden, self.out_channels = cfg.hidden_channels, cfg.inter_channels
        self.emb_phone = nn.Linear(in_dim, cfg.hidden_channels)
        if f0:
            self.emb_pitch = nn.Embedding(256, cfg.hidden_channels)
        self.encoder = Encoder(cfg.hidden_channels, cfg.filter_channels, cfg.n_heads, cfg.n_layers, cfg.kernel_size)
        self.proj = nn.Conv1d(cfg.hidden_channels, cfg.inter_channels * 2, 1)

    def forward(self, phone: torch.Tensor, pitch: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.emb_phone(phone)
        if pitch is not None:
            x = x + self.emb_pitch(pitch)
        x = F.leaky_relu(x * math.sqrt(self.hidden), LRELU_SLOPE).transpose(1, -1)
        stats = self.proj(self.encoder(x))
        return stats[:, : self.out_channels], stats[:, self.out_channels :]


# --- flow ---------------------------------------------------------------------------------------------------------
class WN(nn.Module):
    """WaveNet-style gated dilated convolutions conditioned on the speaker."""

    def __init__(self, hidden: int, kernel_size: int, dilation_rate: int, n_layers: int, gin_channels: int):
        super().__init__()
        self.hidden = hidden
        if gin_channels:
            self.cond_layer = nn.Conv1d(gin_channels, 2 * hidden * n_layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            d = dilation_rate**i
            self.in_layers.append(
                nn.Conv1d(hidden, 2 * hidden, kernel_size, dilation=d, padding=(kernel_size * d - d) // 2)
            )
            self.res_skip_layers.append(nn.Conv1d(hidden, 2 * hidden if i < n_layers - 1 else hidden, 1))

    def forward(self, x: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        h = self.hidden
        g = self.cond_layer(g) if g is not None else None
        out = None
        last = len(self.in_layers) - 1
        for i, (inl, rsl) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            a = inl(x)
            if g is not None:
                a = a + g[:, i * 2 * h : (i + 1) * 2 * h]
            rs = rsl(torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:]))
            skip = rs if i == last else rs[:, h:]
            if i < last:
                x = x + rs[:, :h]
            out = skip if out is None else out + skip
        return out


class CouplingLayer(nn.Module):
    """Mean-only affine coupling layer (RVC's ResidualCouplingLayer), run in reverse for synthesis."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, dilation_rate: int, n_layers: int, gin: int):
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WN(hidden, kernel_size, dilation_rate, n_layers, gin)
        self.post = nn.Conv1d(hidden, self.half, 1)

    def reverse(self, x: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        x0, x1 = x[:, : self.half], x[:, self.half :]
        m = self.post(self.enc(self.pre(x0), g))
        return torch.cat([x0, x1 - m], 1)


class Flip(nn.Module):
    def reverse(self, x: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        return torch.flip(x, [1])


class Flow(nn.Module):
    def __init__(self, channels: int, hidden: int, gin: int, n_flows: int = 4):
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(CouplingLayer(channels, hidden, 5, 1, 3, gin))
            self.flows.append(Flip())

    def reverse(self, z: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        for f in reversed(self.flows):
            z = f.reverse(z, g)
        return z


class Synthesizer(nn.Module):
    """RVC v1 (256-dim content) / v2 (768-dim), with or without pitch; ``infer`` as RVC's."""

    def __init__(self, cfg: SynthConfig, version: str, f0: bool):
        super().__init__()
        self.cfg, self.version, self.f0 = cfg, version, f0
        self.enc_p = TextEncoder(768 if version == "v2" else 256, cfg, f0)
        self.dec = Decoder(cfg, nsf=f0)
        self.flow = Flow(cfg.inter_channels, cfg.hidden_channels, cfg.gin_channels)
        self.emb_g = nn.Embedding(cfg.spk_embed_dim, cfg.gin_channels)

    def infer(
        self,
        phone: torch.Tensor,
        pitch: torch.Tensor | None,
        pitchf: torch.Tensor | None,
        sid: int = 0,
        generator: torch.Generator | None = None,
        keep: tuple[int, int] = (0, 0),
    ) -> torch.Tensor:
        """phone [1, T, 256|768]; pitch (coarse, long) and pitchf (Hz) [1, T] for f0 models -> audio [1, 1, T*hop]
        (less ``keep`` = (left, right) samples). Random draws come from ``generator`` (default: torch's global RNG)."""
        g = self.emb_g(torch.tensor([sid], device=phone.device)).unsqueeze(-1)
        m_p, logs_p = self.enc_p(phone, pitch if self.f0 else None)
        noise = torch.randn(m_p.shape, generator=generator).to(m_p.device)  # drawn on the CPU: same numbers anywhere
        z_p = m_p + torch.exp(logs_p) * noise * 0.66666
        z = self.flow.reverse(z_p, g)
        return self.dec(z, pitchf if self.f0 else None, g, generator, keep)
