"""Batch runs over a folder: every audio/video file through a workflow, outputs mirroring the input tree.

* Resumable: ``<out>/.singer-batch.json`` records, per input, the digest of its bytes, the request that made its
  output (voice, workflow, format, key) and the output's size. A rerun skips inputs whose record still matches
  and whose output is there; everything else runs (through the step cache, so a half-done file resumes from its
  last finished step). The record is rewritten atomically after every file, and outputs are written to a
  temporary name and renamed, so a kill -9 loses nothing finished and leaves no partial output.
* Bad files never stop the batch: each failure is recorded with its user message.
* ``workers`` processes, each with its own warm :class:`~singer.api.Singer`, run each file through
  :func:`singer.jobs.execute.execute` as the service's workers do; the parent only plans, records and reports
  (``on_item`` callback per finished file).
* :func:`plan` names every output; the HTTP service's batches plan with it too.
* Summary written beside the outputs as ``batch-summary.json`` and ``batch-summary.csv``.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

from .audio import AUDIO_EXTENSIONS, FORMATS, file_extension
from .config import Settings
from .errors import InputError, SingerError, UsageError
from .files import atomic_write_json
from .jobs.execute import Outcome, execute
from .memory import release_memory
from .workflow.hashing import file_digest

STATE = ".singer-batch.json"


@dataclass
class Item:
    rel: str  # input path relative to the batch folder
    status: str = "pending"  # done | skipped | failed
    output: str = ""
    message: str = ""
    seconds: float = 0.0
    duration: float = 0.0
    run_id: str = ""  # the run that made the output (singer report RUN_ID)


# the first bytes of the containers voice notes come in (files saved without an extension: chat exports, uploads)
_MAGIC = (b"OggS", b"RIFF", b"ID3", b"fLaC", b"\x1aE\xdf\xa3", b"#!AMR", b"FORM", b"\xff\xf1", b"\xff\xf9")


def _media_by_content(path: Path) -> bool:
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False  # a FIFO or a device would block the reader
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    mp3_frame = len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
    return head.startswith(_MAGIC) or head[4:8] == b"ftyp" or mp3_frame


def find_inputs(folder: Path, out: Path | None = None) -> list[Path]:
    """Audio/video files below ``folder``, sorted: by extension, or by their first bytes for files without one
    (every file's content is checked again when it is decoded); hidden files and the output folder are left out."""
    out = out.resolve() if out else None
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (out is None or Path(root, d).resolve() != out))
        found += [
            Path(root, f)
            for f in sorted(files)
            if not f.startswith(".")
            and (
                Path(f).suffix.lower() in AUDIO_EXTENSIONS or (not Path(f).suffix and _media_by_content(Path(root, f)))
            )
        ]
    return found


def output_format(src: Path | PurePosixPath, requested: str | None, default: str) -> str:
    """``requested``, else the input's own format where singer writes it (ogg/opus in, ogg/opus out), else
    ``default``."""
    if requested:
        return requested
    ext = src.suffix.lower().lstrip(".")
    return {"oga": "ogg"}.get(ext, ext) if ext in FORMATS or ext == "oga" else default


def default_format(workflow: str) -> str:
    """The format a batch writes where the input's own cannot be: an ogg voice note, or an mp3 cover."""
    return "ogg" if workflow == "voice_note" else "mp3"


def unique_name(used: set[str], rel: str, ext: str | None = None) -> str:
    """``rel`` (given extension ``ext``) made unique among ``used`` by a -2, -3... suffix, and added to it. Names
    are compared case-insensitively: outputs may land on (or be unzipped onto) a file system that folds case."""
    p = PurePosixPath(rel)
    p = p.with_suffix(f".{ext}") if ext else p
    cand, n = p, 1
    while cand.as_posix().lower() in used:
        n += 1
        cand = p.with_name(f"{p.stem}-{n}{p.suffix}")
    used.add(cand.as_posix().lower())
    return cand.as_posix()


def plan_outputs(inputs: Iterable[tuple[str, str]]) -> list[str]:
    """The output path (relative, POSIX) of each ``(input path relative to the batch folder, output format)``,
    in the order given. Inputs that would share a name get -2, -3... in the sorted order of their paths, whatever
    order they come in, so a rerun over the same files maps each to the same output (``x.aac`` and ``x.wma`` ->
    ``x.ogg`` and ``x-2.ogg``). ``singer batch`` and the HTTP batches both plan with this."""
    pairs = list(inputs)
    outs = [""] * len(pairs)
    used: set[str] = set()
    for i in sorted(range(len(pairs)), key=lambda i: pairs[i][0]):
        rel, fmt = pairs[i]
        outs[i] = unique_name(used, rel, file_extension(fmt))
    return outs


