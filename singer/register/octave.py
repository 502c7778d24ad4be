"""The octave choice
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

from dataclasses import dataclass

import numpy as np

from .pitch import Delivery, midi_to_hz, note
from .ranges import Register

SPEECH_ZONE = 6.0  # speech is compared with the speaking pitch +- half an octave
MOVE_COST = 1.0  # semitones of misfit an octave move must save before it is made


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


def _choice(
    shift: float, kind: str, what: str, zone: tuple[float, float], source: dict, reason: str, delivery: object
) -> OctaveChoice:
    evidence = delivery.to_dict() if isinstance(delivery, Delivery) else None
    return OctaveChoice(shift, kind, what, zone, (source["p10"], source["median"], source["p90"]), reason, evidence)


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
    return _choice(shift, kind, what, zone, source, reason, delivery)


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
    return _choice(shift + 0.0, kind, what, zone, source, reason, delivery)
