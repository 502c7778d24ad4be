"""Workflows are data: ``workflows/*.toml`` name the steps, their ops and engines, how outputs feed inputs, and
default parameters. This module loads and validates them; :mod:`singer.workflow.runner` executes them.

Values written ``"$name"`` refer to a workflow variable (``[vars]``), which the caller may override (the CLI's
``--key``, ``--voice``, ``--format`` ...). A step with ``enabled = "$var"`` is skipped when the variable is false;
its ``passthrough`` table then says which earlier outputs stand in for its own. ``enabled = "!$var"`` runs a step
when the variable is false, and a list of conditions must all hold. An input written as a list names alternatives:
the first one produced is used, and when none was the input is left out (optional stems).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import PACKAGE_DIR, Settings
from ..errors import InputError


@dataclass
class StepSpec:
    id: str
    op: str
    engine: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)  # name -> "step.output" or "$var"
    params: dict[str, Any] = field(default_factory=dict)
    enabled: Any = True
    passthrough: dict[str, str] = field(default_factory=dict)


@dataclass
class WorkflowSpec:
    name: str
    description: str
    vars: dict[str, Any]
    steps: list[StepSpec]
    output: str
    path: Path | None = None

    def step(self, step_id: str) -> StepSpec:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise InputError(f"Workflow '{self.name}' has no step '{step_id}'", hint=f"Steps: {', '.join(self.step_ids)}.")

    @property
    def step_ids(self) -> list[str]:
        return [s.id for s in self.steps]


def workflow_dirs(settings: Settings | None = None) -> list[Path]:
    dirs = []
    if settings and settings.workflows_dir:
        dirs.append(Path(settings.workflows_dir))
    dirs.append(PACKAGE_DIR.parent / "workflows")  # source checkout / editable install
    dirs.append(PACKAGE_DIR / "_workflows")  # installed wheel
    return [d for d in dirs if d.is_dir()]


def available(settings: Settings | None = None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in workflow_dirs(settings):
        for p in sorted(d.glob("*.toml")):
            found.setdefault(p.stem, p)
    return found


def load(name_or_path: str, settings: Settings | None = None) -> WorkflowSpec:
    p = Path(name_or_path)
    if not (p.suffix == ".toml" and p.is_file()):
        table = available(settings)
        if name_or_path not in table:
            raise InputError(f"Unknown workflow '{name_or_path}'", hint=f"Available: {', '.join(table) or 'none'}.")
        p = table[name_or_path]
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"Workflow file {p} is not valid TOML: {e}", hint="Fix the file's syntax.") from None
    return parse(data, p)


def parse(data: dict, path: Path | None = None) -> WorkflowSpec:
    where = str(path or "workflow")
    steps = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("steps", [])):
        unknown = set(raw) - {"id", "op", "engine", "inputs", "params", "enabled", "passthrough"}
        if unknown or "id" not in raw or "op" not in raw:
            raise InputError(
                f"{where}: step {i + 1} is malformed ({', '.join(unknown) or 'needs id and op'})",
                hint="Each [[steps]] needs id and op; allowed keys: engine, inputs, params, enabled, passthrough.",
            )
        step = StepSpec(**raw)
        for name, refs in {**step.inputs, **step.passthrough}.items():
            for ref in refs if isinstance(refs, list) else [refs]:
                if isinstance(ref, str) and not ref.startswith("$") and ref.split(".")[0] not in seen:
                    raise InputError(
                        f"{where}: step '{step.id}' input '{name}' refers to '{ref}' before it is made",
                        hint="Order steps so each input comes from an earlier step.",
                    )
        seen.add(step.id)
        steps.append(step)
    if not steps:
        raise InputError(f"{where}: no steps", hint="Add [[steps]] tables.")
    output = data.get("output", f"{steps[-1].id}.audio")
    return WorkflowSpec(
        data.get("name", path.stem if path else "workflow"),
        data.get("description", ""),
        dict(data.get("vars", {})),
        steps,
        output,
        path,
    )
