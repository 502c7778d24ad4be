"""Runs a :class:`WorkflowSpec`: binds params, computes content-addressed keys, computes or reuses each step through
the :class:`Store`, links a readable run folder, and reports progress events.

The value syntax of a workflow's params and inputs ("$var", "@step.field", "step.output", alternatives,
"!$x") is read by :mod:`singer.workflow.values`.

Every step's params are checked (bound) before the first step runs, so a bad parameter or key is a usage error
found in a second, not after minutes of separation. A param written "@step.field" is known only once that step
ran: the check leaves it out (the op's default stands in), and the step is bound again, fully, when it runs.
A step whose ``enabled`` or engine depends on an "@" value is checked only when it runs.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import SingerError, StepFailed, UsageError, error_dict
from ..files import atomic_write_json
from ..progress import Hooks, NullHooks
from . import ops
from .hashing import file_digest, step_key
from .records import RunResult, StepRecord, _run_record, _RunState, _slug, cpu_seconds
from .spec import StepSpec, WorkflowSpec
from .store import Entry, Pins, Store
from .values import enabled, has_ref, origin_ref, resolve


class EnginePool:
    """Keeps constructed engines (one per registry name) for the life of the process; their loaded models live in
    the process's bounded warm-model cache (:mod:`singer.engines.warm`)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._engines: dict[tuple[str, str], Any] = {}

    def get(self, kind: str, name: str) -> Any:
        from ..engines import registry

        key = (kind, name)
        if key not in self._engines:
            self._engines[key] = registry.create(kind, name, self.settings)
        return self._engines[key]


@dataclass
class RunContext:
    settings: Settings
    pool: EnginePool
    voices: Any
    inputs: Any = None  # the InputPolicy of this run (None: local, as the CLI; the HTTP service passes a remote one)
    namespace: str = ""  # mixed into every step key: the service's API-key owner, so tenants share no cache entry

    def engine(self, kind: str, name: str) -> Any:
        return self.pool.get(kind, name)


