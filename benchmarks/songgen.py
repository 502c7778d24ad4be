#!/usr/bin/env python3
"""Songs with known stems, for the demo, the tests and the benchmarks.

``make_song(out_dir, seconds=180.0, seed=0)`` writes ``mix.wav``, ``vocals.wav`` and ``instrumental.wav``
(44.1 kHz stereo float32 WAVs of exactly equal length, ``mix == vocals + instrumental`` sample for sample)
and returns their paths plus a ``meta`` dict (tempo, key, chords, sections and every sung note with its time).

The song comes from the shipped score ``singer/data/demo/score.json`` (an original composition of the singer
project): the melody and its lyrics are sung by Festival's singing mode with a diphone voice (kal or ked), one
festival call per phrase, each phrase placed on its beat to the sample; WORLD (pyworld) then re-pitches every
phrase onto the score (festival moves the pitch of a word's first syllable too early) and adds glides, vibrato
and a little drift; a small exciter extends the 16 kHz voice above 8 kHz; slight pan and a synthetic room. The
backing (drums, bass, chords, pad, a lead in the instrumental break) is written here as MIDI and rendered by
FluidSynth with the FluidR3 General MIDI soundfont. Both follow the same tempo and chords. Long songs repeat
verses and choruses (three sets of verse lyrics) until ``seconds`` is filled, then fade out.

External programs (Debian: ``apt-get install fluidsynth fluid-soundfont-gm festival festvox-kallpc16k
festvox-kdlpc16k``): ``text2wave`` (festival) and ``fluidsynth``. Python: numpy, scipy, soundfile, pyworld
(all singer dependencies; pyloudnorm, if installed, for the loudness target). Levels: the vocal is as loud as the
backing where it sings (RMS, + ``vocal_gain_db``); one gain curve (loudness -16 LUFS, then a look-ahead limiter at
-1.5 dBFS) is applied to both stems and the mix is computed last, so it is their exact sum. Nothing here is
imported by the ``singer`` package.

Everything is deterministic for a seed (the samples; libsndfile stamps the time into float WAV headers, so the
files' bytes differ). Festival phrases are cached (``$SONGGEN_CACHE`` or
``~/.cache/singer/songgen``), keyed by the exact score XML and voice.

Festival singing-mode quirks (checked against /usr/share/festival/singing-mode.scm, festival 2.5):
* it converts BPM to beats per second as BPM/50, so a tempo of T beats/min is declared as BPM = T*50/60;
* its note names put A5 at 440 Hz (MIDI note = 12*octave + pitch class), one octave above scientific pitch
  notation, so MIDI note m is written with octave m // 12.

CLI: ``python benchmarks/songgen.py --seconds 180 --out DIR [--seed N]`` prints the JSON of the paths.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCORE_PATH = REPO / "singer" / "data" / "demo" / "score.json"
SR = 44100
FESTIVAL_SR = 16000
TICKS = 480  # MIDI ticks per beat
SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
)
VOICES = ("kal_diphone", "ked_diphone")

PEAK_CEILING_DB = -1.5  # true sample peak of the mix stays below this (brief: < -1 dBFS)
TARGET_LUFS = -16.0  # mix loudness aimed at (before the ceiling; reached if the limiter need not work hard)
MAX_LIMIT_DB = 6.0  # the limiter never takes off more than this
REVERB_DB = -14.0  # vocal reverb return relative to the dry voice

NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
KEY_NAMES = ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]

CHORD_QUALITIES = {
    "": (0, 4, 7),
    "m": (0, 3, 7),
    "7": (0, 4, 7, 10),
    "m7": (0, 3, 7, 10),
    "maj7": (0, 4, 7, 11),
    "sus4": (0, 5, 7),
    "sus2": (0, 2, 7),
    "add9": (0, 4, 7, 14),
    "dim": (0, 3, 6),
}

# General MIDI programs (0-based) the arrangement picks from; the demo uses the first of each.
CHORD_INSTRUMENTS = [("piano", 0), ("epiano", 4), ("guitar", 25), ("organ", 16)]
BASS_INSTRUMENTS = [("finger bass", 33), ("pick bass", 34), ("synth bass", 38)]
PAD_INSTRUMENTS = [("strings", 48), ("warm pad", 89), ("slow strings", 49)]
LEAD_INSTRUMENTS = [("flute", 73), ("alto sax", 65), ("clean guitar", 27), ("square lead", 80)]

# GM drum notes
KICK, SNARE, HAT, OPEN_HAT, CRASH, RIDE, TOM_HI, TOM_MID, TOM_LO, PEDAL_HAT = 36, 38, 42, 46, 49, 51, 50, 47, 45, 44


# --------------------------------------------------------------------------------------------------------------
# music helpers


def note_to_midi(name: str) -> int:
    """'C4' -> 60, 'F#3' -> 54, 'Bb2' -> 46 (scientific pitch notation)."""
    m = re.fullmatch(r"([A-Ga-g])([#b]?)(-?\d)", name.strip())
    if not m:
        raise ValueError(f"bad note name {name!r}")
    pc = _PC[m.group(1).upper()] + {"#": 1, "b": -1, "": 0}[m.group(2)]
    return 12 * (int(m.group(3)) + 1) + pc


def festival_note(midi: int) -> str:
    """Festival singing mode's name for a MIDI note (its octave numbers are one higher: A5 = 440 Hz)."""
    return f"{NOTE_NAMES[midi % 12]}{midi // 12}"


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12.0)


def parse_chord(symbol: str, transpose: int = 0) -> tuple[int, tuple[int, ...]]:
    """'Am' -> (pitch class of A, intervals). Returns the transposed root pitch class."""
    m = re.fullmatch(r"([A-G])([#b]?)(.*)", symbol.strip())
    if not m or m.group(3) not in CHORD_QUALITIES:
        raise ValueError(f"bad chord symbol {symbol!r}")
    root = (_PC[m.group(1)] + {"#": 1, "b": -1, "": 0}[m.group(2)] + transpose) % 12
    return root, CHORD_QUALITIES[m.group(3)]


