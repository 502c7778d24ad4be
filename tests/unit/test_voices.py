"""Voice profiles and the voice store: learning, merging, create/list/get/merge/remove, bundled voices."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from singer.config import Settings
from singer.engines.converters.world.profile import VoiceProfile, learn_profile, merge_profiles
from singer.errors import InputError, VoiceNotFound
from singer.voices import BUNDLED_DIR, VoiceStore, validate_name

SR = 22050


def sung(seconds: float, f0: float, formant_scale: float = 1.0, sr: int = SR) -> np.ndarray:
    """Harmonic tone with vibrato and a slow melody through a three-formant envelope (float32 mono)."""
    t = np.arange(int(seconds * sr)) / sr
    f = f0 * 2 ** ((0.3 * np.sin(2 * np.pi * 5.5 * t) + 2 * np.sin(2 * np.pi * 0.3 * t)) / 12)
    phase = 2 * np.pi * np.cumsum(f) / sr
    y = np.zeros(len(t))
    for k in range(1, int(0.45 * sr / (f0 * 1.3))):
        gain = sum(
            1 / (1 + ((k * f - fm * formant_scale) / bw) ** 2) for fm, bw in ((600, 90), (1700, 120), (2700, 180))
        )
        y += gain / np.sqrt(k) * np.sin(k * phase)
    return (0.25 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def low_high() -> tuple[VoiceProfile, VoiceProfile]:
    return learn_profile(sung(4.0, 110.0), SR), learn_profile(sung(4.0, 330.0, formant_scale=1.2), SR)


@pytest.fixture()
def store(tmp_path) -> VoiceStore:
    return VoiceStore(Settings(home=tmp_path / "home"))


def wav(path, audio: np.ndarray, sr: int = SR):
    sf.write(path, audio, sr)
    return path


def test_profile_separates_low_and_high_voice(low_high):
    low, high = low_high
    assert low.f0_median == pytest.approx(110.0, rel=0.05) and high.f0_median == pytest.approx(330.0, rel=0.05)
    assert low.f0_p5 < low.f0_median < low.f0_p95 < high.f0_p5  # ranges do not overlap
    assert high.formant_scale > 1.1 * low.formant_scale
    assert low.summary()["range"].startswith(("G2", "G#2", "A2"))


def test_profile_roundtrip_is_small(low_high):
    low, _ = low_high
    d = low.to_dict()
    again = VoiceProfile.from_dict(json.loads(json.dumps(d)))
    assert np.allclose(again.env_mean, low.env_mean, atol=1e-3) and again.f0_median == pytest.approx(
        low.f0_median, rel=1e-4
    )
    assert len(json.dumps(d)) < 20_000


def test_merge_interpolates_in_log_domain(low_high):
    low, high = low_high
    half = merge_profiles([(low, 1.0), (high, 1.0)], names=["low", "high"])
    assert half.f0_median == pytest.approx(np.sqrt(low.f0_median * high.f0_median), rel=1e-6)
    assert half.formant_scale == pytest.approx(np.sqrt(low.formant_scale * high.formant_scale), rel=1e-6)
    assert [p["weight"] for p in half.provenance["merged_from"]] == [0.5, 0.5]
    same = merge_profiles([(low, 1.0), (high, 0.0)])
    assert same.f0_median == pytest.approx(low.f0_median, rel=1e-9)
    assert np.allclose(same.env_mean, low.env_mean) and same.band_hz == low.band_hz
    with pytest.raises(InputError):
        merge_profiles([(low, -1.0), (high, 1.0)])


def test_too_little_voice_refused():
    with pytest.raises(InputError, match="Too little voiced sound"):
        learn_profile(np.zeros(SR, dtype=np.float32), SR)


@pytest.mark.parametrize("bad", ["", "Ayana", "../evil", "a b", "x" * 41, "-dash", "é"])
def test_bad_names_refused(bad, store, tmp_path):
    with pytest.raises(InputError, match="Invalid voice name"):
        validate_name(bad)
    with pytest.raises(InputError):
        store.create(bad, [tmp_path / "missing.wav"])


def test_store_lifecycle(store, tmp_path):
    low = wav(tmp_path / "low.wav", sung(3.0, 110.0))
    high = wav(tmp_path / "high.flac", sung(3.0, 300.0, 1.2))
    v = store.create("low-guy", [low], gender="male", description="test")
    assert v.kind == "profile" and not v.bundled
    assert v.files == [store.user_dir / "low-guy.json", store.user_dir / "low-guy.pool.npy.gz"]  # + its frame pool
    store.create("high_gal", [high], gender="female")
    names = store.names()
    assert {"low-guy", "high_gal"} <= set(names)
    got = store.get("low-guy")
    assert got.meta["gender"] == "male" and got.meta["provenance"]["sources"][0]["file"] == "low.wav"
    assert len(got.meta["provenance"]["sources"][0]["sha256"]) == 64
    assert got.load().f0_median == pytest.approx(110.0, rel=0.05)
    mix = store.merge(["low-guy", "high_gal"], [0.5, 0.5], "mixed")
    assert mix.load().f0_median == pytest.approx(
        np.sqrt(got.load().f0_median * store.get("high_gal").load().f0_median), rel=1e-3
    )
    assert mix.meta["gender"] == "mixed"
    pool = mix.manifest["pool"]  # the merged pool keeps each parent's frames as a group with its weight
    assert [(g["name"], g["weight"]) for g in pool["groups"]] == [("low-guy", 0.5), ("high_gal", 0.5)]
    with pytest.raises(InputError, match="already exists"):
        store.create("mixed", [low])
    store.remove("mixed")
    with pytest.raises(VoiceNotFound) as e:
        store.get("mixed")
    assert "low-guy" in e.value.hint and "mixed" in e.value.user_message
    assert not (store.user_dir / "mixed.pool.npy.gz").exists()  # removed with its manifest
    assert not list(store.user_dir.glob(".*tmp"))  # atomic writes leave no temp files


def test_silent_or_short_samples_refused(store, tmp_path):
    with pytest.raises(InputError, match="silent"):
        store.create("quiet", [wav(tmp_path / "quiet.wav", np.zeros(3 * SR, dtype=np.float32))])
    with pytest.raises(InputError, match="too short"):
        store.create("short", [wav(tmp_path / "short.wav", sung(0.3, 200.0))])
    with pytest.raises(InputError, match="Too little voiced"):
        store.create("brief", [wav(tmp_path / "brief.wav", sung(1.2, 200.0))])
    assert "quiet" not in store.names()


def test_bundled_voices_load_and_are_protected(store, tmp_path):
    voices = {v.name: v for v in store.list() if v.bundled}
    assert {"mika", "hana", "kenji", "ayana"} <= set(voices)
    for v in voices.values():
        assert v.files[0].stat().st_size < 100_000 and v.meta["licence"] and v.meta["gender"]
        assert v.load().voiced_seconds > 10
    assert voices["mika"].load().f0_median > 1.6 * voices["kenji"].load().f0_median
    assert voices["mika"].load().formant_scale > voices["kenji"].load().formant_scale
    parents = {p["name"]: p["weight"] for p in voices["ayana"].meta["provenance"]["merged_from"]}
    assert parents == {"mika": 0.6, "hana": 0.4}
    assert (BUNDLED_DIR / "SOURCES.md").is_file()
    with pytest.raises(InputError, match="bundled"):
        store.remove("mika")
    with pytest.raises(InputError, match="bundled"):
        store.create("ayana", [wav(tmp_path / "x.wav", sung(3.0, 200.0))])
    with pytest.raises(VoiceNotFound, match="nobody"):
        store.get("nobody")
