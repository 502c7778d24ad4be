"""RMVPE pitch estimator (Wei et al., 2023) as RVC uses it, with no librosa at run time.

A log-mel spectrogram (16 kHz, hop 160, 1024-point Hann STFT, 128 HTK mels 30-8000 Hz) goes through a 5-level
U-Net and a bidirectional GRU that scores 360 pitch bins (20 cents apart) per 10 ms frame; the pitch is the
salience-weighted mean of the 9 bins around the best one, 0 where the best score is at or below ``thred``.

Module and parameter names follow RVC's ``E2E(4, 1, (2, 2))`` so a real ``rmvpe.pt`` state dict loads with
``strict=True``. This module imports torch at the top; :mod:`singer.engines.converters.rvc.f0` imports it only when RMVPE is used.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SR, HOP, N_FFT, N_MELS, FMIN, FMAX = 16000, 160, 1024, 128, 30.0, 8000.0
N_BINS = 360
CENTS = np.pad(20 * np.arange(N_BINS) + 1997.3794084376191, (4, 4))  # bin -> cents re 10 Hz, 4 zero bins each side
MAX_FRAMES = 6016  # frames (about 60 s) run in one pass, exactly as RVC does; longer input goes in overlapping chunks
CONTEXT = 256  # frames of context either side of a chunk's core (cropped away after the model)


def mel_filterbank(
    sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = FMIN, fmax: float = FMAX
) -> np.ndarray:
    """Triangular HTK-mel filters with Slaney area normalisation, float32 [n_mels, n_fft//2+1].

    Equals ``librosa.filters.mel(sr=, n_fft=, n_mels=, fmin=, fmax=, htk=True)`` (norm="slaney").
    """

    def to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    edges = 700.0 * (10.0 ** (np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2) / 2595.0) - 1.0)
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, fft_freqs)
    weights = np.zeros((n_mels, len(fft_freqs)), dtype=np.float32)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, None]
    return weights


def _conv_bn_relu(conv: nn.Module, channels: int) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(channels, momentum=0.01), nn.ReLU()]


class ConvBlockRes(nn.Module):
    """Two 3x3 conv+BN+ReLU with a residual path (1x1 conv ``shortcut`` when the width changes)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(
            *_conv_bn_relu(nn.Conv2d(cin, cout, 3, padding=1, bias=False), cout),
            *_conv_bn_relu(nn.Conv2d(cout, cout, 3, padding=1, bias=False), cout),
        )
        if cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.shortcut(x) if hasattr(self, "shortcut") else x
        return self.conv(x) + skip


class ResEncoderBlock(nn.Module):
    """``n_blocks`` residual blocks, then (in the encoder) a 2x2 average pool; returns (features, pooled)."""

    def __init__(self, cin: int, cout: int, pool: tuple[int, int] | None, n_blocks: int):
        super().__init__()
        self.conv = nn.ModuleList([ConvBlockRes(cin if i == 0 else cout, cout) for i in range(n_blocks)])
        self.pool = nn.AvgPool2d(pool) if pool is not None else None

    def forward(self, x: torch.Tensor):
        for block in self.conv:
            x = block(x)
        return x if self.pool is None else (x, self.pool(x))


class Encoder(nn.Module):
    def __init__(self, cin: int, n_levels: int, pool: tuple[int, int], n_blocks: int, width: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin, momentum=0.01)
        self.layers = nn.ModuleList()
        for _ in range(n_levels):
            self.layers.append(ResEncoderBlock(cin, width, pool, n_blocks))
            cin, width = width, width * 2
        self.out_channel = width

    def forward(self, x: torch.Tensor):
        skips = []
        x = self.bn(x)
        for layer in self.layers:
            skip, x = layer(x)
            skips.append(skip)
        return x, skips


class Intermediate(nn.Module):
    def __init__(self, cin: int, cout: int, n_layers: int, n_blocks: int):
        super().__init__()
        self.layers = nn.ModuleList(
            [ResEncoderBlock(cin if i == 0 else cout, cout, None, n_blocks) for i in range(n_layers)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class ResDecoderBlock(nn.Module):
    """Transposed-conv upsampling, concatenation with the encoder skip, residual blocks."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int], n_blocks: int):
        super().__init__()
        up = nn.ConvTranspose2d(
            cin,
            cout,
            3,
            stride=stride,
            padding=1,
            output_padding=(0, 1) if tuple(stride) == (1, 2) else (1, 1),
            bias=False,
        )
        self.conv1 = nn.Sequential(*_conv_bn_relu(up, cout))
        self.conv2 = nn.ModuleList([ConvBlockRes(cout * 2 if i == 0 else cout, cout) for i in range(n_blocks)])

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.conv1(x), skip), dim=1)
        for block in self.conv2:
            x = block(x)
        return x


class Decoder(nn.Module):
    def __init__(self, cin: int, n_levels: int, stride: tuple[int, int], n_blocks: int):
        super().__init__()
        self.layers = nn.ModuleList(
            [ResDecoderBlock(cin >> i, cin >> (i + 1), stride, n_blocks) for i in range(n_levels)]
        )

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for layer, skip in zip(self.layers, reversed(skips)):
            x = layer(x, skip)
        return x


class DeepUnet(nn.Module):
    def __init__(self, pool: tuple[int, int], n_blocks: int, levels: int = 5, inters: int = 4, width: int = 16):
        super().__init__()
        self.encoder = Encoder(1, levels, pool, n_blocks, width)
        self.intermediate = Intermediate(self.encoder.out_channel // 2, self.encoder.out_channel, inters, n_blocks)
        self.decoder = Decoder(self.encoder.out_channel, levels, pool, n_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BiGRU(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_layers: int):
        super().__init__()
        self.gru = nn.GRU(n_in, n_hidden, num_layers=n_layers, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class E2E(nn.Module):
    """mel [B, 128, T] -> bin salience [B, T, 360] in 0..1. RVC's checkpoint is ``E2E(4, 1, (2, 2))``."""

    def __init__(self, n_blocks: int = 4, n_gru: int = 1, pool: tuple[int, int] = (2, 2), width: int = 16):
        super().__init__()
        self.unet = DeepUnet(pool, n_blocks, width=width)
        self.cnn = nn.Conv2d(width, 3, 3, padding=1)
        self.fc = nn.Sequential(BiGRU(3 * N_MELS, 256, n_gru), nn.Linear(512, N_BINS), nn.Dropout(0.25), nn.Sigmoid())

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.cnn(self.unet(mel.transpose(-1, -2).unsqueeze(1)))  # [B, 3, T, 128]
        return self.fc(x.transpose(1, 2).flatten(-2))


class RMVPE:
    """A loaded RMVPE: ``f0(audio)`` gives Hz per 10 ms frame (``1 + len // 160`` frames), 0 = unvoiced."""

    def __init__(self, state_dict: dict):
        with torch.device("meta"):  # no random init: every tensor comes from the checkpoint
            self.model = E2E()
        self.model.load_state_dict(state_dict, strict=True, assign=True)  # RuntimeError on wrong keys/shapes
        self.model.float().eval()
        self.mel_basis = torch.from_numpy(mel_filterbank())
        self.window = torch.hann_window(N_FFT)

    def log_mel(self, audio: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Log-mel frames [start, stop) of ``audio`` reflect-padded by N_FFT/2 (i.e. a centred STFT) -> [1, 128, n]."""
        seg = audio[start * HOP : (stop - 1) * HOP + N_FFT]
        spec = torch.stft(seg, N_FFT, HOP, N_FFT, window=self.window, center=False, return_complex=True)
        magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2))
        return torch.log(torch.clamp(self.mel_basis @ magnitude, min=1e-5)).unsqueeze(0)

    def salience(self, audio: np.ndarray, max_frames: int = MAX_FRAMES, context: int = CONTEXT) -> np.ndarray:
        """Bin salience [frames, 360]. Up to ``max_frames`` in one pass; longer input in chunks of that size whose
        ``context`` frames either side are cut off again, so memory stays bounded."""
        x = torch.as_tensor(np.ascontiguousarray(audio), dtype=torch.float32)
        if x.numel() <= N_FFT // 2:  # reflect padding needs more samples than the pad
            x = torch.nn.functional.pad(x, (0, N_FFT // 2 + 1 - x.numel()))
        n = x.numel() // HOP + 1
        padded = torch.nn.functional.pad(x[None, None], (N_FFT // 2, N_FFT // 2), mode="reflect")[0, 0]
        core = n if n <= max_frames else max(32, max_frames - 2 * context)
        out = np.empty((n, N_BINS), dtype=np.float32)
        with torch.inference_mode():
            for a in range(0, n, core):
                b = min(n, a + core)
                lo, hi = (a, b) if core == n else (max(0, a - context), min(n, b + context))
                mel = self.log_mel(padded, lo, hi)
                pad = -(hi - lo) % 32  # the U-Net needs a multiple of 32 frames
                hidden = self.model(torch.nn.functional.pad(mel, (0, pad)))[0]
                out[a:b] = hidden[a - lo : b - lo].numpy()
        return out

    def f0(self, audio: np.ndarray, thred: float = 0.03, **chunking) -> np.ndarray:
        return decode(self.salience(audio, **chunking), thred)


def decode(salience: np.ndarray, thred: float = 0.03) -> np.ndarray:
    """Local weighted average of the 9 bins around each frame's peak -> Hz (float64); 0 where peak <= thred."""
    padded = np.pad(salience, ((0, 0), (4, 4)))
    idx = np.argmax(salience, axis=1)[:, None] + np.arange(9)  # window start = peak - 4, in padded coordinates
    window = np.take_along_axis(padded, idx, axis=1)
    cents = np.sum(window * CENTS[idx], 1) / np.sum(window, 1)
    cents[np.max(padded, axis=1) <= thred] = 0
    f0 = 10 * (2 ** (cents / 1200))
    f0[f0 == 10] = 0
    return f0
