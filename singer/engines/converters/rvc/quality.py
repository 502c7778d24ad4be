"""How far a reduced-precision rendering is from the float32 one of the same input (benchmarks and tests).

Four figures, each comparing ``test`` with ``ref`` (mono float at ``sr``):

- ``mrstft``: multi-resolution STFT distance (FFT 512/1024/2048, hop 1/4, Hann): mean over resolutions of spectral
  convergence ``||S_ref - S||_F / ||S_ref||_F`` plus mean absolute log10 magnitude difference;
- ``logmel_db``: mean absolute difference of 80-band log-mel energies, dB (frames above -60 dB of the loudest);
- ``f0_cents``: 95th percentile of the absolute pitch difference, cents, over frames voiced in both (parselmouth);
- ``loudness_lu``: difference of integrated loudness (BS.1770, pyloudnorm).

:data:`THRESHOLDS` are what ``precision = "auto"`` requires of a reduced precision, measured on the full-size model
(``benchmarks/bench_rvc.py --precision``); why each limit is where it is is written beside it.
"""

from __future__ import annotations

import numpy as np

# Limits a reduced precision must meet against fp32 on the same input (see benchmarks/RESULTS.md, issue 17):
THRESHOLDS = {
    # RVC draws random noise (prior and NSF source): the same model and input with another seed -- two renderings
    # a listener takes for the same voice -- differ by 0.24 (full-size v2 40k, 30 s). A precision must add at most
    # half of that spread.
    "mrstft": 0.12,
    # 1 dB is about the smallest level change a listener notices in a band; the mean over bands must stay below
    # (another seed: 1.67 dB, so this is the stricter of the two spectral limits).
    "logmel_db": 1.0,
    # pitch differences under ~10-20 cents are not heard as out of tune in singing; the 95th percentile must be.
    "f0_cents": 20.0,
    # 0.5 LU is the tolerance singer's own loudness matching allows (mix targets are met within 0.5 LU).
    "loudness_lu": 0.5,
}


def _stft_mag(x: np.ndarray, n_fft: int) -> np.ndarray:
    from scipy import signal

    _, _, z = signal.stft(x, nperseg=n_fft, noverlap=n_fft - n_fft // 4, window="hann", boundary=None, padded=False)
    return np.abs(z)


def mrstft(ref: np.ndarray, test: np.ndarray) -> float:
    total = 0.0
    for n_fft in (512, 1024, 2048):
        a, b = _stft_mag(ref, n_fft), _stft_mag(test, n_fft)
        sc = float(np.linalg.norm(a - b)) / max(float(np.linalg.norm(a)), 1e-12)
        mag = np.mean(np.abs(np.log10(np.maximum(a, 1e-7)) - np.log10(np.maximum(b, 1e-7))))
        total += sc + mag
    return float(total / 3)


def _mel_fb(sr: int, n_fft: int, n_mels: int = 80) -> np.ndarray:
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = hz(np.linspace(mel(0), mel(sr / 2), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, mid, hi = edges[i : i + 3]
        fb[i] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return fb


def logmel_db(ref: np.ndarray, test: np.ndarray, sr: int) -> float:
    fb = _mel_fb(sr, 1024)
    a = 10 * np.log10(fb @ _stft_mag(ref, 1024) ** 2 + 1e-10)
    b = 10 * np.log10(fb @ _stft_mag(test, 1024) ** 2 + 1e-10)
    loud = a.max(axis=0) > a.max() - 60
    return float(np.mean(np.abs(a[:, loud] - b[:, loud])))


def f0_cents(ref: np.ndarray, test: np.ndarray, sr: int) -> float | None:
    import parselmouth

    def track(x: np.ndarray) -> np.ndarray:
        snd = parselmouth.Sound(x.astype(np.float64), sampling_frequency=sr)
        return snd.to_pitch_ac(time_step=0.01, pitch_floor=50, pitch_ceiling=1100).selected_array["frequency"]

    a, b = track(ref), track(test)
    n = min(len(a), len(b))
    both = (a[:n] > 0) & (b[:n] > 0)
    if not both.any():
        return None
    return float(np.percentile(np.abs(1200 * np.log2(b[:n][both] / a[:n][both])), 95))


def loudness_lu(ref: np.ndarray, test: np.ndarray, sr: int) -> float:
    import pyloudnorm

    meter = pyloudnorm.Meter(sr)
    return float(abs(meter.integrated_loudness(test.astype(np.float64)) - meter.integrated_loudness(ref)))


def compare(ref: np.ndarray, test: np.ndarray, sr: int) -> dict:
    """The four figures and whether each is within :data:`THRESHOLDS` (``ok``: all are)."""
    n = min(len(ref), len(test))
    ref, test = np.asarray(ref[:n], dtype=np.float64), np.asarray(test[:n], dtype=np.float64)
    figures = {
        "mrstft": mrstft(ref, test),
        "logmel_db": logmel_db(ref, test, sr),
        "f0_cents": f0_cents(ref, test, sr),
        "loudness_lu": loudness_lu(ref, test, sr),
    }
    within = {k: v is None or v <= THRESHOLDS[k] for k, v in figures.items()}
    return {
        **{k: None if v is None else round(v, 4) for k, v in figures.items()},
        "within": within,
        "ok": all(within.values()),
    }
