"""Songs with known stems: the numpy generator (tests/synth.py), songgen's score handling, and, where festival and
fluidsynth are installed, a short real song (benchmarks/songgen.py)."""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.synth import generate_noise, generate_sine, make_synthetic_song, synthetic_melody

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import songgen  # noqa: E402

DEMO = ROOT / "singer" / "data" / "demo"
HAVE_PROGRAMS = all(shutil.which(p) for p in ("text2wave", "festival", "fluidsynth"))
try:
    songgen.find_soundfont()
except FileNotFoundError:
    HAVE_PROGRAMS = False


# ---- tests/synth.py ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seconds,sr", [(3.0, 44100), (2.5, 48000), (1.0, 22050), (0.3, 44100)])
def test_synthetic_song_shapes_and_exact_sum(seconds, sr):
    mix, vocals, inst = make_synthetic_song(seconds, sr=sr, seed=3)
    n = int(seconds * sr)
    for x in (mix, vocals, inst):
        assert x.shape == (2, n) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.array_equal(mix, vocals + inst)
    assert 0.5 < np.abs(mix).max() < 10 ** (-1 / 20)


def test_synthetic_song_is_deterministic_and_seeded():
    a = make_synthetic_song(2.0, seed=7)
    a[0][:] = 0  # callers get copies: the cache must not be touched
    b = make_synthetic_song(2.0, seed=7)
    c = make_synthetic_song(2.0, seed=8)
    assert np.abs(b[0]).max() > 0
    assert np.array_equal(b[1], make_synthetic_song(2.0, seed=7)[1])
    assert not np.array_equal(b[1], c[1])


def test_synthetic_song_balance_and_breaths():
    mix, vocals, inst = make_synthetic_song(8.0, seed=4)

    def rms(x):
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))

    sung = np.abs(vocals).max(axis=0) > 1e-4
    assert 0.5 < sung.mean() < 0.97  # phrases with breaths (and an instrumental pickup) between them
    ratio_db = 20 * np.log10(rms(vocals[:, sung]) / rms(inst[:, sung]))
    assert -3 < ratio_db < 3


def test_synthetic_voice_sings_the_melody():
    pw = pytest.importorskip("pyworld")
    sr = 16000
    _, vocals, _ = make_synthetic_song(6.0, sr=sr, seed=1)
    x = vocals.mean(axis=0).astype(np.float64)
    f0, t = pw.dio(x, sr, f0_floor=60, f0_ceil=800, frame_period=5.0)
    f0 = pw.stonemask(x, f0, t, sr)
    notes = synthetic_melody(6.0, seed=1)
    assert len(notes) >= 6 and all(s < e for s, e, _ in notes)
    good = 0
    for s, e, hz in notes:
        seg = f0[(t > s + 0.3 * (e - s)) & (t < e - 0.15 * (e - s))]
        seg = seg[seg > 0]
        good += len(seg) > 2 and abs(1200 * np.log2(np.median(seg) / hz)) < 50
    assert good >= 0.8 * len(notes)


def test_generate_sine_and_noise():
    x = generate_sine(441.0, sr=44100, seconds=0.5, channels=2)
    assert x.shape == (2, 22050) and x.dtype == np.float32 and np.array_equal(x[0], x[1])
    spec = np.abs(np.fft.rfft(x[0]))
    assert np.argmax(spec) * 44100 / len(x[0]) == pytest.approx(441.0, abs=2.0)
    assert np.abs(x).max() == pytest.approx(0.5, abs=1e-3)
    n = generate_noise(sr=8000, seconds=1.0, channels=1, amp=0.1, seed=1)
    assert n.shape == (1, 8000) and np.sqrt(np.mean(n.astype(np.float64) ** 2)) == pytest.approx(0.1, rel=0.05)


# ---- songgen without external programs -------------------------------------------------------------------------
def test_note_names_and_festival_octave_quirk():
    assert songgen.note_to_midi("C4") == 60 and songgen.note_to_midi("A4") == 69
    assert songgen.note_to_midi("F#3") == 54 and songgen.note_to_midi("Bb2") == 46
    # festival's singing mode puts A5 at 440 Hz (octave numbers one higher than scientific pitch notation)
    assert songgen.festival_note(69) == "A5" and songgen.festival_note(57) == "A4"
    assert songgen.midi_to_hz(69) == pytest.approx(440.0)
    assert songgen.chord_name("Am", -3) == "F#m" and songgen.chord_name("Dm", 0) == "Dm"


def test_score_lyrics_fit_the_melodies():
    score = songgen.load_score()
    for section in score["sections"].values():
        if "melody" not in section:
            continue
        phrases = score["melodies"][section["melody"]]
        sets = [k for k in score["lyrics"] if k.startswith(section["melody"])]
        assert sets
        for lyrics in sets:
            for ph, line in zip(phrases, score["lyrics"][lyrics], strict=True):
                notes = [n for n in ph["notes"] if n[0] != "r"]
                assert len(songgen.split_syllables(line)) == len(notes), (lyrics, line)
                assert ph["start"] + sum(b for _, b in ph["notes"]) <= 32, (lyrics, line)


