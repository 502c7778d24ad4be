"""One error hierarchy for the whole library.

Every error a user can cause or fix carries a ``user_message`` that names the input and the fix.
The CLI maps each class to an exit code; the HTTP layer maps it to a status and a JSON body.
The library never prints and never exits: it raises one of these.
"""

from __future__ import annotations

from typing import Any


class SingerError(Exception):
    """Base class. ``code`` is a short machine-readable identifier, ``exit_code`` the CLI exit status."""

    code = "internal_error"
    exit_code = 1

    def __init__(self, user_message: str, *, hint: str | None = None):
        super().__init__(user_message)
        self.user_message = user_message
        self.hint = hint
        self.run_id: str | None = None  # the workflow run it ended, when one ran (its report)

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.user_message if not self.hint else f"{self.user_message} ({self.hint})"

    def to_dict(self) -> dict:
        """What a user or client sees of this error (see :func:`error_dict`)."""
        return error_dict(self)


class InputError(SingerError):
    """The user gave us something we cannot use: bad file, bad parameter, too long, silent..."""

    code = "bad_input"
    exit_code = 3


class UsageError(InputError):
    """Wrong combination of options; maps to exit code 2 like Typer/Click usage errors."""

    code = "usage"
    exit_code = 2


class SourceError(InputError):
    """A song could not be found or fetched (no match, network down, unsupported URL)."""

    code = "source_error"


class NetworkUnavailable(SourceError):
    code = "network_unavailable"


class VoiceNotFound(InputError):
    code = "voice_not_found"


class EngineUnavailable(SingerError):
    """An engine or its model files are missing. ``reasons`` lists every backend tried and why it failed."""

    code = "engine_unavailable"
    exit_code = 4

    def __init__(self, user_message: str, *, hint: str | None = None, reasons: dict[str, str] | None = None):
        super().__init__(user_message, hint=hint)
        self.reasons = reasons or {}


class ModelError(EngineUnavailable):
    """A model file exists but is unusable (wrong format, refused as unsafe, checksum mismatch)."""

    code = "model_error"


class StepFailed(SingerError):
    """An internal failure inside a workflow step (a bug, not the user's fault)."""

    code = "step_failed"
    exit_code = 1


INTERNAL_HINT = "Try again; if it keeps failing, report it (set SINGER_DEBUG=1 to see the trace)."


def error_dict(e: BaseException, *, hint: str | None = None) -> dict:
    """The one way an error becomes a dict (CLI ``--json``, HTTP bodies, job and run records).

    A :class:`SingerError` gives its ``code``, ``user_message``, ``hint`` ("" if none) and, when it has them, the
    per-backend ``reasons``. Anything else is a bug: ``internal_error`` with the exception's type name only, never
    its text (it may hold server paths or another tenant's data). ``hint`` replaces the internal error's hint.
    """
    if isinstance(e, SingerError):
        d: dict[str, Any] = {"error": e.code, "message": e.user_message, "hint": e.hint or ""}
        reasons = getattr(e, "reasons", None)
        if reasons:
            d["reasons"] = dict(reasons)
        return d
    return {
        "error": "internal_error",
        "message": f"Internal error ({type(e).__name__}); the work was not finished.",
        "hint": hint or INTERNAL_HINT,
    }