def chord_name(symbol: str, transpose: int) -> str:
    root, _ = parse_chord(symbol, transpose)
    quality = re.fullmatch(r"[A-G][#b]?(.*)", symbol.strip()).group(1)
    return KEY_NAMES[root] + quality


def split_syllables(line: str) -> list[tuple[str, int, int]]:
    """Lyric line -> [(word, syllable index, syllable count)] one per note; 'to-night' is one word, 2 syllables."""
    out = []
    for token in re.sub(r"[^A-Za-z\-' ]", " ", line).split():
        parts = [p for p in token.split("-") if p]
        word = "".join(parts)
        out.extend((word, i, len(parts)) for i in range(len(parts)))
    return out


def load_score(path: str | os.PathLike | None = None) -> dict:
    with open(path or SCORE_PATH, encoding="utf-8") as f:
        return json.load(f)


def score_words(score: dict) -> dict[str, int]:
    """Every lyric word and the syllable count the score gives it."""
    words: dict[str, int] = {}
    for lines in score["lyrics"].values():
        for line in lines:
            for word, _, n in split_syllables(line):
                words[word.lower()] = n
    return words


# --------------------------------------------------------------------------------------------------------------
# MIDI writing (Standard MIDI File, format 1), no dependency


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


class MidiTrack:
    def __init__(self, name: str):
        self.name = name
        self.events: list[tuple[int, int, bytes]] = []  # (tick, order, data); order sorts offs before ons

    def add(self, tick: int, data: bytes, order: int = 1) -> None:
        self.events.append((max(0, int(tick)), order, data))

    def note(self, ch: int, key: int, start: int, end: int, vel: int) -> None:
        key = int(np.clip(key, 0, 127))
        end = max(end, start + 1)
        self.add(start, bytes([0x90 | ch, key, int(np.clip(vel, 1, 127))]), 2)
        self.add(end, bytes([0x80 | ch, key, 0]), 0)

    def program(self, ch: int, program: int, tick: int = 0) -> None:
        self.add(tick, bytes([0xC0 | ch, program]), 1)

    def cc(self, ch: int, number: int, value: int, tick: int = 0) -> None:
        self.add(tick, bytes([0xB0 | ch, number, int(np.clip(value, 0, 127))]), 1)

    def meta(self, tick: int, kind: int, payload: bytes) -> None:
        self.add(tick, b"\xff" + bytes([kind]) + _vlq(len(payload)) + payload, 1)

    def to_bytes(self, end_tick: int) -> bytes:
        body = bytearray()
        name = self.name.encode("ascii", "replace")
        body += b"\x00\xff\x03" + _vlq(len(name)) + name
        last = 0
        for tick, _, data in sorted(self.events, key=lambda e: (e[0], e[1])):
            body += _vlq(tick - last) + data
            last = tick
        body += _vlq(max(0, end_tick - last)) + b"\xff\x2f\x00"
        return b"MTrk" + struct.pack(">I", len(body)) + bytes(body)


def write_midi(path: str | os.PathLike, tracks: list[MidiTrack], tempo_bpm: float, end_tick: int) -> None:
    conductor = MidiTrack("conductor")
    conductor.meta(0, 0x51, int(round(60_000_000 / tempo_bpm)).to_bytes(3, "big"))
    conductor.meta(0, 0x58, bytes([4, 2, 24, 8]))
    data = b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks) + 1, TICKS)
    data += conductor.to_bytes(end_tick) + b"".join(t.to_bytes(end_tick) for t in tracks)
    Path(path).write_bytes(data)


# --------------------------------------------------------------------------------------------------------------
# the song plan


@dataclass
class Note:
    start: float  # beats from the song start
    beats: float
    midi: int
    word: str
    syllable: int
    syllables: int


@dataclass
class Phrase:
    start: float  # beats
    notes: list[Note]
    section: int  # index into Plan.sections

    @property
    def end(self) -> float:
        return self.notes[-1].start + self.notes[-1].beats


@dataclass
class Section:
    kind: str
    start: float  # beats
    bars: int
    lyrics: str | None
    chords: list[tuple[float, float, str]]  # (start beat, beats, symbol in C)


@dataclass
class Plan:
    tempo: float
    transpose: int
    voice: str
    sections: list[Section]
    phrases: list[Phrase]
    lead: list[Note]
    total_beats: float
    instruments: dict = field(default_factory=dict)
    style: dict = field(default_factory=dict)

    @property
    def spb(self) -> float:
        return 60.0 / self.tempo

    def chord_at(self, beat: float) -> str:
        for sec in self.sections:
            for start, beats, sym in sec.chords:
                if start <= beat + 1e-9 < start + beats:
                    return sym
        return self.sections[-1].chords[-1][2]


def _auto_form(seconds: float | None, tempo: float, rng: np.random.Generator) -> list[tuple]:
    """Sections (kind, lyrics, first bar, bars) for a song of at least ``seconds`` (None: one full round)."""
    bar_s = 4 * 60.0 / tempo
    intro_bars = 1 if seconds is not None and seconds < 40 else int(rng.choice([2, 4]))
    form: list[tuple] = [("intro", None, 4 - intro_bars, intro_bars)]
    cycle = [
        ("verse", "verse1"),
        ("chorus", "chorus"),
        ("verse", "verse2"),
        ("chorus", "chorus"),
        ("break", None),
        ("verse", "verse3"),
        ("chorus", "chorus"),
        ("chorus", "chorus"),
    ]
    need_bars = None if seconds is None else seconds / bar_s + 1.0
    bars = intro_bars
    i = 0
    while True:
        kind, lyrics = cycle[i % len(cycle)]
        form.append((kind, lyrics, 0, 8))
        bars += 8
        i += 1
        if need_bars is None and i == len(cycle):
            break
        if need_bars is not None and bars >= need_bars:
            break
    form.append(("outro", None, 0, 1))
    return form