def test_phrase_xml_declares_festival_tempo():
    score = songgen.load_score()
    plan = songgen.make_plan(score, None, seed=0, form="demo")
    xml = songgen.phrase_xml(plan.phrases[0].notes, 120.0)
    assert 'BPM="100.000000"' in xml  # festival reads BPM/50 beats per second: 120 beats/min is declared as 100
    assert '<PITCH NOTE="B3,A3"><DURATION BEATS="0.5,1">tonight</DURATION></PITCH>' in xml  # A major, -3


@pytest.mark.parametrize("seconds", [10.0, 180.0, 600.0])
def test_plan_fills_the_requested_length(seconds):
    plan = songgen.make_plan(songgen.load_score(), seconds, seed=3)
    assert plan.total_beats * plan.spb >= seconds
    assert plan.phrases and plan.phrases[0].start * plan.spb < 10.0  # the voice comes in early
    starts = [n.start for ph in plan.phrases for n in ph.notes]
    assert starts == sorted(starts)
    if seconds >= 180:
        assert {s.lyrics for s in plan.sections if s.kind == "verse"} == {"verse1", "verse2", "verse3"}


def test_midi_writer_makes_a_standard_midi_file(tmp_path):
    plan = songgen.make_plan(songgen.load_score(), None, seed=0, form="demo")
    tracks, end = songgen.arrange_backing(plan, seed=0)
    path = tmp_path / "b.mid"
    songgen.write_midi(path, tracks, plan.tempo, end)
    data = path.read_bytes()
    assert data[:4] == b"MThd"
    fmt, ntrk, division = struct.unpack(">HHH", data[8:14])
    assert (fmt, ntrk, division) == (1, len(tracks) + 1, songgen.TICKS)
    assert data.count(b"MTrk") == ntrk and data.endswith(b"\xff\x2f\x00")


def test_shipped_demo_matches_the_score():
    info = json.loads((DEMO / "demo_song.json").read_text())
    assert (DEMO / info["file"]).stat().st_size < 600 * 1024
    assert (DEMO / "LICENSE.md").exists() and (DEMO / "demo_backing.mid").exists()
    plan = songgen.make_plan(songgen.load_score(), None, seed=0, form="demo")
    assert info["seconds"] == pytest.approx(plan.total_beats * plan.spb + 2.0, abs=1e-3)
    assert 25 <= info["seconds"] <= 36 and info["tempo"] == plan.tempo
    assert len(info["notes"]) == sum(len(ph.notes) for ph in plan.phrases)
    assert (DEMO / "demo_vocals.xml").read_text() == songgen.song_xml(plan)


# ---- a real song (festival + fluidsynth) --------------------------------------------------------------------------
@pytest.mark.skipif(not HAVE_PROGRAMS, reason="festival/fluidsynth/GM soundfont not installed")
def test_lyrics_agree_with_festival_lexicon():
    assert songgen.check_lyrics() == {}


@pytest.mark.skipif(not HAVE_PROGRAMS, reason="festival/fluidsynth/GM soundfont not installed")
def test_make_song_10s(tmp_path, monkeypatch):
    import soundfile as sf

    monkeypatch.setenv("SONGGEN_CACHE", str(tmp_path / "cache"))
    res = songgen.make_song(tmp_path / "song", seconds=10.0, seed=1)
    arrays = {}
    for name in ("mix", "vocals", "instrumental"):
        data, sr = sf.read(res[name], dtype="float32", always_2d=True)
        assert sr == 44100 and data.shape == (441000, 2)
        arrays[name] = data.T
    assert np.array_equal(arrays["mix"], arrays["vocals"] + arrays["instrumental"])
    assert 20 * np.log10(np.abs(arrays["mix"]).max()) < -1.0
    meta = res["meta"]
    assert meta["samples"] == 441000 and meta["notes"] and meta["tempo"] > 0 and meta["key"].endswith("major")
    assert json.loads((tmp_path / "song" / "meta.json").read_text())["notes"] == meta["notes"]
    # the voice sings where the score says and is silent before its first note
    v = arrays["vocals"].mean(axis=0)
    first = meta["notes"][0]["start"]
    assert np.abs(v[: int((first - 0.2) * sr)]).max() < 1e-4
    sung = np.zeros(v.size, bool)
    for n in meta["notes"]:
        sung[int(n["start"] * sr) : int(n["end"] * sr)] = True
    assert np.sqrt(np.mean(v[sung] ** 2)) > 10 * np.sqrt(
        np.mean(v[~sung & (np.arange(v.size) < first * sr)] ** 2) + 1e-12
    )
    inst = arrays["instrumental"]
    assert np.sqrt(np.mean(inst[:, : int(first * sr)] ** 2)) > 1e-3  # the backing plays the intro
