"""BS.1770 loudness against pyloudnorm, true peak, and the mixer's loudness/peak/length guarantees."""

from __future__ import annotations

import numpy as np
import pyloudnorm as pyln
import pytest

from singer.audio import read_wav, write_wav
from singer.loudness import integrated_loudness, true_peak_db
from singer.mix import MixParams, mix


def _signal(sr, seconds=8.0, seed=0, channels=2):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 330 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    x = np.stack([x + 0.05 * rng.standard_normal(t.size) for _ in range(channels)])
    x[:, :sr] *= 0.001  # a quiet intro exercises the gates
    return x.astype(np.float32)


@pytest.mark.parametrize("sr", [16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_loudness_matches_pyloudnorm(sr, channels):
    x = _signal(sr, channels=channels)
    ref = pyln.Meter(sr, filter_class="DeMan").integrated_loudness(x.T.astype(np.float64))
    assert integrated_loudness(x, sr) == pytest.approx(ref, abs=0.01)
    blocks = [x[:, i : i + 7777] for i in range(0, x.shape[1], 7777)]
    assert integrated_loudness(blocks, sr) == pytest.approx(ref, abs=0.01)


def test_true_peak_sees_intersample_peaks():
    sr = 44100
    t = np.arange(sr) / sr
    x = np.sin(2 * np.pi * (sr / 4) * t + np.pi / 4)[None].astype(np.float32)  # samples at +-0.707, true peak 1.0
    assert np.abs(x).max() == pytest.approx(0.707, abs=0.01)
    assert true_peak_db(x) == pytest.approx(0.0, abs=0.2)


@pytest.fixture
def stems(tmp_path):
    sr = 44100
    n = sr * 12
    rng = np.random.default_rng(3)
    t = np.arange(n) / sr
    vocal = (
        0.25
        * np.sin(2 * np.pi * 220 * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t)))
        * (np.sin(2 * np.pi * 0.4 * t) > -0.3)
    )
    inst = 0.6 * np.sin(2 * np.pi * 55 * t) + 0.1 * rng.standard_normal(n)
    vocals = np.stack([vocal, vocal * 0.9]).astype(np.float32)
    instrumental = np.stack([inst, inst]).astype(np.float32)
    converted = (vocals[:1] * 0.1).astype(np.float32)  # a quieter mono "converted" vocal
    paths = {}
    for name, data in {"vocals": vocals, "instrumental": instrumental, "converted": converted}.items():
        paths[name] = tmp_path / f"{name}.wav"
        write_wav(paths[name], data, sr)
    return paths, vocals, instrumental, sr


@pytest.mark.parametrize("target", [-14.0, -20.0, -9.0])
def test_mix_hits_target_and_peak(stems, tmp_path, target):
    paths, vocals, instrumental, sr = stems
    out = tmp_path / "mix.wav"
    figs = mix(
        paths["converted"],
        out,
        MixParams(target_lufs=target),
        instrumental=paths["instrumental"],
        reference_vocals=paths["vocals"],
    )
    y, ysr = read_wav(out)
    assert ysr == sr and y.shape == instrumental.shape  # same length, stereo
    assert integrated_loudness(y, sr) == pytest.approx(target, abs=0.5)
    assert true_peak_db(y) <= -1.0 + 1e-3
    assert figs["output_true_peak_db"] <= -1.0


def test_mix_keeps_vocal_to_instrumental_balance(stems, tmp_path):
    """Converted vocals are matched to the original vocal stem: the vocal/instrumental ratio is preserved."""
    paths, vocals, instrumental, sr = stems
    figs = mix(
        paths["converted"],
        tmp_path / "m.wav",
        MixParams(target_lufs=-20),
        instrumental=paths["instrumental"],
        reference_vocals=paths["vocals"],
    )
    orig_ratio = integrated_loudness(vocals, sr) - integrated_loudness(instrumental, sr)
    conv = read_wav(paths["converted"])[0] * 10 ** (figs["vocal_gain_db"] / 20)
    new_ratio = integrated_loudness(np.repeat(conv, 2, axis=0), sr) - integrated_loudness(instrumental, sr)
    assert new_ratio == pytest.approx(orig_ratio, abs=1.0)


def test_mix_refuses_silence(tmp_path):
    from singer.errors import InputError

    p = tmp_path / "s.wav"
    write_wav(p, np.zeros((1, 44100), np.float32), 44100)
    with pytest.raises(InputError, match="silent"):
        mix(p, tmp_path / "o.wav", MixParams())
    assert not (tmp_path / "o.wav").exists()


def test_vocal_loudness_estimate_from_mixture_matches_true_stem(tmp_path):
    """A lossy "separated" vocal (-2 dB) is corrected by the block-wise mixture-minus-instrumental estimate."""
    from singer.mix import estimated_vocal_loudness, stem_meter
    from tests.synth import make_synthetic_song

    mix_, vocals, inst = make_synthetic_song(8.0, sr=44100, seed=4)
    for name, data in (("mix", mix_), ("inst", inst)):
        write_wav(tmp_path / f"{name}.wav", data, 44100)
    est = estimated_vocal_loudness(stem_meter(tmp_path / "mix.wav"), stem_meter(tmp_path / "inst.wav"))
    assert est == pytest.approx(integrated_loudness(vocals, 44100), abs=0.3)


@pytest.mark.parametrize("w", [3, 51, 2205])
def test_moving_filters_match_scipy(w):
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    from singer.mix import moving_mean, moving_min

    x = np.random.default_rng(w).random(10007).astype(np.float32)
    assert np.array_equal(moving_min(x, w), minimum_filter1d(x, w, mode="nearest"))
    assert np.allclose(moving_mean(x, w), uniform_filter1d(x, w, mode="nearest"), atol=1e-6)


def test_streamed_reverb_equals_one_convolution(tmp_path):
    """The block-wise reverb is the whole-file convolution with its impulse response, cut to the input's length."""
    import soundfile as sf
    from scipy.signal import fftconvolve

    from singer.effects import ReverbParams, impulse_response, reverb

    x = np.random.default_rng(0).standard_normal((2, 44100 * 23)).astype(np.float32) * 0.1  # 2 full blocks + 3 s
    sf.write(str(tmp_path / "in.wav"), x.T, 44100, subtype="FLOAT")
    p = ReverbParams(rt60=0.8)
    reverb(tmp_path / "in.wav", tmp_path / "wet.wav", p)
    y = sf.read(str(tmp_path / "wet.wav"), dtype="float32")[0].T
    ir = impulse_response(44100, 2, p)
    ref = np.stack([fftconvolve(x[c], ir[c])[: x.shape[1]] for c in range(2)])
    assert y.shape == x.shape and np.abs(y - ref).max() < 1e-5
    assert np.corrcoef(ir[0], ir[1])[0, 1] < 0.1  # decorrelated channels: a wide reverb
    tail = ir[0, int(0.7 * 44100) :]
    assert 10 * np.log10((tail**2).sum()) < -40  # most energy gone by rt60