def make_plan(
    score: dict,
    seconds: float | None,
    seed: int,
    form: str | list | None = None,
    tempo: float | None = None,
    transpose: int | None = None,
    voice: str | None = None,
) -> Plan:
    rng = np.random.default_rng(seed)
    demo = form == "demo"
    dspec = score.get("demo", {})
    if tempo is None:
        tempo = float(dspec.get("tempo", score["tempo"])) if demo else float(rng.integers(88, 117))
    if transpose is None:
        # the melody spans C3..E4 in C; keep it where a male diphone voice sings well (A2..E4)
        transpose = int(dspec.get("transpose", 0)) if demo else int(rng.choice([-3, -2, -1, 0]))
    if voice is None:
        voice = dspec.get("voice", VOICES[0]) if demo else str(rng.choice(VOICES))
    if form is None:
        form_list = _auto_form(seconds, tempo, rng)
    elif demo:
        form_list = [tuple(f) for f in dspec["form"]]
    else:
        form_list = [tuple(f) for f in form]

    sections: list[Section] = []
    phrases: list[Phrase] = []
    lead: list[Note] = []
    beat = 0.0
    for kind, lyrics, first_bar, nbars in form_list:
        spec = score["sections"][kind]
        chords_all = spec["chords"]
        chords = []
        for b in range(nbars):
            bar_syms = chords_all[(first_bar + b) % len(chords_all)].split()
            for j, sym in enumerate(bar_syms):
                chords.append((beat + 4 * b + 4 * j / len(bar_syms), 4 / len(bar_syms), sym))
        sec = Section(kind, beat, nbars, lyrics, chords)
        sections.append(sec)
        lo, hi = 4 * first_bar, 4 * (first_bar + nbars)
        if spec.get("melody") and lyrics:
            lines = score["lyrics"][lyrics]
            for ph, line in zip(score["melodies"][spec["melody"]], lines):
                if not (lo <= ph["start"] < hi):
                    continue
                syl = split_syllables(line)
                sung = [n for n in ph["notes"] if n[0] != "r"]
                if len(syl) != len(sung):
                    raise ValueError(f"{lyrics}: {line!r} has {len(syl)} syllables for {len(sung)} notes")
                t = beat + ph["start"] - lo
                notes, k = [], 0
                for pitch, beats in ph["notes"]:
                    if pitch != "r":
                        w, si, sn = syl[k]
                        notes.append(Note(t, float(beats), note_to_midi(pitch) + transpose, w, si, sn))
                        k += 1
                    t += beats
                phrases.append(Phrase(notes[0].start, notes, len(sections) - 1))
        if spec.get("lead"):
            for ph in score["melodies"][spec["lead"]]:
                if lo <= ph["start"] < hi:
                    t = beat + ph["start"] - lo
                    for pitch, beats in ph["notes"]:
                        if pitch != "r":
                            lead.append(Note(t, float(beats), note_to_midi(pitch) + transpose + 12, "", 0, 1))
                        t += beats
        beat += 4 * nbars

    pick = (lambda options: options[0]) if demo else (lambda options: options[int(rng.integers(len(options)))])
    instruments = {
        "chords": pick(CHORD_INSTRUMENTS),
        "bass": pick(BASS_INSTRUMENTS),
        "pad": pick(PAD_INSTRUMENTS),
        "lead": pick(LEAD_INSTRUMENTS),
    }
    style = {
        "kick_and": bool(rng.random() < 0.5) if not demo else True,  # extra kick on the "and" of 2
        "fill": float(rng.uniform(0.6, 1.0)) if not demo else 1.0,  # chance of a fill before a new section
        "ride_chorus": bool(rng.random() < 0.4) if not demo else False,
        "pad_in_verse": bool(rng.random() < 0.3) if not demo else False,
        "vibrato_hz": float(rng.uniform(5.0, 6.0)) if not demo else 5.5,
        "vibrato_cents": float(rng.uniform(20, 35)) if not demo else 28.0,
        "pan": float(rng.uniform(-0.08, 0.08)) if not demo else 0.0,
        "reverb_s": float(rng.uniform(1.0, 1.8)) if not demo else 1.4,
    }
    return Plan(float(tempo), int(transpose), voice, sections, phrases, lead, beat, instruments, style)


# --------------------------------------------------------------------------------------------------------------
# backing: MIDI arrangement


def _voicing(root: int, intervals: tuple[int, ...], prev_center: float, lo: int = 52, hi: int = 76) -> list[int]:
    """Close voicing of the chord nearest to the previous one (simple voice leading)."""
    best, best_cost = None, 1e9
    pcs = [(root + i) % 12 for i in intervals[:4]]
    for bass_pc in pcs:
        for octave in range(3, 7):
            start = 12 * octave + bass_pc
            notes, cur = [], start
            order = pcs[pcs.index(bass_pc) :] + pcs[: pcs.index(bass_pc)]
            for pc in order:
                while cur % 12 != pc:
                    cur += 1
                notes.append(cur)
            if notes[0] < lo or notes[-1] > hi:
                continue
            cost = abs(np.mean(notes) - prev_center)
            if cost < best_cost:
                best, best_cost = notes, cost
    return best or [48 + (root + i) % 12 for i in intervals]


