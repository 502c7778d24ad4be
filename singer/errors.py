"""One error hierarchy for the whole library.

Every error a user can cause or fix carries a ``user_message`` that names the input and the fix.
The CLI maps each class to an exit code; the HTTP layer maps it to a status and a JSON body.
The library never prints and never exits: it raises one of these.
"""

from __future__ import annotations


class SingerError(Exception):
    """Base class. ``code`` is a short machine-readable identifier, ``exit_code`` the CLI exit status."""

    code = "internal_error"
    exit_code = 1

    def __init__(self, user_message: str, *, hint: str | None = None):
        super().__init__(user_message)
        self.user_message = user_message
        self.hint = hint

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.user_message if not self.hint else f"{self.user_message} ({self.hint})"

    def to_dict(self) -> dict:
        d = {"error": self.code, "message": self.user_message}
        if self.hint:
            d["hint"] = self.hint
        return d


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

    def to_dict(self) -> dict:
        d = super().to_dict()
        if self.reasons:
            d["reasons"] = self.reasons
        return d


class ModelError(EngineUnavailable):
    """A model file exists but is unusable (wrong format, refused as unsafe, checksum mismatch)."""

    code = "model_error"


class StepFailed(SingerError):
    """An internal failure inside a workflow step (a bug, not the user's fault)."""

    code = "step_failed"
    exit_code = 1
