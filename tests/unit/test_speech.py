"""singer.speech: trimming bounds (silero-vad + energy gate) and the spectral-gating denoiser, on synthetic notes.

``speech_like`` and ``padded_note`` are also used by the voice-note workflow test and benchmarks/bench_speech.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from singer import speech
from singer.errors import UsageError
from tests.synth import make_synthetic_song

SR = 44100
_VOWELS = [(730, 1090, 2440), (530, 1840, 2480), (300, 2200, 2950), (570, 840, 2410), (330, 870, 2240)]


def speech_like(seconds: float = 3.0, sr: int = SR, seed: int = 0) -> tuple[np.ndarray, int, int]:
    """Speech-like mono float32 audio: syllables (a harmonic voice through vowel formants, falling intonation,
    20 ms attack, 40 ms release), half of them led by a noise consonant, with short gaps and now and then a pause.
    Returns (x, first, last): the first and one past the last sample that sounds."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n)
    f0_base = rng.uniform(100, 220)
    t, first, last = 0.0, None, 0
    while t < seconds - 0.3:
        s = int(t * sr)
        if rng.random() < 0.5:  # consonant: a band of noise, 30-80 ms
            m = min(int(rng.uniform(0.03, 0.08) * sr), n - s)
            spec = np.fft.rfft(rng.standard_normal(m))
            f = np.fft.rfftfreq(m, 1 / sr)
            burst = np.fft.irfft(spec * ((f > 2500) & (f < 8000)), m)
            out[s : s + m] += burst * 0.25 / (np.sqrt(np.mean(burst**2)) + 1e-12) * np.hanning(m)
            first = s if first is None else first
            last = max(last, s + m)
            s += int(0.8 * m)
        m = min(int(rng.uniform(0.12, 0.3) * sr), n - s)
        tt = np.arange(m) / sr
        f0 = f0_base * (1.1 - 0.2 * tt / tt[-1]) * (1 + 0.01 * np.sin(2 * np.pi * 5 * tt))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        formants = _VOWELS[rng.integers(len(_VOWELS))]
        v = np.zeros(m)
        for h in range(1, int(5000 / f0.mean())):
            fh = h * f0.mean()
            a = sum(g * np.exp(-0.5 * ((fh - fc) / (60 + 0.05 * fc)) ** 2) for g, fc in zip((1, 0.6, 0.3), formants))
            v += (a + 0.05 / h) * np.sin(h * phase)
        env = np.clip(tt / 0.02, 0, 1) * np.clip((tt[-1] - tt) / 0.04, 0, 1)
        out[s : s + m] += v * env * 0.2 / (np.sqrt(np.mean(v[env > 0.5] ** 2)) + 1e-12)
        first = s if first is None else first
        last = max(last, s + m)
        t = (s + m) / sr + (rng.uniform(0.3, 0.5) if rng.random() < 0.2 else rng.uniform(0.04, 0.2))
    return out.astype(np.float32), int(first), int(last)


def sung(seconds: float = 4.0, sr: int = SR, seed: int = 1) -> tuple[np.ndarray, int, int]:
    """The sung vocal of tests.synth's song (mono), with its first and last sounding sample."""
    _, vocals, _ = make_synthetic_song(seconds, sr, seed)
    x = vocals.mean(axis=0)
    loud = np.flatnonzero(np.abs(x) > 1e-4)
    return x, int(loud[0]), int(loud[-1]) + 1