def arrange_backing(plan: Plan, seed: int) -> tuple[list[MidiTrack], int]:
    rng = np.random.default_rng(seed + 1000)
    T = TICKS

    def tk(beat: float, jitter: float = 0.0) -> int:
        return int(round(beat * T + (rng.normal(0, jitter) if jitter else 0.0)))

    def vel(v: float, spread: float = 6.0) -> int:
        return int(np.clip(round(v + rng.normal(0, spread)), 1, 127))

    ch_chords, ch_bass, ch_pad, ch_lead, ch_drums = 0, 1, 2, 3, 9
    chords_t, bass_t, pad_t, lead_t, drums_t = (MidiTrack(n) for n in ("chords", "bass", "pad", "lead", "drums"))
    inst = plan.instruments
    setup = [
        (chords_t, ch_chords, inst["chords"][1], 100, 54, 40),
        (bass_t, ch_bass, inst["bass"][1], 110, 64, 10),
        (pad_t, ch_pad, inst["pad"][1], 78, 78, 60),
        (lead_t, ch_lead, inst["lead"][1], 92, 44, 50),
    ]
    for track, ch, prog, volume, pan, reverb in setup:
        track.program(ch, prog)
        track.cc(ch, 7, volume)
        track.cc(ch, 10, pan)
        track.cc(ch, 91, reverb)
        track.cc(ch, 93, 20 if track is chords_t else 0)
    drums_t.cc(ch_drums, 7, 112)
    drums_t.cc(ch_drums, 91, 30)

    kind_of_chords = inst["chords"][0]
    center = 62.0
    st = plan.style
    n_sec = len(plan.sections)
    for si, sec in enumerate(plan.sections):
        kind = sec.kind
        last_section = si == n_sec - 1
        energy = {"intro": 0.6, "verse": 0.8, "chorus": 1.0, "break": 1.0, "outro": 0.9}[kind]
        # chords, bass and pad follow the chord list
        for c_start, c_beats, sym in sec.chords:
            root, intervals = parse_chord(sym, plan.transpose)
            voicing = _voicing(root, intervals, center)
            center = float(np.mean(voicing))
            c_end = c_start + c_beats
            if kind == "outro":
                hits = [(c_start, c_beats + 2.0)]
            elif kind_of_chords == "piano":
                hits = [(c_start + o, d) for o, d in ((0, 1.5), (1.5, 1.0), (2.5, 1.5)) if o < c_beats]
            elif kind_of_chords == "epiano":
                hits = [(c_start + o, 2.0) for o in (0, 2) if o < c_beats]
            elif kind_of_chords == "organ":
                hits = [(c_start, c_beats)]
            else:  # strummed guitar: down, down-up, up-down-up
                hits = [(c_start + o, 0.5 if o % 1 else 1.0) for o in (0, 1, 1.5, 2.5, 3, 3.5) if o < c_beats]
            for k, (b, d) in enumerate(hits):
                d = min(d, c_end + (2.0 if kind == "outro" else 0.0) - b)
                up = kind_of_chords == "guitar" and (b - c_start) % 1 > 0.25
                order = voicing[::-1] if up else voicing
                for j, key in enumerate(order):
                    offset = j * (0.035 if kind_of_chords == "guitar" else 0.0)
                    v = (92 if k == 0 else 80) * energy + (0 if not up else -10)
                    chords_t.note(ch_chords, key, tk(b + offset, 4), tk(b + d - 0.05), vel(v))
            # bass
            bass_root = 33 + (root - 9) % 12  # A1..G#2
            fifth = bass_root + 7
            if kind in ("intro", "outro"):
                pattern = (
                    [(0.0, c_beats, bass_root)]
                    if kind == "outro"
                    else [(0.0, min(c_beats, 2.0), bass_root), (2.0, 2.0, bass_root)]
                )
            elif kind == "verse":
                pattern = [(o, 0.45, bass_root) for o in np.arange(0, 4, 0.5)]
            else:
                pattern = [
                    (0.0, 0.9, bass_root),
                    (1.0, 0.45, bass_root + 12),
                    (1.5, 0.45, bass_root),
                    (2.0, 0.9, fifth),
                    (3.0, 0.45, bass_root + 12),
                    (3.5, 0.45, fifth),
                ]
            for o, d, key in pattern:
                if o < c_beats - 1e-9:
                    bass_t.note(
                        ch_bass,
                        key,
                        tk(c_start + o, 3),
                        tk(c_start + min(o + d, c_beats) - 0.02),
                        vel(100 * energy if o % 1 == 0 else 84 * energy),
                    )
            # pad
            if kind in ("chorus", "break") or (kind == "verse" and st["pad_in_verse"]) or kind == "outro":
                pv = _voicing(root, intervals, center + 5, 55, 80)
                for key in pv:
                    pad_t.note(
                        ch_pad, key, tk(c_start), tk(c_end + (2.0 if kind == "outro" else 0.0) - 0.02), vel(64, 3)
                    )

        # drums, bar by bar
        for b in range(sec.bars):
            t0 = sec.start + 4 * b
            last_bar = b == sec.bars - 1
            hits: list[tuple[float, int, float]] = []
            if b == 0 and kind in ("chorus", "break", "outro") or (b == 0 and kind == "verse" and si > 1):
                hits.append((0, CRASH, 100))
            if kind == "outro":
                hits += [(0, KICK, 110)]
            elif kind == "intro":
                hits += [(o, HAT, 70 if o % 1 == 0 else 55) for o in np.arange(0, 4, 0.5)]
                hits += [(0, KICK, 95), (2, KICK, 85)]
            else:
                ride = kind in ("chorus", "break") and st["ride_chorus"]
                cym = RIDE if ride else HAT
                for o in np.arange(0, 4, 0.5):
                    hits.append((o, cym, (88 if o % 1 == 0 else 68) * energy))
                if kind in ("chorus", "break") and not ride:
                    hits.append((3.5, OPEN_HAT, 80))
                hits += [(0, KICK, 110), (2, KICK, 100), (1, SNARE, 105), (3, SNARE, 108)]
                if st["kick_and"] or kind in ("chorus", "break"):
                    hits.append((1.5, KICK, 88))
                if kind in ("chorus", "break"):
                    hits.append((2.5, KICK, 84))
                if last_bar and not last_section and rng.random() < st["fill"]:
                    hits = [h for h in hits if h[0] < 3]
                    if rng.random() < 0.5:
                        hits += [(3 + o, SNARE, 70 + 40 * o) for o in (0, 0.25, 0.5, 0.75)]
                    else:
                        hits += [(3, TOM_HI, 100), (3.25, TOM_HI, 90), (3.5, TOM_MID, 100), (3.75, TOM_LO, 105)]
            for o, key, v in hits:
                drums_t.note(ch_drums, key, tk(t0 + o, 3), tk(t0 + o + 0.2), vel(v, 5))

    for n in plan.lead:
        lead_t.note(ch_lead, n.midi, tk(n.start, 2), tk(n.start + n.beats - 0.05), vel(92, 5))

    tracks = [chords_t, bass_t, pad_t, drums_t] + ([lead_t] if plan.lead else [])
    end_tick = tk(plan.total_beats + 4.0)  # let the last notes ring out
    return tracks, end_tick


