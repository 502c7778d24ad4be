"""Tiny counting ops and a spec builder for workflow-engine tests (no audio, no engines).

Each op appends its step id to ``counter.txt`` in the settings home when it really computes, so tests can
assert exactly which steps ran. ``SLEEP_STEP`` env var makes that step sleep (for kill -9 tests).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from singer.workflow import ops
from singer.workflow.ops import Bound, Op
from singer.workflow.spec import parse


class WriteOp(Op):
    """Reads input text (if any), appends params['text'], writes out.txt."""

    name = "t_write"
    version = "1"

    def __init__(self, home: Path):
        self.home = home

    def bind(self, ctx, params, engine):
        files = {"src": Path(params.pop("file"))} if "file" in params else {}
        return Bound(dict(params), files=files)

    def run(self, ctx, work, inputs, bound, progress):
        step = bound.params.get("id", "?")
        with open(self.home / "counter.txt", "a") as f:
            f.write(step + "\n")
        if os.environ.get("SLEEP_STEP") == step:
            (self.home / f"started-{step}").touch()
            time.sleep(float(os.environ.get("SLEEP_SECONDS", "60")))
        text = "".join(Path(p).read_text() for _, p in sorted(inputs.items()))
        out = work / "out.txt"
        out.write_text(text + bound.params.get("text", ""))
        progress(1.0, "written")
        return {"audio": out}, {"length": len(out.read_text())}


def install(monkeypatch, home: Path) -> None:
    monkeypatch.setitem(ops.OPS, "t_write", WriteOp(home))


def chain(file: Path | None = None) -> dict:
    first = {"id": "a", "op": "t_write", "params": {"id": "a", "text": "$ta"}}
    if file is not None:
        first["params"]["file"] = str(file)
    return {
        "name": "chain",
        "vars": {"ta": "A", "tb": "B", "tc": "C"},
        "steps": [
            first,
            {"id": "b", "op": "t_write", "inputs": {"x": "a.audio"}, "params": {"id": "b", "text": "$tb"}},
            {"id": "c", "op": "t_write", "inputs": {"x": "b.audio"}, "params": {"id": "c", "text": "$tc"}},
        ],
    }


def counts(home: Path) -> list[str]:
    p = home / "counter.txt"
    return p.read_text().split() if p.exists() else []


def spec(file: Path | None = None):
    return parse(chain(file))
