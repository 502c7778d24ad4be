"""Plots for the HTML reports, drawn with numpy alone: waveforms and pitch curves as inline SVG (crisp at any zoom,
a few kB each), spectrograms as PNG (a log-frequency STFT image through a perceptual colour map, PNG-encoded with
zlib). No plotting library, so reports render fast enough to write one per file of a batch.
"""

from __future__ import annotations

import math
import struct
import zlib
from html import escape

import numpy as np

WIDTH, WAVE_H, SPEC_H, PITCH_H = 960, 110, 200, 220

# A magma-like map: anchors (position, r, g, b) interpolated into a 256-entry table.
_ANCHORS = [(0.0, 0, 0, 4), (0.25, 80, 18, 123), (0.5, 182, 54, 121), (0.75, 251, 136, 97), (1.0, 252, 253, 191)]
_LUT = np.stack(
    [np.interp(np.linspace(0, 1, 256), [a[0] for a in _ANCHORS], [a[i] for a in _ANCHORS]) for i in (1, 2, 3)], axis=1
).astype(np.uint8)


def png(rgb: np.ndarray) -> bytes:
    """Encode an (h, w, 3) uint8 image as PNG."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))  # filter type 0 per row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def mono(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x.mean(axis=0) if x.ndim == 2 else x


def waveform_svg(x: np.ndarray, sr: int, width: int = WIDTH, height: int = WAVE_H, color: str = "#3b6fd8") -> str:
    """Min/max envelope per pixel column with a time axis in seconds."""
    y = mono(x)
    n = len(y)
    cols = max(1, min(width, n))
    edges = np.linspace(0, n, cols + 1).astype(int)
    lo = np.minimum.reduceat(y, edges[:-1]) if n else np.zeros(cols)
    hi = np.maximum.reduceat(y, edges[:-1]) if n else np.zeros(cols)
    peak = max(float(np.max(np.abs(y))) if n else 0.0, 1e-9)
    mid, amp = height / 2, height / 2 - 2
    xs = np.arange(cols) * width / cols
    top = " ".join(f"{a:.1f},{mid - amp * v / peak:.1f}" for a, v in zip(xs, hi))
    bottom = " ".join(f"{a:.1f},{mid - amp * v / peak:.1f}" for a, v in zip(xs[::-1], lo[::-1]))
    ticks = _time_ticks(n / sr if sr else 0.0, width, height)
    label = f"waveform, {n / sr:.1f} s, peak {20 * math.log10(peak):.1f} dBFS" if sr else "waveform"
    return (
        f'<svg class="wave" viewBox="0 0 {width} {height + 14}" width="100%" role="img" aria-label="{label}">'
        f'<rect width="{width}" height="{height}" fill="#f6f7fb"/>'
        f'<line x1="0" x2="{width}" y1="{mid}" y2="{mid}" stroke="#ccd"/>'
        f'<polygon points="{top} {bottom}" fill="{color}"/>{ticks}</svg>'
    )


def _time_ticks(seconds: float, width: int, height: int) -> str:
    if seconds <= 0:
        return ""
    step = next((s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300) if seconds / s <= 12), 600)
    out = []
    t = 0.0
    while t <= seconds + 1e-9:
        x = t / seconds * width
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{height}" y2="{height + 4}" stroke="#889"/>'
            f'<text x="{min(x + 2, width - 24):.1f}" y="{height + 13}" font-size="10" fill="#556">'
            f"{_clock(t)}</text>"
        )
        t += step
    return "".join(out)


def _clock(t: float) -> str:
    return f"{int(t // 60)}:{t % 60:04.1f}" if t % 1 else f"{int(t // 60)}:{int(t % 60):02d}"


def spectrogram_png(
    x: np.ndarray, sr: int, width: int = WIDTH, height: int = SPEC_H, fmin: float = 40.0, range_db: float = 80.0
) -> bytes:
    """Log-frequency magnitude spectrogram (fmin .. sr/2, ``range_db`` below the loudest bin) as PNG bytes."""
    y = mono(x)
    nfft = 1 << max(8, int(round(math.log2(sr * 0.046))))  # ~46 ms windows (2048 at 44.1 kHz)
    hop = nfft // 4
    if len(y) < nfft:
        y = np.pad(y, (0, nfft - len(y)))
    n_frames = 1 + (len(y) - nfft) // hop
    frames = np.lib.stride_tricks.as_strided(y, (n_frames, nfft), (y.strides[0] * hop, y.strides[0]))
    window = np.hanning(nfft).astype(np.float32)
    freqs = np.fft.rfftfreq(nfft, 1.0 / sr)
    rows = np.geomspace(fmin, sr / 2, height)[::-1]  # top row = highest frequency
    idx = np.clip(np.searchsorted(freqs, rows), 1, len(freqs) - 1)
    power = np.empty((n_frames, height), np.float32)
    for i in range(0, n_frames, 512):  # blocks: only the rows drawn are kept, never a whole complex STFT
        power[i : i + 512] = (np.abs(np.fft.rfft(frames[i : i + 512] * window, axis=1)) ** 2)[:, idx]
    db = 10 * np.log10(power.T + 1e-12)  # (height, frames)
    if n_frames >= width:  # the loudest frame of each column
        db = np.maximum.reduceat(db, np.linspace(0, n_frames, width + 1).astype(int)[:-1], axis=1)
    else:
        db = db[:, np.linspace(0, n_frames - 1, width).round().astype(int)]
    top = float(db.max())
    level = np.clip((db - (top - range_db)) / range_db, 0, 1)
    return png(_LUT[(level * 255).astype(np.uint8)])


def pitch_svg(
    curves: list[tuple[str, np.ndarray, str]], frame_period: float, width: int = WIDTH, height: int = PITCH_H
) -> str:
    """Pitch curves (label, f0 in Hz per frame with 0 = unvoiced, colour) on a log-frequency axis with note
    gridlines; gaps where unvoiced."""
    voiced = np.concatenate([c[1][c[1] > 0] for c in curves]) if curves else np.zeros(0)
    if not len(voiced):
        return '<p class="muted">No voiced frames found.</p>'
    lo, hi = np.percentile(voiced, 1) / 1.15, np.percentile(voiced, 99) * 1.15
    lo, hi = max(lo, 30.0), max(hi, lo * 2)
    n = max(len(c[1]) for c in curves)
    seconds = n * frame_period / 1000

    def ypos(f):
        return (1 - (np.log(f) - math.log(lo)) / (math.log(hi) - math.log(lo))) * (height - 4) + 2

    parts = [
        f'<svg class="pitch" viewBox="0 0 {width} {height + 30}" width="100%" role="img" aria-label="pitch curves">',
        f'<rect width="{width}" height="{height}" fill="#f6f7fb"/>',
    ]
    for midi in range(int(12 * math.log2(lo / 440) + 69) + 1, int(12 * math.log2(hi / 440) + 69) + 1):
        if midi % 12 in (0, 9):  # every C and A
            f = 440 * 2 ** ((midi - 69) / 12)
            y = ypos(f)
            name = ("C", "", "", "", "", "", "", "", "", "A")[midi % 12] + str(midi // 12 - 1)
            parts.append(
                f'<line x1="0" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dde"/>'
                f'<text x="2" y="{y - 2:.1f}" font-size="10" fill="#778">{name} {f:.0f} Hz</text>'
            )
    for label, f0, color in curves:
        bins = np.linspace(0, len(f0), min(len(f0), width * 2) + 1).astype(int)
        paths = []
        run: list[str] = []
        for a, b in zip(bins[:-1], bins[1:]):
            seg = f0[a : max(b, a + 1)]
            seg = seg[seg > 0]
            if len(seg) == 0:
                if len(run) > 1:
                    paths.append(run)
                run = []
                continue
            run.append(f"{a / n * width:.1f},{ypos(float(np.median(seg))):.1f}")
        if len(run) > 1:
            paths.append(run)
        d = " ".join("M" + " L".join(r) for r in paths)
        parts.append(
            f'<path class="curve" data-label="{escape(label)}" d="{d}" fill="none" stroke="{color}" '
            f'stroke-width="1.6"/>'
        )
    parts.append(_time_ticks(seconds, width, height))
    legend = "".join(f'<tspan fill="{c}" dx="12">&#9644; {escape(label)}</tspan>' for label, _, c in curves)
    parts.append(f'<text x="0" y="{height + 28}" font-size="12">{legend}</text></svg>')
    return "".join(parts)