def find_soundfont() -> str:
    env = os.environ.get("SONGGEN_SOUNDFONT")
    for candidate in ([env] if env else []) + list(SOUNDFONTS):
        if candidate and Path(candidate).is_file():
            return candidate
    raise FileNotFoundError("No General MIDI soundfont found; apt-get install fluid-soundfont-gm")


def render_midi(mid_path: Path, wav_path: Path, gain: float = 0.5) -> np.ndarray:
    """FluidSynth fast render to float32 (2, n) at 44.1 kHz."""
    import soundfile as sf

    exe = shutil.which("fluidsynth")
    if not exe:
        raise FileNotFoundError("fluidsynth is not installed (apt-get install fluidsynth)")
    cmd = [
        exe,
        "-ni",
        "-q",
        "-F",
        str(wav_path),
        "-T",
        "wav",
        "-O",
        "float",
        "-r",
        str(SR),
        "-g",
        str(gain),
        "-o",
        "synth.cpu-cores=1",
        "-o",
        "synth.polyphony=256",
        find_soundfont(),
        str(mid_path),
    ]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0 or not wav_path.exists():
        raise RuntimeError(f"fluidsynth failed: {proc.stderr.decode(errors='replace')[-500:]}")
    data, sr = sf.read(str(wav_path), dtype="float32", always_2d=True)
    assert sr == SR, sr
    return np.ascontiguousarray(data.T)


# --------------------------------------------------------------------------------------------------------------
# vocals: festival singing mode


def phrase_xml(notes: list[Note], tempo: float) -> str:
    """Festival SINGING score for one phrase (notes of consecutive syllables; gaps become REST)."""
    bpm = tempo * 50.0 / 60.0  # festival divides BPM by 50 (see module docstring)
    lines = [
        '<?xml version="1.0"?>',
        '<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" "Singing.v0_1.dtd" []>',
        f'<SINGING BPM="{bpm:.6f}">',
    ]
    i = 0
    while i < len(notes):
        n = notes[i]
        group = notes[i : i + n.syllables]
        pitches = ",".join(festival_note(g.midi) for g in group)
        beats = ",".join(f"{g.beats:g}" for g in group)
        lines.append(f'<PITCH NOTE="{pitches}"><DURATION BEATS="{beats}">{n.word}</DURATION></PITCH>')
        end = group[-1].start + group[-1].beats
        i += n.syllables
        if i < len(notes) and notes[i].start > end + 1e-6:
            lines.append(f'<REST BEATS="{notes[i].start - end:g}"></REST>')
    lines.append("</SINGING>")
    return "\n".join(lines) + "\n"


def song_xml(plan: Plan) -> str:
    """The whole vocal line as one festival score (rests between phrases). For reference and for singing it in
    one go; make_song sings phrase by phrase, which keeps every phrase on its beat to the sample."""
    notes = [n for ph in plan.phrases for n in ph.notes]
    body = phrase_xml(notes, plan.tempo).splitlines()
    if notes and notes[0].start > 0:
        body.insert(3, f'<REST BEATS="{notes[0].start:g}"></REST>')
    return "\n".join(body) + "\n"


def cache_dir() -> Path:
    d = Path(os.environ.get("SONGGEN_CACHE") or Path.home() / ".cache" / "singer" / "songgen")
    d.mkdir(parents=True, exist_ok=True)
    return d


def sing(xml: str, voice: str) -> np.ndarray:
    """Festival sings ``xml``; float32 mono at 16 kHz. Cached on disk by (xml, voice)."""
    import soundfile as sf

    key = hashlib.sha256(f"{voice}\n{xml}".encode()).hexdigest()[:24]
    cached = cache_dir() / f"{key}.wav"
    if cached.exists():
        data, _ = sf.read(str(cached), dtype="float32")
        return data
    exe = shutil.which("text2wave")
    if not exe:
        raise FileNotFoundError("festival's text2wave is not installed (apt-get install festival festvox-kallpc16k)")
    with tempfile.TemporaryDirectory(prefix="songgen-fest-") as tmp:
        src, dst = Path(tmp) / "score.xml", Path(tmp) / "out.wav"
        src.write_text(xml, encoding="utf-8")
        proc = subprocess.run(
            [exe, "-mode", "singing", "-eval", f"(voice_{voice})", str(src), "-o", str(dst)], capture_output=True
        )
        if proc.returncode != 0 or not dst.exists() or dst.stat().st_size < 100:
            raise RuntimeError(f"festival failed ({voice}): {proc.stderr.decode(errors='replace')[-500:]}")
        data, sr = sf.read(str(dst), dtype="float32")
        if data.ndim > 1:
            data = data.mean(axis=1)
        if sr != FESTIVAL_SR:
            raise RuntimeError(f"festival wrote {sr} Hz, expected {FESTIVAL_SR}")
        tmp_cached = cached.with_suffix(f".{os.getpid()}.tmp.wav")
        sf.write(str(tmp_cached), data, sr, subtype="FLOAT")
        os.replace(tmp_cached, cached)
    return data


