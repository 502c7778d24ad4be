"""The automatic octave through real conversions: generated songs by a low and a high singer, and speech, sung by the
bundled female (ayana) and male (kenji) voices; a numeric key obeyed exactly; RVC voices' registers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from singer import register as R
from singer.api import CoverRequest
from singer.config import Settings
from singer.engines.converters.world import vocoder
from singer.engines.converters.world.engine import WorldConverter
from singer.voices import VoiceStore
from tests.synth import make_synthetic_song, spoken, transpose_to

SR = 22050
SECONDS = 4.0


def song_vocal(median: int, seed: int = 0) -> np.ndarray:
    _, vocals, _ = make_synthetic_song(SECONDS, SR, seed, transpose_to(median, SECONDS, seed))
    return vocals.mean(axis=0)


SOURCES = {  # name -> (audio, what it is)
    "low singer": (lambda: song_vocal(50), "sung"),  # D3: a man's register
    "high singer": (lambda: song_vocal(65), "sung"),  # F4: a woman's register
    "male speech": (lambda: spoken(3.0, SR, 110.0, seed=0), "spoken"),
    "female speech": (lambda: spoken(3.0, SR, 210.0, seed=0), "spoken"),
}
EXPECTED = {  # (source, voice) -> octave shift: same register 0, across registers one octave
    ("low singer", "ayana"): 12,
    ("high singer", "ayana"): 0,
    ("low singer", "kenji"): 0,
    ("high singer", "kenji"): -12,
    ("male speech", "ayana"): 12,
    ("female speech", "ayana"): 0,
    ("male speech", "kenji"): 0,
    ("female speech", "kenji"): -12,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    return WorldConverter(settings), VoiceStore(settings)


def median_midi(x: np.ndarray, sr: int = SR) -> float:
    """Median pitch by WORLD's harvest (DIO, the converter's fast tracker, slips by octaves on some resynthesised
    vocals; harvest does not)."""
    f0, _ = vocoder.pyworld().harvest(np.asarray(x, dtype=np.float64), sr, f0_floor=60.0, f0_ceil=1000.0)
    return R.hz_to_midi(float(np.exp(np.median(np.log(f0[f0 > 0])))))


@pytest.mark.parametrize("source,voice", list(EXPECTED))
def test_world_auto_octave_by_register(world, tmp_path, source, voice):
    conv, store = world
    make, kind = SOURCES[source]
    x = make()
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x, SR, subtype="FLOAT")
    meta = conv.convert(src, dst, store.get(voice), {"key": "auto"})
    choice = meta["octave"]
    assert meta["key"] == EXPECTED[source, voice] == choice["shift"], choice["reason"]
    assert meta["instrumental_key"] == 0.0  # the backing never moves by octaves
    assert choice["source_delivery"] == kind
    assert choice["compared_with"] == ("singing range" if kind == "sung" else "speaking pitch")
    reg = store.get(voice).register()
    y, _ = sf.read(dst, dtype="float32")
    out = median_midi(y)
    assert reg.low <= out <= reg.high, (out, reg)  # the converted vocal lies in the voice's singing range
    assert out == pytest.approx(median_midi(x) + choice["shift"], abs=0.5)


def test_key_given_is_obeyed_exactly():
    assert CoverRequest(input="x", key=3).variables()["auto_octave"] is False
    assert CoverRequest(input="x", key="0").variables()["auto_octave"] is False
    assert "auto_octave" not in CoverRequest(input="x").variables()  # the workflow's default: on
    assert "auto_octave" not in CoverRequest(input="x", key="auto").variables()


def test_voice_note_reports_the_choice_and_obeys_a_key(settings, tmp_path):
    from tests.clirun import as_json, invoke

    note = tmp_path / "note.wav"
    sf.write(note, spoken(3.0, 44100, 210.0, seed=1), 44100)
    res = invoke("convert", note, "--voice", "kenji", "--format", "wav", "--out", tmp_path / "a.wav", "--json", "-q")
    assert res.exit_code == 0, res.stdout
    out = as_json(res)
    assert out["pitch"]["key"] == -12 and out["pitch"]["octave"]["source_delivery"] == "spoken"
    assert "kenji's speaking pitch" in out["pitch"]["octave"]["reason"]
    conv = next(s for s in out["run"]["steps"] if s["id"] == "convert")
    assert conv["meta"]["octave"] == out["pitch"]["octave"]  # the step meta carries it (the run report reads it)

    res = invoke(
        "convert",
        note,
        "--voice",
        "kenji",
        "--key",
        "0",
        "--format",
        "wav",
        "--out",
        tmp_path / "b.wav",
        "--json",
        "-q",
    )
    assert res.exit_code == 0, res.stdout
    out = as_json(res)
    assert out["pitch"]["key"] == 0 and out["pitch"]["octave"] is None
    res = invoke(
        "convert",
        note,
        "--voice",
        "kenji",
        "--key",
        "2",
        "--format",
        "wav",
        "--out",
        tmp_path / "c.wav",
        "--json",
        "-q",
    )
    assert as_json(res)["pitch"]["key"] == 2


def test_report_says_why(settings):
    from singer.report.run_page import _pitch

    f0 = np.full(200, 220.0)
    meta = {
        "key": -12.0,
        "octave": R.choose_octave(
            {"p10": 61, "median": 65, "p90": 70}, "sung", R.Register.typical("male"), voice_name="kenji"
        ).to_dict(),
    }
    html = _pitch("convert", f0, f0 / 2, {"meta": meta})
    assert "chosen shift" in html and "-12.0 st (sung vs the voice&#x27;s singing range)" in html
    assert "one octave down" in html and "kenji" in html


# --- RVC voices: where the register comes from ---------------------------------------------------------------------


def test_rvc_register_from_samples_range_gender_and_old_manifests(settings, tmp_path):
    from singer.engines.converters.rvc import voice as rvc_voice
    from singer.engines.converters.rvc.voice import RVCVoice

    sung, talk = tmp_path / "sung.wav", tmp_path / "talk.wav"
    _, vocals, _ = make_synthetic_song(4.0, 16000, 0, transpose_to(64, 4.0, 0))
    sf.write(sung, vocals.mean(axis=0), 16000)
    sf.write(talk, spoken(4.0, 16000, 200.0, seed=2), 16000)

    reg, heard = rvc_voice.register_from_samples([sung])
    assert heard["kind"] == "sung" and heard["said"] == "detected" and heard["evidence"]["held_fraction"] >= 0.5
    assert "measured from sung" in reg.singing_from and "rule" in reg.speaking_from
    assert 61 <= reg.median <= 67

    reg, heard = rvc_voice.register_from_samples([talk])
    assert heard["kind"] == "spoken" and "measured from spoken" in reg.speaking_from and "rule" in reg.singing_from
    assert reg.speaking == pytest.approx(R.hz_to_midi(200.0), abs=1.0)
    reg, heard = rvc_voice.register_from_samples([talk], "sung")  # the user says what the samples are
    assert (
        heard == {**heard, "kind": "sung", "said": "by you (--sample-kind)"}
        and "measured from sung" in reg.singing_from
    )

    given = rvc_voice.register_from_range("A3-E5")
    assert (given.low, given.high, given.singing_from) == (57, 76, "given (--range)") and given.speaking == 60
    meta = rvc_voice.register_meta(given)
    assert RVCVoice("v", tmp_path / "v.pth", None, meta).register == given

    for old_from, says in (
        ("given", "given (--range)"),
        ("samples", "taken as sung"),
        ("typical female range", "older"),
    ):
        old = RVCVoice(
            "v", tmp_path / "v.pth", None, {"range": {"p10": 57.0, "median": 64.0, "p90": 72.0, "from": old_from}}
        )
        reg = old.register
        assert (reg.low, reg.high) == (57.0, 72.0) and says in reg.singing_from and reg.speaking == 60.0
    assert RVCVoice("v", tmp_path / "v.pth", None, {}).register is None
    json.dumps(R.Register.typical("male").to_dict())


def test_voices_show_says_where_each_figure_came_from(settings):
    from tests.clirun import as_json, invoke

    reg = as_json(invoke("voices", "show", "ayana", "--json"))["voice"]["register"]
    assert reg["recorded"] == "spoken" and reg["singing"]["range"] == "E3-C#5"
    assert "measured from the spoken recordings" in reg["speaking"]["from"] and "rule" in reg["singing"]["from"]
    text = invoke("voices", "show", "kenji").stdout
    assert "singing range: D#2-C4" in text and "speaking pitch: F#2 (91 Hz)" in text and "recordings: spoken" in text
