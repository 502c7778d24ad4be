"""Where a voice sings and where it speaks, whether a recording is sung or spoken, and the octave choice.

All pitches here are MIDI note numbers (69 = A4 = 440 Hz; one unit = one semitone).

A voice's :class:`Register` holds its **singing range** (the notes it sings a song in comfortably: ``low``..
``high``, with a ``median``) and its **speaking pitch** (the median pitch of its speech), each with where the figure
came from: measured from recordings, given by the user, or derived by the rule below.

  pitch.py    pitch tracks in MIDI numbers, pitch statistics, sung or spoken (:func:`classify`)
  ranges.py   :class:`Register` and the rule that gives a singing range from a speaking pitch
  octave.py   :func:`choose_octave` and :func:`choose_key`
"""

from .octave import OctaveChoice, choose_key, choose_octave
from .pitch import Delivery, classify, held_notes, hz_to_midi, midi_to_hz, note, pitch_stats
from .ranges import RULE, TYPICAL_SPEAKING_HZ, Register, singing_from_speaking, speaking_from_singing

__all__ = [
    "Delivery",
    "OctaveChoice",
    "RULE",
    "Register",
    "TYPICAL_SPEAKING_HZ",
    "choose_key",
    "choose_octave",
    "classify",
    "held_notes",
    "hz_to_midi",
    "midi_to_hz",
    "note",
    "pitch_stats",
    "singing_from_speaking",
    "speaking_from_singing",
]
