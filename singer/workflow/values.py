"""Values in a workflow's params and inputs, resolved as the run goes.

Syntax:
  "$name"          a workflow variable (defaults in [vars], overridden by the caller)
  "@step.field"    a field of an earlier step's manifest meta (e.g. "@source.title")
  "step.output"    (inputs only) an output file of an earlier step
  [ref, ref, ...]  (inputs only) the first of these that was produced; the input is left out when none was
                   (an optional stem, e.g. backing vocals that exist only when the karaoke stage ran)
  enabled = "!$x"  a step runs when ``x`` is false; a list of conditions must all hold
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError


def resolve(v: Any, variables: dict, metas: dict[str, dict]) -> Any:
    if isinstance(v, str) and v.startswith("$"):
        name = v[1:]
        if name not in variables:
            raise UsageError(f"Workflow variable '{name}' is not set", hint="Pass it, or add it under [vars].")
        return variables[name]
    if isinstance(v, str) and v.startswith("@"):
        step_id, _, fld = v[1:].partition(".")
        return metas.get(step_id, {}).get(fld, "")
    if isinstance(v, dict):
        return {k: resolve(x, variables, metas) for k, x in v.items()}
    return v


def enabled(value: Any, variables: dict, metas: dict[str, dict]) -> bool:
    """``enabled`` is a value or a list of values that must all be true; ``"!$name"`` negates a variable."""
    for item in value if isinstance(value, list) else [value]:
        negate = isinstance(item, str) and item.startswith("!")
        v = resolve(item[1:] if negate else item, variables, metas)
        truth = bool(v) and not (isinstance(v, str) and v.strip().lower() in ("false", "no", "0", ""))
        if truth == negate:
            return False
    return True


def has_ref(v: Any) -> bool:
    """Whether ``v`` holds an "@step.field" value (known only once that step ran)."""
    if isinstance(v, str):
        return v.lstrip("!").startswith("@")
    if isinstance(v, dict):
        return any(has_ref(x) for x in v.values())
    if isinstance(v, list):
        return any(has_ref(x) for x in v)
    return False


def origin_ref(ref: str, files: dict) -> str:
    """``ref`` itself, or the step output it passes through unchanged (a skipped step's passthrough)."""
    path = files[ref][0]
    for other, (p, _) in files.items():
        if p == path:
            return other
    return ref