@dataclass(frozen=True)
class Planned:
    """One input of a batch and its output."""

    rel: str  # the input's path relative to the batch folder (POSIX)
    format: str  # the output's format
    out: str  # the output's path relative to the output folder (POSIX)


def plan(rels: Sequence[str], fmt: str | None, workflow: str) -> list[Planned]:
    """Each input's output, in the order given: in ``fmt``, else the input's own format where singer writes it,
    else the workflow's default (:func:`default_format`); named by :func:`plan_outputs`. ``singer batch`` and the
    HTTP batches both plan with this."""
    default = default_format(workflow)
    formats = [output_format(PurePosixPath(rel), fmt, default) for rel in rels]
    return [Planned(*row) for row in zip(rels, formats, plan_outputs(zip(rels, formats)), strict=True)]


def shared_request(
    workflow: str, voice: str | None, key: Any, trim: bool | None = None, denoise: bool | None = None
) -> dict:
    """The request every file of a batch shares: the options given, the workflow's defaults for the others."""
    given = {"workflow": workflow, "voice": voice, "key": key, "trim": trim, "denoise": denoise}
    return {k: v for k, v in given.items() if v is not None}


def check_request(request: dict) -> Any:
    """The batch's shared request (voice, key, workflow, ...) as a CoverRequest, or UsageError before any file
    runs: a bad one would fail every file the same way. The key obeys :func:`singer.keys.parse_key`."""
    from pydantic import ValidationError

    from .api import CoverRequest

    try:
        return CoverRequest(**{**request, "input": request.get("input") or "-"})
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise UsageError(
            f"Invalid batch request: {where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}"
        ) from None


def _recipe(request: dict) -> dict:
    """What made an output, besides its input's bytes: everything in the request but where it reads and writes
    (voice, workflow, format, key, trim, denoise, step params...)."""
    return {k: v for k, v in sorted(request.items()) if k not in ("input", "out")}