class Runner:
    def __init__(self, settings: Settings, store: Store, context: RunContext, hooks: Hooks | None = None):
        self.settings = settings
        self.store = store
        self.ctx = context
        self.hooks = hooks or NullHooks()
        self.pins = Pins()  # the entries this run used, held until it ends so prune leaves them

    def run(
        self,
        spec: WorkflowSpec,
        variables: dict,
        overrides: dict[str, dict] | None = None,
        engines: dict[str, str] | None = None,
        recompute: set[str] | frozenset = frozenset(),
        no_cache: bool = False,
        label: str = "",
    ) -> RunResult:
        """Execute ``spec``. ``overrides`` maps step id -> params merged over the spec's; ``engines`` maps step id
        -> engine name; ``recompute`` names steps to compute even when cached; ``no_cache`` recomputes all."""
        overrides = overrides or {}
        engines = engines or {}
        unknown = (set(overrides) | set(engines) | set(recompute)) - set(spec.step_ids)
        if unknown:
            raise UsageError(
                f"No step named {', '.join(sorted(unknown))} in workflow '{spec.name}'",
                hint=f"Steps: {', '.join(spec.step_ids)}.",
            )
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6] + (f"-{_slug(label)}" if label else "")
        st = _RunState(
            variables={**spec.vars, **{k: v for k, v in variables.items() if v is not None}},
            overrides=overrides,
            engines=engines,
            recompute=recompute,
            no_cache=no_cache,
            run_dir=self.settings.runs_path / run_id,
        )
        st.run_dir.mkdir(parents=True, exist_ok=True)
        self.hooks.on_run_start(run_id, spec.name, spec.step_ids)
        t_run = time.perf_counter()
        ok, error, current = False, None, None
        try:
            for step in spec.steps:  # every step bound before any runs (none depends on an "@" value)
                current = step.id
                bound = self._check_step(step, st.variables, overrides, engines)
                if bound is not None:
                    st.checked[step.id] = bound
            for n, step in enumerate(spec.steps, start=1):
                current = step.id
                st.records.append(self._guarded(step, lambda n=n, step=step: self._run_step(n, step, st)))
            current = None
            if spec.output not in st.files:
                raise StepFailed(f"Workflow '{spec.name}' output '{spec.output}' was not produced")
            ok = True
            out = st.files[spec.output][0]
            return RunResult(run_id, spec.name, st.run_dir, out, st.records, time.perf_counter() - t_run)
        except Exception as e:
            error = {**error_dict(e), "step": current}
            if isinstance(e, SingerError):
                e.run_id = run_id  # so a batch can point at this run's report
            raise
        finally:
            self._record(st.run_dir, _run_record(run_id, spec, st, ok, error, t_run))
            self.pins.release()
            self.hooks.on_run_end(run_id, ok)

    @staticmethod
    def _guarded(step: StepSpec, call: Any) -> Any:
        """``call()``, anything but a user error around a step (its wiring, the store) reported as that step's."""
        try:
            return call()
        except SingerError:
            raise
        except MemoryError:
            raise StepFailed(f"Step '{step.id}' ran out of memory") from None
        except Exception as e:
            raise StepFailed(f"Step '{step.id}' failed: {type(e).__name__}: {e}") from e

    def _check_step(self, step: StepSpec, variables: dict, overrides: dict, engines: dict) -> ops.Bound | None:
        """Bind ``step`` before any step runs (a bad parameter fails the run now). The Bound, when it can be used
        as is when the step runs (nothing in it came from an "@" value); None otherwise or when the step is off."""
        op = ops.get(step.op)
        if has_ref(step.enabled) or not enabled(step.enabled, variables, {}):
            return None
        engine = engines.get(step.id) or step.engine
        if has_ref(engine):
            return None
        merged = {**step.params, **overrides.get(step.id, {})}
        known = {k: v for k, v in merged.items() if not has_ref(v)}
        bound = self._bind(
            op,
            step,
            resolve(known, variables, {}),
            resolve(engine, variables, {}),
            overrides.get(step.id, {}),
        )
        return bound if len(known) == len(merged) else None

    def _bind(self, op: ops.Op, step: StepSpec, params: dict, engine: Any, override: dict) -> ops.Bound:
        """``op.bind``, its failures as user errors: a value it cannot read is a usage error naming the step and
        the parameter (``--set source.sample_rate=x``), anything else a failed step, as at run time."""
        try:
            return op.bind(self.ctx, params, engine)
        except UsageError as e:  # a parameter the op refused: say which step's
            if f"'{step.id}'" not in e.user_message:
                e.user_message = f"Step '{step.id}': {e.user_message}"
                e.args = (e.user_message,)
            raise
        except SingerError:
            raise
        except (ValueError, TypeError, ArithmeticError) as e:
            raise self._param_error(op, step, params, engine, override, e) from None
        except MemoryError:
            raise StepFailed(f"Step '{step.id}' ran out of memory") from None
        except Exception as e:
            raise StepFailed(f"Step '{step.id}' failed: {type(e).__name__}: {e}") from e

    def _param_error(
        self, op: ops.Op, step: StepSpec, params: dict, engine: Any, override: dict, e: Exception
    ) -> UsageError:
        """The parameter ``op.bind`` could not read: the one whose removal (its default standing in) binds."""
        culprit = None
        for name in sorted(params, key=lambda k: (k not in override, k)):  # the user's --set values first
            try:
                op.bind(self.ctx, {k: v for k, v in params.items() if k != name}, engine)
            except Exception:
                continue
            culprit = name
            break
        why = f"{type(e).__name__}: {str(e)[:120]}"
        if culprit is None:
            shown = ", ".join(f"{k}={v!r}"[:60] for k, v in params.items())
            return UsageError(
                f"Step '{step.id}' cannot use its parameters ({shown}): {why}",
                hint=f"Check the --set {step.id}.NAME=VALUE options and the workflow's params.",
            )
        value = f"{params[culprit]!r}"[:60]
        return UsageError(
            f"Step '{step.id}': bad value {value} for parameter '{culprit}' ({why})",
            hint=f"Give --set {step.id}.{culprit}=VALUE a value of the right kind, or leave it out for the default.",
        )

    def _run_step(self, n: int, step: StepSpec, st: _RunState) -> StepRecord:
        op = ops.get(step.op)
        if not enabled(step.enabled, st.variables, st.metas):
            return self._passthrough(step, step.passthrough, st.files, st.origins, reason="disabled")
        engine = st.engines.get(step.id) or resolve(step.engine, st.variables, st.metas)
        bound = st.checked.get(step.id)  # bound before the run, from the same values
        if bound is None:
            override = st.overrides.get(step.id, {})
            params = resolve({**step.params, **override}, st.variables, st.metas)
            bound = self._bind(op, step, params, engine, override)
        inputs, digests, refs = self._gather_inputs(step, bound, st)
        if op.is_noop(bound):
            first = next(iter(step.inputs))
            return self._passthrough(
                step, {"audio": step.inputs[first]}, st.files, st.origins, reason="no-op", params=bound.params
            )
        key = step_key(
            op.name,
            op.version,
            bound.params,
            {**digests, "@namespace": self.ctx.namespace} if self.ctx.namespace else digests,
        )
        force = st.no_cache or step.id in st.recompute
        self.hooks.on_step_start(step.id, (not force) and self.store.lookup(key) is not None)
        t0, cpu0 = time.perf_counter(), cpu_seconds()

        def progress(fraction: float, message: str | None = None) -> None:
            self.hooks.on_step_progress(step.id, min(max(fraction, 0.0), 1.0), message)

        def compute(work: Path):
            return self._guarded(step, lambda: op.run(self.ctx, work, inputs, bound, progress))

        describe = {"step": step.id, "op": op.name, "version": op.version, "params": bound.params, "inputs": digests}
        entry, cached = self.store.compute(key, compute, describe, force=force, pins=self.pins)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        self.hooks.on_step_end(step.id, cached, seconds)
        self._link(st.run_dir, n, step.id, entry)
        for name, path in entry.outputs.items():
            st.files[f"{step.id}.{name}"] = (path, entry.output_digests[name])
            st.origins[f"{step.id}.{name}"] = (entry.meta, name)
        st.metas[step.id] = entry.meta
        outputs = {k: str(v) for k, v in entry.outputs.items()}
        return StepRecord(
            step.id,
            op.name,
            key,
            cached,
            False,
            round(seconds, 3),
            bound.params,
            outputs,
            entry.meta,
            refs,
            str(engine or ""),
            round(cpu, 3),
        )

    @staticmethod
    def _gather_inputs(
        step: StepSpec, bound: ops.Bound, st: _RunState
    ) -> tuple[dict[str, Path], dict[str, str], dict[str, str]]:
        """(input files, their digests, the "step.output" each came from); the op's own files (models) join the
        inputs, and ``bound.state["input_meta"]`` gets the meta of the step that made each input."""
        inputs: dict[str, Path] = {}
        digests: dict[str, str] = {}
        input_meta: dict[str, tuple[dict, str]] = {}  # input -> (meta of the step that made it, its output name)
        refs: dict[str, str] = {}
        for name, ref in step.inputs.items():
            if isinstance(ref, list):  # alternatives: the first one produced; none produced -> input left out
                resolved = (resolve(x, st.variables, st.metas) for x in ref)
                ref = next((r for r in resolved if r in st.files), None)
                if ref is None:
                    continue
            ref = resolve(ref, st.variables, st.metas)
            if ref not in st.files:
                raise StepFailed(f"Step '{step.id}' needs '{ref}', which no earlier step produced")
            inputs[name], digests[name] = st.files[ref]
            input_meta[name] = st.origins.get(ref, ({}, ""))
            refs[name] = origin_ref(ref, st.files)
        bound.state["input_meta"] = input_meta
        for name, path in bound.files.items():
            inputs[name], digests[name] = Path(path), file_digest(path)
        return inputs, digests, refs

    def _passthrough(self, step, mapping, files, origins, reason, params=None) -> StepRecord:
        for name, ref in mapping.items():
            if ref in files:
                files[f"{step.id}.{name}"] = files[ref]
                origins[f"{step.id}.{name}"] = origins.get(ref, ({}, ""))
        self.hooks.on_step_start(step.id, True)
        self.hooks.on_step_progress(step.id, 1.0, f"skipped ({reason})")
        self.hooks.on_step_end(step.id, True, 0.0)
        return StepRecord(step.id, step.op, None, False, True, 0.0, params or {}, meta={"skipped": reason})

    @staticmethod
    def _record(run_dir: Path, record: dict) -> None:
        """``run.json`` in the run folder: what ran, with which params, cached or not, how long, and where each
        step's files are; ``singer report`` reads it. Written at the end, failed runs included."""
        try:
            atomic_write_json(run_dir / "run.json", json.loads(json.dumps(record, default=str)))
        except OSError:
            pass  # a report that cannot be written must not fail the run

    @staticmethod
    def _link(run_dir: Path, n: int, step_id: str, entry: Entry) -> None:
        link = run_dir / f"{n:02d}-{step_id}"
        try:
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(entry.path, link, target_is_directory=True)
        except OSError:  # file systems without symlinks: leave a pointer file instead
            link.with_suffix(".txt").write_text(str(entry.path))
