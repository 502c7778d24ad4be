"""End to end: a generated short song through the real default engines (spleeter + world), in-process."""

from __future__ import annotations

import numpy as np
import pytest

from singer.api import CoverRequest, Singer
from singer.audio import decode, probe
from singer.loudness import integrated_loudness, true_peak_db
from singer.progress import RecordingHooks
from tests import media


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    return media.song_wav(tmp_path_factory.mktemp("e2e") / "My Song.wav", seconds=8.0, seed=5)


def test_cover_wav_meets_loudness_peak_and_length(settings, song, tmp_path):
    hooks = RecordingHooks()
    res = Singer(settings, hooks).cover(
        CoverRequest(input=str(song), voice="ayana", format="wav", out=str(tmp_path) + "/")
    )
    assert res.output.name == "My Song (ayana cover).wav"
    y = decode(res.output, 44100, 2)
    x = decode(song, 44100, 2)
    assert abs(y.shape[1] - x.shape[1]) <= 441  # +-10 ms
    assert integrated_loudness(y, 44100) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_db(y) <= -1.0 + 0.05  # 16-bit rounding
    assert hooks.steps("step_end") == [
        "source",
        "separate",
        "karaoke",
        "dereverb",
        "features",  # RVC only: skipped for the world voice
        "convert",
        "convert_backing",
        "rekey",
        "rekey_backing",
        "reverb",
        "mix",
        "encode",
    ]
    skipped = ("karaoke", "dereverb", "features", "convert_backing", "rekey_backing", "reverb")
    assert all(res.run.step(s).skipped for s in skipped)
    assert res.run.step("rekey").skipped  # key 0: the instrumental is not touched


def test_other_voice_reuses_separation_and_repeat_is_all_cached(settings, song, tmp_path):
    s = Singer(settings)
    s.cover(CoverRequest(input=str(song), voice="ayana", out=str(tmp_path / "a.mp3")))
    r2 = s.cover(
        CoverRequest(
            input=str(song),
            voice="mika"
            if any(v.name == "mika" for v in s.list_voices())
            else [v.name for v in s.list_voices() if v.name != "ayana"][0],
            out=str(tmp_path / "b.mp3"),
        )
    )
    assert r2.run.step("source").cached and r2.run.step("separate").cached
    assert not r2.run.step("convert").cached
    r3 = s.cover(CoverRequest(input=str(song), voice="ayana", out=str(tmp_path / "c.mp3")))
    assert all(st.cached or st.skipped for st in r3.run.steps)
    assert (tmp_path / "c.mp3").read_bytes() == (tmp_path / "a.mp3").read_bytes()


def test_key_shift_rekeys_instrumental_and_formats(settings, song, tmp_path):
    res = Singer(settings).cover(
        CoverRequest(input=str(song), voice="ayana", key=2, format="ogg", out=str(tmp_path / "k.ogg"))
    )
    assert not res.run.step("rekey").skipped
    info = probe(res.output)
    assert info.codec == "opus" and abs(info.duration - 8.0) < 0.05


def test_voice_note_roundtrip(settings, tmp_path):
    note = media.encoded(media.voice_wav(tmp_path / "n.wav", seconds=3.0), tmp_path / "note.ogg", "ogg")
    res = Singer(settings).convert(CoverRequest(input=str(note), voice="ayana", out=str(tmp_path / "out.ogg")))
    y = decode(res.output, 48000, 1)
    assert integrated_loudness(y, 48000) == pytest.approx(-16.0, abs=1.0)
    assert np.isfinite(y).all()
