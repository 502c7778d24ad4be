"""Voice-note helpers: where the voice is (:mod:`.regions`: silero-vad and an energy gate voting on the first and
last sound), and a stationary noise reducer (:mod:`.noise`). Neither imports torch."""

from .noise import DenoiseParams, denoise, floor_db
from .regions import TrimParams, energy_regions, speech_probabilities, speech_regions, speech_span, vad_regions

__all__ = [
    "DenoiseParams",
    "TrimParams",
    "denoise",
    "energy_regions",
    "floor_db",
    "speech_probabilities",
    "speech_regions",
    "speech_span",
    "vad_regions",
]
