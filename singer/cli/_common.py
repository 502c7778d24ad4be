"""Shared CLI plumbing: one place that turns results into text or JSON and errors into exit codes.

Exit codes: 0 ok, 2 usage, 3 bad input, 4 engine/model unavailable, 1 internal error.
User errors never show a stack trace; set SINGER_DEBUG=1 to see one for internal errors.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)

JsonOpt = typer.Option(False, "--json", help="Print one machine-readable JSON object on stdout.")
SetOpt = typer.Option([], "--set", help="STEP.PARAM=VALUE override; repeatable.")
RecomputeOpt = typer.Option([], "--recompute", help="Compute STEP again even if cached; repeatable.")
NoCacheOpt = typer.Option(False, "--no-cache", help="Compute every step again.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars.")
F0Opt = typer.Option(None, "--f0", help="RVC pitch tracker: fcpe (default), crepe, crepe-tiny, rmvpe, harvest, pm.")
IndexRateOpt = typer.Option(
    None, "--index-rate", min=0.0, max=1.0, help="RVC: share of retrieved voice features (0.75)."
)
ProtectOpt = typer.Option(None, "--protect", min=0.0, max=0.5, help="RVC: keep consonants/breaths (0.33; 0.5 = off).")


def settings():
    from ..config import Settings

    try:
        return Settings()
    except Exception as e:  # pydantic validation of SINGER_* variables
        from ..errors import UsageError

        raise UsageError(f"Bad SINGER_* environment setting: {e}") from None


def emit(obj: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        sys.stdout.write(
            json.dumps(
                {"ok": True, **obj} if isinstance(obj, dict) else {"ok": True, "result": obj},
                default=str,
                ensure_ascii=False,
            )
            + "\n"
        )
    else:
        render(obj)


def run(
    fn: Callable[[], Any], as_json: bool, render: Callable[[Any], None], exit_code: Callable[[Any], int] | None = None
) -> None:
    """Call ``fn``; print its result; map errors to exit codes (``exit_code(result)`` for a partial success)."""
    from ..errors import SingerError, error_dict

    try:
        obj = fn()
    except SingerError as e:
        fail(error_dict(e), e.exit_code, as_json)
    except KeyboardInterrupt:
        fail({"error": "interrupted", "message": "Interrupted.", "hint": ""}, 130, as_json)
    except Exception as e:  # a bug: short message, trace only on request
        if os.environ.get("SINGER_DEBUG"):
            raise
        fail(error_dict(e), 1, as_json)
    else:
        emit(obj, as_json, render)
        if exit_code and (code := exit_code(obj)):
            raise typer.Exit(code)


def fail(payload: dict, code: int, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"ok": False, **payload}, default=str, ensure_ascii=False) + "\n")
    else:
        err_console.print(f"[bold red]error:[/] {payload.get('message')}")
        if payload.get("hint"):
            err_console.print(f"[dim]hint:[/] {payload['hint']}")
        for name, why in (payload.get("reasons") or {}).items():
            err_console.print(f"  - {name}: {why}")
    raise typer.Exit(code)


def parse_size(text: str) -> int:
    import re

    from ..errors import UsageError

    m = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?i?b?)\s*", text.lower())
    if not m:
        raise UsageError(f"Cannot read size '{text}'", hint="Write it like 500MB, 5GB or 1.5GiB.")
    num, unit = float(m.group(1)), m.group(2).rstrip("b")
    mult = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}[unit]
    return int(num * mult)
