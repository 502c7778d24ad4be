"""What every step op shares: :class:`Op` (the interface), :class:`Bound` (params bound for a run) and the checks
that turn user params into canonical ones. The ops themselves are in :mod:`.ops` and :mod:`.convert_ops`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engines import registry
from ..errors import UsageError
from ..progress import Progress


@dataclass
class Bound:
    params: dict  # canonical, hashed
    files: dict[str, Path] = field(default_factory=dict)  # extra inputs, hashed by content
    state: dict = field(default_factory=dict)  # objects run() needs but that are not hashed (a loaded voice)


class Op:
    name = ""
    version = "1"

    def bind(self, ctx: Any, params: dict, engine: str | None) -> Bound:
        return Bound(dict(params))

    def is_noop(self, bound: Bound) -> bool:
        return False

    def run(self, ctx: Any, work: Path, inputs: dict[str, Path], bound: Bound, progress: Progress) -> tuple[dict, dict]:
        raise NotImplementedError


def param_problem(e: Exception, params: dict) -> str:
    """A pydantic ValidationError as one line naming the parameter, the value given and what is wrong:
    ``target_lufs=3: Input should be less than or equal to -5``."""
    try:
        errors = e.errors()  # type: ignore[attr-defined]
    except Exception:  # not a ValidationError
        return type(e).__name__
    if not errors:
        return type(e).__name__
    loc = [str(x) for x in errors[0].get("loc", ())]
    where = ".".join(loc)
    if len(loc) == 1 and loc[0] in params:
        where += f"={params[loc[0]]!r}"[:48]
    msg = str(errors[0].get("msg", "invalid")).removeprefix("Value error, ")
    text = f"{where}: {msg}" if where else msg
    return text + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def _engine_params(kind: str, engine: str, params: dict) -> dict:
    cls = registry.get_class(kind, engine)
    model = getattr(cls, "Params", None)
    if model is None:
        if params:
            raise UsageError(f"The {kind} engine '{engine}' takes no parameters (got {', '.join(params)})")
        return {}
    try:
        return model(**params).model_dump(mode="json")
    except ValueError as e:  # pydantic.ValidationError
        raise UsageError(
            f"Bad parameter for the {kind} engine '{engine}': {param_problem(e, params)}",
            hint=f"See `singer engines` for {engine}'s parameters.",
        ) from None


def _validated(model: Any, params: dict, what: str) -> Bound:
    """Params checked by a pydantic model, in canonical form."""
    try:
        return Bound(model(**params).model_dump(mode="json"))
    except ValueError as e:  # pydantic.ValidationError
        raise UsageError(f"Bad {what} parameter {param_problem(e, params)}") from None