def padded_note(
    kind: str = "speech",
    lead_s: float = 1.5,
    tail_s: float = 2.0,
    noise_dbfs: float | None = None,
    seed: int = 0,
    seconds: float = 3.0,
    sr: int = SR,
) -> tuple[np.ndarray, int, int]:
    """(1, n) float32: a speech-like (or sung) note between ``lead_s`` and ``tail_s`` of silence, or of white noise
    at ``noise_dbfs`` RMS over the whole note; with the true first and last sounding samples."""
    x, a, b = (speech_like if kind == "speech" else sung)(seconds, sr, seed)
    lead, tail = int(lead_s * sr), int(tail_s * sr)
    y = np.concatenate([np.zeros(lead, np.float32), x, np.zeros(tail, np.float32)])
    if noise_dbfs is not None:
        y = y + (10 ** (noise_dbfs / 20) * np.random.default_rng(seed + 100).standard_normal(y.size))
    return y[None].astype(np.float32), lead + a, lead + b


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((est.astype(np.float64) - ref) ** 2)))


def with_noise(clean: np.ndarray, snr: float, seed: int = 7) -> np.ndarray:
    """``clean`` plus white noise at ``snr`` dB below its mean power."""
    noise = np.random.default_rng(seed).standard_normal(clean.shape)
    noise *= np.sqrt(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2)) / 10 ** (snr / 20)
    return (clean + noise).astype(np.float32)


# ---- trimming ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind,noise_dbfs,seed",
    [
        ("speech", None, 0),
        ("speech", -60, 1),
        ("speech", -50, 2),
        ("sung", None, 1),
        ("sung", -55, 2),
    ],
)
def test_span_is_the_note_plus_padding(kind, noise_dbfs, seed):
    x, a, b = padded_note(kind, 1.5, 2.0, noise_dbfs, seed)
    start, end, info = speech.speech_span(x, SR)
    assert abs(start - (a - 0.15 * SR)) / SR < 0.25 and abs(end - (b + 0.15 * SR)) / SR < 0.25, (
        start / SR,
        end / SR,
        a / SR,
        b / SR,
    )
    assert info["lead_trimmed_s"] == pytest.approx(start / SR, abs=1e-3)
    assert info["tail_trimmed_s"] == pytest.approx((x.shape[1] - end) / SR, abs=1e-3)
    assert info["method"] in ("vad", "energy", "vad+energy") and 0 < info["speech_s"] < x.shape[1] / SR


@pytest.mark.parametrize("kind", ["speech", "sung"])
def test_energy_gate_alone_and_no_padding(kind):
    x, a, b = padded_note(kind, 1.0, 1.2, -60, seed=3)
    start, end, info = speech.speech_span(x, SR, pad_s=0.0, vad=False)
    assert info["method"] == "energy"
    assert abs(start - a) / SR < 0.1 and abs(end - b) / SR < 0.1


def test_sung_note_is_found_where_silero_hears_little():
    x, a, b = padded_note("sung", 1.5, 2.0, seed=1, seconds=6.0)
    vad = speech.vad_regions(x, SR)
    energy = speech.energy_regions(x, SR)
    assert energy and abs(energy[0][0] - a) / SR < 0.1 and abs(energy[-1][1] - b) / SR < 0.1
    assert sum(e - s for s, e in vad) < sum(e - s for s, e in energy)  # silero alone would cut into the singing


def test_stereo_and_one_dimensional_inputs_agree():
    x, _, _ = padded_note("speech", 1.0, 1.0, seed=4)
    mono = speech.speech_span(x[0], SR)
    stereo = speech.speech_span(np.concatenate([x, 0.5 * x]), SR)
    assert mono[:2] == speech.speech_span(x, SR)[:2]
    assert abs(mono[0] - stereo[0]) < 0.05 * SR and abs(mono[1] - stereo[1]) < 0.05 * SR


@pytest.mark.parametrize("signal", ["zeros", "faint", "steady_noise", "tiny"])
def test_nothing_to_trim_leaves_the_note_whole(signal):
    n = int(3.0 * SR)
    x = {
        "zeros": np.zeros((1, n), np.float32),
        "faint": (1e-4 * np.random.default_rng(0).standard_normal((1, n))).astype(np.float32),  # -80 dBFS
        "steady_noise": (0.03 * np.random.default_rng(1).standard_normal((1, n))).astype(np.float32),
        "tiny": np.zeros((1, 10), np.float32),
    }[signal]
    start, end, info = speech.speech_span(x, SR)
    assert (start, end) == (0, x.shape[1])
    assert info["lead_trimmed_s"] == info["tail_trimmed_s"] == 0.0
    if signal in ("zeros", "faint", "tiny"):
        assert info["method"] == "none" and info["speech_s"] == 0.0


