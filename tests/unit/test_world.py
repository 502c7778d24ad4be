"""The ``world`` converter on synthetic vocals: exact pitch, exact length, silence handling, voices, segments."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from singer.config import Settings
from singer.engines import registry
from singer.engines.converters.world import vocoder
from singer.engines.converters.world.engine import WorldConverter
from singer.engines.converters.world.profile import learn_profile
from singer.errors import InputError

SR = 44100


def sung(
    seconds: float = 3.0, sr: int = SR, f0: float = 220.0, formant_scale: float = 1.0, gaps: bool = False, seed: int = 0
) -> np.ndarray:
    """Harmonic tone with 5.5 Hz vibrato through a three-formant envelope (float32 mono)."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f = f0 * 2 ** (0.3 / 12 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    y = np.zeros(n)
    for k in range(1, int(0.45 * sr / (f0 * 1.05))):
        fk = k * f
        gain = sum(1 / (1 + ((fk - fm * formant_scale) / bw) ** 2) for fm, bw in ((600, 90), (1700, 120), (2700, 180)))
        y += gain / np.sqrt(k) * np.sin(k * phase)
    y *= 0.25 / np.abs(y).max()
    y += 1e-4 * np.random.default_rng(seed).standard_normal(n)
    if gaps:
        for a in np.arange(1.0, seconds - 0.5, 2.0):
            y[int(a * sr) : int((a + 0.6) * sr)] = 0.0
    return y.astype(np.float32)


def median_f0(x: np.ndarray, sr: int = SR) -> float:
    f0, _ = vocoder.track_f0(np.asarray(x, dtype=np.float64), sr)
    return float(np.median(f0[f0 > 0]))


def cents(a: float, b: float) -> float:
    return 1200 * np.log2(a / b)


@pytest.fixture()
def conv(tmp_path):
    return WorldConverter(Settings(home=tmp_path / "home"))


def convert(conv, tmp_path, audio: np.ndarray, sr: int = SR, voice=None, **params):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, np.atleast_2d(audio).T, sr, subtype="FLOAT")
    meta = conv.convert(src, dst, voice, params)
    y, sr_out = sf.read(dst, dtype="float32", always_2d=True)
    return y.T, sr_out, meta


def test_registered_and_available(tmp_path):
    settings = Settings(home=tmp_path)
    WorldConverter.check(settings)
    assert isinstance(registry.create("converter", "world", settings), WorldConverter)
    assert WorldConverter.Params().key == 0


@pytest.mark.parametrize("key", [0, 12, -7])
def test_key_shift_is_exact(conv, tmp_path, key):
    x = sung(3.0)
    y, _, meta = convert(conv, tmp_path, x, key=key)
    assert abs(cents(median_f0(y[0]), median_f0(x)) - 100 * key) < 5
    assert meta["semitones"] == key
    assert abs(cents(meta["output_f0"]["median_hz"], meta["source_f0"]["median_hz"]) - 100 * key) < 0.1


def test_length_rate_and_channels_preserved(conv, tmp_path):
    x = sung(2.0)[: 2 * SR - 17]
    stereo = np.stack([x, 0.5 * x])
    y, sr, _ = convert(conv, tmp_path, stereo, key=3)
    assert sr == SR and y.shape == stereo.shape
    assert np.sqrt(np.mean(y[1] ** 2) / np.mean(y[0] ** 2)) == pytest.approx(0.5, rel=0.02)  # balance kept
    for rate in (16000, 48000):
        m = sung(1.5, sr=rate)
        y, sr, _ = convert(conv, tmp_path, m, sr=rate)
        assert sr == rate and y.shape == (1, len(m))


def test_silence_raises(conv, tmp_path):
    with pytest.raises(InputError, match="No singing or speech found in in.wav"):
        convert(conv, tmp_path, np.zeros(SR, dtype=np.float32))
    with pytest.raises(InputError):
        convert(conv, tmp_path, (1e-5 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32))


def test_silent_gaps_stay_silent_and_unvoiced_quiet(conv, tmp_path):
    x = sung(5.0, gaps=True)
    y, _, meta = convert(conv, tmp_path, x, key=5)
    gap = y[0, int(1.2 * SR) : int(1.4 * SR)]  # inside the first 0.6 s gap, away from the hangover
    assert np.abs(gap).max() < 1e-3
    assert meta["segments"] >= 2


def test_bad_params_refused(conv, tmp_path):
    with pytest.raises(InputError, match="key"):
        convert(conv, tmp_path, sung(1.0), key=99)
    with pytest.raises(InputError):
        convert(conv, tmp_path, sung(1.0), pitch=2)


def test_long_input_is_segmented_without_dropouts(conv, tmp_path):
    x = sung(24.0, f0=196.0)
    y, _, meta = convert(conv, tmp_path, x, key=2)
    assert meta["segments"] >= 3 and y.shape == (1, len(x))
    hop = SR // 20
    rms = np.sqrt(np.mean(y[0, : len(x) // hop * hop].reshape(-1, hop) ** 2, axis=1))[4:-4]
    assert 20 * np.log10(rms.min() / np.median(rms)) > -4  # no dip at the crossfaded cuts


def test_voice_moves_formants_and_register(conv, tmp_path):
    high = learn_profile(sung(4.0, f0=330.0, formant_scale=1.2), SR)
    low_src = sung(3.0, f0=130.0)
    y, _, meta = convert(conv, tmp_path, low_src, voice=high, auto_octave=True)
    assert meta["semitones"] == 12
    assert meta["formant_ratio"] > 1.08
    assert abs(cents(median_f0(y[0]), median_f0(low_src)) - 1200) < 5
    _, _, plain = convert(conv, tmp_path, low_src, voice=high, formant=0.0, strength=0.0)
    assert plain["semitones"] == 0 and plain["formant_ratio"] == 1.0


def test_progress_reported_and_failure_leaves_no_partial_file(conv, tmp_path):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, sung(3.0, gaps=True), SR, subtype="FLOAT")
    seen = []
    conv.convert(src, dst, None, {}, progress=lambda f, m=None: seen.append(f))
    assert seen and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)

    def cancel(fraction, message=None):
        raise KeyboardInterrupt

    dst.unlink()
    with pytest.raises(KeyboardInterrupt):
        conv.convert(src, dst, None, {}, progress=cancel)
    assert not dst.exists() and not list(tmp_path.glob(".*part"))