def check_lyrics(score: dict | None = None, voice: str = VOICES[0]) -> dict[str, tuple[int, int]]:
    """Words whose syllable count in the score differs from festival's lexicon: {word: (score, festival)}."""
    score = score or load_score()
    words = score_words(score)
    exe = shutil.which("festival")
    if not exe:
        raise FileNotFoundError("festival is not installed")
    expr = " ".join(f'"{w}"' for w in sorted(words))
    scm = (
        f'(voice_{voice})\n(mapcar (lambda (w) (format t "%s %d\\n" w (length (car (cdr (cdr '
        f"(lex.lookup w nil))))))) '({expr}))\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False) as f:
        f.write(scm)
    try:
        out = subprocess.run([exe, "-b", f.name], capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            found[parts[0].lower()] = int(parts[1])
    missing = set(words) - set(found)
    if missing:
        raise RuntimeError(f"festival lexicon lookup failed for {sorted(missing)}")
    return {w: (n, found[w]) for w, n in words.items() if found[w] != n}


# --------------------------------------------------------------------------------------------------------------
# DSP


def _resample_16k_to_44k(x: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(x.astype(np.float64), 441, 160)


FRAME_MS = 5.0  # WORLD frame period


def analyse_voice(x16: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WORLD analysis (f0, spectral envelope, aperiodicity) of a festival phrase at 16 kHz."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyworld 0.3.5 imports pkg_resources
        import pyworld as pw
    x = np.ascontiguousarray(x16, dtype=np.float64)
    f0, t = pw.dio(x, FESTIVAL_SR, f0_floor=60.0, f0_ceil=700.0, frame_period=FRAME_MS)
    f0 = pw.stonemask(x, f0, t, FESTIVAL_SR)
    return f0, pw.cheaptrick(x, f0, t, FESTIVAL_SR), pw.d4c(x, f0, t, FESTIVAL_SR)


def sung_pitch_curve(
    n_frames: int, notes: list[tuple[float, float, int]], style: dict, rng: np.random.Generator
) -> np.ndarray:
    """Target pitch (MIDI, float) per WORLD frame for notes (start s, end s, midi) relative to the phrase.

    Each frame takes the note sounding at its nominal time (festival moves the pitch of a word's first syllable
    too early; this puts it back on the beat), then a singer's touches: 40 ms glides between notes, a small
    scoop into notes after a breath, vibrato on notes longer than 0.45 s, and a slow random drift of a few cents."""
    t = np.arange(n_frames) * FRAME_MS / 1000.0
    starts = np.array([s for s, _, _ in notes])
    idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(notes) - 1)
    midi = np.array([m for _, _, m in notes], dtype=np.float64)[idx]
    k = 9  # 45 ms raised-cosine glide
    win = np.hanning(k + 2)[1:-1]
    midi = np.convolve(np.pad(midi, k // 2, mode="edge"), win / win.sum(), mode="valid")[:n_frames]
    vib = np.zeros(n_frames)
    prev_end = -1.0
    rate = style["vibrato_hz"] * (1 + 0.03 * rng.standard_normal())
    phase = rng.uniform(0, 2 * np.pi)
    for s, e, _ in notes:
        if s - prev_end > 0.08:  # scoop up into a note that follows a breath
            after = t - s
            midi += np.where(after >= 0, -0.35 * np.exp(-np.maximum(after, 0) / 0.05), 0.0)
        prev_end = e
        if e - s >= 0.45:
            on, full = s + 0.18, s + 0.45
            env = np.clip((t - on) / (full - on), 0, 1) * np.clip((e - t) / 0.06, 0, 1)
            vib = np.maximum(vib, env)
    midi += vib * (style["vibrato_cents"] / 100.0) * np.sin(2 * np.pi * rate * t + phase)
    drift = sum(
        rng.uniform(0.01, 0.03) * np.sin(2 * np.pi * rng.uniform(0.2, 1.2) * t + rng.uniform(0, 6.3)) for _ in range(3)
    )
    return midi + drift


def resing(
    analysis: tuple[np.ndarray, np.ndarray, np.ndarray],
    notes: list[tuple[float, float, int]],
    style: dict,
    rng: np.random.Generator,
) -> np.ndarray:
    """Festival's phrase re-synthesised by WORLD on the score's pitches (voicing and timbre kept); 16 kHz."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyworld as pw
    f0, sp, ap = analysis
    target = 440.0 * 2.0 ** ((sung_pitch_curve(len(f0), notes, style, rng) - 69.0) / 12.0)
    return pw.synthesize(np.where(f0 > 0, target, 0.0), sp, ap, FESTIVAL_SR, FRAME_MS)


def _reverb_ir(seconds: float, seed: int) -> np.ndarray:
    """Stereo synthetic room: 20 ms pre-delay, a few early reflections, decorrelated exponential noise tail."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed + 7)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    ir = np.zeros((2, n + int(0.02 * SR)))
    sos = butter(2, 5000, fs=SR, output="sos")
    for c in range(2):
        tail = rng.standard_normal(n) * np.exp(-6.91 * t / seconds) * np.clip(t / 0.01, 0, 1)
        tail = sosfilt(sos, tail)
        ir[c, int(0.02 * SR) :] = tail / np.sqrt(np.sum(tail**2))
        for _ in range(6):
            k = int(rng.uniform(0.005, 0.04) * SR)
            ir[c, k] += rng.uniform(0.15, 0.35) * rng.choice([-1, 1])
    return ir


def _add_air(x: np.ndarray, gain_db: float = -9.0) -> np.ndarray:
    """Festival voices stop at 8 kHz (16 kHz rate). Shift the 4-8 kHz band up by 4 kHz and mix it in quietly,
    so sibilants and breath reach 12 kHz as in a real recording (a simple exciter)."""
    from scipy.signal import butter, sosfilt

    band = sosfilt(butter(4, [4000, 7800], btype="bandpass", fs=SR, output="sos"), x)
    shifted = band * np.cos(2 * np.pi * 4000.0 * np.arange(len(x)) / SR) * 2
    air = sosfilt(butter(6, 8000, btype="highpass", fs=SR, output="sos"), shifted)
    return x + air * 10 ** (gain_db / 20)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _db(x: float) -> float:
    return float(20 * np.log10(max(x, 1e-12)))


def loudness_lufs(x: np.ndarray, sr: int = SR) -> float:
    """Integrated loudness (pyloudnorm, ITU-R BS.1770) or an RMS estimate without it."""
    try:
        import pyloudnorm

        return float(pyloudnorm.Meter(sr).integrated_loudness(np.asarray(x, dtype=np.float64).T))
    except ImportError:
        return _db(_rms(x)) - 0.7


def _limit_gain(mix: np.ndarray, ceiling: float, window_s: float = 0.012) -> np.ndarray:
    """Smooth gain curve (<= 1) so that |mix * gain| <= ceiling everywhere: a look-ahead brick-wall limiter.

    A running minimum over 2W followed by a W-long moving average never exceeds the needed gain at any sample."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    peak = np.max(np.abs(mix), axis=0).astype(np.float64)
    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    w = max(3, int(window_s * SR)) | 1
    g = minimum_filter1d(need, size=2 * w + 1, mode="nearest")
    g = uniform_filter1d(g, size=w, mode="nearest")
    return np.minimum(g, need)


# --------------------------------------------------------------------------------------------------------------
# the song


def make_song(
    out_dir: str | os.PathLike,
    seconds: float | None = 180.0,
    seed: int = 0,
    vocal_gain_db: float = 0.0,
    *,
    form: str | list | None = None,
    tempo: float | None = None,
    transpose: int | None = None,
    voice: str | None = None,
    score_path: str | os.PathLike | None = None,
    write_extras: bool = True,
) -> dict:
    """Render a song with known stems into ``out_dir``.

    seconds: exact length (the song is cut there and faded out); None: the natural length of the form.
    vocal_gain_db: vocal level relative to the default balance (vocal RMS equal to the backing's where sung).
    form: None (verses and choruses cycled to fill ``seconds``), "demo" (the short demo arrangement) or a list of
    (section, lyrics or None, first bar, bars). tempo/transpose/voice override the seed's choice.
    Returns {"mix", "vocals", "instrumental": paths, "meta": dict}; meta is also written to meta.json.
    """
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    score = load_score(score_path)
    plan = make_plan(score, seconds, seed, form=form, tempo=tempo, transpose=transpose, voice=voice)
    spb = plan.spb
    natural_s = plan.total_beats * spb + 2.0
    total_s = natural_s if seconds is None else float(seconds)
    n_total = int(round(total_s * SR))
    if n_total <= 0:
        raise ValueError("seconds must be positive")

    # ---- backing (runs while festival sings)
    tracks, end_tick = arrange_backing(plan, seed)
    work = Path(tempfile.mkdtemp(prefix="songgen-", dir=out))
    try:
        mid_path = work / "backing.mid"
        write_midi(mid_path, tracks, plan.tempo, end_tick)

        def backing_job():
            t = time.perf_counter()
            audio = render_midi(mid_path, work / "backing.wav")
            timings["fluidsynth_s"] = round(time.perf_counter() - t, 2)
            return audio

        # ---- vocals: one festival call per distinct phrase (cached), placed on its beat
        needed = [ph for ph in plan.phrases if ph.start * spb < total_s]
        xmls = [phrase_xml(ph.notes, plan.tempo) for ph in needed]
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            backing_future = pool.submit(backing_job)
            unique = sorted(set(xmls))
            sung = dict(zip(unique, pool.map(lambda x: sing(x, plan.voice), unique)))
            timings["festival_s"] = round(time.perf_counter() - t, 2)
            backing = backing_future.result()

        t = time.perf_counter()
        from scipy.signal import butter, oaconvolve, sosfiltfilt

        hp = butter(2, 70, btype="highpass", fs=SR, output="sos")
        dry = np.zeros(n_total + SR)
        analysed: dict[str, tuple] = {}
        for k, (ph, xml) in enumerate(zip(needed, xmls)):
            expected = (ph.end - ph.start) * spb
            got = len(sung[xml]) / FESTIVAL_SR
            if abs(got - expected) > 0.25:
                raise RuntimeError(f"festival sang {got:.2f} s for a {expected:.2f} s phrase; check the lyrics")
            if xml not in analysed:
                analysed[xml] = analyse_voice(sung[xml])
            rel = [((n.start - ph.start) * spb, (n.start + n.beats - ph.start) * spb, n.midi) for n in ph.notes]
            x = resing(analysed[xml], rel, plan.style, np.random.default_rng([seed, k, 17]))
            x = _add_air(sosfiltfilt(hp, _resample_16k_to_44k(x)))
            i0 = int(round(ph.start * spb * SR))
            i1 = min(len(dry), i0 + len(x))
            if i1 > i0:
                dry[i0:i1] += x[: i1 - i0]
        dry = dry[:n_total]
        # ---- stereo: a slight pan and a synthetic room; float32 from here on to keep 600 s songs in memory
        ir = _reverb_ir(plan.style["reverb_s"], seed)
        theta = (plan.style["pan"] + 1) * np.pi / 4
        vocals = np.empty((2, n_total), np.float32)
        for c, pan_gain in enumerate((np.cos(theta) * np.sqrt(2), np.sin(theta) * np.sqrt(2))):
            # the IR has unit energy, so the wet signal is about as loud as the dry one before REVERB_DB
            vocals[c] = dry * pan_gain + oaconvolve(dry, ir[c])[:n_total] * 10 ** (REVERB_DB / 20)
        del dry
        inst = np.zeros((2, n_total), np.float32)
        m = min(n_total, backing.shape[1])
        inst[:, :m] = backing[:, :m]
        del backing

        # ---- balance: vocal RMS equal to the backing's RMS where the voice sings, then vocal_gain_db
        frame = 2048
        nf = n_total // frame
        v_frames = np.sqrt(
            np.mean(np.square(vocals[:, : nf * frame], dtype=np.float64).reshape(2, nf, frame), axis=(0, 2))
        )
        active = v_frames > (v_frames.max() * 10 ** (-30 / 20) if nf and v_frames.max() > 0 else np.inf)
        if active.any():
            idx = np.flatnonzero(np.repeat(active, frame))
            rv, ri = _rms(vocals[:, idx]), _rms(inst[:, idx])
            vocals *= np.float32((ri / max(rv, 1e-12)) * 10 ** (vocal_gain_db / 20))

        # ---- fades: 5 ms in; out over the last 3 s (shorter for short songs) when the song is cut
        env = np.ones(n_total, np.float32)
        k = int(0.005 * SR)
        env[:k] = np.linspace(0, 1, k)
        fade = min(3.0, 0.15 * total_s) if seconds is not None and total_s < natural_s - 1.0 else 1.0
        k = max(1, int(fade * SR))
        env[-k:] *= (np.linspace(1, 0, k) ** 2).astype(np.float32)
        vocals *= env
        inst *= env

        # ---- master: one gain curve on both stems (loudness target, then a brick-wall limiter), so that the
        # mix, computed last, is exactly their sum
        mix = vocals + inst
        lufs = loudness_lufs(mix) if total_s >= 0.5 else _db(_rms(mix))
        peak = float(np.max(np.abs(mix))) or 1.0
        ceiling = 10 ** (PEAK_CEILING_DB / 20)
        gain_db = min(TARGET_LUFS - lufs, _db(ceiling / peak) + MAX_LIMIT_DB) if np.isfinite(lufs) else 0.0
        g = 10 ** (gain_db / 20)
        curve = (_limit_gain(mix, ceiling / g) * g).astype(np.float32)
        vocals *= curve
        inst *= curve
        mix = vocals + inst
        over = float(np.max(np.abs(mix)))
        if over > ceiling:  # float rounding only; scale all three the same way
            scale = np.float32(ceiling / over)
            vocals *= scale
            inst *= scale
            mix = vocals + inst
        vocals32, inst32, mix32 = vocals, inst, mix
        timings["dsp_s"] = round(time.perf_counter() - t, 2)

        t = time.perf_counter()
        from singer.audio import write_wav

        paths = {name: out / f"{name}.wav" for name in ("mix", "vocals", "instrumental")}
        write_wav(paths["mix"], mix32, SR)
        write_wav(paths["vocals"], vocals32, SR)
        write_wav(paths["instrumental"], inst32, SR)
        if write_extras:
            shutil.copyfile(mid_path, out / "backing.mid")
            (out / "vocals.xml").write_text(song_xml(plan), encoding="utf-8")
        timings["write_s"] = round(time.perf_counter() - t, 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    timings["total_s"] = round(time.perf_counter() - t_all, 2)

    meta = _meta(plan, score, seed, n_total, total_s, vocal_gain_db, vocals32, inst32, mix32, timings)
    (out / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return {**{k: str(v) for k, v in paths.items()}, "meta": meta}


def _meta(
    plan: Plan,
    score: dict,
    seed: int,
    n_total: int,
    total_s: float,
    vocal_gain_db: float,
    vocals: np.ndarray,
    inst: np.ndarray,
    mix: np.ndarray,
    timings: dict,
) -> dict:
    spb = plan.spb
    tonic = KEY_NAMES[(plan.transpose) % 12]
    notes = []
    for pi, ph in enumerate(plan.phrases):
        for n in ph.notes:
            s, e = n.start * spb, (n.start + n.beats) * spb
            if s >= total_s:
                continue
            notes.append(
                {
                    "start": round(s, 5),
                    "end": round(min(e, total_s), 5),
                    "midi": n.midi,
                    "hz": round(midi_to_hz(n.midi), 3),
                    "word": n.word,
                    "syllable": n.syllable,
                    "phrase": pi,
                    "section": ph.section,
                }
            )
    chords = [
        {
            "start": round(s * spb, 5),
            "end": round(min((s + b) * spb, total_s), 5),
            "chord": chord_name(sym, plan.transpose),
        }
        for sec in plan.sections
        for s, b, sym in sec.chords
        if s * spb < total_s
    ]
    sections = [
        {
            "name": sec.kind,
            "lyrics": sec.lyrics,
            "start": round(sec.start * spb, 5),
            "end": round(min((sec.start + 4 * sec.bars) * spb, total_s), 5),
        }
        for sec in plan.sections
        if sec.start * spb < total_s
    ]
    active = mix.shape[1] and np.max(np.abs(vocals), axis=0) > 1e-4
    return {
        "title": score.get("title"),
        "seed": seed,
        "sample_rate": SR,
        "channels": 2,
        "samples": int(n_total),
        "seconds": n_total / SR,
        "tempo": plan.tempo,
        "beat_seconds": spb,
        "time_signature": [4, 4],
        "key": f"{tonic} major",
        "transpose_from_score": plan.transpose,
        "voice": plan.voice,
        "vocal_gain_db": vocal_gain_db,
        "instruments": {k: {"name": v[0], "gm_program": v[1]} for k, v in plan.instruments.items()},
        "style": plan.style,
        "sections": sections,
        "chords": chords,
        "notes": notes,
        "levels": {
            "mix_peak_dbfs": round(_db(float(np.max(np.abs(mix)))), 2),
            "mix_lufs": round(loudness_lufs(mix), 2) if n_total >= SR // 2 else None,
            "vocals_rms_dbfs": round(_db(_rms(vocals)), 2),
            "instrumental_rms_dbfs": round(_db(_rms(inst)), 2),
            "vocal_active_fraction": round(float(np.mean(active)), 3) if n_total else 0.0,
        },
        "timings": timings,
        "made_with": {"vocals": f"festival singing mode, voice {plan.voice}", "backing": "fluidsynth + FluidR3_GM"},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--seconds", type=float, default=180.0, help="length in seconds (0: natural length)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocal-gain-db", type=float, default=0.0)
    ap.add_argument("--form", choices=["auto", "demo"], default="auto")
    ap.add_argument("--tempo", type=float)
    ap.add_argument("--transpose", type=int)
    ap.add_argument("--voice", choices=VOICES)
    ap.add_argument("--check-lyrics", action="store_true", help="only check lyric syllables against festival")
    args = ap.parse_args(argv)
    if args.check_lyrics:
        bad = check_lyrics()
        print(json.dumps(bad))
        return 1 if bad else 0
    res = make_song(
        args.out,
        seconds=args.seconds or None,
        seed=args.seed,
        vocal_gain_db=args.vocal_gain_db,
        form=None if args.form == "auto" else args.form,
        tempo=args.tempo,
        transpose=args.transpose,
        voice=args.voice,
    )
    print(
        json.dumps({k: res[k] for k in ("mix", "vocals", "instrumental")} | {"meta": str(Path(args.out) / "meta.json")})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