def test_a_short_sound_keeps_at_least_min_keep():
    x = np.zeros((1, 3 * SR), np.float32)
    t = np.arange(int(0.12 * SR)) / SR
    x[0, SR : SR + t.size] = 0.3 * np.sin(2 * np.pi * 440 * t) * np.hanning(t.size)
    start, end, _ = speech.speech_span(x, SR, pad_s=0.0)
    assert end - start >= int(0.3 * SR) - 1 and start <= SR and end >= SR + t.size - 0.05 * SR


def test_short_lead_or_tail_is_not_cut():
    x, a, b = padded_note("speech", 0.3, 0.3, seed=5)  # 0.15 s past the padding on each side: under min_silence_s
    assert speech.speech_span(x, SR)[:2] == (0, x.shape[1])
    start, end, _ = speech.speech_span(x, SR, min_silence_s=0.0)
    assert start > 0.05 * SR and x.shape[1] - end > 0.02 * SR


def test_vad_probabilities_match_the_stock_silero_path(tmp_path):
    """Our ONNX loop gives the probabilities silero_vad's own model wrapper gives (in a subprocess: importing the
    silero_vad package sets torch's thread count for the whole process)."""
    x, _, _ = padded_note("speech", 0.5, 0.5, seed=6, sr=16000)
    np.save(tmp_path / "x.npy", x[0])
    code = (
        "import json, sys, numpy as np, torch\n"
        "from silero_vad import load_silero_vad\n"
        "x = np.load(sys.argv[1]); m = load_silero_vad(onnx=True); m.reset_states()\n"
        "p = [m(torch.from_numpy(np.pad(x[i:i + 512], (0, max(0, 512 - x[i:i + 512].size)))), 16000).item()\n"
        "     for i in range(0, x.size, 512)]\n"
        "print(json.dumps(p))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "x.npy")], capture_output=True, text=True, check=True
    )
    stock = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    ours = speech.speech_probabilities(x[0])
    assert ours.shape == stock.shape and np.abs(ours - stock).max() < 1e-4
    assert "torch" not in {m.split(".")[0] for m in _imported_by("singer.speech")}


def _imported_by(module: str) -> set[str]:
    """Modules a fresh interpreter has loaded after importing ``module`` and running a span."""
    code = (
        f"import sys, numpy as np, {module} as m\n"
        "m.speech_span(np.zeros((1, 16000), np.float32) + np.float32(0.1), 16000)\n"
        "print(' '.join(sys.modules))"
    )
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    return set(out.stdout.split())


# ---- denoising --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sr,n,channels", [(44100, 44100 * 2 + 37, 1), (48000, 1000, 2), (16000, 16000 + 5, 3), (22050, 5000, 1)]
)
def test_stft_reconstructs_exactly(sr, n, channels):
    x = np.random.default_rng(0).standard_normal((channels, n)).astype(np.float32)
    stft = speech.noise._Stft(sr, n)
    y = np.zeros_like(x)
    for k0 in range(0, stft.count, 7):  # odd block size: block edges everywhere
        k1 = min(stft.count, k0 + 7)
        stft.add(y, k0, stft.spectra(x, k0, k1))
    assert np.abs(y - x).max() < 1e-5


