"""What a run records: one :class:`StepRecord` per step, the :class:`RunResult`, the ``run.json`` record and the
CPU-seconds meter each step is measured with."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .opbase import Bound

if TYPE_CHECKING:
    from .spec import WorkflowSpec


@dataclass
class StepRecord:
    id: str
    op: str
    key: str | None
    cached: bool
    skipped: bool
    seconds: float
    params: dict
    outputs: dict[str, str] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> "step.output" it was fed from
    engine: str = ""
    cpu_seconds: float = 0.0  # CPU time this run spent on the step: the process (all its threads) + child processes

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class RunResult:
    run_id: str
    workflow: str
    run_dir: Path
    output: Path
    steps: list[StepRecord]
    seconds: float

    def step(self, step_id: str) -> StepRecord:
        return next(s for s in self.steps if s.id == step_id)

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "run_dir": str(self.run_dir),
            "output": str(self.output),
            "seconds": round(self.seconds, 3),
            "steps": [s.to_dict() for s in self.steps],
        }


def cpu_seconds() -> float:
    """CPU seconds used so far by this process (every thread: torch's and BLAS's included) and its waited-for child
    processes (ffmpeg). A step's cost is the difference around it; where several jobs run in one process at once
    (a service worker with ``workers`` > 1), each step's figure includes what the others used meanwhile."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:40] or "run"


@dataclass
class _RunState:
    """What one run accumulates as its steps go: each produced file, each step's meta, the records."""

    variables: dict
    overrides: dict[str, dict]
    engines: dict[str, str]
    recompute: set[str] | frozenset
    no_cache: bool
    run_dir: Path
    checked: dict[str, Bound] = field(default_factory=dict)  # step id -> params bound before the run
    files: dict[str, tuple[Path, str]] = field(default_factory=dict)  # "step.output" -> (path, digest)
    metas: dict[str, dict] = field(default_factory=dict)
    origins: dict[str, tuple[dict, str]] = field(default_factory=dict)  # "step.output" -> (maker's meta, output)
    records: list[StepRecord] = field(default_factory=list)


def _run_record(run_id: str, spec: WorkflowSpec, st: _RunState, ok: bool, error: dict | None, t_run: float) -> dict:
    seconds = time.perf_counter() - t_run
    return {
        "run_id": run_id,
        "workflow": spec.name,
        "ok": ok,
        "error": error,
        "variables": st.variables,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds)),
        "seconds": round(seconds, 3),
        "cpu_seconds": round(sum(r.cpu_seconds for r in st.records), 3),
        "cpu_count": os.cpu_count(),
        "output": spec.output,
        "output_digest": st.files[spec.output][1] if spec.output in st.files else None,
        "steps": [r.to_dict() for r in st.records],
    }