class Batch:
    def __init__(
        self, settings: Settings, folder: Path, out: Path, request: dict, workers: int = 1, fmt: str | None = None
    ):
        self.settings, self.folder, self.out = settings, Path(folder), Path(out)
        if not self.folder.is_dir():
            raise InputError(f"{folder} is not a folder.", hint="Give the folder that holds the voice notes.")
        fmt = fmt.lower().lstrip(".") if fmt else fmt
        if fmt and fmt not in FORMATS:
            raise UsageError(f"Unknown output format '{fmt}'", hint=f"Choose one of: {', '.join(sorted(FORMATS))}.")
        self.request, self.workers, self.fmt = dict(request), max(1, workers), fmt
        checked = check_request({**self.request, **({"format": fmt} if fmt else {})})
        if "key" in self.request:  # as the key rule reads it (singer.keys.parse_key): "+2" and 2.0 are one recipe
            self.request["key"] = checked.key
        if checked.voice:  # a wrong voice fails the batch now, not every file later
            from .voices import VoiceStore

            VoiceStore(settings).get(checked.voice)
        self.state_path = self.out / STATE
        self.state: dict[str, dict] = self._load()

    def _load(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())["items"]
        except (FileNotFoundError, KeyError, ValueError):
            return {}

    def _save(self) -> None:
        atomic_write_json(self.state_path, {"items": self.state})

    def plan(self) -> list[tuple[Item, dict | None]]:
        """(item, request to run or None when the output is complete and current)."""
        sources = find_inputs(self.folder, self.out)
        planned = plan([src.relative_to(self.folder).as_posix() for src in sources], self.fmt, self.workflow)
        todo = []
        for src, p in zip(sources, planned, strict=True):
            dst = self.out / p.out
            req = {**self.request, "input": str(src), "format": p.format, "out": str(dst)}
            rec = self.state.get(p.rel)
            current = (
                rec
                and rec.get("recipe") == _recipe(req)
                and rec.get("output", p.out) == p.out
                and rec.get("digest") == file_digest(src)
                and dst.is_file()
                and dst.stat().st_size == rec.get("size")
            )
            item = Item(p.rel, output=str(dst))
            if current and rec is not None:
                item.status, item.duration, item.run_id = "skipped", rec.get("duration", 0.0), rec.get("run_id", "")
            todo.append((item, None if current else req))
        return todo

    @property
    def workflow(self) -> str:
        return self.request.get("workflow", "voice_note")

    def run(self, on_item: Callable[[Item, int, int], None] = lambda item, done, total: None) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        plan = self.plan()
        items = [i for i, _ in plan]
        todo = [(i, r) for i, r in plan if r is not None]
        done = len(items) - len(todo)
        for item, _ in plan:
            if item.status == "skipped":
                on_item(item, 0, len(items))
        ctx = multiprocessing.get_context("spawn")  # no fork of a process whose torch/BLAS threads already run
        with ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=_init, initargs=(self.worker_settings().model_dump_json(),)
        ) as ex:
            pending: dict[Any, tuple[Item, dict]] = {}
            queue = list(todo)
            while queue or pending:
                while queue and len(pending) < self.workers * 2:
                    item, req = queue.pop(0)
                    Path(req["out"]).parent.mkdir(parents=True, exist_ok=True)
                    pending[ex.submit(_convert, req)] = (item, req)
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    item, req = pending.pop(fut)
                    self._record(item, req, fut.result())
                    done += 1
                    on_item(item, done, len(items))
        summary = self._summary(items, time.perf_counter() - t0)
        try:  # the page a person opens: counts, failures, a player per output (run reports: `singer report OUT`)
            from .report import batch_report

            summary["report"] = str(batch_report(self.settings, self.out))
        except (SingerError, OSError):
            pass  # the outputs and the summary are what matter; a page that cannot be written takes nothing away
        return summary

    def worker_settings(self) -> Any:
        """The settings each worker process runs with: the cores shared out between the workers (``threads``
        unset means all cores, and N workers each using all of them only fight over the caches)."""
        if self.settings.threads or self.workers == 1:
            return self.settings
        return self.settings.model_copy(update={"threads": max(1, (os.cpu_count() or 1) // self.workers)})

    def _record(self, item: Item, req: dict, outcome: Outcome) -> None:
        item.status, item.message = outcome.state, (outcome.error or {}).get("message", "")
        item.seconds, item.duration = outcome.seconds, (outcome.result or {}).get("duration", 0.0)
        item.run_id = outcome.run_id
        if item.status == "done":
            dst = Path(req["out"])
            self.state[item.rel] = {
                "digest": file_digest(req["input"]),
                "recipe": _recipe(req),
                "output": dst.relative_to(self.out).as_posix(),
                "size": dst.stat().st_size,
                "duration": item.duration,
                "run_id": item.run_id,
            }
        else:
            self.state.pop(item.rel, None)
        self._save()

    def _summary(self, items: list[Item], seconds: float) -> dict:
        summary = summarize(str(self.folder), str(self.out), items, seconds)
        write_summary(self.out, summary)
        return summary


def summarize(folder: str, out: str, items: list[Item], seconds: float) -> dict:
    """The batch summary: counts per status, wall time, one row per file (the HTTP service's batches too)."""
    counts = {s: sum(i.status == s for i in items) for s in ("done", "skipped", "failed")}
    return {
        "folder": folder,
        "out": out,
        "files": len(items),
        **counts,
        "seconds": round(seconds, 2),
        "items": [asdict(i) for i in items],
    }


def write_summary(dest: Path, summary: dict) -> None:
    """Write ``batch-summary.json`` and ``batch-summary.csv`` (a row per file) into ``dest``."""
    atomic_write_json(Path(dest) / "batch-summary.json", summary)
    with open(Path(dest) / "batch-summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[fld.name for fld in fields(Item)])
        w.writeheader()
        w.writerows({k: csv_cell(v) for k, v in row.items()} for row in summary["items"])


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (it starts with = + - @, a tab or a carriage return: a file
    name or a message can) gets a leading single quote, so it is shown as text (OWASP's CSV injection advice)."""
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_START) else value


# ---- worker processes ------------------------------------------------------------------------------------------------
_SINGER: Any = None


def _init(settings_json: str) -> None:
    global _SINGER
    from .config import Settings

    settings = Settings.model_validate_json(settings_json)
    if settings.threads:  # before torch/BLAS load in this fresh (spawned) process
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(settings.threads)
    from .api import Singer

    _SINGER = Singer(settings)


def _convert(req: dict) -> Outcome:
    """One file, in a worker process."""
    outcome = execute(_SINGER, req)
    if outcome.ok:
        release_memory()
    return outcome