@pytest.mark.parametrize("seed", [0, 1])
def test_denoise_raises_snr_of_a_noisy_note(seed):
    clean, a, b = padded_note("speech", 1.0, 1.0, seed=seed, seconds=4.0)
    noisy = with_noise(clean, 5.0, seed)
    y, info = speech.denoise(noisy, SR)
    assert y.shape == noisy.shape and y.dtype == np.float32 and np.isfinite(y).all()
    gain = snr_db(clean, y) - snr_db(clean, noisy)
    assert gain >= 6.0, gain
    noise_rms_db = 10 * np.log10(np.mean((noisy - clean).astype(np.float64) ** 2))
    assert info["noise_floor_dbfs"] == pytest.approx(noise_rms_db, abs=1.5)
    assert info["reduction_db"] > 0
    # told where the speech is, it measures the noise in the silence around it
    y2, info2 = speech.denoise(noisy, SR, speech=[(a, b)])
    assert info2["noise_frames"] == "silence" and info2["noise_reduction_db"] > 15
    assert info2["noise_floor_dbfs"] == pytest.approx(noise_rms_db, abs=1.0)
    assert snr_db(clean, y2) - snr_db(clean, noisy) >= 6.0


def test_denoise_stronger_lowers_more_and_zero_is_identity():
    clean, _, _ = padded_note("speech", 1.0, 1.0, seed=2)
    noisy = with_noise(clean, 10.0)
    weak, strong = speech.denoise(noisy, SR, strength=0.25)[1], speech.denoise(noisy, SR, strength=1.0)[1]
    assert strong["noise_reduction_db"] > weak["noise_reduction_db"] + 5
    same, info = speech.denoise(noisy, SR, strength=0.0)
    assert np.array_equal(same, noisy) and info["reduction_db"] == 0.0


def test_denoise_leaves_a_clean_note_nearly_alone():
    clean, _, _ = padded_note("speech", 1.0, 1.0, seed=3)
    y, _ = speech.denoise(clean, SR)
    assert snr_db(clean, y) > 30
    x, _, _ = sung(4.0, SR, 2)  # a sung line with no silence around it: noise measured on its quietest frames
    y, info = speech.denoise(x, SR)
    assert snr_db(x, y) > 15, info


def test_denoise_without_silence_measures_the_quietest_frames():
    clean, _, _ = speech_like(4.0, SR, seed=4)
    noisy = with_noise(clean[None], 10.0)
    y, info = speech.denoise(noisy, SR, speech=[(0, noisy.shape[1])])  # all speech: no silent frame to measure
    assert info["noise_frames"] == "quietest"
    assert snr_db(clean[None], y) - snr_db(clean[None], noisy) >= 3.0


def test_denoise_shapes_channels_and_blocks():
    clean, _, _ = padded_note("speech", 0.5, 0.5, seed=5)
    noisy = with_noise(clean, 5.0)
    mono, _ = speech.denoise(noisy[0], SR)
    assert mono.shape == noisy[0].shape
    stereo, _ = speech.denoise(np.concatenate([noisy, noisy]), SR)
    assert np.allclose(stereo[0], stereo[1]) and np.allclose(stereo[0], mono, atol=1e-5)  # one gain for all channels
    small_blocks, _ = speech.denoise(noisy, SR, block_frames=50)
    assert np.allclose(small_blocks, mono[None], atol=1e-5)  # block edges leave no trace
    short = noisy[:, :1000]  # under one STFT frame: returned as is
    assert np.array_equal(speech.denoise(short, SR)[0], short)


# ---- ops --------------------------------------------------------------------------------------------------------
def test_ops_validate_their_params():
    from singer.workflow import ops

    trim, denoise = ops.get("trim"), ops.get("denoise")
    assert trim.bind(None, {"pad_s": 0.3}, None).params == {"pad_s": 0.3, "min_silence_s": 0.25, "vad": True}
    for bad in ({"pad_s": -1}, {"pad_s": "long"}, {"padding": 0.2}):
        with pytest.raises(UsageError, match="trim"):
            trim.bind(None, bad, None)
    with pytest.raises(UsageError, match="denoise"):
        denoise.bind(None, {"strength": 2}, None)
    assert denoise.is_noop(denoise.bind(None, {"strength": 0}, None))
    assert not denoise.is_noop(denoise.bind(None, {}, None))
