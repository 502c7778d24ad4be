"""The key-shift rule, in one place: ``'auto'`` or a finite number of semitones within -24..24.

Every entry point reads a key through :func:`parse_key` (the CLI's ``--key``, :class:`~singer.api.CoverRequest`,
the HTTP schemas and form fields, batches, the re-key step), so a bad key is refused before any step runs, with
a message that names the input and the fix, instead of failing half-way through a run.
"""

from __future__ import annotations

import math
from typing import Literal

from .errors import UsageError

KEY_LIMIT = 24.0  # semitones either way: two octaves
# A converter may add whole octaves to the key asked for, to fit the song into the voice's register (auto_octave);
# the shift it applied (which the backing-vocal conversion repeats) may thus reach beyond KEY_LIMIT by an octave.
APPLIED_KEY_LIMIT = KEY_LIMIT + 12.0

Key = float | Literal["auto"]


def parse_key(value: object, where: str = "key", *, limit: float = KEY_LIMIT, allow_auto: bool = True) -> Key | None:
    """``value`` as a key shift: a float within ``-limit..limit``, ``"auto"`` (when ``allow_auto``), or None when
    it is None or blank. Text is read as a number (``"+2"``, ``"-3.5"``) or ``auto`` in any case. Anything else
    (NaN, infinities, 1e308, words, booleans) raises :class:`UsageError` naming ``where``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    shown = repr(value)[:24] if isinstance(value, str) else str(value)[:24]
    hint = f"Give a number of semitones from {-limit:g} to {limit:g} (e.g. -3 or +2)" + (
        ", or auto to fit the voice's range." if allow_auto else "."
    )
    if isinstance(value, str) and value.strip().lower() == "auto":
        if allow_auto:
            return "auto"
        raise UsageError(f"{where}: 'auto' is not allowed here.", hint=hint)
    if isinstance(value, bool):  # True is 1 to Python, not a key
        raise UsageError(f"{where}: {shown} is not a key shift.", hint=hint)
    try:
        number = float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{where}: {shown} is not a key shift.", hint=hint) from None
    if not math.isfinite(number):
        raise UsageError(f"{where}: {shown} is not a finite number of semitones.", hint=hint)
    if not -limit <= number <= limit:
        raise UsageError(f"{where}: {number:+g} semitones is out of range.", hint=hint)
    return number + 0.0  # -0.0 -> 0.0
